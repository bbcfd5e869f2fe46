//! `GET /v1/models` and `GET /v1/models/{model}`: the routing table in
//! OpenAI's shape.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use utoipa::ToSchema;

type Result<T> = std::result::Result<T, ApiError>;

/// When this process started (unix seconds): the `created` of every model.
static STARTED: LazyLock<i64> = LazyLock::new(|| chrono::Utc::now().timestamp());

/// Fixes [`STARTED`] (called when the app is built).
pub fn mark_start() {
    LazyLock::force(&STARTED);
}

/// A model.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "gpt-4.1", "object": "model", "created": 1764500000, "owned_by": "openai"}))]
pub struct Model {
    /// The name to pass as `model` (a configured pattern; a glob such as
    /// `gpt-4*` stands for every name it matches; `default` is the
    /// default route).
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// When this server started (unix seconds).
    pub created: i64,
    /// The provider serving it (its name in the configuration).
    pub owned_by: String,
}

/// The list of models.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [
    {"id": "gpt-4*", "object": "model", "created": 1764500000, "owned_by": "openai"},
    {"id": "default", "object": "model", "created": 1764500000, "owned_by": "echo"}]}))]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The models, in routing order.
    pub data: Vec<Model>,
}

fn model(id: String, owned_by: String) -> Model {
    Model {
        id,
        object: "model".into(),
        created: *STARTED,
        owned_by,
    }
}

/// List models.
///
/// The configured routes: each pattern with the provider that serves it,
/// then `default` when a default route exists.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_list_models",
    responses(
        (status = 200, description = "The models", body = ModelList),
        (status = 401, description = "Missing or invalid credentials (OpenAI's envelope)", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/models")]
pub async fn list_models(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<ModelList>> {
    caller.identity().await?;
    Ok(web::Json(ModelList {
        object: "list".into(),
        data: state
            .router
            .listed()
            .into_iter()
            .map(|(id, owner)| model(id, owner))
            .collect(),
    }))
}

/// Retrieve a model.
///
/// Any name the routing table serves (an exact route, a name a glob
/// matches, or any name at all when a default route exists); else 404
/// `model_not_found`.
#[utoipa::path(
    tag = "openai",
    operation_id = "openai_retrieve_model",
    params(("model" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "The model", body = Model),
        (status = 401, description = "Missing or invalid credentials (OpenAI's envelope)", body = super::errors::OpenAiError),
        (status = 404, description = "`model_not_found`", body = super::errors::OpenAiError),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/models/{model}")]
pub async fn retrieve_model(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<web::Json<Model>> {
    caller.identity().await?;
    let name = path.into_inner();
    // A name no client could send as `model` names no model.
    if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::ModelNotFound(name));
    }
    match state.router.resolve(&name) {
        Some(resolved) => Ok(web::Json(model(name, resolved.provider_name))),
        None => Err(ApiError::ModelNotFound(name)),
    }
}
