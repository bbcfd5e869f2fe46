//! The access log: one `info` record per answered request, target
//! `skein::access`. The message reads as a classic access-log line; the
//! record's key-values carry the same facts for structured (JSON) logs:
//! request id, method, route template, status, latency and the caller's
//! organization once authenticated.

use crate::auth::Caller;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use std::time::Instant;

/// Middleware logging every answer (outermost, so the answer it logs is
/// final and carries the request id).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let peer = req
        .peer_addr()
        .map_or_else(|| "-".to_string(), |a| a.ip().to_string());
    let line = format!(
        "{} {} {:?}",
        req.method(),
        req.uri()
            .path_and_query()
            .map_or_else(|| req.path().to_string(), ToString::to_string),
        req.version()
    );
    let res = next.call(req).await?;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = res.status().as_u16();
    let rid = res
        .headers()
        .get(crate::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let route = crate::metrics::route_of(res.request());
    let organization = res
        .request()
        .extensions()
        .get::<Caller>()
        .and_then(Caller::organizations)
        .unwrap_or_default();
    let method = res.request().method().as_str().to_string();
    log::info!(
        target: "skein::access",
        request_id = rid.as_str(),
        method = method.as_str(),
        route = route.as_str(),
        status = status,
        latency_ms = (latency_ms * 1000.0).round() / 1000.0,
        organization = organization.as_str();
        "{peer} \"{line}\" {status} {latency_ms:.3}ms rid={rid}"
    );
    Ok(res)
}
