//! Wire types: what requests carry and what answers look like.
//!
//! Output is snake_case only; input also accepts the camelCase spellings of
//! the product documents. Limits in the schema come from the domain's
//! constants, so the document and the rules cannot drift apart.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use skein_domain::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MIN_PAGE_SIZE};
use skein_domain::{Thread, ThreadState, ThreadStatus};
use skein_persistence::{ListOrder, ThreadPage};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

/// RFC 3339 UTC with milliseconds: `2025-11-17T10:00:00.000Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Lifecycle state on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateDto {
    /// Accepts messages and responses.
    Open,
    /// Read-only, can be reopened.
    Locked,
    /// Read-only, permanent.
    Archived,
}

impl From<StateDto> for ThreadState {
    fn from(s: StateDto) -> Self {
        match s {
            StateDto::Open => ThreadState::Open,
            StateDto::Locked => ThreadState::Locked,
            StateDto::Archived => ThreadState::Archived,
        }
    }
}

impl From<ThreadState> for StateDto {
    fn from(s: ThreadState) -> Self {
        match s {
            ThreadState::Open => StateDto::Open,
            ThreadState::Locked => StateDto::Locked,
            ThreadState::Archived => StateDto::Archived,
        }
    }
}

/// Generation status on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusDto {
    /// Nothing running.
    Inactive,
    /// A response is being generated.
    Streaming,
}

impl From<ThreadStatus> for StatusDto {
    fn from(s: ThreadStatus) -> Self {
        match s {
            ThreadStatus::Inactive => StatusDto::Inactive,
            ThreadStatus::Streaming => StatusDto::Streaming,
        }
    }
}

/// Body of `POST /v1/threads`. Every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"title": "Support chat",
                          "metadata": {"category": "support", "priority": "high"}}))]
pub struct CreateThreadRequest {
    /// The organization; may be omitted when the caller has only one.
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Display name, at most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// At most 16 keys; keys 1-64 characters; values at most 512 characters
    /// (other JSON values measured serialized); 16 KiB in all.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Assistant to bind (same organization).
    #[serde(default, alias = "assistantId")]
    pub assistant_id: Option<String>,
    /// Shown in user interfaces (default true). Requires a user token.
    #[serde(default, alias = "visibleInUi")]
    pub visible_in_ui: Option<bool>,
    /// An opaque label (1-256 characters) that `GET /v1/threads?workflow_id=`
    /// filters by. Set at creation only.
    #[serde(default, alias = "workflowId")]
    #[schema(max_length = 256, example = "wf_onboarding")]
    pub workflow_id: Option<String>,
    /// Incognito: the thread is deleted for good at `expected_deletion_at`
    /// (creation + `SKEIN_INCOGNITO_TTL`, default 24 h), without the
    /// deleted grace period. Set at creation only.
    #[serde(default, alias = "isIncognito")]
    pub is_incognito: Option<bool>,
}

/// Body of `POST /v1/threads/{thread_id}/fork`. Every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"title": "Try the other plan"}))]
pub struct ForkThreadRequest {
    /// The parent's message the fork ends with (it holds the parent's
    /// messages up to and including this one). Default: the parent's newest
    /// message.
    #[serde(default, alias = "messageId")]
    pub message_id: Option<String>,
    /// The fork's title (default: the parent's; `""`: none).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// The fork's metadata (default: the parent's), same limits as on
    /// creation.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Where a fork comes from (`forked_from` of a thread).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ForkedFromDto {
    /// The parent thread.
    pub thread_id: String,
    /// The parent's last message the fork holds (null when the parent had
    /// no message).
    pub message_id: Option<String>,
}

/// Body of `PATCH /v1/threads/{thread_id}`. Absent and `null` fields are left
/// as they are; `"title": ""` clears the title; metadata merges, and a key
/// set to `null` is removed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"title": "Updated title", "metadata": {"status": "resolved", "draft": null}}))]
pub struct UpdateThreadRequest {
    /// New title (`""` clears it).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// Merged into the existing metadata.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// New assistant; only while the thread has no messages.
    #[serde(default, alias = "assistantId")]
    pub assistant_id: Option<String>,
    /// New visibility. Requires a user token.
    #[serde(default, alias = "visibleInUi")]
    pub visible_in_ui: Option<bool>,
    /// Lifecycle transition: open<->locked, open/locked->archived.
    #[serde(default)]
    pub state: Option<StateDto>,
}

