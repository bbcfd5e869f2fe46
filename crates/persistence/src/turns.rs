//! The storage side of a model turn: open it (the thread found or created,
//! the assistant bound, the busy lease taken) in one write transaction,
//! then commit it (messages, counters, state, the stored response, the
//! lease given back) in another, or just give the lease back when the turn
//! failed.

use crate::connection::{write_transaction, write_transaction_as, Durability};
use crate::messages::{append_and_save, history_at, oldest_at};
use crate::prepared;
use crate::responses::{self, StoredResponse};
use crate::rows::to_naive;
use crate::schema::threads;
use crate::threads::{insert_if_absent, load_locked, save, ThreadKey};
use crate::{assistants, DbConnection, Scope, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use skein_domain::context::ContextItem;
use skein_domain::{
    Assistant, AssistantId, DomainError, Limits, Message, Metadata, NewMessage, NewThread, Thread,
    ThreadId, ThreadPatch, ThreadState, WorkflowId,
};

/// How a response opens its turn in a thread.
#[derive(Debug, Clone)]
pub struct TurnStart {
    /// The thread id (server-made or chosen by the client).
    pub thread_id: ThreadId,
    /// Metadata for a thread created by this request.
    pub metadata: Metadata,
    /// The `workflow_id` of a thread created by this request.
    pub workflow_id: Option<WorkflowId>,
    /// `Some(ttl)`: a thread created by this request is incognito.
    pub incognito_ttl: Option<TimeDelta>,
    /// Create the thread when it does not exist (the Freddy dialect); when
    /// false, a missing thread is `NotFound` (OpenAI's conversations).
    pub create: bool,
    /// The assistant the request names, to bind or to check.
    pub assistant: Option<AssistantId>,
    /// The response id, which holds the lease.
    pub lease_id: String,
    /// How long the lease lasts unless released.
    pub lease_ttl: TimeDelta,
    /// How many messages the turn will add (checked against the cap before
    /// the model is called).
    pub new_messages: u32,
    /// Rewind the thread before this turn's messages (applied by the commit).
    pub rewind: Option<Rewind>,
}

/// A rewind asked for by a turn: the thread continues after a message
/// (`previous_message_id`), or a user message and everything after it are
/// replaced by the turn's inputs (`edit_message_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewind {
    /// The message (in the thread).
    pub message_id: String,
    /// Replace the message itself (an edit) rather than keep it.
    pub replace: bool,
}

/// A turn opened in a thread: the leased thread, whether this turn created
/// it, what the caller's plan made of it, and its history.
#[derive(Debug)]
pub struct OpenedTurn<P> {
    /// The thread as saved, holding the lease.
    pub thread: Thread,
    /// The thread was created by this turn (a failed turn removes it again).
    pub created: bool,
    /// The caller's plan for the turn.
    pub plan: P,
    /// The thread's stored messages (before the rewind's cut, if any).
    pub history: History,
    /// With a rewind: the sequence number from which the commit removes the
    /// thread's messages.
    pub rewind_from: Option<i64>,
}

/// The stored messages of a thread already looked up (read by row id,
/// without looking the thread up again).
#[derive(Debug, Clone)]
pub struct History {
    pk: i64,
    /// What the thread inherits (a fork), see [`crate::forks`].
    inherited_upto: Option<i64>,
    /// Only messages before this sequence number (a rewind's cut).
    before: i64,
}

impl History {
    /// The thread's row id.
    pub fn thread_pk(&self) -> i64 {
        self.pk
    }

