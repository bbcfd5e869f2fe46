//! `/v1/threads`: create, read, list, update, pin, delete.

use crate::auth::Caller;
use crate::dto::content::require_text;
use crate::dto::{
    CreateThreadRequest, DeleteAllResponse, ForkThreadRequest, GenerateNameQuery,
    GenerateNameRequest, GenerateNameResponse, ListThreadsQuery, OrganizationQuery, PinResponse,
    ThreadListResponse, ThreadResponse, UpdateThreadRequest,
};
use crate::error::{ApiError, ErrorResponse, FieldError};
use crate::etag::Conditions;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use actix_web::{delete, get, patch, post, web, HttpResponse};
use skein_domain::{
    naming, AssistantId, DomainError, MessageRole, Metadata, NewThread, Thread, ThreadId,
    ThreadPatch, ThreadTitle, WorkflowId,
};
use skein_persistence::{threads, Scope, ThreadQuery};

type Result<T> = std::result::Result<T, ApiError>;

fn parse_title(title: Option<String>, max: usize) -> Result<Option<Option<ThreadTitle>>> {
    title
        .map(|t| ThreadTitle::parse(t, max))
        .transpose()
        .map_err(|e| ApiError::Validation(vec![FieldError::new(&["body", "title"], e.to_string())]))
}

fn parse_assistant(id: Option<String>) -> Result<Option<AssistantId>> {
    // A malformed id cannot name an existing assistant.
    id.map(|a| AssistantId::parse(a.clone()).map_err(|_| ApiError::AssistantNotFound(a)))
        .transpose()
}

