//! Thread attributes, title search, read state and the change feed
//! (contract 9.2 and 9.3), on both backends.

use super::common::*;
use chrono::{DateTime, TimeDelta};
use serde_json::{json, Value};
use skein_api::AppState;
use skein_domain::retention::{Clock, RetentionPolicy};
use skein_persistence::retention::purge_batch;
use skein_persistence::Backend;
use std::collections::HashMap;

skein_persistence::on_both_backends_async!(
    search_matches_titles_in_any_case_and_combines_with_filters_and_cursors,
    search_pages_are_exact_when_most_candidates_are_someone_elses,
    metadata_filters_hold_on_both_dialects_lists,
    state_and_time_filters_hold_on_both_dialects_lists,
    workflow_and_incognito_are_set_when_a_thread_is_created,
    incognito_threads_go_at_their_time_without_a_grace_period,
    unread_follows_assistant_messages_and_reads,
    the_change_feed_walks_every_change_once,
    the_change_feed_misses_nothing_under_sixteen_concurrent_writers,
);

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// The titles `GET /v1/threads?{q}` answers `key` (which must be 200).
async fn listed_titles(app: &TestApp, key: &str, q: String) -> Vec<String> {
    let r = app.list_threads(key, &q).await;
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    titles(&r.body)
}

fn titles(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| t["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn search_matches_titles_in_any_case_and_combines_with_filters_and_cursors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    for (title, workflow) in [
        ("Straße nach Köln", None),
        ("QUARTERLY report", Some("wf_a")),
        ("Monthly Report draft", Some("wf_b")),
        ("100% done_ok", None),
        ("Ελληνικά ΣΟΦΙΑ", None),
        ("Weekly report", Some("wf_a")),
    ] {
        let mut body = json!({ "title": title });
        if let Some(w) = workflow {
            body["workflow_id"] = json!(w);
        }
        app.create_thread(&k.a1, body).await;
    }
    // Another user's matching thread never shows.
    app.create_thread(&k.a2, json!({"title": "secret report"}))
        .await;
    let search = |q: &str| listed_titles(&app, &k.a1, q.to_string());
    assert_eq!(
        search("search=REPORT").await,
        ["Weekly report", "Monthly Report draft", "QUARTERLY report"]
    );
    // Unicode case folding: ß is "ss", final sigma is sigma.
    assert_eq!(search("search=strasse").await, ["Straße nach Köln"]);
    assert_eq!(search("search=K%C3%96LN").await, ["Straße nach Köln"]);
    assert_eq!(
        search("search=%CF%83%CE%BF%CF%86%CE%B9%CE%B1").await,
        ["Ελληνικά ΣΟΦΙΑ"]
    );
    // Shorter than a trigram, and LIKE's wildcards taken literally.
    assert_eq!(
        search("search=ly").await,
        ["Weekly report", "Monthly Report draft", "QUARTERLY report"]
    );
    assert_eq!(search("search=hl").await, ["Monthly Report draft"]);
    assert_eq!(search("search=%25").await, ["100% done_ok"]);
    assert_eq!(search("search=e_o").await, ["100% done_ok"]);
    assert!(search("search=nothing%20like%20it").await.is_empty());
    // With the other filters, and walked with cursors one at a time.
    assert_eq!(
        search("search=report&workflow_id=wf_a").await,
        ["Weekly report", "QUARTERLY report"]
    );
    assert_eq!(search("workflow_id=wf_b").await, ["Monthly Report draft"]);
    let mut walked = Vec::new();
    let mut query = "search=report&limit=1&order=asc".to_string();
    loop {
        let r = app.list_threads(&k.a1, &query).await;
        walked.extend(titles(&r.body));
        if r.body["has_more"] != true {
            break;
        }
        query = format!(
            "search=report&limit=1&order=asc&after={}",
            r.body["last_id"].as_str().unwrap()
        );
    }
    assert_eq!(
        walked,
        ["QUARTERLY report", "Monthly Report draft", "Weekly report"]
    );
    let r = app
        .list_threads(&k.a1, "search=report&include_total=true&limit=1")
        .await;
    assert_eq!(r.body["total"], 3, "{}", r.body);
    // A renamed thread is found by its new title only; a deleted one not at all.
    let weekly = app.list_threads(&k.a1, "search=weekly").await;
    let weekly_id = ids(&weekly.body)[0].clone();
    let r = app
        .patch_thread(&k.a1, &weekly_id, json!({"title": "Daily digest"}))
        .await;
    assert_eq!(r.status, 200);
    assert!(search("search=weekly").await.is_empty());
    assert_eq!(search("search=DIGEST").await, ["Daily digest"]);
    assert_eq!(app.delete_thread(&k.a1, &weekly_id).await.status, 204);
    assert!(search("search=digest").await.is_empty());
    // Too long to be in any title: refused.
    let r = app
        .list_threads(&k.a1, &format!("search={}", "x".repeat(201)))
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
}

