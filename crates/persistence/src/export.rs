//! Export and import of threads with their messages (issue 14): the records
//! of the NDJSON format and the storage side of both directions.
//!
//! One line per thread: `{"thread": {...}, "messages": [...]}`. The thread
//! record holds every column a client can see (and the owner's read state
//! and settings), the messages are the thread's view in order: a fork's
//! inherited history is written out in full, so an exported fork is a plain
//! thread that keeps `forked_from` as information.
//!
//! Export reads in bounded pieces: a page of threads ([`thread_page`],
//! through the keyset list of [`crate::threads::list`]), then each thread's
//! messages in chunks ([`messages_after`], through the same view as the
//! message list), and a line is written in pieces ([`line_head`],
//! [`line_messages`], [`LINE_TAIL`]), so no export ever holds more than a
//! page of threads and a chunk of messages. Import ([`import_thread`])
//! stores one line in one write transaction, keeping ids, timestamps,
//! lifecycle and read state; a thread id already taken in the organization
//! is skipped, or replaced when asked.

use crate::connection::write_transaction;
use crate::forks;
use crate::rows::{to_naive, to_utc, MessageRow, NewMessageRow, ThreadRow, MESSAGE_KIND};
use crate::schema::{messages, thread_segments, threads};
use crate::threads::{list, ThreadQuery};
use crate::{DbConnection, Scope, StoreError};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use skein_domain::{
    fold_case, AssistantId, MessageId, MessageRole, OrganizationId, ThreadId, ThreadState,
    ThreadStatus, UserId, WorkflowId,
};
use std::collections::HashSet;

/// One line of an export: a thread and its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportLine {
    /// The thread.
    pub thread: ExportedThread,
    /// Its messages and other conversation items, in the thread's order.
    #[serde(default)]
    pub messages: Vec<ExportedMessage>,
}

fn default_true() -> bool {
    true
}

fn default_state() -> String {
    ThreadState::Open.as_str().to_string()
}

/// A thread as exported: what it takes to recreate it identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedThread {
    /// Thread id (unique per organization).
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Creator and owner.
    pub user_id: String,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Bound assistant.
    #[serde(default)]
    pub assistant_id: Option<String>,
    /// `open`, `locked` or `archived`.
    #[serde(default = "default_state")]
    pub state: String,
    /// Shown in user interfaces.
    #[serde(default = "default_true")]
    pub visible_in_ui: bool,
    /// Pin time.
    #[serde(default)]
    pub pinned_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Time of the newest message.
    #[serde(default)]
    pub last_message_at: Option<DateTime<Utc>>,
    /// Model of the last saved response.
    #[serde(default)]
    pub last_model_used: Option<String>,
    /// The client's label.
    #[serde(default)]
    pub workflow_id: Option<String>,
    /// Deleted for good at `expected_deletion_at`.
    #[serde(default)]
    pub is_incognito: bool,
    /// When an incognito thread goes.
    #[serde(default)]
    pub expected_deletion_at: Option<DateTime<Utc>>,
    /// Soft-delete time (only when deleted threads were exported).
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The thread and message it was forked at, as information: the
    /// messages line holds its whole history.
    #[serde(default)]
    pub forked_from: Option<ExportedFork>,
    /// Messages (not other items) it held when exported. Import counts the
    /// messages of the line instead.
    #[serde(default)]
    pub message_count: i64,
    /// Other conversation items it held when exported (counted again on
    /// import, like `message_count`).
    #[serde(default)]
    pub item_count: i64,
    /// An assistant message arrived after the owner's last read.
    #[serde(default)]
    pub has_unread: bool,
    /// The owner's last read.
    #[serde(default)]
    pub last_read_at: Option<DateTime<Utc>>,
    /// The owner's settings for the thread (`/user-state`), if any.
    #[serde(default)]
    pub user_state: Option<Map<String, Value>>,
}

