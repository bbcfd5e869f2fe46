//! Wire types of `/v1/model/response`.

use super::content::{text_of, ContentInput, TextPart};
use crate::error::{ApiError, FieldError};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use skein_domain::context::{ContextMode, ContextRole};
use skein_domain::turn::RequestedSettings;
use skein_domain::{AssistantId, DomainError, Limits, Metadata, ThreadId, WorkflowId};
use skein_engine::{CancelOutcome, Completed, Target, TurnInput, TurnRequest};
use skein_persistence::turns::Rewind;
use utoipa::ToSchema;

/// One input item: a role and its text, as `content` (string or blocks) or
/// `texts`. An item of the output shape (`{"type": "message", "role":
/// "assistant", "content": [{"type": "output_text", "text"}]}`) is accepted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct InputItem {
    /// `user`, `assistant`, `system` or `developer`.
    pub role: String,
    /// The text, or text blocks.
    #[serde(default)]
    pub content: Option<ContentInput>,
    /// Alternatively, text parts.
    #[serde(default)]
    pub texts: Option<Vec<TextPart>>,
    /// `message` for output-shaped items (ignored).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A thread named by id, optionally with metadata for its creation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ThreadRef {
    /// Just the id.
    Id(String),
    /// Id and metadata (used when the thread is created by this request).
    Object {
        /// Thread id (1-128 characters of `[A-Za-z0-9_.:-]`).
        id: String,
        /// Metadata for a new thread.
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        metadata: Option<Map<String, Value>>,
    },
}

/// Body of `POST /v1/model/response`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "model": "gpt-4.1", "thread": "support_user123",
    "inputs": [{"role": "user", "texts": [{"text": "What did I ask you before?"}]}]
}))]
pub struct CreateResponseRequest {
    /// The new inputs (required, non-empty).
    pub inputs: Vec<InputItem>,
    /// Model name, routed to a provider (default: the default route).
    #[serde(default)]
    pub model: Option<String>,
    /// The thread: an id or `{id, metadata}`; created on first use.
    #[serde(default, alias = "thread_id", alias = "threadId")]
    pub thread: Option<ThreadRef>,
    /// Chain from a previous thread-less response (not with a thread).
    #[serde(default, alias = "previousResponseId")]
    pub previous_response_id: Option<String>,
    /// State to apply to the thread after this turn is saved.
    #[serde(default, alias = "threadState")]
    pub thread_state: Option<super::StateDto>,
    /// Organization (defaults to the caller's only one).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Assistant: binds on a new or empty thread; must match otherwise.
    #[serde(default, alias = "assistantId")]
    pub assistant_id: Option<String>,
    /// System instructions (override the assistant's).
    #[serde(default)]
    pub instructions: Option<String>,
    /// Sampling temperature (overrides the assistant's).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, alias = "topP")]
    pub top_p: Option<f64>,
    /// Output token limit.
    #[serde(
        default,
        alias = "maxTokens",
        alias = "max_output_tokens",
        alias = "maxOutputSynapses",
        alias = "max_tokens"
    )]
    pub max_output_synapses: Option<u32>,
    /// Answer as `text/event-stream`.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Keep a thread-less response for chaining (default true).
    #[serde(default)]
    pub store: Option<bool>,
    /// Stored on the response.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Output token limit (the name OpenAI uses); wins over
    /// `max_output_synapses` when both are given.
    #[serde(default, alias = "maxCompletionTokens")]
    pub max_completion_tokens: Option<u32>,
    /// How much of the thread's history goes in front of the inputs:
    /// `full` (default: as much as the window holds), `off` (none),
    /// `recent` or `saver` (the last 10 messages), `smart` or `auto` (the
    /// first 3 and the last 7). Always cut to the window too.
    #[serde(default, alias = "threadContextMode")]
    #[schema(example = "recent")]
    pub thread_context_mode: Option<String>,
    /// Rewind: the thread continues after this message; every message after
    /// it is removed with the turn's commit (needs a thread).
    #[serde(default, alias = "previousMessageId")]
    pub previous_message_id: Option<String>,
    /// Rewind: this user message and every message after it are replaced by
    /// the new inputs, with the turn's commit (needs a thread).
    #[serde(default, alias = "editMessageId")]
    pub edit_message_id: Option<String>,
    /// An opaque label for the thread this response creates (no effect on
    /// an existing thread or without a thread).
    #[serde(default, alias = "workflowId")]
    pub workflow_id: Option<String>,
    /// The thread this response creates is incognito: deleted for good
    /// `SKEIN_INCOGNITO_TTL` (default 24 h) after its creation (no effect
    /// on an existing thread or without a thread).
    #[serde(default, alias = "isIncognito")]
    pub is_incognito: Option<bool>,
    /// Not supported: 400 `UNSUPPORTED_FEATURE` when present and not empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
    /// Not supported: 400 `UNSUPPORTED_FEATURE` when present and not empty.
    #[serde(default, alias = "systemTools")]
    #[schema(value_type = Option<Object>)]
    pub system_tools: Option<Value>,
    /// Not supported: 400 `UNSUPPORTED_FEATURE` when present and not empty.
    #[serde(default, alias = "vectorStoreIds")]
    #[schema(value_type = Option<Vec<String>>)]
    pub vector_store_ids: Option<Value>,
    /// Not supported: 400 `UNSUPPORTED_FEATURE` when present and not empty.
    #[serde(default, alias = "spaceId")]
    #[schema(value_type = Option<String>)]
    pub space_id: Option<Value>,
    /// Not supported: 400 `UNSUPPORTED_FEATURE` when present and not empty.
    #[serde(default, alias = "sliceIds")]
    #[schema(value_type = Option<Vec<String>>)]
    pub slice_ids: Option<Value>,
    /// Not supported: 400 `UNSUPPORTED_FEATURE` when present and not empty.
    #[serde(default, alias = "skillIds")]
    #[schema(value_type = Option<Vec<String>>)]
    pub skill_ids: Option<Value>,
    /// Not supported: 400 `UNSUPPORTED_FEATURE` when present and not empty.
    #[serde(default, alias = "forceSkillId")]
    #[schema(value_type = Option<String>)]
    pub force_skill_id: Option<Value>,
}

