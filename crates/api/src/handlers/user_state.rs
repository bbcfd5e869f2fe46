//! Per-user thread settings (contract 9.4):
//! `GET` and `PATCH /v1/threads/{thread_id}/user-state`.

use crate::auth::Caller;
use crate::dto::OrganizationQuery;
use crate::error::{ApiError, ErrorResponse, FieldError};
use crate::extract::{JsonBody, QueryParams};
use actix_web::{get, patch, web};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use skein_persistence::threads;
use utoipa::ToSchema;

type Result<T> = std::result::Result<T, ApiError>;

/// The settings (every field null when not set).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ThreadUserState {
    /// The model for this thread's responses: the request's `model` wins
    /// over it, and it wins over the bound assistant's model.
    pub model_override: Option<String>,
    /// A reasoning effort the client prefers (`low`, `medium`, `high`;
    /// kept for the client, not sent to models).
    pub reasoning_override: Option<String>,
    /// Tool names the user disabled (kept for the client).
    pub disabled_tools: Option<Vec<String>>,
    /// Conflict key -> the chosen tool name (kept for the client).
    pub tool_conflict_choices: Option<Map<String, Value>>,
}

/// Answer of both operations.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"thread_id": "thread_6fQk2mZp0aX9cVbN3sLr7TyW",
    "state": {"model_override": "gpt-4.1", "reasoning_override": null,
              "disabled_tools": ["web_search"], "tool_conflict_choices": null}}))]
pub struct ThreadUserStateResponse {
    /// The thread.
    pub thread_id: String,
    /// The settings.
    pub state: ThreadUserState,
}

/// `PATCH` body: a field that is absent is kept, a field set to `null` is
/// cleared. Other fields are ignored, as on every other route.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(example = json!({"model_override": "gpt-4.1", "disabled_tools": null}))]
pub struct PatchThreadUserState {
    /// A model name (1-128 characters), or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub model_override: Option<Value>,
    /// A reasoning level (`low`, `medium`, `high`), or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub reasoning_override: Option<Value>,
    /// Tool names (at most 128, each 1-128 characters), or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub disabled_tools: Option<Value>,
    /// Conflict key -> tool name (at most 128 pairs; a null value removes
    /// the key), or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub tool_conflict_choices: Option<Value>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

const MAX_ITEMS: usize = 128;
const MAX_TEXT: usize = 128;

fn text_ok(v: &str) -> bool {
    !v.is_empty() && v.chars().count() <= MAX_TEXT
}

impl PatchThreadUserState {
    /// The patch as stored keys, every value checked (422 with `loc`).
    fn into_patch(self, current: &Map<String, Value>) -> Result<Map<String, Value>> {
        let invalid = |field: &str, msg: &str| {
            ApiError::Validation(vec![FieldError::new(&["body", field], msg)])
        };
        let mut patch = Map::new();
        if let Some(v) = self.model_override {
            match &v {
                Value::Null => {}
                Value::String(s) if text_ok(s) => {}
                _ => {
                    return Err(invalid(
                        "model_override",
                        "a model name of 1-128 characters, or null",
                    ))
                }
            }
            patch.insert("model_override".into(), v);
        }
        if let Some(v) = self.reasoning_override {
            match &v {
                Value::Null => {}
                Value::String(s) if ["low", "medium", "high"].contains(&s.as_str()) => {}
                _ => return Err(invalid("reasoning_override", "low, medium, high, or null")),
            }
            patch.insert("reasoning_override".into(), v);
        }
        if let Some(v) = self.disabled_tools {
            let ok = match &v {
                Value::Null => true,
                Value::Array(items) => {
                    items.len() <= MAX_ITEMS
                        && items.iter().all(|i| i.as_str().is_some_and(text_ok))
                }
                _ => false,
            };
            if !ok {
                return Err(invalid(
                    "disabled_tools",
                    "a list of at most 128 tool names of 1-128 characters, or null",
                ));
            }
            patch.insert("disabled_tools".into(), v);
        }
        if let Some(v) = self.tool_conflict_choices {
            let merged = match v {
                Value::Null => Value::Null,
                Value::Object(choices) => {
                    // Merged into the stored choices: a null value removes
                    // its key.
                    let mut all = current
                        .get("tool_conflict_choices")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    for (k, c) in choices {
                        match c {
                            Value::Null => {
                                all.remove(&k);
                            }
                            Value::String(s) if text_ok(&k) && text_ok(&s) => {
                                all.insert(k, Value::String(s));
                            }
                            _ => {
                                return Err(invalid(
                                    "tool_conflict_choices",
                                    "an object of conflict keys to tool names (1-128 characters) or null",
                                ))
                            }
                        }
                    }
                    if all.len() > MAX_ITEMS {
                        return Err(invalid("tool_conflict_choices", "at most 128 choices"));
                    }
                    if all.is_empty() {
                        Value::Null
                    } else {
                        Value::Object(all)
                    }
                }
                _ => {
                    return Err(invalid(
                        "tool_conflict_choices",
                        "an object of conflict keys to tool names, or null",
                    ))
                }
            };
            patch.insert("tool_conflict_choices".into(), merged);
        }
        Ok(patch)
    }
}

fn respond(thread_id: String, stored: Map<String, Value>) -> ThreadUserStateResponse {
    ThreadUserStateResponse {
        thread_id,
        // Only keys this server writes are stored.
        state: serde_json::from_value(Value::Object(stored)).unwrap_or_default(),
    }
}

/// Get the caller's thread settings.
///
/// Defaults (every field null) until something was set.
#[utoipa::path(
    tag = "threads",
    operation_id = "get_thread_user_state",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    responses(
        (status = 200, description = "The settings", body = ThreadUserStateResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/threads/{thread_id}/user-state")]
pub async fn get_thread_user_state(
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<ThreadUserStateResponse>> {
    let id = path.into_inner();
    let org = query.0.organization_id;
    let thread_id = id.clone();
    let stored = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            Ok(threads::user_state(conn, &scope, &id)?)
        })
        .await?;
    Ok(web::Json(respond(thread_id, stored)))
}

/// Change the caller's thread settings.
///
/// Merges the body into the stored settings: a field that is absent is
/// kept, a field set to `null` is cleared (in `tool_conflict_choices`, a
/// key set to `null` is removed). `model_override` applies to the thread's
/// responses: the request's `model` > `model_override` > the bound
/// assistant's model > the default.
#[utoipa::path(
    tag = "threads",
    operation_id = "patch_thread_user_state",
    params(("thread_id" = String, Path, description = "Thread id"), OrganizationQuery),
    request_body = PatchThreadUserState,
    responses(
        (status = 200, description = "The settings as saved", body = ThreadUserStateResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 404, description = "`THREAD_NOT_FOUND`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR`: a value of the wrong shape", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[patch("/v1/threads/{thread_id}/user-state")]
pub async fn patch_thread_user_state(
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
    body: JsonBody<PatchThreadUserState>,
) -> Result<web::Json<ThreadUserStateResponse>> {
    let id = path.into_inner();
    let org = query.0.organization_id;
    let thread_id = id.clone();
    let body = body.0;
    let stored = caller
        .run(move |conn, who| {
            let scope = who.thread_scope(conn, org.as_deref(), &id)?;
            threads::patch_user_state(conn, &scope, &id, |current| body.into_patch(current))
        })
        .await?;
    Ok(web::Json(respond(thread_id, stored)))
}
