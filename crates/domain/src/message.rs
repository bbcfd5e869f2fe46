//! Messages: the stored user and assistant turns of a thread.

use crate::{DomainError, Limits, MessageId, Metadata, ThreadId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who wrote a stored message. System and developer inputs apply to the
/// request that carries them and are never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// The user.
    User,
    /// The model.
    Assistant,
}

impl MessageRole {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            _ => None,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Message id.
    pub id: MessageId,
    /// The thread it belongs to.
    pub thread_id: ThreadId,
    /// Position in the thread (1, 2, ...; gaps after deletes).
    pub seq: i64,
    /// User or assistant.
    pub role: MessageRole,
    /// The text.
    pub content: String,
    /// Token count of `content`, computed once when written.
    pub token_count: u32,
    /// User-defined key-value pairs.
    pub metadata: Metadata,
    /// Attachments (kept as given).
    pub attachments: Vec<Value>,
    /// The response that produced or consumed this message.
    pub response_id: Option<String>,
    /// The model that wrote it (assistant messages).
    pub model: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// A conversation item of another type than `message` (OpenAI's
    /// `function_call`, `function_call_output`, `reasoning`, ...), as the
    /// client gave it; `content` then holds its JSON text. `None` for every
    /// message. Items are hidden from the message endpoints.
    pub item: Option<Value>,
}

/// A message to append (already parsed and counted).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// A preset id (a turn names its answer before it is saved); one is
    /// generated when `None`.
    pub id: Option<MessageId>,
    /// User or assistant.
    pub role: MessageRole,
    /// The text (non-empty).
    pub content: String,
    /// Token count of `content`.
    pub token_count: u32,
    /// Metadata.
    pub metadata: Metadata,
    /// Attachments.
    pub attachments: Vec<Value>,
    /// The response it belongs to.
    pub response_id: Option<String>,
    /// The model that wrote it.
    pub model: Option<String>,
    /// A conversation item that is not a message (see [`Message::item`]).
    pub item: Option<Value>,
}

/// The role a conversation item is stored and sent with: the client's
/// (`user`) for the results it reports (`*_output` types), the model's
/// (`assistant`) for the rest (calls, reasoning).
pub fn item_role(kind: &str) -> MessageRole {
    if kind.ends_with("_output") {
        MessageRole::User
    } else {
        MessageRole::Assistant
    }
}

/// The type of a conversation item (`"message"` for a message).
pub fn item_kind(item: Option<&Value>) -> &str {
    item.and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("message")
}

impl NewMessage {
    /// A message with the given role and text, no metadata.
    pub fn text(role: MessageRole, content: String, token_count: u32) -> Self {
        Self {
            id: None,
            role,
            content,
            token_count,
            metadata: Metadata::empty(),
            attachments: Vec::new(),
            response_id: None,
            model: None,
            item: None,
        }
    }

    /// A conversation item that is not a message: `item` verbatim (its
    /// `type` names it), `json` its JSON text and `token_count` that
    /// text's tokens.
    pub fn item(item: Value, json: String, token_count: u32) -> Self {
        Self {
            role: item_role(item_kind(Some(&item))),
            item: Some(item),
            ..Self::text(MessageRole::User, json, token_count)
        }
    }

    /// Builds the stored message at position `seq`, created at `now`; a
    /// message without an id of its own gets `fresh_id()` (e.g.
    /// [`MessageId::generate`]).
    pub fn into_message(
        self,
        thread_id: ThreadId,
        seq: i64,
        now: DateTime<Utc>,
        fresh_id: impl FnOnce() -> MessageId,
    ) -> Message {
        Message {
            id: self.id.unwrap_or_else(fresh_id),
            thread_id,
            seq,
            role: self.role,
            content: self.content,
            token_count: self.token_count,
            metadata: self.metadata,
            attachments: self.attachments,
            response_id: self.response_id,
            model: self.model,
            created_at: now,
            updated_at: now,
            item: self.item,
        }
    }
}

/// A partial update of a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessagePatch {
    /// New text and its token count.
    pub content: Option<(String, u32)>,
    /// Merged into the metadata; `null` removes a key.
    pub metadata: Option<Map<String, Value>>,
}

impl Message {
    /// Applies a patch; any successful patch moves `updated_at`.
    pub fn apply(
        &self,
        patch: MessagePatch,
        limits: &Limits,
        now: DateTime<Utc>,
    ) -> Result<Message, DomainError> {
        let mut next = self.clone();
        if let Some((content, tokens)) = patch.content {
            if content.is_empty() {
                return Err(DomainError::InvalidMessage(
                    "message content must not be empty".into(),
                ));
            }
            next.content = content;
            next.token_count = tokens;
        }
        if let Some(changes) = patch.metadata {
            next.metadata = self.metadata.merge(changes, &limits.metadata)?;
        }
        next.updated_at = now;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use serde_json::json;

    fn message() -> Message {
        NewMessage::text(MessageRole::User, "hello".into(), 1).into_message(
            ThreadId::generate(),
            1,
            clock::now(),
            MessageId::generate,
        )
    }

    #[test]
    fn only_user_and_assistant_roles_exist() {
        assert_eq!(MessageRole::parse("user"), Some(MessageRole::User));
        assert_eq!(
            MessageRole::parse("assistant"),
            Some(MessageRole::Assistant)
        );
        assert_eq!(MessageRole::parse("system"), None);
        assert_eq!(MessageRole::parse("developer"), None);
    }

    #[test]
    fn a_patch_replaces_content_and_merges_metadata() {
        let m = message();
        let later = m.created_at + chrono::TimeDelta::seconds(1);
        let p = m
            .apply(
                MessagePatch {
                    content: Some(("bye".into(), 1)),
                    metadata: Some(json!({"k": "v"}).as_object().unwrap().clone()),
                },
                &Limits::default(),
                later,
            )
            .unwrap();
        assert_eq!(p.content, "bye");
        assert_eq!(p.metadata.to_value(), json!({"k": "v"}));
        assert_eq!(p.updated_at, later);
        assert_eq!(p.created_at, m.created_at);
    }

    #[test]
    fn content_cannot_be_emptied() {
        let r = message().apply(
            MessagePatch {
                content: Some((String::new(), 0)),
                ..Default::default()
            },
            &Limits::default(),
            clock::now(),
        );
        assert!(matches!(r, Err(DomainError::InvalidMessage(_))));
    }
}