/// A text part of an output message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputText {
    /// Always `output_text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: String,
    /// Always empty.
    #[schema(value_type = Vec<Object>)]
    pub annotations: Vec<Value>,
}

/// An output message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputMessage {
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Message id (the stored assistant message in a thread).
    pub id: String,
    /// `completed` or `incomplete`.
    pub status: String,
    /// Always `assistant`.
    pub role: String,
    /// The text parts.
    pub content: Vec<OutputText>,
}

/// Token usage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageDto {
    /// Tokens sent to the model.
    pub input_tokens: u32,
    /// Tokens the model wrote.
    pub output_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

/// A model response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "resp_4mQ0aZp9xX2cVbN8sLr7TyWd", "object": "response", "created_at": 1741476542,
    "status": "completed", "model": "gpt-4.1", "thread_id": "thread_6fQk2mZp0aX9cVbN3sLr7TyW",
    "previous_response_id": null,
    "output": [{"type": "message", "id": "msg_3kQ9aZp0mX2cVbN8sLr7TyWd", "status": "completed",
                "role": "assistant", "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}],
    "usage": {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}, "error": null, "metadata": {}
}))]
pub struct ResponseObject {
    /// Response id.
    pub id: String,
    /// Always `response`.
    pub object: String,
    /// Creation time in unix seconds.
    pub created_at: i64,
    /// `completed`.
    pub status: String,
    /// The requested model name.
    pub model: String,
    /// The thread, or null for a thread-less response.
    pub thread_id: Option<String>,
    /// The response this one continues.
    pub previous_response_id: Option<String>,
    /// The answer.
    pub output: Vec<OutputMessage>,
    /// Token usage.
    pub usage: UsageDto,
    /// Always null on success.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// The request's metadata.
    #[schema(value_type = Object)]
    pub metadata: Value,
}

/// Answer of a cancel.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"success": true, "cancel_mode": "quick_edit", "elapsed_seconds": 1.2,
                          "user_message_deleted": true, "assistant_response_deleted": true,
                          "partial_content_saved": false}))]
