//! The single error type of the HTTP layer and the contract's JSON envelope.

use crate::request_id;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};
use skein_domain::DomainError;
use skein_engine::EngineError;
use skein_persistence::{Missing, StoreError};
use skein_providers::ProviderError;
use utoipa::ToSchema;

/// One step of a `loc` path: a field name (or the section, `body`,
/// `query`) or the index of an array item.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocItem {
    /// A section or a field name.
    Field(String),
    /// An array index, counted from 0.
    Index(u64),
}

/// One entry of the FastAPI-style `detail` list of a 422 answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the problem is: `["body", "metadata"]`, `["query", "limit"]`,
    /// `["body", "inputs", 0, "role"]`. Items are strings, or integers for
    /// array indices.
    #[schema(value_type = Vec<LocItem>, example = json!(["body", "inputs", 0, "role"]))]
    pub loc: Vec<Value>,
    /// What is wrong.
    #[schema(example = "metadata may have at most 16 keys, got 17")]
    pub msg: String,
    /// The kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "value_error")]
    pub kind: String,
}

impl FieldError {
    /// A value error at `loc`.
    pub fn new(loc: &[&str], msg: impl Into<String>) -> Self {
        Self {
            loc: loc
                .iter()
                .map(|s| Value::String((*s).to_string()))
                .collect(),
            msg: msg.into(),
            kind: "value_error".into(),
        }
    }
}

