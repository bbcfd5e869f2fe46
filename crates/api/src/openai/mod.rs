//! OpenAI's dialect on the same store (contract section 10): a conversation
//! is a thread, an item is a message. The official `openai` SDKs work
//! against these paths unchanged; errors on them use OpenAI's envelope
//! ([`errors`]).

pub mod conversations;
pub mod errors;
pub mod items;
pub mod models;
pub mod responses;

use crate::error::{ApiError, FieldError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use skein_domain::context::ContextRole;
use skein_domain::{Message, MessageRole};

/// The paths of this dialect (their errors use OpenAI's envelope).
pub const PREFIXES: [&str; 3] = ["/v1/conversations", "/v1/responses", "/v1/models"];

/// Unix seconds, as OpenAI's objects carry their times.
pub(crate) fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// The query of OpenAI's cursor lists (conversations, items, input items).
#[derive(Debug, Default, Deserialize, validator::Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    /// Page size, 1-100 (default 20).
    #[serde(default)]
    #[validate(range(min = 1, max = 100, message = "limit must be between 1 and 100"))]
    pub limit: Option<u32>,
    /// `desc` (newest first, default) or `asc`.
    #[serde(default)]
    #[param(inline)]
    pub order: Option<crate::dto::OrderDto>,
    /// An id of the list: the page after it.
    #[serde(default)]
    pub after: Option<String>,
}

/// The query of `GET /v1/conversations` (Skein's list): as on
/// `GET /v1/threads`, `after` or `before`, and `include_total`.
#[derive(Debug, Default, Deserialize, validator::Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationsQuery {
    /// Page size, 1-100 (default 20).
    #[serde(default)]
    #[validate(range(min = 1, max = 100, message = "limit must be between 1 and 100"))]
    pub limit: Option<u32>,
    /// `desc` (newest first, default) or `asc`, by creation time.
    #[serde(default)]
    #[param(inline)]
    pub order: Option<crate::dto::OrderDto>,
    /// A conversation id: the page after it.
    #[serde(default)]
    pub after: Option<String>,
    /// A conversation id: the page before it.
    #[serde(default)]
    pub before: Option<String>,
    /// Count the matching conversations into `total`.
    #[serde(default, alias = "includeTotal")]
    pub include_total: Option<bool>,
}

/// At most this many items in one request (OpenAI's limit).
pub const MAX_ITEMS: usize = 20;

/// An input item as OpenAI's SDKs send it: `{"type": "message", "role",
/// "content"}` (`type` may be left out, as the Agents SDK does; `content` a
/// string or text parts). Other item types are not stored yet.
#[derive(Debug, Clone, Deserialize)]
pub struct InputItem {
    /// `message` (the default).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `user` or `assistant`.
    #[serde(default)]
    pub role: Option<String>,
    /// A string, or parts `{"type": "input_text" | "output_text" | "text", "text"}`.
    #[serde(default)]
    pub content: Option<Value>,
}

fn field(loc: &[&str], at: usize, name: &str, msg: impl Into<String>) -> ApiError {
    let index = at.to_string();
    let mut path: Vec<&str> = loc.to_vec();
    path.push(&index);
    path.push(name);
    ApiError::Validation(vec![FieldError::new(&path, msg)])
}

impl InputItem {
    /// The item's role and text as a model input (any of the four roles),
    /// or why it cannot be used. `loc` is where the list is (`["body",
    /// "input"]`), `at` the item's index.
    pub fn parse_input(self, loc: &[&str], at: usize) -> Result<(ContextRole, String), ApiError> {
        let kind = self.kind.as_deref().unwrap_or("message");
        if kind != "message" {
            return Err(ApiError::UnsupportedFeature(format!("item type {kind}")));
        }
        let role = match self.role.as_deref() {
            Some("user") => ContextRole::User,
            Some("assistant") => ContextRole::Assistant,
            Some("system") => ContextRole::System,
            Some("developer") => ContextRole::Developer,
            _ => {
                return Err(field(
                    loc,
                    at,
                    "role",
                    "role must be 'user', 'assistant', 'system' or 'developer'",
                ))
            }
        };
        let text = match self.content {
            Some(Value::String(s)) => s,
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (i, part) in parts.iter().enumerate() {
                    match (part["type"].as_str(), part["text"].as_str()) {
                        (Some("input_text" | "output_text" | "text"), Some(t)) => text.push_str(t),
                        (
                            Some(kind @ ("input_image" | "input_file" | "input_audio" | "refusal")),
                            _,
                        ) => {
                            return Err(ApiError::UnsupportedFeature(format!(
                                "content part type {kind}"
                            )))
                        }
                        _ => {
                            let index = i.to_string();
                            let item = at.to_string();
                            let mut path: Vec<&str> = loc.to_vec();
                            path.extend([item.as_str(), "content", index.as_str()]);
                            return Err(ApiError::Validation(vec![FieldError::new(
                                &path,
                                "a content part is {\"type\": \"input_text\" or \"output_text\", \"text\": string}",
                            )]));
                        }
                    }
                }
                text
            }
            _ => {
                return Err(field(
                    loc,
                    at,
                    "content",
                    "content must be a string or a list of text parts",
                ))
            }
        };
        Ok((role, text))
    }

    /// The item as a message to store: only `user` and `assistant`
    /// messages are kept in a conversation.
    pub fn parse(self, loc: &[&str], at: usize) -> Result<(MessageRole, String), ApiError> {
        match self.parse_input(loc, at)? {
            (ContextRole::User, text) => Ok((MessageRole::User, text)),
            (ContextRole::Assistant, text) => Ok((MessageRole::Assistant, text)),
            (ContextRole::System, _) => {
                Err(ApiError::UnsupportedFeature("role system in items".into()))
            }
            (ContextRole::Developer, _) => Err(ApiError::UnsupportedFeature(
                "role developer in items".into(),
            )),
        }
    }
}

/// A stored message as an OpenAI message item.
pub fn message_item(m: &Message) -> Value {
    let part = match m.role {
        MessageRole::User => json!({"type": "input_text", "text": m.content}),
        MessageRole::Assistant => {
            json!({"type": "output_text", "text": m.content, "annotations": []})
        }
    };
    json!({
        "type": "message",
        "id": m.id.as_str(),
        "status": "completed",
        "role": m.role.as_str(),
        "content": [part],
    })
}

/// The organization a request of this dialect names: the `OpenAI-Organization`
/// header (what the SDKs send for `organization=`), read as Skein's
/// `organization_id`. Without it, the caller's only organization.
#[derive(Debug, Clone, Default)]
pub struct Organization(pub Option<String>);

impl actix_web::FromRequest for Organization {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let named = req
            .headers()
            .get("openai-organization")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        std::future::ready(Ok(Self(named)))
    }
}