/// Where a fork was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedFork {
    /// The parent thread.
    pub thread_id: String,
    /// The parent's newest message the fork held (null: none).
    #[serde(default)]
    pub message_id: Option<String>,
}

fn default_kind() -> String {
    MESSAGE_KIND.to_string()
}

/// A message (or another conversation item) as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedMessage {
    /// Message id (unique per thread).
    pub id: String,
    /// Position in the thread (increasing; gaps after deletes). Absent:
    /// the one after the previous message's.
    #[serde(default)]
    pub seq: Option<i64>,
    /// `user` or `assistant`.
    pub role: String,
    /// `message`, or the type of another conversation item.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The stored text; for an item other than a message, its JSON.
    pub content: String,
    /// Token count of the text.
    #[serde(default)]
    pub token_count: i64,
    /// Metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Attachments, as given.
    #[serde(default)]
    pub attachments: Vec<Value>,
    /// The response that produced or consumed it.
    #[serde(default)]
    pub response_id: Option<String>,
    /// The model that wrote it.
    #[serde(default)]
    pub model: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json_object(what: &str, text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(corrupt(what, "not an object")),
        Err(e) => Err(corrupt(what, e)),
    }
}

impl ExportedThread {
    /// The record of a stored row and its owner's last read.
    fn from_row(r: ThreadRow, last_read_at: Option<NaiveDateTime>) -> Result<Self, StoreError> {
        let forked_from = match r.forked_from.as_deref() {
            None => None,
            Some(text) => {
                let v: Value = serde_json::from_str(text).map_err(|e| corrupt("forked_from", e))?;
                Some(ExportedFork {
                    thread_id: v["thread_id"]
                        .as_str()
                        .ok_or_else(|| corrupt("forked_from", "no thread_id"))?
                        .to_string(),
                    message_id: v["message_id"].as_str().map(str::to_string),
                })
            }
        };
        Ok(Self {
            metadata: json_object("thread metadata", &r.metadata)?,
            user_state: r
                .user_state
                .as_deref()
                .map(|s| json_object("thread user state", s))
                .transpose()?,
            id: r.id,
            organization_id: r.organization_id,
            user_id: r.user_id,
            title: r.title,
            assistant_id: r.assistant_id,
            state: r.state,
            visible_in_ui: r.visible_in_ui,
            pinned_at: r.pinned_at.map(to_utc),
            created_at: to_utc(r.created_at),
            updated_at: to_utc(r.updated_at),
            last_message_at: r.last_message_at.map(to_utc),
            last_model_used: r.last_model_used,
            workflow_id: r.workflow_id,
            is_incognito: r.is_incognito,
            expected_deletion_at: r.expected_deletion_at.map(to_utc),
            deleted_at: r.deleted_at.map(to_utc),
            forked_from,
            message_count: r.message_count,
            item_count: r.item_count,
            has_unread: r.unread,
            last_read_at: last_read_at.map(to_utc),
        })
    }
}

impl TryFrom<MessageRow> for ExportedMessage {
    type Error = StoreError;

    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        let attachments = match serde_json::from_str(&r.attachments) {
            Ok(Value::Array(items)) => items,
            Ok(_) => return Err(corrupt("attachments", "not an array")),
            Err(e) => return Err(corrupt("attachments", e)),
        };
        Ok(Self {
            metadata: json_object("message metadata", &r.metadata)?,
            attachments,
            id: r.id,
            seq: Some(r.seq),
            role: r.role,
            kind: r.kind,
            content: r.content,
            token_count: r.token_count,
            response_id: r.response_id,
            model: r.model,
            created_at: to_utc(r.created_at),
            updated_at: to_utc(r.updated_at),
        })
    }
}

/// Where an exported thread's messages are read from (opaque): its row and
/// what it inherits, as its page found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pk: i64,
    inherited_upto: Option<i64>,
}

impl Source {
    /// The thread's row id (an export's page cursor, which survives the
    /// thread's purge).
    pub fn pk(&self) -> i64 {
        self.pk
    }
}

