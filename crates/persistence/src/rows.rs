//! Row types per operation and their conversions to and from domain types.

use crate::schema::{api_keys, assistants, messages, threads};
use crate::StoreError;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Timestamp};
use diesel::sqlite::Sqlite;
use skein_domain::{
    clock, fold_case, Assistant, AssistantId, AssistantName, ForkedFrom, Instructions, Lease,
    Message, MessageId, MessageRole, Metadata, OrganizationId, StoredThread, Temperature, Thread,
    ThreadId, ThreadState, ThreadTitle, UserId,
};

/// Stored timestamps are naive UTC.
pub fn to_naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

/// Stored timestamps read back as UTC.
pub fn to_utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// A timestamp column read into a `NaiveDateTime` (`#[diesel(deserialize_as =
/// Stamp)]` on a row's field). On SQLite, where a timestamp is text, the
/// format diesel writes (`YYYY-MM-DD HH:MM:SS` and up to nine digits of a
/// fraction) is read by hand: diesel's own reading tries chrono's
/// `parse_from_str` with each of 18 formats, which took 5% of the CPU of a
/// thread list (seven timestamps a row). Any other text, and every other
/// backend, goes to diesel's reading.
#[derive(Debug, Clone, Copy, diesel::deserialize::FromSqlRow)]
pub struct Stamp(NaiveDateTime);

/// A nullable timestamp column read like [`Stamp`].
#[derive(Debug, Clone, Copy, diesel::deserialize::FromSqlRow)]
pub struct MaybeStamp(Option<NaiveDateTime>);

impl From<Stamp> for NaiveDateTime {
    fn from(s: Stamp) -> Self {
        s.0
    }
}

impl From<MaybeStamp> for Option<NaiveDateTime> {
    fn from(s: MaybeStamp) -> Self {
        s.0
    }
}

impl FromSql<Timestamp, Sqlite> for Stamp {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        if value.value_type() == Some(diesel::sqlite::SqliteType::Text) {
            if let Some(t) = parse_timestamp(value.read_text().as_bytes()) {
                return Ok(Self(t));
            }
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, Pg> for Stamp {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Self)
    }
}

/// The multi-backend connection's backend.
type Multi = <crate::DbConnection as diesel::Connection>::Backend;

impl FromSql<Timestamp, Multi> for Stamp {
    fn from_sql(value: <Multi as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

impl<DB: Backend> FromSql<Nullable<Timestamp>, DB> for MaybeStamp
where
    Stamp: FromSql<Timestamp, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Stamp::from_sql(value).map(|s| Self(Some(s.0)))
    }

