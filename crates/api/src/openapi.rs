//! The top of the OpenAPI document: info, tags, security schemes.

use crate::error::{ErrorBody, ErrorResponse, FieldError};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's fixed parts; paths and schemas are collected from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Skein",
        description = "Self-hosted server for stateful LLM conversation threads, speaking the \
Freddy Threads API. Errors use one envelope: `{\"success\": false, \"error\": {\"code\", \
\"message\", \"system_message\", \"type\", \"status\", \"details\", \"trace_id\", \"timestamp\"}}`; \
422 answers add FastAPI's `detail` list. The OpenAI dialect (tag `openai`) answers errors in OpenAI's envelope instead: `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`, with 400 where Skein's own paths answer 422. Every answer carries `X-Request-Id`.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "threads", description = "Conversation threads: create, read, list, update, pin, delete."),
        (name = "messages", description = "The stored user and assistant turns of a thread."),
        (name = "responses", description = "Model responses with history injection, streaming and cancel."),
        (name = "assistants", description = "Reusable instructions, model and temperature that threads bind to."),
        (name = "openai", description = "OpenAI's dialect on the same store: conversations (threads), their items (messages) and models. See docs/openai.md."),
        (name = "service", description = "Health, readiness and metrics."),
    ),
    components(schemas(ErrorResponse, ErrorBody, FieldError)),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key (`sk_...`). Also accepted as `api-key: <key>` or `Authorization: Bearer <key>`.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key (sk_...) or user token (JWT)")
                    .build(),
            ),
        );
    }
}
