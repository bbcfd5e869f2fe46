//! The persistence story, run on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod forks;
mod idempotency;
mod replicas;
mod retention;
mod turns;

use serde_json::json;
use skein_domain::{
    clock, DomainError, Limits, Metadata, NewThread, OrganizationId, Thread, ThreadId, ThreadPatch,
    ThreadState, UserId,
};
use skein_domain::{MessagePatch, MessageRole, NewMessage};
use skein_persistence::messages::{self, MessageQuery};
use skein_persistence::testing::TestDb;
use skein_persistence::{
    keys, migrations, tenancy, threads, Backend, ListOrder, Missing, Scope, StoreError, ThreadQuery,
};

skein_persistence::on_both_backends!(
    migrations_go_up_down_and_up_again,
    a_thread_is_stored_and_read_back_whole,
    threads_are_private_to_their_creator_and_organization,
    thread_ids_are_unique_per_organization,
    updates_merge_metadata_and_a_rejected_update_changes_nothing,
    the_pin_limit_holds,
    concurrent_pins_never_exceed_the_limit,
    soft_deleted_threads_disappear_and_delete_all_counts,
    walking_pages_with_after_visits_every_thread_once,
    walking_pages_with_before_goes_back_the_same_way,
    list_filters_and_total,
    a_cursor_that_is_not_the_callers_is_rejected,
    api_keys_authenticate_until_revoked,
    messages_keep_counts_and_order_exact,
    messages_obey_the_lifecycle,
    racing_appends_stop_exactly_at_the_cap,
    history_is_read_newest_first_and_only_as_far_as_needed,
    migrations_keep_threads_when_messages_arrive,
    an_export_walk_goes_on_when_its_cursor_thread_is_purged,
);

fn scope(org: &str, user: &str) -> Scope {
    Scope {
        organization_id: OrganizationId::parse(org).unwrap(),
        user_id: UserId::parse(user).unwrap(),
        live: None,
    }
}

/// A migrated database with org_a/org_b and usr_1/usr_2 members of both.
fn setup(backend: Backend) -> (TestDb, skein_persistence::Store) {
    let db = TestDb::new(backend);
    let store = db.store();
    let mut conn = store.conn().unwrap();
    let now = clock::now();
    for org in ["org_a", "org_b"] {
        let org = OrganizationId::parse(org).unwrap();
        tenancy::ensure_organization(&mut conn, &org, "Org", now).unwrap();
        for user in ["usr_1", "usr_2"] {
            let user = UserId::parse(user).unwrap();
            tenancy::ensure_user(&mut conn, &user, "User", now).unwrap();
            tenancy::ensure_membership(&mut conn, &org, &user, now).unwrap();
        }
    }
    drop(conn);
    (db, store)
}

fn new_thread(s: &Scope, id: Option<&str>) -> Thread {
    Thread::new(
        NewThread {
            id: id
                .map(|i| ThreadId::parse(i).unwrap())
                .unwrap_or_else(ThreadId::generate),
            organization_id: s.organization_id.clone(),
            user_id: s.user_id.clone(),
            title: None,
            metadata: Metadata::empty(),
            assistant_id: None,
            visible_in_ui: true,
            workflow_id: None,
            incognito_ttl: None,
        },
        clock::now(),
    )
}

fn migrations_go_up_down_and_up_again(backend: Backend) {
    let db = TestDb::empty(backend);
    let store = skein_persistence::Store::open(&db.url, Default::default()).unwrap();
    let mut conn = store.conn().unwrap();
    assert!(migrations::has_pending(&mut conn).unwrap());
    let up = migrations::run_pending(&mut conn).unwrap();
    assert!(!up.is_empty());
    assert!(!migrations::has_pending(&mut conn).unwrap());
    let down = migrations::revert_all(&mut conn).unwrap();
    assert_eq!(down.len(), up.len());
    assert!(migrations::has_pending(&mut conn).unwrap());
    assert_eq!(migrations::run_pending(&mut conn).unwrap(), up);
    // The schema works after the round trip.
    let now = clock::now();
    tenancy::ensure_organization(
        &mut conn,
        &OrganizationId::parse("org_x").unwrap(),
        "X",
        now,
    )
    .unwrap();
    assert!(!tenancy::is_empty(&mut conn).unwrap());
}