/// Create a thread.
///
/// Creates an empty conversation thread owned by the caller. Every field is
/// optional; `organization_id` may be omitted when the caller belongs to one
/// organization only. Setting `visible_in_ui` requires a user token.
#[utoipa::path(
    tag = "threads",
    operation_id = "create_thread",
    request_body = CreateThreadRequest,
    responses(
        (status = 201, description = "The new thread", body = ThreadResponse),
        (status = 400, description = "Malformed JSON (`INVALID_JSON`)", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED` or `BEARER_TOKEN_REQUIRED`", body = ErrorResponse),
        (status = 404, description = "`ASSISTANT_NOT_FOUND`", body = ErrorResponse),
        (status = 413, description = "Body larger than the limit", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (title, metadata)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/threads")]
pub async fn create_thread(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateThreadRequest>,
) -> Result<HttpResponse> {
    let now = state.clock.now();
    let body = body.0;
    if body.visible_in_ui.is_some() {
        caller.require_user_token("visible_in_ui")?;
    }
    let limits = state.limits;
    let title = parse_title(body.title, limits.max_title_chars)?.flatten();
    let metadata = body
        .metadata
        .map(|m| Metadata::parse(m, &limits.metadata))
        .transpose()
        .map_err(skein_domain::DomainError::from)?
        .unwrap_or_default();
    let assistant_id = parse_assistant(body.assistant_id)?;
    let workflow_id = body
        .workflow_id
        .map(WorkflowId::parse)
        .transpose()
        .map_err(|e| ApiError::Validation(vec![FieldError::new(&["body", "workflow_id"], e)]))?;
    let incognito_ttl = (body.is_incognito == Some(true)).then_some(state.retention.incognito_ttl);
    let (organization, visible_in_ui) = (body.organization_id, body.visible_in_ui);
    let thread = caller
        .run(move |conn, who| -> Result<Thread> {
            let thread = Thread::new(
                NewThread {
                    id: ThreadId::generate(),
                    organization_id: who.organization(organization.as_deref())?,
                    user_id: who.user_id.clone(),
                    title,
                    metadata,
                    assistant_id,
                    visible_in_ui: visible_in_ui.unwrap_or(true),
                    workflow_id,
                    incognito_ttl,
                },
                now,
            );
            if let Some(a) = &thread.assistant_id() {
                let owner = Scope {
                    organization_id: thread.organization_id().clone(),
                    user_id: thread.user_id().clone(),
                    live: None,
                };
                threads::check_assistant(conn, &owner, a)?;
            }
            threads::insert(conn, &thread)?;
            Ok(thread)
        })
        .await?;
    Ok(crate::etag::json(
        HttpResponse::Created(),
        &ThreadResponse::from(thread),
    ))
}

/// Get a thread.
///
/// Returns the thread if it exists and belongs to the caller; any other
/// thread answers 404 exactly as a missing one.
#[utoipa::path(
    tag = "threads",
    operation_id = "get_thread",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    responses(
        (status = 304, description = "Not modified: `If-None-Match` names the thread's current `ETag` (empty body)"),
        (status = 200, description = "The thread", body = ThreadResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/threads/{thread_id}")]
pub async fn get_thread(
    caller: Caller,
    conditions: Conditions,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let org = query.0.organization_id;
    let thread = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            threads::find(conn, &scope, &id)?.ok_or(ApiError::ThreadNotFound(id))
        })
        .await?;
    Ok(conditions.answer(&ThreadResponse::from(thread)))
}

/// List threads.
///
/// The caller's threads in creation order (`desc` by default), one page at
/// a time. Walk with `after=<last_id>` until `has_more` is false: pages are
/// stable under concurrent inserts and cost the same at any depth.
#[utoipa::path(
    tag = "threads",
    operation_id = "list_threads",
    params(ListThreadsQuery,
           ("metadata[KEY]" = Option<String>, Query, description = "Only threads whose metadata holds KEY with this string value; up to 16, all must hold (for example `metadata[team]=support&metadata[tier]=gold`)")),
    responses(
        (status = 200, description = "One page of threads", body = ThreadListResponse),
        (status = 400, description = "`INVALID_REQUEST`: unknown cursor, or both `after` and `before`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (limit, order, booleans)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/threads")]
pub async fn list_threads(
    caller: Caller,
    request: actix_web::HttpRequest,
    query: QueryParams<ListThreadsQuery>,
) -> Result<web::Json<ThreadListResponse>> {
    let q = query.0;
    crate::dto::one_cursor(&q.after, &q.before)?;
    let limit = q.page_size();
    let (query, organization) = thread_query(request.query_string(), q)?;
    let page = caller
        .run(move |conn, who| {
            // A user token without organization_id lists across all its
            // organizations.
            let orgs = who.listing(organization.as_deref())?;
            Ok(threads::list_across(
                conn,
                &who.user_id,
                &orgs,
                Some(who.live),
                &query,
            )?)
        })
        .await?;
    Ok(web::Json(ThreadListResponse::new(page, limit)))
}

/// The list's page, order and filters from its query (`metadata[KEY]` from
/// the raw query string), and the organization it names: what
/// `GET /v1/threads` and the export (`GET /v1/threads/export`) parse alike.
pub(crate) fn thread_query(
    raw_query: &str,
    q: ListThreadsQuery,
) -> Result<(ThreadQuery, Option<String>)> {
    let metadata = crate::dto::metadata_filters(raw_query)?;
    let query = ThreadQuery {
        limit: q.page_size(),
        order: q.order.unwrap_or_default().into(),
        after: q.after,
        after_pk: None,
        before: q.before,
        assistant_id: q.assistant_id,
        visible_in_ui: q.visible_in_ui,
        is_pinned: q.is_pinned,
        include_deleted: q.include_deleted.unwrap_or(false),
        include_total: q.include_total.unwrap_or(false),
        workflow_id: q.workflow_id,
        // An empty search matches every title: no filter.
        search: q.search.filter(|s| !s.is_empty()),
        metadata,
        state: crate::dto::state_filter(q.state.as_deref())?,
        created_after: q.created_after,
        created_before: q.created_before,
        updated_after: q.updated_after,
    };
    Ok((query, q.organization_id))
}

/// Update a thread.
///
/// Partial update: absent or `null` fields stay as they are, `"title": ""`
/// clears the title, metadata merges (a key set to `null` is removed) and
/// the merged result must satisfy the metadata rules. `state` moves the
/// lifecycle (open<->locked, open/locked->archived). The assistant can
/// change only while the thread has no messages. Changing `visible_in_ui`
/// requires a user token.
#[utoipa::path(
    tag = "threads",
    operation_id = "update_thread",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    request_body = UpdateThreadRequest,
    responses(
        (status = 412, description = "`PRECONDITION_FAILED`: `If-Match` names no current version of the thread; nothing changed", body = ErrorResponse),
        (status = 200, description = "The updated thread", body = ThreadResponse),
        (status = 400, description = "`INVALID_STATE_TRANSITION`, `ASSISTANT_BINDING_LOCKED` or `INVALID_JSON`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED` or `BEARER_TOKEN_REQUIRED`", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND` or `ASSISTANT_NOT_FOUND`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (title, metadata, state)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[patch("/v1/threads/{thread_id}")]
pub async fn update_thread(
    state: web::Data<AppState>,
    caller: Caller,
    conditions: Conditions,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
    body: JsonBody<UpdateThreadRequest>,
) -> Result<HttpResponse> {
    let now = state.clock.now();
    let id = path.into_inner();
    let org = query.0.organization_id;
    let body = body.0;
    if body.visible_in_ui.is_some() {
        caller.require_user_token("visible_in_ui")?;
    }
    let limits = state.limits;
    let patch = ThreadPatch {
        title: parse_title(body.title, limits.max_title_chars)?,
        metadata: body.metadata,
        assistant_id: parse_assistant(body.assistant_id)?,
        visible_in_ui: body.visible_in_ui,
        state: body.state.map(Into::into),
    };
    let thread = caller
        .run(move |conn, who| -> Result<Thread> {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            if let Some(a) = &patch.assistant_id {
                threads::check_assistant(conn, &scope, a)?;
            }
            Ok(threads::update(conn, &scope, &id, |t| {
                conditions.check("thread", &ThreadResponse::from(t.clone()))?;
                t.apply(patch, &limits, now)
            })?)
        })
        .await?;
    Ok(crate::etag::json(
        HttpResponse::Ok(),
        &ThreadResponse::from(thread),
    ))
}

/// Delete a thread.
///
/// Soft delete: the thread and its messages vanish from every endpoint at
/// once (404) and are listed only with `include_deleted=true`, where they
/// carry `deleted_at`.
#[utoipa::path(
    tag = "threads",
    operation_id = "delete_thread",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    responses(
        (status = 412, description = "`PRECONDITION_FAILED`: `If-Match` names no current version of the thread; nothing changed", body = ErrorResponse),
        (status = 204, description = "Deleted (empty body)"),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[delete("/v1/threads/{thread_id}")]
pub async fn delete_thread(
    state: web::Data<AppState>,
    caller: Caller,
    conditions: Conditions,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<HttpResponse> {
    let now = state.clock.now();
    let id = path.into_inner();
    let org = query.0.organization_id;
    caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            Ok(threads::soft_delete_if(conn, &scope, &id, now, |t| {
                conditions.check("thread", &ThreadResponse::from(t.clone()))
            })?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete all of the caller's threads.
///
/// Soft-deletes every thread the caller created in the organization and
/// says how many. Other users' threads are untouched.
#[utoipa::path(
    tag = "threads",
    operation_id = "delete_all_threads",
    params(OrganizationQuery),
    responses(
        (status = 200, description = "How many threads were deleted", body = DeleteAllResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[delete("/v1/threads")]
pub async fn delete_all_threads(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<DeleteAllResponse>> {
    let now = state.clock.now();
    let org = query.0.organization_id;
    let deleted = caller
        .run(move |conn, who| {
            let scope = who.scope(org.as_deref())?;
            Ok(threads::soft_delete_all(conn, &scope, now)?)
        })
        .await?;
    Ok(web::Json(DeleteAllResponse {
        deleted,
        message: format!(
            "Deleted {deleted} thread{}",
            if deleted == 1 { "" } else { "s" }
        ),
    }))
}

fn pin_response(thread: Thread, message: &str) -> PinResponse {
    PinResponse {
        id: thread.id().to_string(),
        is_pinned: thread.is_pinned(),
        pinned_at: thread.pinned_at().map(crate::dto::timestamp),
        message: message.into(),
    }
}

/// Fork a thread.
///
/// Creates a thread of the caller that holds the parent's messages up to
/// and including `message_id` (default: the parent's newest message), then
/// its own. Nothing is copied: a fork of a 10,000-message thread costs what
/// a fork of a 10-message one does. Later edits, deletes and rewinds in
/// either thread never show in the other, and a fork keeps its history when
/// the parent is deleted and purged. The fork takes the parent's title,
/// metadata, assistant, visibility and incognito deadline unless the body
/// gives a title or metadata; it starts open, unpinned and read.
#[utoipa::path(
    tag = "threads",
    operation_id = "fork_thread",
    request_body = ForkThreadRequest,
    params(("thread_id" = String, Path, description = "The parent thread"), OrganizationQuery),
    responses(
        (status = 201, description = "The fork, with `forked_from`", body = ThreadResponse),
        (status = 400, description = "Malformed JSON (`INVALID_JSON`)", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`, or `MESSAGE_NOT_FOUND` for a `message_id` the parent does not hold", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (title, metadata)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/threads/{thread_id}/fork")]
pub async fn fork_thread(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
    body: JsonBody<ForkThreadRequest>,
) -> Result<HttpResponse> {
    let now = state.clock.now();
    let id = path.into_inner();
    let org = query.0.organization_id;
    let body = body.0;
    let limits = state.limits;
    let title = parse_title(body.title, limits.max_title_chars)?;
    let metadata = body
        .metadata
        .map(|m| Metadata::parse(m, &limits.metadata))
        .transpose()
        .map_err(DomainError::from)?;
    let message_id = body.message_id;
    let thread = caller
        .run(move |conn, who| -> Result<Thread> {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            Ok(skein_persistence::forks::fork(
                conn,
                &scope,
                &id,
                message_id.as_deref(),
                now,
                |parent, at| Ok(parent.fork(ThreadId::generate(), at, title, metadata, now)),
            )?)
        })
        .await?;
    Ok(crate::etag::json(
        HttpResponse::Created(),
        &ThreadResponse::from(thread),
    ))
}

/// Pin a thread.
///
/// At most 20 threads (configurable) can be pinned per user and
/// organization. Pinning a pinned thread changes nothing.
#[utoipa::path(
    tag = "threads",
    operation_id = "pin_thread",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    responses(
        (status = 200, description = "Pinned", body = PinResponse),
        (status = 400, description = "`PIN_LIMIT`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/threads/{thread_id}/pin")]
pub async fn pin_thread(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<PinResponse>> {
    let now = state.clock.now();
    let id = path.into_inner();
    let org = query.0.organization_id;
    let limits = state.limits;
    let thread = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            Ok(threads::pin(conn, &scope, &id, &limits, now)?)
        })
        .await?;
    Ok(web::Json(pin_response(thread, "Thread pinned")))
}

/// Unpin a thread.
///
/// Unpinning a thread that is not pinned changes nothing.
#[utoipa::path(
    tag = "threads",
    operation_id = "unpin_thread",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    responses(
        (status = 200, description = "Unpinned", body = PinResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/threads/{thread_id}/unpin")]
pub async fn unpin_thread(
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<PinResponse>> {
    let id = path.into_inner();
    let org = query.0.organization_id;
    let thread = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            Ok(threads::update(conn, &scope, &id, |t| Ok(t.unpin()))?)
        })
        .await?;
    Ok(web::Json(pin_response(thread, "Thread unpinned")))
}

/// The instruction given to a real model to name a thread.
const NAMING_PROMPT: &str = "Give this conversation a title of 2 to 5 words (at most 50 \
characters). Answer with the title only, without quotes.";

/// Generate a thread title.
///
/// Names the thread from the given messages, or from its last 10 messages,
/// and saves the title (2-5 words, at most 50 characters). With the built-in
/// echo model the title is made from the first user message; with a real
/// model, the thread's last model (or the default route) is asked for one.
#[utoipa::path(
    tag = "threads",
    operation_id = "generate_thread_name",
    params(("thread_id" = String, Path, description = "Thread id"), GenerateNameQuery),
    request_body(content = GenerateNameRequest, description = "Optional messages to name the thread from"),
    responses(
        (status = 200, description = "The new title, saved on the thread", body = GenerateNameResponse),
        (status = 400, description = "`INVALID_REQUEST`: nothing to name the thread from", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorResponse),
        (status = 502, description = "`UPSTREAM_ERROR`", body = ErrorResponse),
        (status = 504, description = "`UPSTREAM_TIMEOUT`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/threads/{thread_id}/generateName")]
pub async fn generate_thread_name(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<GenerateNameQuery>,
    body: JsonBody<GenerateNameRequest>,
) -> Result<web::Json<GenerateNameResponse>> {
    let now = state.clock.now();
    use skein_persistence::messages::{self, MessageQuery};
    use skein_providers::{ChatMessage, ModelRequest, Role};

    let id = path.into_inner();
    let org = query.0.organization_id;
    let given: Option<Vec<(MessageRole, String)>> = match body.0.messages {
        None => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, m)| {
                    let index = i.to_string();
                    let role = MessageRole::parse(&m.role).ok_or_else(|| {
                        ApiError::Validation(vec![FieldError::new(
                            &["body", "messages", &index, "role"],
                            "role must be 'user' or 'assistant'",
                        )])
                    })?;
                    let text = require_text(
                        Some(&m.content),
                        None,
                        &["body", "messages", &index, "content"],
                    )?;
                    Ok((role, text))
                })
                .collect::<Result<_>>()?,
        ),
    };
    let tid = id.clone();
    let (scope, thread, recent) = caller
        .run(move |conn, who| -> Result<_> {
            let s = who.thread_scope(conn, org.as_deref(), &tid)?;
            let thread = threads::find(conn, &s, &tid)?
                .ok_or_else(|| ApiError::ThreadNotFound(tid.clone()))?;
            let recent = if given.is_some() {
                Vec::new()
            } else {
                let page = messages::list(
                    conn,
                    &s,
                    &tid,
                    &MessageQuery {
                        limit: 10,
                        order: skein_persistence::ListOrder::Desc,
                        ..Default::default()
                    },
                )?;
                page.messages
                    .into_iter()
                    .rev()
                    .map(|m| (m.role, m.content))
                    .collect()
            };
            Ok((s, thread, given.unwrap_or(recent)))
        })
        .await?;
    let no_text =
        || ApiError::InvalidRequest("the thread has no messages to generate a name from".into());
    let first_user = recent
        .iter()
        .find(|(r, _)| *r == MessageRole::User)
        .or(recent.first())
        .map(|(_, t)| t.clone())
        .ok_or_else(no_text)?;
    let model = thread
        .last_model_used()
        .map_or_else(|| "default".to_string(), str::to_string);
    let title = match state
        .router
        .resolve(&model)
        .filter(|r| !r.provider.is_echo())
    {
        None => naming::title_from_text(&first_user),
        Some(resolved) => {
            let mut conversation = vec![ChatMessage::new(Role::System, NAMING_PROMPT)];
            conversation.extend(recent.iter().map(|(r, t)| {
                let role = match r {
                    MessageRole::User => Role::User,
                    MessageRole::Assistant => Role::Assistant,
                };
                ChatMessage::new(role, t.clone())
            }));
            conversation.push(ChatMessage::new(Role::User, NAMING_PROMPT));
            let answer = resolved
                .provider
                .complete(ModelRequest {
                    model: resolved.upstream_model.clone(),
                    messages: conversation,
                    temperature: Some(0.2),
                    top_p: None,
                    max_output_tokens: Some(24),
                })
                .await
                .map_err(skein_engine::EngineError::from)?;
            naming::clean_model_title(&answer.text).or_else(|| naming::title_from_text(&first_user))
        }
    }
    .ok_or_else(no_text)?;
    let limits = state.limits;
    let patch = ThreadPatch {
        title: Some(
            ThreadTitle::parse(title.clone(), limits.max_title_chars).map_err(DomainError::from)?,
        ),
        ..ThreadPatch::default()
    };
    let tid = id.clone();
    caller
        .run(move |conn, _| {
            Ok(threads::update(conn, &scope, &tid, |t| {
                t.apply(patch, &limits, now)
            })?)
        })
        .await?;
    Ok(web::Json(GenerateNameResponse {
        success: true,
        thread_id: id,
        name: title.clone(),
        title,
        message: "Thread name generated".into(),
    }))
}
