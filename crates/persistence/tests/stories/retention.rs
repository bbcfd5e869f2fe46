//! Retention purge stories, clock-driven, run on SQLite and on PostgreSQL:
//! the day before and the day after each limit, nothing else touched, and a
//! large backlog purged while a client keeps working.

use super::{scope, setup};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use skein_domain::retention::RetentionPolicy;
use skein_domain::{clock, Limits, MessageRole, Metadata, NewMessage, NewThread, Thread, ThreadId};
use skein_persistence::responses::{self, StoredResponse};
use skein_persistence::retention::{count_purgeable, purge_all, purge_batch, PurgeCounts};
use skein_persistence::schema::{messages, responses as responses_t, threads as threads_t};
use skein_persistence::{messages as msgs, threads, Backend, DbConnection, Scope, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

skein_persistence::on_both_backends!(
    a_deleted_thread_is_kept_29_days_and_gone_on_day_31_with_everything,
    an_inactive_thread_is_purged_after_inactivity_plus_grace,
    archived_threads_skip_inactivity_but_are_purged_after_a_year_and_grace,
    an_active_thread_is_still_purged_after_a_year_and_grace,
    responses_are_kept_23_hours_and_gone_at_25,
    a_large_backlog_is_purged_while_a_client_keeps_working,
    a_long_thread_is_purged_in_short_transactions_while_writers_keep_writing,
);

fn thread(conn: &mut DbConnection, s: &Scope, at: DateTime<Utc>) -> Thread {
    let t = Thread::new(
        NewThread {
            id: ThreadId::generate(),
            organization_id: s.organization_id.clone(),
            user_id: s.user_id.clone(),
            title: None,
            metadata: Metadata::empty(),
            assistant_id: None,
            visible_in_ui: true,
            workflow_id: None,
            incognito_ttl: None,
        },
        at,
    );
    threads::insert(conn, &t).unwrap();
    t
}

fn add_messages(conn: &mut DbConnection, s: &Scope, t: &Thread, n: usize) {
    let new = (0..n)
        .map(|i| NewMessage::text(MessageRole::User, format!("m{i}"), 1))
        .collect();
    msgs::append(
        conn,
        s,
        t.id().as_str(),
        new,
        &Limits::default(),
        clock::now(),
    )
    .unwrap();
}

fn response(
    conn: &mut DbConnection,
    s: &Scope,
    thread_id: Option<&str>,
    at: DateTime<Utc>,
) -> String {
    let id = format!("resp_{}", skein_domain::ids::random_base62(20));
    responses::insert(
        conn,
        &StoredResponse {
            id: id.clone(),
            scope: s.clone(),
            thread_id: thread_id.map(str::to_string),
            previous_response_id: None,
            model: "echo".into(),
            inputs: vec![],
            output_text: "hi".into(),
            output_tokens: 1,
            input_tokens: 1,
            total_tokens: 2,
            settings: serde_json::json!({}),
            metadata: serde_json::json!({}),
            created_at: at,
        },
    )
    .unwrap();
    id
}

fn set_times(conn: &mut DbConnection, t: &Thread, created: DateTime<Utc>, updated: DateTime<Utc>) {
    diesel::update(threads_t::table.filter(threads_t::id.eq(t.id().as_str())))
        .set((
            threads_t::created_at.eq(created.naive_utc()),
            threads_t::updated_at.eq(updated.naive_utc()),
        ))
        .execute(conn)
        .unwrap();
}

fn exists(conn: &mut DbConnection, t: &Thread) -> bool {
    threads_t::table
        .filter(threads_t::organization_id.eq(t.organization_id().as_str()))
        .filter(threads_t::id.eq(t.id().as_str()))
        .count()
        .get_result::<i64>(conn)
        .unwrap()
        == 1
}

fn pk_of(conn: &mut DbConnection, t: &Thread) -> i64 {
    threads_t::table
        .filter(threads_t::organization_id.eq(t.organization_id().as_str()))
        .filter(threads_t::id.eq(t.id().as_str()))
        .select(threads_t::pk)
        .first(conn)
        .unwrap()
}

fn messages_of(conn: &mut DbConnection, pk: i64) -> i64 {
    messages::table
        .filter(messages::thread_pk.eq(pk))
        .count()
        .get_result(conn)
        .unwrap()
}

fn responses_of(conn: &mut DbConnection, t: &Thread) -> i64 {
    responses_t::table
        .filter(responses_t::organization_id.eq(t.organization_id().as_str()))
        .filter(responses_t::thread_id.eq(t.id().as_str()))
        .count()
        .get_result(conn)
        .unwrap()
}

/// Counts what would go at `now`, purges it in small batches, and checks
/// the two agree.
fn purge_at(conn: &mut DbConnection, policy: &RetentionPolicy, now: DateTime<Utc>) -> PurgeCounts {
    let expected = count_purgeable(conn, policy, now).unwrap();
    let done = purge_all(conn, policy, now, 2).unwrap();
    assert_eq!(
        done, expected,
        "count_purgeable must equal what purge deletes"
    );
    assert!(count_purgeable(conn, policy, now).unwrap().is_empty());
    done
}

fn counts(threads: u64, messages: u64, responses: u64) -> PurgeCounts {
    PurgeCounts {
        threads,
        messages,
        responses,
        events: 0,
        idempotency_keys: 0,
    }
}

fn a_deleted_thread_is_kept_29_days_and_gone_on_day_31_with_everything(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    // Responses of the thread must go with it, not by their own TTL.
    let policy = RetentionPolicy {
        response_ttl: TimeDelta::days(1000),
        ..RetentionPolicy::default()
    };
    let s = scope("org_a", "usr_1");
    let t0 = clock::now();
    let doomed = thread(&mut conn, &s, t0);
    add_messages(&mut conn, &s, &doomed, 3);
    response(&mut conn, &s, Some(doomed.id().as_str()), t0);
    response(&mut conn, &s, Some(doomed.id().as_str()), t0);
    // The same thread id in another organization is another thread.
    let other_org = scope("org_b", "usr_1");
    let twin = Thread::new(
        NewThread {
            id: doomed.id().clone(),
            organization_id: other_org.organization_id.clone(),
            user_id: other_org.user_id.clone(),
            title: None,
            metadata: Metadata::empty(),
            assistant_id: None,
            visible_in_ui: true,
            workflow_id: None,
            incognito_ttl: None,
        },
        t0,
    );
    threads::insert(&mut conn, &twin).unwrap();
    add_messages(&mut conn, &other_org, &twin, 1);
    response(&mut conn, &other_org, Some(twin.id().as_str()), t0);
    let live = thread(&mut conn, &s, t0);
    add_messages(&mut conn, &s, &live, 2);
    let foreign = thread(&mut conn, &scope("org_a", "usr_2"), t0);
    let lone = response(&mut conn, &s, None, t0);
    let doomed_pk = pk_of(&mut conn, &doomed);

    threads::soft_delete(&mut conn, &s, doomed.id().as_str(), t0).unwrap();

    assert_eq!(
        purge_at(&mut conn, &policy, t0 + TimeDelta::days(29)),
        PurgeCounts::default()
    );
    assert!(exists(&mut conn, &doomed));
    assert_eq!(messages_of(&mut conn, doomed_pk), 3);

    assert_eq!(
        purge_at(&mut conn, &policy, t0 + TimeDelta::days(31)),
        counts(1, 3, 2)
    );
    assert!(!exists(&mut conn, &doomed));
    assert_eq!(messages_of(&mut conn, doomed_pk), 0);
    assert_eq!(responses_of(&mut conn, &doomed), 0);
    // Nothing else was touched.
    assert!(exists(&mut conn, &twin));
    assert_eq!(responses_of(&mut conn, &twin), 1);
    let twin_pk = pk_of(&mut conn, &twin);
    assert_eq!(messages_of(&mut conn, twin_pk), 1);
    assert!(exists(&mut conn, &live));
    let live_pk = pk_of(&mut conn, &live);
    assert_eq!(messages_of(&mut conn, live_pk), 2);
    assert!(exists(&mut conn, &foreign));
    assert_eq!(
        responses_t::table
            .filter(responses_t::id.eq(&lone))
            .count()
            .get_result::<i64>(&mut conn)
            .unwrap(),
        1
    );
}

fn an_inactive_thread_is_purged_after_inactivity_plus_grace(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let policy = RetentionPolicy {
        response_ttl: TimeDelta::days(10_000),
        ..RetentionPolicy::default()
    };
    let s = scope("org_a", "usr_1");
    let t0 = clock::now();
    let idle = thread(&mut conn, &s, t0);
    add_messages(&mut conn, &s, &idle, 2);
    response(&mut conn, &s, Some(idle.id().as_str()), t0);
    set_times(&mut conn, &idle, t0, t0);
    let idle_pk = pk_of(&mut conn, &idle);
    // Activity 60 days later restarts the period.
    let busy = thread(&mut conn, &s, t0);
    set_times(&mut conn, &busy, t0, t0 + TimeDelta::days(60));

    assert!(purge_at(&mut conn, &policy, t0 + TimeDelta::days(90 + 29)).is_empty());
    assert!(exists(&mut conn, &idle));
    assert_eq!(
        purge_at(&mut conn, &policy, t0 + TimeDelta::days(90 + 31)),
        counts(1, 2, 1)
    );
    assert!(!exists(&mut conn, &idle));
    assert_eq!(messages_of(&mut conn, idle_pk), 0);
    assert_eq!(responses_of(&mut conn, &idle), 0);
    assert!(exists(&mut conn, &busy));
    assert!(purge_at(&mut conn, &policy, t0 + TimeDelta::days(60 + 90 + 29)).is_empty());
    assert_eq!(
        purge_at(&mut conn, &policy, t0 + TimeDelta::days(60 + 90 + 31)),
        counts(1, 0, 0)
    );
    assert!(!exists(&mut conn, &busy));
}

fn archived_threads_skip_inactivity_but_are_purged_after_a_year_and_grace(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let policy = RetentionPolicy::default();
    let s = scope("org_a", "usr_1");
    let t0 = clock::now();
    let archived = thread(&mut conn, &s, t0);
    add_messages(&mut conn, &s, &archived, 1);
    diesel::update(threads_t::table.filter(threads_t::id.eq(archived.id().as_str())))
        .set(threads_t::state.eq("archived"))
        .execute(&mut conn)
        .unwrap();
    set_times(&mut conn, &archived, t0, t0);

    assert!(purge_at(&mut conn, &policy, t0 + TimeDelta::days(90 + 31)).is_empty());
    assert!(purge_at(&mut conn, &policy, t0 + TimeDelta::days(365 + 29)).is_empty());
    assert!(exists(&mut conn, &archived));
    assert_eq!(
        purge_at(&mut conn, &policy, t0 + TimeDelta::days(365 + 31)),
        counts(1, 1, 0)
    );
    assert!(!exists(&mut conn, &archived));
}

fn an_active_thread_is_still_purged_after_a_year_and_grace(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let policy = RetentionPolicy::default();
    let s = scope("org_a", "usr_1");
    let t0 = clock::now();
    let old = thread(&mut conn, &s, t0);
    set_times(&mut conn, &old, t0, t0 + TimeDelta::days(380));

    assert!(purge_at(&mut conn, &policy, t0 + TimeDelta::days(365 + 29)).is_empty());
    assert!(exists(&mut conn, &old));
    assert_eq!(
        purge_at(&mut conn, &policy, t0 + TimeDelta::days(365 + 31)),
        counts(1, 0, 0)
    );
}

fn responses_are_kept_23_hours_and_gone_at_25(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let policy = RetentionPolicy::default();
    let s = scope("org_a", "usr_1");
    let t0 = clock::now();
    let live = thread(&mut conn, &s, t0);
    let lone = response(&mut conn, &s, None, t0);
    let in_thread = response(&mut conn, &s, Some(live.id().as_str()), t0);
    let newer = response(&mut conn, &s, None, t0 + TimeDelta::hours(2));

    assert!(purge_at(&mut conn, &policy, t0 + TimeDelta::hours(23)).is_empty());
    assert_eq!(
        purge_at(&mut conn, &policy, t0 + TimeDelta::hours(25)),
        counts(0, 0, 2)
    );
    let left: Vec<String> = responses_t::table
        .select(responses_t::id)
        .load(&mut conn)
        .unwrap();
    assert_eq!(left, vec![newer]);
    assert!(!left.contains(&lone) && !left.contains(&in_thread));
    assert!(exists(&mut conn, &live));
}

/// Inserts `n` threads of `scope`, created and last active in 2000, each
/// with one message and one response, in a few statements.
pub(crate) fn seed_expired(conn: &mut DbConnection, n: u32) {
    let threads_sql = |series: &str, t: &str| {
        format!(
            "INSERT INTO threads (id, organization_id, user_id, metadata, status, state, \
             message_count, visible_in_ui, created_at, updated_at, last_seq) \
             SELECT 'thread_old' || n, 'org_a', 'usr_2', '{{}}', 'inactive', 'open', 1, {t}, \
             '2000-01-01 00:00:00', '2000-01-01 00:00:00', 1 FROM {series}"
        )
    };
    let messages_sql = "INSERT INTO messages (id, thread_pk, seq, role, content, token_count, \
         metadata, attachments, created_at, updated_at) \
         SELECT 'msg_old' || pk, pk, 1, 'user', 'old', 1, '{}', '[]', created_at, created_at \
         FROM threads WHERE user_id = 'usr_2'";
    let responses_sql = "INSERT INTO responses (id, organization_id, user_id, thread_id, model, \
         inputs, output_text, usage, metadata, created_at) \
         SELECT 'resp_old' || pk, organization_id, user_id, id, 'echo', '[]', 'x', '{}', '{}', \
         created_at FROM threads WHERE user_id = 'usr_2'";
    let threads_sql = match conn {
        DbConnection::Sqlite(_) => threads_sql(
            &format!(
                "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
                 SELECT n FROM s)"
            ),
            "1",
        ),
        DbConnection::Postgresql(_) => {
            threads_sql(&format!("generate_series(1, {n}) AS s(n)"), "true")
        }
    };
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        diesel::sql_query(threads_sql).execute(c)?;
        diesel::sql_query(messages_sql).execute(c)?;
        diesel::sql_query(responses_sql).execute(c)?;
        Ok(())
    })
    .unwrap();
}

