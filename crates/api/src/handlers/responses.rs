//! `POST /v1/model/response` (the Freddy dialect's front door to the turn
//! engine), its event stream, cancel, output modes and reasoning levels.

use crate::auth::{Caller, Identity};
use crate::dto::responses::{
    CancelResponse, CreateResponseRequest, OutputMode, OutputModesResponse, PreviewResponse,
    ReasoningLevel, ReasoningLevelsResponse, ResponseObject, ResponseStreamEvent,
};
use crate::dto::OrganizationQuery;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{JsonBody, QueryParams};
use crate::request_id;
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Value};
use skein_engine::{EventLog, EventReader, PublicFailure, Sequenced, TurnEvent};
use skein_persistence::{DbConnection, Scope};

type Result<T> = std::result::Result<T, ApiError>;

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
/// lose the turn, and a client that reads slowly gets larger deltas instead
/// of holding the model back.
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
        (status = 500, description = "`INTERNAL_ERROR`: the turn failed unexpectedly; nothing was saved", body = ErrorResponse),
        (status = 502, description = "`UPSTREAM_ERROR`: the provider failed; nothing was saved", body = ErrorResponse),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database is unreachable or saturated (see `Retry-After`)", body = ErrorResponse),
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
    let stream = body.0.stream.unwrap_or(false);
    let (request, whose) = turn_request(&state, &caller, body.0).await?;
    let turn = state.engine().open(request, whose).await?;
    let (events, task) = spawn_reported(turn);
    if stream {
        return Ok(sse(event_stream(events.reader(0))));
    }
    Ok(match settle(task).await? {
        Ok(done) => HttpResponse::Ok().json(ResponseObject::from(done)),
        Err(answer) => answer,
    })
}

