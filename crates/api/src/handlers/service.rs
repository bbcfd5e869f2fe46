//! Service endpoints: liveness, readiness, metrics.

use crate::dto::HealthResponse;
use crate::error::{ApiError, ErrorResponse};
use crate::metrics::Metrics;
use crate::state::AppState;
use actix_web::{get, web, HttpRequest, HttpResponse};

/// Liveness.
///
/// Answers 200 while the process is up, without touching the database.
#[utoipa::path(
    tag = "service",
    operation_id = "get_health",
    responses((status = 200, description = "The process is up", body = HealthResponse))
)]
#[get("/healthz")]
pub async fn healthz() -> web::Json<HealthResponse> {
    web::Json(HealthResponse {
        status: "ok".into(),
    })
}

/// Readiness.
///
/// Answers 200 when the database answers, 503 `SERVICE_UNAVAILABLE` otherwise.
#[utoipa::path(
    tag = "service",
    operation_id = "get_readiness",
    responses(
        (status = 200, description = "The database is reachable", body = HealthResponse),
        (status = 503, description = "The database is not reachable", body = ErrorResponse),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<web::Json<HealthResponse>, ApiError> {
    state.store.ping().await?;
    Ok(web::Json(HealthResponse {
        status: "ready".into(),
    }))
}

/// Metrics.
///
/// Prometheus text format: requests by route and status with their
/// latency, the database pool, model calls (latency, time to first token,
/// errors, tokens), rate-limit refusals, the retention sweeper and the
/// build (docs/metrics.md lists every family).
#[utoipa::path(
    tag = "service",
    operation_id = "get_metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render(state.store.backend().name(), state.store.pool_status()))
}

/// Any path no route matches: 404 in the error envelope.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}
