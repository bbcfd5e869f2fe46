//! `GET /v1/search/messages`: full-text search over the caller's live
//! messages (contract 11.1).

use crate::auth::Caller;
use crate::dto::timestamp;
use crate::error::{ApiError, ErrorResponse, FieldError};
use crate::extract::QueryParams;
use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use skein_domain::limits::DEFAULT_PAGE_SIZE;
use skein_domain::search::SearchQuery;
use skein_persistence::search::{self, MessageSearch};
use skein_persistence::Scope;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

type Result<T> = std::result::Result<T, ApiError>;

/// Query of `GET /v1/search/messages`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQueryParams {
    /// Words and "quoted phrases", all required; case and accents do not
    /// matter. At most 256 characters and 32 words.
    #[serde(default)]
    #[param(example = "invoice \"next week\"")]
    pub q: Option<String>,
    /// Organization (defaults to the caller's only one).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Only in this thread.
    #[serde(default, alias = "threadId")]
    pub thread_id: Option<String>,
    /// Only `user` or only `assistant` messages.
    #[serde(default)]
    pub role: Option<String>,
    /// Page size, 1-100 (default 20).
    #[serde(default)]
    #[validate(range(min = 1, max = 100, message = "limit must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// A `message_id` of this search's previous page (`last_id`): the hits
    /// after it.
    #[serde(default)]
    pub after: Option<String>,
}

/// One hit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchHitResponse {
    /// The thread.
    pub thread_id: String,
    /// The message.
    pub message_id: String,
    /// `user` or `assistant`.
    pub role: String,
    /// When the message was written.
    pub created_at: String,
    /// Up to 24 words around the first match, every matching word in
    /// `**`, `…` where the text is cut.
    pub snippet: String,
    /// Relevance, higher first; comparable within one search.
    pub score: f64,
}

/// A page of hits, best first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [{
    "thread_id": "thread_6fQk2mZp0aX9cVbN3sLr7TyW", "message_id": "msg_3kQ9aZp0mX2cVbN8sLr7TyWd",
    "role": "user", "created_at": "2026-11-30T10:00:00.000Z",
    "snippet": "…can you resend the **invoice** for October?", "score": 3.2}],
    "has_more": false, "last_id": "msg_3kQ9aZp0mX2cVbN8sLr7TyWd"}))]
pub struct SearchResponse {
    /// Always `list`.
    pub object: String,
    /// The hits.
    pub data: Vec<SearchHitResponse>,
    /// More hits follow: pass `last_id` as `after`.
    pub has_more: bool,
    /// The last hit's message id.
    pub last_id: Option<String>,
}

fn invalid(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(&["query", name], message)])
}

/// Search messages.
///
/// Full-text search over the caller's messages in its live threads (not
/// deleted, not expired): every word and "quoted phrase" of `q` must
/// occur, ignoring case and accents; in scripts written without spaces
/// (Chinese, Japanese, Korean) a run of characters is found as a phrase.
/// Best match first. The index changes in the transaction of every write,
/// so a message is found right after it is written and no longer after it
/// is edited away, deleted, rewound or purged.
#[utoipa::path(
    tag = "messages",
    operation_id = "search_messages",
    params(SearchQueryParams),
    responses(
        (status = 200, description = "One page of hits", body = SearchResponse),
        (status = 400, description = "`INVALID_REQUEST`: `after` names no hit of this search", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR`: `q` missing, empty or too long, bad `role` or `limit`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/search/messages")]
pub async fn search_messages(
    caller: Caller,
    query: QueryParams<SearchQueryParams>,
) -> Result<web::Json<SearchResponse>> {
    let q = query.0;
    let text = q.q.unwrap_or_default();
    let parsed = SearchQuery::parse(&text).map_err(|e| invalid("q", e.to_string()))?;
    if let Some(role) = &q.role {
        if role != "user" && role != "assistant" {
            return Err(invalid("role", "role must be 'user' or 'assistant'"));
        }
    }
    let request = MessageSearch {
        query: parsed,
        thread_id: q.thread_id,
        role: q.role,
        limit: q.limit.unwrap_or(DEFAULT_PAGE_SIZE),
        after: q.after,
    };
    let organization = q.organization_id;
    let page = caller
        .run(move |conn, who| {
            let scope = Scope {
                organization_id: who.organization(organization.as_deref())?,
                user_id: who.user_id.clone(),
                live: Some(who.live),
            };
            Ok(search::search(conn, &scope, &request)?)
        })
        .await?;
    let data: Vec<SearchHitResponse> = page
        .hits
        .into_iter()
        .map(|h| SearchHitResponse {
            thread_id: h.thread_id,
            message_id: h.message_id,
            role: h.role,
            created_at: timestamp(h.created_at),
            snippet: h.snippet,
            score: h.score,
        })
        .collect();
    Ok(web::Json(SearchResponse {
        object: "list".into(),
        last_id: data.last().map(|h| h.message_id.clone()),
        data,
        has_more: page.has_more,
    }))
}
