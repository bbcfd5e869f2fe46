//! Wire types of `/v1/threads/{thread_id}/messages`.

use super::content::{ContentInput, TextPart};
use super::{timestamp, OrderDto};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use skein_domain::Message;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// A stored message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "msg_3kQ9aZp0mX2cVbN8sLr7TyWd", "object": "thread.message",
    "thread_id": "thread_6fQk2mZp0aX9cVbN3sLr7TyW", "role": "user", "content": "Hello!",
    "created_at": "2025-11-17T10:00:00.000Z", "updated_at": "2025-11-17T10:00:00.000Z",
    "metadata": {}, "attachments": [], "response_id": null, "model": null
}))]
pub struct MessageResponse {
    /// Message id.
    pub id: String,
    /// Always `thread.message`.
    pub object: String,
    /// The thread.
    pub thread_id: String,
    /// `user` or `assistant`.
    pub role: String,
    /// The text (text parts joined).
    pub content: String,
    /// Creation time.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Key-value pairs (`{}` when empty).
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Attachments (`[]` when none).
    #[schema(value_type = Vec<Object>)]
    pub attachments: Vec<Value>,
    /// The response that produced or consumed it.
    pub response_id: Option<String>,
    /// The model that wrote it.
    pub model: Option<String>,
}

impl From<Message> for MessageResponse {
    fn from(m: Message) -> Self {
        Self {
            id: m.id.into_string(),
            object: "thread.message".into(),
            thread_id: m.thread_id.into_string(),
            role: m.role.as_str().into(),
            content: m.content,
            created_at: timestamp(m.created_at),
            updated_at: timestamp(m.updated_at),
            metadata: m.metadata.to_value(),
            attachments: m.attachments,
            response_id: m.response_id,
            model: m.model,
        }
    }
}

/// A page of messages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageListResponse {
    /// Always `list`.
    pub object: String,
    /// The messages.
    pub data: Vec<MessageResponse>,
    /// First id of the page.
    pub first_id: Option<String>,
    /// Last id of the page: pass it as `after` for the next one.
    pub last_id: Option<String>,
    /// More messages exist beyond this page.
    pub has_more: bool,
}

/// How message content is rendered.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputModeDto {
    /// Text (default).
    Text,
    /// Plain text.
    Plain,
    /// Blocks.
    Blocks,
}

/// Query of the message list.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMessagesQuery {
    /// Organization (defaults to the caller's only one).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Page size, 1-100 (default 20).
    #[serde(default)]
    #[validate(range(min = 1, max = 100, message = "limit must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// `asc` (oldest first, default) or `desc`.
    #[serde(default)]
    #[param(inline)]
    pub order: Option<OrderDto>,
    /// Message id: the page after it.
    #[serde(default)]
    pub after: Option<String>,
    /// Message id: the page before it.
    #[serde(default)]
    pub before: Option<String>,
    /// `text` (default), `plain` or `blocks`; content is a string in every mode.
    #[serde(default, alias = "outputMode")]
    #[param(inline)]
    pub output_mode: Option<OutputModeDto>,
}

/// Body of `POST /v1/threads/{thread_id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"role": "user", "content": "Imported question", "metadata": {"source": "import"}}))]
pub struct CreateMessageRequest {
    /// `user` or `assistant`.
    pub role: String,
    /// The text, or text blocks.
    #[serde(default)]
    pub content: Option<ContentInput>,
    /// Alternatively, text parts.
    #[serde(default)]
    pub texts: Option<Vec<TextPart>>,
    /// Key-value pairs.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Body of `PATCH /v1/threads/{thread_id}/messages/{message_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"content": "Corrected text", "metadata": {"edited": true}}))]
pub struct UpdateMessageRequest {
    /// New text (replaces the old).
    #[serde(default)]
    pub content: Option<ContentInput>,
    /// Alternatively, text parts.
    #[serde(default)]
    pub texts: Option<Vec<TextPart>>,
    /// Merged into the metadata; `null` removes a key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Answer of a message delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "msg_3kQ9aZp0mX2cVbN8sLr7TyWd", "deleted": true, "object": "thread.message.deleted"}))]
pub struct DeleteMessageResponse {
    /// The deleted message.
    pub id: String,
    /// Always true.
    pub deleted: bool,
    /// Always `thread.message.deleted`.
    pub object: String,
}