#[test]
fn both_migration_trees_list_the_same_migrations() {
    let list = |dir: &str| {
        let mut names: Vec<String> = std::fs::read_dir(format!(
            "{}/../../migrations/{dir}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
        names.sort();
        names
    };
    let sqlite = list("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, list("postgres"));
}

fn a_thread_is_stored_and_read_back_whole(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let mut stored = new_thread(&s, None).to_storage();
    stored.title = skein_domain::ThreadTitle::parse("Hello", 200).unwrap();
    stored.metadata =
        Metadata::parse_value(json!({"k": "v", "n": [1, 2]}), &Default::default()).unwrap();
    let t = Thread::from_storage(stored, clock::now());
    threads::insert(&mut conn, &t).unwrap();
    let back = threads::find(&mut conn, &s, t.id().as_str())
        .unwrap()
        .unwrap();
    assert_eq!(back, t);
}

fn threads_are_private_to_their_creator_and_organization(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let owner = scope("org_a", "usr_1");
    let t = new_thread(&owner, None);
    threads::insert(&mut conn, &t).unwrap();
    let id = t.id().as_str();
    assert!(threads::find(&mut conn, &owner, id).unwrap().is_some());
    for other in [scope("org_a", "usr_2"), scope("org_b", "usr_1")] {
        assert!(threads::find(&mut conn, &other, id).unwrap().is_none());
        assert!(matches!(
            threads::update(&mut conn, &other, id, |t| Ok(t.clone())),
            Err(StoreError::NotFound(Missing::Thread(_)))
        ));
        assert!(matches!(
            threads::soft_delete(&mut conn, &other, id, clock::now()),
            Err(StoreError::NotFound(Missing::Thread(_)))
        ));
        let page = threads::list(&mut conn, &other, &query(20)).unwrap();
        assert!(page.threads.is_empty());
    }
    assert!(threads::find(&mut conn, &owner, id).unwrap().is_some());
}

fn thread_ids_are_unique_per_organization(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let a = scope("org_a", "usr_1");
    let b = scope("org_b", "usr_1");
    threads::insert(&mut conn, &new_thread(&a, Some("support_user123"))).unwrap();
    threads::insert(&mut conn, &new_thread(&b, Some("support_user123"))).unwrap();
    let again = threads::insert(
        &mut conn,
        &new_thread(&scope("org_a", "usr_2"), Some("support_user123")),
    );
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

fn updates_merge_metadata_and_a_rejected_update_changes_nothing(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let t = new_thread(&s, None);
    threads::insert(&mut conn, &t).unwrap();
    let limits = Limits::default();
    let patch = |m: serde_json::Value, state: Option<ThreadState>| ThreadPatch {
        metadata: Some(m.as_object().unwrap().clone()),
        state,
        ..Default::default()
    };
    let updated = threads::update(&mut conn, &s, t.id().as_str(), |cur| {
        cur.apply(
            patch(json!({"a": 1, "b": 2}), Some(ThreadState::Archived)),
            &limits,
            clock::now(),
        )
    })
    .unwrap();
    assert_eq!(updated.state(), ThreadState::Archived);
    let merged = threads::update(&mut conn, &s, t.id().as_str(), |cur| {
        cur.apply(
            patch(json!({"b": null, "c": 3}), None),
            &limits,
            clock::now(),
        )
    })
    .unwrap();
    assert_eq!(merged.metadata().to_value(), json!({"a": 1, "c": 3}));
    let rejected = threads::update(&mut conn, &s, t.id().as_str(), |cur| {
        cur.apply(
            patch(json!({"z": 1}), Some(ThreadState::Open)),
            &limits,
            clock::now(),
        )
    });
    assert!(matches!(
        rejected,
        Err(StoreError::Rule(DomainError::Transition(_)))
    ));
    let stored = threads::find(&mut conn, &s, t.id().as_str())
        .unwrap()
        .unwrap();
    assert_eq!(stored, merged);
}

fn the_pin_limit_holds(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let limits = Limits {
        max_pinned_threads: 2,
        ..Limits::default()
    };
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let t = new_thread(&s, None);
            threads::insert(&mut conn, &t).unwrap();
            t.id().to_string()
        })
        .collect();
    let first = threads::pin(&mut conn, &s, &ids[0], &limits, clock::now()).unwrap();
    threads::pin(&mut conn, &s, &ids[1], &limits, clock::now()).unwrap();
    // Pinning an already pinned thread at the limit is a no-op, not an error.
    let again = threads::pin(&mut conn, &s, &ids[0], &limits, clock::now()).unwrap();
    assert_eq!(again.pinned_at(), first.pinned_at());
    let third = threads::pin(&mut conn, &s, &ids[2], &limits, clock::now());
    assert!(matches!(
        third,
        Err(StoreError::Rule(DomainError::PinLimit { max: 2 }))
    ));
    // Another user's pins do not count against this user.
    let other = scope("org_a", "usr_2");
    let t = new_thread(&other, None);
    threads::insert(&mut conn, &t).unwrap();
    threads::pin(&mut conn, &other, t.id().as_str(), &limits, clock::now()).unwrap();
    // Unpinning makes room again.
    threads::update(&mut conn, &s, &ids[0], |t| Ok(t.unpin())).unwrap();
    threads::pin(&mut conn, &s, &ids[2], &limits, clock::now()).unwrap();
}

fn concurrent_pins_never_exceed_the_limit(backend: Backend) {
    let (_db, store) = setup(backend);
    let s = scope("org_a", "usr_1");
    let limits = Limits {
        max_pinned_threads: 3,
        ..Limits::default()
    };
    let ids: Vec<String> = {
        let mut conn = store.conn().unwrap();
        (0..8)
            .map(|_| {
                let t = new_thread(&s, None);
                threads::insert(&mut conn, &t).unwrap();
                t.id().to_string()
            })
            .collect()
    };
    let handles: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let store = store.clone();
            let s = s.clone();
            std::thread::spawn(move || {
                let mut conn = store.conn().unwrap();
                threads::pin(&mut conn, &s, &id, &limits, clock::now())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(r, Err(StoreError::Rule(DomainError::PinLimit { .. }))),
            "{r:?}"
        );
    }
    let mut conn = store.conn().unwrap();
    let pinned = threads::list(
        &mut conn,
        &s,
        &ThreadQuery {
            is_pinned: Some(true),
            include_total: true,
            ..query(100)
        },
    )
    .unwrap();
    assert_eq!(pinned.total, Some(3));
}

fn soft_deleted_threads_disappear_and_delete_all_counts(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let ts: Vec<Thread> = (0..4)
        .map(|_| {
            let t = new_thread(&s, None);
            threads::insert(&mut conn, &t).unwrap();
            t
        })
        .collect();
    let foreign = new_thread(&scope("org_a", "usr_2"), None);
    threads::insert(&mut conn, &foreign).unwrap();

    threads::soft_delete(&mut conn, &s, ts[0].id().as_str(), clock::now()).unwrap();
    assert!(threads::find(&mut conn, &s, ts[0].id().as_str())
        .unwrap()
        .is_none());
    assert!(matches!(
        threads::soft_delete(&mut conn, &s, ts[0].id().as_str(), clock::now()),
        Err(StoreError::NotFound(Missing::Thread(_)))
    ));
    let live = threads::list(&mut conn, &s, &query(20)).unwrap();
    assert_eq!(live.threads.len(), 3);
    let all = threads::list(
        &mut conn,
        &s,
        &ThreadQuery {
            include_deleted: true,
            ..query(20)
        },
    )
    .unwrap();
    assert_eq!(all.threads.len(), 4);
    assert!(all.threads.iter().any(|t| t.deleted_at().is_some()));

    assert_eq!(
        threads::soft_delete_all(&mut conn, &s, clock::now()).unwrap(),
        3
    );
    assert!(threads::list(&mut conn, &s, &query(20))
        .unwrap()
        .threads
        .is_empty());
    // The other user's thread is untouched.
    let other = scope("org_a", "usr_2");
    assert!(threads::find(&mut conn, &other, foreign.id().as_str())
        .unwrap()
        .is_some());
}

fn query(limit: u32) -> ThreadQuery {
    ThreadQuery {
        limit,
        ..Default::default()
    }
}

fn insert_n(conn: &mut skein_persistence::DbConnection, s: &Scope, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let t = new_thread(s, None);
            threads::insert(conn, &t).unwrap();
            t.id().to_string()
        })
        .collect()
}