/// A thread of an export page, with where its messages are.
#[derive(Debug, Clone)]
pub struct ExportEntry {
    /// The thread record.
    pub thread: ExportedThread,
    /// Where to read its messages ([`messages_after`]).
    pub source: Source,
}

/// One page of an export: the threads of `scope` that `query` selects
/// (its filters, order, `limit` and `after` cursor), read through the
/// thread list itself ([`crate::threads::list`]), then as full rows. Also
/// whether more threads follow.
pub fn thread_page(
    conn: &mut DbConnection,
    scope: &Scope,
    query: &ThreadQuery,
) -> Result<(Vec<ExportEntry>, bool), StoreError> {
    let page = list(conn, scope, query)?;
    if page.threads.is_empty() {
        return Ok((Vec::new(), page.has_more));
    }
    let ids: Vec<&str> = page.threads.iter().map(|t| t.id().as_str()).collect();
    let rows: Vec<(ThreadRow, Option<NaiveDateTime>)> = threads::table
        .filter(threads::organization_id.eq(scope.organization_id.as_str()))
        .filter(threads::id.eq_any(&ids))
        .select((ThreadRow::as_select(), threads::last_read_at))
        .load(conn)?;
    let mut by_id: std::collections::HashMap<String, (ThreadRow, Option<NaiveDateTime>)> =
        rows.into_iter().map(|r| (r.0.id.clone(), r)).collect();
    let mut entries = Vec::with_capacity(ids.len());
    // In the list's order; a thread purged in between is left out.
    for id in ids {
        if let Some((row, last_read_at)) = by_id.remove(id) {
            let source = Source {
                pk: row.pk,
                inherited_upto: row.inherited_upto,
            };
            entries.push(ExportEntry {
                thread: ExportedThread::from_row(row, last_read_at)?,
                source,
            });
        }
    }
    Ok((entries, page.has_more))
}

/// Up to `limit` messages and items of the thread at `source` after
/// sequence number `after_seq` (`i64::MIN`: from the first), oldest first,
/// read through the thread's view (a fork's inherited history included,
/// in one snapshot per call).
pub fn messages_after(
    conn: &mut DbConnection,
    source: Source,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<ExportedMessage>, StoreError> {
    let want = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    forks::read(conn, source.pk, source.inherited_upto, |conn, view| {
        view.walk(conn, after_seq, i64::MAX, true, limit.max(1), |row| {
            rows.push(row);
            Ok(crate::messages::still_wanted(want, rows.len()))
        })
    })?;
    rows.into_iter().map(ExportedMessage::try_from).collect()
}

/// The users who own threads in `org`, by id, after `after`, at most
/// `limit` (the CLI exports an organization user by user).
pub fn owners(
    conn: &mut DbConnection,
    org: &OrganizationId,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<UserId>, StoreError> {
    let mut q = threads::table
        .filter(threads::organization_id.eq(org.as_str()))
        .select(threads::user_id)
        .distinct()
        .order(threads::user_id.asc())
        .limit(i64::from(limit.max(1)))
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(threads::user_id.gt(after));
    }
    q.load::<String>(conn)?
        .into_iter()
        .map(|u| UserId::parse(u).map_err(|e| corrupt("user id", e)))
        .collect()
}

/// The start of a line: `{"thread":{...},"messages":[`.
pub fn line_head(thread: &ExportedThread) -> Result<Vec<u8>, StoreError> {
    let mut out = b"{\"thread\":".to_vec();
    serde_json::to_writer(&mut out, thread).map_err(|e| corrupt("thread record", e))?;
    out.extend_from_slice(b",\"messages\":[");
    Ok(out)
}

/// Messages of a line, each after a comma unless it is the line's first
/// (`first`: nothing of the list was written yet).
pub fn line_messages(messages: &[ExportedMessage], first: bool) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if i > 0 || !first {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, m).map_err(|e| corrupt("message record", e))?;
    }
    Ok(out)
}

/// The end of a line.
pub const LINE_TAIL: &[u8] = b"]}\n";

