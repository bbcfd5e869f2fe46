//! Opening turns under contention, bulk deletes and the store's gate, run on
//! SQLite and on PostgreSQL.

use super::{scope, setup};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use skein_domain::{clock, DomainError, Limits, ThreadId};
use skein_persistence::turns::{self, TurnStart};
use skein_persistence::{threads, Backend, DbConnection, PoolOptions, Store, StoreError};
use std::sync::{Arc, Barrier};
use std::time::Duration;

skein_persistence::on_both_backends!(
    concurrent_first_use_of_a_thread_id_is_busy_never_missing,
    delete_all_reaches_more_threads_than_a_statement_can_bind,
    a_burst_waits_for_connections_without_holding_threads,
    a_lease_renewal_is_not_a_change_but_its_release_is,
);

const RACERS: usize = 8;

fn concurrent_first_use_of_a_thread_id_is_busy_never_missing(backend: Backend) {
    let (db, _) = setup(backend);
    let store = Store::open(
        &db.url,
        PoolOptions {
            max_size: u32::try_from(RACERS).unwrap(),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut conn = store.conn().unwrap();
                conn.batch_execute("SELECT 1").unwrap();
                let start = TurnStart {
                    create: true,
                    workflow_id: None,
                    incognito_ttl: None,
                    thread_id: ThreadId::parse("support_user123").unwrap(),
                    metadata: Default::default(),
                    assistant: None,
                    lease_id: format!("resp_{i}"),
                    lease_ttl: chrono::TimeDelta::seconds(60),
                    new_messages: 2,
                    rewind: None,
                };
                // Every racer holds its connection before any starts.
                barrier.wait();
                turns::begin(
                    &mut conn,
                    &scope("org_a", "usr_1"),
                    &start,
                    &Limits::default(),
                    clock::now(),
                )
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "exactly one takes the lease: {results:?}");
    assert!(won[0].1, "and it created the thread");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(
                r,
                Err(StoreError::Rule(DomainError::ThreadBusy { retry_after_secs })) if *retry_after_secs >= 1
            ),
            "the others find the thread busy, never missing: {r:?}"
        );
    }
}

/// More than SQLite (32,766) and PostgreSQL (65,535) accept as bound
/// parameters of one statement.
const MANY: u32 = 70_000;

fn delete_all_reaches_more_threads_than_a_statement_can_bind(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let (series, visible) = match *conn {
        DbConnection::Sqlite(_) => (
            format!(
                "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {MANY}) \
                 SELECT n FROM s)"
            ),
            "1",
        ),
        DbConnection::Postgresql(_) => (format!("generate_series(1, {MANY}) AS s(n)"), "true"),
    };
    diesel::sql_query(format!(
        "INSERT INTO threads (id, organization_id, user_id, metadata, status, state, \
         message_count, visible_in_ui, created_at, updated_at, last_seq) \
         SELECT 'thread_many' || n, 'org_a', 'usr_1', '{{}}', 'inactive', 'open', 0, {visible}, \
         CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0 FROM {series}"
    ))
    .execute(&mut conn)
    .unwrap();
    let other = threads::soft_delete_all(&mut conn, &scope("org_a", "usr_2"), clock::now());
    assert_eq!(other.unwrap(), 0, "another user's delete-all takes nothing");
    let deleted = threads::soft_delete_all(&mut conn, &scope("org_a", "usr_1"), clock::now());
    assert_eq!(deleted.unwrap(), MANY as usize);
    let page = threads::list(
        &mut conn,
        &scope("org_a", "usr_1"),
        &skein_persistence::ThreadQuery {
            limit: 1,
            include_total: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.total, Some(0));
}

/// A request that waits for a database connection waits without a thread:
/// while every connection is busy and many requests queue for one, other
/// blocking work still gets a thread at once.
fn a_burst_waits_for_connections_without_holding_threads(backend: Backend) {
    let (db, _) = setup(backend);
    let store = Store::open(
        &db.url,
        PoolOptions {
            max_size: 1,
            connection_timeout: Duration::from_secs(5),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .unwrap();
    runtime.block_on(async {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holder = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .run(move |_conn| {
                        held.recv_timeout(Duration::from_secs(10)).ok();
                        Ok::<_, StoreError>(())
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let waiters: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .run(|conn| {
                            conn.batch_execute("SELECT 1")?;
                            Ok::<_, StoreError>(())
                        })
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let other_work =
            tokio::time::timeout(Duration::from_secs(2), tokio::task::spawn_blocking(|| 42)).await;
        assert_eq!(
            other_work
                .expect("blocking work got a thread at once")
                .unwrap(),
            42
        );
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), holder)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("each waiter gets its turn")
                .unwrap()
                .unwrap();
        }
    });
}

/// The change feed's stamp (`changed_us`, set by triggers) does not move
/// when a running response only renews its lease, and moves when the lease
/// is given back (the thread's `status` changes).
fn a_lease_renewal_is_not_a_change_but_its_release_is(backend: Backend) {
    use skein_persistence::schema::threads as t;
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let who = scope("org_a", "usr_1");
    let id = ThreadId::parse("renewed").unwrap();
    let start = TurnStart {
        create: true,
        workflow_id: None,
        incognito_ttl: None,
        thread_id: id.clone(),
        metadata: Default::default(),
        assistant: None,
        lease_id: "resp_renew".into(),
        lease_ttl: chrono::TimeDelta::seconds(60),
        new_messages: 2,
        rewind: None,
    };
    turns::begin(&mut conn, &who, &start, &Limits::default(), clock::now()).unwrap();
    let stamp = |conn: &mut DbConnection| -> i64 {
        t::table
            .filter(t::id.eq("renewed"))
            .select(t::changed_us)
            .first(conn)
            .unwrap()
    };
    let before = stamp(&mut conn);
    assert!(before > 0);
    let until = clock::now() + chrono::TimeDelta::seconds(120);
    assert!(turns::renew(&mut conn, &who, &id, "resp_renew", until).unwrap());
    assert_eq!(stamp(&mut conn), before, "a renewal is not a change");
    turns::release(&mut conn, &who, &id, "resp_renew", false).unwrap();
    assert!(stamp(&mut conn) > before, "giving the lease back is");
}