fn walking_pages_with_after_visits_every_thread_once(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let created = insert_n(&mut conn, &s, 7);
    for order in [ListOrder::Desc, ListOrder::Asc] {
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = threads::list(
                &mut conn,
                &s,
                &ThreadQuery {
                    order,
                    after: after.clone(),
                    ..query(2)
                },
            )
            .unwrap();
            pages += 1;
            seen.extend(page.threads.iter().map(|t| t.id().to_string()));
            // A thread created mid-walk (newest) must not disturb the walk.
            if pages == 2 {
                insert_n(&mut conn, &s, 1);
            }
            if !page.has_more {
                break;
            }
            after = seen.last().cloned();
        }
        let mut expected = created.clone();
        if order == ListOrder::Desc {
            expected.reverse();
            assert_eq!(seen, expected);
            assert_eq!(pages, 4);
        } else {
            // Ascending, the thread added mid-walk shows up at the end.
            assert_eq!(seen[..7], expected[..]);
        }
    }
}

fn walking_pages_with_before_goes_back_the_same_way(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let created = insert_n(&mut conn, &s, 5);
    // Newest first: [4,3,2,1,0]. The page before thread 1 is [3,2].
    let page = threads::list(
        &mut conn,
        &s,
        &ThreadQuery {
            before: Some(created[1].clone()),
            ..query(2)
        },
    )
    .unwrap();
    let ids: Vec<_> = page.threads.iter().map(|t| t.id().to_string()).collect();
    assert_eq!(ids, vec![created[3].clone(), created[2].clone()]);
    assert!(page.has_more);
    let first = threads::list(
        &mut conn,
        &s,
        &ThreadQuery {
            before: Some(created[3].clone()),
            ..query(2)
        },
    )
    .unwrap();
    let ids: Vec<_> = first.threads.iter().map(|t| t.id().to_string()).collect();
    assert_eq!(ids, vec![created[4].clone()]);
    assert!(!first.has_more);
}

