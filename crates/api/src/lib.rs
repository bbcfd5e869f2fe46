//! Skein's HTTP API.
//!
//! actix-web handlers, the wire types, authentication, the contract's error
//! envelope and the OpenAPI document. [`build_app`] is the one app builder
//! used by the server, the tests and the spec generator alike.

pub mod access_log;
pub mod auth;
pub mod dto;
pub mod edge;
pub mod error;
pub mod etag;
pub mod extract;
pub mod handlers;
pub mod idempotency;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod ratelimit;
pub mod request_id;
pub mod state;
pub mod tokens;

#[cfg(test)]
mod test_support;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{web, App};
use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

pub use error::ApiError;
pub use metrics::Metrics;
pub use state::AppState;

/// Registers every documented endpoint on `$cfg`: utoipa's `ServiceConfig`
/// (which also collects the OpenAPI document) or actix-web's own.
macro_rules! register_routes {
    ($cfg:expr) => {{
        use handlers::{
            assistants, messages, read_state, responses, search, service, threads, user_state,
        };
        $cfg.service(threads::create_thread)
            .service(threads::list_threads)
            .service(threads::delete_all_threads)
            // Before `/v1/threads/{thread_id}`, which would take their paths.
            .service(read_state::get_unread_threads)
            .service(read_state::get_thread_changes)
            .service(handlers::export::export_threads)
            .service(threads::get_thread)
            .service(threads::update_thread)
            .service(threads::delete_thread)
            .service(threads::fork_thread)
            .service(threads::pin_thread)
            .service(threads::unpin_thread)
            .service(threads::generate_thread_name)
            .service(read_state::mark_thread_read)
            .service(user_state::get_thread_user_state)
            .service(user_state::patch_thread_user_state)
            .service(search::search_messages)
            .service(messages::list_messages)
            .service(messages::create_message)
            .service(messages::update_message)
            .service(messages::delete_message)
            .service(responses::output_modes)
            .service(responses::reasoning_levels)
            .service(responses::create_response)
            .service(responses::preview_response)
            .service(responses::cancel_response)
            .service(responses::reconnect_stream)
            .service(assistants::create_assistant)
            .service(assistants::list_assistants)
            .service(assistants::get_assistant)
            .service(assistants::update_assistant)
            .service(assistants::delete_assistant)
            .service(openai::models::list_models)
            .service(openai::models::retrieve_model)
            .service(openai::conversations::list_conversations)
            .service(openai::conversations::create_conversation)
            .service(openai::conversations::retrieve_conversation)
            .service(openai::conversations::update_conversation)
            .service(openai::conversations::delete_conversation)
            .service(openai::items::create_items)
            .service(openai::items::list_items)
            .service(openai::items::retrieve_item)
            .service(openai::items::delete_item)
            .service(openai::responses::create_response)
            .service(openai::responses::count_input_tokens)
            .service(openai::responses::list_input_items)
            .service(openai::responses::retrieve_response)
            .service(openai::responses::delete_response)
            .service(service::healthz)
            .service(service::readyz)
            .service(service::metrics);
    }};
}

/// The endpoints, with their OpenAPI paths (for the document).
fn documented_routes(cfg: &mut ServiceConfig) {
    register_routes!(cfg)
}

/// The endpoints for serving: the same routes without building the
/// document again in every worker (about 7 MB of memory each).
fn routes(cfg: &mut web::ServiceConfig) {
    register_routes!(cfg)
}

/// The CORS policy for these origins (`*`: any), or `None` when there are
/// none: then no CORS header is sent. Credentials travel in headers, never
/// in cookies, so none are allowed; the headers a client reads are exposed.
fn cors(origins: &[String]) -> Option<actix_cors::Cors> {
    if origins.is_empty() {
        return None;
    }
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "PUT", "DELETE"])
        .allow_any_header()
        .expose_headers([
            "x-request-id",
            "etag",
            "retry-after",
            "idempotent-replayed",
            "location",
        ])
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    Some(cors)
}

/// The OpenAPI document, as generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .configure(documented_routes)
        .split_for_parts();
    utoipa::Modify::modify(&openapi::ErrorExamples, &mut api);
    api
}

/// The OpenAPI document as served at `/openapi.json`: built and serialized
/// once per process (the server does it before its workers start), then
/// shared by every worker.
pub fn openapi_json() -> web::Bytes {
    static DOCUMENT: std::sync::OnceLock<web::Bytes> = std::sync::OnceLock::new();
    DOCUMENT
        .get_or_init(|| match serde_json::to_vec(&openapi()) {
            Ok(json) => web::Bytes::from(json),
            // Unreachable (the document is plain data); an empty object
            // rather than a panic in a worker.
            Err(_) => web::Bytes::from_static(b"{}"),
        })
        .clone()
}

/// `GET /openapi.json`.
async fn serve_openapi(document: web::Data<web::Bytes>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(document.get_ref().clone())
}

/// The whole application: routes, `/openapi.json`, Swagger UI at `/docs`,
/// request ids, access log, metrics, the checks at the edge (NUL in the
/// path or query, body media type and encoding) and the 404 fallback.
pub fn build_app(
    state: AppState,
    metrics: web::Data<Metrics>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    openai::models::mark_start();
    let cors = cors(&state.cors_origins);
    let cors_on = cors.is_some();
    App::new()
        .app_data(web::Data::new(state))
        .app_data(metrics)
        .configure(routes)
        .service(
            web::resource("/openapi.json")
                .app_data(web::Data::new(openapi_json()))
                .route(web::get().to(serve_openapi)),
        )
        .service(
            SwaggerUi::new("/docs/{_:.*}")
                .config(utoipa_swagger_ui::Config::new(["/openapi.json"])),
        )
        .service(web::redirect("/docs", "/docs/"))
        .default_service(web::to(handlers::service::not_found))
        // Innermost: only requests the edge admitted claim a key.
        .wrap(from_fn(idempotency::middleware))
        // Inside the request id, so its refusals carry the id and are counted.
        .wrap(from_fn(edge::middleware))
        // Outside the checks at the edge, so that their refusals on the
        // OpenAI paths get OpenAI's envelope too.
        .wrap(from_fn(openai::errors::middleware))
        .wrap(from_fn(metrics::middleware))
        .wrap(from_fn(request_id::middleware))
        // Browsers' preflights are answered before anything else looks at
        // the request; off unless origins are configured.
        .wrap(actix_web::middleware::Condition::new(
            cors_on,
            cors.unwrap_or_default(),
        ))
        // Outermost, so the logged answer carries the request id.
        .wrap(from_fn(access_log::middleware))
}
