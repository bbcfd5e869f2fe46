//! `Idempotency-Key` (contract 11.4): a caller's key is claimed by its
//! first request, which then stores its answer; a retry of the same request
//! gets that answer again for 24 hours. In the database, so that it holds
//! across replicas and restarts.

use crate::connection::{on_backend, write_transaction, write_transaction_as, Durability};
use crate::prepared;
use crate::rows::to_naive;
use crate::schema::idempotency_keys as keys;
use crate::{DbConnection, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;

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

/// Claims `key` for `user`'s request `fingerprint`, in one transaction. A
/// key older than [`KEY_TTL`], or whose running request's claim lapsed at
/// `locked_until` (its process died), is taken over. Concurrent claims of
/// one key: exactly one gets [`Claim::New`].
pub fn claim(
    conn: &mut DbConnection,
    user: &str,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    hold: TimeDelta,
) -> Result<Claim, StoreError> {
    // A retry mostly finds its answer: one read, no write transaction.
    if let Some(found) = settled(conn, user, key, fingerprint, now)? {
        return Ok(found);
    }
    // Relaxed: a claim that a crash loses costs nothing, because the
    // request's own durable commit (and the answer's) flushes it first.
    write_transaction_as(conn, Durability::Relaxed, |conn| {
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
        Ok(settled(conn, user, key, fingerprint, now)?.unwrap_or(Claim::InProgress))
    })
}

/// What a key already settles without a write: its answer (the same
/// request, done), `Reused`, or `InProgress` (the same request, running and
/// holding its claim). `None` when the key is free, expired or abandoned:
/// then only the write transaction decides.
fn settled(
    conn: &mut DbConnection,
    user: &str,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Option<Claim>, StoreError> {
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
    if held != fingerprint {
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
    write_transaction(conn, |conn| {
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
    write_transaction(conn, |conn| {
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
