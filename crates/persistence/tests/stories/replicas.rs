//! Several replicas on one PostgreSQL database: migrations applied once when
//! they start together, one sweeper at a time, one rate budget per caller.
//! PostgreSQL only: SQLite mode is one process.

use super::retention::seed_expired;
use super::setup;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use skein_domain::clock;
use skein_domain::retention::RetentionPolicy;
use skein_persistence::ratelimits::{self, Gcra, Verdict};
use skein_persistence::retention::{count_purgeable, sweep_batch, PurgeCounts};
use skein_persistence::schema::threads as threads_t;
use skein_persistence::testing::TestDb;
use skein_persistence::{locks, migrations, Backend, DatabaseUrl, DbConnection, StoreError};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// How long a whole concurrent story may take before it fails.
const DEADLINE: Duration = Duration::from_secs(120);

fn connect(url: &str) -> DbConnection {
    DatabaseUrl::parse(url)
        .unwrap()
        .connect(Duration::from_secs(5))
        .unwrap()
}

/// Runs `n` copies of `job` on threads that start together (a barrier),
/// and collects their results within [`DEADLINE`].
fn at_once<T: Send + 'static>(
    n: usize,
    job: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let job = Arc::new(job);
    let start = Arc::new(Barrier::new(n));
    let (tx, rx) = mpsc::channel();
    for i in 0..n {
        let (job, start, tx) = (job.clone(), start.clone(), tx.clone());
        std::thread::spawn(move || {
            start.wait();
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(i)));
            let _ = tx.send((i, done));
        });
    }
    let deadline = Instant::now() + DEADLINE;
    let mut out: Vec<(usize, T)> = (0..n)
        .map(|_| {
            let (i, done) = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("every job finishes in time");
            (
                i,
                done.unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            )
        })
        .collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

fn migration_names() -> Vec<String> {
    let dir = format!("{}/../../migrations/postgres", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn replicas_that_start_at_once_apply_each_migration_once() {
    let db = TestDb::empty(Backend::Postgres);
    let url = db.url.clone();
    let results = at_once(6, move |_| {
        let mut conn = connect(&url);
        migrations::run_pending(&mut conn)
    });
    let mut applied = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(names) => applied.extend(names),
            Err(e) => panic!("replica {i} failed to migrate: {e}"),
        }
    }
    // Versions are the directory names' leading timestamps and numbers.
    let expected: Vec<String> = migration_names()
        .iter()
        .map(|n| n.split('_').next().unwrap().replace('-', ""))
        .collect();
    applied.sort();
    assert_eq!(applied, expected, "each migration applied exactly once");
    let mut conn = connect(&db.url);
    assert!(!migrations::has_pending(&mut conn).unwrap());
    // The schema is whole: the newest table is there and usable.
    assert_eq!(ratelimits::prune(&mut conn, Duration::ZERO).unwrap(), 0);
}

/// Threads in the backlog and per batch: the backlog is a whole number of
/// batches, so that every batch that runs before the end purges exactly
/// `BATCH` threads.
const BACKLOG: u32 = 3_000;
const BATCH: u32 = 100;

#[test]
fn a_sweeper_skips_its_batch_while_another_replica_holds_the_lock() {
    let (db, store) = setup(Backend::Postgres);
    let mut conn = store.conn().unwrap();
    seed_expired(&mut conn, BATCH);
    let (policy, now) = (RetentionPolicy::default(), clock::now());

    // Another replica, mid-batch.
    let mut other = connect(&db.url);
    let DbConnection::Postgresql(other_pg) = &mut other else {
        unreachable!()
    };
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(locks::SWEEPER)
        .execute(other_pg)
        .unwrap();
    assert_eq!(sweep_batch(&mut conn, &policy, now, BATCH).unwrap(), None);
    assert_eq!(
        count_purgeable(&mut conn, &policy, now).unwrap().threads,
        100
    );

    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(locks::SWEEPER)
        .execute(other_pg)
        .unwrap();
    let done = sweep_batch(&mut conn, &policy, now, BATCH)
        .unwrap()
        .unwrap();
    assert_eq!(done.threads, 100);
    // The lock was released after the batch: the other replica gets it.
    let DbConnection::Postgresql(other_pg) = &mut other else {
        unreachable!()
    };
    let locked: Vec<bool> = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "pg_try_advisory_lock({})",
        locks::SWEEPER
    )))
    .load(other_pg)
    .unwrap();
    assert_eq!(locked, vec![true]);
}