    fn from_nullable_sql(value: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match value {
            Some(v) => Self::from_sql(v),
            None => Ok(Self(None)),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional `.` and one to nine digits, or
/// `None`.
fn parse_timestamp(text: &[u8]) -> Option<NaiveDateTime> {
    fn digits(text: &[u8]) -> Option<u32> {
        text.iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    }
    let (head, fraction) = text.split_at_checked(19)?;
    if [head[4], head[7], head[10], head[13], head[16]] != *b"-- ::" {
        return None;
    }
    let nanos = match fraction {
        [] => 0,
        [b'.', f @ ..] if (1..=9).contains(&f.len()) => digits(f)? * 10u32.pow(9 - f.len() as u32),
        _ => return None,
    };
    chrono::NaiveDate::from_ymd_opt(
        i32::try_from(digits(&head[0..4])?).ok()?,
        digits(&head[5..7])?,
        digits(&head[8..10])?,
    )?
    .and_hms_nano_opt(
        digits(&head[11..13])?,
        digits(&head[14..16])?,
        digits(&head[17..19])?,
        nanos,
    )
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
    #[diesel(deserialize_as = MaybeStamp)]
    pub pinned_at: Option<NaiveDateTime>,
    /// Creation time.
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    /// Last update.
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// Newest message time.
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_message_at: Option<NaiveDateTime>,
    /// Soft-delete time.
    #[diesel(deserialize_as = MaybeStamp)]
    pub deleted_at: Option<NaiveDateTime>,
    /// Sequence number of the newest message ever appended.
    pub last_seq: i64,
    /// The running response holding the busy lease.
    pub lease_id: Option<String>,
    /// When that lease lapses.
    #[diesel(deserialize_as = MaybeStamp)]
    pub lease_expires_at: Option<NaiveDateTime>,
    /// Created by a first response whose turn is not saved yet.
    pub provisional: bool,
    /// The user's thread settings (JSON), if any were set.
    pub user_state: Option<String>,
    /// The client's label.
    pub workflow_id: Option<String>,
    /// Deleted for good at `expected_deletion_at`.
    pub is_incognito: bool,
    /// When an incognito thread goes.
    #[diesel(deserialize_as = MaybeStamp)]
    pub expected_deletion_at: Option<NaiveDateTime>,
    /// An assistant message arrived after the owner's last read.
    pub unread: bool,
    /// Conversation items that are not messages.
    pub item_count: i64,
    /// A fork's parent and fork message (JSON).
    pub forked_from: Option<String>,
    /// The highest sequence number the thread shows from other threads'
    /// rows (a fork whose shared history is not copied); `None` when it
    /// holds all it shows.
    pub inherited_upto: Option<i64>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl TryFrom<ThreadRow> for Thread {
    type Error = StoreError;

    fn try_from(r: ThreadRow) -> Result<Self, StoreError> {
        let metadata = stored_metadata(&r.metadata)?;
        let lease = match (r.lease_id, r.lease_expires_at) {
            (Some(id), Some(at)) => Some(Lease {
                id,
                expires_at: to_utc(at),
            }),
            _ => None,
        };
        let model_override = r
            .user_state
            .as_deref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| {
                v.get("model_override")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            });
        // The status follows from the lease at the time of reading (the
        // domain's rule, `Thread::from_storage`).
        let stored = StoredThread {
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
            state: ThreadState::parse(&r.state).ok_or_else(|| corrupt("thread state", &r.state))?,
            message_count: r.message_count,
            item_count: r.item_count,
            visible_in_ui: r.visible_in_ui,
            last_model_used: r.last_model_used,
            pinned_at: r.pinned_at.map(to_utc),
            created_at: to_utc(r.created_at),
            updated_at: to_utc(r.updated_at),
            last_message_at: r.last_message_at.map(to_utc),
            deleted_at: r.deleted_at.map(to_utc),
            lease,
            model_override,
            workflow_id: r.workflow_id,
            is_incognito: r.is_incognito,
            expected_deletion_at: r.expected_deletion_at.map(to_utc),
            has_unread: r.unread,
            forked_from: r.forked_from.as_deref().map(stored_fork).transpose()?,
        };
        Ok(Thread::from_storage(stored, clock::now()))
    }
}

/// How `threads.forked_from` stores a fork's origin.
fn fork_json(f: &ForkedFrom) -> String {
    serde_json::json!({
        "thread_id": f.thread_id.as_str(),
        "message_id": f.message_id.as_ref().map(MessageId::as_str),
    })
    .to_string()
}

fn stored_fork(text: &str) -> Result<ForkedFrom, StoreError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| corrupt("forked_from", e))?;
    let thread_id = v["thread_id"]
        .as_str()
        .map(|t| ThreadId::parse(t.to_string()))
        .ok_or_else(|| corrupt("forked_from", "no thread_id"))?
        .map_err(|e| corrupt("forked_from", e))?;
    let message_id = v["message_id"]
        .as_str()
        .map(|m| MessageId::parse(m.to_string()))
        .transpose()
        .map_err(|e| corrupt("forked_from", e))?;
    Ok(ForkedFrom {
        thread_id,
        message_id,
    })
}

fn stored_metadata(text: &str) -> Result<Metadata, StoreError> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(Metadata::from_stored(map)),
        Ok(_) => Err(corrupt("metadata", "not an object")),
        Err(e) => Err(corrupt("metadata", e)),
    }
}

/// What the title search matches: the title, case-folded.
fn folded(t: &Thread) -> Option<String> {
    t.title().map(|title| fold_case(title.as_str()))
}

/// The columns written when a thread is created.
#[derive(Debug, Insertable)]
#[diesel(table_name = threads, treat_none_as_default_value = false)]
pub struct NewThreadRow<'a> {
    /// Public id.
    pub id: &'a str,
    /// Owning organization.
    pub organization_id: &'a str,
    /// Creator.
    pub user_id: &'a str,
    /// Title.
    pub title: Option<&'a str>,
    /// The folded title the search matches.
    pub title_folded: Option<String>,
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
    /// The client's label.
    pub workflow_id: Option<&'a str>,
    /// Incognito.
    pub is_incognito: bool,
    /// When an incognito thread goes.
    pub expected_deletion_at: Option<NaiveDateTime>,
    /// A fork's parent and fork message (JSON).
    pub forked_from: Option<String>,
}

impl<'a> From<&'a Thread> for NewThreadRow<'a> {
    fn from(t: &'a Thread) -> Self {
        Self {
            id: t.id().as_str(),
            organization_id: t.organization_id().as_str(),
            user_id: t.user_id().as_str(),
            title: t.title().map(ThreadTitle::as_str),
            title_folded: folded(t),
            metadata: t.metadata().to_value().to_string(),
            assistant_id: t.assistant_id().map(AssistantId::as_str),
            status: t.status().as_str(),
            state: t.state().as_str(),
            message_count: t.message_count(),
            visible_in_ui: t.visible_in_ui(),
            created_at: to_naive(t.created_at()),
            updated_at: to_naive(t.updated_at()),
            workflow_id: t.workflow_id(),
            is_incognito: t.is_incognito(),
            expected_deletion_at: t.expected_deletion_at().map(to_naive),
            forked_from: t.forked_from().map(fork_json),
        }
    }
}

