//! The purge side of retention: permanently deleting soft-deleted and
//! expired threads (with their messages and responses) once their grace
//! period is over, and responses older than the response TTL.
//!
//! What goes, at `now`:
//! - a thread soft-deleted before `now - deleted_grace`;
//! - a thread expired for longer than the grace: not archived and last
//!   active (`updated_at`) before `now - thread_inactivity_ttl -
//!   deleted_grace`, or created before `now - thread_max_age -
//!   deleted_grace`;
//! - with each such thread: its messages and its rows in `responses`;
//! - any response created before `now - response_ttl`, and the stored
//!   stream events of responses that old;
//! - a provisional thread (created by a first response that never saved
//!   its turn: the process died) once its lease has lapsed.
//!
//! [`purge_batch`] deletes a bounded number of rows in one short write
//! transaction, so that a sweeper calling it in a loop never holds a lock
//! long enough to stall requests.
//!
//! Several replicas on one PostgreSQL database sweep one at a time: each
//! batch runs under an advisory lock ([`sweep_batch`] skips when another
//! replica holds it, [`purge_all`] waits its turn), so no two processes
//! ever work on the same batch.

use crate::connection::write_transaction;
use crate::locks::{self, Wait};
use crate::rows::to_naive;
use crate::schema::{messages, responses, thread_segments, threads};
use crate::{DbConnection, StoreError};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use skein_domain::retention::RetentionPolicy;
use skein_domain::ThreadState;
use std::collections::BTreeMap;

/// How many rows of each kind were (or would be) purged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Threads.
    pub threads: u64,
    /// Messages of those threads.
    pub messages: u64,
    /// Responses: those of the purged threads and the expired ones.
    pub responses: u64,
    /// Stored runs of stream events (older than the response TTL).
    pub events: u64,
    /// Idempotency keys older than 24 hours, with their answers.
    pub idempotency_keys: u64,
}

impl PurgeCounts {
    /// True when nothing at all is counted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl std::ops::Add for PurgeCounts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            threads: self.threads + other.threads,
            messages: self.messages + other.messages,
            responses: self.responses + other.responses,
            events: self.events + other.events,
            idempotency_keys: self.idempotency_keys + other.idempotency_keys,
        }
    }
}

impl std::ops::AddAssign for PurgeCounts {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

impl std::fmt::Display for PurgeCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} threads, {} messages, {} responses",
            self.threads, self.messages, self.responses
        )?;
        if self.events > 0 {
            write!(f, ", {} stream event runs", self.events)?;
        }
        if self.idempotency_keys > 0 {
            write!(f, ", {} idempotency keys", self.idempotency_keys)?;
        }
        Ok(())
    }
}

/// The cut-off times of one purge at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cutoffs {
    deleted_before: NaiveDateTime,
    inactive_before: NaiveDateTime,
    created_before: NaiveDateTime,
    responses_before: NaiveDateTime,
    now: NaiveDateTime,
}

impl Cutoffs {
    fn new(policy: &RetentionPolicy, now: DateTime<Utc>) -> Self {
        let grace = policy.deleted_grace;
        Self {
            deleted_before: to_naive(policy.purge_deleted_before(now)),
            inactive_before: to_naive(now - policy.thread_inactivity_ttl - grace),
            created_before: to_naive(now - policy.thread_max_age - grace),
            responses_before: to_naive(policy.responses_before(now)),
            now: to_naive(now),
        }
    }
}

/// The condition on `threads` rows that are due for purging (a macro so
/// that it can be used in plain and joined queries alike).
macro_rules! purgeable_thread {
    ($c:expr) => {
        threads::deleted_at
            .lt($c.deleted_before)
            .or(threads::state
                .ne(ThreadState::Archived.as_str())
                .and(threads::updated_at.lt($c.inactive_before))
                .nullable())
            .or(threads::created_at.lt($c.created_before).nullable())
            // Incognito threads go at their time, without a grace period.
            .or(threads::expected_deletion_at.le($c.now))
            .assume_not_null()
    };
}

/// No fork shows any of the thread's rows (they were copied into the forks
/// first; a thread still shown waits for the next run).
macro_rules! not_shown_by_forks {
    () => {
        diesel::dsl::not(diesel::dsl::exists(
            thread_segments::table.filter(thread_segments::source_pk.eq(threads::pk)),
        ))
    };
}

fn to_u64(n: impl TryInto<u64>) -> u64 {
    n.try_into().unwrap_or(0)
}

/// Messages deleted per write transaction while purging: a thousand rows
/// (each also leaves the search index), so that no purge transaction holds
/// SQLite's write lock (or PostgreSQL's row locks) for long, however long
/// the purged threads are.
pub const MESSAGE_CHUNK: i64 = 1_000;