fn list_filters_and_total(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let ids = insert_n(&mut conn, &s, 5);
    threads::update(&mut conn, &s, &ids[0], |t| {
        let mut t = t.to_storage();
        t.visible_in_ui = false;
        Ok(Thread::from_storage(t, clock::now()))
    })
    .unwrap();
    threads::pin(&mut conn, &s, &ids[1], &Limits::default(), clock::now()).unwrap();
    let hidden = threads::list(
        &mut conn,
        &s,
        &ThreadQuery {
            visible_in_ui: Some(false),
            include_total: true,
            ..query(20)
        },
    )
    .unwrap();
    assert_eq!(hidden.threads.len(), 1);
    assert_eq!(hidden.threads[0].id().as_str(), ids[0]);
    assert_eq!(hidden.total, Some(1));
    let pinned = threads::list(
        &mut conn,
        &s,
        &ThreadQuery {
            is_pinned: Some(true),
            ..query(20)
        },
    )
    .unwrap();
    assert_eq!(pinned.threads.len(), 1);
    assert_eq!(pinned.total, None);
    let page = threads::list(
        &mut conn,
        &s,
        &ThreadQuery {
            include_total: true,
            ..query(2)
        },
    )
    .unwrap();
    assert_eq!(page.threads.len(), 2);
    assert_eq!(page.total, Some(5));
}