    /// The messages newest first, as context items, handed to `take` until
    /// it wants no more (see [`crate::messages::history_newest_first`]).
    pub fn newest_first<F>(
        &self,
        conn: &mut DbConnection,
        chunk: u32,
        take: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(ContextItem) -> u32,
    {
        history_at(conn, self.pk, self.inherited_upto, self.before, chunk, take)
    }

    /// How many messages and items the history holds, and their tokens.
    pub fn totals(&self, conn: &mut DbConnection) -> Result<(u64, u64), StoreError> {
        crate::messages::totals_at(conn, self.pk, self.inherited_upto, self.before)
    }

    /// The first `limit` messages, oldest first.
    pub fn oldest(
        &self,
        conn: &mut DbConnection,
        limit: u32,
    ) -> Result<Vec<ContextItem>, StoreError> {
        oldest_at(conn, self.pk, self.inherited_upto, self.before, limit)
    }
}

/// Opens a turn in one write transaction (a relaxed one on PostgreSQL: a
/// lease, and a thread created with it, that a database crash loses cost
/// nothing, because the turn's own durable commit flushes everything before
/// it, and a turn whose lease was lost saves nothing): finds the caller's thread or
/// creates it under the client's id (a concurrent first use of the same id
/// waits for the winner and then sees its thread: busy, never missing),
/// binds the requested assistant on an empty thread (a different one on a
/// thread with messages is `ASSISTANT_BINDING_LOCKED`), then hands the
/// thread and the assistant whose settings apply to `plan`. Only if the
/// plan succeeds does it check the lifecycle and the message cap and take
/// the busy lease under `lease_id`; any error rolls the whole transaction
/// back, the creation included.
pub fn open<P, E, F>(
    conn: &mut DbConnection,
    scope: &Scope,
    start: &TurnStart,
    limits: &Limits,
    now: DateTime<Utc>,
    plan: F,
) -> Result<OpenedTurn<P>, E>
where
    F: FnOnce(&Thread, Option<&Assistant>) -> Result<P, E>,
    E: From<StoreError>,
{
    write_transaction_as(conn, Durability::Relaxed, |conn| {
        let id = start.thread_id.as_str();
        let (key, current, created) = match load_locked(conn, scope, id) {
            Ok((key, thread)) => (key, thread, false),
            Err(StoreError::NotFound(_)) if start.create => {
                let fresh = fresh_thread(scope, start, now);
                let created = insert_if_absent(conn, &fresh)?;
                // Someone else's (or a deleted) thread holding the id stays
                // invisible: NotFound, as if it did not exist.
                let (key, thread) = load_locked(conn, scope, id)?;
                (key, thread, created)
            }
            Err(e) => return Err(e.into()),
        };
        let (bound, assistant) = bind_assistant(conn, scope, start, current, limits, now)?;
        let rewind_from = match &start.rewind {
            Some(r) => Some(rewind_point(conn, key, r)?),
            None => None,
        };
        let plan = plan(&bound, assistant.as_ref())?;
        let leased = bound
            .acquire_lease(start.lease_id.clone(), start.lease_ttl, now)
            .map_err(StoreError::from)?;
        // Fail before the model runs if the turn cannot fit (after what
        // its rewind removes).
        let after_rewind = match rewind_from {
            Some(from) => {
                let (messages, items) = entries_from(conn, key.pk, key.inherited_upto, from)?;
                leased.record_rewound(messages, items)
            }
            None => leased.clone(),
        };
        after_rewind
            .record_appended(start.new_messages, limits, now)
            .map_err(StoreError::from)?;
        save(conn, key.pk, &leased)?;
        if created {
            // Unlisted until the turn is saved; removed by the sweeper if
            // the process dies first (see `retention`).
            prepared::update(
                threads::table,
                threads::pk.eq(key.pk),
                threads::provisional.eq(true),
            )
            .execute(conn)
            .map_err(StoreError::from)?;
        }
        Ok(OpenedTurn {
            thread: leased,
            created,
            plan,
            history: History {
                pk: key.pk,
                inherited_upto: key.inherited_upto,
                before: rewind_from.unwrap_or(i64::MAX),
            },
            rewind_from,
        })
    })
}

/// The thread a turn creates on first use of its id.
fn fresh_thread(scope: &Scope, start: &TurnStart, now: DateTime<Utc>) -> Thread {
    Thread::new(
        NewThread {
            id: start.thread_id.clone(),
            organization_id: scope.organization_id.clone(),
            user_id: scope.user_id.clone(),
            title: None,
            metadata: start.metadata.clone(),
            assistant_id: None,
            visible_in_ui: true,
            workflow_id: start.workflow_id.clone(),
            incognito_ttl: start.incognito_ttl,
        },
        now,
    )
}

/// The thread with the requested assistant bound (in memory: the caller
/// saves it), and the assistant whose settings apply.
fn bind_assistant(
    conn: &mut DbConnection,
    scope: &Scope,
    start: &TurnStart,
    current: Thread,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<(Thread, Option<Assistant>), StoreError> {
    let bound = match &start.assistant {
        Some(a) => current.apply(
            ThreadPatch {
                assistant_id: Some(a.clone()),
                ..ThreadPatch::default()
            },
            limits,
            now,
        )?,
        None => current,
    };
    let assistant =
        assistants::for_turn(conn, scope, start.assistant.as_ref(), bound.assistant_id())?;
    Ok((bound, assistant))
}

/// What [`open`] would see, without writing anything (a preview of the
/// context): the thread read without a lock and without a lease; a thread
/// that `start.create` would create is planned as a new, empty one (no
/// history); the requested assistant is bound in memory only. The
/// lifecycle and the cap are checked only when `checked` (as the turn
/// would check them; the lease is never). `None` for the history of a
/// thread that does not exist yet.
pub fn peek<P, E, F>(
    conn: &mut DbConnection,
    scope: &Scope,
    start: &TurnStart,
    limits: &Limits,
    now: DateTime<Utc>,
    checked: bool,
    plan: F,
) -> Result<(P, Option<History>), E>
where
    F: FnOnce(&Thread, Option<&Assistant>) -> Result<P, E>,
    E: From<StoreError>,
{
    let found = match crate::threads::load_live_for_read(conn, scope, start.thread_id.as_str()) {
        Ok(found) => Some(found),
        // As `open`: an id held by someone else's (or a deleted) thread of
        // the organization is not free, and stays invisible.
        Err(StoreError::NotFound(missing)) if start.create => {
            let taken = threads::table
                .filter(threads::organization_id.eq(scope.organization_id.as_str()))
                .filter(threads::id.eq(start.thread_id.as_str()))
                .select(threads::pk)
                .first::<i64>(conn)
                .optional()
                .map_err(StoreError::from)?
                .is_some();
            if taken {
                return Err(StoreError::NotFound(missing).into());
            }
            None
        }
        Err(e) => return Err(e.into()),
    };
    let (key, current) = match found {
        Some((key, thread)) => (Some(key), thread),
        None => (None, fresh_thread(scope, start, now)),
    };
    let (bound, assistant) = bind_assistant(conn, scope, start, current, limits, now)?;
    let history = match key {
        Some(key) => Some(History {
            pk: key.pk,
            inherited_upto: key.inherited_upto,
            before: match &start.rewind {
                Some(r) => rewind_point(conn, key, r)?,
                None => i64::MAX,
            },
        }),
        None => None,
    };
    let planned = plan(&bound, assistant.as_ref())?;
    if checked {
        let after_rewind = match &history {
            Some(h) if h.before != i64::MAX => {
                let (messages, items) = entries_from(conn, h.pk, h.inherited_upto, h.before)?;
                bound.record_rewound(messages, items)
            }
            _ => bound,
        };
        after_rewind
            .record_appended(start.new_messages, limits, now)
            .map_err(StoreError::from)?;
    }
    Ok((planned, history))
}

/// The sequence number from which a rewind removes messages: after the
/// message, or the message itself for an edit (a user message only).
fn rewind_point(
    conn: &mut DbConnection,
    key: ThreadKey,
    rewind: &Rewind,
) -> Result<i64, StoreError> {
    let found: Option<(i64, String)> =
        crate::forks::read(conn, key.pk, key.inherited_upto, |conn, view| {
            Ok(view
                .find(conn, &rewind.message_id)?
                .filter(|r| r.kind == crate::rows::MESSAGE_KIND)
                .map(|r| (r.seq, r.role)))
        })?;
    let (seq, role) = found
        .ok_or_else(|| StoreError::NotFound(crate::Missing::Message(rewind.message_id.clone())))?;
    if !rewind.replace {
        return Ok(seq + 1);
    }
    if role != "user" {
        return Err(StoreError::Rule(DomainError::InvalidRewind(format!(
            "edit_message_id must name a user message; '{}' is a {role} message",
            rewind.message_id
        ))));
    }
    Ok(seq)
}

/// How many messages and how many other conversation items a thread holds
/// from sequence number `from` on (what a rewind removes).
fn entries_from(
    conn: &mut DbConnection,
    pk: i64,
    inherited_upto: Option<i64>,
    from: i64,
) -> Result<(u32, u32), StoreError> {
    let totals = crate::forks::read(conn, pk, inherited_upto, |conn, view| {
        view.totals_from(conn, from, i64::MAX)
    })?;
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok((count(totals.messages), count(totals.items)))
}

/// [`open`] without a plan: takes the lease (creating the thread on first
/// use) and returns the leased thread and whether it was created. For
/// tools and tests that need a thread held by a response.
pub fn begin(
    conn: &mut DbConnection,
    scope: &Scope,
    start: &TurnStart,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<(Thread, bool), StoreError> {
    open(conn, scope, start, limits, now, |_, _| {
        Ok::<_, StoreError>(())
    })
    .map(|opened| (opened.thread, opened.created))
}

/// What a finished turn saves.
#[derive(Debug, Clone)]
pub struct FinishedTurn {
    /// The new user/assistant inputs and the model's answer, in order.
    pub messages: Vec<NewMessage>,
    /// The model that answered.
    pub model: String,
    /// A lifecycle state to apply after saving.
    pub thread_state: Option<ThreadState>,
    /// The response to keep (for chains and reconnects), if it is kept.
    pub response: Option<StoredResponse>,
    /// Remove the thread's messages from this sequence number first (a
    /// rewind), in the same transaction.
    pub rewind_from: Option<i64>,
}

/// Commits a turn in one transaction. In a thread: the messages,
/// `message_count`, `last_message_at`, `last_model_used`, the requested
/// state and the lease's release land together or not at all, and only
/// while `lease_id` may still write (an expired lease taken over by another
/// response makes this fail with `ThreadBusy`). The stored response, if
/// any, is written in the same transaction. Returns the saved thread and
/// messages (none without a thread).
pub fn commit(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: Option<&ThreadId>,
    lease_id: &str,
    turn: FinishedTurn,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<(Option<Thread>, Vec<Message>), StoreError> {
    write_transaction(conn, |conn| {
        let saved = match thread_id {
            Some(id) => {
                let (key, current) = load_locked(conn, scope, id.as_str())?;
                current.check_lease_holder(lease_id, now)?;
                let current = match turn.rewind_from {
                    Some(from) => {
                        use crate::schema::messages;
                        // Items that are not messages go too, counted apart.
                        let (messages_removed, items_removed) =
                            entries_from(conn, key.pk, key.inherited_upto, from)?;
                        // A cut into inherited history copies it first, and
                        // forks showing the removed messages keep them.
                        let view = crate::forks::View::load(conn, key.pk, key.inherited_upto)?;
                        crate::forks::prepare_write(conn, view, from, i64::MAX)?;
                        diesel::delete(
                            messages::table
                                .filter(messages::thread_pk.eq(key.pk))
                                .filter(messages::seq.ge(from)),
                        )
                        .execute(conn)?;
                        current.record_rewound(messages_removed, items_removed)
                    }
                    None => current,
                };
                let (messages, items) = crate::messages::entry_counts(&turn.messages);
                let mut next = current
                    .record_entries(messages, items, limits, now)?
                    .record_model(turn.model);
                if let Some(state) = turn.thread_state {
                    next = next.transition(state)?;
                }
                let next = next.release_lease(lease_id);
                let rewound = turn.rewind_from.is_some();
                let stored = append_and_save(conn, key, &next, turn.messages, now)?;
                // A rewind may have removed the unread answer without
                // saving a new one (a cancel with nothing kept of it).
                if rewound
                    && !stored
                        .iter()
                        .any(|m| m.role == skein_domain::MessageRole::Assistant && m.item.is_none())
                {
                    crate::threads::recompute_unread(conn, key.pk)?;
                }
                // The commit's own read of the row says whether it is still
                // provisional: only then one more statement.
                if key.provisional {
                    prepared::update(
                        threads::table,
                        threads::pk.eq(key.pk),
                        threads::provisional.eq(false),
                    )
                    .execute(conn)?;
                }
                (Some(next), stored)
            }
            None => (None, Vec::new()),
        };
        if let Some(response) = &turn.response {
            responses::insert(conn, response)?;
        }
        Ok(saved)
    })
}

/// Gives the lease back without saving anything (the model failed, the
/// request was invalid, or the client cancelled early). A thread that this
/// turn created and that is still empty is removed again, so a failed first
/// turn leaves nothing behind.
pub fn release(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &ThreadId,
    lease_id: &str,
    created_by_this_turn: bool,
) -> Result<(), StoreError> {
    write_transaction_as(conn, Durability::Relaxed, |conn| {
        let (key, current) = load_locked(conn, scope, thread_id.as_str())?;
        if current.lease().is_none_or(|l| l.id != lease_id) {
            return Ok(());
        }
        if created_by_this_turn && current.message_count() == 0 {
            crate::threads::remove_empty(conn, key.pk)?;
        } else {
            save(conn, key.pk, &current.release_lease(lease_id))?;
        }
        Ok(())
    })
}

/// Extends a running response's lease to `until`, if `lease_id` still holds
/// it; returns false when it does not (the lease was lost). Relaxed
/// durability, like taking the lease.
pub fn renew(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &ThreadId,
    lease_id: &str,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    write_transaction_as(conn, Durability::Relaxed, |conn| {
        let renewed = prepared::update(
            threads::table,
            threads::organization_id
                .eq(scope.organization_id.as_str())
                .and(threads::id.eq(thread_id.as_str()))
                .and(threads::lease_id.eq(lease_id)),
            threads::lease_expires_at.eq(to_naive(until)),
        )
        .execute(conn)?;
        Ok(renewed > 0)
    })
}
