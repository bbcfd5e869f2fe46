//! Opening turns under contention, bulk deletes and the store's gate, run on
//! SQLite and on PostgreSQL.

use super::{scope, setup};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use skein_domain::{clock, DomainError, Limits, ThreadId};
use skein_persistence::connection::write_transaction;
use skein_persistence::turns::{self, TurnStart};
use skein_persistence::{threads, Backend, DbConnection, PoolOptions, Store, StoreError};
use std::sync::{Arc, Barrier};
use std::time::Duration;

skein_persistence::on_both_backends!(
    concurrent_first_use_of_a_thread_id_is_busy_never_missing,
    delete_all_reaches_more_threads_than_a_statement_can_bind,
    a_burst_waits_for_connections_without_holding_threads,
    a_lease_renewal_is_not_a_change_but_its_release_is,
    a_turns_statements_are_prepared_once_per_connection,
);

const RACERS: usize = 8;

/// A turn in `thread` (created on first use) under `lease`, adding two
/// messages.
fn start_in(thread: &ThreadId, lease: &str) -> TurnStart {
    TurnStart {
        create: true,
        workflow_id: None,
        incognito_ttl: None,
        thread_id: thread.clone(),
        metadata: Default::default(),
        assistant: None,
        lease_id: lease.into(),
        lease_ttl: chrono::TimeDelta::seconds(60),
        new_messages: 2,
        rewind: None,
    }
}

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
                let start = start_in(
                    &ThreadId::parse("support_user123").unwrap(),
                    &format!("resp_{i}"),
                );
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
    let start = start_in(&id, "resp_renew");
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

/// What a connection ran and what it kept prepared, by SQL text.
#[derive(Default)]
struct Statements {
    ran: Vec<String>,
    cached: Vec<String>,
}

struct Recorder(Arc<std::sync::Mutex<Statements>>);

impl diesel::connection::Instrumentation for Recorder {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent as E;
        let mut seen = self.0.lock().unwrap();
        match event {
            E::StartQuery { query, .. } => {
                let text = query.to_string();
                let sql = text.split(" -- binds:").next().unwrap_or_default().trim();
                seen.ran.push(sql.to_string());
            }
            E::CacheQuery { sql, .. } => seen.cached.push(sql.trim().to_string()),
            _ => {}
        }
    }
}