#[test]
fn two_sweepers_at_once_purge_a_backlog_exactly_once_between_them() {
    let (db, store) = setup(Backend::Postgres);
    seed_expired(&mut store.conn().unwrap(), BACKLOG);
    let (policy, now) = (RetentionPolicy::default(), clock::now());
    let url = db.url.clone();
    // Each sweeper retries a skipped round at once, so that both are
    // contending for every batch.
    let results = at_once(2, move |_| -> Result<(Vec<PurgeCounts>, u32), StoreError> {
        let mut conn = connect(&url);
        let (mut batches, mut skipped) = (Vec::new(), 0);
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            match sweep_batch(&mut conn, &policy, now, BATCH)? {
                None => {
                    skipped += 1;
                    std::thread::yield_now();
                }
                Some(done) if done.is_empty() => {
                    // Found nothing under the lock: nothing was left, not
                    // a batch that the other sweeper was working on.
                    let left = count_purgeable(&mut conn, &policy, now)?;
                    assert_eq!(left.threads, 0, "an empty batch while {left} were due");
                    break;
                }
                Some(done) => batches.push(done),
            }
        }
        Ok((batches, skipped))
    });
    let mut total = PurgeCounts::default();
    for (i, r) in results.into_iter().enumerate() {
        let (batches, skipped) = r.unwrap_or_else(|e| panic!("sweeper {i} failed: {e}"));
        eprintln!("sweeper {i}: {} batches, {skipped} skipped", batches.len());
        for b in batches {
            // Never a batch that another sweeper had half done.
            assert_eq!(b.threads, u64::from(BATCH), "{b}");
            total += b;
        }
    }
    let n = u64::from(BACKLOG);
    assert_eq!(
        total,
        PurgeCounts {
            threads: n,
            messages: n,
            responses: n,
            events: 0,
            idempotency_keys: 0,
        }
    );
    let mut conn = store.conn().unwrap();
    let left: i64 = threads_t::table
        .filter(threads_t::user_id.eq("usr_2"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn a_shared_budget_admits_exactly_its_size_across_connections() {
    let db = TestDb::new(Backend::Postgres);
    let url = db.url.clone();
    let gcra = Gcra {
        emission: Duration::from_secs(6),
        tolerance: Duration::from_secs(6 * 9),
    };
    // Ten per minute, asked for 40 times at once over four connections.
    let verdicts = at_once(4, move |_| {
        let mut conn = connect(&url);
        (0..10)
            .map(|_| ratelimits::take(&mut conn, "key:shared", gcra, Duration::ZERO))
            .collect::<Result<Vec<_>, _>>()
    });
    let verdicts: Vec<Verdict> = verdicts
        .into_iter()
        .flat_map(|r| r.unwrap().into_iter().map(Option::unwrap))
        .collect();
    let admitted = verdicts.iter().filter(|v| **v == Verdict::Admitted).count();
    assert_eq!(admitted, 10);
    for v in &verdicts {
        if let Verdict::Refused { retry_after } = v {
            assert!(*retry_after <= Duration::from_secs(6), "{retry_after:?}");
        }
    }
    // Moved a minute on, the budget is whole again: its row is pruned.
    let mut conn = connect(&db.url);
    assert_eq!(ratelimits::prune(&mut conn, Duration::ZERO).unwrap(), 0);
    assert_eq!(
        ratelimits::prune(&mut conn, Duration::from_secs(61)).unwrap(),
        1
    );
    assert_eq!(
        ratelimits::take(&mut conn, "key:shared", gcra, Duration::from_secs(61)).unwrap(),
        Some(Verdict::Admitted)
    );
}