pub struct CancelResponse {
    /// Always true.
    pub success: bool,
    /// `quick_edit` (within 5 s: nothing kept) or `keep_partial`.
    pub cancel_mode: String,
    /// Seconds from the start of the response.
    pub elapsed_seconds: f64,
    /// The user input of the turn was not saved.
    pub user_message_deleted: bool,
    /// The assistant answer was not saved.
    pub assistant_response_deleted: bool,
    /// A partial answer was saved.
    pub partial_content_saved: bool,
}

/// One output mode.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputMode {
    /// Name.
    pub mode: String,
    /// What it does.
    pub description: String,
    /// The default one.
    pub is_default: bool,
}

/// `GET /v1/model/response/output-modes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputModesResponse {
    /// Always true.
    pub success: bool,
    /// The modes.
    pub output_modes: Vec<OutputMode>,
}

/// One reasoning level.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReasoningLevel {
    /// Name.
    pub level: String,
    /// What it does.
    pub description: String,
    /// The default one.
    pub is_default: bool,
}

/// `GET /v1/model/response/reasoning-levels`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReasoningLevelsResponse {
    /// Always true.
    pub success: bool,
    /// The levels.
    pub reasoning_levels: Vec<ReasoningLevel>,
}

/// The JSON of one `text/event-stream` frame of `POST /v1/model/response`
/// with `stream: true`. Each frame is `event: <name>` then `data: <json>`;
/// the JSON repeats the name in `event` and carries a growing
/// `sequence_number`. After the last event the stream sends `data: [DONE]`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"event": "response.content_delta", "sequence_number": 2,
                          "response_id": "resp_4mQ0aZp9xX2cVbN8sLr7TyWd", "delta": "Hel"}))]
pub struct ResponseStreamEvent {
    /// `response.created`, `response.content_delta`, `response.heartbeat`
    /// (after 15 s of silence), `response.completed`, `response.error` or
    /// `response.cancelled`.
    pub event: String,
    /// 1, 2, 3, ... within the stream.
    pub sequence_number: u64,
    /// `response.created`, `response.content_delta`, `response.cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// `response.created`: the thread, or null without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// `response.content_delta`: the next piece of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
    /// `response.completed`: the full response object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseObject>,
    /// `response.error`: always `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `response.error`: the error code (`UPSTREAM_ERROR`, `UPSTREAM_TIMEOUT`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `response.error`: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CreateResponseRequest {
    /// The thread this request names, if any.
    pub fn thread_id(&self) -> Option<&str> {
        self.thread.as_ref().map(|t| match t {
            ThreadRef::Id(id) | ThreadRef::Object { id, .. } => id.as_str(),
        })
    }

