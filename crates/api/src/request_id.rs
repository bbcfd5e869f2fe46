//! Request ids: one per request, in the `X-Request-Id` answer header and in
//! every error envelope's `trace_id`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use skein_domain::ids::random_base62;
use skein_engine::log_context;

/// The header carrying the request id.
pub const HEADER: &str = "x-request-id";

/// The id of the request being served (a fresh one outside a request).
/// It lives in the engine's [`log_context`], so that the tasks a request
/// starts carry it into their logs too.
pub fn current() -> String {
    log_context::current()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(generate)
}

/// The id of the request the current task works for, if any (for log
/// records).
pub fn known() -> Option<String> {
    log_context::current().filter(|id| !id.is_empty())
}

/// Runs `f` as part of request `id` (for work that outlives the handler,
/// such as a response stream: its errors carry the request's id).
pub fn within<R>(id: String, f: impl FnOnce() -> R) -> R {
    log_context::sync_scope(id, f)
}

fn generate() -> String {
    format!("req_{}", random_base62(24))
}

/// Accepts a sane incoming id (so a caller can correlate), else makes one.
fn pick(req: &ServiceRequest) -> String {
    req.headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        })
        .map(str::to_string)
        .unwrap_or_else(generate)
}

/// Middleware: scopes the request id over the whole handling of the request
/// (so errors can read it) and sets the answer header.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = pick(&req);
    // Handler and extractor errors become answers inside the handler
    // service, so within this scope: their envelopes carry this id.
    let mut res = log_context::scope(id.clone(), next.call(req))
        .await?
        .map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}
