//! Read state and the change feed (contract 9.3):
//! `POST /v1/threads/{thread_id}/read`, `GET /v1/threads/unread` and
//! `GET /v1/threads/changes`.

use crate::auth::Caller;
use crate::dto::{OrganizationQuery, ThreadResponse};
use crate::error::{ApiError, ErrorResponse, FieldError};
use crate::extract::QueryParams;
use crate::state::AppState;
use actix_web::{get, post, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use skein_persistence::threads;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

type Result<T> = std::result::Result<T, ApiError>;

/// Answer of `POST /v1/threads/{thread_id}/read`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"success": true}))]
pub struct MarkReadResponse {
    /// Always true.
    pub success: bool,
}

/// Answer of `GET /v1/threads/unread`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"unread_count": 2,
    "unread_thread_ids": ["thread_6fQk2mZp0aX9cVbN3sLr7TyW", "thread_0aX9cVbN3sLr7TyW6fQk2mZp"]}))]
pub struct UnreadResponse {
    /// How many of the caller's live threads are unread.
    pub unread_count: usize,
    /// Their ids, newest thread first.
    pub unread_thread_ids: Vec<String>,
}

/// Query of `GET /v1/threads/changes`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// RFC 3339 time: changes at or after it (required). Pass the previous
    /// answer's `next_since` to continue.
    #[param(example = "2026-11-30T10:00:00.000000Z")]
    pub since: Option<String>,
    /// Organization (a user token without it: all its organizations).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Page size, 1-100 (default 100).
    #[serde(default)]
    #[validate(range(min = 1, max = 100, message = "limit must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100, default = 100)]
    pub limit: Option<u32>,
}

/// Answer of `GET /v1/threads/changes`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [], "next_since": "2026-11-30T10:00:01.250113Z",
                          "has_more": false}))]
pub struct ChangesResponse {
    /// Always `list`.
    pub object: String,
    /// The changed threads, oldest change first; a deleted thread appears
    /// once, with `deleted_at`.
    pub data: Vec<ThreadResponse>,
    /// Pass as `since` for the next poll (microsecond precision).
    #[schema(format = DateTime)]
    pub next_since: String,
    /// More changes are waiting: poll again at once.
    pub has_more: bool,
}

/// Mark a thread read.
///
/// Records the caller's last-read time for the thread: `has_unread` is
/// false until the next assistant message arrives in it.
#[utoipa::path(
    tag = "threads",
    operation_id = "mark_thread_read",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    responses(
        (status = 200, description = "Recorded", body = MarkReadResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/threads/{thread_id}/read")]
pub async fn mark_thread_read(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<MarkReadResponse>> {
    let now = state.clock.now();
    let id = path.into_inner();
    let org = query.0.organization_id;
    caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            Ok(threads::mark_read(conn, &scope, &id, now)?)
        })
        .await?;
    Ok(web::Json(MarkReadResponse { success: true }))
}

/// Unread threads.
///
/// The caller's live threads holding an assistant message newer than the
/// caller's last read (or never read and holding one), newest thread
/// first. One indexed read, however many threads the caller has.
#[utoipa::path(
    tag = "threads",
    operation_id = "get_unread_threads",
    params(OrganizationQuery),
    responses(
        (status = 200, description = "The unread threads", body = UnreadResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/threads/unread")]
pub async fn get_unread_threads(
    caller: Caller,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<UnreadResponse>> {
    let org = query.0.organization_id;
    let ids = caller
        .run(move |conn, who| {
            let orgs = who.listing(org.as_deref())?;
            Ok(threads::unread_ids(
                conn,
                &who.user_id,
                &orgs,
                Some(who.live),
            )?)
        })
        .await?;
    Ok(web::Json(UnreadResponse {
        unread_count: ids.len(),
        unread_thread_ids: ids,
    }))
}

fn since_field(msg: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(&["query", "since"], msg)])
}

/// The thread change feed.
///
/// The caller's threads created, updated or deleted at or after `since`,
/// oldest change first; a deleted thread appears once, with `deleted_at`.
/// Walking with `since = next_since` never skips a change and never
/// repeats one, also while other requests write: a page holds only changes
/// whose transactions have committed, and every later change is stamped
/// after `next_since`. A page may hold more than `limit` threads when its
/// last ones changed in the same microsecond (they are never split).
/// Threads removed for good by retention (expiry, incognito deadline) leave
/// no entry.
#[utoipa::path(
    tag = "threads",
    operation_id = "get_thread_changes",
    params(ChangesQuery),
    responses(
        (status = 200, description = "The changes", body = ChangesResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (since, limit)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/threads/changes")]
pub async fn get_thread_changes(
    caller: Caller,
    query: QueryParams<ChangesQuery>,
) -> Result<web::Json<ChangesResponse>> {
    let q = query.0;
    let limit = q.limit.unwrap_or(100);
    let (since, org) = (q.since, q.organization_id);
    let page = caller
        .run(move |conn, who| {
            // Checked after authentication: a caller without valid
            // credentials learns nothing about the query.
            let since = since
                .as_deref()
                .ok_or_else(|| since_field("since is required (an RFC 3339 time)"))?;
            let since_us = DateTime::parse_from_rfc3339(since)
                .map_err(|_| {
                    since_field("since must be an RFC 3339 time, such as 2026-11-30T10:00:00Z")
                })?
                .timestamp_micros();
            let orgs = who.listing(org.as_deref())?;
            Ok(threads::changes(
                conn,
                &who.user_id,
                &orgs,
                Some(who.live),
                since_us,
                limit,
            )?)
        })
        .await?;
    let next_since = DateTime::<Utc>::from_timestamp_micros(page.next_since_us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    Ok(web::Json(ChangesResponse {
        object: "list".into(),
        data: page.threads.into_iter().map(Into::into).collect(),
        next_since,
        has_more: page.has_more,
    }))
}