    /// The wire request as the engine's [`TurnRequest`]: every field
    /// parsed, every rule of the wire checked (422 with `loc`, or 400 for
    /// fields that exclude each other).
    pub fn into_turn(
        self,
        limits: &Limits,
        incognito_ttl: TimeDelta,
    ) -> Result<TurnRequest, ApiError> {
        for (field, value) in [
            ("tools", &self.tools),
            ("system_tools", &self.system_tools),
            ("vector_store_ids", &self.vector_store_ids),
            ("space_id", &self.space_id),
            ("slice_ids", &self.slice_ids),
            ("skill_ids", &self.skill_ids),
            ("force_skill_id", &self.force_skill_id),
        ] {
            if value.as_ref().is_some_and(not_empty) {
                return Err(ApiError::UnsupportedFeature(field.into()));
            }
        }
        let context_mode = match self.thread_context_mode.as_deref() {
            None => ContextMode::Full,
            Some(mode) => ContextMode::parse(mode).ok_or_else(|| {
                ApiError::Validation(vec![FieldError::new(
                    &["body", "thread_context_mode"],
                    "thread_context_mode must be full, off, recent, saver, smart or auto",
                )])
            })?,
        };
        let rewind = match (&self.previous_message_id, &self.edit_message_id) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest(
                    "use either previous_message_id or edit_message_id, not both".into(),
                ))
            }
            (Some(id), None) => Some(Rewind {
                message_id: id.clone(),
                replace: false,
            }),
            (None, Some(id)) => Some(Rewind {
                message_id: id.clone(),
                replace: true,
            }),
            (None, None) => None,
        };
        if rewind.is_some() && self.thread.is_none() {
            return Err(ApiError::InvalidRequest(
                if self.previous_response_id.is_some() {
                    "previous_message_id and edit_message_id rewind a thread: they cannot be used with previous_response_id".into()
                } else {
                    "previous_message_id and edit_message_id rewind a thread: name the thread"
                        .into()
                },
            ));
        }
        if self.inputs.is_empty() {
            return Err(ApiError::Validation(vec![FieldError::new(
                &["body", "inputs"],
                "inputs must not be empty",
            )]));
        }
        let inputs = self
            .inputs
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = |field: &str| vec![json!("body"), json!("inputs"), json!(i), json!(field)];
                let role = match item.role.as_str() {
                    "user" => ContextRole::User,
                    "assistant" => ContextRole::Assistant,
                    "system" => ContextRole::System,
                    "developer" => ContextRole::Developer,
                    _ => {
                        return Err(ApiError::Validation(vec![FieldError {
                            loc: at("role"),
                            msg: "role must be user, assistant, system or developer".into(),
                            kind: "value_error".into(),
                        }]))
                    }
                };
                let text = text_of(item.content.as_ref(), item.texts.as_deref()).ok_or_else(|| {
                    ApiError::Validation(vec![FieldError {
                        loc: at("content"),
                        msg: "text content is required (content as a string or text blocks, or texts)".into(),
                        kind: "value_error".into(),
                    }])
                })?;
                Ok(TurnInput::text(role, text))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let target = match (self.thread, self.previous_response_id) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest(
                    "use either a thread or previous_response_id, not both".into(),
                ))
            }
            (Some(thread), None) => {
                let (id, metadata) = match thread {
                    ThreadRef::Id(id) => (id, None),
                    ThreadRef::Object { id, metadata } => (id, metadata),
                };
                let id = ThreadId::parse(id).map_err(|e| {
                    ApiError::Validation(vec![FieldError::new(&["body", "thread"], e.to_string())])
                })?;
                let metadata = metadata
                    .map(|m| Metadata::parse(m, &limits.metadata))
                    .transpose()
                    .map_err(DomainError::from)?
                    .unwrap_or_default();
                let workflow_id = self
                    .workflow_id
                    .map(WorkflowId::parse)
                    .transpose()
                    .map_err(|e| {
                        ApiError::Validation(vec![FieldError::new(&["body", "workflow_id"], e)])
                    })?;
                Target::Thread {
                    id,
                    metadata,
                    workflow_id,
                    incognito_ttl: (self.is_incognito == Some(true)).then_some(incognito_ttl),
                    create: true,
                }
            }
            (None, Some(previous_response_id)) => Target::Chain {
                previous_response_id,
            },
            (None, None) => Target::Threadless,
        };
        let assistant = self
            .assistant_id
            .map(|a| AssistantId::parse(a.clone()).map_err(|_| ApiError::AssistantNotFound(a)))
            .transpose()?;
        let settings = RequestedSettings::new(
            self.model,
            self.instructions,
            self.temperature,
            self.top_p,
            self.max_completion_tokens.or(self.max_output_synapses),
        )
        .map_err(|e| {
            ApiError::Validation(vec![FieldError::new(&["body", e.field()], e.to_string())])
        })?;
        Ok(TurnRequest {
            target,
            inputs,
            assistant,
            settings,
            thread_state: self.thread_state.map(Into::into),
            store: self.store.unwrap_or(true),
            metadata: self.metadata.unwrap_or_default(),
            context_mode,
            rewind,
            truncate: true,
        })
    }
}

/// A value that asks for something: not null, not an empty string, list
/// or object.
fn not_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