/// A conversation thread. Every field is always present.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "thread_6fQk2mZp0aX9cVbN3sLr7TyW", "object": "thread",
    "created_at": "2025-11-17T10:00:00.000Z", "updated_at": "2025-11-17T10:00:00.000Z",
    "last_message_at": null, "metadata": {"category": "support"}, "assistant_id": null,
    "organization_id": "org_12345", "user_id": "usr_abc123", "title": "Support chat",
    "status": "inactive", "state": "open", "message_count": 0, "visible_in_ui": true,
    "last_model_used": null, "is_pinned": false, "pinned_at": null, "space_ids": [],
    "workflow_id": null, "is_incognito": false, "expected_deletion_at": null, "has_unread": false,
    "forked_from": null
}))]
pub struct ThreadResponse {
    /// Thread id.
    pub id: String,
    /// Always `thread`.
    pub object: String,
    /// Creation time (RFC 3339, milliseconds, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Time of the newest message.
    #[schema(format = DateTime)]
    pub last_message_at: Option<String>,
    /// Key-value pairs (`{}` when empty).
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Bound assistant.
    pub assistant_id: Option<String>,
    /// Owning organization.
    pub organization_id: String,
    /// Creator.
    pub user_id: String,
    /// Display name.
    pub title: Option<String>,
    /// `streaming` while a response is being generated.
    pub status: StatusDto,
    /// Lifecycle state.
    pub state: StateDto,
    /// Number of messages.
    pub message_count: i64,
    /// Shown in user interfaces.
    pub visible_in_ui: bool,
    /// Model of the last response.
    pub last_model_used: Option<String>,
    /// Pinned.
    pub is_pinned: bool,
    /// When pinned.
    #[schema(format = DateTime)]
    pub pinned_at: Option<String>,
    /// Spaces (always empty in Skein).
    pub space_ids: Vec<String>,
    /// The client's label, set at creation.
    pub workflow_id: Option<String>,
    /// Deleted for good at `expected_deletion_at`.
    pub is_incognito: bool,
    /// When an incognito thread is deleted (null for the others).
    #[schema(format = DateTime)]
    pub expected_deletion_at: Option<String>,
    /// An assistant message arrived after the caller last marked the
    /// thread read (`POST /v1/threads/{thread_id}/read`), or the thread was
    /// never read and holds one.
    pub has_unread: bool,
    /// The thread and message this thread was forked at
    /// (`POST /v1/threads/{thread_id}/fork`); null for other threads.
    pub forked_from: Option<ForkedFromDto>,
    /// Only on soft-deleted threads (listed with `include_deleted=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub deleted_at: Option<String>,
}

