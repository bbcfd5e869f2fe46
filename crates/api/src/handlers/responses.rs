//! `POST /v1/model/response`: history injection, the model call and the
//! atomic save of the turn; streaming; cancel; output modes and reasoning
//! levels.

use crate::auth::{thread_scope, Caller};
use crate::dto::content::require_text;
use crate::dto::responses::{
    CancelResponse, CreateResponseRequest, InputItem, OutputMessage, OutputMode,
    OutputModesResponse, OutputText, ReasoningLevel, ReasoningLevelsResponse, ResponseObject,
    ResponseStreamEvent, ThreadRef, UsageDto,
};
use crate::dto::OrganizationQuery;
use crate::error::{ApiError, ErrorResponse, FieldError};
use crate::extract::{JsonBody, QueryParams};
use crate::running::{CancelOutcome, CancelRequest};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Value};
use skein_domain::context::{ContextBuilder, ContextItem, ContextRole};
use skein_domain::{
    Assistant, AssistantId, DomainError, MessageId, MessageRole, Metadata, NewMessage, ResponseId,
    ThreadId, ThreadState,
};
use skein_persistence::responses::{self, StoredInput, StoredResponse};
use skein_persistence::turns::{self, FinishedTurn, TurnStart};
use skein_persistence::{assistants, messages, Scope};
use skein_providers::{
    tokens, ChatMessage, ModelRequest, ProviderError, ResolvedModel, Role, StreamEvent, Usage,
};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

type Result<T> = std::result::Result<T, ApiError>;

/// History is read newest-first in chunks of this many messages.
const HISTORY_CHUNK: u32 = 64;

/// Everything a generation needs, prepared and validated.
struct Generation {
    state: web::Data<AppState>,
    scope: Scope,
    response_id: ResponseId,
    created_at: i64,
    model_name: String,
    resolved: ResolvedModel,
    thread_id: Option<ThreadId>,
    thread_state: Option<ThreadState>,
    context: Vec<ContextItem>,
    to_store: Vec<NewMessage>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_output: Option<u32>,
    metadata: Value,
    previous_response_id: Option<String>,
    store_response: bool,
    created_thread: bool,
    started: Instant,
}

/// What a stream tells the client.
#[derive(Debug)]
enum Event {
    Created {
        response_id: String,
        thread_id: Option<String>,
    },
    Delta {
        response_id: String,
        delta: String,
    },
    Completed(Box<ResponseObject>),
    Error {
        code: &'static str,
        message: String,
    },
    Cancelled {
        response_id: String,
    },
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Created { .. } => "response.created",
            Event::Delta { .. } => "response.content_delta",
            Event::Completed(_) => "response.completed",
            Event::Error { .. } => "response.error",
            Event::Cancelled { .. } => "response.cancelled",
        }
    }

    fn payload(self) -> Value {
        match self {
            Event::Created {
                response_id,
                thread_id,
            } => {
                json!({"response_id": response_id, "thread_id": thread_id})
            }
            Event::Delta { response_id, delta } => {
                json!({"response_id": response_id, "delta": delta})
            }
            Event::Completed(response) => json!({"response": response}),
            Event::Error { code, message } => {
                json!({"status": "failed", "code": code, "message": message})
            }
            Event::Cancelled { response_id } => json!({"response_id": response_id}),
        }
    }
}

/// One SSE frame: the `event:` line and the same name in the JSON.
fn frame(name: &str, sequence: u64, mut payload: Value) -> web::Bytes {
    if let Value::Object(map) = &mut payload {
        map.insert("event".into(), Value::String(name.into()));
        map.insert("sequence_number".into(), Value::from(sequence));
    }
    web::Bytes::from(format!("event: {name}\ndata: {payload}\n\n"))
}

fn role_of(item: &InputItem, index: usize) -> Result<ContextRole> {
    match item.role.as_str() {
        "user" => Ok(ContextRole::User),
        "assistant" => Ok(ContextRole::Assistant),
        "system" => Ok(ContextRole::System),
        "developer" => Ok(ContextRole::Developer),
        _ => Err(ApiError::Validation(vec![FieldError {
            loc: vec![json!("body"), json!("inputs"), json!(index), json!("role")],
            msg: "role must be user, assistant, system or developer".into(),
            kind: "value_error".into(),
        }])),
    }
}