/// Threads in the backlog (about 1-2 s per backend in a debug build).
const BACKLOG: u32 = 50_000;

fn a_large_backlog_is_purged_while_a_client_keeps_working(backend: Backend) {
    let (_db, store) = setup(backend);
    let n = BACKLOG;
    seed_expired(&mut store.conn().unwrap(), n);
    let policy = RetentionPolicy::default();
    let now = clock::now();
    let started = std::time::Instant::now();

    let done = Arc::new(AtomicBool::new(false));
    let client = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let s = scope("org_a", "usr_1");
            let mut mine = Vec::new();
            let mut ops = 0u32;
            while !done.load(Ordering::Relaxed) || mine.len() < 20 {
                let mut conn = store.conn().unwrap();
                let t = thread(&mut conn, &s, clock::now());
                add_messages(&mut conn, &s, &t, 1);
                let back = threads::find(&mut conn, &s, t.id().as_str()).unwrap();
                assert!(back.is_some(), "a new thread must read back");
                let first = &mine.first().cloned().unwrap_or_else(|| t.clone());
                assert!(threads::find(&mut conn, &s, first.id().as_str())
                    .unwrap()
                    .is_some());
                mine.push(t);
                ops += 4;
            }
            (mine, ops)
        })
    };

    let mut conn = store.conn().unwrap();
    let mut total = PurgeCounts::default();
    loop {
        let batch = purge_batch(&mut conn, &policy, now, 500).unwrap();
        if batch.is_empty() {
            break;
        }
        total += batch;
    }
    done.store(true, Ordering::Relaxed);
    let (mine, ops) = client.join().unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "{}: purged {total} in {elapsed:?} while the client did {ops} operations",
        backend.name()
    );

    let n = u64::from(n);
    assert_eq!(total, counts(n, n, n));
    let old_left: i64 = threads_t::table
        .filter(threads_t::user_id.eq("usr_2"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(old_left, 0);
    let messages_left: i64 = messages::table.count().get_result(&mut conn).unwrap();
    assert_eq!(messages_left, i64::try_from(mine.len()).unwrap());
    let responses_left: i64 = responses_t::table.count().get_result(&mut conn).unwrap();
    assert_eq!(responses_left, 0);
    let s = scope("org_a", "usr_1");
    for t in &mine {
        assert!(threads::find(&mut conn, &s, t.id().as_str())
            .unwrap()
            .is_some());
    }
}

/// Messages of the one long expired thread (an order of magnitude above
/// what one short transaction may delete).
const LONG_THREAD: u32 = 200_000;

/// A writer whose SQLite connections give up after this long on a locked
/// database: a purge that held the write lock longer would make it fail.
const IMPATIENT: std::time::Duration = std::time::Duration::from_millis(500);

fn a_long_thread_is_purged_in_short_transactions_while_writers_keep_writing(backend: Backend) {
    let (db, seeded) = setup(backend);
    {
        let mut conn = seeded.conn().unwrap();
        seed_expired(&mut conn, 1);
        let series = match *conn {
            DbConnection::Sqlite(_) => format!(
                "(WITH RECURSIVE s(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM s WHERE n < {}) \
                 SELECT n FROM s)",
                LONG_THREAD
            ),
            DbConnection::Postgresql(_) => format!("generate_series(2, {LONG_THREAD}) AS s(n)"),
        };
        diesel::sql_query(format!(
            "INSERT INTO messages (id, thread_pk, seq, role, content, token_count, metadata, \
             attachments, created_at, updated_at) \
             SELECT 'msg_long' || n, t.pk, n, 'user', 'old', 1, '{{}}', '[]', t.created_at, \
             t.created_at FROM {series}, threads t WHERE t.user_id = 'usr_2'"
        ))
        .execute(&mut conn)
        .unwrap();
        if let DbConnection::Sqlite(c) = &mut *conn {
            // The seed's write-ahead log is copied back now, not by the
            // purge's first commits.
            diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(c)
                .unwrap();
        }
    }
    drop(seeded);
    // One store, as in the server: the sweeper and the requests share it.
    let store = skein_persistence::Store::open(
        &db.url,
        skein_persistence::PoolOptions {
            max_size: 2,
            busy_timeout: IMPATIENT,
            ..skein_persistence::PoolOptions::default()
        },
    )
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (done, store) = (done.clone(), store.clone());
        std::thread::spawn(move || {
            let s = scope("org_a", "usr_1");
            let t = store
                .blocking(|c| Ok::<_, StoreError>(thread(c, &s, clock::now())))
                .unwrap();
            let mut appended = 0usize;
            while !done.load(Ordering::Relaxed) || appended < 20 {
                store
                    .blocking(|c| {
                        msgs::append(
                            c,
                            &s,
                            t.id().as_str(),
                            vec![NewMessage::text(MessageRole::User, "new".into(), 1)],
                            &Limits::default(),
                            clock::now(),
                        )
                    })
                    .expect("no append waits out the purge");
                appended += 1;
            }
            appended
        })
    };
    let total = store
        .blocking(|c| purge_all(c, &RetentionPolicy::default(), clock::now(), 500))
        .unwrap();
    done.store(true, Ordering::Relaxed);
    let appended = writer.join().unwrap();
    assert_eq!(total, counts(1, u64::from(LONG_THREAD), 1));
    let left: i64 = messages::table
        .count()
        .get_result(&mut store.conn().unwrap())
        .unwrap();
    assert_eq!(left, i64::try_from(appended).unwrap());
}
