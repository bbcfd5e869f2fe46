//! `/v1/assistants`: create, read, list, update, delete.

use crate::auth::Caller;
use crate::dto::assistants::{
    AssistantListResponse, AssistantResponse, CreateAssistantRequest, ListAssistantsQuery,
    UpdateAssistantRequest,
};
use crate::dto::OrganizationQuery;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;
use actix_web::{delete, get, post, put, web, HttpResponse};
use skein_domain::Assistant;
use skein_persistence::assistants::{self, AssistantQuery};

type Result<T> = std::result::Result<T, ApiError>;

/// Create an assistant.
///
/// Stores a reusable configuration for model responses: `instructions`
/// (the system prompt), `model` and `temperature`. Bind it to threads with
/// their `assistant_id`; its settings then apply to every response in those
/// threads unless the request overrides them. The assistant is private to
/// its creator within the organization. `organization_id` may be omitted
/// when the caller belongs to one organization only.
#[utoipa::path(
    tag = "assistants",
    operation_id = "create_assistant",
    request_body = CreateAssistantRequest,
    responses(
        (status = 201, description = "The new assistant", body = AssistantResponse),
        (status = 400, description = "Malformed JSON (`INVALID_JSON`)", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 413, description = "Body larger than the limit", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (name, instructions, temperature, metadata)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[post("/v1/assistants")]
pub async fn create_assistant(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateAssistantRequest>,
) -> Result<HttpResponse> {
    let now = state.clock.now();
    let body = body.0;
    let organization_id = caller.organization(body.organization_id.as_deref())?;
    let spec = body
        .into_spec(&state.limits.metadata)
        .map_err(ApiError::Validation)?;
    let assistant = Assistant::new(organization_id, caller.user_id.clone(), spec, now);
    let assistant = state
        .store
        .run(move |conn| -> Result<Assistant> {
            assistants::insert(conn, &assistant)?;
            Ok(assistant)
        })
        .await?;
    Ok(HttpResponse::Created().json(AssistantResponse::from(assistant)))
}

/// Get an assistant.
///
/// Returns the assistant if the caller created it in this organization;
/// any other assistant answers 404 exactly as a missing one.
#[utoipa::path(
    tag = "assistants",
    operation_id = "get_assistant",
    params(("assistant_id" = String, Path, description = "Assistant id"), OrganizationQuery),
    responses(
        (status = 200, description = "The assistant", body = AssistantResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`ASSISTANT_NOT_FOUND`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/assistants/{assistant_id}")]
pub async fn get_assistant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<AssistantResponse>> {
    let id = path.into_inner();
    let scope = caller.scope(query.0.organization_id.as_deref())?;
    let lookup = id.clone();
    let assistant = state
        .store
        .run(move |conn| assistants::find(conn, &scope, &lookup))
        .await?
        .ok_or_else(|| ApiError::AssistantNotFound(id))?;
    Ok(web::Json(assistant.into()))
}

/// List assistants.
///
/// The caller's assistants in the organization, newest first, one page at a
/// time. Walk with `after=<last_id>` until `has_more` is false: pages never
/// repeat or skip an assistant and cost the same at any depth.
#[utoipa::path(
    tag = "assistants",
    operation_id = "list_assistants",
    params(ListAssistantsQuery),
    responses(
        (status = 200, description = "One page of assistants", body = AssistantListResponse),
        (status = 400, description = "`INVALID_REQUEST`: the `after` cursor names none of your assistants", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (limit)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[get("/v1/assistants")]
pub async fn list_assistants(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<ListAssistantsQuery>,
) -> Result<web::Json<AssistantListResponse>> {
    let q = query.0;
    let scope = caller.scope(q.organization_id.as_deref())?;
    let query = AssistantQuery {
        limit: q.page_size(),
        after: q.after,
    };
    let page = state
        .store
        .run(move |conn| assistants::list(conn, &scope, &query))
        .await?;
    Ok(web::Json(page.into()))
}

/// Update an assistant.
///
/// Changes the fields given; absent and `null` fields stay as they are
/// (`metadata`, when given, replaces the old object). `updated_at`
/// moves; the id, owner, organization and `created_at` stay. Threads bound
/// to the assistant use the new settings from their next response on.
#[utoipa::path(
    tag = "assistants",
    operation_id = "update_assistant",
    params(("assistant_id" = String, Path, description = "Assistant id"), OrganizationQuery),
    request_body = UpdateAssistantRequest,
    responses(
        (status = 200, description = "The updated assistant", body = AssistantResponse),
        (status = 400, description = "Malformed JSON (`INVALID_JSON`)", body = ErrorResponse),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`ASSISTANT_NOT_FOUND`", body = ErrorResponse),
        (status = 413, description = "Body larger than the limit", body = ErrorResponse),
        (status = 422, description = "`VALIDATION_ERROR` (name, instructions, temperature, metadata)", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[put("/v1/assistants/{assistant_id}")]
pub async fn update_assistant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
    body: JsonBody<UpdateAssistantRequest>,
) -> Result<web::Json<AssistantResponse>> {
    let now = state.clock.now();
    let id = path.into_inner();
    let scope = caller.scope(query.0.organization_id.as_deref())?;
    let fields = body
        .0
        .into_fields(&state.limits.metadata)
        .map_err(ApiError::Validation)?;
    let lookup = id.clone();
    let assistant = state
        .store
        .run(move |conn| {
            assistants::modify(conn, &scope, &lookup, now, |current| fields.over(current))
        })
        .await
        .map_err(ApiError::from)?;
    Ok(web::Json(assistant.into()))
}

/// Delete an assistant.
///
/// Deletes the assistant for good. Threads bound to it keep its id in
/// `assistant_id`; new threads can no longer bind to it.
#[utoipa::path(
    tag = "assistants",
    operation_id = "delete_assistant",
    params(("assistant_id" = String, Path, description = "Assistant id"), OrganizationQuery),
    responses(
        (status = 204, description = "Deleted (empty body)"),
        (status = 401, description = "Missing or invalid credentials", body = ErrorResponse),
        (status = 403, description = "`ORGANIZATION_ACCESS_DENIED`", body = ErrorResponse),
        (status = 404, description = "`ASSISTANT_NOT_FOUND`", body = ErrorResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
#[delete("/v1/assistants/{assistant_id}")]
pub async fn delete_assistant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let scope = caller.scope(query.0.organization_id.as_deref())?;
    let lookup = id.clone();
    state
        .store
        .run(move |conn| assistants::delete(conn, &scope, &lookup))
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::NoContent().finish())
}