/// Purges at most `batch` due threads (with their messages and responses)
/// and at most `batch` expired responses. Candidates are found first
/// without a transaction; then their messages go in chunks of
/// [`MESSAGE_CHUNK`] rows, each chunk its own short write transaction
/// (writers of the same store queue fairly between chunks), and
/// finally the threads and their responses in one more. Every transaction
/// re-checks that the threads are still due, and deletes by key only, so
/// each stays short however large the tables are. An interrupted purge
/// leaves threads that are still due (and invisible) with fewer messages:
/// the next run finishes them. Returns what it deleted: call it again
/// until it returns [`PurgeCounts::is_empty`].
pub fn purge_batch(
    conn: &mut DbConnection,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    batch: u32,
) -> Result<PurgeCounts, StoreError> {
    let c = Cutoffs::new(policy, now);
    let limit = i64::from(batch.max(1));
    let candidates: Vec<i64> = threads::table
        .filter(purgeable_thread!(c))
        .limit(limit)
        .select(threads::pk)
        .load(conn)?;
    let expired: Vec<String> = responses::table
        .filter(responses::created_at.lt(c.responses_before))
        .limit(limit)
        .select(responses::id)
        .load(conn)?;
    let mut counts = PurgeCounts::default();
    if !candidates.is_empty() {
        // Forks that show history of these threads get their own copy
        // first, one fork per short transaction: a purged parent never
        // takes a live fork's history with it.
        // Until none is left (a fork of a fork made meanwhile names these
        // threads too), in pk order (ancestors before descendants).
        loop {
            let dependents = crate::forks::showing(conn, &candidates, i64::MIN, i64::MAX)?;
            if dependents.is_empty() {
                break;
            }
            for fork in dependents {
                write_transaction(conn, |conn| crate::forks::materialize(conn, fork))?;
            }
        }
        loop {
            let deleted = write_transaction(conn, |conn| -> Result<u64, StoreError> {
                let chunk: Vec<i64> = messages::table
                    .filter(
                        messages::thread_pk.eq_any(
                            threads::table
                                .filter(threads::pk.eq_any(&candidates))
                                .filter(purgeable_thread!(c))
                                .filter(not_shown_by_forks!())
                                .select(threads::pk),
                        ),
                    )
                    .limit(MESSAGE_CHUNK)
                    .select(messages::pk)
                    .load(conn)?;
                if chunk.is_empty() {
                    return Ok(0);
                }
                Ok(to_u64(
                    diesel::delete(messages::table.filter(messages::pk.eq_any(&chunk)))
                        .execute(conn)?,
                ))
            })?;
            counts.messages += deleted;
            if deleted < to_u64(MESSAGE_CHUNK) {
                break;
            }
        }
        counts += write_transaction(conn, |conn| {
            // Re-checked under the write lock: still there and still due.
            let due: Vec<(i64, String, String)> = threads::table
                .filter(threads::pk.eq_any(&candidates))
                .filter(purgeable_thread!(c))
                .filter(not_shown_by_forks!())
                .select((threads::pk, threads::organization_id, threads::id))
                .load(conn)?;
            purge_threads(conn, &due)
        })?;
    }
    counts.threads += purge_abandoned(conn, now, limit)?;
    counts.events += to_u64(crate::events::purge_older_than(
        conn,
        crate::rows::to_utc(c.responses_before),
        limit,
    )?);
    counts.idempotency_keys += crate::idempotency::purge_expired(conn, now, limit)?;
    if !expired.is_empty() {
        counts.responses += write_transaction(conn, |conn| -> Result<u64, StoreError> {
            Ok(to_u64(
                diesel::delete(
                    responses::table
                        .filter(responses::id.eq_any(&expired))
                        .filter(responses::created_at.lt(c.responses_before)),
                )
                .execute(conn)?,
            ))
        })?;
    }
    Ok(counts)
}

/// Deletes these threads (pk, organization, id) with their responses (and
/// any message left, normally none: their messages went in chunks before).
/// Runs inside the caller's transaction.
fn purge_threads(
    conn: &mut DbConnection,
    due: &[(i64, String, String)],
) -> Result<PurgeCounts, StoreError> {
    let mut counts = PurgeCounts::default();
    if due.is_empty() {
        return Ok(counts);
    }
    let pks: Vec<i64> = due.iter().map(|(pk, _, _)| *pk).collect();
    // Explicit, not left to the foreign key: SQLite may run without
    // foreign-key enforcement.
    counts.messages = to_u64(
        diesel::delete(messages::table.filter(messages::thread_pk.eq_any(&pks))).execute(conn)?,
    );
    let mut by_org: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, org, id) in due {
        by_org.entry(org.as_str()).or_default().push(id.as_str());
    }
    for (org, ids) in by_org {
        counts.responses += to_u64(
            diesel::delete(
                responses::table
                    .filter(responses::organization_id.eq(org))
                    .filter(responses::thread_id.eq_any(ids)),
            )
            .execute(conn)?,
        );
    }
    crate::events::purge_threads(conn, &pks)?;
    diesel::delete(thread_segments::table.filter(thread_segments::thread_pk.eq_any(&pks)))
        .execute(conn)?;
    counts.threads =
        to_u64(diesel::delete(threads::table.filter(threads::pk.eq_any(&pks))).execute(conn)?);
    Ok(counts)
}

