//! PostgreSQL advisory locks: what several replicas on one database do one
//! at a time (migrations, the retention sweeper).
//!
//! Each job has one fixed key. The locks are session locks, taken and
//! released on the same connection around the job (never left held on a
//! pooled connection: [`exclusive`] releases on every path, and a
//! connection that panicked mid-job is discarded by the pool, which ends
//! its session and so its locks). Each job takes only its own one lock, so
//! no two holders ever wait on each other: no deadlock.

use crate::{DbConnection, StoreError};
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Bool};
use diesel::{QueryableByName, RunQueryDsl};

/// Applying migrations ("skeinmig").
pub const MIGRATIONS: i64 = 0x736b_6569_6e6d_6967;

/// One batch of the retention sweeper ("skeinswp").
pub const SWEEPER: i64 = 0x736b_6569_6e73_7770;

/// Whether to wait for the lock or give up at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `pg_advisory_lock`: wait until the holder is done.
    Block,
    /// `pg_try_advisory_lock`: if another session holds it, skip.
    Skip,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

fn lock(conn: &mut PgConnection, key: i64, wait: Wait) -> Result<bool, StoreError> {
    let sql = match wait {
        Wait::Block => "SELECT pg_advisory_lock($1) IS NOT NULL AS locked",
        Wait::Skip => "SELECT pg_try_advisory_lock($1) AS locked",
    };
    let row: Locked = diesel::sql_query(sql)
        .bind::<BigInt, _>(key)
        .get_result(conn)?;
    Ok(row.locked)
}

fn unlock(conn: &mut PgConnection, key: i64) -> Result<(), StoreError> {
    diesel::sql_query("SELECT pg_advisory_unlock($1) AS locked")
        .bind::<BigInt, _>(key)
        .get_result::<Locked>(conn)?;
    Ok(())
}

/// Runs `f` holding the advisory lock `key` on PostgreSQL; `None` when
/// `wait` is [`Wait::Skip`] and another session holds it (then `f` does
/// not run). On SQLite (one process) `f` simply runs. The lock is released
/// whatever `f` returns.
pub fn exclusive<T, E, F>(
    conn: &mut DbConnection,
    key: i64,
    wait: Wait,
    f: F,
) -> Result<Option<T>, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    let DbConnection::Postgresql(pg) = &mut *conn else {
        return f(conn).map(Some);
    };
    if !lock(pg, key, wait)? {
        return Ok(None);
    }
    let done = f(conn);
    let released = match conn {
        DbConnection::Postgresql(pg) => unlock(pg, key),
        DbConnection::Sqlite(_) => Ok(()),
    };
    let done = done?;
    released?;
    Ok(Some(done))
}
