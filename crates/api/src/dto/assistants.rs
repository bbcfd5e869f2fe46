//! Wire types of `/v1/assistants`.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use skein_domain::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MIN_PAGE_SIZE};
use skein_domain::{
    Assistant, AssistantError, AssistantName, AssistantSpec, Instructions, Metadata,
    MetadataLimits, Temperature,
};
use skein_persistence::assistants::AssistantPage;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// Body of `POST /v1/assistants`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Support agent",
                          "instructions": "You are a friendly support agent. Answer briefly.",
                          "model": "gpt-4o", "temperature": 0.3, "metadata": {"team": "support"}}))]
pub struct CreateAssistantRequest {
    /// The organization; may be omitted when the caller has only one.
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Display name, 1-256 characters.
    #[serde(default)]
    #[schema(required = true, value_type = String, min_length = 1, max_length = 256)]
    pub name: Option<String>,
    /// System instructions applied to every response in bound threads, at
    /// most 256,000 characters.
    #[serde(default)]
    #[schema(max_length = 256000)]
    pub instructions: Option<String>,
    /// Default model of responses in bound threads.
    #[serde(default)]
    pub model: Option<String>,
    /// Default sampling temperature, 0-2.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// At most 16 keys; keys 1-64 characters; values at most 512 characters
    /// (other JSON values measured serialized); 16 KiB in all.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Body of `PUT /v1/assistants/{assistant_id}`: the fields to change.
/// Absent and `null` fields stay as they are (the published clients send
/// only what changes); `metadata`, when given, replaces the old object.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Support agent v2", "instructions": "Answer in one sentence.",
                          "model": "gpt-4o-mini", "temperature": 0.2, "metadata": {"team": "support"}}))]
pub struct UpdateAssistantRequest {
    /// New display name, 1-256 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub name: Option<String>,
    /// System instructions, at most 256,000 characters.
    #[serde(default)]
    #[schema(max_length = 256000)]
    pub instructions: Option<String>,
    /// Default model.
    #[serde(default)]
    pub model: Option<String>,
    /// Default sampling temperature, 0-2.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// Key-value pairs (same rules as on create); replaces the old ones.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// The owner-set fields of a request, each checked; absent fields are `None`.
#[derive(Debug, Default)]
pub struct AssistantFields {
    /// Display name.
    pub name: Option<AssistantName>,
    /// System instructions.
    pub instructions: Option<Instructions>,
    /// Default model.
    pub model: Option<String>,
    /// Default temperature.
    pub temperature: Option<Temperature>,
    /// Metadata.
    pub metadata: Option<Metadata>,
}

impl AssistantFields {
    /// The fields as an update of `current`: absent fields keep their value.
    pub fn over(self, current: &skein_domain::Assistant) -> AssistantSpec {
        AssistantSpec {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            instructions: self.instructions.or_else(|| current.instructions.clone()),
            model: self.model.or_else(|| current.model.clone()),
            temperature: self.temperature.or(current.temperature),
            metadata: self.metadata.unwrap_or_else(|| current.metadata.clone()),
        }
    }
}

/// Checks every present field, collecting every problem into the 422
/// `detail` list (`loc` `["body", <field>]`); `name` must be present when
/// `name_required`.
fn parse_fields(
    name: Option<String>,
    instructions: Option<String>,
    model: Option<String>,
    temperature: Option<f64>,
    metadata: Option<Map<String, Value>>,
    name_required: bool,
    limits: &MetadataLimits,
) -> Result<AssistantFields, Vec<FieldError>> {
    let mut errors = Vec::new();
    let field_error = |e: AssistantError| FieldError::new(&["body", e.field()], e.to_string());
    let name = match name.map(AssistantName::parse).transpose() {
        Ok(None) if name_required => {
            errors.push(FieldError {
                kind: "missing".into(),
                ..FieldError::new(&["body", "name"], "field required")
            });
            None
        }
        Ok(n) => n,
        Err(e) => {
            errors.push(field_error(e));
            None
        }
    };
    let instructions = match instructions.map(Instructions::parse).transpose() {
        Ok(i) => i,
        Err(e) => {
            errors.push(field_error(e));
            None
        }
    };
    let temperature = match temperature.map(Temperature::parse).transpose() {
        Ok(t) => t,
        Err(e) => {
            errors.push(field_error(e));
            None
        }
    };
    let metadata = match metadata.map(|m| Metadata::parse(m, limits)).transpose() {
        Ok(m) => m,
        Err(e) => {
            errors.push(FieldError::new(&["body", "metadata"], e.to_string()));
            None
        }
    };
    if errors.is_empty() {
        Ok(AssistantFields {
            name,
            instructions,
            model,
            temperature,
            metadata,
        })
    } else {
        Err(errors)
    }
}

impl CreateAssistantRequest {
    /// The parsed fields (`organization_id` is the caller's business).
    pub fn into_spec(self, limits: &MetadataLimits) -> Result<AssistantSpec, Vec<FieldError>> {
        let fields = parse_fields(
            self.name,
            self.instructions,
            self.model,
            self.temperature,
            self.metadata,
            true,
            limits,
        )?;
        match fields.name {
            Some(name) => Ok(AssistantSpec {
                name,
                instructions: fields.instructions,
                model: fields.model,
                temperature: fields.temperature,
                metadata: fields.metadata.unwrap_or_default(),
            }),
            None => Err(vec![FieldError::new(&["body", "name"], "field required")]),
        }
    }
}

impl UpdateAssistantRequest {
    /// The checked fields to change; absent and `null` ones stay as they are.
    pub fn into_fields(self, limits: &MetadataLimits) -> Result<AssistantFields, Vec<FieldError>> {
        parse_fields(
            self.name,
            self.instructions,
            self.model,
            self.temperature,
            self.metadata,
            false,
            limits,
        )
    }
}

/// An assistant. Every field is always present; timestamps are unix seconds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "asst_4kQ9aZp0mX2cVbN8sLr7TyWd", "object": "assistant", "name": "Support agent",
    "instructions": "You are a friendly support agent. Answer briefly.", "model": "gpt-4o",
    "temperature": 0.3, "metadata": {"team": "support"}, "organization_id": "org_12345",
    "created_by": "usr_abc123", "created_at": 1763373600, "updated_at": 1763373600
}))]
pub struct AssistantResponse {
    /// Assistant id (`asst_...`).
    pub id: String,
    /// Always `assistant`.
    pub object: String,
    /// Display name.
    pub name: String,
    /// System instructions.
    pub instructions: Option<String>,
    /// Default model.
    pub model: Option<String>,
    /// Default sampling temperature.
    pub temperature: Option<f64>,
    /// Key-value pairs (`{}` when empty).
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Owning organization.
    pub organization_id: String,
    /// The user who created it (the only one who can see it).
    pub created_by: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last change, unix seconds.
    pub updated_at: i64,
}