/// Messages read per step of an export.
pub const MESSAGE_CHUNK: u32 = 256;

/// Threads read per page of an export.
pub const THREAD_PAGE: u32 = 100;

/// What [`write_scope`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Threads (lines).
    pub threads: u64,
    /// Messages and items.
    pub messages: u64,
}

/// Writes every thread of `scope` that `query` selects (its filters and
/// order; `limit` and the cursors are the walk's own) as lines to `sink`,
/// in pieces, blocking, on one connection; `progress` is told after each
/// thread what was written so far. For tools (the CLI); the API walks the
/// same functions a trip at a time.
pub fn write_scope<E, S, P>(
    conn: &mut DbConnection,
    scope: &Scope,
    query: &ThreadQuery,
    mut sink: S,
    mut progress: P,
    written: &mut Written,
) -> Result<(), E>
where
    E: From<StoreError>,
    S: FnMut(&[u8]) -> Result<(), E>,
    P: FnMut(&Written),
{
    let mut query = ThreadQuery {
        limit: THREAD_PAGE,
        after: None,
        before: None,
        include_total: false,
        ..query.clone()
    };
    loop {
        let (entries, has_more) = thread_page(conn, scope, &query)?;
        for entry in &entries {
            sink(&line_head(&entry.thread)?)?;
            let mut after = i64::MIN;
            let mut first = true;
            loop {
                let chunk = messages_after(conn, entry.source, after, MESSAGE_CHUNK)?;
                if !chunk.is_empty() {
                    sink(&line_messages(&chunk, first)?)?;
                    first = false;
                    written.messages += chunk.len() as u64;
                }
                match chunk.last().and_then(|m| m.seq) {
                    Some(seq) if chunk.len() == MESSAGE_CHUNK as usize => after = seq,
                    _ => break,
                }
            }
            sink(LINE_TAIL)?;
            written.threads += 1;
            progress(written);
        }
        match entries.last() {
            // By row id: the walk goes on if that thread is purged meanwhile.
            Some(last) if has_more => query.after_pk = Some(last.source.pk()),
            _ => return Ok(()),
        }
    }
}

impl ExportLine {
    /// Parses one line and checks it: ids, state, roles, kinds, order of
    /// the messages. The error says what is wrong (without the line number,
    /// which the caller knows).
    pub fn parse(text: &str) -> Result<Self, String> {
        let line: ExportLine = serde_json::from_str(text).map_err(|e| {
            // The position within the line is the column; the caller names
            // the line.
            let full = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            match full.strip_suffix(&at) {
                Some(what) => format!("column {}: {what}", e.column()),
                None => full,
            }
        })?;
        line.check()?;
        Ok(line)
    }

