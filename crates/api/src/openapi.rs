//! The top of the OpenAPI document: info, tags, security schemes.

use crate::error::{ApiError, ErrorBody, ErrorResponse, FieldError};
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

/// Gives every error answer of the document an example of its own code (the
/// contract's envelope, or OpenAI's on the OpenAI paths), rendered from a
/// real [`ApiError`] so that the example says what the server says; and
/// documents the refusals every operation can meet: 429 `RATE_LIMITED` on
/// authenticated operations, 415 `UNSUPPORTED_MEDIA_TYPE` and 413 on those
/// with a body, 403 `ORGANIZATION_ACCESS_DENIED` where an organization is
/// named.
/// Applied once the handlers' paths are collected ([`crate::openapi`]).
pub(crate) struct ErrorExamples;

/// A representative error of every code the document names.
fn samples() -> Vec<ApiError> {
    use skein_domain::{DomainError, InvalidStateTransition, ThreadState};
    vec![
        ApiError::AuthenticationRequired,
        ApiError::OrganizationAccessDenied("org_other".into()),
        ApiError::Validation(vec![FieldError::new(
            &["body", "title"],
            "a title has at most 200 characters",
        )]),
        ApiError::ThreadNotFound("thread_x".into()),
        ApiError::InvalidRequest("both after and before were given: pass one".into()),
        ApiError::AssistantNotFound("asst_x".into()),
        ApiError::MessageNotFound("msg_x".into()),
        ApiError::ResponseNotFound("resp_x".into()),
        ApiError::ModelNotFound("gpt-x".into()),
        ApiError::InvalidJson("expected value at line 1 column 1".into()),
        ApiError::Rule(DomainError::ThreadLocked),
        ApiError::Rule(DomainError::ThreadArchived),
        ApiError::Rule(DomainError::PreconditionFailed("thread")),
        ApiError::Rule(DomainError::AssistantBindingLocked),
        ApiError::Rule(DomainError::MessageLimit { max: 10_000 }),
        ApiError::Rule(DomainError::Transition(InvalidStateTransition {
            from: ThreadState::Archived,
            to: ThreadState::Open,
        })),
        ApiError::Rule(DomainError::ThreadBusy {
            retry_after_secs: 5,
        }),
        ApiError::Rule(DomainError::PinLimit { max: 20 }),
        ApiError::ContextLengthExceeded("the input needs 9,000 tokens of a window of 8,192".into()),
        ApiError::Upstream("status 500".into()),
        ApiError::UpstreamTimeout("no answer within 120 s".into()),
        ApiError::BearerTokenRequired("visible_in_ui"),
        ApiError::Internal("example".into()),
        ApiError::Unavailable(skein_persistence::StoreError::Unavailable(
            "all 8 database connections stayed busy".into(),
        )),
        ApiError::PayloadTooLarge(1_048_576),
        ApiError::UnsupportedMediaType("text/plain".into()),
        ApiError::RateLimited {
            retry_after_secs: 12,
        },
        ApiError::IdempotencyKeyReused,
        ApiError::IdempotencyInProgress,
        ApiError::UnsupportedFeature("tools".into()),
        ApiError::Conflict("a concurrent write".into()),
    ]
}

/// The contract's envelope of `e`, as an example (fixed request id and
/// time).
fn envelope(e: &ApiError) -> (u16, serde_json::Value) {
    use actix_web::ResponseError;
    let public = e.public_as("req_8f3kq0Zt1pX2bLmN4cV6wY9a".into());
    let mut body = e.envelope(&public);
    body["error"]["timestamp"] = "2025-01-15T10:30:00.000Z".into();
    (e.status_code().as_u16(), body)
}

/// Every sample error rendered once, as (status, body), in one dialect.
fn rendered(openai: bool) -> Vec<(u16, serde_json::Value)> {
    samples()
        .iter()
        .map(|e| {
            let (s, body) = envelope(e);
            if openai {
                let (s, body) = crate::openai::errors::translate(
                    actix_web::http::StatusCode::from_u16(s)
                        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
                    &body,
                );
                (s.as_u16(), body)
            } else {
                (s, body)
            }
        })
        .collect()
}

/// The error a documented answer means: the first code its description
/// names (`THREAD_NOT_FOUND`, or OpenAI's `conversation_not_found`),
/// else the usual error of its status, among the `rendered` samples.
fn sample_for(
    rendered: &[(u16, serde_json::Value)],
    status: u16,
    description: &str,
) -> Option<serde_json::Value> {
    let code_of = |body: &serde_json::Value| body["error"]["code"].as_str().map(str::to_string);
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.chars().all(|ch| ch.is_ascii_alphabetic() || ch == '_'))
        .find_map(|name| {
            rendered
                .iter()
                .find(|(s, body)| *s == status && code_of(body).as_deref() == Some(name))
        })
        .or_else(|| rendered.iter().find(|(s, _)| *s == status))
        .map(|(_, body)| body.clone())
}

impl Modify for ErrorExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let reference = |schema: &str| {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build()
        };
        // Each dialect's samples rendered once for the whole document.
        let (freddy_samples, openai_samples) = (rendered(false), rendered(true));
        for (path, item) in openapi.paths.paths.iter_mut() {
            let openai = crate::openai::errors::is_openai_path(path);
            let samples = if openai {
                &openai_samples
            } else {
                &freddy_samples
            };
            let schema = if openai {
                "OpenAiError"
            } else {
                "ErrorResponse"
            };
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for op in operations.into_iter().flatten() {
                let responses = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses.entry(status.to_string()).or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content("application/json", reference(schema))
                                .build(),
                        )
                    });
                };
                // Each dialect's own code for the refusal.
                let code = |freddy: &str| {
                    if openai {
                        match freddy {
                            "RATE_LIMITED" => "rate_limit_exceeded".to_string(),
                            other => other.to_ascii_lowercase(),
                        }
                    } else {
                        freddy.to_string()
                    }
                };
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(
                        "429",
                        &format!(
                            "`{}`: over the caller's request budget (`Retry-After` says when to retry)",
                            code("RATE_LIMITED")
                        ),
                    );
                }
                if op.request_body.is_some() {
                    add(
                        "413",
                        &format!(
                            "`{}`: the body is larger than the limit",
                            code("PAYLOAD_TOO_LARGE")
                        ),
                    );
                    add(
                        "415",
                        &format!(
                            "`{}`: the body is not `application/json`, or is compressed",
                            code("UNSUPPORTED_MEDIA_TYPE")
                        ),
                    );
                }
                let names_org = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter().any(|p| match p {
                        RefOr::T(p) => {
                            p.name == "organization_id"
                                && matches!(p.parameter_in, ParameterIn::Query)
                        }
                        RefOr::Ref(_) => false,
                    })
                });
                if names_org && !openai {
                    add("403", "`ORGANIZATION_ACCESS_DENIED`: the caller is not a member of the organization named");
                }
                for (status, response) in responses.iter_mut() {
                    let Ok(code) = status.parse::<u16>() else {
                        continue;
                    };
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if code < 400 {
                        continue;
                    }
                    let Some(example) = sample_for(samples, code, &response.description) else {
                        continue;
                    };
                    for content in response.content.values_mut() {
                        if let RefOr::T(content) = content {
                            content.example = Some(example.clone());
                        }
                    }
                }
            }
        }
    }
}