impl From<Assistant> for AssistantResponse {
    fn from(a: Assistant) -> Self {
        Self {
            id: a.id.into_string(),
            object: "assistant".into(),
            name: a.name.as_str().to_string(),
            instructions: a.instructions.map(|i| i.as_str().to_string()),
            model: a.model,
            temperature: a.temperature.map(Temperature::value),
            metadata: a.metadata.to_value(),
            organization_id: a.organization_id.into_string(),
            created_by: a.created_by.into_string(),
            created_at: a.created_at.timestamp(),
            updated_at: a.updated_at.timestamp(),
        }
    }
}

/// Query of `GET /v1/assistants`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAssistantsQuery {
    /// Organization (defaults to the caller's only one).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Page size, 1-100 (default 20).
    #[serde(default)]
    #[validate(range(min = MIN_PAGE_SIZE, max = MAX_PAGE_SIZE, message = "limit must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// Assistant id: the page after this assistant (newest first).
    #[serde(default)]
    pub after: Option<String>,
}

impl ListAssistantsQuery {
    /// The page size asked for, or the default.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE_SIZE)
    }
}

/// A page of assistants, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssistantListResponse {
    /// Always `list`.
    pub object: String,
    /// The assistants.
    pub data: Vec<AssistantResponse>,
    /// Id of the first assistant of the page.
    pub first_id: Option<String>,
    /// Id of the last assistant of the page: pass it as `after` for the next page.
    pub last_id: Option<String>,
    /// More assistants exist after this page.
    pub has_more: bool,
}

impl From<AssistantPage> for AssistantListResponse {
    fn from(page: AssistantPage) -> Self {
        let data: Vec<AssistantResponse> = page.assistants.into_iter().map(Into::into).collect();
        Self {
            object: "list".into(),
            first_id: data.first().map(|a| a.id.clone()),
            last_id: data.last().map(|a| a.id.clone()),
            data,
            has_more: page.has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skein_domain::assistant::{
        MAX_ASSISTANT_NAME_CHARS, MAX_INSTRUCTIONS_CHARS, MAX_TEMPERATURE, MIN_TEMPERATURE,
    };

    #[test]
    fn the_documented_limits_are_the_domains() {
        // utoipa takes only literals; this keeps the literals honest.
        for (schema, name_required) in [
            (
                <CreateAssistantRequest as utoipa::PartialSchema>::schema(),
                true,
            ),
            (
                <UpdateAssistantRequest as utoipa::PartialSchema>::schema(),
                false,
            ),
        ] {
            let s = serde_json::to_value(schema).unwrap();
            let p = &s["properties"];
            assert_eq!(p["name"]["maxLength"], json!(MAX_ASSISTANT_NAME_CHARS));
            assert_eq!(
                p["instructions"]["maxLength"],
                json!(MAX_INSTRUCTIONS_CHARS)
            );
            assert_eq!(p["temperature"]["minimum"].as_f64(), Some(MIN_TEMPERATURE));
            assert_eq!(p["temperature"]["maximum"].as_f64(), Some(MAX_TEMPERATURE));
            let required = s["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("name")));
            assert_eq!(required, name_required, "an update may leave the name out");
        }
    }

    #[test]
    fn every_broken_field_is_reported_at_once() {
        let body: CreateAssistantRequest = serde_json::from_value(json!({
            "temperature": 2.5, "instructions": "x".repeat(MAX_INSTRUCTIONS_CHARS + 1)
        }))
        .unwrap();
        let errors = body.into_spec(&MetadataLimits::default()).unwrap_err();
        let locs: Vec<_> = errors.iter().map(|e| e.loc[1].clone()).collect();
        assert_eq!(
            locs,
            vec![json!("name"), json!("instructions"), json!("temperature")]
        );
    }
}
