//! Message queries: append, keyset-paginated list, patch, delete, and the
//! newest-first history read used to build a model's context.

use crate::connection::{on_backend, write_transaction};
use crate::forks::{self, View};
use crate::keyset::{with_keyset, Bound, Keyset};
use crate::prepared;
use crate::rows::{to_naive, to_utc, MessageRow, NewMessageRow, ThreadChangeset, MESSAGE_KIND};
use crate::schema::{messages, threads};
use crate::threads::{load_locked, save, visible_key, ThreadKey};
use crate::{DbConnection, ListKind, ListOrder, Missing, Scope, StoreError};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use skein_domain::context::ContextItem;
use skein_domain::{
    DomainError, Limits, Message, MessageId, MessageRole, NewMessage, Thread, ThreadId,
};

/// A message list request, already validated.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Page size (1-100).
    pub limit: u32,
    /// Thread order (the contract's default for messages is ascending).
    pub order: ListOrder,
    /// The page after this message.
    pub after: Option<String>,
    /// The page before this message.
    pub before: Option<String>,
    /// Include the conversation items that are not messages (the OpenAI
    /// dialect's item list); the message endpoints leave them out.
    pub items: bool,
}

/// One page of messages.
#[derive(Debug, Clone)]
pub struct MessagePage {
    /// The messages in the requested order.
    pub messages: Vec<Message>,
    /// More messages exist beyond this page.
    pub has_more: bool,
}

/// Rows per insert statement (12 columns each: 6,000 bound parameters).
const INSERT_CHUNK: usize = 500;

/// Up to this many rows are inserted one prepared statement each.
const PREPARED_ROWS: usize = 4;

/// Inserts messages after position `key.last_seq` and saves the thread
/// (`next`, which already accounts for them) with the new sequence, in one
/// update. Runs inside the caller's write transaction.
pub(crate) fn append_and_save(
    conn: &mut DbConnection,
    key: ThreadKey,
    next: &Thread,
    new: Vec<NewMessage>,
    now: DateTime<Utc>,
) -> Result<Vec<Message>, StoreError> {
    let stored: Vec<Message> = new
        .into_iter()
        .zip(key.last_seq + 1..)
        .map(|(m, seq)| m.into_message(next.id().clone(), seq, now, MessageId::generate))
        .collect();
    // Multi-row inserts (one round trip per chunk, a turn is one chunk),
    // per backend: batch inserts are not available through the
    // multi-backend connection itself. Chunks stay far below the bound
    // parameters a statement may have.
    let rows: Vec<NewMessageRow> = stored
        .iter()
        .map(|m| NewMessageRow::new(m, key.pk))
        .collect();
    insert_rows(conn, &rows)?;
    let last_seq = stored.last().map_or(key.last_seq, |m| m.seq);
    let target = threads::pk.eq(key.pk);
    let saved = (ThreadChangeset::from(next), threads::last_seq.eq(last_seq));
    // A new assistant message makes the thread unread for its owner.
    if stored
        .iter()
        .any(|m| m.role == MessageRole::Assistant && m.item.is_none())
    {
        prepared::update(threads::table, target, (saved, threads::unread.eq(true)))
            .execute(conn)?;
    } else {
        prepared::update(threads::table, target, saved).execute(conn)?;
    }
    Ok(stored)
}

/// Inserts message rows in multi-row statements (one round trip per chunk
/// of [`INSERT_CHUNK`]), per backend: batch inserts are not available
/// through the multi-backend connection itself.
pub(crate) fn insert_rows(
    conn: &mut DbConnection,
    rows: &[NewMessageRow],
) -> Result<(), StoreError> {
    // A turn's few rows go one single-row statement each, which the
    // connection keeps prepared (diesel compiles a multi-row insert, and on
    // SQLite the triggers it fires, every time); larger batches are rare.
    if rows.len() <= PREPARED_ROWS {
        for row in rows {
            diesel::insert_into(messages::table)
                .values(row)
                .execute(conn)?;
        }
        return Ok(());
    }
    for chunk in rows.chunks(INSERT_CHUNK) {
        on_backend!(conn, c => diesel::insert_into(messages::table)
            .values(chunk)
            .execute(c)?);
    }
    Ok(())
}

