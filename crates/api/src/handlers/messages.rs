//! `/v1/threads/{thread_id}/messages`: list, append, update, delete.

use crate::auth::Caller;
use crate::dto::content::require_text;
use crate::dto::messages::{
    CreateMessageRequest, DeleteMessageResponse, ListMessagesQuery, MessageListResponse,
    MessageResponse, UpdateMessageRequest,
};
use crate::dto::{OrderDto, OrganizationQuery};
use crate::error::{ApiError, ErrorResponse, FieldError};
use crate::etag::Conditions;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use actix_web::{delete, get, patch, post, web, HttpResponse};
use skein_domain::limits::DEFAULT_PAGE_SIZE;
use skein_domain::{DomainError, MessagePatch, MessageRole, Metadata, NewMessage};
use skein_engine::cpu;
use skein_persistence::messages::{self, MessageQuery};

type Result<T> = std::result::Result<T, ApiError>;

/// List messages.
///
/// The thread's stored user and assistant turns, oldest first by default.
/// Walk with `after=<last_id>` while `has_more` is true.
#[utoipa::path(
    tag = "messages",
    operation_id = "list_messages",
    params(("thread_id" = String, Path, description = "Thread id"), ListMessagesQuery),
    responses(
        (status = 200, description = "One page of messages", body = MessageListResponse),
        (status = 400, description = "`INVALID_REQUEST`: unknown cursor", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/threads/{thread_id}/messages")]
pub async fn list_messages(
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<ListMessagesQuery>,
) -> Result<web::Json<MessageListResponse>> {
    let thread_id = path.into_inner();
    let q = query.0;
    crate::dto::one_cursor(&q.after, &q.before)?;
    let query = MessageQuery {
        limit: q.limit.unwrap_or(DEFAULT_PAGE_SIZE),
        order: q.order.unwrap_or(OrderDto::Asc).into(),
        after: q.after,
        before: q.before,
        items: false,
    };
    let org = q.organization_id;
    let page = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &thread_id)?;
            Ok(messages::list(conn, &scope, &thread_id, &query)?)
        })
        .await?;
    let data: Vec<MessageResponse> = page.messages.into_iter().map(Into::into).collect();
    Ok(web::Json(MessageListResponse {
        object: "list".into(),
        first_id: data.first().map(|m| m.id.clone()),
        last_id: data.last().map(|m| m.id.clone()),
        data,
        has_more: page.has_more,
    }))
}

/// Append a message.
///
/// Stores a user or assistant message without calling a model (imports,
/// tests). The thread must be open (423 `THREAD_LOCKED` / `THREAD_ARCHIVED`)
/// and below its message limit (400 `THREAD_MESSAGE_LIMIT`).
#[utoipa::path(
    tag = "messages",
    operation_id = "create_message",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    request_body = CreateMessageRequest,
    responses(
        (status = 201, description = "The stored message", body = MessageResponse),
        (status = 400, description = "`THREAD_MESSAGE_LIMIT` or `INVALID_JSON`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (role, content, metadata)", body = ErrorResponse),
        (status = 423, description = "`THREAD_LOCKED` or `THREAD_ARCHIVED`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/threads/{thread_id}/messages")]
pub async fn create_message(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
    body: JsonBody<CreateMessageRequest>,
) -> Result<HttpResponse> {
    let now = state.clock.now();
    let thread_id = path.into_inner();
    let org = query.0.organization_id;
    let body = body.0;
    let role = MessageRole::parse(&body.role).ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new(
            &["body", "role"],
            "role must be 'user' or 'assistant' (system and developer inputs are not stored)",
        )])
    })?;
    let content = require_text(
        body.content.as_ref(),
        body.texts.as_deref(),
        &["body", "content"],
    )?;
    let limits = state.limits;
    let metadata = body
        .metadata
        .map(|m| Metadata::parse(m, &limits.metadata))
        .transpose()
        .map_err(DomainError::from)?
        .unwrap_or_default();
    caller.before_counting(content.len()).await?;
    let (content, token_count) = cpu::count_one(content).await?;
    let new = NewMessage {
        metadata,
        ..NewMessage::text(role, content, token_count)
    };
    let (_, mut stored) = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &thread_id)?;
            Ok(messages::append(
                conn,
                &scope,
                &thread_id,
                vec![new],
                &limits,
                now,
            )?)
        })
        .await?;
    let message = stored
        .pop()
        .ok_or_else(|| ApiError::InvalidRequest("nothing was stored".into()))?;
    let bytes = message.content.len();
    crate::etag::json_large(
        HttpResponse::Created(),
        MessageResponse::from(message),
        bytes,
    )
    .await
}