/// Many more threads hold the search's trigrams than match for the caller
/// (other users' threads, interleaved): the search reads its candidates in
/// several batches, and every page walked with cursors, in both orders,
/// still holds exactly the caller's matches.
async fn search_pages_are_exact_when_most_candidates_are_someone_elses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let mut mine = Vec::new();
    for i in 0..600 {
        if i % 12 == 0 {
            let t = app
                .create_thread(&k.a1, json!({ "title": format!("Zeta report {i}") }))
                .await;
            mine.push(t["id"].as_str().unwrap().to_string());
        } else {
            app.create_thread(&k.a2, json!({ "title": format!("zeta report {i}") }))
                .await;
        }
    }
    app.create_thread(&k.a1, json!({"title": "zeta notes"}))
        .await;
    for (order, want) in [
        ("desc", mine.iter().rev().cloned().collect::<Vec<_>>()),
        ("asc", mine.clone()),
    ] {
        let mut walked = Vec::new();
        let mut query = format!("search=ZETA%20REPORT&limit=7&order={order}");
        loop {
            let r = app.list_threads(&k.a1, &query).await;
            assert_eq!(r.status, 200, "{}", r.body);
            walked.extend(ids(&r.body));
            if r.body["has_more"] != true {
                break;
            }
            query = format!(
                "search=ZETA%20REPORT&limit=7&order={order}&after={}",
                r.body["last_id"].as_str().unwrap()
            );
        }
        assert_eq!(walked, want, "{order}");
    }
    // Backwards from the middle with `before`.
    let r = app
        .list_threads(
            &k.a1,
            &format!("search=zeta%20report&limit=3&before={}", mine[20]),
        )
        .await;
    assert_eq!(
        ids(&r.body),
        [&mine[23], &mine[22], &mine[21]].map(String::as_str)
    );
    let r = app
        .list_threads(&k.a1, "search=zeta%20report&include_total=true&limit=1")
        .await;
    assert_eq!(r.body["total"], mine.len(), "{}", r.body);
}