    /// The checks of [`ExportLine::parse`].
    pub fn check(&self) -> Result<(), String> {
        let t = &self.thread;
        ThreadId::parse(t.id.clone()).map_err(|e| format!("thread.id: {e}"))?;
        OrganizationId::parse(t.organization_id.clone())
            .map_err(|e| format!("thread.organization_id: {e}"))?;
        UserId::parse(t.user_id.clone()).map_err(|e| format!("thread.user_id: {e}"))?;
        if let Some(a) = &t.assistant_id {
            AssistantId::parse(a.clone()).map_err(|e| format!("thread.assistant_id: {e}"))?;
        }
        if let Some(w) = &t.workflow_id {
            WorkflowId::parse(w.clone()).map_err(|e| format!("thread.workflow_id: {e}"))?;
        }
        if ThreadState::parse(&t.state).is_none() {
            return Err(format!(
                "thread.state: '{}' is not open, locked or archived",
                t.state
            ));
        }
        if let Some(f) = &t.forked_from {
            ThreadId::parse(f.thread_id.clone())
                .map_err(|e| format!("thread.forked_from.thread_id: {e}"))?;
            if let Some(m) = &f.message_id {
                MessageId::parse(m.clone())
                    .map_err(|e| format!("thread.forked_from.message_id: {e}"))?;
            }
        }
        let mut ids = HashSet::with_capacity(self.messages.len());
        let mut previous = 0_i64;
        for (i, m) in self.messages.iter().enumerate() {
            let at = |what: &str| format!("messages[{i}].{what}");
            MessageId::parse(m.id.clone()).map_err(|e| format!("{}: {e}", at("id")))?;
            if !ids.insert(m.id.as_str()) {
                return Err(format!("{}: '{}' appears twice", at("id"), m.id));
            }
            if MessageRole::parse(&m.role).is_none() {
                return Err(format!(
                    "{}: '{}' is not user or assistant",
                    at("role"),
                    m.role
                ));
            }
            if m.kind.is_empty() {
                return Err(format!("{}: empty", at("kind")));
            }
            if m.kind != MESSAGE_KIND {
                let item: Value = serde_json::from_str(&m.content).map_err(|e| {
                    format!("{}: an item's content is its JSON: {e}", at("content"))
                })?;
                if skein_domain::item_kind(Some(&item)) != m.kind {
                    return Err(format!(
                        "{}: the item's type is not '{}'",
                        at("content"),
                        m.kind
                    ));
                }
            }
            if m.token_count < 0 {
                return Err(format!("{}: negative", at("token_count")));
            }
            let seq = m.seq.unwrap_or(previous.saturating_add(1));
            if seq <= previous {
                return Err(format!(
                    "{}: {seq} does not follow {previous} (messages are in increasing order, from 1)",
                    at("seq")
                ));
            }
            previous = seq;
        }
        Ok(())
    }
}

/// What importing one line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// The thread was stored with this many messages and items.
    Created {
        /// Messages and items stored.
        messages: u64,
    },
    /// A thread with that id existed in the organization and was replaced.
    Replaced {
        /// Messages and items stored.
        messages: u64,
    },
    /// A thread with that id exists in the organization: nothing changed.
    Skipped,
}

/// Creates the line's organization, user and membership unless they exist
/// (named after their ids).
pub fn ensure_owner(
    conn: &mut DbConnection,
    thread: &ExportedThread,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let org = OrganizationId::parse(thread.organization_id.clone())
        .map_err(|e| corrupt("organization id", e))?;
    let user = UserId::parse(thread.user_id.clone()).map_err(|e| corrupt("user id", e))?;
    write_transaction(conn, |conn| {
        crate::tenancy::ensure_organization(conn, &org, org.as_str(), now)?;
        crate::tenancy::ensure_user(conn, &user, user.as_str(), now)?;
        crate::tenancy::ensure_membership(conn, &org, &user, now)?;
        Ok(())
    })
}

/// The thread columns an import writes (the others take their defaults:
/// no lease, not provisional, inheriting nothing; `changed_us` is stamped
/// by the triggers).
#[derive(Debug, Insertable)]
#[diesel(table_name = threads, treat_none_as_default_value = false)]
struct ImportedThreadRow<'a> {
    id: &'a str,
    organization_id: &'a str,
    user_id: &'a str,
    title: Option<&'a str>,
    title_folded: Option<String>,
    metadata: String,
    assistant_id: Option<&'a str>,
    status: &'a str,
    state: &'a str,
    message_count: i64,
    item_count: i64,
    visible_in_ui: bool,
    last_model_used: Option<&'a str>,
    pinned_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    last_message_at: Option<NaiveDateTime>,
    deleted_at: Option<NaiveDateTime>,
    last_seq: i64,
    provisional: bool,
    user_state: Option<String>,
    workflow_id: Option<&'a str>,
    is_incognito: bool,
    expected_deletion_at: Option<NaiveDateTime>,
    unread: bool,
    last_read_at: Option<NaiveDateTime>,
    forked_from: Option<String>,
}