fn a_cursor_that_is_not_the_callers_is_rejected(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let mine = scope("org_a", "usr_1");
    let theirs = scope("org_a", "usr_2");
    let foreign = insert_n(&mut conn, &theirs, 1);
    for cursor in [foreign[0].clone(), "thread_missing".to_string()] {
        let r = threads::list(
            &mut conn,
            &mine,
            &ThreadQuery {
                after: Some(cursor),
                ..query(2)
            },
        );
        assert!(matches!(r, Err(StoreError::InvalidCursor { .. })), "{r:?}");
    }
}

fn api_keys_authenticate_until_revoked(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let created = keys::create(
        &mut conn,
        &s.organization_id,
        &s.user_id,
        Some("ci"),
        clock::now(),
    )
    .unwrap();
    assert!(created.secret.starts_with("sk_"));
    assert!(!created.row.secret_hash.contains(&created.secret));
    let who = keys::authenticate(&mut conn, &created.secret, clock::now())
        .unwrap()
        .unwrap();
    assert_eq!(who.organization_id, s.organization_id);
    assert_eq!(who.user_id, s.user_id);
    let listed = keys::list(&mut conn).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());

    // Same prefix, different tail: rejected.
    let mut forged = created.secret.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    assert!(keys::authenticate(&mut conn, &forged, clock::now())
        .unwrap()
        .is_none());
    assert!(keys::authenticate(&mut conn, "sk_nope", clock::now())
        .unwrap()
        .is_none());

    // A key stops working while its owner is not a member of its organization.
    tenancy::remove_membership(&mut conn, &s.organization_id, &s.user_id).unwrap();
    assert!(keys::authenticate(&mut conn, &created.secret, clock::now())
        .unwrap()
        .is_none());
    tenancy::ensure_membership(&mut conn, &s.organization_id, &s.user_id, clock::now()).unwrap();
    assert!(keys::authenticate(&mut conn, &created.secret, clock::now())
        .unwrap()
        .is_some());

    keys::revoke(&mut conn, created.id.as_str(), clock::now()).unwrap();
    assert!(keys::authenticate(&mut conn, &created.secret, clock::now())
        .unwrap()
        .is_none());
    assert!(matches!(
        keys::revoke(&mut conn, created.id.as_str(), clock::now()),
        Err(StoreError::NotFound(Missing::ApiKey(_)))
    ));
}

fn text(role: MessageRole, s: &str) -> NewMessage {
    NewMessage::text(role, s.to_string(), 1)
}

fn mq(limit: u32, order: ListOrder) -> MessageQuery {
    MessageQuery {
        limit,
        order,
        ..Default::default()
    }
}