async fn workflow_and_incognito_are_set_when_a_thread_is_created(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let plain = app.create_thread(&k.a1, json!({"title": "plain"})).await;
    for (field, value) in [
        ("workflow_id", Value::Null),
        ("is_incognito", json!(false)),
        ("expected_deletion_at", Value::Null),
        ("has_unread", json!(false)),
    ] {
        assert_eq!(plain[field], value, "{field}: {plain}");
    }
    let hidden = app
        .create_thread(&k.a1, json!({"is_incognito": true, "workflow_id": "wf_1"}))
        .await;
    assert_eq!(hidden["is_incognito"], true);
    assert_eq!(hidden["workflow_id"], "wf_1");
    let at = |v: &Value| DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(
        at(&hidden["expected_deletion_at"]) - at(&hidden["created_at"]),
        TimeDelta::hours(24)
    );
    // A response that creates its thread sets both; on an existing thread
    // they change nothing.
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "first", "is_incognito": true, "workflow_id": "wf_2",
                   "inputs": [user("hi")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = app.get_thread(&k.a1, "first").await.body;
    assert_eq!(
        (&first["is_incognito"], &first["workflow_id"]),
        (&json!(true), &json!("wf_2"))
    );
    assert!(first["expected_deletion_at"].is_string(), "{first}");
    let plain_id = plain["id"].as_str().unwrap();
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": plain_id, "is_incognito": true, "workflow_id": "wf_3",
                   "inputs": [user("hi")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = app.get_thread(&k.a1, plain_id).await.body;
    assert_eq!(
        (&after["is_incognito"], &after["workflow_id"]),
        (&json!(false), &Value::Null)
    );
    // Bad labels are refused and create nothing.
    let before = app.list_threads(&k.a1, "limit=100").await.body;
    for bad in [json!(""), json!("w".repeat(257)), json!(7)] {
        let r = app.post_thread(&k.a1, json!({ "workflow_id": bad })).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        let r = app
            .post_response(
                &k.a1,
                json!({"thread": "never", "workflow_id": bad, "inputs": [user("hi")]}),
            )
            .await;
        assert_error(&r, 422, "VALIDATION_ERROR");
    }
    assert_eq!(app.list_threads(&k.a1, "limit=100").await.body, before);
    assert_error(
        &app.get_thread(&k.a1, "never").await,
        404,
        "THREAD_NOT_FOUND",
    );
}

async fn incognito_threads_go_at_their_time_without_a_grace_period(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.clock = handle;
        s.retention.incognito_ttl = TimeDelta::hours(2);
    })
    .await;
    let k = &app.keys;
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "secret", "is_incognito": true, "inputs": [user("hush")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let kept = app.create_thread(&k.a1, json!({"title": "kept"})).await;
    let deleted = app.create_thread(&k.a1, json!({"title": "deleted"})).await;
    let deleted_id = deleted["id"].as_str().unwrap();
    assert_eq!(app.delete_thread(&k.a1, deleted_id).await.status, 204);
    clock.advance(TimeDelta::minutes(119));
    assert_eq!(app.get_thread(&k.a1, "secret").await.status, 200);
    assert_eq!(
        app.list_threads(&k.a1, "").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    clock.advance(TimeDelta::minutes(1));
    // Gone at once for every read, before any purge.
    assert_error(
        &app.get_thread(&k.a1, "secret").await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_error(
        &app.list_messages(&k.a1, "secret", "").await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_eq!(
        ids(&app.list_threads(&k.a1, "").await.body),
        [kept["id"].as_str().unwrap()]
    );
    // The purge takes it (and its messages) with no grace; the ordinary
    // deleted thread waits for its grace period.
    let policy = RetentionPolicy {
        incognito_ttl: TimeDelta::hours(2),
        ..RetentionPolicy::default()
    };
    let counts = {
        let mut conn = app.store.conn().unwrap();
        purge_batch(&mut conn, &policy, clock.now(), 500).unwrap()
    };
    assert_eq!((counts.threads, counts.messages), (1, 2), "{counts}");
    let r = app.list_threads(&k.a1, "include_deleted=true").await;
    let mut left = ids(&r.body);
    left.sort();
    let mut want = vec![
        kept["id"].as_str().unwrap().to_string(),
        deleted_id.to_string(),
    ];
    want.sort();
    assert_eq!(left, want);
    // The id is free again: a new response makes a new, ordinary thread.
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "secret", "inputs": [user("again")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let again = app.get_thread(&k.a1, "secret").await.body;
    assert_eq!(
        (
            again["is_incognito"].clone(),
            again["message_count"].clone()
        ),
        (json!(false), json!(2))
    );
}

async fn unread(app: &TestApp, key: &str) -> Vec<String> {
    let r = app.get("/v1/threads/unread").key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list: Vec<String> = r.body["unread_thread_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(r.body["unread_count"], list.len(), "{}", r.body);
    list
}

async fn mark_read(app: &TestApp, key: &str, thread: &str) -> Resp {
    app.post(format!("/v1/threads/{thread}/read"))
        .key(key)
        .send()
        .await
}

async fn unread_follows_assistant_messages_and_reads(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    // A thread with only user messages is not unread.
    let quiet = app.create_thread(&k.a1, json!({"title": "quiet"})).await;
    let quiet_id = quiet["id"].as_str().unwrap();
    let r = app
        .post_message(&k.a1, quiet_id, user("note to self"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(unread(&app, &k.a1).await.is_empty());
    for thread in ["one", "two"] {
        let r = app
            .post_response(&k.a1, json!({"thread": thread, "inputs": [user("hi")]}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(unread(&app, &k.a1).await, ["two", "one"]);
    assert_eq!(app.get_thread(&k.a1, "one").await.body["has_unread"], true);
    let listed = app.list_threads(&k.a1, "").await.body;
    let flags: HashMap<String, bool> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["has_unread"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        HashMap::from([
            ("one".into(), true),
            ("two".into(), true),
            (quiet_id.to_string(), false)
        ])
    );
    // Reading clears it, for this thread only; the next answer sets it again.
    let r = mark_read(&app, &k.a1, "one").await;
    assert_eq!((r.status, &r.body), (200, &json!({"success": true})));
    assert_eq!(unread(&app, &k.a1).await, ["two"]);
    assert_eq!(app.get_thread(&k.a1, "one").await.body["has_unread"], false);
    let r = app
        .post_response(&k.a1, json!({"thread": "one", "inputs": [user("more")]}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(unread(&app, &k.a1).await, ["two", "one"]);
    // Deleting the only unread answer leaves nothing unread in the thread.
    assert_eq!(mark_read(&app, &k.a1, "two").await.status, 200);
    let r = app
        .post_response(&k.a1, json!({"thread": "two", "inputs": [user("again")]}))
        .await;
    let newest = r.body["output"][0]["id"].as_str().map(str::to_string);
    let messages = app.list_messages(&k.a1, "two", "").await.body;
    let answer = newest.unwrap_or_else(|| messages["data"][0]["id"].as_str().unwrap().to_string());
    assert_eq!(unread(&app, &k.a1).await, ["two", "one"]);
    assert_eq!(app.delete_message(&k.a1, "two", &answer).await.status, 200);
    assert_eq!(unread(&app, &k.a1).await, ["one"]);
    assert_eq!(app.get_thread(&k.a1, "two").await.body["has_unread"], false);
    // Other callers see none of it, and cannot mark it read.
    assert!(unread(&app, &k.a2).await.is_empty());
    assert_error(
        &mark_read(&app, &k.a2, "one").await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_error(
        &mark_read(&app, &k.a1, "missing").await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_eq!(unread(&app, &k.a1).await, ["one"]);
}

/// One page of the feed.
async fn changes(app: &TestApp, key: &str, since: &str, limit: u32) -> Value {
    let r = app
        .get(format!("/v1/threads/changes?since={since}&limit={limit}"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Walks the feed from `since` until `has_more` is false; returns the
/// threads seen in order and where to continue.
async fn walk(app: &TestApp, key: &str, since: &str, limit: u32) -> (Vec<Value>, String) {
    let mut seen = Vec::new();
    let mut since = since.to_string();
    for _ in 0..10_000 {
        let page = changes(app, key, &since, limit).await;
        seen.extend(page["data"].as_array().unwrap().iter().cloned());
        since = page["next_since"].as_str().unwrap().to_string();
        if page["has_more"] != true {
            return (seen, since);
        }
    }
    panic!("the feed never ended");
}

async fn the_change_feed_walks_every_change_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let start = changes(&app, &k.a1, "2000-01-01T00:00:00Z", 100).await;
    assert_eq!(start["object"], "list");
    assert_eq!(start["data"], json!([]));
    let since = start["next_since"].as_str().unwrap().to_string();
    let mut made = Vec::new();
    for i in 0..5 {
        let t = app
            .create_thread(&k.a1, json!({ "title": format!("t{i}") }))
            .await;
        made.push(t["id"].as_str().unwrap().to_string());
    }
    app.create_thread(&k.a2, json!({"title": "not yours"}))
        .await;
    let r = app
        .patch_thread(&k.a1, &made[1], json!({"title": "renamed"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.delete_thread(&k.a1, &made[3]).await.status, 204);
    let (seen, next) = walk(&app, &k.a1, &since, 2).await;
    let order: Vec<&str> = seen.iter().map(|t| t["id"].as_str().unwrap()).collect();
    // Oldest change first: the renamed and the deleted thread moved to the end.
    assert_eq!(
        order,
        [&made[0], &made[2], &made[4], &made[1], &made[3]].map(String::as_str)
    );
    assert_eq!(seen[3]["title"], "renamed");
    assert!(seen[4]["deleted_at"].is_string(), "{}", seen[4]);
    assert!(seen[..4].iter().all(|t| t.get("deleted_at").is_none()));
    // Nothing new: an empty page; the next change shows up once.
    let (again, next) = walk(&app, &k.a1, &next, 2).await;
    assert_eq!(again, Vec::<Value>::new());
    let r = app
        .post_response(&k.a1, json!({"thread": made[0], "inputs": [user("hi")]}))
        .await;
    assert_eq!(r.status, 200);
    let (later, _) = walk(&app, &k.a1, &next, 2).await;
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0]["id"], made[0].as_str());
    assert_eq!(later[0]["has_unread"], true);
    assert_eq!(later[0]["message_count"], 2);
    // Refusals.
    for bad in ["", "yesterday", "2026-13-01T00:00:00Z"] {
        let r = app
            .get(format!("/v1/threads/changes?since={bad}"))
            .key(&k.a1)
            .send()
            .await;
        assert_error(&r, 422, "VALIDATION_ERROR");
    }
    let r = app.get("/v1/threads/changes").key(&k.a1).send().await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    for limit in [0, 101] {
        let r = app
            .get(format!("/v1/threads/changes?since={since}&limit={limit}"))
            .key(&k.a1)
            .send()
            .await;
        assert_error(&r, 422, "VALIDATION_ERROR");
    }
}

/// 16 writers create, rename (each rename a higher number in the title)
/// and delete threads while a reader walks the feed. Every thread's
/// versions must reach the reader in order, none twice, and the last one
/// it sees must be the thread's final state.
async fn the_change_feed_misses_nothing_under_sixteen_concurrent_writers(backend: Backend) {
    use futures_util::future::join_all;
    use std::cell::Cell;
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    if backend == Backend::Postgres {
        // Widen the race the feed must survive: every thread write waits
        // up to 20 ms between its stamp and its commit, so writers commit
        // out of stamp order all the time. (SQLite's writers are serial.)
        use diesel::connection::SimpleConnection;
        let mut conn = app.store.conn().unwrap();
        (*conn)
            .batch_execute(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_sleep(random() * 0.02); RETURN NULL; END $$; \
             CREATE TRIGGER slow_commit AFTER INSERT OR UPDATE ON threads \
             FOR EACH ROW EXECUTE FUNCTION slow_commit();",
            )
            .unwrap();
    }
    let since = changes(&app, &k.a1, "2000-01-01T00:00:00Z", 1).await["next_since"]
        .as_str()
        .unwrap()
        .to_string();
    const RENAMES: usize = 4;
    let done = Cell::new(0usize);
    let writer = |w: usize| {
        let (app, key, done) = (&app, &k.a1, &done);
        async move {
            let t = app
                .create_thread(key, json!({ "title": format!("w{w} v0") }))
                .await;
            let id = t["id"].as_str().unwrap().to_string();
            for v in 1..=RENAMES {
                let r = app
                    .patch_thread(key, &id, json!({ "title": format!("w{w} v{v}") }))
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
            }
            if w.is_multiple_of(4) {
                assert_eq!(app.delete_thread(key, &id).await.status, 204);
            }
            done.set(done.get() + 1);
            id
        }
    };
    let reader = async {
        // (thread id) -> versions seen, in order (the version number, or
        // RENAMES + 1 for the deletion).
        let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
        let mut since = since.clone();
        let mut polls = 0;
        loop {
            let finished = done.get() == 16;
            let page = changes(&app, &k.a1, &since, 5).await;
            polls += 1;
            for t in page["data"].as_array().unwrap() {
                let title = t["title"].as_str().unwrap();
                let v: usize = title.rsplit('v').next().unwrap().parse().unwrap();
                let v = if t["deleted_at"].is_string() {
                    RENAMES + 1
                } else {
                    v
                };
                seen.entry(t["id"].as_str().unwrap().to_string())
                    .or_default()
                    .push(v);
            }
            since = page["next_since"].as_str().unwrap().to_string();
            // One full walk after every writer finished sees the rest.
            if finished && page["has_more"] != true {
                return (seen, polls);
            }
            tokio::task::yield_now().await;
        }
    };
    let writers = join_all((0..16).map(writer));
    let (written, (seen, polls)) = bounded("writers and the feed's reader", 120, async {
        tokio::join!(writers, reader)
    })
    .await;
    assert!(polls > 1, "the reader ran alongside the writers");
    assert_eq!(seen.len(), 16, "every thread seen: {seen:?}");
    for (w, id) in written.iter().enumerate() {
        let versions = &seen[id];
        assert!(
            versions.windows(2).all(|p| p[0] < p[1]),
            "thread {w}: versions out of order or repeated: {versions:?}"
        );
        let last = if w.is_multiple_of(4) {
            RENAMES + 1
        } else {
            RENAMES
        };
        assert_eq!(versions.last(), Some(&last), "thread {w}: {versions:?}");
    }
}

/// `metadata[KEY]=VALUE` on `GET /v1/threads` and `GET /v1/conversations`:
/// every filter must hold, string values only, with the other filters and
/// the cursors.
async fn metadata_filters_hold_on_both_dialects_lists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let mut made = Vec::new();
    for (title, metadata) in [
        ("a", json!({"team": "support", "tier": "gold"})),
        ("b", json!({"team": "support", "tier": "silver"})),
        ("c", json!({"team": "sales", "tier": "gold"})),
        ("d", json!({"team": 5, "odd key \"quoted\"": "yes"})),
        ("e", json!({})),
    ] {
        let t = app
            .create_thread(&k.a1, json!({"title": title, "metadata": metadata}))
            .await;
        made.push(t["id"].as_str().unwrap().to_string());
    }
    app.create_thread(
        &k.a2,
        json!({"title": "x", "metadata": {"team": "support"}}),
    )
    .await;
    let threads = |q: &str| listed_titles(&app, &k.a1, q.to_string());
    assert_eq!(threads("metadata[team]=support").await, ["b", "a"]);
    assert_eq!(
        threads("metadata[team]=support&metadata[tier]=gold").await,
        ["a"]
    );
    assert_eq!(threads("metadata[tier]=gold&order=asc").await, ["a", "c"]);
    assert!(threads("metadata[team]=nobody").await.is_empty());
    // A number is not the string "5"; any key can be named.
    assert!(threads("metadata[team]=5").await.is_empty());
    assert_eq!(
        threads("metadata[odd%20key%20%22quoted%22]=yes").await,
        ["d"]
    );
    // With a cursor and the total.
    let r = app
        .list_threads(&k.a1, "metadata[team]=support&limit=1&include_total=true")
        .await;
    assert_eq!(
        (titles(&r.body), &r.body["total"]),
        (vec!["b".to_string()], &json!(2))
    );
    let after = r.body["last_id"].as_str().unwrap();
    assert_eq!(
        threads(&format!("metadata[team]=support&limit=1&after={after}")).await,
        ["a"]
    );
    // The same on the OpenAI list.
    let r = app
        .get("/v1/conversations?metadata[team]=support&metadata[tier]=silver")
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(ids(&r.body), [made[1].as_str()]);
    let conversations = |q: String| {
        let app = &app;
        async move {
            let r = app
                .get(format!("/v1/conversations?{q}"))
                .key(&k.a1)
                .send()
                .await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            r.body
        }
    };
    let page = conversations("metadata[team]=support&limit=1&include_total=true".into()).await;
    assert_eq!(
        (ids(&page), &page["total"]),
        (vec![made[1].clone()], &json!(2))
    );
    let next = conversations(format!("metadata[team]=support&limit=1&after={}", made[1])).await;
    assert_eq!(
        (ids(&next), &next["has_more"]),
        (vec![made[0].clone()], &json!(false))
    );
    let back = conversations(format!("metadata[team]=support&limit=1&before={}", made[0])).await;
    assert_eq!(ids(&back), [made[1].as_str()]);
    assert_eq!(back["total"], Value::Null);
    // Refused: too many, or keys and values too long.
    let many: String = (0..17).map(|i| format!("metadata[k{i}]=v&")).collect();
    for q in [
        many,
        format!("metadata[{}]=v", "k".repeat(65)),
        format!("metadata[k]={}", "v".repeat(513)),
        "metadata[]=v".to_string(),
    ] {
        let r = app.list_threads(&k.a1, &q).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        let r = app
            .get(format!("/v1/conversations?{q}"))
            .key(&k.a1)
            .send()
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
}

async fn state_and_time_filters_hold_on_both_dialects_lists(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| s.clock = handle).await;
    let k = &app.keys;
    let mut at = Vec::new();
    for title in ["old", "middle", "new"] {
        app.create_thread(&k.a1, json!({"title": title})).await;
        at.push(clock.now());
        clock.advance(TimeDelta::hours(1));
    }
    let ids_by_title: HashMap<String, String> = {
        let r = app.list_threads(&k.a1, "").await;
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["title"].as_str().unwrap().to_string(),
                    t["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // "old" is locked now, which also makes it the last one changed.
    let r = app
        .patch_thread(&k.a1, &ids_by_title["old"], json!({"state": "locked"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stamp = |t: DateTime<chrono::Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .replace('+', "%2B")
    };
    let threads = |q: String| listed_titles(&app, &k.a1, q);
    assert_eq!(threads("state=locked".into()).await, ["old"]);
    assert_eq!(threads("state=open".into()).await, ["new", "middle"]);
    assert!(threads("state=archived".into()).await.is_empty());
    let half_hour = TimeDelta::minutes(30);
    assert_eq!(
        threads(format!("created_after={}", stamp(at[0] + half_hour))).await,
        ["new", "middle"]
    );
    assert_eq!(
        threads(format!("created_before={}", stamp(at[1] + half_hour))).await,
        ["middle", "old"]
    );
    assert_eq!(
        threads(format!(
            "created_after={}&created_before={}&order=asc",
            stamp(at[0] + half_hour),
            stamp(at[2] - half_hour)
        ))
        .await,
        ["middle"]
    );
    assert_eq!(
        threads(format!("updated_after={}", stamp(at[2] + half_hour))).await,
        ["old"]
    );
    // Combined with the others, the cursors and the total.
    let r = app
        .list_threads(&k.a1, "state=open&limit=1&include_total=true")
        .await;
    assert_eq!(
        (titles(&r.body), &r.body["total"]),
        (vec!["new".to_string()], &json!(2))
    );
    let after = r.body["last_id"].as_str().unwrap();
    assert_eq!(
        threads(format!("state=open&limit=1&after={after}")).await,
        ["middle"]
    );
    // The same on the OpenAI list.
    let r = app
        .get(format!(
            "/v1/conversations?state=open&created_before={}",
            stamp(at[1] + half_hour)
        ))
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.body), [ids_by_title["middle"].as_str()]);
    // Refused: an unknown state, a time that is not RFC 3339.
    for q in [
        "state=closed",
        "created_after=yesterday",
        "updated_after=2026-13-01T00:00:00Z",
    ] {
        let r = app.list_threads(&k.a1, q).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        let r = app
            .get(format!("/v1/conversations?{q}"))
            .key(&k.a1)
            .send()
            .await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }
}