/// Every statement of a turn's storage (its Idempotency-Key claimed and
/// answered, open, history, events, commit with its messages) and of an
/// append is compiled once per
/// connection and then kept: the second turn prepares nothing. SQLite
/// compiles an uncached statement (with the triggers it fires) on every
/// execution, and diesel never keeps an UPDATE, a multi-row INSERT or an
/// upsert unless told that its SQL is fixed.
fn a_turns_statements_are_prepared_once_per_connection(backend: Backend) {
    use skein_domain::{MessageRole, NewMessage};
    use skein_persistence::messages;
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let who = scope("org_a", "usr_1");
    let seen = Arc::new(std::sync::Mutex::new(Statements::default()));
    conn.set_instrumentation(Recorder(Arc::clone(&seen)));
    let turn = |conn: &mut DbConnection, thread: &str, n: usize| {
        let id = ThreadId::parse(thread).unwrap();
        let lease = format!("resp_{thread}_{n}");
        let start = start_in(&id, &lease);
        let limits = Limits::default();
        // A turn with an Idempotency-Key reads the key, then claims it
        // with the open's write.
        let key = format!("key-{n}");
        let request = skein_persistence::idempotency::KeyRequest {
            user: "usr_1".into(),
            key: key.clone(),
            fingerprint: "fingerprint".into(),
            now: clock::now(),
            hold: chrono::TimeDelta::seconds(60),
        };
        let claim = skein_persistence::idempotency::Deferred::read(conn, request)
            .unwrap()
            .unwrap();
        let opened = turns::open(conn, &who, &start, &limits, clock::now(), |_, _| {
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let claimed = claim.finish(conn).unwrap();
        assert_eq!(claimed, skein_persistence::idempotency::Claim::New);
        opened.history.newest_first(conn, 8, |_| 8).unwrap();
        skein_persistence::events::append(
            conn,
            opened.history.thread_pk(),
            &lease,
            &skein_persistence::events::NewEvents {
                first_seq: 0,
                last_seq: 3,
                events: "[]".into(),
                terminal: true,
            },
            clock::now(),
        )
        .unwrap();
        let finished = turns::FinishedTurn {
            messages: vec![
                NewMessage::text(MessageRole::User, format!("question {n}"), 2),
                NewMessage::text(MessageRole::Assistant, format!("answer {n}"), 2),
            ],
            model: "m".into(),
            thread_state: None,
            response: None,
            rewind_from: None,
        };
        turns::commit(
            conn,
            &who,
            Some(&id),
            &lease,
            finished,
            &limits,
            clock::now(),
        )
        .unwrap();
        skein_persistence::idempotency::finish(
            conn,
            "usr_1",
            &key,
            "fingerprint",
            &skein_persistence::idempotency::StoredAnswer {
                status: 200,
                headers: vec![],
                body: b"{}".to_vec(),
            },
        )
        .unwrap();
        messages::append(
            conn,
            &who,
            thread,
            vec![NewMessage::text(MessageRole::User, format!("more {n}"), 2)],
            &limits,
            clock::now(),
        )
        .unwrap();
    };
    // The first turn creates its thread; the next ones find it.
    turn(&mut conn, "prepared", 0);
    turn(&mut conn, "prepared", 1);
    let first_cached = seen.lock().unwrap().cached.len();
    seen.lock().unwrap().ran.clear();
    turn(&mut conn, "prepared", 2);
    let seen = seen.lock().unwrap();
    let control = |sql: &str| {
        let upper = sql.to_ascii_uppercase();
        [
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT",
            "RELEASE",
            "SET ",
        ]
        .iter()
        .any(|c| upper.starts_with(c))
    };
    let unprepared: Vec<&String> = seen
        .ran
        .iter()
        .filter(|sql| !control(sql) && !seen.cached.contains(sql))
        .collect();
    assert!(
        seen.ran.len() > 6,
        "the turn ran its statements: {:?}",
        seen.ran
    );
    assert!(
        unprepared.is_empty(),
        "compiled on every run: {unprepared:#?}"
    );
    assert_eq!(
        seen.cached.len(),
        first_cached,
        "the third turn prepared nothing new"
    );
}

/// An SQLite pragma's value as one connection sees it.
fn pragma(conn: &mut DbConnection, name: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    diesel::sql_query(format!("SELECT {name} AS value FROM pragma_{name}"))
        .get_result::<Value>(conn)
        .unwrap()
        .value
}

/// `PRAGMA data_version` as one connection sees it: it changes when another
/// connection has committed since this connection last looked.
fn data_version(conn: &mut DbConnection) -> i64 {
    pragma(conn, "data_version")
}

/// One write transaction that reports the connection's data version.
fn write_once(conn: &mut DbConnection, n: usize) -> i64 {
    write_transaction(conn, |c| {
        let seen = data_version(c);
        insert_org(c, &format!("org_w{n}"))?;
        Ok::<_, StoreError>(seen)
    })
    .unwrap()
}

/// On SQLite every write transaction run through a store lands on the
/// database's one writer connection, whichever pooled connection the
/// caller holds: that connection never sees another one's commit, so its
/// data version stays the same across writes made from two pooled
/// connections (each would see the other's commits on its own).
#[test]
fn sqlite_writes_from_any_pooled_connection_run_on_one_writer_connection() {
    let (db, _) = setup(Backend::Sqlite);
    let store = db.store();
    let versions = store
        .blocking(|first| {
            let a = write_once(first, 1);
            // A second pooled connection, held at the same time.
            let b = store.blocking(|second| Ok::<_, StoreError>(write_once(second, 2)))?;
            let c = write_once(first, 3);
            Ok::<_, StoreError>([a, b, c])
        })
        .unwrap();
    assert_eq!(
        versions, [versions[0]; 3],
        "data versions seen: {versions:?}"
    );
}

/// SQLite's page caches are sized on purpose: 1 MiB per pooled connection,
/// 2 MiB for the writer (see `READER_CACHE_KIB` and `WRITER_CACHE_KIB`);
/// the writer's temporary files (each write's savepoint journal) are kept
/// in memory.
#[test]
fn sqlite_the_pooled_and_the_writer_connections_have_their_own_page_cache_sizes() {
    let (db, _) = setup(Backend::Sqlite);
    let store = db.store();
    let (pooled, writer, temp_store) = store
        .blocking(|conn| {
            let pooled = pragma(conn, "cache_size");
            let (writer, temp_store) = write_transaction(conn, |c| {
                Ok::<_, StoreError>((pragma(c, "cache_size"), pragma(c, "temp_store")))
            })?;
            Ok::<_, StoreError>((pooled, writer, temp_store))
        })
        .unwrap();
    // Negative: KiB rather than pages.
    assert_eq!((pooled, writer), (-1024, -2048));
    // The writer keeps its savepoints' journals in memory (2: MEMORY).
    assert_eq!(temp_store, 2);
}

/// The bundled SQLite is built for how Skein uses it (`LIBSQLITE3_FLAGS` in
/// `.cargo/config.toml`): multi-thread mode, where a connection takes no
/// mutex around each call (each is used by one thread at a time), and no
/// memory statistics (a global mutex on every allocation).
#[test]
fn sqlite_is_built_multi_threaded_without_memory_statistics() {
    let (db, _) = setup(Backend::Sqlite);
    let options = db
        .store()
        .blocking(|conn| {
            #[derive(QueryableByName)]
            struct CompileOption {
                #[diesel(sql_type = diesel::sql_types::Text)]
                compile_options: String,
            }
            Ok::<_, StoreError>(
                diesel::sql_query("SELECT compile_options FROM pragma_compile_options")
                    .load::<CompileOption>(conn)?
                    .into_iter()
                    .map(|o| o.compile_options)
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap();
    for wanted in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0", "ENABLE_QPSG"] {
        assert!(
            options.iter().any(|o| o == wanted),
            "{wanted} missing from {options:?}"
        );
    }
}

/// SQLite keeps timestamps as text, which the store reads by hand in the
/// format it writes; a timestamp in any other form diesel reads (another
/// tool's, or a hand edit's) still reads, through diesel's own parsing, and
/// the format it writes keeps its fraction.
#[test]
fn sqlite_timestamps_in_other_formats_still_read() {
    let (_db, store) = setup(Backend::Sqlite);
    let who = scope("org_a", "usr_1");
    let id = ThreadId::parse("stamps").unwrap();
    let read = |sql: &str| {
        let sql = sql.to_string();
        store
            .blocking(|conn| {
                conn.batch_execute(&sql)?;
                threads::find(conn, &who, "stamps")
            })
            .unwrap()
            .unwrap()
    };
    store
        .blocking(|conn| {
            turns::begin(
                conn,
                &who,
                &start_in(&id, "resp_1"),
                &Limits::default(),
                clock::now(),
            )
        })
        .unwrap();
    let thread = read(
        "UPDATE threads SET created_at = '2026-01-02T03:04:05Z', \
         updated_at = '2026-01-02 03:04:05.123456789', last_message_at = '2026-01-02 03:04' \
         WHERE id = 'stamps'",
    );
    assert_eq!(
        thread.created_at().to_rfc3339(),
        "2026-01-02T03:04:05+00:00"
    );
    assert_eq!(
        thread.updated_at().to_rfc3339(),
        "2026-01-02T03:04:05.123456789+00:00"
    );
    assert_eq!(
        thread.last_message_at().map(|t| t.to_rfc3339()),
        Some("2026-01-02T03:04:00+00:00".into())
    );
    let thread = read(
        "UPDATE threads SET created_at = '2026-01-02 03:04:05.5', last_message_at = NULL \
         WHERE id = 'stamps'",
    );
    assert_eq!(
        thread.created_at().to_rfc3339(),
        "2026-01-02T03:04:05.500+00:00"
    );
    assert_eq!(thread.last_message_at(), None);
}

/// A write transaction that panics takes the writer connection down with
/// it (mid-transaction): the next write gets a fresh one, and what the
/// panicking one wrote is gone.
#[test]
fn sqlite_a_write_that_panics_leaves_the_writer_usable() {
    let (db, _) = setup(Backend::Sqlite);
    let store = db.store();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.blocking(|conn| {
            write_transaction(conn, |c| {
                insert_org(c, "org_lost")?;
                panic!("a bug in a write");
                #[allow(unreachable_code)]
                Ok::<_, StoreError>(())
            })
        })
    }));
    assert!(panicked.is_err());
    store
        .blocking(|conn| Ok::<_, StoreError>(write_once(conn, 4)))
        .unwrap();
    assert_eq!(committed_orgs(&store, &["org_lost", "org_w4"]), ["org_w4"]);
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// The organization ids among `ids` that a pooled connection sees
/// committed, in order.
fn committed_orgs(store: &Store, ids: &[&str]) -> Vec<String> {
    let mut conn = store.conn().unwrap();
    let list = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    diesel::sql_query(format!(
        "SELECT id AS name FROM organizations WHERE id IN ({list}) ORDER BY id"
    ))
    .load::<Name>(&mut *conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

fn insert_org(c: &mut DbConnection, id: &str) -> Result<(), StoreError> {
    c.batch_execute(&format!(
        "INSERT INTO organizations (id, name, created_at) VALUES ('{id}', 'W', '2026-01-01 00:00:00')"
    ))?;
    Ok(())
}

/// Waits (at most 10 s) until a write is queued for the store's writer.
fn until_a_write_waits(store: &Store) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.pool_status().writes_waiting == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no write queued within 10 s"
        );
        std::thread::yield_now();
    }
}

/// Two writes racing on SQLite: the first inserts `first_id`, then (if
/// `first_fails`) fails, once the second is queued behind it; the second
/// looks whether a pooled connection sees the first's row committed,
/// inserts `second_id` and returns `second`'s outcome (or panics). Returns
/// both results, the second's look, and the rows committed afterwards.
struct Race {
    first: Result<(), StoreError>,
    second: std::thread::Result<Result<(), StoreError>>,
    /// The second write saw the first's row committed when it ran.
    saw_first: bool,
    committed: Vec<String>,
}

fn run_race(first_fails: bool, second: fn() -> Result<(), StoreError>) -> Race {
    let (db, _) = setup(Backend::Sqlite);
    let store = db.store();
    let saw_first = std::sync::atomic::AtomicBool::new(false);
    let (first, second) = std::thread::scope(|s| {
        let (inside, entered) = std::sync::mpsc::channel();
        let store = &store;
        let first = s.spawn(move || {
            store.blocking(|conn| {
                write_transaction(conn, |c| {
                    insert_org(c, "org_first")?;
                    inside.send(()).unwrap();
                    until_a_write_waits(store);
                    if first_fails {
                        return Err(StoreError::Conflict("the first write fails".into()));
                    }
                    Ok(())
                })
            })
        });
        entered.recv_timeout(Duration::from_secs(10)).unwrap();
        let second = s.spawn(|| {
            store.blocking(|conn| {
                write_transaction(conn, |c| {
                    let seen = committed_orgs(store, &["org_first"]).len() == 1;
                    saw_first.store(seen, std::sync::atomic::Ordering::SeqCst);
                    insert_org(c, "org_second")?;
                    second()
                })
            })
        });
        (first.join().unwrap(), second.join())
    });
    let committed = committed_orgs(&store, &["org_first", "org_second", "org_next"]);
    // Whatever happened, the writer writes on.
    store
        .blocking(|conn| write_transaction(conn, |c| insert_org(c, "org_next")))
        .unwrap();
    assert_eq!(
        committed_orgs(&store, &["org_next"]),
        ["org_next"],
        "the writer is usable afterwards"
    );
    Race {
        first,
        second,
        saw_first: saw_first.into_inner(),
        committed,
    }
}

/// On SQLite a write that queues behind a running one joins its
/// transaction (group commit: one commit, and its pages written once, for
/// both): it runs before the first is committed (a pooled connection does
/// not see the first's row yet), and both answer once both are committed.
#[test]
fn sqlite_a_write_queued_behind_another_commits_with_it() {
    let race = run_race(false, || Ok(()));
    assert!(race.first.is_ok());
    assert!(race.second.unwrap().is_ok());
    assert!(
        !race.saw_first,
        "the second write ran after the first had committed on its own"
    );
    assert_eq!(race.committed, ["org_first", "org_second"]);
}

/// A write that fails in a shared transaction takes back only its own
/// work: the other write of the transaction is committed, and succeeds.
#[test]
fn sqlite_a_failing_write_leaves_the_writes_it_shares_a_transaction_with_in_place() {
    let race = run_race(false, || {
        Err(StoreError::Conflict("the second fails".into()))
    });
    assert!(!race.saw_first, "the writes did not share a transaction");
    assert!(race.first.is_ok());
    assert!(matches!(race.second.unwrap(), Err(StoreError::Conflict(_))));
    assert_eq!(race.committed, ["org_first"]);

    // The first fails after the second queued behind it: the second's
    // work still commits.
    let race = run_race(true, || Ok(()));
    assert!(matches!(race.first, Err(StoreError::Conflict(_))));
    assert!(race.second.unwrap().is_ok());
    assert_eq!(race.committed, ["org_second"]);
}

/// A write that panics in a shared transaction rolls the whole transaction
/// back: the write that ran before it in the same transaction gets an
/// error (never a success for a row that is not there).
#[test]
fn sqlite_a_panic_in_a_shared_transaction_fails_every_write_of_it() {
    let race = run_race(false, || panic!("a bug in a write"));
    assert!(race.second.is_err(), "the second write panicked");
    assert!(!race.saw_first, "the writes did not share a transaction");
    assert!(
        matches!(race.first, Err(StoreError::Unavailable(_))),
        "{:?}",
        race.first
    );
    assert_eq!(race.committed, Vec::<String>::new());
}

/// The WAL index's `mxFrame` (pages in the WAL) and `nBackfill` (pages of
/// it copied into the database file), read from the `-shm` file without
/// touching the database (SQLite's documented layout: offsets 16 and 96).
fn wal_index(db: &skein_persistence::testing::TestDb) -> (u32, u32) {
    let path = format!("{}-shm", db.url.trim_start_matches("sqlite://"));
    let bytes = std::fs::read(path).unwrap();
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(96))
}