/// Every column a thread update may change; `None` writes NULL.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = threads, treat_none_as_null = true)]
pub struct ThreadChangeset<'a> {
    /// Title.
    pub title: Option<&'a str>,
    /// The folded title the search matches.
    pub title_folded: Option<String>,
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
    /// Count of the other conversation items.
    pub item_count: i64,
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
    /// Lease holder.
    pub lease_id: Option<&'a str>,
    /// Lease expiry.
    pub lease_expires_at: Option<NaiveDateTime>,
}

impl<'a> From<&'a Thread> for ThreadChangeset<'a> {
    fn from(t: &'a Thread) -> Self {
        Self {
            title: t.title().map(ThreadTitle::as_str),
            title_folded: folded(t),
            metadata: t.metadata().to_value().to_string(),
            assistant_id: t.assistant_id().map(AssistantId::as_str),
            status: t.status().as_str(),
            state: t.state().as_str(),
            message_count: t.message_count(),
            item_count: t.item_count(),
            visible_in_ui: t.visible_in_ui(),
            last_model_used: t.last_model_used(),
            pinned_at: t.pinned_at().map(to_naive),
            updated_at: to_naive(t.updated_at()),
            last_message_at: t.last_message_at().map(to_naive),
            lease_id: t.lease().map(|l| l.id.as_str()),
            lease_expires_at: t.lease().map(|l| to_naive(l.expires_at)),
        }
    }
}

/// A full message row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    /// Internal row id.
    pub pk: i64,
    /// Public id.
    pub id: String,
    /// The thread's internal row id.
    pub thread_pk: i64,
    /// Position in the thread.
    pub seq: i64,
    /// `user` or `assistant`.
    pub role: String,
    /// Text.
    pub content: String,
    /// Token count of the text.
    pub token_count: i64,
    /// Metadata JSON.
    pub metadata: String,
    /// Attachments JSON array.
    pub attachments: String,
    /// Response id.
    pub response_id: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Creation time.
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    /// Update time.
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// `message`, or the type of another conversation item (whose JSON is
    /// then `content`).
    pub kind: String,
}

impl MessageRow {
    /// The domain message, given its thread's public id.
    pub fn into_message(self, thread_id: ThreadId) -> Result<Message, StoreError> {
        let attachments = match serde_json::from_str(&self.attachments) {
            Ok(serde_json::Value::Array(items)) => items,
            Ok(_) => return Err(corrupt("attachments", "not an array")),
            Err(e) => return Err(corrupt("attachments", e)),
        };
        let item = if self.kind == MESSAGE_KIND {
            None
        } else {
            Some(serde_json::from_str(&self.content).map_err(|e| corrupt("item", e))?)
        };
        Ok(Message {
            item,
            id: MessageId::parse(self.id).map_err(|e| corrupt("message id", e))?,
            thread_id,
            seq: self.seq,
            role: MessageRole::parse(&self.role).ok_or_else(|| corrupt("role", &self.role))?,
            content: self.content,
            token_count: u32::try_from(self.token_count).unwrap_or(u32::MAX),
            metadata: stored_metadata(&self.metadata)?,
            attachments,
            response_id: self.response_id,
            model: self.model,
            created_at: to_utc(self.created_at),
            updated_at: to_utc(self.updated_at),
        })
    }
}

/// The columns written when a message is appended.
#[derive(Debug, Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub struct NewMessageRow<'a> {
    /// Public id.
    pub id: &'a str,
    /// Thread row id.
    pub thread_pk: i64,
    /// Position.
    pub seq: i64,
    /// Role name.
    pub role: &'a str,
    /// Text.
    pub content: &'a str,
    /// Token count.
    pub token_count: i64,
    /// Metadata JSON.
    pub metadata: String,
    /// Attachments JSON.
    pub attachments: String,
    /// Response id.
    pub response_id: Option<&'a str>,
    /// Model.
    pub model: Option<&'a str>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Update time.
    pub updated_at: NaiveDateTime,
    /// `message` or the item's type.
    pub kind: &'a str,
}

/// The `kind` of every message (the Freddy endpoints read only these).
pub const MESSAGE_KIND: &str = "message";