/// Preview a model response.
///
/// Takes the body of `POST /v1/model/response` and answers what the model
/// would receive (the instructions, the history that fits, the inputs, with
/// their tokens and where each comes from) without calling it and without
/// writing anything. Built by the same engine steps as the real call, with
/// the same validation and errors (lifecycle 423, message limit,
/// `CONTEXT_LENGTH_EXCEEDED`, unknown thread, assistant or model), except
/// that a running response does not make it answer 409: it takes no lease.
/// A thread the call would create counts as empty, and `stream` is ignored.
#[utoipa::path(
    tag = "responses",
    operation_id = "preview_response",
    request_body = CreateResponseRequest,
    responses(
        (status = 200, description = "The context the model would receive", body = PreviewResponse),
        (status = 400, description = "`MODEL_NOT_FOUND`, `CONTEXT_LENGTH_EXCEEDED`, `ASSISTANT_BINDING_LOCKED`, `THREAD_MESSAGE_LIMIT`, `INVALID_REQUEST`", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`, `ASSISTANT_NOT_FOUND`, `RESPONSE_NOT_FOUND`, `MESSAGE_NOT_FOUND`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR`", body = ErrorResponse),
        (status = 423, description = "`THREAD_LOCKED` or `THREAD_ARCHIVED`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/model/response/preview")]
pub async fn preview_response(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateResponseRequest>,
) -> Result<web::Json<PreviewResponse>> {
    let (request, whose) = turn_request(&state, &caller, body.0).await?;
    let preview = state.engine().preview(request, whose, true).await?;
    Ok(web::Json(preview.into()))
}

/// A Freddy response body as the engine's request (its tokens counted
/// within the caller's budget), and the step that says whose turn it is.
async fn turn_request(
    state: &AppState,
    caller: &Caller,
    body: CreateResponseRequest,
) -> Result<(
    skein_engine::TurnRequest,
    impl FnOnce(&mut DbConnection) -> Result<Scope> + Send + 'static,
)> {
    let thread = body.thread_id().map(str::to_string);
    let organization = body.organization_id.clone();
    let request = body.into_turn(&state.limits, state.retention.incognito_ttl)?;
    caller.before_counting(request.text_bytes()).await?;
    let whose = caller.within(move |conn, who| response_scope(conn, who, thread, organization));
    Ok((request, whose))
}

/// Starts a turn's generation, with the one report of its failure: a
/// server fault is logged once, with its cause chain, under the request's
/// id. Both front doors' model routes use it.
pub(crate) fn spawn_reported(
    turn: skein_engine::Turn,
) -> (
    std::sync::Arc<EventLog>,
    tokio::task::JoinHandle<
        std::result::Result<skein_engine::Completed, skein_engine::EngineError>,
    >,
) {
    let events = EventLog::new();
    let request_id = request_id::current();
    let task = turn.spawn(events.clone(), move |failure| {
        let public = request_id::within(request_id, || ApiError::from(failure.clone()).report());
        PublicFailure {
            code: public.code.to_string(),
            message: public.message,
        }
    });
    (events, task)
}

/// Waits for a turn that is not streamed: its saved answer, or the error
/// answer of its failure (already reported by [`spawn_reported`]).
pub(crate) async fn settle(
    task: tokio::task::JoinHandle<
        std::result::Result<skein_engine::Completed, skein_engine::EngineError>,
    >,
) -> Result<std::result::Result<skein_engine::Completed, HttpResponse>> {
    match task.await {
        Ok(Ok(done)) => Ok(Ok(done)),
        Ok(Err(failure)) => {
            let error = ApiError::from(failure);
            Ok(Err(error.respond(&error.public())))
        }
        Err(join) => Err(ApiError::Internal(Box::new(join))),
    }
}

/// The organization a response works in. A token user in several
/// organizations may name an existing thread without `organization_id`
/// (it is looked up in all of them); a new thread needs it.
fn response_scope(
    conn: &mut DbConnection,
    who: &Identity,
    thread: Option<String>,
    requested: Option<String>,
) -> Result<Scope> {
    match (thread, requested) {
        (Some(id), None) if who.organizations.len() > 1 => {
            match who.thread_scope(conn, None, &id) {
                Err(ApiError::ThreadNotFound(_)) => who.scope(None),
                other => other,
            }
        }
        (_, requested) => who.scope(requested.as_deref()),
    }
}

/// The SSE body: the turn's events as Freddy frames, then `data: [DONE]`.
/// A client that reads slowly gets merged deltas; one that goes away does
/// not stop the turn.
fn event_stream(
    mut events: EventReader,
) -> impl futures_util::Stream<Item = std::result::Result<web::Bytes, actix_web::Error>> {
    async_stream::stream! {
        let mut response_id = String::new();
        while let Some(batch) = events.next().await {
            for Sequenced { sequence, event } in batch {
                if let TurnEvent::Created { response_id: id, .. } = &event {
                    response_id.clone_from(id);
                }
                let (name, payload) = freddy_event(&response_id, event);
                yield Ok(frame(name, sequence, payload));
            }
        }
        yield Ok(web::Bytes::from_static(b"data: [DONE]\n\n"));
    }
}

/// A turn event as the Freddy dialect names and shapes it.
fn freddy_event(response_id: &str, event: TurnEvent) -> (&'static str, Value) {
    match event {
        TurnEvent::Created {
            response_id,
            thread_id,
        } => (
            "response.created",
            json!({"response_id": response_id, "thread_id": thread_id}),
        ),
        TurnEvent::Delta(delta) => (
            "response.content_delta",
            json!({"response_id": response_id, "delta": delta}),
        ),
        TurnEvent::Heartbeat => ("response.heartbeat", json!({})),
        TurnEvent::Completed(done) => (
            "response.completed",
            json!({"response": ResponseObject::from(*done)}),
        ),
        // Reported (and logged) once by the turn's failure hook.
        TurnEvent::Failed(PublicFailure { code, message }) => (
            "response.error",
            json!({"status": "failed", "code": code, "message": message}),
        ),
        TurnEvent::Interrupted => (
            "response.error",
            json!({"status": "failed", "code": "RESPONSE_INTERRUPTED",
                   "message": "The response was interrupted: the server running it went away before it finished"}),
        ),
        TurnEvent::Cancelled(_) => ("response.cancelled", json!({"response_id": response_id})),
    }
}

/// One SSE frame: the `id:` line (the sequence number, which a client
/// hands back to reconnect), the `event:` line, and the same name and
/// number in the JSON.
fn frame(name: &str, sequence: u64, payload: Value) -> web::Bytes {
    let payload = framed(name, sequence, payload);
    web::Bytes::from(format!(
        "id: {sequence}\nevent: {name}\ndata: {payload}\n\n"
    ))
}

/// The JSON of an event: its payload with `event` and `sequence_number`.
fn framed(name: &str, sequence: u64, mut payload: Value) -> Value {
    if let Value::Object(map) = &mut payload {
        map.insert("event".into(), Value::String(name.into()));
        map.insert("sequence_number".into(), Value::from(sequence));
    }
    payload
}

/// Query of the reconnect endpoint.
#[derive(Debug, Default, serde::Deserialize, validator::Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReconnectQuery {
    /// Replay the events after this sequence number (the `id:` of the last
    /// frame the client received); overrides the `Last-Event-ID` header.
    /// Without either, the whole response is replayed.
    #[serde(default, alias = "lastEventId")]
    pub last_event_id: Option<u64>,
    /// Organization (defaults to the caller's only one).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
}

/// Reconnect to a response stream.
///
/// The events of the thread's running or most recent response with a
/// sequence number above `last_event_id` (or the `Last-Event-ID` header),
/// then its live events until the last one, then `data: [DONE]`: the same
/// frames as the original stream, from any replica. If the server running
/// the response went away, the stream ends with `response.error`
/// `RESPONSE_INTERRUPTED` once its lease has lapsed. If the stored events
/// are gone (older than the response TTL) but the turn was saved, one
/// `response.completed` is built from the saved messages.
///
/// A client that asks for `application/json` (and not `text/event-stream`)
/// in `Accept`, or a Fern-generated SDK (`X-Fern-Language`, whose reconnect
/// call reads the body as one JSON document), gets the same events as one
/// JSON object once the response has ended: `{"thread_id", "response_id",
/// "events": [...]}`.
#[utoipa::path(
    tag = "responses",
    operation_id = "reconnect_response_stream",
    params(("thread_id" = String, Path, description = "Thread id"), ReconnectQuery,
           ("Last-Event-ID" = Option<u64>, Header, description = "The last sequence number received (the query parameter wins)")),
    responses(
        (status = 200, description = "An event stream of `id: <n>` / `event: <name>` / `data: <json>` frames ending with `data: [DONE]` (or, for JSON clients, the events as one object)",
         content((ResponseStreamEvent = "text/event-stream"), (Value = "application/json"))),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`, or `RESPONSE_NOT_FOUND`: no response in this thread", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR`: `last_event_id` is not a non-negative integer", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/model/response/{thread_id}/stream")]