fn provider_role(r: ContextRole) -> Role {
    match r {
        ContextRole::System => Role::System,
        ContextRole::Developer => Role::Developer,
        ContextRole::User => Role::User,
        ContextRole::Assistant => Role::Assistant,
    }
}

fn upstream(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Upstream(m) => ApiError::Upstream(m),
        ProviderError::Timeout(m) => ApiError::UpstreamTimeout(m),
    }
}

/// Create a model response.
///
/// With a thread (`thread`, `thread_id` or `threadId`; created on first use
/// with the client's id), the thread's stored history is put in front of the
/// new inputs, cut to the model's context window by dropping the oldest
/// turns, and the new user/assistant inputs and the answer are saved as one
/// turn: whole, or not at all if the model fails (502 `UPSTREAM_ERROR`, 504
/// `UPSTREAM_TIMEOUT`). Without a thread the response is thread-less. With
/// `stream: true` the answer is `text/event-stream` (`response.created`,
/// `response.content_delta`, `response.heartbeat`, `response.completed` or
/// `response.error`, then `data: [DONE]`); a client that goes away does not
/// lose the turn.
#[utoipa::path(
    tag = "responses",
    operation_id = "create_response",
    request_body = CreateResponseRequest,
    responses(
        (status = 200, description = "The response, or with `stream: true` an event stream of `event: <name>` / `data: <json>` frames ending with `data: [DONE]`",
         content((ResponseObject = "application/json"), (ResponseStreamEvent = "text/event-stream"))),
        (status = 400, description = "`MODEL_NOT_FOUND`, `CONTEXT_LENGTH_EXCEEDED`, `ASSISTANT_BINDING_LOCKED`, `THREAD_MESSAGE_LIMIT`, `INVALID_STATE_TRANSITION`, `INVALID_REQUEST`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`, `ASSISTANT_NOT_FOUND`, `RESPONSE_NOT_FOUND`", body = ErrorResponse),
        (status = 409, description = "`THREAD_BUSY`: a response is already running (see `Retry-After`)", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorResponse),
        (status = 423, description = "`THREAD_LOCKED` or `THREAD_ARCHIVED`", body = ErrorResponse),
        (status = 502, description = "`UPSTREAM_ERROR`: the provider failed; nothing was saved", body = ErrorResponse),
        (status = 504, description = "`UPSTREAM_TIMEOUT`: the provider did not answer in time; nothing was saved", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/model/response")]
pub async fn create_response(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateResponseRequest>,
) -> Result<HttpResponse> {
    let now = state.clock.now();
    let body = body.0;
    // A token user in several organizations may name an existing thread
    // without organization_id; a new one needs it.
    let named_thread = body.thread.as_ref().map(|t| match t {
        ThreadRef::Id(id) | ThreadRef::Object { id, .. } => id.clone(),
    });
    let scope = match (&named_thread, body.organization_id.as_deref()) {
        (Some(id), None) if caller.organizations.len() > 1 => {
            match thread_scope(&state, &caller, None, id).await {
                Err(ApiError::ThreadNotFound(_)) => caller.scope(None)?,
                other => other?,
            }
        }
        (_, requested) => caller.scope(requested)?,
    };
    let limits = state.limits;
    if body.inputs.is_empty() {
        return Err(ApiError::Validation(vec![FieldError::new(
            &["body", "inputs"],
            "inputs must not be empty",
        )]));
    }
    let response_id = ResponseId::generate();
    let mut preamble = Vec::new();
    let mut new_items = Vec::new();
    let mut to_store = Vec::new();
    for (i, item) in body.inputs.iter().enumerate() {
        let role = role_of(item, i)?;
        let index = i.to_string();
        let text = require_text(
            item.content.as_ref(),
            item.texts.as_deref(),
            &["body", "inputs", &index, "content"],
        )?;
        let count = tokens::count(&text);
        let ctx = ContextItem {
            role,
            content: text.clone(),
            tokens: count,
        };
        match role {
            ContextRole::System | ContextRole::Developer => preamble.push(ctx),
            ContextRole::User | ContextRole::Assistant => {
                let stored_role = if role == ContextRole::User {
                    MessageRole::User
                } else {
                    MessageRole::Assistant
                };
                to_store.push(NewMessage {
                    response_id: Some(response_id.to_string()),
                    ..NewMessage::text(stored_role, text, count)
                });
                new_items.push(ctx);
            }
        }
    }
    let thread = match &body.thread {
        None => None,
        Some(r) => {
            let (id, metadata) = match r {
                ThreadRef::Id(id) => (id.clone(), None),
                ThreadRef::Object { id, metadata } => (id.clone(), metadata.clone()),
            };
            let id = ThreadId::parse(id).map_err(|e| {
                ApiError::Validation(vec![FieldError::new(&["body", "thread"], e.to_string())])
            })?;
            let metadata = metadata
                .map(|m| Metadata::parse(m, &limits.metadata))
                .transpose()
                .map_err(DomainError::from)?
                .unwrap_or_default();
            Some((id, metadata))
        }
    };
    if thread.is_some() && body.previous_response_id.is_some() {
        return Err(ApiError::InvalidRequest(
            "use either a thread or previous_response_id, not both".into(),
        ));
    }
    let assistant = body
        .assistant_id
        .clone()
        .map(|a| AssistantId::parse(a.clone()).map_err(|_| ApiError::AssistantNotFound(a)))
        .transpose()?;
    // The assistant whose settings apply: the request's, else the one the
    // thread is bound to. Looked up before anything is written.
    let bound_lookup = thread.as_ref().map(|(id, _)| id.to_string());
    let (s, requested) = (scope.clone(), assistant.clone());
    let assistant_settings = state
        .store
        .run(move |conn| -> Result<Option<Assistant>> {
            let bound = match &bound_lookup {
                Some(id) => {
                    skein_persistence::threads::find(conn, &s, id)?.and_then(|t| t.assistant_id)
                }
                None => None,
            };
            match (requested, bound) {
                (Some(a), _) => assistants::find(conn, &s, &a)?
                    .map(Some)
                    .ok_or_else(|| ApiError::AssistantNotFound(a.to_string())),
                // A bound assistant deleted since only means no defaults.
                (None, Some(b)) => Ok(assistants::find(conn, &s, &b)?),
                (None, None) => Ok(None),
            }
        })
        .await?;
    let instructions = body
        .instructions
        .clone()
        .filter(|i| !i.is_empty())
        .or_else(|| {
            assistant_settings
                .as_ref()
                .and_then(|a| a.instructions.as_ref().map(|i| i.as_str().to_string()))
                .filter(|i| !i.is_empty())
        });
    if let Some(instructions) = instructions {
        preamble.insert(
            0,
            ContextItem {
                role: ContextRole::System,
                tokens: tokens::count(&instructions),
                content: instructions,
            },
        );
    }
    let temperature = body.temperature.or_else(|| {
        assistant_settings
            .as_ref()
            .and_then(|a| a.temperature.map(|t| t.value()))
    });
    let model_name = body
        .model
        .clone()
        .or_else(|| assistant_settings.as_ref().and_then(|a| a.model.clone()))
        .unwrap_or_else(|| "default".to_string());
    let resolved = state
        .router
        .resolve(&model_name)
        .ok_or_else(|| ApiError::ModelNotFound(model_name.clone()))?;
    let builder = ContextBuilder::new(
        resolved.context_window,
        body.max_output_synapses.unwrap_or(0),
        preamble,
        new_items,
    )
    .map_err(|e| ApiError::ContextLengthExceeded(e.to_string()))?;

    // Open the turn: the thread (created on first use) and its busy lease.
    let (thread_id, created) = match thread {
        None => (None, false),
        Some((id, metadata)) => {
            let start = TurnStart {
                thread_id: id.clone(),
                metadata,
                assistant,
                lease_id: response_id.to_string(),
                lease_ttl: state.lease_ttl,
                new_messages: u32::try_from(to_store.len() + 1).unwrap_or(u32::MAX),
            };
            let s = scope.clone();
            let (_, created) = state
                .store
                .run(move |conn| turns::begin(conn, &s, &start, &limits, now))
                .await
                .map_err(ApiError::from)
                .map_err(|e| match e {
                    ApiError::ThreadNotFound(_) => ApiError::ThreadNotFound(id.to_string()),
                    other => other,
                })?;
            (Some(id), created)
        }
    };

    // From here on, any failure must give the lease back.
    let previous = body.previous_response_id.clone();
    let store_response = body.store.unwrap_or(true);
    let prepared = async {
        let builder = match (&thread_id, previous) {
            (None, Some(prev)) => {
                let (s, ttl) = (scope.clone(), state.response_ttl);
                let mut builder = builder;
                state
                    .store
                    .run(move |conn| {
                        let not_before = now - ttl;
                        if responses::find(conn, &s, &prev, not_before)?.is_none() {
                            return Err(ApiError::ResponseNotFound(prev));
                        }
                        // Newest first: each response's output, then its inputs.
                        responses::walk_chain(conn, &s, &prev, not_before, |r| {
                            let output = ContextItem {
                                role: ContextRole::Assistant,
                                content: r.output_text.clone(),
                                tokens: r.output_tokens,
                            };
                            builder.offer_item(output)
                                && r.inputs.iter().rev().all(|i| {
                                    builder.offer_item(ContextItem {
                                        role: i.role.into(),
                                        content: i.content.clone(),
                                        tokens: i.tokens,
                                    })
                                })
                        })?;
                        Ok(builder)
                    })
                    .await?
            }
            (Some(id), _) => {
                let (s, tid) = (scope.clone(), id.to_string());
                let mut builder = builder;
                state
                    .store
                    .run(move |conn| {
                        messages::history_newest_first(conn, &s, &tid, HISTORY_CHUNK, |m| {
                            builder.offer(&m)
                        })?;
                        Ok::<_, ApiError>(builder)
                    })
                    .await?
            }
            (None, None) => builder,
        };
        Ok::<_, ApiError>(builder.finish())
    }
    .await;
    let context = match prepared {
        Ok(c) => c,
        Err(e) => {
            release(&state, &scope, thread_id.as_ref(), &response_id, created).await;
            return Err(e);
        }
    };

    let generation = Generation {
        state: state.clone(),
        scope,
        created_at: now.timestamp(),
        response_id,
        model_name,
        resolved,
        thread_id,
        thread_state: body.thread_state.map(Into::into),
        context,
        to_store,
        temperature,
        top_p: body.top_p,
        max_output: body.max_output_synapses,
        metadata: Value::Object(body.metadata.clone().unwrap_or_default()),
        previous_response_id: body.previous_response_id.clone(),
        store_response,
        created_thread: created,
        started: Instant::now(),
    };
    let cancel = generation.thread_id.as_ref().map(|t| {
        state.running.register(
            generation.scope.organization_id.as_str(),
            t.as_str(),
            generation.response_id.as_str(),
        )
    });

    if body.stream.unwrap_or(false) {
        let (tx, rx) = mpsc::channel::<Event>(64);
        let _ = tx
            .send(Event::Created {
                response_id: generation.response_id.to_string(),
                thread_id: generation.thread_id.as_ref().map(ToString::to_string),
            })
            .await;
        // The generation runs on its own task: a client that goes away
        // drops the event stream, not the turn.
        actix_web::rt::spawn(generate(generation, Some(tx), cancel));
        return Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(event_stream(rx, state.heartbeat)));
    }
    let task = actix_web::rt::spawn(generate(generation, None, cancel));
    let response = task
        .await
        .map_err(|_| ApiError::Upstream("the generation task failed".into()))??;
    Ok(HttpResponse::Ok().json(response))
}

/// The SSE body: frames from the generation, heartbeats during silence,
/// `data: [DONE]` at the end.
fn event_stream(
    mut rx: mpsc::Receiver<Event>,
    heartbeat: Duration,
) -> impl futures_util::Stream<Item = std::result::Result<web::Bytes, actix_web::Error>> {
    async_stream::stream! {
        let mut sequence = 0u64;
        loop {
            match tokio::time::timeout(heartbeat, rx.recv()).await {
                Ok(Some(event)) => {
                    sequence += 1;
                    let name = event.name();
                    yield Ok(frame(name, sequence, event.payload()));
                }
                Ok(None) => {
                    yield Ok(web::Bytes::from_static(b"data: [DONE]\n\n"));
                    break;
                }
                Err(_) => {
                    sequence += 1;
                    yield Ok(frame("response.heartbeat", sequence, json!({})));
                }
            }
        }
    }
}

async fn release(
    state: &web::Data<AppState>,
    scope: &Scope,
    thread_id: Option<&ThreadId>,
    response_id: &ResponseId,
    created: bool,
) {
    if let Some(tid) = thread_id {
        let (s, t, r) = (scope.clone(), tid.clone(), response_id.to_string());
        if let Err(e) = state
            .store
            .run(move |conn| turns::release(conn, &s, &t, &r, created))
            .await
        {
            // The lease expires by itself; the thread is blocked until then.
            log::error!("could not release the lease of {tid}: {e}");
        }
    }
}

async fn send(events: &Option<mpsc::Sender<Event>>, event: Event) {
    if let Some(tx) = events {
        // A client that went away is not an error: the turn goes on.
        let _ = tx.send(event).await;
    }
}

/// Runs the model and saves the turn; reports to the stream if there is one.
async fn generate(
    g: Generation,
    events: Option<mpsc::Sender<Event>>,
    cancel: Option<oneshot::Receiver<CancelRequest>>,
) -> Result<ResponseObject> {
    let result = run(&g, &events, cancel).await;
    if let Some(tid) = &g.thread_id {
        g.state.running.finish(
            g.scope.organization_id.as_str(),
            tid.as_str(),
            g.response_id.as_str(),
        );
    }
    match result {
        Ok(Some(response)) => {
            send(&events, Event::Completed(Box::new(response.clone()))).await;
            Ok(response)
        }
        Ok(None) => {
            send(
                &events,
                Event::Cancelled {
                    response_id: g.response_id.to_string(),
                },
            )
            .await;
            Err(ApiError::InvalidRequest(
                "the response was cancelled".into(),
            ))
        }
        Err(e) => {
            send(
                &events,
                Event::Error {
                    code: e.code(),
                    message: e.to_string(),
                },
            )
            .await;
            Err(e)
        }
    }
}

/// The model call and the save. `Ok(None)` when cancelled.
async fn run(
    g: &Generation,
    events: &Option<mpsc::Sender<Event>>,
    mut cancel: Option<oneshot::Receiver<CancelRequest>>,
) -> Result<Option<ResponseObject>> {
    let request = ModelRequest {
        model: g.resolved.upstream_model.clone(),
        messages: g
            .context
            .iter()
            .map(|c| ChatMessage {
                role: provider_role(c.role),
                content: c.content.clone(),
                tokens: Some(c.tokens),
            })
            .collect(),
        temperature: g.temperature,
        top_p: g.top_p,
        max_output_tokens: g.max_output,
    };
    let mut stream = g.resolved.provider.stream(request);
    let mut text = String::new();
    let output = loop {
        let cancelled = async {
            match cancel.as_mut() {
                Some(rx) => rx.await.ok(),
                None => None,
            }
        };
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(StreamEvent::Delta(delta))) => {
                    text.push_str(&delta);
                    send(events, Event::Delta { response_id: g.response_id.to_string(), delta }).await;
                }
                Some(Ok(StreamEvent::Completed(output))) => break output,
                Some(Err(e)) => {
                    release(&g.state, &g.scope, g.thread_id.as_ref(), &g.response_id, g.created_thread).await;
                    return Err(upstream(e));
                }
                None => {
                    release(&g.state, &g.scope, g.thread_id.as_ref(), &g.response_id, g.created_thread).await;
                    return Err(ApiError::Upstream("the model stream ended without an answer".into()));
                }
            },
            Some(reply) = cancelled => {
                drop(stream);
                let outcome = cancel_turn(g, &text).await;
                let _ = reply.send(outcome);
                return Ok(None);
            }
        }
    };
    let assistant_id = MessageId::generate();
    let saved_id = match &g.thread_id {
        Some(tid) => {
            let mut messages = g.to_store.clone();
            messages.push(NewMessage {
                response_id: Some(g.response_id.to_string()),
                model: Some(g.model_name.clone()),
                ..NewMessage::text(
                    MessageRole::Assistant,
                    output.text.clone(),
                    output.usage.output_tokens,
                )
            });
            let turn = FinishedTurn {
                messages,
                model: g.model_name.clone(),
                thread_state: g.thread_state,
            };
            let (s, t, r, limits, now) = (
                g.scope.clone(),
                tid.clone(),
                g.response_id.to_string(),
                g.state.limits,
                g.state.clock.now(),
            );
            let saved = g
                .state
                .store
                .run(move |conn| turns::finish(conn, &s, &t, &r, turn, &limits, now))
                .await;
            match saved {
                Ok((_, stored)) => stored.last().map(|m| m.id.clone()).unwrap_or(assistant_id),
                Err(e) => {
                    release(
                        &g.state,
                        &g.scope,
                        g.thread_id.as_ref(),
                        &g.response_id,
                        g.created_thread,
                    )
                    .await;
                    return Err(e.into());
                }
            }
        }
        None => assistant_id,
    };
    if g.store_response {
        // Kept for previous_response_id chains and with its metadata.
        let stored = StoredResponse {
            id: g.response_id.to_string(),
            scope: g.scope.clone(),
            thread_id: g.thread_id.as_ref().map(ToString::to_string),
            previous_response_id: g.previous_response_id.clone(),
            model: g.model_name.clone(),
            inputs: g
                .to_store
                .iter()
                .map(|m| StoredInput {
                    role: m.role,
                    content: m.content.clone(),
                    tokens: m.token_count,
                })
                .collect(),
            output_text: output.text.clone(),
            output_tokens: output.usage.output_tokens,
            metadata: g.metadata.clone(),
            created_at: g.state.clock.now(),
        };
        if let Err(e) = g
            .state
            .store
            .run(move |conn| responses::insert(conn, &stored))
            .await
        {
            // The turn itself is saved; only chaining to it will not work.
            if g.thread_id.is_some() {
                log::error!("could not store response {}: {e}", g.response_id);
            } else {
                return Err(e.into());
            }
        }
    }
    Ok(Some(response_object(
        g,
        saved_id,
        output.text,
        &output.usage,
    )))
}

