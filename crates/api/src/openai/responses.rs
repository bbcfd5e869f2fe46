//! `/v1/responses`: OpenAI's Responses API on the turn engine. The same
//! turn as `POST /v1/model/response` (lease, whole-turn commit, lifecycle,
//! caps, the 24 h chain), one engine, another front door: this module only
//! parses OpenAI's request and renders the turn in OpenAI's shapes.

use super::{parse_item, unix, ParsedItem};
use crate::auth::Caller;
use crate::error::{ApiError, FieldError};
use crate::extract::{JsonBody, QueryParams};
use crate::handlers::responses::{settle, spawn_reported, sse};
use crate::state::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use skein_domain::context::{ContextMode, ContextRole};
use skein_domain::turn::RequestedSettings;
use skein_domain::{DomainError, Metadata, ResponseId, ThreadId};
use skein_engine::turn::answer_id;
use skein_engine::{
    Completed, EventReader, PublicFailure, Sequenced, Target, TurnEvent, TurnInput, TurnRequest,
};
use skein_persistence::responses::{self, StoredResponse};
use utoipa::ToSchema;

type Result<T> = std::result::Result<T, ApiError>;

/// Body of `POST /v1/responses`. Fields OpenAI defines and Skein does not
/// list here (`include`, `parallel_tool_calls`, `reasoning`, `user`,
/// `service_tier`, `stream_options`, ...) are accepted and have no effect;
/// the ones that would change the answer and are not implemented (`tools`,
/// a `tool_choice` other than `none`/`auto`, a `text.format` other than
/// `text`, `prompt`, `background`) are refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"model": "gpt-4.1", "input": "Say hello in French."}))]
pub struct CreateResponse {
    /// Model name, routed like every model (default: the default route).
    #[serde(default)]
    pub model: Option<String>,
    /// A string (one user message) or message items (roles `user`,
    /// `assistant`, `system`, `developer`; `system` and `developer` apply
    /// to this response only).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// System instructions for this response.
    #[serde(default)]
    pub instructions: Option<String>,
    /// A conversation id (or `{"id"}`): its history goes in front, and the
    /// turn is saved into it whole. It must exist.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub conversation: Option<Value>,
    /// Continue a stored response (not with `conversation`).
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// Keep the response for `GET` and chaining (default true).
    #[serde(default)]
    pub store: Option<bool>,
    /// Answer as server-sent events with OpenAI's event names.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Stored with the response.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Output token limit.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// `auto` (default): the oldest history is cut to the window;
    /// `disabled`: a context that does not fit is refused (400).
    #[serde(default)]
    pub truncation: Option<String>,
    /// Not supported (400).
    #[serde(default)]
    pub background: Option<bool>,
    /// Not supported when not empty (400 `unsupported_feature`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Value>,
    /// `none` or `auto` only.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    /// Only `{"format": {"type": "text"}}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub text: Option<Value>,
    /// Not supported (400 `unsupported_feature`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub prompt: Option<Value>,
}

/// What the answer repeats of the request.
#[derive(Debug, Clone)]
struct Shape {
    id: String,
    created_at: i64,
    model: String,
    conversation: Option<String>,
    previous_response_id: Option<String>,
    instructions: Option<String>,
    metadata: Value,
    store: bool,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_output_tokens: Option<u32>,
    truncation: &'static str,
}

impl Shape {
    /// OpenAI's response object.
    fn object(
        &self,
        status: &str,
        output: Vec<Value>,
        usage: Option<Value>,
        error: Value,
    ) -> Value {
        self.object_at(status, None, output, usage, error)
    }

    /// [`Shape::object`] with the time it completed.
    fn object_at(
        &self,
        status: &str,
        completed_at: Option<i64>,
        output: Vec<Value>,
        usage: Option<Value>,
        error: Value,
    ) -> Value {
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": completed_at,
            "status": status,
            "model": self.model,
            "output": output,
            "usage": usage,
            "conversation": self.conversation.as_ref().map(|c| json!({"id": c})),
            "previous_response_id": self.previous_response_id,
            "metadata": self.metadata,
            "error": error,
            "incomplete_details": null,
            "instructions": self.instructions,
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_output_tokens": self.max_output_tokens,
            "store": self.store,
            "truncation": self.truncation,
            "text": {"format": {"type": "text"}},
        })
    }

    fn completed(&self, done: &Completed) -> Value {
        let usage = &done.usage;
        self.object_at(
            "completed",
            Some(unix(done.completed_at.unwrap_or(done.created_at))),
            vec![output_item(&done.message_id, &done.text, "completed")],
            Some(usage_object(
                usage.input_tokens,
                usage.output_tokens,
                usage.total_tokens,
            )),
            Value::Null,
        )
    }
}