pub async fn reconnect_stream(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<ReconnectQuery>,
    request: actix_web::HttpRequest,
) -> Result<HttpResponse> {
    let thread_id = path.into_inner();
    let ReconnectQuery {
        last_event_id,
        organization_id,
    } = query.0;
    let after = match last_event_id {
        Some(n) => n,
        None => last_event_id_header(&request)?,
    };
    let json = wants_json(&request);
    let (id, now) = (thread_id.clone(), state.clock.now());
    let target = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, organization_id.as_deref(), &id)?;
            Ok(skein_persistence::events::locate(conn, &scope, &id, now)?)
        })
        .await?;
    let mut response_id = target.response_id.clone().unwrap_or_default();
    let events = state.engine().follow(&thread_id, target, after).await?;
    if json {
        let mut out = Vec::new();
        let mut events = std::pin::pin!(events);
        while let Some(Sequenced { sequence, event }) = events.next().await {
            if let TurnEvent::Created {
                response_id: id, ..
            } = &event
            {
                response_id.clone_from(id);
            }
            let (name, payload) = freddy_event(&response_id, event);
            out.push(framed(name, sequence, payload));
        }
        return Ok(HttpResponse::Ok().json(json!({
            "thread_id": thread_id,
            "response_id": response_id,
            "events": out,
        })));
    }
    Ok(sse(sse_frames(events, response_id)))
}

/// `Last-Event-ID` as a sequence number (absent: 0, the whole response).
fn last_event_id_header(request: &actix_web::HttpRequest) -> Result<u64> {
    let Some(value) = request.headers().get("last-event-id") else {
        return Ok(0);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::Validation(vec![crate::error::FieldError::new(
                &["header", "Last-Event-ID"],
                "Last-Event-ID must be a non-negative integer (the id of the last event received)",
            )])
        })
}

/// Whether the client reads the reconnect answer as one JSON document.
fn wants_json(request: &actix_web::HttpRequest) -> bool {
    let accept = request
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("text/event-stream") {
        return false;
    }
    accept.contains("application/json") || request.headers().contains_key("x-fern-language")
}

/// An SSE answer with the headers every stream carries.
pub(crate) fn sse<S>(body: S) -> HttpResponse
where
    S: futures_util::Stream<Item = std::result::Result<web::Bytes, actix_web::Error>> + 'static,
{
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// Freddy frames of replayed or followed events, then `data: [DONE]`.
fn sse_frames<S>(
    events: S,
    mut response_id: String,
) -> impl futures_util::Stream<Item = std::result::Result<web::Bytes, actix_web::Error>>
where
    S: futures_util::Stream<Item = Sequenced>,
{
    async_stream::stream! {
        let mut events = std::pin::pin!(events);
        while let Some(Sequenced { sequence, event }) = events.next().await {
            if let TurnEvent::Created { response_id: id, .. } = &event {
                response_id.clone_from(id);
            }
            let (name, payload) = freddy_event(&response_id, event);
            yield Ok(frame(name, sequence, payload));
        }
        yield Ok(web::Bytes::from_static(b"data: [DONE]\n\n"));
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
    let org = query.0.organization_id;
    let id = thread_id.clone();
    let scope = caller
        .run(move |conn, who| who.thread_scope(conn, org.as_deref(), &id))
        .await?;
    let outcome = state.engine().cancel(&scope, &thread_id).await?;
    Ok(web::Json(outcome.into()))
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
pub async fn output_modes(caller: Caller) -> Result<web::Json<OutputModesResponse>> {
    caller.identity().await?;
    let mode = |m: &str, d: &str, default| OutputMode {
        mode: m.into(),
        description: d.into(),
        is_default: default,
    };
    Ok(web::Json(OutputModesResponse {
        success: true,
        output_modes: vec![
            mode("text", "Text content as a string (default)", true),
            mode("plain", "Plain text without markup", false),
            mode("blocks", "Content as typed blocks", false),
        ],
    }))
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
pub async fn reasoning_levels(caller: Caller) -> Result<web::Json<ReasoningLevelsResponse>> {
    caller.identity().await?;
    let level = |l: &str, d: &str, default| ReasoningLevel {
        level: l.into(),
        description: d.into(),
        is_default: default,
    };
    Ok(web::Json(ReasoningLevelsResponse {
        success: true,
        reasoning_levels: vec![
            level("low", "Fast answers with little deliberation", false),
            level("medium", "Balanced (default)", true),
            level("high", "Most deliberate answers", false),
        ],
    }))
}
