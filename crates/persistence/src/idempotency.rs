//! `Idempotency-Key` (contract 11.4): a caller's key is claimed by its
//! first request, which then stores its answer; a retry of the same request
//! gets that answer again for 24 hours. In the database, so that it holds
//! across replicas and restarts.

use crate::connection::{
    join_next_write, leave_next_write, on_backend, write_statement, write_transaction,
    write_transaction_as, Durability, Joining,
};
use crate::prepared;
use crate::rows::to_naive;
use crate::schema::idempotency_keys as keys;
use crate::{DbConnection, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use std::sync::{Arc, OnceLock};

/// How long a key and its answer are kept.
pub const KEY_TTL: TimeDelta = TimeDelta::hours(24);

/// An answer kept for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The headers replayed with it (name, value).
    pub headers: Vec<(String, String)>,
    /// The body as it was sent.
    pub body: Vec<u8>,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this request's now: run it, then [`finish`] or
    /// [`release`].
    New,
    /// The same request was answered: this is the answer.
    Replay(StoredAnswer),
    /// The key belongs to another request (another method, path, query or
    /// body).
    Reused,
    /// The same request is still running under this key.
    InProgress,
}

/// A request's key, to claim: the caller's user, the key, the request's
/// fingerprint, the time of the request and how long a running request
/// holds its key.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// The caller's user.
    pub user: String,
    /// The `Idempotency-Key`.
    pub key: String,
    /// The request's fingerprint (method, path, query, body).
    pub fingerprint: String,
    /// When the request came.
    pub now: DateTime<Utc>,
    /// How long a running request holds its key.
    pub hold: TimeDelta,
}

/// Claims the request's key, in one transaction. A
/// key older than [`KEY_TTL`], or whose running request's claim lapsed at
/// `locked_until` (its process died), is taken over. Concurrent claims of
/// one key: exactly one gets [`Claim::New`].
pub fn claim(conn: &mut DbConnection, request: &KeyRequest) -> Result<Claim, StoreError> {
    // A retry mostly finds its answer: one read, no write transaction.
    if let Some(found) = settled(conn, request)? {
        return Ok(found);
    }
    // Relaxed: a claim that a crash loses costs nothing, because the
    // request's own durable commit (and the answer's) flushes it first.
    write_transaction_as(conn, Durability::Relaxed, |conn| {
        claim_within(conn, request)
    })
}

/// [`claim`]'s writes, in the caller's write transaction.
fn claim_within(conn: &mut DbConnection, request: &KeyRequest) -> Result<Claim, StoreError> {
    let KeyRequest {
        user,
        key,
        fingerprint,
        now,
        hold,
    } = request;
    let (now, hold) = (*now, *hold);
    let fresh = (
        keys::user_id.eq(user),
        keys::key.eq(key),
        keys::fingerprint.eq(fingerprint),
        keys::state.eq("running"),
        keys::created_at.eq(to_naive(now)),
        keys::locked_until.eq(to_naive(now + hold)),
    );
    let inserted = on_backend!(conn, c => diesel::insert_into(keys::table)
        .values(fresh)
        .on_conflict_do_nothing()
        .execute(c)?);
    if inserted == 1 {
        return Ok(Claim::New);
    }
    // Expired, or abandoned by a request that died: taken over.
    let taken = prepared::update(
        keys::table,
        keys::user_id.eq(user).and(keys::key.eq(key)).and(
            keys::created_at.lt(to_naive(now - KEY_TTL)).or(keys::state
                .eq("running")
                .and(keys::locked_until.lt(to_naive(now)))),
        ),
        (
            keys::fingerprint.eq(fingerprint),
            keys::state.eq("running"),
            keys::status.eq(None::<i32>),
            keys::headers.eq(None::<String>),
            keys::body.eq(None::<Vec<u8>>),
            keys::created_at.eq(to_naive(now)),
            keys::locked_until.eq(to_naive(now + hold)),
        ),
    )
    .execute(conn)?;
    if taken == 1 {
        return Ok(Claim::New);
    }
    // Held by another live request, or settled: as a retry reads it.
    // (Gone in between, purged by a concurrent sweep: the client
    // retries after Retry-After and claims it then.)
    Ok(settled(conn, request)?.unwrap_or(Claim::InProgress))
}

/// A claim made with the request's own first write: [`Deferred::read`]
/// settles a replay, a reused key or a running request with one read;
/// a key that is free is then claimed first thing in the next write
/// transaction on the same connection (this thread), so the claim commits
/// with the request's first write and costs no transaction of its own.
/// If that transaction rolls back, the claim waits for the next one;
/// [`Deferred::finish`] ends the request's trip and claims in a
/// transaction of its own if no write took it.
#[derive(Debug)]
pub struct Deferred {
    request: KeyRequest,
    /// What claiming found, once it is final (a `New` claim: committed).
    outcome: OnceLock<Claim>,
}

impl Deferred {
    /// Reads the request's key: `Ok(Err(claim))` when that settles the
    /// request without a write; otherwise the key is free and the claim
    /// joins the next write transaction on `conn`.
    pub fn read(
        conn: &mut DbConnection,
        request: KeyRequest,
    ) -> Result<Result<Arc<Self>, Claim>, StoreError> {
        if let Some(found) = settled(conn, &request)? {
            return Ok(Err(found));
        }
        let deferred = Arc::new(Self {
            request,
            outcome: OnceLock::new(),
        });
        join_next_write(conn, Arc::clone(&deferred) as Arc<dyn Joining>);
        Ok(Ok(deferred))
    }