/// Update a message.
///
/// Replaces the text and/or merges metadata (a key set to `null` is
/// removed). The thread must be open.
#[utoipa::path(
    tag = "messages",
    operation_id = "update_message",
    params(
        ("thread_id" = String, Path, description = "Thread id"),
        ("message_id" = String, Path, description = "Message id"),
        OrganizationQuery
    ),
    request_body = UpdateMessageRequest,
    responses(
        (status = 412, description = "`PRECONDITION_FAILED`: `If-Match` names no current version of the message; nothing changed", body = ErrorResponse),
        (status = 200, description = "The updated message", body = MessageResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND` or `MESSAGE_NOT_FOUND`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorResponse),
        (status = 423, description = "`THREAD_LOCKED` or `THREAD_ARCHIVED`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[patch("/v1/threads/{thread_id}/messages/{message_id}")]
pub async fn update_message(
    state: web::Data<AppState>,
    caller: Caller,
    conditions: Conditions,
    path: web::Path<(String, String)>,
    query: QueryParams<OrganizationQuery>,
    body: JsonBody<UpdateMessageRequest>,
) -> Result<HttpResponse> {
    let now = state.clock.now();
    let (thread_id, message_id) = path.into_inner();
    let org = query.0.organization_id;
    let body = body.0;
    let content = match (&body.content, &body.texts) {
        (None, None) => None,
        (content, texts) => Some(require_text(
            content.as_ref(),
            texts.as_deref(),
            &["body", "content"],
        )?),
    };
    let content = match content {
        Some(c) => {
            caller.before_counting(c.len()).await?;
            Some(cpu::count_one(c).await?)
        }
        None => None,
    };
    let patch = MessagePatch {
        content,
        metadata: body.metadata,
    };
    let limits = state.limits;
    let message = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &thread_id)?;
            Ok(messages::update(
                conn,
                &scope,
                &thread_id,
                &message_id,
                |m| {
                    conditions.check("message", &MessageResponse::from(m.clone()))?;
                    m.apply(patch, &limits, now)
                },
            )?)
        })
        .await?;
    let bytes = message.content.len();
    crate::etag::json_large(HttpResponse::Ok(), MessageResponse::from(message), bytes).await
}

/// Delete a message.
///
/// Removes one message for good and keeps the thread's `message_count` and
/// `last_message_at` exact. The thread must be open.
#[utoipa::path(
    tag = "messages",
    operation_id = "delete_message",
    params(
        ("thread_id" = String, Path, description = "Thread id"),
        ("message_id" = String, Path, description = "Message id"),
        OrganizationQuery
    ),
    responses(
        (status = 412, description = "`PRECONDITION_FAILED`: `If-Match` names no current version of the message; nothing changed", body = ErrorResponse),
        (status = 200, description = "Deleted", body = DeleteMessageResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND` or `MESSAGE_NOT_FOUND`", body = ErrorResponse),
        (status = 423, description = "`THREAD_LOCKED` or `THREAD_ARCHIVED`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[delete("/v1/threads/{thread_id}/messages/{message_id}")]
pub async fn delete_message(
    state: web::Data<AppState>,
    caller: Caller,
    conditions: Conditions,
    path: web::Path<(String, String)>,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<DeleteMessageResponse>> {
    let now = state.clock.now();
    let (thread_id, message_id) = path.into_inner();
    let org = query.0.organization_id;
    let mid = message_id.clone();
    caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &thread_id)?;
            Ok(messages::delete_entry(
                conn,
                &scope,
                &thread_id,
                &mid,
                false,
                now,
                |m| conditions.check("message", &MessageResponse::from(m.clone())),
            )?)
        })
        .await?;
    Ok(web::Json(DeleteMessageResponse {
        id: message_id,
        deleted: true,
        object: "thread.message.deleted".into(),
    }))
}