impl From<Thread> for ThreadResponse {
    fn from(t: Thread) -> Self {
        Self {
            is_pinned: t.is_pinned(),
            id: t.id().as_str().to_string(),
            object: "thread".into(),
            created_at: timestamp(t.created_at()),
            updated_at: timestamp(t.updated_at()),
            last_message_at: t.last_message_at().map(timestamp),
            metadata: t.metadata().to_value(),
            assistant_id: t.assistant_id().map(|a| a.as_str().to_string()),
            organization_id: t.organization_id().as_str().to_string(),
            user_id: t.user_id().as_str().to_string(),
            title: t.title().map(|x| x.as_str().to_string()),
            status: t.status().into(),
            state: t.state().into(),
            message_count: t.message_count(),
            visible_in_ui: t.visible_in_ui(),
            last_model_used: t.last_model_used().map(str::to_string),
            pinned_at: t.pinned_at().map(timestamp),
            space_ids: Vec::new(),
            workflow_id: t.workflow_id().map(str::to_string),
            is_incognito: t.is_incognito(),
            expected_deletion_at: t.expected_deletion_at().map(timestamp),
            has_unread: t.has_unread(),
            forked_from: t.forked_from().map(|f| ForkedFromDto {
                thread_id: f.thread_id.as_str().to_string(),
                message_id: f.message_id.as_ref().map(|m| m.as_str().to_string()),
            }),
            deleted_at: t.deleted_at().map(timestamp),
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderDto {
    /// Oldest first.
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

impl From<OrderDto> for ListOrder {
    fn from(o: OrderDto) -> Self {
        match o {
            OrderDto::Asc => ListOrder::Asc,
            OrderDto::Desc => ListOrder::Desc,
        }
    }
}

/// Query of `GET /v1/threads`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListThreadsQuery {
    /// Organization (defaults to the caller's only one).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Page size, 1-100 (default 20).
    #[serde(default)]
    #[validate(range(min = MIN_PAGE_SIZE, max = MAX_PAGE_SIZE, message = "limit must be between 1 and 100"))]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// `desc` (newest first, default) or `asc`, by creation time.
    #[serde(default)]
    #[param(inline)]
    pub order: Option<OrderDto>,
    /// Thread id: the page after this thread in the current order.
    #[serde(default)]
    pub after: Option<String>,
    /// Thread id: the page before this thread in the current order.
    #[serde(default)]
    pub before: Option<String>,
    /// Only threads bound to this assistant.
    #[serde(default, alias = "assistantId")]
    pub assistant_id: Option<String>,
    /// Only visible (true) or hidden (false) threads; default: both.
    #[serde(default, alias = "visibleInUi")]
    pub visible_in_ui: Option<bool>,
    /// Only pinned (true) or unpinned (false) threads.
    #[serde(default, alias = "isPinned")]
    pub is_pinned: Option<bool>,
    /// Also list soft-deleted threads (they carry `deleted_at`).
    #[serde(default, alias = "includeDeleted")]
    pub include_deleted: Option<bool>,
    /// Count all matching threads into `total`.
    #[serde(default, alias = "includeTotal")]
    pub include_total: Option<bool>,
    /// Only threads with this `workflow_id`.
    #[serde(default, alias = "workflowId")]
    pub workflow_id: Option<String>,
    /// Only threads whose title contains this text, ignoring case (Unicode
    /// case folding); at most 200 characters. Combines with every other
    /// filter and with the cursors.
    #[serde(default)]
    #[validate(length(max = 200, message = "search must be at most 200 characters"))]
    #[param(max_length = 200, example = "invoice")]
    pub search: Option<String>,
    /// Only threads in this lifecycle state: `open`, `locked` or `archived`.
    #[serde(default)]
    #[param(example = "open")]
    pub state: Option<String>,
    /// Only threads created after this time (RFC 3339).
    #[serde(default, alias = "createdAfter")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only threads created before this time (RFC 3339).
    #[serde(default, alias = "createdBefore")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only threads changed after this time (RFC 3339; `updated_at`).
    #[serde(default, alias = "updatedAfter")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub updated_after: Option<chrono::DateTime<chrono::Utc>>,
}

impl ListThreadsQuery {
    /// The page size asked for, or the default.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE_SIZE)
    }
}

/// A page of threads.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ThreadListResponse {
    /// Always `list`.
    pub object: String,
    /// The threads.
    pub data: Vec<ThreadResponse>,
    /// Id of the first thread of the page.
    pub first_id: Option<String>,
    /// Id of the last thread of the page: pass it as `after` for the next page.
    pub last_id: Option<String>,
    /// More threads exist beyond this page.
    pub has_more: bool,
    /// The page size used.
    pub limit: u32,
    /// Number of matching threads with `include_total=true`, else null.
    pub total: Option<i64>,
}

impl ThreadListResponse {
    /// Builds the list object from a page.
    pub fn new(page: ThreadPage, limit: u32) -> Self {
        let data: Vec<ThreadResponse> = page.threads.into_iter().map(Into::into).collect();
        Self {
            object: "list".into(),
            first_id: data.first().map(|t| t.id.clone()),
            last_id: data.last().map(|t| t.id.clone()),
            data,
            has_more: page.has_more,
            limit,
            total: page.total,
        }
    }
}

/// Optional `organization_id` query parameter.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganizationQuery {
    /// Organization (defaults to the caller's only one).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
}

/// Answer of pin and unpin.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "thread_6fQk2mZp0aX9cVbN3sLr7TyW", "is_pinned": true,
                          "pinned_at": "2025-11-17T10:00:00.000Z", "message": "Thread pinned"}))]
pub struct PinResponse {
    /// Thread id.
    pub id: String,
    /// Pinned after the call.
    pub is_pinned: bool,
    /// When pinned.
    #[schema(format = DateTime)]
    pub pinned_at: Option<String>,
    /// What happened.
    pub message: String,
}