/// Removes up to `limit` provisional threads whose lease has lapsed: a first
/// response created them and died before saving its turn, so they hold no
/// message. Re-checked under the write lock.
fn purge_abandoned(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let now = to_naive(now);
    let candidates: Vec<i64> = threads::table
        .filter(threads::provisional)
        .filter(threads::lease_expires_at.lt(now))
        .limit(limit)
        .select(threads::pk)
        .load(conn)?;
    if candidates.is_empty() {
        return Ok(0);
    }
    write_transaction(conn, |conn| {
        let due = threads::table
            .filter(threads::pk.eq_any(&candidates))
            .filter(threads::provisional)
            .filter(threads::message_count.eq(0))
            .filter(threads::lease_expires_at.lt(now));
        let pks: Vec<i64> = due.select(threads::pk).load(conn)?;
        crate::events::purge_threads(conn, &pks)?;
        Ok(to_u64(
            diesel::delete(threads::table.filter(threads::pk.eq_any(&pks))).execute(conn)?,
        ))
    })
}

/// One batch of the background sweeper: [`purge_batch`] under the
/// sweeper's advisory lock on PostgreSQL. `None` when another process
/// holds the lock (it is sweeping: this round is left to it); on SQLite
/// (one process) the batch always runs.
pub fn sweep_batch(
    conn: &mut DbConnection,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    batch: u32,
) -> Result<Option<PurgeCounts>, StoreError> {
    locks::exclusive(conn, locks::SWEEPER, Wait::Skip, |conn| {
        purge_batch(conn, policy, now, batch)
    })
}

/// Runs [`purge_batch`] until a batch deletes nothing; returns the total.
/// Each batch is a few short transactions, run under the sweeper's
/// advisory lock on PostgreSQL (waiting for a sweeper that holds it), so
/// that a purge beside running replicas never works on their batch.
pub fn purge_all(
    conn: &mut DbConnection,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    batch: u32,
) -> Result<PurgeCounts, StoreError> {
    let mut total = PurgeCounts::default();
    loop {
        let done = locks::exclusive(conn, locks::SWEEPER, Wait::Block, |conn| {
            purge_batch(conn, policy, now, batch)
        })?
        .unwrap_or_default();
        if done.is_empty() {
            return Ok(total);
        }
        total += done;
    }
}

/// What a purge at `now` would delete; deletes nothing (`--dry-run`).
pub fn count_purgeable(
    conn: &mut DbConnection,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<PurgeCounts, StoreError> {
    let c = Cutoffs::new(policy, now);
    let threads_due: i64 = threads::table
        .filter(purgeable_thread!(c))
        .count()
        .get_result(conn)?;
    let messages_due: i64 = messages::table
        .filter(
            messages::thread_pk.eq_any(
                threads::table
                    .filter(purgeable_thread!(c))
                    .select(threads::pk),
            ),
        )
        .count()
        .get_result(conn)?;
    let expired_responses: i64 = responses::table
        .filter(responses::created_at.lt(c.responses_before))
        .count()
        .get_result(conn)?;
    // Responses still within their TTL that go with a purged thread.
    let thread_responses: i64 = responses::table
        .inner_join(
            threads::table.on(threads::organization_id
                .eq(responses::organization_id)
                .and(responses::thread_id.eq(threads::id.nullable()))),
        )
        .filter(responses::created_at.ge(c.responses_before))
        .filter(purgeable_thread!(c))
        .count()
        .get_result(conn)?;
    Ok(PurgeCounts {
        threads: to_u64(threads_due),
        messages: to_u64(messages_due),
        responses: to_u64(expired_responses) + to_u64(thread_responses),
        events: to_u64(
            crate::schema::response_events::table
                .filter(crate::schema::response_events::created_at.lt(c.responses_before))
                .count()
                .get_result::<i64>(conn)?,
        ),
        idempotency_keys: to_u64(
            crate::schema::idempotency_keys::table
                .filter(
                    crate::schema::idempotency_keys::created_at
                        .lt(to_naive(now - crate::idempotency::KEY_TTL)),
                )
                .count()
                .get_result::<i64>(conn)?,
        ),
    })
}
