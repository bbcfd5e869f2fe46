//! Forks (contract 11.2): a thread that shows another thread's history up
//! to a message, then its own, without copying that history.
//!
//! A thread's *view* is the ordered list of its messages as the API shows
//! them. A thread that is not a fork sees its own rows. A fork also sees
//! *segments*: the rows of other threads with `after < seq <= upto`
//! (`thread_segments`), all below `threads.inherited_upto`, above which its
//! own rows start (a fork's sequence numbers continue its parent's). A fork
//! of a fork takes its parent's segments, cut at the fork point, plus the
//! parent's own rows: every thread names the rows it shows directly, so a
//! view is at most one range read per ancestor, whatever happens to the
//! threads in between.
//!
//! Shared rows never change while shared. Before a write changes or removes
//! rows of a thread (an edit, a delete, a rewind's cut, a purge), every
//! thread whose segments cover them gets its own copy of its whole inherited
//! history first ([`release`]), in the same transaction; a thread that
//! changes a message it inherited copies its inherited history first
//! ([`materialize`]). Copies keep the ids, sequence numbers and timestamps,
//! so a view does not change when it is copied. The cost of a fork is
//! paid by the first such write, never by the fork itself.

use crate::connection::write_transaction;
use crate::rows::{to_naive, to_utc, MessageRow, MESSAGE_KIND};
use crate::schema::{messages, thread_segments, threads};
use crate::threads::{insert_row, load_locked};
use crate::{DbConnection, Missing, Scope, StoreError};
use chrono::{DateTime, Utc};
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use skein_domain::{DomainError, ForkPoint, ForkedFrom, MessageId, Thread};

/// Rows of `source` with `after < seq <= upto` shown in another thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) source: i64,
    pub(crate) after: i64,
    pub(crate) upto: i64,
}

impl Segment {
    fn holds(&self, seq: i64) -> bool {
        seq > self.after && seq <= self.upto
    }
}

/// What a thread shows: its segments in sequence order, its own rows last.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pk: i64,
    segments: Vec<Segment>,
}

impl View {
    /// A thread that shows only its own rows.
    pub(crate) fn plain(pk: i64) -> Self {
        Self {
            pk,
            segments: vec![Segment {
                source: pk,
                after: i64::MIN,
                upto: i64::MAX,
            }],
        }
    }

    /// The view of thread `pk` whose `inherited_upto` is as given, read in
    /// the caller's transaction (or snapshot).
    pub(crate) fn load(
        conn: &mut DbConnection,
        pk: i64,
        inherited_upto: Option<i64>,
    ) -> Result<Self, StoreError> {
        let Some(upto) = inherited_upto else {
            return Ok(Self::plain(pk));
        };
        let mut segments: Vec<Segment> = thread_segments::table
            .filter(thread_segments::thread_pk.eq(pk))
            .order(thread_segments::after_seq.asc())
            .select((
                thread_segments::source_pk,
                thread_segments::after_seq,
                thread_segments::upto_seq,
            ))
            .load::<(i64, i64, i64)>(conn)?
            .into_iter()
            .map(|(source, after, upto)| Segment {
                source,
                after,
                upto,
            })
            .collect();
        segments.push(Segment {
            source: pk,
            after: upto,
            upto: i64::MAX,
        });
        Ok(Self { pk, segments })
    }

    /// Only the thread's own rows (the common case: one plain range read).
    pub(crate) fn is_plain(&self) -> bool {
        self.segments.len() == 1
    }

    /// The thread's row id.
    pub(crate) fn pk(&self) -> i64 {
        self.pk
    }