/// Everything the API can answer with instead of success. Each variant maps
/// to exactly one status and error code of the contract.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials were sent.
    #[error("authentication required")]
    AuthenticationRequired,
    /// Two different credentials were sent (two API keys, or a key and a
    /// user token).
    #[error("{0}")]
    AmbiguousCredentials(String),
    /// The API key is unknown, malformed or revoked.
    #[error("invalid API key")]
    InvalidApiKey,
    /// The bearer token is not a valid user token.
    #[error("invalid token: {0}")]
    TokenInvalid(String),
    /// The bearer token has expired.
    #[error("token expired")]
    TokenExpired,
    /// The caller belongs to several organizations and named none.
    #[error("{0}")]
    AmbiguousOrganization(String),
    /// The organization is not the caller's.
    #[error("organization '{0}' is not accessible with these credentials")]
    OrganizationAccessDenied(String),
    /// The field may only be set with a user token.
    #[error("'{0}' can only be set with a user token")]
    BearerTokenRequired(&'static str),
    /// No thread with this id is visible to the caller.
    #[error("thread '{0}' not found")]
    ThreadNotFound(String),
    /// No assistant with this id exists in the organization.
    #[error("assistant '{0}' not found")]
    AssistantNotFound(String),
    /// No message with this id in the thread.
    #[error("message '{0}' not found")]
    MessageNotFound(String),
    /// No stored response with this id (or older than the response TTL).
    #[error("response '{0}' not found")]
    ResponseNotFound(String),
    /// No route matches.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The model name routes to no provider.
    #[error("model '{0}' is not configured")]
    ModelNotFound(String),
    /// The new inputs alone exceed the model's context window.
    #[error("{0}")]
    ContextLengthExceeded(String),
    /// The model provider failed.
    #[error("model provider failed: {0}")]
    Upstream(String),
    /// The model provider did not answer in time.
    #[error("model provider timed out: {0}")]
    UpstreamTimeout(String),
    /// The request failed validation (422).
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The body is not valid JSON.
    #[error("malformed JSON body: {0}")]
    InvalidJson(String),
    /// The body exceeds the configured limit.
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not declared `application/json`, or is compressed.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The HTTP layer could not parse the request (its line or head).
    #[error("the request line or head is not valid HTTP/1.1")]
    MalformedRequest,
    /// The request head (the URL and the headers) is over the HTTP layer's
    /// limits.
    #[error("the request head is too large (at most 96 headers and 128 KiB in all)")]
    RequestHeadTooLarge,
    /// The client did not send its request head in time.
    #[error("the request head did not arrive within the client request timeout")]
    RequestTimeout,
    /// A domain rule was broken.
    #[error(transparent)]
    Rule(DomainError),
    /// A well-formed request that cannot be served as asked.
    #[error("{0}")]
    InvalidRequest(String),
    /// 400: a request field that would change the answer's meaning and that
    /// this server does not implement (named).
    #[error("'{0}' is not supported by this server")]
    UnsupportedFeature(String),
    /// The caller has used up its request budget (see [`crate::ratelimit`]).
    #[error("rate limit exceeded: retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next request would be admitted (the
        /// `Retry-After` header).
        retry_after_secs: u64,
    },
    /// An `Idempotency-Key` already names another request.
    #[error("idempotency key reused with another request")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still running.
    #[error("idempotency key in progress")]
    IdempotencyInProgress,
    /// This request's `Idempotency-Key` already holds its answer: the
    /// handler stops at its first trip and the idempotency middleware sends
    /// the kept answer instead (this error itself never reaches a client).
    #[error("idempotency key already answered")]
    IdempotentReplay,
    /// The database cannot be reached.
    #[error("service unavailable")]
    Unavailable(#[source] StoreError),
    /// A concurrent change won (a storage uniqueness conflict); retrying
    /// may succeed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Anything unexpected; logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The contract's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthenticationRequired => "AUTHENTICATION_REQUIRED",
            Self::AmbiguousCredentials(_) => "AMBIGUOUS_CREDENTIALS",
            Self::InvalidApiKey => "INVALID_API_KEY",
            Self::TokenInvalid(_) => "TOKEN_INVALID",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::AmbiguousOrganization(_) => "AMBIGUOUS_ORGANIZATION",
            Self::OrganizationAccessDenied(_) => "ORGANIZATION_ACCESS_DENIED",
            Self::BearerTokenRequired(_) => "BEARER_TOKEN_REQUIRED",
            Self::ThreadNotFound(_) => "THREAD_NOT_FOUND",
            Self::AssistantNotFound(_) => "ASSISTANT_NOT_FOUND",
            Self::MessageNotFound(_) => "MESSAGE_NOT_FOUND",
            Self::ResponseNotFound(_) => "RESPONSE_NOT_FOUND",
            Self::RouteNotFound(_) => "NOT_FOUND",
            Self::ModelNotFound(_) => "MODEL_NOT_FOUND",
            Self::ContextLengthExceeded(_) => "CONTEXT_LENGTH_EXCEEDED",
            Self::Upstream(_) => "UPSTREAM_ERROR",
            Self::UpstreamTimeout(_) => "UPSTREAM_TIMEOUT",
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::InvalidJson(_) => "INVALID_JSON",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::MalformedRequest => "BAD_REQUEST",
            Self::RequestHeadTooLarge => "REQUEST_HEADER_FIELDS_TOO_LARGE",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::Rule(rule) => rule_code(rule).1,
            Self::InvalidRequest(_) => "INVALID_REQUEST",
            Self::UnsupportedFeature(_) => "UNSUPPORTED_FEATURE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
            Self::IdempotentReplay => "IDEMPOTENT_REPLAY",
            Self::Conflict(_) => "CONFLICT",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// A short message for people.
    fn message(&self) -> String {
        match self {
            Self::AuthenticationRequired => {
                "Authentication required: send an API key in X-API-Key".into()
            }
            Self::AmbiguousCredentials(_) => {
                "Several different credentials were sent: send exactly one".into()
            }
            Self::InvalidApiKey => "Invalid API key".into(),
            Self::TokenInvalid(_) => "Invalid token".into(),
            Self::TokenExpired => "Token expired".into(),
            Self::AmbiguousOrganization(_) => {
                "Several organizations match: pass organization_id".into()
            }
            Self::OrganizationAccessDenied(_) => "Access to this organization is denied".into(),
            Self::BearerTokenRequired(field) => {
                format!("Setting {field} requires a user token (Bearer), not an API key")
            }
            Self::ThreadNotFound(_) => "Thread not found".into(),
            Self::AssistantNotFound(_) => "Assistant not found".into(),
            Self::MessageNotFound(_) => "Message not found".into(),
            Self::ResponseNotFound(_) => "Response not found".into(),
            Self::RouteNotFound(_) => "Not found".into(),
            Self::ModelNotFound(_) => "Model not found".into(),
            Self::ContextLengthExceeded(_) => {
                "The input does not fit in the model's context window".into()
            }
            Self::Upstream(_) => "The model provider failed; nothing was saved".into(),
            Self::UpstreamTimeout(_) => {
                "The model provider did not answer in time; nothing was saved".into()
            }
            Self::Validation(_) => "Request validation failed".into(),
            Self::InvalidJson(_) => "Request body is not valid JSON".into(),
            Self::PayloadTooLarge(_) => "Request body too large".into(),
            Self::UnsupportedMediaType(_) => {
                "Unsupported media type: send the body as uncompressed application/json".into()
            }
            Self::MalformedRequest => "Malformed HTTP request".into(),
            Self::RequestHeadTooLarge => "Request URL or headers too large".into(),
            Self::RequestTimeout => "The request was not received in time".into(),
            Self::Rule(rule) => match rule {
                DomainError::Metadata(_)
                | DomainError::Title(_)
                | DomainError::Id(_)
                | DomainError::InvalidMessage(_) => "Request validation failed".into(),
                other => {
                    let text = other.to_string();
                    let mut chars = text.chars();
                    match chars.next() {
                        Some(first) => first.to_uppercase().chain(chars).collect(),
                        None => text,
                    }
                }
            },
            Self::InvalidRequest(m) => m.clone(),
            Self::UnsupportedFeature(field) => format!(
                "'{field}' is not supported by this server: leave it out (Skein does not implement it, and does not ignore it silently)"
            ),
            Self::RateLimited { .. } => {
                "Too many requests: retry after the Retry-After delay".into()
            }
            Self::Unavailable(_) => "Service temporarily unavailable".into(),
            Self::IdempotencyKeyReused => {
                "This Idempotency-Key was used for a different request (method, path, query or body): use a new key".into()
            }
            Self::IdempotencyInProgress => {
                "The first request with this Idempotency-Key is still running: retry after the Retry-After delay".into()
            }
            Self::IdempotentReplay => {
                "This request was answered before under its Idempotency-Key".into()
            }
            Self::Conflict(_) => "A concurrent change conflicted with this one; retry".into(),
            Self::Internal(_) => "Internal server error".into(),
        }
    }

    /// The `detail` list of a 422.
    fn field_errors(&self) -> Option<Vec<FieldError>> {
        match self {
            Self::Validation(errors) => Some(errors.clone()),
            Self::IdempotencyKeyReused => Some(vec![FieldError::new(
                &["header", "Idempotency-Key"],
                "this key names another request",
            )]),
            Self::Rule(rule) => {
                let field = match rule {
                    DomainError::Metadata(_) => "metadata",
                    DomainError::Title(_) => "title",
                    DomainError::Id(_) => "id",
                    DomainError::InvalidMessage(_) => "content",
                    _ => return None,
                };
                Some(vec![FieldError::new(&["body", field], rule.to_string())])
            }
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(missing) => match missing {
                Missing::Thread(id) => Self::ThreadNotFound(id),
                Missing::Assistant(id) => Self::AssistantNotFound(id),
                Missing::Message(id) => Self::MessageNotFound(id),
                other @ (Missing::Organization(_) | Missing::ApiKey(_)) => {
                    Self::Internal(Box::new(StoreError::NotFound(other)))
                }
            },
            StoreError::InvalidCursor { list, id } => Self::InvalidRequest(format!(
                "cursor '{id}' does not name one of your {}",
                list.noun()
            )),
            StoreError::Rule(rule) => Self::Rule(rule),
            StoreError::Conflict(what) => Self::Conflict(what),
            e @ StoreError::Unavailable(_) => Self::Unavailable(e),
            // The key's own answer (409, 422, or its replay) replaces it.
            StoreError::KeyTaken => Self::IdempotencyInProgress,
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::ModelNotFound(model) => Self::ModelNotFound(model),
            EngineError::ContextTooLong(e) => Self::ContextLengthExceeded(e.to_string()),
            e @ EngineError::HistoryTooLong { .. } => Self::ContextLengthExceeded(e.to_string()),
            EngineError::ResponseNotFound(id) => Self::ResponseNotFound(id),
            EngineError::Invalid(why) => Self::InvalidRequest(why),
            EngineError::Upstream(ProviderError::Upstream(why)) => Self::Upstream(why),
            EngineError::Upstream(ProviderError::Timeout(why)) => Self::UpstreamTimeout(why),
            EngineError::Cancelled => Self::InvalidRequest("the response was cancelled".into()),
            EngineError::NotRunning(thread) => Self::ThreadNotFound(thread),
            e @ EngineError::Panicked(_) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self::Rule(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::AuthenticationRequired
            | Self::InvalidApiKey
            | Self::TokenInvalid(_)
            | Self::TokenExpired => StatusCode::UNAUTHORIZED,
            Self::AmbiguousOrganization(_)
            | Self::AmbiguousCredentials(_)
            | Self::MalformedRequest => StatusCode::BAD_REQUEST,
            Self::OrganizationAccessDenied(_) | Self::BearerTokenRequired(_) => {
                StatusCode::FORBIDDEN
            }
            Self::ThreadNotFound(_)
            | Self::AssistantNotFound(_)
            | Self::MessageNotFound(_)
            | Self::ResponseNotFound(_)
            | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidJson(_)
            | Self::InvalidRequest(_)
            | Self::UnsupportedFeature(_)
            | Self::ModelNotFound(_)
            | Self::ContextLengthExceeded(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestHeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Rule(rule) => rule_code(rule).0,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyInProgress | Self::IdempotentReplay => StatusCode::CONFLICT,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::IdempotentReplay = self {
            // Replaced by the kept answer before it goes out: no envelope.
            return HttpResponse::new(self.status_code());
        }
        self.respond(&self.report())
    }
}

impl ApiError {
    /// The error envelope (and its headers) for an error already reported.
    pub fn respond(&self, public: &PublicError) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        match self {
            Self::Unavailable(_) | Self::IdempotencyInProgress => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::Rule(DomainError::ThreadBusy { retry_after_secs })
            | Self::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        response.json(self.envelope(public))
    }
}

impl ApiError {
    /// The contract's JSON envelope of this error. Also used where no
    /// actix-web response is built (errors of the HTTP layer).
    pub fn envelope(&self, public: &PublicError) -> Value {
        let status = self.status_code();
        let mut body = json!({
            "success": false,
            "error": {
                "code": public.code,
                "message": public.message,
                "system_message": public.system_message,
                "type": if status.is_server_error() { "server_error" } else { "client_error" },
                "status": status.as_u16(),
                "details": {},
                "trace_id": public.trace_id,
                "timestamp": crate::dto::timestamp(skein_domain::clock::now()),
            }
        });
        if let Some(detail) = self.field_errors() {
            body["detail"] = json!(detail);
        }
        body
    }

    /// The error the HTTP layer means by an empty answer of this status,
    /// for the statuses it answers without a body (before any handler):
    /// 400 (malformed request), 408 (slow client), 431 (head too large).
    pub fn from_http_layer_status(status: u16) -> Option<Self> {
        match status {
            400 => Some(Self::MalformedRequest),
            408 => Some(Self::RequestTimeout),
            431 => Some(Self::RequestHeadTooLarge),
            _ => None,
        }
    }
}

/// What a client may see of an error: the code and the public messages.
/// 5xx answers never carry internals (no upstream URL or body, no SQL, no
/// transport detail); their cause chain goes to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicError {
    /// The contract's code.
    pub code: &'static str,
    /// A short message for people.
    pub message: String,
    /// A more precise message for developers (the public message on 5xx).
    pub system_message: String,
    /// The request id.
    pub trace_id: String,
}

impl ApiError {
    /// The one reporting path of every error, for JSON answers and stream
    /// events alike: logs a 5xx once, with its cause chain, and returns what
    /// the client may see.
    pub fn report(&self) -> PublicError {
        let public = self.public();
        if self.status_code().is_server_error() {
            log::error!("request {} failed: {}", public.trace_id, error_chain(self));
        }
        public
    }

    /// What the client may see, without logging (for an error that was
    /// reported already).
    pub fn public(&self) -> PublicError {
        self.public_as(request_id::current())
    }

    /// [`ApiError::public`] for an error of request `trace_id` (outside the
    /// request's own task).
    pub fn public_as(&self, trace_id: String) -> PublicError {
        let server = self.status_code().is_server_error();
        PublicError {
            code: self.code(),
            message: self.message(),
            system_message: if server {
                self.message()
            } else {
                self.to_string()
            },
            trace_id,
        }
    }
}

/// The status and code of each domain rule: the one place they are mapped.
fn rule_code(rule: &DomainError) -> (StatusCode, &'static str) {
    match rule {
        DomainError::Metadata(_)
        | DomainError::Title(_)
        | DomainError::Id(_)
        | DomainError::InvalidMessage(_) => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR"),
        DomainError::Transition(_) => (StatusCode::BAD_REQUEST, "INVALID_STATE_TRANSITION"),
        DomainError::PinLimit { .. } => (StatusCode::BAD_REQUEST, "PIN_LIMIT"),
        DomainError::AssistantBindingLocked => {
            (StatusCode::BAD_REQUEST, "ASSISTANT_BINDING_LOCKED")
        }
        DomainError::ThreadLocked => (StatusCode::LOCKED, "THREAD_LOCKED"),
        DomainError::ThreadArchived => (StatusCode::LOCKED, "THREAD_ARCHIVED"),
        DomainError::MessageLimit { .. } => (StatusCode::BAD_REQUEST, "THREAD_MESSAGE_LIMIT"),
        DomainError::ThreadBusy { .. } => (StatusCode::CONFLICT, "THREAD_BUSY"),
        DomainError::InvalidRewind(_) => (StatusCode::BAD_REQUEST, "INVALID_REQUEST"),
        DomainError::PreconditionFailed(_) => {
            (StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED")
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The error envelope, for the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "success": false,
    "error": {"code": "THREAD_NOT_FOUND", "message": "Thread not found",
              "system_message": "thread 'thread_x' not found", "type": "client_error",
              "status": 404, "details": {}, "trace_id": "req_8f3kq0Zt1pX2bLmN4cV6wY9a",
              "timestamp": "2025-01-15T10:30:00.000Z"}
}))]
pub struct ErrorResponse {
    /// Always false.
    pub success: bool,
    /// What went wrong.
    pub error: ErrorBody,
    /// Only on 422: FastAPI's list of field errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Vec<FieldError>>,
}

/// The `error` object of the envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `THREAD_NOT_FOUND`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// More precise message for developers (never internals on 5xx).
    pub system_message: String,
    /// `client_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status.
    pub status: u16,
    /// Extra structured information.
    #[schema(value_type = Object)]
    pub details: Value,
    /// The request id, also in the `X-Request-Id` header.
    pub trace_id: String,
    /// When the error happened (RFC 3339, milliseconds).
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_conflict_is_a_retryable_409_and_missing_objects_keep_their_ids() {
        let conflict = ApiError::from(StoreError::Conflict("duplicate key".into()));
        assert_eq!(conflict.status_code(), StatusCode::CONFLICT);
        assert_eq!(conflict.code(), "CONFLICT");
        let missing = ApiError::from(StoreError::NotFound(Missing::Message("msg_x".into())));
        assert_eq!(missing.to_string(), "message 'msg_x' not found");
        let cursor = ApiError::from(StoreError::InvalidCursor {
            list: skein_persistence::ListKind::Assistants,
            id: "asst_x".into(),
        });
        assert_eq!(
            cursor.to_string(),
            "cursor 'asst_x' does not name one of your assistants"
        );
    }

    #[test]
    fn a_5xx_shows_only_its_public_message() {
        let upstream = ApiError::from(EngineError::Upstream(ProviderError::Timeout(
            "http://10.0.0.7:8000/v1/chat/completions: no answer in 30 s".into(),
        )));
        let public = upstream.public();
        assert_eq!(public.code, "UPSTREAM_TIMEOUT");
        for text in [&public.message, &public.system_message] {
            assert!(!text.contains("10.0.0.7"), "{text}");
        }
        let panic = ApiError::from(EngineError::Panicked("index out of bounds".into()));
        assert_eq!(panic.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!panic.public().system_message.contains("index"));
    }
}
