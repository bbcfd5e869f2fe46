//! `/v1/conversations`: create (with up to 20 items), retrieve, update
//! metadata, delete, and (beyond OpenAI) list. A conversation is a thread:
//! one created here is listed by `GET /v1/threads`, and any thread is
//! reachable here by its id.

use super::{parse_item, stored_role, unix, ParsedItem, MAX_ITEMS};
use crate::auth::Caller;
use crate::error::{ApiError, FieldError};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use actix_web::{delete, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use skein_domain::ids::random_base62;
use skein_domain::limits::DEFAULT_PAGE_SIZE;
use skein_domain::{
    DomainError, MessageRole, Metadata, NewMessage, NewThread, Thread, ThreadId, ThreadPatch,
};
use skein_engine::cpu;
use skein_persistence::{messages, threads, ListOrder, ThreadQuery};
use utoipa::ToSchema;

type Result<T> = std::result::Result<T, ApiError>;

/// A conversation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "conv_6fQk2mZp0aX9cVbN3sLr7TyW", "object": "conversation",
                          "created_at": 1764500000, "metadata": {"topic": "billing"}}))]
pub struct Conversation {
    /// The id (`conv_...`, or the id of a thread made elsewhere).
    pub id: String,
    /// Always `conversation`.
    pub object: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Key-value pairs (`{}` when empty).
    #[schema(value_type = Object)]
    pub metadata: Value,
}

impl From<Thread> for Conversation {
    fn from(t: Thread) -> Self {
        Self {
            id: t.id().as_str().to_string(),
            object: "conversation".into(),
            created_at: unix(t.created_at()),
            metadata: t.metadata().to_value(),
        }
    }
}

/// Body of `POST /v1/conversations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"metadata": {"topic": "billing"},
                          "items": [{"type": "message", "role": "user", "content": "Hello!"}]}))]
pub struct CreateConversation {
    /// Metadata rules as on threads (at most 16 keys, ...).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Up to 20 items stored first, in order: messages, and items of
    /// other types kept as given.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub items: Option<Vec<Value>>,
}

/// Body of `POST /v1/conversations/{conversation_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"metadata": {"topic": "refunds"}}))]
pub struct UpdateConversation {
    /// The new metadata, replacing the old (OpenAI's semantics); `null`
    /// leaves it as it is.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Answer of `DELETE /v1/conversations/{conversation_id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "conv_6fQk2mZp0aX9cVbN3sLr7TyW", "object": "conversation.deleted", "deleted": true}))]
pub struct ConversationDeleted {
    /// The conversation.
    pub id: String,
    /// Always `conversation.deleted`.
    pub object: String,
    /// Always true.
    pub deleted: bool,
}

/// A page of conversations.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [{"id": "conv_6fQk2mZp0aX9cVbN3sLr7TyW",
    "object": "conversation", "created_at": 1764500000, "metadata": {"team": "support"}}],
    "first_id": "conv_6fQk2mZp0aX9cVbN3sLr7TyW", "last_id": "conv_6fQk2mZp0aX9cVbN3sLr7TyW",
    "has_more": false, "total": null}))]
pub struct ConversationList {
    /// Always `list`.
    pub object: String,
    /// The conversations.
    pub data: Vec<Conversation>,
    /// The first id of the page.
    pub first_id: Option<String>,
    /// The last id of the page: pass it as `after`.
    pub last_id: Option<String>,
    /// More conversations exist beyond this page (after it, or with
    /// `before`, before it).
    pub has_more: bool,
    /// The number of matching conversations with `include_total=true`,
    /// else null.
    pub total: Option<i64>,
}

