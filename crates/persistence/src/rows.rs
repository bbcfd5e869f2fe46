//! Row types per operation and their conversions to and from domain types.

use crate::schema::{api_keys, assistants, threads};
use crate::StoreError;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use skein_domain::{
    AssistantId, Metadata, OrganizationId, Thread, ThreadId, ThreadState, ThreadStatus,
    ThreadTitle, UserId,
};

/// Stored timestamps are naive UTC.
pub fn to_naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// Stored timestamps read back as UTC.
pub fn to_utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// A full thread row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = threads)]
pub struct ThreadRow {
    /// Internal insertion sequence, the keyset-pagination key.
    pub pk: i64,
    /// Public id.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Creator.
    pub user_id: String,
    /// Title.
    pub title: Option<String>,
    /// Metadata as JSON text.
    pub metadata: String,
    /// Bound assistant.
    pub assistant_id: Option<String>,
    /// `inactive` or `streaming`.
    pub status: String,
    /// `open`, `locked` or `archived`.
    pub state: String,
    /// Number of messages.
    pub message_count: i64,
    /// Visible in UIs.
    pub visible_in_ui: bool,
    /// Last model used.
    pub last_model_used: Option<String>,
    /// Pin time.
    pub pinned_at: Option<NaiveDateTime>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last update.
    pub updated_at: NaiveDateTime,
    /// Newest message time.
    pub last_message_at: Option<NaiveDateTime>,
    /// Soft-delete time.
    pub deleted_at: Option<NaiveDateTime>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl TryFrom<ThreadRow> for Thread {
    type Error = StoreError;

    fn try_from(r: ThreadRow) -> Result<Self, StoreError> {
        let metadata = match serde_json::from_str(&r.metadata) {
            Ok(serde_json::Value::Object(map)) => Metadata::from_stored(map),
            Ok(_) => return Err(corrupt("thread metadata", "not an object")),
            Err(e) => return Err(corrupt("thread metadata", e)),
        };
        Ok(Thread {
            id: ThreadId::parse(r.id).map_err(|e| corrupt("thread id", e))?,
            organization_id: OrganizationId::parse(r.organization_id)
                .map_err(|e| corrupt("organization id", e))?,
            user_id: UserId::parse(r.user_id).map_err(|e| corrupt("user id", e))?,
            title: r.title.map(ThreadTitle::from_stored),
            metadata,
            assistant_id: r
                .assistant_id
                .map(AssistantId::parse)
                .transpose()
                .map_err(|e| corrupt("assistant id", e))?,
            status: ThreadStatus::parse(&r.status)
                .ok_or_else(|| corrupt("thread status", &r.status))?,
            state: ThreadState::parse(&r.state).ok_or_else(|| corrupt("thread state", &r.state))?,
            message_count: r.message_count,
            visible_in_ui: r.visible_in_ui,
            last_model_used: r.last_model_used,
            pinned_at: r.pinned_at.map(to_utc),
            created_at: to_utc(r.created_at),
            updated_at: to_utc(r.updated_at),
            last_message_at: r.last_message_at.map(to_utc),
            deleted_at: r.deleted_at.map(to_utc),
        })
    }
}

/// The columns written when a thread is created.
#[derive(Debug, Insertable)]
#[diesel(table_name = threads)]
pub struct NewThreadRow<'a> {
    /// Public id.
    pub id: &'a str,
    /// Owning organization.
    pub organization_id: &'a str,
    /// Creator.
    pub user_id: &'a str,
    /// Title.
    pub title: Option<&'a str>,
    /// Metadata JSON.
    pub metadata: String,
    /// Bound assistant.
    pub assistant_id: Option<&'a str>,
    /// Status name.
    pub status: &'a str,
    /// State name.
    pub state: &'a str,
    /// Message count.
    pub message_count: i64,
    /// Visibility.
    pub visible_in_ui: bool,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Update time.
    pub updated_at: NaiveDateTime,
}

impl<'a> From<&'a Thread> for NewThreadRow<'a> {
    fn from(t: &'a Thread) -> Self {
        Self {
            id: t.id.as_str(),
            organization_id: t.organization_id.as_str(),
            user_id: t.user_id.as_str(),
            title: t.title.as_ref().map(ThreadTitle::as_str),
            metadata: t.metadata.to_value().to_string(),
            assistant_id: t.assistant_id.as_ref().map(AssistantId::as_str),
            status: t.status.as_str(),
            state: t.state.as_str(),
            message_count: t.message_count,
            visible_in_ui: t.visible_in_ui,
            created_at: to_naive(t.created_at),
            updated_at: to_naive(t.updated_at),
        }
    }
}

/// Every column a thread update may change; `None` writes NULL.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = threads, treat_none_as_null = true)]
pub struct ThreadChangeset<'a> {
    /// Title.
    pub title: Option<&'a str>,
    /// Metadata JSON.
    pub metadata: String,
    /// Bound assistant.
    pub assistant_id: Option<&'a str>,
    /// Status name.
    pub status: &'a str,
    /// State name.
    pub state: &'a str,
    /// Message count.
    pub message_count: i64,
    /// Visibility.
    pub visible_in_ui: bool,
    /// Last model used.
    pub last_model_used: Option<&'a str>,
    /// Pin time.
    pub pinned_at: Option<NaiveDateTime>,
    /// Update time.
    pub updated_at: NaiveDateTime,
    /// Newest message time.
    pub last_message_at: Option<NaiveDateTime>,
}

impl<'a> From<&'a Thread> for ThreadChangeset<'a> {
    fn from(t: &'a Thread) -> Self {
        Self {
            title: t.title.as_ref().map(ThreadTitle::as_str),
            metadata: t.metadata.to_value().to_string(),
            assistant_id: t.assistant_id.as_ref().map(AssistantId::as_str),
            status: t.status.as_str(),
            state: t.state.as_str(),
            message_count: t.message_count,
            visible_in_ui: t.visible_in_ui,
            last_model_used: t.last_model_used.as_deref(),
            pinned_at: t.pinned_at.map(to_naive),
            updated_at: to_naive(t.updated_at),
            last_message_at: t.last_message_at.map(to_naive),
        }
    }
}

/// An API key row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    /// Public key id (`key_...`).
    pub id: String,
    /// The lookup prefix of the secret.
    pub prefix: String,
    /// SHA-256 of the whole secret, hex.
    pub secret_hash: String,
    /// The key's organization.
    pub organization_id: String,
    /// The key's owner.
    pub user_id: String,
    /// Optional label.
    pub name: Option<String>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last successful use (updated at most once a minute).
    pub last_used_at: Option<NaiveDateTime>,
    /// Revocation time.
    pub revoked_at: Option<NaiveDateTime>,
}

/// An assistant row (the assistants API arrives with model responses; threads
/// already check bindings against this table).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = assistants)]
pub struct AssistantRow {
    /// Public id.
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Creator.
    pub created_by: String,
    /// Name.
    pub name: String,
    /// System instructions.
    pub instructions: Option<String>,
    /// Default model.
    pub model: Option<String>,
    /// Default temperature.
    pub temperature: Option<f64>,
    /// Metadata JSON.
    pub metadata: String,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Update time.
    pub updated_at: NaiveDateTime,
}
