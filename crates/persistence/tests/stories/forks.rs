//! Forks under concurrent writers (PostgreSQL, where writers overlap): a
//! fork of a fork committed while the grandparent's writer waits for the
//! fork's parent still keeps its history.

use super::{scope, setup};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use skein_domain::{clock, Limits, MessagePatch, MessageRole, NewMessage, Thread, ThreadId};
use skein_persistence::messages::{self, MessageQuery};
use skein_persistence::{forks, threads, Backend, DatabaseUrl, DbConnection, ListOrder};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

fn connect(url: &str) -> DbConnection {
    DatabaseUrl::parse(url)
        .unwrap()
        .connect(Duration::from_secs(5))
        .unwrap()
}

/// Backends of this database waiting for a lock.
fn waiting(conn: &mut DbConnection) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .get_result::<N>(conn)
    .unwrap()
    .n
}

/// Until `n` backends wait for a lock (within the deadline).
fn until_waiting(conn: &mut DbConnection, n: i64) {
    let deadline = Instant::now() + DEADLINE;
    while waiting(conn) < n {
        assert!(
            Instant::now() < deadline,
            "{n} lock waiters never showed up"
        );
        std::thread::yield_now();
    }
}

fn texts(conn: &mut DbConnection, id: &str) -> Vec<String> {
    let page = messages::list(
        conn,
        &scope("org_a", "usr_1"),
        id,
        &MessageQuery {
            limit: 100,
            order: ListOrder::Asc,
            ..MessageQuery::default()
        },
    )
    .unwrap();
    page.messages.into_iter().map(|m| m.content).collect()
}

fn fork_of(conn: &mut DbConnection, parent: &str, id: &str) -> Thread {
    let now = clock::now();
    forks::fork(
        conn,
        &scope("org_a", "usr_1"),
        parent,
        None,
        now,
        |p, at| Ok(p.fork(ThreadId::parse(id).unwrap(), at, None, None, now)),
    )
    .unwrap()
}

#[test]
fn a_fork_of_a_fork_made_while_the_grandparent_is_edited_keeps_its_history() {
    let (db, store) = setup(Backend::Postgres);
    let s = scope("org_a", "usr_1");
    let mut conn = store.conn().unwrap();
    let a = Thread::new(
        skein_domain::NewThread {
            id: ThreadId::parse("a").unwrap(),
            organization_id: s.organization_id.clone(),
            user_id: s.user_id.clone(),
            title: None,
            metadata: skein_domain::Metadata::empty(),
            assistant_id: None,
            visible_in_ui: true,
            workflow_id: None,
            incognito_ttl: None,
        },
        clock::now(),
    );
    threads::insert(&mut conn, &a).unwrap();
    let new: Vec<NewMessage> = (1..=5)
        .map(|i| NewMessage::text(MessageRole::User, format!("m{i}"), 1))
        .collect();
    let (_, stored) =
        messages::append(&mut conn, &s, "a", new, &Limits::default(), clock::now()).unwrap();
    let m3 = stored[2].id.to_string();
    fork_of(&mut conn, "a", "b");

    // Hold b's row, so that the fork of b and the edit of a both wait for it,
    // the fork first.
    let mut holder = connect(&db.url);
    holder.batch_execute("BEGIN").unwrap();
    holder
        .batch_execute("SELECT pk FROM threads WHERE id = 'b' FOR UPDATE")
        .unwrap();
    let mut watcher = connect(&db.url);
    let url = db.url.clone();
    let forker = std::thread::spawn(move || fork_of(&mut connect(&url), "b", "c"));
    until_waiting(&mut watcher, 1);
    let url = db.url.clone();
    let editor = std::thread::spawn(move || {
        messages::update(
            &mut connect(&url),
            &scope("org_a", "usr_1"),
            "a",
            &m3,
            |m| {
                m.apply(
                    MessagePatch {
                        content: Some(("EDITED IN A".into(), 3)),
                        ..MessagePatch::default()
                    },
                    &Limits::default(),
                    clock::now(),
                )
            },
        )
    });
    until_waiting(&mut watcher, 2);
    holder.batch_execute("COMMIT").unwrap();
    forker.join().unwrap();
    editor.join().unwrap().unwrap();

    let original = ["m1", "m2", "m3", "m4", "m5"];
    assert_eq!(texts(&mut conn, "a")[2], "EDITED IN A");
    assert_eq!(texts(&mut conn, "b"), original);
    assert_eq!(texts(&mut conn, "c"), original, "the fork of the fork");
}
