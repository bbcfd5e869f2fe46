//! Stored model responses, for `previous_response_id` chains.

use crate::rows::{to_naive, to_utc};
use crate::schema::responses;
use crate::{DbConnection, Scope, StoreError};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use skein_domain::MessageRole;

/// One stored input of a response (user and assistant inputs and other
/// conversation items: system and developer inputs apply to their own
/// request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredInput {
    /// User or assistant.
    pub role: MessageRole,
    /// Text.
    pub content: String,
    /// Token count.
    pub tokens: u32,
    /// A conversation item that is not a message, verbatim (`content` is
    /// then its JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
}

/// A stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// Response id.
    pub id: String,
    /// The caller's scope.
    pub scope: Scope,
    /// The thread, if any.
    pub thread_id: Option<String>,
    /// The response it continued.
    pub previous_response_id: Option<String>,
    /// The requested model name.
    pub model: String,
    /// Its new inputs.
    pub inputs: Vec<StoredInput>,
    /// The answer.
    pub output_text: String,
    /// Token count of the answer.
    pub output_tokens: u32,
    /// Tokens of the context the model received (0 for responses stored
    /// before this was kept).
    pub input_tokens: u32,
    /// Input and output tokens, as the provider reported them.
    pub total_tokens: u32,
    /// What the response was asked with (`instructions`, `temperature`,
    /// `top_p`, `max_output_tokens`, `truncation`), as JSON.
    pub settings: serde_json::Value,
    /// Metadata given with the request.
    pub metadata: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = responses, treat_none_as_default_value = false)]
struct ResponseRow {
    id: String,
    organization_id: String,
    user_id: String,
    thread_id: Option<String>,
    previous_response_id: Option<String>,
    model: String,
    inputs: String,
    output_text: String,
    usage: String,
    metadata: String,
    created_at: NaiveDateTime,
    settings: String,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored response: {e}"))
}

impl TryFrom<ResponseRow> for StoredResponse {
    type Error = StoreError;

    fn try_from(r: ResponseRow) -> Result<Self, StoreError> {
        let usage: serde_json::Value = serde_json::from_str(&r.usage).map_err(corrupt)?;
        let tokens = |key: &str| {
            usage[key]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0)
        };
        Ok(Self {
            scope: Scope {
                organization_id: skein_domain::OrganizationId::parse(r.organization_id)
                    .map_err(corrupt)?,
                user_id: skein_domain::UserId::parse(r.user_id).map_err(corrupt)?,
                live: None,
            },
            id: r.id,
            thread_id: r.thread_id,
            previous_response_id: r.previous_response_id,
            model: r.model,
            inputs: serde_json::from_str(&r.inputs).map_err(corrupt)?,
            output_text: r.output_text,
            output_tokens: tokens("output_tokens"),
            input_tokens: tokens("input_tokens"),
            total_tokens: tokens("total_tokens"),
            settings: serde_json::from_str(&r.settings).map_err(corrupt)?,
            metadata: serde_json::from_str(&r.metadata).map_err(corrupt)?,
            created_at: to_utc(r.created_at),
        })
    }
}

/// Stores a response.
pub fn insert(conn: &mut DbConnection, r: &StoredResponse) -> Result<(), StoreError> {
    let row = ResponseRow {
        id: r.id.clone(),
        organization_id: r.scope.organization_id.to_string(),
        user_id: r.scope.user_id.to_string(),
        thread_id: r.thread_id.clone(),
        previous_response_id: r.previous_response_id.clone(),
        model: r.model.clone(),
        inputs: serde_json::to_string(&r.inputs).map_err(corrupt)?,
        output_text: r.output_text.clone(),
        usage: serde_json::json!({"input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                                  "total_tokens": r.total_tokens})
        .to_string(),
        metadata: r.metadata.to_string(),
        created_at: to_naive(r.created_at),
        settings: r.settings.to_string(),
    };
    diesel::insert_into(responses::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The caller's response, if it exists and was created at or after
/// `not_before` (older ones cannot be referenced).
pub fn find(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    not_before: DateTime<Utc>,
) -> Result<Option<StoredResponse>, StoreError> {
    let row: Option<ResponseRow> = responses::table
        .filter(responses::id.eq(id))
        .filter(responses::organization_id.eq(scope.organization_id.as_str()))
        .filter(responses::user_id.eq(scope.user_id.as_str()))
        .filter(responses::created_at.ge(to_naive(not_before)))
        .select(ResponseRow::as_select())
        .first(conn)
        .optional()?;
    row.map(StoredResponse::try_from).transpose()
}

/// Deletes the caller's response `id` (its thread's messages stay); returns
/// whether there was one.
pub fn delete(conn: &mut DbConnection, scope: &Scope, id: &str) -> Result<bool, StoreError> {
    let n = crate::connection::write_transaction(conn, |conn| -> Result<usize, StoreError> {
        Ok(diesel::delete(
            responses::table
                .filter(responses::id.eq(id))
                .filter(responses::organization_id.eq(scope.organization_id.as_str()))
                .filter(responses::user_id.eq(scope.user_id.as_str())),
        )
        .execute(conn)?)
    })?;
    Ok(n > 0)
}

/// Walks a chain from `id` back through `previous_response_id`, newest
/// first, handing each response to `take` until it returns false or the
/// chain ends (or reaches a response older than `not_before`).
pub fn walk_chain<F>(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    not_before: DateTime<Utc>,
    mut take: F,
) -> Result<(), StoreError>
where
    F: FnMut(&StoredResponse) -> bool,
{
    let mut next = Some(id.to_string());
    while let Some(current) = next {
        let Some(r) = find(conn, scope, &current, not_before)? else {
            return Ok(());
        };
        if !take(&r) {
            return Ok(());
        }
        next = r.previous_response_id.clone();
    }
    Ok(())
}