    /// Ends the trip: the claim's outcome, claimed now in a transaction of
    /// its own if no write transaction of the trip committed it.
    pub fn finish(&self, conn: &mut DbConnection) -> Result<Claim, StoreError> {
        leave_next_write();
        if let Some(found) = self.outcome.get() {
            return Ok(found.clone());
        }
        let found = claim(conn, &self.request)?;
        Ok(self.outcome.get_or_init(|| found).clone())
    }
}

impl Joining for Deferred {
    fn run(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        match claim_within(conn, &self.request)? {
            Claim::New => Ok(()),
            other => {
                let _ = self.outcome.set(other);
                Err(StoreError::KeyTaken)
            }
        }
    }

    fn ended(&self, committed: bool) -> bool {
        if self.outcome.get().is_some() {
            return false;
        }
        if committed {
            let _ = self.outcome.set(Claim::New);
        }
        !committed
    }
}

/// What a key already settles without a write: its answer (the same
/// request, done), `Reused`, or `InProgress` (the same request, running and
/// holding its claim). `None` when the key is free, expired or abandoned:
/// then only the write transaction decides.
fn settled(conn: &mut DbConnection, request: &KeyRequest) -> Result<Option<Claim>, StoreError> {
    let KeyRequest {
        user,
        key,
        fingerprint,
        now,
        ..
    } = request;
    let now = *now;
    type Row = (
        String,
        String,
        Option<i32>,
        Option<String>,
        Option<Vec<u8>>,
        chrono::NaiveDateTime,
        chrono::NaiveDateTime,
    );
    // On the backend's own connection: every keyed request reads it.
    let found: Option<Row> = on_backend!(conn, c => keys::table
        .filter(keys::user_id.eq(user))
        .filter(keys::key.eq(key))
        .select((
            keys::fingerprint,
            keys::state,
            keys::status,
            keys::headers,
            keys::body,
            keys::created_at,
            keys::locked_until,
        ))
        .first(c)
        .optional()?);
    let Some((held, state, status, headers, body, created_at, locked_until)) = found else {
        return Ok(None);
    };
    let expired = created_at < to_naive(now - KEY_TTL);
    let abandoned = state == "running" && locked_until < to_naive(now);
    if expired || abandoned {
        return Ok(None);
    }
    if held != *fingerprint {
        return Ok(Some(Claim::Reused));
    }
    if state != "done" {
        return Ok(Some(Claim::InProgress));
    }
    answer(status, headers, body).map(|a| Some(Claim::Replay(a)))
}

/// A kept answer from its columns.
fn answer(
    status: Option<i32>,
    headers: Option<String>,
    body: Option<Vec<u8>>,
) -> Result<StoredAnswer, StoreError> {
    let headers: Vec<(String, String)> = headers
        .map(|h| serde_json::from_str(&h))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("idempotency headers: {e}")))?
        .unwrap_or_default();
    Ok(StoredAnswer {
        status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
        headers,
        body: body.unwrap_or_default(),
    })
}

/// Keeps the answer of the request that claimed `key` with `fingerprint`.
pub fn finish(
    conn: &mut DbConnection,
    user: &str,
    key: &str,
    fingerprint: &str,
    answer: &StoredAnswer,
) -> Result<(), StoreError> {
    let headers = serde_json::to_string(&answer.headers)
        .map_err(|e| StoreError::Corrupt(format!("idempotency headers: {e}")))?;
    write_statement(conn, |conn| {
        prepared::update(
            keys::table,
            keys::user_id
                .eq(user)
                .and(keys::key.eq(key))
                .and(keys::fingerprint.eq(fingerprint))
                .and(keys::state.eq("running")),
            (
                keys::state.eq("done"),
                keys::status.eq(i32::from(answer.status)),
                keys::headers.eq(&headers),
                keys::body.eq(&answer.body),
            ),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Gives a claimed key back without an answer (the request failed in a way
/// a retry should not see again): the next request with it runs.
pub fn release(
    conn: &mut DbConnection,
    user: &str,
    key: &str,
    fingerprint: &str,
) -> Result<(), StoreError> {
    write_statement(conn, |conn| {
        diesel::delete(
            keys::table
                .filter(keys::user_id.eq(user))
                .filter(keys::key.eq(key))
                .filter(keys::fingerprint.eq(fingerprint))
                .filter(keys::state.eq("running")),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Deletes up to `limit` keys older than [`KEY_TTL`] (the sweeper).
pub fn purge_expired(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let before = to_naive(now - KEY_TTL);
    let due: Vec<(String, String)> = keys::table
        .filter(keys::created_at.lt(before))
        .limit(limit)
        .select((keys::user_id, keys::key))
        .load(conn)?;
    if due.is_empty() {
        return Ok(0);
    }
    write_transaction(conn, |conn| {
        let mut n = 0u64;
        for (user, key) in &due {
            n += diesel::delete(
                keys::table
                    .filter(keys::user_id.eq(user))
                    .filter(keys::key.eq(key))
                    .filter(keys::created_at.lt(before)),
            )
            .execute(conn)? as u64;
        }
        Ok(n)
    })
}