/// Parses and counts up to [`MAX_ITEMS`] items (at `loc`) into messages
/// and other conversation items.
pub(super) async fn new_messages(
    caller: &Caller,
    items: Vec<Value>,
    loc: &[&str],
) -> Result<Vec<NewMessage>> {
    if items.len() > MAX_ITEMS {
        return Err(ApiError::Validation(vec![FieldError::new(
            loc,
            format!("at most {MAX_ITEMS} items per request"),
        )]));
    }
    let parsed = items
        .into_iter()
        .enumerate()
        .map(|(at, item)| match parse_item(item, loc, at)? {
            ParsedItem::Message(role, text) => Ok((Some(stored_role(role)?), text, None)),
            ParsedItem::Item(item) => Ok((None, item.to_string(), Some(item))),
        })
        .collect::<Result<Vec<_>>>()?;
    caller
        .before_counting(parsed.iter().map(|(_, text, _)| text.len()).sum())
        .await?;
    let (kinds, texts): (Vec<_>, Vec<_>) = parsed
        .into_iter()
        .map(|(role, text, item)| ((role, item), text))
        .unzip();
    let (texts, counts) = cpu::count_tokens(texts).await?;
    Ok(kinds
        .into_iter()
        .zip(texts)
        .zip(counts)
        .map(|(((role, item), text), n)| match (role, item) {
            (_, Some(item)) => NewMessage::item(item, text, n),
            (role, None) => NewMessage::text(role.unwrap_or(MessageRole::User), text, n),
        })
        .collect())
}

/// Create a conversation.
///
/// A new thread (`conv_...`) with its metadata and up to 20 message items,
/// stored together or not at all.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_create_conversation",
    request_body = CreateConversation,
    responses(
        (status = 200, description = "The conversation", body = Conversation),
        (status = 400, description = "Invalid items or metadata, or an item type Skein does not store (OpenAI's envelope)", body = super::errors::OpenAiError),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/conversations")]
pub async fn create_conversation(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    body: JsonBody<CreateConversation>,
) -> Result<web::Json<Conversation>> {
    let now = state.clock.now();
    let body = body.0;
    let limits = state.limits;
    let metadata = body
        .metadata
        .map(|m| Metadata::parse(m, &limits.metadata))
        .transpose()
        .map_err(DomainError::from)?
        .unwrap_or_default();
    let new = new_messages(&caller, body.items.unwrap_or_default(), &["body", "items"]).await?;
    let id = ThreadId::parse(format!("conv_{}", random_base62(24))).map_err(DomainError::from)?;
    let thread = caller
        .run(move |conn, who| {
            let thread = Thread::new(
                NewThread {
                    id,
                    organization_id: who.organization(org.0.as_deref())?,
                    user_id: who.user_id.clone(),
                    title: None,
                    metadata,
                    assistant_id: None,
                    visible_in_ui: true,
                    workflow_id: None,
                    incognito_ttl: None,
                },
                now,
            );
            Ok(messages::create_with(conn, &thread, new, &limits, now)?.0)
        })
        .await?;
    Ok(web::Json(thread.into()))
}

/// Retrieve a conversation.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_retrieve_conversation",
    params(("conversation_id" = String, Path, description = "Conversation (thread) id")),
    responses(
        (status = 200, description = "The conversation", body = Conversation),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/conversations/{conversation_id}")]
pub async fn retrieve_conversation(
    caller: Caller,
    org: super::Organization,
    path: web::Path<String>,
) -> Result<web::Json<Conversation>> {
    let id = path.into_inner();
    let thread = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.0.as_deref(), &id)?;
            threads::find(conn, &scope, &id)?.ok_or(ApiError::ThreadNotFound(id))
        })
        .await?;
    Ok(web::Json(thread.into()))
}