/// OpenAI's usage object.
fn usage_object(input: u32, output: u32, total: u32) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total,
    })
}

impl Shape {}

/// The answer as an output message item.
fn output_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

fn field(name: &str, msg: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(&["body", name], msg)])
}

impl CreateResponse {
    /// The engine's request, and what the answer repeats. Every rule of
    /// the wire is checked here (400 in OpenAI's envelope).
    fn into_turn(self, limits: &skein_domain::Limits) -> Result<(TurnRequest, Shape)> {
        if self.background == Some(true) {
            return Err(ApiError::InvalidRequest(
                "background responses are not supported: leave 'background' out and wait for \
                 the answer, or stream it"
                    .into(),
            ));
        }
        if self
            .tools
            .as_ref()
            .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(ApiError::UnsupportedFeature("tools".into()));
        }
        match self.tool_choice.as_ref() {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "none" || s == "auto" => {}
            Some(_) => return Err(ApiError::UnsupportedFeature("tool_choice".into())),
        }
        if let Some(text) = &self.text {
            let kind = &text["format"]["type"];
            if !(kind.is_null() || kind == "text") {
                return Err(ApiError::UnsupportedFeature("text.format".into()));
            }
        }
        if self.prompt.as_ref().is_some_and(|p| !p.is_null()) {
            return Err(ApiError::UnsupportedFeature("prompt".into()));
        }
        let truncate = match self.truncation.as_deref() {
            None | Some("auto") => true,
            Some("disabled") => false,
            Some(_) => {
                return Err(field(
                    "truncation",
                    "truncation must be 'auto' or 'disabled'",
                ))
            }
        };
        let inputs = match self.input {
            Some(Value::String(text)) => vec![TurnInput::text(ContextRole::User, text)],
            Some(Value::Array(items)) if !items.is_empty() => items
                .into_iter()
                .enumerate()
                .map(
                    |(at, item)| match parse_item(item, &["body", "input"], at)? {
                        ParsedItem::Message(role, text) => Ok(TurnInput::text(role, text)),
                        ParsedItem::Item(item) => Ok(TurnInput::item(item)),
                    },
                )
                .collect::<Result<Vec<_>>>()?,
            _ => {
                return Err(field(
                    "input",
                    "input is required: a string or a non-empty list of message items",
                ))
            }
        };
        let conversation = match self.conversation {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id),
            Some(Value::Object(o)) => match o.get("id") {
                Some(Value::String(id)) => Some(id.clone()),
                _ => {
                    return Err(field(
                        "conversation",
                        "conversation must be an id or {\"id\"}",
                    ))
                }
            },
            Some(_) => {
                return Err(field(
                    "conversation",
                    "conversation must be an id or {\"id\"}",
                ))
            }
        };
        let target = match (&conversation, &self.previous_response_id) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest(
                    "use either 'conversation' or 'previous_response_id', not both".into(),
                ))
            }
            (Some(id), None) => Target::Thread {
                // An id that cannot exist names no conversation.
                id: ThreadId::parse(id.clone())
                    .map_err(|_| ApiError::ThreadNotFound(id.clone()))?,
                metadata: Metadata::default(),
                workflow_id: None,
                incognito_ttl: None,
                create: false,
            },
            (None, Some(previous)) => Target::Chain {
                previous_response_id: previous.clone(),
            },
            (None, None) => Target::Threadless,
        };
        let metadata = self
            .metadata
            .map(|m| Metadata::parse(m, &limits.metadata))
            .transpose()
            .map_err(DomainError::from)?
            .unwrap_or_default()
            .to_value();
        let settings = RequestedSettings::new(
            self.model,
            self.instructions.clone(),
            self.temperature,
            self.top_p,
            self.max_output_tokens,
        )
        .map_err(|e| field(e.field(), e.to_string()))?;
        let store = self.store.unwrap_or(true);
        let shape = Shape {
            id: String::new(),
            created_at: 0,
            model: String::new(),
            conversation,
            previous_response_id: self.previous_response_id,
            instructions: self.instructions,
            metadata: metadata.clone(),
            store,
            temperature: self.temperature,
            top_p: self.top_p,
            max_output_tokens: self.max_output_tokens,
            truncation: if truncate { "auto" } else { "disabled" },
        };
        let request = TurnRequest {
            target,
            inputs,
            assistant: None,
            settings,
            thread_state: None,
            store,
            metadata: metadata.as_object().cloned().unwrap_or_default(),
            context_mode: ContextMode::Full,
            rewind: None,
            truncate,
        };
        Ok((request, shape))
    }
}