/// On SQLite the writer connection never checkpoints in its commits (the
/// copy and the flush held up every write queued behind the commit that
/// crossed SQLite's threshold): the checkpoint thread copies the WAL into
/// the database file, catching up with the last commit once the WAL has
/// grown past 1,000 pages, so that the next write starts the WAL over.
#[test]
fn sqlite_checkpoints_run_off_the_writers_path_and_the_wal_starts_over() {
    let (db, _) = setup(Backend::Sqlite);
    let store = db.store();
    let in_commits = store
        .blocking(|conn| {
            write_transaction(conn, |c| {
                #[derive(QueryableByName)]
                struct Pages {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    wal_autocheckpoint: i64,
                }
                Ok::<_, StoreError>(
                    diesel::sql_query("PRAGMA wal_autocheckpoint")
                        .get_result::<Pages>(c)?
                        .wal_autocheckpoint,
                )
            })
        })
        .unwrap();
    assert_eq!(in_commits, 0, "the writer checkpoints in its commits");
    // About 1,500 pages: 150 rows of 40 KB.
    for i in 0..150 {
        store
            .blocking(|conn| {
                write_transaction(conn, |c| {
                    c.batch_execute(&format!(
                        "INSERT INTO organizations (id, name, created_at) \
                         VALUES ('org_big{i}', hex(randomblob(20000)), '2026-01-01 00:00:00')"
                    ))?;
                    Ok::<_, StoreError>(())
                })
            })
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (pages, copied) = wal_index(&db);
        assert!(pages >= 1000, "the WAL holds {pages} pages");
        if copied == pages {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL was not copied within 10 s ({copied} of {pages} pages)"
        );
        // Polling the file: the checkpoint thread looks every 100 ms.
        std::thread::sleep(Duration::from_millis(5));
    }
    store
        .blocking(|conn| write_transaction(conn, |c| insert_org(c, "org_after")))
        .unwrap();
    let (pages, _) = wal_index(&db);
    assert!(pages < 10, "the WAL did not start over: {pages} pages");
}