impl<'a> NewMessageRow<'a> {
    /// The row for a message of the thread stored at `thread_pk`.
    pub fn new(m: &'a Message, thread_pk: i64) -> Self {
        Self {
            id: m.id.as_str(),
            thread_pk,
            seq: m.seq,
            role: m.role.as_str(),
            content: &m.content,
            token_count: i64::from(m.token_count),
            metadata: m.metadata.to_value().to_string(),
            attachments: serde_json::Value::Array(m.attachments.clone()).to_string(),
            response_id: m.response_id.as_deref(),
            model: m.model.as_deref(),
            created_at: to_naive(m.created_at),
            updated_at: to_naive(m.updated_at),
            kind: skein_domain::item_kind(m.item.as_ref()),
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
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    /// Last successful use (updated at most once a minute).
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_used_at: Option<NaiveDateTime>,
    /// Revocation time.
    #[diesel(deserialize_as = MaybeStamp)]
    pub revoked_at: Option<NaiveDateTime>,
}

/// A full assistant row, also the form written on create.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = assistants, treat_none_as_default_value = false)]
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
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    /// Update time.
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

impl TryFrom<AssistantRow> for Assistant {
    type Error = StoreError;

    fn try_from(r: AssistantRow) -> Result<Self, StoreError> {
        Ok(Assistant {
            id: AssistantId::parse(r.id).map_err(|e| corrupt("assistant id", e))?,
            organization_id: OrganizationId::parse(r.organization_id)
                .map_err(|e| corrupt("organization id", e))?,
            created_by: UserId::parse(r.created_by).map_err(|e| corrupt("user id", e))?,
            name: AssistantName::from_stored(r.name),
            instructions: r.instructions.map(Instructions::from_stored),
            model: r.model,
            temperature: r.temperature.map(Temperature::from_stored),
            metadata: stored_metadata(&r.metadata)?,
            created_at: to_utc(r.created_at),
            updated_at: to_utc(r.updated_at),
        })
    }
}

impl From<&Assistant> for AssistantRow {
    fn from(a: &Assistant) -> Self {
        Self {
            id: a.id.to_string(),
            organization_id: a.organization_id.to_string(),
            created_by: a.created_by.to_string(),
            name: a.name.as_str().to_string(),
            instructions: a.instructions.as_ref().map(|i| i.as_str().to_string()),
            model: a.model.clone(),
            temperature: a.temperature.map(Temperature::value),
            metadata: a.metadata.to_value().to_string(),
            created_at: to_naive(a.created_at),
            updated_at: to_naive(a.updated_at),
        }
    }
}

/// Every column a replacement (`PUT`) writes; `None` writes NULL.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = assistants, treat_none_as_null = true)]
pub struct AssistantChangeset<'a> {
    /// Name.
    pub name: &'a str,
    /// System instructions.
    pub instructions: Option<&'a str>,
    /// Default model.
    pub model: Option<&'a str>,
    /// Default temperature.
    pub temperature: Option<f64>,
    /// Metadata JSON.
    pub metadata: String,
    /// Update time.
    pub updated_at: NaiveDateTime,
}

impl<'a> From<&'a Assistant> for AssistantChangeset<'a> {
    fn from(a: &'a Assistant) -> Self {
        Self {
            name: a.name.as_str(),
            instructions: a.instructions.as_ref().map(Instructions::as_str),
            model: a.model.as_deref(),
            temperature: a.temperature.map(Temperature::value),
            metadata: a.metadata.to_value().to_string(),
            updated_at: to_naive(a.updated_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp;
    use chrono::NaiveDateTime;

    #[test]
    fn the_written_format_reads_as_chrono_reads_it() {
        for text in [
            "2026-12-02 16:40:00",
            "2026-12-02 16:40:00.1",
            "2026-12-02 16:40:00.123456",
            "2026-12-02 16:40:00.123456789",
            "1970-01-01 00:00:00.000001",
            "2024-02-29 23:59:59.999999",
        ] {
            assert_eq!(
                parse_timestamp(text.as_bytes()),
                NaiveDateTime::parse_from_str(text, "%F %T%.f").ok(),
                "{text}"
            );
            assert!(parse_timestamp(text.as_bytes()).is_some(), "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_diesel() {
        for text in [
            "",
            "2026-12-02",
            "2026-12-02T16:40:00",
            "2026-12-02 16:40:00Z",
            "2026-12-02 16:40:00.",
            "2026-12-02 16:40:00.1234567890",
            "2026-12-02 16:40:00+01:00",
            "2026-13-02 16:40:00",
            "2023-02-29 16:40:00",
            "2026-12-02 24:00:00",
            "2026-12-02 16:40:60",
            "2026-1a-02 16:40:00",
            "+2026-12-02 16:40:0",
            "2459580.5",
        ] {
            assert_eq!(parse_timestamp(text.as_bytes()), None, "{text}");
        }
    }
}
