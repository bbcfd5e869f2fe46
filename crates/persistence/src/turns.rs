//! The storage side of a model response in a thread: take the busy lease,
//! then save the whole turn and give the lease back in one transaction, or
//! just give the lease back when the model failed.

use crate::connection::write_transaction;
use crate::messages::insert_after;
use crate::threads::{load_locked, save};
use crate::{DbConnection, Missing, Scope, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use skein_domain::{
    AssistantId, DomainError, Limits, Message, Metadata, NewMessage, NewThread, Thread, ThreadId,
    ThreadPatch, ThreadState,
};

/// How a response opens its turn.
#[derive(Debug, Clone)]
pub struct TurnStart {
    /// The thread id (server-made or chosen by the client).
    pub thread_id: ThreadId,
    /// Metadata for a thread created by this request.
    pub metadata: Metadata,
    /// The assistant the request names, to bind or to check.
    pub assistant: Option<AssistantId>,
    /// The response id, which holds the lease.
    pub lease_id: String,
    /// How long the lease lasts unless released.
    pub lease_ttl: TimeDelta,
    /// How many messages the turn will add (checked against the cap before
    /// the model is called).
    pub new_messages: u32,
}

/// Opens a turn: finds the caller's thread or creates it with the client's
/// id, binds the assistant on an empty thread (a different one on a thread
/// with messages is `ASSISTANT_BINDING_LOCKED`), checks the lifecycle and
/// takes the busy lease under `lease_id`. Returns the thread and whether it
/// was created.
pub fn begin(
    conn: &mut DbConnection,
    scope: &Scope,
    start: &TurnStart,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<(Thread, bool), StoreError> {
    write_transaction(conn, |conn| {
        let (key, current, created) = match load_locked(conn, scope, start.thread_id.as_str()) {
            Ok((key, t)) => (Some(key), t, false),
            Err(StoreError::NotFound(Missing::Thread)) => {
                let t = Thread::new(
                    NewThread {
                        id: start.thread_id.clone(),
                        organization_id: scope.organization_id.clone(),
                        user_id: scope.user_id.clone(),
                        title: None,
                        metadata: start.metadata.clone(),
                        assistant_id: None,
                        visible_in_ui: true,
                    },
                    now,
                );
                // Someone else's thread with this id makes the insert fail
                // on the unique index; to the caller it does not exist.
                crate::threads::insert(conn, &t).map_err(|e| match e {
                    StoreError::Conflict(_) => StoreError::NotFound(Missing::Thread),
                    other => other,
                })?;
                (None, t, true)
            }
            Err(e) => return Err(e),
        };
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
        let leased = bound.acquire_lease(start.lease_id.clone(), start.lease_ttl, now)?;
        // Fail before the model runs if the turn cannot fit.
        leased.record_appended(start.new_messages, limits, now)?;
        let pk = match key {
            Some(k) => k.pk,
            None => load_locked(conn, scope, start.thread_id.as_str())?.0.pk,
        };
        save(conn, pk, &leased)?;
        Ok((leased, created))
    })
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
}

/// Saves a whole turn and releases the lease, in one transaction: the
/// messages, `message_count`, `last_message_at`, `last_model_used` and the
/// requested state all land together or not at all. The lease must still
/// be `lease_id`'s (an expired lease taken over by another response makes
/// this turn's save fail with `ThreadBusy`).
pub fn finish(
    conn: &mut DbConnection,
    scope: &Scope,
    thread_id: &ThreadId,
    lease_id: &str,
    turn: FinishedTurn,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<(Thread, Vec<Message>), StoreError> {
    write_transaction(conn, |conn| {
        let (key, current) = load_locked(conn, scope, thread_id.as_str())?;
        if let Some(lease) = current.lease.as_ref().filter(|l| l.id != lease_id) {
            if lease.expires_at > now {
                let remaining = (lease.expires_at - now).num_seconds().max(1);
                return Err(DomainError::ThreadBusy {
                    retry_after_secs: u64::try_from(remaining).unwrap_or(1),
                }
                .into());
            }
        }
        let count = u32::try_from(turn.messages.len()).unwrap_or(u32::MAX);
        let mut next = current.record_appended(count, limits, now)?;
        next.last_model_used = Some(turn.model);
        if let Some(state) = turn.thread_state {
            next.state = next.state.transition(state).map_err(DomainError::from)?;
        }
        let next = next.release_lease(lease_id);
        let stored = insert_after(conn, key, thread_id, turn.messages, now)?;
        save(conn, key.pk, &next)?;
        Ok((next, stored))
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
    write_transaction(conn, |conn| {
        let (key, current) = load_locked(conn, scope, thread_id.as_str())?;
        if current.lease.as_ref().is_none_or(|l| l.id != lease_id) {
            return Ok(());
        }
        if created_by_this_turn && current.message_count == 0 {
            crate::threads::remove_empty(conn, key.pk)?;
        } else {
            save(conn, key.pk, &current.release_lease(lease_id))?;
        }
        Ok(())
    })
}