    /// The segments in ascending sequence order, the thread's own last.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The row of message (or item) `id` in this view.
    pub(crate) fn find(
        &self,
        conn: &mut DbConnection,
        id: &str,
    ) -> Result<Option<MessageRow>, StoreError> {
        for segment in self.segments.iter().rev() {
            let row: Option<MessageRow> = messages::table
                .filter(messages::thread_pk.eq(segment.source))
                .filter(messages::id.eq(id))
                .select(MessageRow::as_select())
                .first(conn)
                .optional()?;
            if let Some(row) = row.filter(|r| segment.holds(r.seq)) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// Visits the view's rows with `above < seq < below`, in ascending or
    /// descending order, reading `chunk` rows first, then as many as
    /// `visit` last said it still wants (at most [`MAX_CHUNK`] at a time),
    /// until it says it wants none.
    pub(crate) fn walk<F>(
        &self,
        conn: &mut DbConnection,
        above: i64,
        below: i64,
        ascending: bool,
        chunk: u32,
        mut visit: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(MessageRow) -> Result<u32, StoreError>,
    {
        let mut chunk = i64::from(chunk.max(1));
        let ordered: Vec<&Segment> = if ascending {
            self.segments.iter().collect()
        } else {
            self.segments.iter().rev().collect()
        };
        for segment in ordered {
            // Exclusive bounds within this segment.
            let mut lo = above.max(segment.after);
            let mut hi = below.min(segment.upto.saturating_add(1));
            while lo.saturating_add(1) < hi {
                let range = messages::table
                    .filter(messages::thread_pk.eq(segment.source))
                    .filter(messages::seq.gt(lo))
                    .filter(messages::seq.lt(hi))
                    .select(MessageRow::as_select())
                    .limit(chunk);
                let rows: Vec<MessageRow> = if ascending {
                    range.order(messages::seq.asc()).load(conn)?
                } else {
                    range.order(messages::seq.desc()).load(conn)?
                };
                let full = rows.len() as i64 == chunk;
                for row in rows {
                    if ascending {
                        lo = row.seq;
                    } else {
                        hi = row.seq;
                    }
                    let wanted = visit(row)?;
                    if wanted == 0 {
                        return Ok(());
                    }
                    chunk = next_chunk(wanted);
                }
                if !full {
                    break;
                }
            }
        }
        Ok(())
    }

    /// How many messages and other items the view holds with `seq >=
    /// from`, and their tokens.
    pub(crate) fn totals_from(
        &self,
        conn: &mut DbConnection,
        from: i64,
        below: i64,
    ) -> Result<Totals, StoreError> {
        use diesel::dsl::sql;
        let mut totals = Totals::default();
        for segment in &self.segments {
            let lo = from.saturating_sub(1).max(segment.after);
            let hi = below.min(segment.upto.saturating_add(1));
            if lo.saturating_add(1) >= hi {
                continue;
            }
            let (all, items, tokens): (i64, i64, i64) = messages::table
                .filter(messages::thread_pk.eq(segment.source))
                .filter(messages::seq.gt(lo))
                .filter(messages::seq.lt(hi))
                .select((
                    sql::<diesel::sql_types::BigInt>("CAST(COUNT(*) AS BIGINT)"),
                    sql::<diesel::sql_types::BigInt>(
                        "CAST(COALESCE(SUM(CASE WHEN kind = 'message' THEN 0 ELSE 1 END), 0) AS BIGINT)",
                    ),
                    sql::<diesel::sql_types::BigInt>("CAST(COALESCE(SUM(token_count), 0) AS BIGINT)"),
                ))
                .first(conn)?;
            totals.messages += all - items;
            totals.items += items;
            totals.tokens += tokens;
        }
        Ok(totals)
    }
}

/// Counts over part of a view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) messages: i64,
    pub(crate) items: i64,
    pub(crate) tokens: i64,
}

/// The largest chunk of a walk.
const MAX_CHUNK: u32 = 1024;

/// The rows to read next for a reader that still wants about `wanted`.
pub(crate) fn next_chunk(wanted: u32) -> i64 {
    i64::from(wanted.clamp(1, MAX_CHUNK))
}

/// Runs `read` on the view of thread `pk` (whose row said
/// `inherited_upto`). A thread that inherits nothing is read as it is; a
/// fork is read in one snapshot (a read-only transaction, unless the caller
/// is in one already), so that a write copying its history and changing the
/// parent's at the same moment is seen entirely or not at all.
pub(crate) fn read<T, F>(
    conn: &mut DbConnection,
    pk: i64,
    inherited_upto: Option<i64>,
    read: F,
) -> Result<T, StoreError>
where
    F: FnOnce(&mut DbConnection, &View) -> Result<T, StoreError>,
{
    if inherited_upto.is_none() {
        return read(conn, &View::plain(pk));
    }
    snapshot(conn, |conn| {
        let upto: Option<i64> = threads::table
            .filter(threads::pk.eq(pk))
            .select(threads::inherited_upto)
            .first(conn)?;
        let view = View::load(conn, pk, upto)?;
        read(conn, &view)
    })
}

fn in_transaction(conn: &mut DbConnection) -> bool {
    let depth = |status: &mut diesel::connection::TransactionManagerStatus| {
        status
            .transaction_depth()
            .ok()
            .flatten()
            .is_some_and(|d| d.get() > 0)
    };
    match conn {
        DbConnection::Sqlite(c) => depth(AnsiTransactionManager::transaction_manager_status_mut(c)),
        DbConnection::Postgresql(c) => {
            depth(AnsiTransactionManager::transaction_manager_status_mut(c))
        }
    }
}

/// Runs `f` in a read-only snapshot: a deferred transaction on SQLite (WAL:
/// one snapshot from the first read), `REPEATABLE READ READ ONLY` on
/// PostgreSQL. Inside a transaction already, `f` just runs in it.
fn snapshot<T, F>(conn: &mut DbConnection, f: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, StoreError>,
{
    if in_transaction(conn) {
        return f(conn);
    }
    let begun = match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN"),
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction_sql(
            c,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        ),
    };
    begun?;
    let result = f(conn);
    let end = match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::commit_transaction(c),
        DbConnection::Postgresql(c) => AnsiTransactionManager::commit_transaction(c),
    };
    match (result, end) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// Gives thread `pk` its own copy of everything it inherits (inside the
/// caller's write transaction): afterwards it shows only its own rows, and
/// shows exactly what it showed before. Nothing to do for a thread that
/// inherits nothing.
pub(crate) fn materialize(conn: &mut DbConnection, pk: i64) -> Result<(), StoreError> {
    let q = threads::table
        .filter(threads::pk.eq(pk))
        .select(threads::inherited_upto);
    // Held until the commit on PostgreSQL, so that a concurrent copy of the
    // same thread waits and then finds nothing left to do.
    let upto: Option<Option<i64>> = match &mut *conn {
        DbConnection::Postgresql(c) => q.for_update().first(c).optional()?,
        other => q.first(other).optional()?,
    };
    let Some(Some(upto)) = upto else {
        // Nothing inherited (any segment left is stale): nothing to copy.
        diesel::delete(thread_segments::table.filter(thread_segments::thread_pk.eq(pk)))
            .execute(conn)?;
        return Ok(());
    };
    let view = View::load(conn, pk, Some(upto))?;
    for segment in view.segments().iter().filter(|s| s.source != pk) {
        let copied = messages::table
            .filter(messages::thread_pk.eq(segment.source))
            .filter(messages::seq.gt(segment.after))
            .filter(messages::seq.le(segment.upto))
            .select((
                messages::id,
                pk.into_sql::<diesel::sql_types::BigInt>(),
                messages::seq,
                messages::role,
                messages::content,
                messages::token_count,
                messages::metadata,
                messages::attachments,
                messages::response_id,
                messages::model,
                messages::created_at,
                messages::updated_at,
                messages::kind,
            ));
        diesel::insert_into(messages::table)
            .values(copied)
            .into_columns((
                messages::id,
                messages::thread_pk,
                messages::seq,
                messages::role,
                messages::content,
                messages::token_count,
                messages::metadata,
                messages::attachments,
                messages::response_id,
                messages::model,
                messages::created_at,
                messages::updated_at,
                messages::kind,
            ))
            .execute(conn)?;
    }
    diesel::delete(thread_segments::table.filter(thread_segments::thread_pk.eq(pk)))
        .execute(conn)?;
    diesel::update(threads::table.filter(threads::pk.eq(pk)))
        .set(threads::inherited_upto.eq(None::<i64>))
        .execute(conn)?;
    Ok(())
}

/// The threads whose segments show rows of any of `sources` with `from <=
/// seq <= to`, in pk order (a fork's pk is above its ancestors', so
/// materializing in this order locks ancestors before descendants).
pub(crate) fn showing(
    conn: &mut DbConnection,
    sources: &[i64],
    from: i64,
    to: i64,
) -> Result<Vec<i64>, StoreError> {
    Ok(thread_segments::table
        .filter(thread_segments::source_pk.eq_any(sources))
        .filter(thread_segments::upto_seq.ge(from))
        .filter(thread_segments::after_seq.lt(to))
        .select(thread_segments::thread_pk)
        .distinct()
        .order(thread_segments::thread_pk.asc())
        .load(conn)?)
}

/// Before rows of thread `source` with `from <= seq <= to` change or go:
/// every thread that shows any of them gets its own copy first (inside the
/// caller's write transaction).
pub(crate) fn release(
    conn: &mut DbConnection,
    source: i64,
    from: i64,
    to: i64,
) -> Result<(), StoreError> {
    // Until none is left: on PostgreSQL a fork of a fork may commit while
    // this waits for its parent's lock (the new fork names `source` too),
    // and a later statement sees it. In pk order (a fork's pk is above its
    // ancestors'), so writers lock threads from ancestor to descendant and
    // never in a cycle.
    loop {
        let dependents = showing(conn, &[source], from, to)?;
        if dependents.is_empty() {
            return Ok(());
        }
        for pk in dependents {
            materialize(conn, pk)?;
        }
    }
}

/// Before thread `pk` (seen through `view`) changes or removes the rows of
/// its view with `from <= seq <= to`: a thread that inherits any of them
/// copies its inherited history, and the threads showing its own rows in
/// that range get their copies. Returns the view to write through (the
/// thread's own rows only, after a copy).
pub(crate) fn prepare_write(
    conn: &mut DbConnection,
    view: View,
    from: i64,
    to: i64,
) -> Result<View, StoreError> {
    let pk = view.pk();
    let view = match view.segments().first() {
        Some(first) if first.source != pk && from <= inherited_top(&view) => {
            materialize(conn, pk)?;
            View::plain(pk)
        }
        _ => view,
    };
    release(conn, pk, from, to)?;
    Ok(view)
}

/// The highest sequence number a view inherits.
fn inherited_top(view: &View) -> i64 {
    view.segments()
        .iter()
        .rev()
        .find(|s| s.source != view.pk())
        .map_or(i64::MIN, |s| s.upto)
}

/// Forks the caller's live thread `parent_id` at its message `message_id`
/// (default: its newest message), in one transaction that holds the
/// parent's row: `make` turns the parent and the fork point into the new
/// thread, which is stored showing the parent's history up to that
/// message. The cost does not depend on the length of that history: the
/// fork point is found by id (or as the newest message), the counts are
/// the parent's minus what comes after the fork point, and the history is
/// named (one segment per ancestor), not copied.
pub fn fork<F>(
    conn: &mut DbConnection,
    scope: &Scope,
    parent_id: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
    make: F,
) -> Result<Thread, StoreError>
where
    F: FnOnce(&Thread, ForkPoint) -> Result<Thread, DomainError>,
{
    write_transaction(conn, |conn| {
        let (key, parent) = load_locked(conn, scope, parent_id)?;
        let view = View::load(conn, key.pk, key.inherited_upto)?;
        let point = match message_id {
            Some(id) => {
                let row = view
                    .find(conn, id)?
                    .filter(|r| r.kind == MESSAGE_KIND)
                    .ok_or_else(|| StoreError::NotFound(Missing::Message(id.to_string())))?;
                Some((row.seq, row.id, row.created_at))
            }
            None => crate::messages::newest_message(conn, &view)?,
        };
        let (at, upto) = match point {
            Some((seq, id, created_at)) => {
                let after = view.totals_from(conn, seq.saturating_add(1), i64::MAX)?;
                let message_id =
                    MessageId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                (
                    ForkPoint {
                        from: ForkedFrom {
                            thread_id: parent.id().clone(),
                            message_id: Some(message_id),
                        },
                        messages: (parent.message_count() - after.messages).max(0),
                        items: (parent.item_count() - after.items).max(0),
                        last_message_at: Some(to_utc(created_at)),
                    },
                    seq,
                )
            }
            None => (
                ForkPoint {
                    from: ForkedFrom {
                        thread_id: parent.id().clone(),
                        message_id: None,
                    },
                    messages: 0,
                    items: 0,
                    last_message_at: None,
                },
                i64::MIN,
            ),
        };
        let fork = make(&parent, at)?;
        insert_row(conn, &fork)?;
        let fork_pk: i64 = threads::table
            .filter(threads::organization_id.eq(fork.organization_id().as_str()))
            .filter(threads::id.eq(fork.id().as_str()))
            .select(threads::pk)
            .first(conn)?;
        attach(conn, fork_pk, &fork, &view, upto, now)?;
        Ok(fork)
    })
}

/// Stores a new fork's segments and, in one update of its row (already
/// inserted), what an insert does not write: where its own rows start, the
/// counters and times it inherits, its read mark. It shows `parent`'s view
/// up to `upto`.
pub(crate) fn attach(
    conn: &mut DbConnection,
    fork_pk: i64,
    fork: &Thread,
    parent: &View,
    upto: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let segments: Vec<(i64, i64, i64, i64)> = parent
        .segments()
        .iter()
        .filter(|s| s.after < upto)
        .map(|s| (fork_pk, s.source, s.after, s.upto.min(upto)))
        .collect();
    for (thread_pk, source_pk, after, upto_seq) in &segments {
        diesel::insert_into(thread_segments::table)
            .values((
                thread_segments::thread_pk.eq(thread_pk),
                thread_segments::source_pk.eq(source_pk),
                thread_segments::after_seq.eq(after),
                thread_segments::upto_seq.eq(upto_seq),
            ))
            .execute(conn)?;
    }
    diesel::update(threads::table.filter(threads::pk.eq(fork_pk)))
        .set((
            threads::last_seq.eq(upto.max(0)),
            threads::inherited_upto.eq((!segments.is_empty()).then_some(upto)),
            // What it holds at the fork was read when it was made.
            threads::last_read_at.eq(Some(to_naive(now))),
            threads::item_count.eq(fork.item_count()),
            threads::last_message_at.eq(fork.last_message_at().map(to_naive)),
            threads::last_model_used.eq(fork.last_model_used()),
        ))
        .execute(conn)?;
    Ok(())
}