/// Stores one checked line ([`ExportLine::parse`]) in one write
/// transaction: the thread row with its lifecycle, pin, incognito
/// deadline, read state and settings, then its messages with their ids,
/// sequence numbers and timestamps (`message_count`, `item_count` and
/// `last_seq` follow from them). A thread id already taken in the
/// organization (live or deleted) is skipped, or with `replace` removed
/// first in the same transaction (its messages, segments, stored stream
/// events and row; forks that showed its rows get their own copies
/// first). The owner must exist ([`ensure_owner`]).
pub fn import_thread(
    conn: &mut DbConnection,
    line: &ExportLine,
    replace: bool,
) -> Result<Imported, StoreError> {
    let t = &line.thread;
    write_transaction(conn, |conn| {
        let by_id = threads::table
            .filter(threads::organization_id.eq(t.organization_id.as_str()))
            .filter(threads::id.eq(t.id.as_str()))
            .select(threads::pk);
        // Locked on PostgreSQL (SQLite holds the write lock already): a fork
        // of the thread made meanwhile waits, then finds it gone, instead of
        // naming rows this replacement deletes.
        let existing: Option<i64> = match &mut *conn {
            DbConnection::Postgresql(c) => by_id.for_update().first(c).optional()?,
            other => by_id.first(other).optional()?,
        };
        if let Some(pk) = existing {
            if !replace {
                return Ok(Imported::Skipped);
            }
            remove(conn, pk)?;
        }
        let messages = store_line(conn, line)?;
        Ok(match existing {
            Some(_) => Imported::Replaced { messages },
            None => Imported::Created { messages },
        })
    })
}

/// Removes thread `pk` for good, inside the caller's transaction.
fn remove(conn: &mut DbConnection, pk: i64) -> Result<(), StoreError> {
    forks::release(conn, pk, i64::MIN, i64::MAX)?;
    diesel::delete(messages::table.filter(messages::thread_pk.eq(pk))).execute(conn)?;
    crate::events::purge_threads(conn, &[pk])?;
    diesel::delete(thread_segments::table.filter(thread_segments::thread_pk.eq(pk)))
        .execute(conn)?;
    diesel::delete(threads::table.filter(threads::pk.eq(pk))).execute(conn)?;
    Ok(())
}