/// Appends messages to an open thread without calling a model, in one
/// transaction that holds the thread's row: the lifecycle (423) and the
/// message cap hold even under concurrent writers.
pub fn append(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    new: Vec<NewMessage>,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<(Thread, Vec<Message>), StoreError> {
    write_transaction(conn, |conn| {
        let (key, thread) = load_locked(conn, scope, thread_id)?;
        let (messages, items) = entry_counts(&new);
        let next = thread.record_entries(messages, items, limits, now)?;
        let stored = append_and_save(conn, key, &next, new, now)?;
        Ok((next, stored))
    })
}

/// Creates a thread with its first messages in one transaction: both are
/// stored, or neither (the OpenAI dialect's conversation with items).
pub fn create_with(
    conn: &mut DbConnection,
    thread: &Thread,
    new: Vec<NewMessage>,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<(Thread, Vec<Message>), StoreError> {
    let scope = Scope::new(thread.organization_id().clone(), thread.user_id().clone());
    write_transaction(conn, |conn| {
        crate::threads::insert_row(conn, thread)?;
        if new.is_empty() {
            // As `threads::insert`: nothing more to read or write.
            return Ok((thread.clone(), Vec::new()));
        }
        let (key, current) = load_locked(conn, &scope, thread.id().as_str())?;
        let (messages, items) = entry_counts(&new);
        let next = current.record_entries(messages, items, limits, now)?;
        let stored = append_and_save(conn, key, &next, new, now)?;
        Ok((next, stored))
    })
}

/// How many of `new` are messages and how many other conversation items.
pub(crate) fn entry_counts(new: &[NewMessage]) -> (u32, u32) {
    let items = new.iter().filter(|m| m.item.is_some()).count();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (count(new.len() - items), count(items))
}

/// One message of the caller's live thread.
pub fn find(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    message_id: &str,
) -> Result<Message, StoreError> {
    find_entry(conn, scope, thread_id, message_id, false)
}

/// One message or other conversation item of the caller's live thread
/// (`items`: items other than messages are found too).
pub fn find_entry(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    message_id: &str,
    items: bool,
) -> Result<Message, StoreError> {
    let key = visible_key(conn, scope, thread_id)?;
    let tid = ThreadId::parse(thread_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    forks::read(conn, key.pk, key.inherited_upto, |conn, view| {
        load_message(conn, view, message_id, items)
    })?
    .into_message(tid)
}

fn cursor_seq(
    conn: &mut DbConnection,
    view: &View,
    id: &str,
    items: bool,
) -> Result<i64, StoreError> {
    let found: Option<(i64, String)> = if view.is_plain() {
        messages::table
            .filter(messages::thread_pk.eq(view.pk()))
            .filter(messages::id.eq(id))
            .select((messages::seq, messages::kind))
            .first(conn)
            .optional()?
    } else {
        view.find(conn, id)?.map(|r| (r.seq, r.kind))
    };
    found
        .filter(|(_, kind)| items || kind == MESSAGE_KIND)
        .map(|(seq, _)| seq)
        .ok_or_else(|| StoreError::InvalidCursor {
            list: ListKind::Messages,
            id: id.to_string(),
        })
}

/// One page of a thread's messages, by keyset pagination on
/// `(thread_pk, seq)`.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    query: &MessageQuery,
) -> Result<MessagePage, StoreError> {
    let key = visible_key(conn, scope, thread_id)?;
    let (rows, keyset) = forks::read(conn, key.pk, key.inherited_upto, |conn, view| {
        page_rows(conn, view, query)
    })?;
    let (rows, has_more) = keyset.finish(rows);
    let tid = ThreadId::parse(thread_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(MessagePage {
        messages: rows
            .into_iter()
            .map(|r| r.into_message(tid.clone()))
            .collect::<Result<_, _>>()?,
        has_more,
    })
}

/// The rows of one page of a view, in reading order, and the page's keyset.
fn page_rows(
    conn: &mut DbConnection,
    view: &View,
    query: &MessageQuery,
) -> Result<(Vec<MessageRow>, Keyset), StoreError> {
    let after = query
        .after
        .as_deref()
        .map(|id| cursor_seq(conn, view, id, query.items))
        .transpose()?;
    let before = query
        .before
        .as_deref()
        .map(|id| cursor_seq(conn, view, id, query.items))
        .transpose()?;
    let keyset = Keyset {
        after,
        before,
        order: query.order,
        limit: query.limit,
    };
    if !view.is_plain() {
        let (above, below) = match keyset.bound() {
            Bound::None => (i64::MIN, i64::MAX),
            Bound::Above(k) => (k, i64::MAX),
            Bound::Below(k) => (i64::MIN, k),
        };
        let want = usize::try_from(keyset.fetch()).unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        view.walk(
            conn,
            above,
            below,
            keyset.reads_ascending(),
            query.limit + 1,
            |row| {
                if query.items || row.kind == MESSAGE_KIND {
                    rows.push(row);
                }
                Ok(still_wanted(want, rows.len()))
            },
        )?;
        return Ok((rows, keyset));
    }
    let all = messages::table.filter(messages::thread_pk.eq(view.pk()));
    let rows: Vec<MessageRow> = if query.items {
        with_keyset!(
            all,
            messages::seq,
            keyset,
            |q| on_backend!(conn, c => crate::keyset::load_rows(q.select(MessageRow::as_select()), c, keyset.fetch())?)
        )
    } else {
        with_keyset!(
            all.filter(messages::kind.eq(MESSAGE_KIND)),
            messages::seq,
            keyset,
            |q| on_backend!(conn, c => crate::keyset::load_rows(q.select(MessageRow::as_select()), c, keyset.fetch())?)
        )
    };
    Ok((rows, keyset))
}

fn load_message(
    conn: &mut DbConnection,
    view: &View,
    message_id: &str,
    items: bool,
) -> Result<MessageRow, StoreError> {
    let found = if view.is_plain() {
        messages::table
            .filter(messages::thread_pk.eq(view.pk()))
            .filter(messages::id.eq(message_id))
            .select(MessageRow::as_select())
            .first(conn)
            .optional()?
    } else {
        view.find(conn, message_id)?
    };
    found
        .filter(|row| items || row.kind == MESSAGE_KIND)
        .ok_or_else(|| StoreError::NotFound(Missing::Message(message_id.to_string())))
}

/// The caller's message (or item) in a thread being written, made the
/// thread's own: inherited history is copied first if the message is
/// inherited, and threads that show the message get their copies. Returns
/// the row to write and the thread's view afterwards.
fn writable_row(
    conn: &mut DbConnection,
    key: ThreadKey,
    message_id: &str,
    items: bool,
) -> Result<(MessageRow, View), StoreError> {
    let view = View::load(conn, key.pk, key.inherited_upto)?;
    let row = load_message(conn, &view, message_id, items)?;
    let view = forks::prepare_write(conn, view, row.seq, row.seq)?;
    if row.thread_pk == key.pk {
        return Ok((row, view));
    }
    // Copied just now: the thread's own copy.
    Ok((load_message(conn, &view, message_id, items)?, view))
}

/// Changes one message of an open thread.
pub fn update<F>(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    message_id: &str,
    change: F,
) -> Result<Message, StoreError>
where
    F: FnOnce(&Message) -> Result<Message, DomainError>,
{
    write_transaction(conn, |conn| {
        let (key, thread) = load_locked(conn, scope, thread_id)?;
        thread.check_writable()?;
        let (row, _) = writable_row(conn, key, message_id, false)?;
        let pk = row.pk;
        let current = row.into_message(thread.id().clone())?;
        let next = change(&current)?;
        prepared::update(
            messages::table,
            messages::pk.eq(pk),
            (
                messages::content.eq(&next.content),
                messages::token_count.eq(i64::from(next.token_count)),
                messages::metadata.eq(next.metadata.to_value().to_string()),
                messages::updated_at.eq(to_naive(next.updated_at)),
            ),
        )
        .execute(conn)?;
        Ok(next)
    })
}

/// Deletes one message of an open thread, keeping `message_count` and
/// `last_message_at` exact.
pub fn delete(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    message_id: &str,
    now: DateTime<Utc>,
) -> Result<Thread, StoreError> {
    delete_entry(conn, scope, thread_id, message_id, false, now, |_| Ok(()))
}

/// Deletes one message or (`items`) other conversation item of an open
/// thread if `check` accepts it as it is (a conditional delete), keeping
/// `message_count`, `item_count` and `last_message_at` exact.
pub fn delete_entry<C>(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    message_id: &str,
    items: bool,
    now: DateTime<Utc>,
    check: C,
) -> Result<Thread, StoreError>
where
    C: FnOnce(&Message) -> Result<(), DomainError>,
{
    write_transaction(conn, |conn| {
        let (key, thread) = load_locked(conn, scope, thread_id)?;
        thread.check_writable()?;
        let (row, view) = writable_row(conn, key, message_id, items)?;
        check(&row.clone().into_message(thread.id().clone())?)?;
        diesel::delete(messages::table.filter(messages::pk.eq(row.pk))).execute(conn)?;
        if row.kind != MESSAGE_KIND {
            let next = thread.record_item_removed(now)?;
            save(conn, key.pk, &next)?;
            return Ok(next);
        }
        let newest = newest_message(conn, &view)?.map(|(_, _, at)| at);
        let next = thread.record_removed(newest.map(to_utc), now)?;
        save(conn, key.pk, &next)?;
        if row.role == MessageRole::Assistant.as_str() && thread.has_unread() {
            crate::threads::recompute_unread(conn, key.pk)?;
            return Ok(crate::threads::load_locked(conn, scope, thread_id)?.1);
        }
        Ok(next)
    })
}

/// The newest message (not item) of a view: its sequence number, id and
/// creation time.
pub(crate) fn newest_message(
    conn: &mut DbConnection,
    view: &View,
) -> Result<Option<(i64, String, NaiveDateTime)>, StoreError> {
    if view.is_plain() {
        return Ok(messages::table
            .filter(messages::thread_pk.eq(view.pk()))
            .filter(messages::kind.eq(MESSAGE_KIND))
            .order(messages::seq.desc())
            .select((messages::seq, messages::id, messages::created_at))
            .first(conn)
            .optional()?);
    }
    let mut found = None;
    // Past a run of other items, reads grow as far as they have gone.
    let mut passed = 0u32;
    view.walk(conn, i64::MIN, i64::MAX, false, 8, |row| {
        if row.kind == MESSAGE_KIND {
            found = Some((row.seq, row.id, row.created_at));
            return Ok(0);
        }
        passed += 1;
        Ok(passed.max(8))
    })?;
    Ok(found)
}

/// The thread's stored turns, newest first, as the items of a model's
/// context (role, text, token count), handed to `take`, which answers how
/// many more it still wants (an estimate; 0 stops): the first read is of
/// `chunk` rows, each next one of about as many as `take` last wanted (at
/// most 1,024). The cost is proportional to what is taken, not to the
/// length of the thread, and only the columns a context needs are read.
pub fn history_newest_first<F>(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &str,
    chunk: u32,
    take: F,
) -> Result<(), StoreError>
where
    F: FnMut(ContextItem) -> u32,
{
    let key = visible_key(conn, scope, thread_id)?;
    history_at(conn, key.pk, key.inherited_upto, i64::MAX, chunk, take)
}

/// [`history_newest_first`] for a thread already looked up (by row id and
/// what it inherits), from the messages before sequence number `before`.
pub(crate) fn history_at<F>(
    conn: &mut DbConnection,
    pk: i64,
    inherited_upto: Option<i64>,
    before: i64,
    chunk: u32,
    mut take: F,
) -> Result<(), StoreError>
where
    F: FnMut(ContextItem) -> u32,
{
    if inherited_upto.is_some() {
        return forks::read(conn, pk, inherited_upto, |conn, view| {
            view.walk(conn, i64::MIN, before, false, chunk, |r| {
                Ok(take(context_item(
                    r.id,
                    r.role,
                    r.content,
                    r.token_count,
                    &r.kind,
                )?))
            })
        });
    }
    // One statement shape for every chunk (no boxed query), so that it is
    // prepared once per connection. Each chunk is about what `take` still
    // wants, so a long history takes few round trips and reads little more
    // than it uses (doubling chunks read up to twice as many rows).
    let mut below = before;
    let mut chunk = forks::next_chunk(chunk);
    loop {
        let rows: Vec<(i64, String, String, String, i64, String)> = messages::table
            .filter(messages::thread_pk.eq(pk))
            .filter(messages::seq.lt(below))
            .order(messages::seq.desc())
            .limit(chunk)
            .select((
                messages::seq,
                messages::id,
                messages::role,
                messages::content,
                messages::token_count,
                messages::kind,
            ))
            .load(conn)?;
        let full = rows.len() as i64 == chunk;
        for (seq, id, role, content, tokens, kind) in rows {
            below = seq;
            let wanted = take(context_item(id, role, content, tokens, &kind)?);
            if wanted == 0 {
                return Ok(());
            }
            chunk = forks::next_chunk(wanted);
        }
        if !full {
            return Ok(());
        }
    }
}

/// The thread's first `limit` messages before sequence number `before`,
/// oldest first, as context items.
pub(crate) fn oldest_at(
    conn: &mut DbConnection,
    pk: i64,
    inherited_upto: Option<i64>,
    before: i64,
    limit: u32,
) -> Result<Vec<ContextItem>, StoreError> {
    if inherited_upto.is_some() {
        let mut items = Vec::new();
        let want = limit as usize;
        forks::read(conn, pk, inherited_upto, |conn, view| {
            view.walk(conn, i64::MIN, before, true, limit, |r| {
                if items.len() < want {
                    items.push(context_item(
                        r.id,
                        r.role,
                        r.content,
                        r.token_count,
                        &r.kind,
                    )?);
                }
                Ok(still_wanted(want, items.len()))
            })
        })?;
        return Ok(items);
    }
    let rows: Vec<(String, String, String, i64, String)> = messages::table
        .filter(messages::thread_pk.eq(pk))
        .filter(messages::seq.lt(before))
        .order(messages::seq.asc())
        .limit(i64::from(limit))
        .select((
            messages::id,
            messages::role,
            messages::content,
            messages::token_count,
            messages::kind,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, role, content, tokens, kind)| context_item(id, role, content, tokens, &kind))
        .collect()
}

/// How many messages and items a thread holds before sequence number
/// `before`, and their tokens (a preview's account of the history it did
/// not send).
pub(crate) fn totals_at(
    conn: &mut DbConnection,
    pk: i64,
    inherited_upto: Option<i64>,
    before: i64,
) -> Result<(u64, u64), StoreError> {
    let totals = forks::read(conn, pk, inherited_upto, |conn, view| {
        view.totals_from(conn, i64::MIN, before)
    })?;
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok((
        unsigned(totals.messages + totals.items),
        unsigned(totals.tokens),
    ))
}

/// A stored message or item as an item of a model's context.
fn context_item(
    id: String,
    role: String,
    content: String,
    tokens: i64,
    kind: &str,
) -> Result<ContextItem, StoreError> {
    let role = MessageRole::parse(&role)
        .ok_or_else(|| StoreError::Corrupt(format!("message role '{role}'")))?;
    let item = if kind == MESSAGE_KIND {
        None
    } else {
        Some(
            serde_json::from_str(&content)
                .map_err(|e| StoreError::Corrupt(format!("conversation item: {e}")))?,
        )
    };
    Ok(ContextItem {
        role: role.into(),
        content,
        tokens: u32::try_from(tokens).unwrap_or(u32::MAX),
        item,
        id: Some(id),
    })
}

/// How many rows a reader that wants `want` and holds `have` still
/// wants.
pub(crate) fn still_wanted(want: usize, have: usize) -> u32 {
    u32::try_from(want.saturating_sub(have)).unwrap_or(u32::MAX)
}