fn messages_keep_counts_and_order_exact(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let t = new_thread(&s, None);
    threads::insert(&mut conn, &t).unwrap();
    let id = t.id().as_str();
    let limits = Limits::default();
    let (after_two, stored) = messages::append(
        &mut conn,
        &s,
        id,
        vec![
            text(MessageRole::User, "one"),
            text(MessageRole::Assistant, "two"),
        ],
        &limits,
        clock::now(),
    )
    .unwrap();
    assert_eq!(after_two.message_count(), 2);
    assert_eq!(after_two.last_message_at(), Some(stored[1].created_at));
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
    messages::append(
        &mut conn,
        &s,
        id,
        vec![text(MessageRole::User, "three")],
        &limits,
        clock::now(),
    )
    .unwrap();
    let asc = messages::list(&mut conn, &s, id, &mq(2, ListOrder::Asc)).unwrap();
    assert_eq!(
        asc.messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert!(asc.has_more);
    let next = messages::list(
        &mut conn,
        &s,
        id,
        &MessageQuery {
            after: Some(asc.messages[1].id.to_string()),
            ..mq(2, ListOrder::Asc)
        },
    )
    .unwrap();
    assert_eq!(next.messages.len(), 1);
    assert_eq!(next.messages[0].content, "three");
    assert!(!next.has_more);
    let desc = messages::list(&mut conn, &s, id, &mq(10, ListOrder::Desc)).unwrap();
    assert_eq!(desc.messages[0].content, "three");

    let patched = messages::update(&mut conn, &s, id, stored[0].id.as_str(), |m| {
        m.apply(
            MessagePatch {
                content: Some(("uno".into(), 1)),
                metadata: Some(json!({"k": "v"}).as_object().unwrap().clone()),
            },
            &limits,
            clock::now(),
        )
    })
    .unwrap();
    assert_eq!(patched.content, "uno");

    // Deleting the newest message moves last_message_at back to the one before.
    let newest = desc.messages[0].clone();
    let after_delete =
        messages::delete(&mut conn, &s, id, newest.id.as_str(), clock::now()).unwrap();
    assert_eq!(after_delete.message_count(), 2);
    assert_eq!(after_delete.last_message_at(), Some(stored[1].created_at));
    assert!(matches!(
        messages::delete(&mut conn, &s, id, newest.id.as_str(), clock::now()),
        Err(StoreError::NotFound(Missing::Message(_)))
    ));
    // Someone else cannot see or touch them.
    let other = scope("org_a", "usr_2");
    assert!(matches!(
        messages::list(&mut conn, &other, id, &mq(10, ListOrder::Asc)),
        Err(StoreError::NotFound(Missing::Thread(_)))
    ));
    // New messages continue the sequence after a delete.
    let (_, more) = messages::append(
        &mut conn,
        &s,
        id,
        vec![text(MessageRole::User, "four")],
        &limits,
        clock::now(),
    )
    .unwrap();
    assert_eq!(more[0].seq, 4);
    let back = threads::find(&mut conn, &s, id).unwrap().unwrap();
    assert_eq!(back.message_count(), 3);
}

fn messages_obey_the_lifecycle(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let t = new_thread(&s, None);
    threads::insert(&mut conn, &t).unwrap();
    let id = t.id().as_str();
    let limits = Limits::default();
    let (_, stored) = messages::append(
        &mut conn,
        &s,
        id,
        vec![text(MessageRole::User, "hi")],
        &limits,
        clock::now(),
    )
    .unwrap();
    for (state, err) in [
        (ThreadState::Locked, DomainError::ThreadLocked),
        (ThreadState::Archived, DomainError::ThreadArchived),
    ] {
        threads::update(&mut conn, &s, id, |t| {
            t.apply(
                ThreadPatch {
                    state: Some(state),
                    ..Default::default()
                },
                &limits,
                clock::now(),
            )
        })
        .unwrap();
        let appended = messages::append(
            &mut conn,
            &s,
            id,
            vec![text(MessageRole::User, "x")],
            &limits,
            clock::now(),
        );
        assert!(
            matches!(appended, Err(StoreError::Rule(ref e)) if *e == err),
            "{appended:?}"
        );
        let deleted = messages::delete(&mut conn, &s, id, stored[0].id.as_str(), clock::now());
        assert!(matches!(deleted, Err(StoreError::Rule(ref e)) if *e == err));
        let patched = messages::update(&mut conn, &s, id, stored[0].id.as_str(), |m| Ok(m.clone()));
        assert!(matches!(patched, Err(StoreError::Rule(ref e)) if *e == err));
    }
    assert_eq!(
        threads::find(&mut conn, &s, id)
            .unwrap()
            .unwrap()
            .message_count(),
        1
    );
}

fn racing_appends_stop_exactly_at_the_cap(backend: Backend) {
    let (_db, store) = setup(backend);
    let s = scope("org_a", "usr_1");
    let limits = Limits::default();
    let cap = limits.max_messages_per_thread as usize;
    let id = {
        let mut conn = store.conn().unwrap();
        let t = new_thread(&s, None);
        threads::insert(&mut conn, &t).unwrap();
        let seed: Vec<NewMessage> = (0..cap - 5)
            .map(|i| text(MessageRole::User, &format!("m{i}")))
            .collect();
        messages::append(&mut conn, &s, t.id().as_str(), seed, &limits, clock::now()).unwrap();
        t.id().to_string()
    };
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let s = s.clone();
            let id = id.clone();
            std::thread::spawn(move || {
                let mut ok = 0;
                let mut refused = 0;
                for _ in 0..4 {
                    let mut conn = store.conn().unwrap();
                    match messages::append(
                        &mut conn,
                        &s,
                        &id,
                        vec![text(MessageRole::User, "race")],
                        &limits,
                        clock::now(),
                    ) {
                        Ok(_) => ok += 1,
                        Err(StoreError::Rule(DomainError::MessageLimit { .. })) => refused += 1,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    let (ok, refused) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    assert_eq!((ok, refused), (5, 11));
    let mut conn = store.conn().unwrap();
    let t = threads::find(&mut conn, &s, &id).unwrap().unwrap();
    assert_eq!(t.message_count() as usize, cap);
    let all = messages::list(
        &mut conn,
        &s,
        &id,
        &MessageQuery {
            after: None,
            ..mq(100, ListOrder::Desc)
        },
    )
    .unwrap();
    assert_eq!(
        all.messages[0].seq as usize, cap,
        "no gaps, no duplicates at the top"
    );
}

fn history_is_read_newest_first_and_only_as_far_as_needed(backend: Backend) {
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let t = new_thread(&s, None);
    threads::insert(&mut conn, &t).unwrap();
    let seed: Vec<NewMessage> = (0..25)
        .map(|i| text(MessageRole::User, &format!("m{i}")))
        .collect();
    messages::append(
        &mut conn,
        &s,
        t.id().as_str(),
        seed,
        &Limits::default(),
        clock::now(),
    )
    .unwrap();
    let mut seen = Vec::new();
    messages::history_newest_first(&mut conn, &s, t.id().as_str(), 4, |m| {
        seen.push(m.content);
        6 - seen.len() as u32
    })
    .unwrap();
    assert_eq!(seen, ["m24", "m23", "m22", "m21", "m20", "m19"]);
    let mut all = 0;
    messages::history_newest_first(&mut conn, &s, t.id().as_str(), 4, |_| {
        all += 1;
        3
    })
    .unwrap();
    assert_eq!(all, 25);
}

fn migrations_keep_threads_when_messages_arrive(backend: Backend) {
    // A database at the first migration with a thread in it migrates forward
    // and the thread reads back inactive with no messages.
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let t = new_thread(&s, None);
    threads::insert(&mut conn, &t).unwrap();
    let back = threads::find(&mut conn, &s, t.id().as_str())
        .unwrap()
        .unwrap();
    assert_eq!(back.status(), skein_domain::ThreadStatus::Inactive);
    assert!(back.lease().is_none());
}

fn an_export_walk_goes_on_when_its_cursor_thread_is_purged(backend: Backend) {
    use diesel::prelude::*;
    use skein_persistence::export::thread_page;
    let (_db, store) = setup(backend);
    let mut conn = store.conn().unwrap();
    let s = scope("org_a", "usr_1");
    let ids = insert_n(&mut conn, &s, 3);
    let query = ThreadQuery {
        limit: 1,
        order: ListOrder::Asc,
        ..ThreadQuery::default()
    };
    let (first, more) = thread_page(&mut conn, &s, &query).unwrap();
    assert!(more);
    assert_eq!(first[0].thread.id, ids[0]);
    // The page's last thread goes for good (a purge), then the walk goes on.
    diesel::delete(
        skein_persistence::schema::threads::table
            .filter(skein_persistence::schema::threads::id.eq(&ids[0])),
    )
    .execute(&mut conn)
    .unwrap();
    let next = ThreadQuery {
        after_pk: Some(first[0].source.pk()),
        ..query
    };
    let (second, _) = thread_page(&mut conn, &s, &next).unwrap();
    assert_eq!(second[0].thread.id, ids[1]);
}