/// Update a conversation.
///
/// Replaces its metadata (`null` keeps it). The thread's title, state and
/// the rest are left alone.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_update_conversation",
    params(("conversation_id" = String, Path, description = "Conversation (thread) id")),
    request_body = UpdateConversation,
    responses(
        (status = 200, description = "The conversation", body = Conversation),
        (status = 400, description = "Invalid metadata", body = super::errors::OpenAiError),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/conversations/{conversation_id}")]
pub async fn update_conversation(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    path: web::Path<String>,
    body: JsonBody<UpdateConversation>,
) -> Result<web::Json<Conversation>> {
    let now = state.clock.now();
    let limits = state.limits;
    let id = path.into_inner();
    let replacement = body.0.metadata;
    let thread = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.0.as_deref(), &id)?;
            Ok(threads::update(conn, &scope, &id, |t| {
                // A replacement as a merge: every old key not in the new
                // object is removed.
                let metadata = replacement.map(|new| {
                    let mut merge: Map<String, Value> = t
                        .metadata()
                        .to_value()
                        .as_object()
                        .map(|old| old.keys().map(|k| (k.clone(), Value::Null)).collect())
                        .unwrap_or_default();
                    merge.extend(new);
                    merge
                });
                t.apply(
                    ThreadPatch {
                        metadata,
                        ..ThreadPatch::default()
                    },
                    &limits,
                    now,
                )
            })?)
        })
        .await?;
    Ok(web::Json(thread.into()))
}

/// Delete a conversation.
///
/// A soft delete of the thread, as `DELETE /v1/threads/{id}`: gone from
/// every read at once, purged after the grace period.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_delete_conversation",
    params(("conversation_id" = String, Path, description = "Conversation (thread) id")),
    responses(
        (status = 200, description = "Deleted", body = ConversationDeleted),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[delete("/v1/conversations/{conversation_id}")]
pub async fn delete_conversation(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    path: web::Path<String>,
) -> Result<web::Json<ConversationDeleted>> {
    let now = state.clock.now();
    let id = path.into_inner();
    let deleted = id.clone();
    caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.0.as_deref(), &id)?;
            Ok(threads::soft_delete(conn, &scope, &id, now)?)
        })
        .await?;
    Ok(web::Json(ConversationDeleted {
        id: deleted,
        object: "conversation.deleted".into(),
        deleted: true,
    }))
}

/// List conversations (not in OpenAI's API).
///
/// The caller's conversations, which are all of its threads, newest first
/// by default; walk with `after=<last_id>` while `has_more`;
/// `metadata[KEY]=VALUE` filters (up to 16, all must hold).
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_list_conversations",
    params(super::ConversationsQuery,
           ("metadata[KEY]" = Option<String>, Query, description = "Only conversations whose metadata holds KEY with this string value; up to 16, all must hold")),
    responses(
        (status = 200, description = "One page", body = ConversationList),
        (status = 400, description = "Bad `limit` or `order`, or an unknown cursor", body = super::errors::OpenAiError),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/conversations")]
pub async fn list_conversations(
    caller: Caller,
    org: super::Organization,
    request: actix_web::HttpRequest,
    query: QueryParams<super::ConversationsQuery>,
) -> Result<web::Json<ConversationList>> {
    let metadata = crate::dto::metadata_filters(request.query_string())?;
    let q = query.0;
    crate::dto::one_cursor(&q.after, &q.before)?;
    let query = ThreadQuery {
        limit: q.limit.unwrap_or(DEFAULT_PAGE_SIZE),
        order: q.order.map_or(ListOrder::Desc, Into::into),
        after: q.after,
        before: q.before,
        include_total: q.include_total.unwrap_or(false),
        metadata,
        state: crate::dto::state_filter(q.state.as_deref())?,
        created_after: q.created_after,
        created_before: q.created_before,
        updated_after: q.updated_after,
        ..ThreadQuery::default()
    };
    let page = caller
        .run(move |conn, who| {
            let orgs = who.listing(org.0.as_deref())?;
            Ok(threads::list_across(
                conn,
                &who.user_id,
                &orgs,
                Some(who.live),
                &query,
            )?)
        })
        .await?;
    let data: Vec<Conversation> = page.threads.into_iter().map(Into::into).collect();
    Ok(web::Json(ConversationList {
        object: "list".into(),
        first_id: data.first().map(|c| c.id.clone()),
        last_id: data.last().map(|c| c.id.clone()),
        data,
        has_more: page.has_more,
        total: page.total,
    }))
}
