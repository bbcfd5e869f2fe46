//! `/v1/conversations/{conversation_id}/items`: add, list, retrieve and
//! delete a conversation's items, which are its thread's messages.

use super::conversations::{new_messages, Conversation};
use super::message_item;
use crate::auth::Caller;
use crate::error::{ApiError, FieldError};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use actix_web::{delete, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skein_domain::limits::DEFAULT_PAGE_SIZE;
use skein_persistence::messages::{self, MessageQuery};
use skein_persistence::ListOrder;
use utoipa::ToSchema;

type Result<T> = std::result::Result<T, ApiError>;

/// Body of `POST /v1/conversations/{conversation_id}/items`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"items": [{"type": "message", "role": "user", "content": "And another thing"}]}))]
pub struct AddItems {
    /// 1 to 20 items, appended in order: messages, and items of other
    /// types (`function_call`, `function_call_output`, `reasoning`, ...)
    /// kept as given.
    #[schema(value_type = Vec<Object>)]
    pub items: Option<Vec<Value>>,
}

/// A page of items.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [
    {"type": "message", "id": "msg_3kQ9aZp0mX2cVbN8sLr7TyWd", "status": "completed", "role": "assistant",
     "content": [{"type": "output_text", "text": "Hello Ann", "annotations": []}]},
    {"type": "message", "id": "msg_0aX9cVbN3sLr7TyW6fQk2mZp", "status": "completed", "role": "user",
     "content": [{"type": "input_text", "text": "My name is Ann."}]}],
    "first_id": "msg_3kQ9aZp0mX2cVbN8sLr7TyWd", "last_id": "msg_0aX9cVbN3sLr7TyW6fQk2mZp", "has_more": false}))]
pub struct ItemList {
    /// Always `list`.
    pub object: String,
    /// Message items: `{"type": "message", "id", "status": "completed",
    /// "role", "content": [{"type": "input_text" | "output_text", "text"}]}`.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
    /// The first item's id.
    pub first_id: Option<String>,
    /// The last item's id: pass it as `after`.
    pub last_id: Option<String>,
    /// More items exist after this page.
    pub has_more: bool,
}

impl ItemList {
    /// A page of `data`.
    pub fn page(data: Vec<Value>, has_more: bool) -> Self {
        let id = |v: Option<&Value>| v.and_then(|i| i["id"].as_str()).map(str::to_string);
        Self {
            object: "list".into(),
            first_id: id(data.first()),
            last_id: id(data.last()),
            data,
            has_more,
        }
    }
}

/// Add items.
///
/// Appends 1 to 20 message items to the conversation, all or none (the
/// thread must be open and below its message limit, as for
/// `POST /v1/threads/{id}/messages`).
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_create_items",
    params(("conversation_id" = String, Path, description = "Conversation (thread) id")),
    request_body = AddItems,
    responses(
        (status = 200, description = "The stored items", body = ItemList),
        (status = 400, description = "Invalid items, too many, or an item type Skein does not store", body = super::errors::OpenAiError),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found`", body = super::errors::OpenAiError),
        (status = 423, description = "`thread_locked` or `thread_archived`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/conversations/{conversation_id}/items")]
pub async fn create_items(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    path: web::Path<String>,
    body: JsonBody<AddItems>,
) -> Result<web::Json<ItemList>> {
    let now = state.clock.now();
    let limits = state.limits;
    let id = path.into_inner();
    let items = body.0.items.unwrap_or_default();
    if items.is_empty() {
        return Err(ApiError::Validation(vec![FieldError::new(
            &["body", "items"],
            "items must hold 1 to 20 items",
        )]));
    }
    let new = new_messages(&caller, items, &["body", "items"]).await?;
    let (_, stored) = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.0.as_deref(), &id)?;
            Ok(messages::append(conn, &scope, &id, new, &limits, now)?)
        })
        .await?;
    Ok(web::Json(ItemList::page(
        stored.iter().map(message_item).collect(),
        false,
    )))
}

/// List items.
///
/// Newest first by default; walk with `after=<last_id>` while `has_more`.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_list_items",
    params(("conversation_id" = String, Path, description = "Conversation (thread) id"), super::CursorQuery),
    responses(
        (status = 200, description = "One page", body = ItemList),
        (status = 400, description = "Bad `limit` or `order`, or an unknown cursor", body = super::errors::OpenAiError),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/conversations/{conversation_id}/items")]
pub async fn list_items(
    caller: Caller,
    org: super::Organization,
    path: web::Path<String>,
    query: QueryParams<super::CursorQuery>,
) -> Result<web::Json<ItemList>> {
    let id = path.into_inner();
    let q = query.0;
    let query = MessageQuery {
        limit: q.limit.unwrap_or(DEFAULT_PAGE_SIZE),
        order: q.order.map_or(ListOrder::Desc, Into::into),
        after: q.after,
        before: None,
        items: true,
    };
    let page = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.0.as_deref(), &id)?;
            Ok(messages::list(conn, &scope, &id, &query)?)
        })
        .await?;
    Ok(web::Json(ItemList::page(
        page.messages.iter().map(message_item).collect(),
        page.has_more,
    )))
}

/// Retrieve an item.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_retrieve_item",
    params(("conversation_id" = String, Path, description = "Conversation (thread) id"),
           ("item_id" = String, Path, description = "Item (message) id")),
    responses(
        (status = 200, description = "The item", body = Object),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found` or `item_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/conversations/{conversation_id}/items/{item_id}")]
pub async fn retrieve_item(
    caller: Caller,
    org: super::Organization,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Value>> {
    let (id, item) = path.into_inner();
    let message = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.0.as_deref(), &id)?;
            Ok(messages::find_entry(conn, &scope, &id, &item, true)?)
        })
        .await?;
    Ok(web::Json(message_item(&message)))
}

/// Delete an item.
///
/// Removes the message from the conversation (the thread must be open);
/// answers the conversation.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_delete_item",
    params(("conversation_id" = String, Path, description = "Conversation (thread) id"),
           ("item_id" = String, Path, description = "Item (message) id")),
    responses(
        (status = 200, description = "The conversation", body = Conversation),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found` or `item_not_found`", body = super::errors::OpenAiError),
        (status = 423, description = "`thread_locked` or `thread_archived`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[delete("/v1/conversations/{conversation_id}/items/{item_id}")]
pub async fn delete_item(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Conversation>> {
    let now = state.clock.now();
    let (id, item) = path.into_inner();
    let thread = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.0.as_deref(), &id)?;
            Ok(messages::delete_entry(
                conn,
                &scope,
                &id,
                &item,
                true,
                now,
                |_| Ok(()),
            )?)
        })
        .await?;
    Ok(web::Json(thread.into()))
}