/// Create a response.
///
/// A model turn in OpenAI's shape: with `conversation` the conversation's
/// history goes in front and the turn is saved into it whole (the thread's
/// busy lease serialises turns: 409 while one runs; locked or archived
/// conversations answer 423); with `previous_response_id` it continues a
/// stored response (24 h); otherwise it stands alone. With `stream: true`
/// the answer is `text/event-stream` with OpenAI's event names
/// (`response.created` ... `response.completed` or `response.failed`),
/// each with `type` and `sequence_number`.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_create_response",
    request_body = CreateResponse,
    responses(
        (status = 200, description = "OpenAI's response object, or with `stream: true` its event stream (`event: <type>` / `data: <json>` frames)",
         content(
             (Object = "application/json", example = json!({
                 "id": "resp_UxcR9L6m0qZ6qjjSm5buLo2q", "object": "response", "created_at": 1764500000,
                 "completed_at": 1764500001, "status": "completed", "model": "gpt-4.1",
                 "output": [{"type": "message", "id": "msg_UxcR9L6m0qZ6qjjSm5buLo2q", "status": "completed",
                             "role": "assistant", "content": [{"type": "output_text", "text": "Your name is Ann.",
                                                               "annotations": [], "logprobs": []}]}],
                 "usage": {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                           "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 14},
                 "conversation": {"id": "conv_6fQk2mZp0aX9cVbN3sLr7TyW"}, "previous_response_id": null,
                 "metadata": {}, "error": null, "incomplete_details": null, "instructions": null,
                 "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "temperature": null, "top_p": null,
                 "max_output_tokens": null, "store": true, "truncation": "auto", "text": {"format": {"type": "text"}}})),
             (String = "text/event-stream", example = "event: response.output_text.delta\ndata: {\"type\": \"response.output_text.delta\", \"item_id\": \"msg_UxcR9L6m0qZ6qjjSm5buLo2q\", \"output_index\": 0, \"content_index\": 0, \"delta\": \"Your \", \"logprobs\": [], \"sequence_number\": 4}\n\n"),
         )),
        (status = 400, description = "Invalid request, unsupported field, context too long (OpenAI's envelope)", body = super::errors::OpenAiError),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found`, `response_not_found`, `model_not_found`", body = super::errors::OpenAiError),
        (status = 409, description = "A response is already running in the conversation", body = super::errors::OpenAiError),
        (status = 423, description = "The conversation is locked or archived", body = super::errors::OpenAiError),
        (status = 502, description = "The provider failed; nothing was saved", body = super::errors::OpenAiError),
        (status = 504, description = "The provider did not answer in time; nothing was saved", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/responses")]
pub async fn create_response(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    body: JsonBody<CreateResponse>,
) -> Result<HttpResponse> {
    let body = body.0;
    let stream = body.stream.unwrap_or(false);
    let (request, mut shape) = body.into_turn(&state.limits)?;
    caller.before_counting(request.text_bytes()).await?;
    let whose = scope_of(&caller, org, shape.conversation.clone());
    let turn = state.engine().open(request, whose).await?;
    shape.id = turn.response_id().to_string();
    shape.created_at = unix(turn.created_at());
    shape.model = turn.model().to_string();
    let item_id = turn.answer_id().to_string();
    let (events, task) = spawn_reported(turn);
    if stream {
        return Ok(sse(event_stream(events.reader(0), shape, item_id)));
    }
    Ok(match settle(task).await? {
        Ok(done) => HttpResponse::Ok().json(shape.completed(&done)),
        Err(answer) => answer,
    })
}

/// Whose turn it is: the conversation's scope (found in any of a token
/// user's organizations), else the caller's one organization.
fn scope_of(
    caller: &Caller,
    org: super::Organization,
    conversation: Option<String>,
) -> impl FnOnce(&mut skein_persistence::DbConnection) -> Result<skein_persistence::Scope> + Send + 'static
{
    caller.within(move |conn, who| match &conversation {
        Some(id) => who.thread_scope(conn, org.0.as_deref(), id),
        None => who.scope(org.0.as_deref()),
    })
}

/// OpenAI's error object inside a failed response: OpenAI's own codes.
fn failure_error(code: &str, message: &str) -> Value {
    let code = match code {
        "RATE_LIMITED" => "rate_limit_exceeded",
        _ => "server_error",
    };
    json!({"code": code, "message": message})
}

/// The turn's events as OpenAI's stream: numbered from 0, `event:` and the
/// same `type` in the JSON. A heartbeat is an SSE comment.
fn event_stream(
    mut events: EventReader,
    shape: Shape,
    item_id: String,
) -> impl futures_util::Stream<Item = std::result::Result<web::Bytes, actix_web::Error>> {
    async_stream::stream! {
        let mut sequence: u64 = 0;
        let mut text = String::new();
        let mut frame = |payload: Value| {
            let kind = payload["type"].as_str().unwrap_or_default().to_string();
            let mut payload = payload;
            if let Value::Object(map) = &mut payload {
                map.insert("sequence_number".into(), Value::from(sequence));
            }
            sequence += 1;
            Ok(web::Bytes::from(format!("event: {kind}\ndata: {payload}\n\n")))
        };
        while let Some(batch) = events.next().await {
            for Sequenced { event, .. } in batch {
                match event {
                    TurnEvent::Created { .. } => {
                        let started = shape.object("in_progress", Vec::new(), None, Value::Null);
                        yield frame(json!({"type": "response.created", "response": started}));
                        yield frame(json!({"type": "response.in_progress", "response": started}));
                        yield frame(json!({"type": "response.output_item.added", "output_index": 0,
                            "item": {"type": "message", "id": item_id, "status": "in_progress",
                                     "role": "assistant", "content": []}}));
                        yield frame(json!({"type": "response.content_part.added", "item_id": item_id,
                            "output_index": 0, "content_index": 0,
                            "part": {"type": "output_text", "text": "", "annotations": []}}));
                    }
                    TurnEvent::Delta(delta) => {
                        text.push_str(&delta);
                        yield frame(json!({"type": "response.output_text.delta", "item_id": item_id,
                            "output_index": 0, "content_index": 0, "delta": delta, "logprobs": []}));
                    }
                    TurnEvent::Heartbeat => yield Ok(web::Bytes::from_static(b": keep-alive\n\n")),
                    TurnEvent::Completed(done) => {
                        yield frame(json!({"type": "response.output_text.done", "item_id": item_id,
                            "output_index": 0, "content_index": 0, "text": done.text, "logprobs": []}));
                        yield frame(json!({"type": "response.content_part.done", "item_id": item_id,
                            "output_index": 0, "content_index": 0,
                            "part": {"type": "output_text", "text": done.text, "annotations": []}}));
                        yield frame(json!({"type": "response.output_item.done", "output_index": 0,
                            "item": output_item(&item_id, &done.text, "completed")}));
                        yield frame(json!({"type": "response.completed", "response": shape.completed(&done)}));
                    }
                    TurnEvent::Failed(PublicFailure { code, message }) => {
                        let failed = shape.object("failed", Vec::new(), None, failure_error(&code, &message));
                        yield frame(json!({"type": "response.failed", "response": failed}));
                    }
                    TurnEvent::Interrupted => {
                        let failed = shape.object("failed", Vec::new(), None, failure_error(
                            "RESPONSE_INTERRUPTED",
                            "The response was interrupted: the server running it went away",
                        ));
                        yield frame(json!({"type": "response.failed", "response": failed}));
                    }
                    TurnEvent::Cancelled(_) => {
                        let failed = shape.object("failed", Vec::new(), None, failure_error(
                            "CANCELLED",
                            "The response was cancelled",
                        ));
                        yield frame(json!({"type": "response.failed", "response": failed}));
                    }
                }
            }
        }
    }
}

/// A stored response in OpenAI's shape: what creating it answered.
fn stored_object(r: &StoredResponse) -> Result<Value> {
    let id = ResponseId::parse(r.id.clone()).map_err(DomainError::from)?;
    let asked = &r.settings;
    let shape = Shape {
        id: r.id.clone(),
        created_at: unix(r.created_at),
        model: r.model.clone(),
        conversation: r.thread_id.clone(),
        previous_response_id: r.previous_response_id.clone(),
        instructions: asked["instructions"].as_str().map(str::to_string),
        metadata: if r.metadata.is_object() {
            r.metadata.clone()
        } else {
            json!({})
        },
        store: true,
        temperature: asked["temperature"].as_f64(),
        top_p: asked["top_p"].as_f64(),
        max_output_tokens: asked["max_output_tokens"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok()),
        truncation: if asked["truncation"] == "disabled" {
            "disabled"
        } else {
            "auto"
        },
    };
    Ok(shape.object_at(
        "completed",
        Some(asked["completed_at"].as_i64().unwrap_or(shape.created_at)),
        vec![output_item(
            answer_id(&id).as_str(),
            &r.output_text,
            "completed",
        )],
        Some(usage_object(
            r.input_tokens,
            r.output_tokens,
            r.total_tokens,
        )),
        Value::Null,
    ))
}

/// The caller's stored response (within the response TTL), or 404.
async fn load(
    state: &AppState,
    caller: &Caller,
    org: super::Organization,
    id: String,
) -> Result<StoredResponse> {
    let not_before = state.clock.now() - state.response_ttl;
    caller
        .run(move |conn, who| {
            let scope = who.scope(org.0.as_deref())?;
            responses::find(conn, &scope, &id, not_before)?.ok_or(ApiError::ResponseNotFound(id))
        })
        .await
}

/// Retrieve a response.
///
/// A stored response (`store` not false), for 24 hours: its answer, its
/// conversation and the response it continued.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_retrieve_response",
    params(("response_id" = String, Path, description = "Response id")),
    responses(
        (status = 200, description = "The response", body = Object),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`response_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/responses/{response_id}")]
pub async fn retrieve_response(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    path: web::Path<String>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Result<web::Json<Value>> {
    if query.get("stream").is_some_and(|v| v == "true") {
        return Err(ApiError::UnsupportedFeature(
            "stream=true on a stored response".into(),
        ));
    }
    let stored = load(&state, &caller, org, path.into_inner()).await?;
    Ok(web::Json(stored_object(&stored)?))
}

/// Answer of `DELETE /v1/responses/{response_id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "resp_UxcR9L6m0qZ6qjjSm5buLo2q", "object": "response.deleted", "deleted": true}))]
pub struct ResponseDeleted {
    /// The response.
    pub id: String,
    /// Always `response.deleted`.
    pub object: String,
    /// Always true.
    pub deleted: bool,
}

/// Delete a response.
///
/// Removes the stored response (it can no longer be retrieved or
/// continued); a conversation's messages stay in the conversation.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_delete_response",
    params(("response_id" = String, Path, description = "Response id")),
    responses(
        (status = 200, description = "Deleted", body = ResponseDeleted),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`response_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[delete("/v1/responses/{response_id}")]
pub async fn delete_response(
    caller: Caller,
    org: super::Organization,
    path: web::Path<String>,
) -> Result<web::Json<ResponseDeleted>> {
    let id = path.into_inner();
    let deleted = id.clone();
    caller
        .run(move |conn, who| {
            let scope = who.scope(org.0.as_deref())?;
            if responses::delete(conn, &scope, &id)? {
                Ok(())
            } else {
                Err(ApiError::ResponseNotFound(id))
            }
        })
        .await?;
    Ok(web::Json(ResponseDeleted {
        id: deleted,
        object: "response.deleted".into(),
        deleted: true,
    }))
}

/// List a response's input items.
///
/// The user and assistant inputs the response was created with (system
/// and developer inputs and instructions are not kept), each with an id of
/// its own: `msg_<response>_<n>`.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_list_input_items",
    params(("response_id" = String, Path, description = "Response id"), super::CursorQuery),
    responses(
        (status = 200, description = "One page", body = super::items::ItemList),
        (status = 400, description = "Bad `limit`, `order` or `after`", body = super::errors::OpenAiError),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`response_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/responses/{response_id}/input_items")]
pub async fn list_input_items(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    path: web::Path<String>,
    query: QueryParams<super::CursorQuery>,
) -> Result<web::Json<super::items::ItemList>> {
    let q = query.0;
    let stored = load(&state, &caller, org, path.into_inner()).await?;
    let id = ResponseId::parse(stored.id.clone()).map_err(DomainError::from)?;
    let base = answer_id(&id);
    let mut items: Vec<Value> = stored
        .inputs
        .iter()
        .enumerate()
        .map(|(n, input)| {
            let id = format!("{}_{n}", base.as_str());
            if let Some(item) = &input.item {
                return super::with_id(item, &id);
            }
            let part = match input.role {
                skein_domain::MessageRole::User => {
                    json!({"type": "input_text", "text": input.content})
                }
                skein_domain::MessageRole::Assistant => {
                    json!({"type": "output_text", "text": input.content, "annotations": []})
                }
            };
            json!({"type": "message", "id": id, "status": "completed",
                   "role": input.role.as_str(), "content": [part]})
        })
        .collect();
    if q.order.unwrap_or(crate::dto::OrderDto::Desc) == crate::dto::OrderDto::Desc {
        items.reverse();
    }
    let start = match &q.after {
        None => 0,
        Some(after) => {
            items
                .iter()
                .position(|i| i["id"] == after.as_str())
                .ok_or_else(|| {
                    ApiError::InvalidRequest(format!(
                        "'after' names no input item of this response: {after}"
                    ))
                })?
                + 1
        }
    };
    let limit = usize::try_from(q.limit.unwrap_or(20)).unwrap_or(20);
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = items.len() > start + page.len();
    Ok(web::Json(super::items::ItemList::page(page, has_more)))
}

/// Answer of `POST /v1/responses/input_tokens`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "response.input_tokens", "input_tokens": 42}))]
pub struct InputTokens {
    /// Always `response.input_tokens`.
    pub object: String,
    /// The tokens of the context the model would receive.
    pub input_tokens: u32,
}

/// Count a response's input tokens.
///
/// Builds the context `POST /v1/responses` would send for the same body
/// (the conversation's or the chain's history cut to the window, the
/// instructions, the input) without running the model, taking the
/// conversation's lease or saving anything, and counts it as Skein counts
/// (o200k_base): the `input_tokens` the echo model reports for that turn.
/// What the turn would refuse (a locked or archived conversation, one at its
/// item limit) is refused the same way.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_count_input_tokens",
    request_body = CreateResponse,
    responses(
        (status = 200, description = "The count", body = InputTokens),
        (status = 400, description = "Invalid request, unsupported field, context too long with truncation disabled", body = super::errors::OpenAiError),
        (status = 401, description = "Missing or invalid credentials", body = super::errors::OpenAiError),
        (status = 404, description = "`conversation_not_found`, `response_not_found`, `model_not_found`", body = super::errors::OpenAiError),
        (status = 423, description = "The conversation is locked or archived (as for the turn)", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/responses/input_tokens")]
pub async fn count_input_tokens(
    state: web::Data<AppState>,
    caller: Caller,
    org: super::Organization,
    body: JsonBody<CreateResponse>,
) -> Result<web::Json<InputTokens>> {
    let (request, shape) = body.0.into_turn(&state.limits)?;
    caller.before_counting(request.text_bytes()).await?;
    let preview = state
        .engine()
        .preview(request, scope_of(&caller, org, shape.conversation), true)
        .await?;
    Ok(web::Json(InputTokens {
        object: "response.input_tokens".into(),
        input_tokens: preview.input_tokens,
    }))
}