fn response_object(
    g: &Generation,
    message_id: MessageId,
    text: String,
    usage: &Usage,
) -> ResponseObject {
    ResponseObject {
        id: g.response_id.to_string(),
        object: "response".into(),
        created_at: g.created_at,
        status: "completed".into(),
        model: g.model_name.clone(),
        thread_id: g.thread_id.as_ref().map(ToString::to_string),
        previous_response_id: g.previous_response_id.clone(),
        output: vec![OutputMessage {
            kind: "message".into(),
            id: message_id.to_string(),
            status: "completed".into(),
            role: "assistant".into(),
            content: vec![OutputText {
                kind: "output_text".into(),
                text,
                annotations: Vec::new(),
            }],
        }],
        usage: UsageDto {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens,
        },
        error: None,
        metadata: g.metadata.clone(),
    }
}

/// Stops a running turn: within the quick-cancel window nothing is kept;
/// later the user inputs and the partial answer are saved.
async fn cancel_turn(g: &Generation, partial: &str) -> CancelOutcome {
    let elapsed = g.started.elapsed();
    let quick = CancelOutcome {
        mode: "quick_edit",
        elapsed_seconds: elapsed.as_secs_f64(),
        user_message_deleted: true,
        assistant_response_deleted: true,
        partial_content_saved: false,
    };
    let Some(tid) = &g.thread_id else {
        return quick;
    };
    if elapsed < g.state.quick_cancel {
        release(
            &g.state,
            &g.scope,
            Some(tid),
            &g.response_id,
            g.created_thread,
        )
        .await;
        return quick;
    }
    let mut messages = g.to_store.clone();
    let keep_answer = !partial.is_empty();
    if keep_answer {
        messages.push(NewMessage {
            response_id: Some(g.response_id.to_string()),
            model: Some(g.model_name.clone()),
            ..NewMessage::text(
                MessageRole::Assistant,
                partial.to_string(),
                tokens::count(partial),
            )
        });
    }
    let turn = FinishedTurn {
        messages,
        model: g.model_name.clone(),
        thread_state: None,
    };
    let (s, t, r, limits, now) = (
        g.scope.clone(),
        tid.clone(),
        g.response_id.to_string(),
        g.state.limits,
        g.state.clock.now(),
    );
    match g
        .state
        .store
        .run(move |conn| turns::finish(conn, &s, &t, &r, turn, &limits, now))
        .await
    {
        Ok(_) => CancelOutcome {
            mode: "keep_partial",
            elapsed_seconds: elapsed.as_secs_f64(),
            user_message_deleted: false,
            assistant_response_deleted: !keep_answer,
            partial_content_saved: keep_answer,
        },
        Err(e) => {
            log::error!("could not save the partial turn of {tid}: {e}");
            release(
                &g.state,
                &g.scope,
                Some(tid),
                &g.response_id,
                g.created_thread,
            )
            .await;
            quick
        }
    }
}

