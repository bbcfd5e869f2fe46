//! Rate-limit budgets shared by every replica on one PostgreSQL database:
//! GCRA (the generic cell rate algorithm) in one statement.
//!
//! Each caller identity has one row holding its theoretical arrival time
//! (TAT). A request at `now` is admitted when `max(tat, now) <= now +
//! tolerance`, and then moves the TAT to `max(tat, now) + emission`; a
//! refused request changes nothing. With `emission = window / requests`
//! and `tolerance = (requests - 1) * emission`, a caller gets at most
//! `requests` at once and then one per `emission`: no window boundary at
//! which the budget doubles. The test and the update are one `INSERT ..
//! ON CONFLICT DO UPDATE .. WHERE .. RETURNING`, atomic under the row's
//! lock, so concurrent requests on any replicas admit exactly the budget.
//! `now` is the database's clock (`clock_timestamp()`), so replicas whose
//! own clocks disagree still agree on every budget.
//!
//! SQLite is one process, which counts budgets in memory: there [`take`]
//! answers `None`.

use crate::{DbConnection, StoreError};
use diesel::sql_types::{BigInt, Bool, Double, Text};
use diesel::{QueryableByName, RunQueryDsl};
use std::time::Duration;

/// A budget's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// The time one request costs (`window / requests`).
    pub emission: Duration,
    /// How far ahead of `now` the TAT may be for a request to pass
    /// (`(requests - 1) * emission`).
    pub tolerance: Duration,
}

/// What a budget said about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Admitted and counted.
    Admitted,
    /// Over the budget, not counted; the next request may pass after this.
    Refused {
        /// Time until a request would be admitted.
        retry_after: Duration,
    },
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Bool)]
    admitted: bool,
    #[diesel(sql_type = Double)]
    wait_secs: f64,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The shared GCRA step. `$1` identity, `$2` the service clock's offset,
/// `$3` emission and `$4` tolerance, all in microseconds. `taken` holds a
/// row when the request was admitted; otherwise the wait is read from the
/// row as it was (the statement's snapshot), or is one emission if a
/// concurrent request created the row meanwhile.
const TAKE: &str = "\
WITH c AS (
    SELECT (clock_timestamp() AT TIME ZONE 'UTC') + $2 * interval '1 microsecond' AS now
), taken AS (
    INSERT INTO rate_limits AS r (identity, tat)
    SELECT $1, c.now + $3 * interval '1 microsecond' FROM c
    ON CONFLICT (identity) DO UPDATE
        SET tat = GREATEST(r.tat + $3 * interval '1 microsecond', excluded.tat)
        WHERE r.tat <= excluded.tat - $3 * interval '1 microsecond' + $4 * interval '1 microsecond'
    RETURNING r.tat
)
SELECT true AS admitted, 0::float8 AS wait_secs FROM taken
UNION ALL
SELECT false AS admitted,
       COALESCE(
           (SELECT EXTRACT(EPOCH FROM (r.tat - c.now - $4 * interval '1 microsecond'))::float8
              FROM rate_limits r WHERE r.identity = $1),
           $3 / 1e6
       )::float8 AS wait_secs
  FROM c
 WHERE NOT EXISTS (SELECT 1 FROM taken)";

/// Counts one request of `identity` against its shared budget; `offset`
/// moves the database's clock forward (the service clock's offset; zero
/// outside tests). `None` on SQLite, whose budgets are in memory.
pub fn take(
    conn: &mut DbConnection,
    identity: &str,
    gcra: Gcra,
    offset: Duration,
) -> Result<Option<Verdict>, StoreError> {
    let DbConnection::Postgresql(pg) = &mut *conn else {
        return Ok(None);
    };
    let taken: Taken = diesel::sql_query(TAKE)
        .bind::<Text, _>(identity)
        .bind::<BigInt, _>(micros(offset))
        .bind::<BigInt, _>(micros(gcra.emission))
        .bind::<BigInt, _>(micros(gcra.tolerance))
        .get_result(pg)?;
    Ok(Some(if taken.admitted {
        Verdict::Admitted
    } else {
        Verdict::Refused {
            retry_after: Duration::try_from_secs_f64(taken.wait_secs).unwrap_or_default(),
        }
    }))
}

/// Deletes the budgets whose TAT is past (they are the same as none), by
/// the database's clock moved by `offset`; returns how many. Nothing to do
/// on SQLite.
pub fn prune(conn: &mut DbConnection, offset: Duration) -> Result<u64, StoreError> {
    let DbConnection::Postgresql(pg) = &mut *conn else {
        return Ok(0);
    };
    let deleted = diesel::sql_query(
        "DELETE FROM rate_limits \
         WHERE tat < (clock_timestamp() AT TIME ZONE 'UTC') + $1 * interval '1 microsecond'",
    )
    .bind::<BigInt, _>(micros(offset))
    .execute(pg)?;
    Ok(u64::try_from(deleted).unwrap_or(0))
}