impl From<Completed> for ResponseObject {
    fn from(c: Completed) -> Self {
        Self {
            id: c.response_id,
            object: "response".into(),
            created_at: c.created_at.timestamp(),
            status: "completed".into(),
            model: c.model,
            thread_id: c.thread_id,
            previous_response_id: c.previous_response_id,
            output: vec![OutputMessage {
                kind: "message".into(),
                id: c.message_id,
                status: "completed".into(),
                role: "assistant".into(),
                content: vec![OutputText {
                    kind: "output_text".into(),
                    text: c.text,
                    annotations: Vec::new(),
                }],
            }],
            usage: UsageDto {
                input_tokens: c.usage.input_tokens,
                output_tokens: c.usage.output_tokens,
                total_tokens: c.usage.total_tokens,
            },
            error: None,
            metadata: c.metadata,
        }
    }
}

impl From<CancelOutcome> for CancelResponse {
    fn from(o: CancelOutcome) -> Self {
        Self {
            success: true,
            cancel_mode: o.mode.as_str().into(),
            elapsed_seconds: o.elapsed_seconds,
            user_message_deleted: o.user_message_deleted,
            assistant_response_deleted: o.assistant_response_deleted,
            partial_content_saved: o.partial_content_saved,
        }
    }
}

/// One item of a preview's context.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreviewItem {
    /// `system`, `developer`, `user`, `assistant`, or `tool` for a
    /// function call's output (a call is the assistant's).
    pub role: String,
    /// `instructions`, `input` or `history`.
    pub source: String,
    /// The stored message it comes from (history of a thread), else null.
    pub message_id: Option<String>,
    /// Its tokens (o200k_base, no per-message overhead).
    pub tokens: u32,
    /// The text sent (a conversation item's JSON text).
    pub content: String,
}

/// Stored history a preview's turn would not send.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreviewDropped {
    /// Messages (and conversation items) left out.
    pub messages: u64,
    /// Their tokens.
    pub tokens: u64,
}

/// What `POST /v1/model/response` would send to its model.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "model": "gpt-4o", "provider": "openai", "context_window": 128000, "max_output": null,
    "items": [
        {"role": "system", "source": "instructions", "message_id": null, "tokens": 5, "content": "Answer briefly."},
        {"role": "user", "source": "history", "message_id": "msg_0aX9cVbN3sLr7TyW6fQk2mZp", "tokens": 6, "content": "My name is Ann."},
        {"role": "assistant", "source": "history", "message_id": "msg_3kQ9aZp0mX2cVbN8sLr7TyWd", "tokens": 3, "content": "Hello Ann"},
        {"role": "user", "source": "input", "message_id": null, "tokens": 6, "content": "What is my name?"}],
    "dropped": {"messages": 0, "tokens": 0}, "total_tokens": 20
}))]
pub struct PreviewResponse {
    /// The model the turn would run with.
    pub model: String,
    /// The provider serving it (its name in the routing configuration).
    pub provider: String,
    /// The model's context window in tokens.
    pub context_window: u32,
    /// The output limit that applies (request, assistant), if any.
    pub max_output: Option<u32>,
    /// The context in the order the model gets it.
    pub items: Vec<PreviewItem>,
    /// Stored history left out (cut to the window or by `thread_context_mode`,
    /// or conversation items no model takes).
    pub dropped: PreviewDropped,
    /// The sum of the items' tokens.
    pub total_tokens: u32,
}

impl From<skein_engine::Preview> for PreviewResponse {
    fn from(p: skein_engine::Preview) -> Self {
        let items = p
            .context
            .into_iter()
            .zip(p.sources)
            .map(|(item, source)| PreviewItem {
                role: match (item.role, skein_domain::item_kind(item.item.as_ref())) {
                    (_, "function_call_output") => "tool",
                    (ContextRole::System, _) => "system",
                    (ContextRole::Developer, _) => "developer",
                    (ContextRole::User, _) => "user",
                    (ContextRole::Assistant, _) => "assistant",
                }
                .to_string(),
                source: source.as_str().to_string(),
                message_id: item.id,
                tokens: item.tokens,
                content: item.content,
            })
            .collect();
        Self {
            model: p.model,
            provider: p.provider,
            context_window: p.context_window,
            max_output: p.max_output_tokens,
            items,
            dropped: PreviewDropped {
                messages: p.dropped.messages,
                tokens: p.dropped.tokens,
            },
            total_tokens: p.input_tokens,
        }
    }
}