/// Inserts the line's thread and messages; returns how many messages.
fn store_line(conn: &mut DbConnection, line: &ExportLine) -> Result<u64, StoreError> {
    let t = &line.thread;
    // Sequence numbers as exported (or numbered on from the previous one).
    let mut seqs = Vec::with_capacity(line.messages.len());
    let mut previous = 0_i64;
    for m in &line.messages {
        previous = m.seq.unwrap_or(previous.saturating_add(1));
        seqs.push(previous);
    }
    let items = line
        .messages
        .iter()
        .filter(|m| m.kind != MESSAGE_KIND)
        .count();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let (message_count, item_count) = (count(line.messages.len() - items), count(items));
    if (message_count, item_count) != (t.message_count, t.item_count) {
        log::warn!(
            "thread {} in {}: the record says {} messages and {} items, the line holds {} and {}; \
             stored as the line holds",
            t.id,
            t.organization_id,
            t.message_count,
            t.item_count,
            message_count,
            item_count
        );
    }
    let row = ImportedThreadRow {
        id: &t.id,
        organization_id: &t.organization_id,
        user_id: &t.user_id,
        title: t.title.as_deref(),
        title_folded: t.title.as_deref().map(fold_case),
        metadata: Value::Object(t.metadata.clone()).to_string(),
        assistant_id: t.assistant_id.as_deref(),
        status: ThreadStatus::Inactive.as_str(),
        state: &t.state,
        message_count,
        item_count,
        visible_in_ui: t.visible_in_ui,
        last_model_used: t.last_model_used.as_deref(),
        pinned_at: t.pinned_at.map(to_naive),
        created_at: to_naive(t.created_at),
        updated_at: to_naive(t.updated_at),
        last_message_at: t.last_message_at.map(to_naive),
        deleted_at: t.deleted_at.map(to_naive),
        last_seq: seqs.last().copied().unwrap_or(0),
        provisional: false,
        user_state: t
            .user_state
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| Value::Object(s.clone()).to_string()),
        workflow_id: t.workflow_id.as_deref(),
        is_incognito: t.is_incognito,
        expected_deletion_at: t.expected_deletion_at.map(to_naive),
        unread: t.has_unread,
        last_read_at: t.last_read_at.map(to_naive),
        forked_from: t.forked_from.as_ref().map(|f| {
            serde_json::json!({"thread_id": f.thread_id, "message_id": f.message_id}).to_string()
        }),
    };
    diesel::insert_into(threads::table)
        .values(&row)
        .execute(conn)?;
    let pk: i64 = threads::table
        .filter(threads::organization_id.eq(t.organization_id.as_str()))
        .filter(threads::id.eq(t.id.as_str()))
        .select(threads::pk)
        .first(conn)?;
    let rows: Vec<NewMessageRow> = line
        .messages
        .iter()
        .zip(&seqs)
        .map(|(m, seq)| NewMessageRow {
            id: &m.id,
            thread_pk: pk,
            seq: *seq,
            role: &m.role,
            content: &m.content,
            token_count: m.token_count,
            metadata: Value::Object(m.metadata.clone()).to_string(),
            attachments: Value::Array(m.attachments.clone()).to_string(),
            response_id: m.response_id.as_deref(),
            model: m.model.as_deref(),
            created_at: to_naive(m.created_at),
            updated_at: to_naive(m.updated_at),
            kind: &m.kind,
        })
        .collect();
    crate::messages::insert_rows(conn, &rows)?;
    Ok(rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(messages: Value) -> String {
        serde_json::json!({
            "thread": {"id": "t1", "organization_id": "org_a", "user_id": "usr_1",
                       "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-11-30T10:00:00.5Z"},
            "messages": messages,
        })
        .to_string()
    }

    fn message(id: &str, seq: Option<i64>) -> Value {
        let mut m = serde_json::json!({"id": id, "role": "user", "content": "hi",
                                       "created_at": "2026-11-30T10:00:00Z",
                                       "updated_at": "2026-11-30T10:00:00Z"});
        if let Some(seq) = seq {
            m["seq"] = seq.into();
        }
        m
    }

    #[test]
    fn a_minimal_line_takes_the_defaults() {
        let parsed = ExportLine::parse(&line(serde_json::json!([message("m1", None)])));
        let parsed = parsed.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.thread.state, "open");
        assert!(parsed.thread.visible_in_ui);
        assert_eq!(parsed.messages[0].kind, "message");
        assert_eq!(parsed.messages[0].seq, None);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let refused = |text: String, needle: &str| match ExportLine::parse(&text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => assert!(e.contains(needle), "{e} lacks {needle}"),
        };
        refused("{\"thread\": 7}".into(), "column ");
        refused("not json".into(), "column 2: expected ident");
        refused(
            line(serde_json::json!([
                message("m1", Some(2)),
                message("m2", Some(2))
            ])),
            "messages[1].seq",
        );
        refused(
            line(serde_json::json!([
                message("m1", None),
                message("m1", None)
            ])),
            "appears twice",
        );
        refused(
            line(serde_json::json!([message("bad id!", None)])),
            "messages[0].id",
        );
        let mut item = message("m1", None);
        item["kind"] = "function_call".into();
        refused(line(serde_json::json!([item.clone()])), "its JSON");
        item["content"] = serde_json::json!({"type": "reasoning"}).to_string().into();
        refused(line(serde_json::json!([item])), "not 'function_call'");
        let mut role = message("m1", None);
        role["role"] = "system".into();
        refused(line(serde_json::json!([role])), "messages[0].role");
        let mut state: Value =
            serde_json::from_str(&line(serde_json::json!([]))).unwrap_or_default();
        state["thread"]["state"] = "closed".into();
        refused(state.to_string(), "thread.state");
    }
}