/// On PostgreSQL the newest messages of a thread (the Freddy routes: only
/// `kind = 'message'`) are read by walking an index in order, even on a
/// table PostgreSQL has no statistics for yet: without
/// `messages_thread_kind_seq` it guessed the filter at 0.5% of the rows,
/// read every message of the thread and sorted them (1.4 ms against 0.02 ms
/// for 1,000 messages).
#[test]
fn postgres_the_newest_messages_are_read_in_index_order_without_statistics() {
    let (_db, store) = setup(Backend::Postgres);
    let mut conn = store.conn().unwrap();
    conn.batch_execute(
        "ALTER TABLE messages SET (autovacuum_enabled = false);
         INSERT INTO threads (id, organization_id, user_id, metadata, status, state, \
             message_count, visible_in_ui, created_at, updated_at, last_seq) \
             SELECT 'thread_p' || t.n, 'org_a', 'usr_1', '{}', 'inactive', 'open', 1000, true, \
             now(), now(), 1000 FROM generate_series(1, 30) AS t(n);
         INSERT INTO messages (id, thread_pk, seq, role, content, token_count, metadata, \
             attachments, created_at, updated_at) \
             SELECT 'msg_' || t.pk || '_' || m.n, t.pk, m.n, 'user', 'message ' || m.n, 2, \
             '{}', '[]', now(), now() FROM threads t, generate_series(1, 1000) AS m(n) \
             WHERE t.id LIKE 'thread_p%';",
    )
    .unwrap();
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    // The statement `messages::list` sends (PostgreSQL's statement log),
    // with its parameters.
    let plan: Vec<String> = diesel::sql_query(
        "EXPLAIN SELECT pk, id, seq, role, content FROM messages \
         WHERE thread_pk = (SELECT pk FROM threads WHERE id = 'thread_p7') \
         AND kind = 'message' ORDER BY seq DESC LIMIT 21",
    )
    .load::<Line>(&mut *conn)
    .unwrap()
    .into_iter()
    .map(|l| l.line)
    .collect();
    let plan = plan.join("\n");
    assert!(
        !plan.contains("Sort") && plan.contains("messages_thread_kind_seq"),
        "{plan}"
    );
}