/// Cancel a running response.
///
/// Stops the response being generated in the thread. Within 5 s of its
/// start nothing of the turn is kept (`quick_edit`); later the user input
/// and the partial answer are saved (`keep_partial`). No running response
/// answers 404.
#[utoipa::path(
    tag = "responses",
    operation_id = "cancel_response",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    responses(
        (status = 200, description = "What the cancel did", body = CancelResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`: no running response in this thread", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/model/response/{thread_id}/cancel")]
pub async fn cancel_response(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<CancelResponse>> {
    let thread_id = path.into_inner();
    let scope = thread_scope(
        &state,
        &caller,
        query.0.organization_id.as_deref(),
        &thread_id,
    )
    .await?;
    // Only the thread's owner can see (and so cancel) it.
    let (s, t) = (scope.clone(), thread_id.clone());
    let visible = state
        .store
        .run(move |conn| skein_persistence::threads::find(conn, &s, &t))
        .await?;
    let not_running = || ApiError::ThreadNotFound(thread_id.clone());
    if visible.is_none() {
        return Err(not_running());
    }
    let (handle, _) = state
        .running
        .take(scope.organization_id.as_str(), &thread_id)
        .ok_or_else(not_running)?;
    let (reply_tx, reply_rx) = oneshot::channel();
    handle.send(reply_tx).map_err(|_| not_running())?;
    let outcome = reply_rx.await.map_err(|_| not_running())?;
    Ok(web::Json(CancelResponse {
        success: true,
        cancel_mode: outcome.mode.into(),
        elapsed_seconds: outcome.elapsed_seconds,
        user_message_deleted: outcome.user_message_deleted,
        assistant_response_deleted: outcome.assistant_response_deleted,
        partial_content_saved: outcome.partial_content_saved,
    }))
}

/// Output modes.
///
/// The ways message content can be rendered.
#[utoipa::path(
    tag = "responses",
    operation_id = "list_output_modes",
    responses(
        (status = 200, description = "The output modes", body = OutputModesResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/model/response/output-modes")]
pub async fn output_modes(_caller: Caller) -> web::Json<OutputModesResponse> {
    let mode = |m: &str, d: &str, default| OutputMode {
        mode: m.into(),
        description: d.into(),
        is_default: default,
    };
    web::Json(OutputModesResponse {
        success: true,
        output_modes: vec![
            mode("text", "Text content as a string (default)", true),
            mode("plain", "Plain text without markup", false),
            mode("blocks", "Content as typed blocks", false),
        ],
    })
}

/// Reasoning levels.
///
/// The reasoning effort levels a request may ask for.
#[utoipa::path(
    tag = "responses",
    operation_id = "list_reasoning_levels",
    responses(
        (status = 200, description = "The reasoning levels", body = ReasoningLevelsResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/model/response/reasoning-levels")]
pub async fn reasoning_levels(_caller: Caller) -> web::Json<ReasoningLevelsResponse> {
    let level = |l: &str, d: &str, default| ReasoningLevel {
        level: l.into(),
        description: d.into(),
        is_default: default,
    };
    web::Json(ReasoningLevelsResponse {
        success: true,
        reasoning_levels: vec![
            level("low", "Fast answers with little deliberation", false),
            level("medium", "Balanced (default)", true),
            level("high", "Most deliberate answers", false),
        ],
    })
}
