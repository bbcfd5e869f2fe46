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
use skein_domain::{Assistant, AssistantId};
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
    let organization = body.organization_id.clone();
    let spec = body
        .into_spec(&state.limits.metadata)
        .map_err(ApiError::Validation)?;
    let assistant = caller
        .run(move |conn, who| -> Result<Assistant> {
            let organization_id = who.organization(organization.as_deref())?;
            let assistant = Assistant::new(
                AssistantId::generate(),
                organization_id,
                who.user_id.clone(),
                spec,
                now,
            );
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
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<web::Json<AssistantResponse>> {
    let id = path.into_inner();
    let org = query.0.organization_id;
    let assistant = caller
        .run(move |conn, who| {
            let scope = who.scope(org.as_deref())?;
            assistants::find(conn, &scope, &id)?.ok_or(ApiError::AssistantNotFound(id))
        })
        .await?;
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
    caller: Caller,
    query: QueryParams<ListAssistantsQuery>,
) -> Result<web::Json<AssistantListResponse>> {
    let q = query.0;
    let query = AssistantQuery {
        limit: q.page_size(),
        after: q.after,
    };
    let org = q.organization_id;
    let page = caller
        .run(move |conn, who| {
            let scope = who.scope(org.as_deref())?;
            Ok(assistants::list(conn, &scope, &query)?)
        })
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
    let org = query.0.organization_id;
    let fields = body
        .0
        .into_fields(&state.limits.metadata)
        .map_err(ApiError::Validation)?;
    let assistant = caller
        .run(move |conn, who| {
            let scope = who.scope(org.as_deref())?;
            Ok(assistants::modify(conn, &scope, &id, now, |current| {
                fields.over(current)
            })?)
        })
        .await?;
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
    caller: Caller,
    path: web::Path<String>,
    query: QueryParams<OrganizationQuery>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let org = query.0.organization_id;
    caller
        .run(move |conn, who| {
            let scope = who.scope(org.as_deref())?;
            Ok(assistants::delete(conn, &scope, &id)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
