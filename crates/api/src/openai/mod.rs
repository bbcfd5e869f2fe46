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
use serde_json::{json, Map, Value};
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
    /// Only conversations in this lifecycle state: `open`, `locked` or `archived`.
    #[serde(default)]
    #[param(example = "open")]
    pub state: Option<String>,
    /// Only conversations created after this time (RFC 3339).
    #[serde(default, alias = "createdAfter")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only conversations created before this time (RFC 3339).
    #[serde(default, alias = "createdBefore")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only conversations changed after this time (RFC 3339; `updated_at`).
    #[serde(default, alias = "updatedAfter")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub updated_after: Option<chrono::DateTime<chrono::Utc>>,
}

/// At most this many items in one request (OpenAI's limit).
pub const MAX_ITEMS: usize = 20;

/// A message item as OpenAI's SDKs send it: `{"type": "message", "role",
/// "content"}` (`type` may be left out, as the Agents SDK does; `content` a
/// string or text parts). Items of other types are read by [`parse_item`].
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
}

/// The role of a message item to store: only `user` and `assistant`
/// messages are kept in a conversation.
pub fn stored_role(role: ContextRole) -> Result<MessageRole, ApiError> {
    match role {
        ContextRole::User => Ok(MessageRole::User),
        ContextRole::Assistant => Ok(MessageRole::Assistant),
        ContextRole::System => Err(ApiError::UnsupportedFeature("role system in items".into())),
        ContextRole::Developer => Err(ApiError::UnsupportedFeature(
            "role developer in items".into(),
        )),
    }
}

/// An input item, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedItem {
    /// A message: who speaks and the text.
    Message(ContextRole, String),
    /// An item of another type (`function_call`, `function_call_output`,
    /// `reasoning`, ...), kept verbatim but for its `id`, which Skein gives.
    Item(Value),
}

/// Longest item type name.
const MAX_TYPE_LEN: usize = 64;

/// Reads one input item (at index `at` of the list at `loc`): a message, or
/// an item of another type kept as given. `function_call` needs string
/// `call_id`, `name` and `arguments`; `function_call_output` a string
/// `call_id` and an `output` (a string or content parts); any other type
/// (a lowercase name) is kept without checks but `item_reference`, which
/// would name an item Skein does not resolve (400 `unsupported_feature`).
/// A call or call output (`*_call`, `*_call_output`) without a `status`
/// is stored with `"status": "completed"`, as OpenAI stores it.
pub fn parse_item(value: Value, loc: &[&str], at: usize) -> Result<ParsedItem, ApiError> {
    let Value::Object(mut object) = value else {
        let index = at.to_string();
        let mut path: Vec<&str> = loc.to_vec();
        path.push(&index);
        return Err(ApiError::Validation(vec![FieldError::new(
            &path,
            "an item is an object with a 'type' (or a message without one)",
        )]));
    };
    let kind = match object.get("type") {
        None | Some(Value::Null) => "message".to_string(),
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(field(loc, at, "type", "type must be a string")),
    };
    if kind == "message" {
        let item: InputItem = serde_json::from_value(Value::Object(object))
            .map_err(|e| field(loc, at, "content", format!("not a message item: {e}")))?;
        let (role, text) = item.parse_input(loc, at)?;
        return Ok(ParsedItem::Message(role, text));
    }
    if kind.is_empty()
        || kind.len() > MAX_TYPE_LEN
        || !kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(field(
            loc,
            at,
            "type",
            "type must be 'message' or an item type name (lowercase letters, digits, '_')",
        ));
    }
    if kind == "item_reference" {
        return Err(ApiError::UnsupportedFeature(
            "item type item_reference".into(),
        ));
    }
    let string = |object: &Map<String, Value>, name: &str| matches!(object.get(name), Some(Value::String(s)) if !s.is_empty());
    match kind.as_str() {
        "function_call" => {
            for name in ["call_id", "name"] {
                if !string(&object, name) {
                    return Err(field(
                        loc,
                        at,
                        name,
                        format!("{name} must be a non-empty string"),
                    ));
                }
            }
            if !matches!(object.get("arguments"), Some(Value::String(_))) {
                return Err(field(
                    loc,
                    at,
                    "arguments",
                    "arguments must be a string (JSON text)",
                ));
            }
        }
        "function_call_output" => {
            if !string(&object, "call_id") {
                return Err(field(
                    loc,
                    at,
                    "call_id",
                    "call_id must be a non-empty string",
                ));
            }
            if !matches!(
                object.get("output"),
                Some(Value::String(_) | Value::Array(_))
            ) {
                return Err(field(
                    loc,
                    at,
                    "output",
                    "output must be a string or a list of content parts",
                ));
            }
        }
        _ => {}
    }
    object.remove("id");
    // A call or a call's output is complete once it is stored, and OpenAI's
    // SDKs need its `status`: given, it is kept; left out, it is this.
    if (kind.ends_with("_call") || kind.ends_with("_call_output")) && !object.contains_key("status")
    {
        object.insert("status".into(), Value::String("completed".into()));
    }
    Ok(ParsedItem::Item(Value::Object(object)))
}

/// A stored message as an OpenAI message item; an item of another type as
/// it was given, with Skein's id.
pub fn message_item(m: &Message) -> Value {
    if let Some(item) = &m.item {
        return with_id(item, m.id.as_str());
    }
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

/// A stored item as given, with `id` set to Skein's.
pub fn with_id(item: &Value, id: &str) -> Value {
    let mut item = item.clone();
    if let Value::Object(o) = &mut item {
        o.insert("id".into(), Value::String(id.to_string()));
    }
    item
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