/// Answer of `DELETE /v1/threads`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"deleted": 3, "message": "Deleted 3 threads"}))]
pub struct DeleteAllResponse {
    /// Number of threads deleted.
    pub deleted: usize,
    /// What happened.
    pub message: String,
}

/// Answer of the health endpoints.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or `ready`.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skein_domain::limits::MAX_TITLE_CHARS;

    #[test]
    fn the_documented_title_limit_is_the_domains() {
        // utoipa takes only literals; this keeps the literal honest.
        let schema =
            serde_json::to_value(<CreateThreadRequest as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(
            schema["properties"]["title"]["maxLength"],
            json!(MAX_TITLE_CHARS)
        );
    }

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let t = DateTime::parse_from_rfc3339("2025-11-17T10:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(timestamp(t), "2025-11-17T10:00:00.000Z");
    }
}

pub mod assistants;
pub mod content;
pub mod messages;
pub mod responses;

/// Query of `generateName`.
#[derive(Debug, Default, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GenerateNameQuery {
    /// Organization (defaults to the caller's only one).
    #[serde(default, alias = "organizationId")]
    pub organization_id: Option<String>,
    /// Accepted for compatibility; the answer is always JSON.
    #[serde(default)]
    pub stream: Option<bool>,
}

/// One message to name a thread from.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NamingMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text, or text blocks.
    pub content: content::ContentInput,
}

/// Optional body of `generateName`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"messages": [{"role": "user", "content": "How do I reset my password?"}]}))]
pub struct GenerateNameRequest {
    /// Messages to name the thread from; default: its last 10 messages.
    #[serde(default)]
    pub messages: Option<Vec<NamingMessage>>,
}

/// Answer of `generateName`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"success": true, "thread_id": "thread_6fQk2mZp0aX9cVbN3sLr7TyW",
                          "name": "How do I reset my", "title": "How do I reset my",
                          "message": "Thread name generated"}))]
pub struct GenerateNameResponse {
    /// Always true.
    pub success: bool,
    /// The thread.
    pub thread_id: String,
    /// The new title.
    pub name: String,
    /// The new title (same as `name`).
    pub title: String,
    /// What happened.
    pub message: String,
}

/// The `state` filter of a thread list (`open`, `locked`, `archived`).
pub fn state_filter(
    state: Option<&str>,
) -> Result<Option<skein_domain::ThreadState>, crate::error::ApiError> {
    state
        .map(|s| {
            skein_domain::ThreadState::parse(s).ok_or_else(|| {
                crate::error::ApiError::Validation(vec![crate::error::FieldError::new(
                    &["query", "state"],
                    "state must be open, locked or archived",
                )])
            })
        })
        .transpose()
}

/// The `metadata[KEY]=VALUE` filters of a list's query string: at most 16,
/// keys of 1-64 characters, values of at most 512 (else 422 at
/// `["query", "metadata[KEY]"]`). A thread matches when its metadata holds
/// every KEY with the string VALUE.
pub fn metadata_filters(query: &str) -> Result<Vec<(String, String)>, crate::error::ApiError> {
    use crate::error::{ApiError, FieldError};
    let mut filters = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(key) = name
            .strip_prefix("metadata[")
            .and_then(|rest| rest.strip_suffix(']'))
        else {
            continue;
        };
        let refuse =
            |msg: &str| ApiError::Validation(vec![FieldError::new(&["query", name.as_ref()], msg)]);
        if key.is_empty() || key.chars().count() > 64 {
            return Err(refuse("a metadata key is 1 to 64 characters"));
        }
        if value.chars().count() > 512 {
            return Err(refuse("a metadata value is at most 512 characters"));
        }
        filters.push((key.to_string(), value.into_owned()));
        if filters.len() > 16 {
            return Err(refuse("at most 16 metadata filters"));
        }
    }
    Ok(filters)
}

/// A list takes `after` or `before`, not both (400 `INVALID_REQUEST`).
pub fn one_cursor<A, B>(
    after: &Option<A>,
    before: &Option<B>,
) -> Result<(), crate::error::ApiError> {
    if after.is_some() && before.is_some() {
        return Err(crate::error::ApiError::InvalidRequest(
            "use either 'after' or 'before', not both".into(),
        ));
    }
    Ok(())
}
