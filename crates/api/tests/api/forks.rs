//! `POST /v1/threads/{thread_id}/fork` (contract 11.2): a fork holds its
//! parent's messages up to a message, then its own; edits, deletes and
//! rewinds in either never show in the other, forks of forks work, and a
//! fork keeps its history when its parent is deleted and purged.

use super::common::*;
use super::responses::rewinds::{messages, texts};
use super::responses::{output_text, user};
use actix_web::http::Method;
use chrono::TimeDelta;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_domain::retention::{Clock, RetentionPolicy};
use skein_persistence::{retention, Backend};

skein_persistence::on_both_backends_async!(
    a_fork_holds_the_parent_history_then_its_own,
    edits_deletes_and_rewinds_never_cross_between_parent_and_forks,
    a_fork_keeps_its_history_when_the_parent_is_deleted_and_purged,
    forks_refuse_what_they_cannot_do_and_change_nothing,
    concurrent_writes_on_a_parent_never_show_in_forks_being_read,
);

async fn fork(app: &TestApp, key: &str, parent: &str, body: Value) -> Resp {
    app.post(format!("/v1/threads/{parent}/fork"))
        .key(key)
        .json(body)
        .send()
        .await
}

async fn forked(app: &TestApp, key: &str, parent: &str, body: Value) -> String {
    let r = fork(app, key, parent, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn count(app: &TestApp, key: &str, thread: &str) -> Value {
    let r = app.get_thread(key, thread).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["message_count"].clone()
}

async fn turn(app: &TestApp, key: &str, body: Value) -> String {
    let r = app.post_response(key, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    output_text(&r.body)
}

/// A thread `id` of three echo turns: six messages.
async fn three_turns(app: &TestApp, key: &str, id: &str) -> Vec<(String, String, String)> {
    for q in ["one", "two", "three"] {
        turn(app, key, json!({"thread": id, "inputs": [user(q)]})).await;
    }
    messages(app, key, id).await
}

/// Every page of a thread's messages walked with cursors, in both orders
/// and both directions, matches the full list.
async fn pages_agree(app: &TestApp, key: &str, thread: &str, all: &[(String, String, String)]) {
    let ids: Vec<&str> = all.iter().map(|(id, _, _)| id.as_str()).collect();
    for order in ["asc", "desc"] {
        let want: Vec<&str> = if order == "asc" {
            ids.clone()
        } else {
            ids.iter().rev().copied().collect()
        };
        let mut seen = Vec::new();
        let mut query = format!("order={order}&limit=2");
        loop {
            let r = app.list_messages(key, thread, &query).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let page: Vec<String> = r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect();
            seen.extend(page.clone());
            if r.body["has_more"] != true {
                break;
            }
            query = format!("order={order}&limit=2&after={}", page.last().unwrap());
        }
        assert_eq!(seen, want, "{order} walk of {thread}");
        // Backwards from the end of the walk.
        let last = want.last().unwrap();
        let r = app
            .list_messages(key, thread, &format!("order={order}&limit=3&before={last}"))
            .await;
        let back: Vec<&str> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        let n = want.len();
        assert_eq!(back, want[n.saturating_sub(4)..n - 1], "{order} before");
    }
}

async fn a_fork_holds_the_parent_history_then_its_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let parent = three_turns(&app, &k.a1, "parent").await;
    assert_eq!(parent.len(), 6);
    // A thread that is not a fork says so.
    assert_eq!(
        app.get_thread(&k.a1, "parent").await.body["forked_from"],
        Value::Null
    );

    // Default: up to the newest message.
    let r = fork(&app, &k.a1, "parent", json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let whole = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["forked_from"],
        json!({"thread_id": "parent", "message_id": parent[5].0})
    );
    assert_eq!(r.body["message_count"], 6);
    assert_eq!(r.body["has_unread"], false);
    // What the fork answered is what it stored.
    let stored = app
        .get_thread(&k.a1, r.body["id"].as_str().unwrap())
        .await
        .body;
    let parent_now = app.get_thread(&k.a1, "parent").await.body;
    for field in [
        "message_count",
        "last_message_at",
        "last_model_used",
        "title",
        "metadata",
    ] {
        assert_eq!(stored[field], r.body[field], "{field}");
        assert_eq!(stored[field], parent_now[field], "{field} as the parent's");
    }
    assert!(
        r.headers.get("etag").is_some(),
        "a fork answers with its ETag"
    );
    assert_eq!(
        messages(&app, &k.a1, &whole).await,
        parent,
        "same ids, same texts"
    );
    pages_agree(&app, &k.a1, &whole, &parent).await;
    // The fork is listed with its origin.
    let list = app.list_threads(&k.a1, "limit=10").await;
    let listed = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == whole.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["forked_from"]["thread_id"], "parent");

    // At the first answer: two messages, then its own.
    let early = forked(
        &app,
        &k.a1,
        "parent",
        json!({"message_id": parent[1].0, "title": "second try"}),
    )
    .await;
    let got = app.get_thread(&k.a1, &early).await.body;
    assert_eq!(got["message_count"], 2);
    assert_eq!(got["title"], "second try");
    assert_eq!(got["forked_from"]["message_id"], parent[1].0.as_str());
    assert_eq!(messages(&app, &k.a1, &early).await, parent[..2].to_vec());
    // A model turn in the fork sees the inherited history (2 messages) and
    // its input; the parent does not see the fork's turn.
    let answer = turn(
        &app,
        &k.a1,
        json!({"thread": early, "inputs": [user("other way")]}),
    )
    .await;
    assert_eq!(answer, "Echo (3 context messages): other way");
    let now = messages(&app, &k.a1, &early).await;
    assert_eq!(
        texts(&now),
        [
            "one",
            "Echo (1 context messages): one",
            "other way",
            "Echo (3 context messages): other way"
        ]
    );
    assert_eq!(now[..2], parent[..2]);
    assert_eq!(count(&app, &k.a1, &early).await, 4);
    pages_agree(&app, &k.a1, &early, &now).await;
    assert_eq!(messages(&app, &k.a1, "parent").await, parent);
    assert_eq!(count(&app, &k.a1, "parent").await, 6);
    // A reconnect to the fork finds no response of its own, before and
    // after a write in the parent copies the shared history into it.
    let reconnect = |thread: String| {
        app.get(format!("/v1/model/response/{thread}/stream"))
            .key(&k.a1)
            .send()
    };
    let before_copy = reconnect(whole.clone()).await;
    let r = app
        .patch_message(&k.a1, "parent", &parent[0].0, json!({"metadata": {"x": 1}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after_copy = reconnect(whole.clone()).await;
    assert_eq!(after_copy.status, before_copy.status, "{}", after_copy.body);
    assert_eq!(
        after_copy.body["error"]["code"],
        before_copy.body["error"]["code"]
    );
    assert!(
        !String::from_utf8_lossy(&after_copy.raw).contains(parent[5].0.as_str()),
        "the parent's answer is not the fork's"
    );
    // The parent goes on; the fork does not see it.
    turn(
        &app,
        &k.a1,
        json!({"thread": "parent", "inputs": [user("four")]}),
    )
    .await;
    assert_eq!(messages(&app, &k.a1, &whole).await, parent);
    assert_eq!(count(&app, &k.a1, &whole).await, 6);

    // A fork of a fork, at a message the first fork inherited, and at one
    // of its own.
    let inner = forked(&app, &k.a1, &early, json!({"message_id": parent[0].0})).await;
    assert_eq!(messages(&app, &k.a1, &inner).await, parent[..1].to_vec());
    assert_eq!(count(&app, &k.a1, &inner).await, 1);
    let deeper = forked(&app, &k.a1, &early, json!({"message_id": now[2].0})).await;
    assert_eq!(messages(&app, &k.a1, &deeper).await, now[..3].to_vec());
    assert_eq!(count(&app, &k.a1, &deeper).await, 3);
    pages_agree(&app, &k.a1, &deeper, &now[..3]).await;
    let r = app
        .post("/v1/model/response/preview")
        .key(&k.a1)
        .json(json!({"thread": deeper, "inputs": [user("next")]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let history: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["source"] == "history")
        .map(|i| i["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(history, [&now[0].0, &now[1].0, &now[2].0], "the preview");
    // A message of the fork is read by id like any other.
    let one = app
        .get(format!("/v1/threads/{deeper}/messages?limit=1&order=asc"))
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(one.body["data"][0]["id"], parent[0].0.as_str());
}

async fn edits_deletes_and_rewinds_never_cross_between_parent_and_forks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let parent = three_turns(&app, &k.a1, "p").await;
    let f = forked(&app, &k.a1, "p", json!({})).await;
    // g forks f at a message f inherits from p.
    let g = forked(&app, &k.a1, &f, json!({"message_id": parent[3].0})).await;
    let h = forked(&app, &k.a1, "p", json!({"message_id": parent[3].0})).await;

    // The parent edits and deletes: no fork sees it.
    let r = app
        .patch_message(&k.a1, "p", &parent[0].0, json!({"content": "ONE"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.delete_message(&k.a1, "p", &parent[4].0).await.status,
        200
    );
    let p_now = messages(&app, &k.a1, "p").await;
    assert_eq!(p_now[0].2, "ONE");
    assert_eq!(p_now.len(), 5);
    assert_eq!(count(&app, &k.a1, "p").await, 5);
    assert_eq!(messages(&app, &k.a1, &f).await, parent);
    assert_eq!(count(&app, &k.a1, &f).await, 6);
    assert_eq!(messages(&app, &k.a1, &g).await, parent[..4].to_vec());
    assert_eq!(messages(&app, &k.a1, &h).await, parent[..4].to_vec());

    // The fork edits and deletes what it inherited: the parent and the
    // fork's own fork do not see it.
    let r = app
        .patch_message(&k.a1, &f, &parent[2].0, json!({"content": "TWO"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], parent[2].0.as_str(), "the same id");
    assert_eq!(
        app.delete_message(&k.a1, &f, &parent[1].0).await.status,
        200
    );
    let f_now = messages(&app, &k.a1, &f).await;
    assert_eq!(
        texts(&f_now),
        [
            "one",
            "TWO",
            "Echo (3 context messages): two",
            "three",
            "Echo (5 context messages): three"
        ]
    );
    assert_eq!(count(&app, &k.a1, &f).await, 5);
    assert_eq!(messages(&app, &k.a1, "p").await, p_now);
    assert_eq!(messages(&app, &k.a1, &g).await, parent[..4].to_vec());
    assert_eq!(count(&app, &k.a1, &g).await, 4);

    // Rewinds: the parent rewinds to its first answer, the second fork
    // edits its first message; neither shows anywhere else.
    let answer = turn(
        &app,
        &k.a1,
        json!({"thread": "p", "previous_message_id": parent[1].0, "inputs": [user("again")]}),
    )
    .await;
    assert_eq!(answer, "Echo (3 context messages): again");
    assert_eq!(count(&app, &k.a1, "p").await, 4);
    assert_eq!(messages(&app, &k.a1, &h).await, parent[..4].to_vec());
    let answer = turn(
        &app,
        &k.a1,
        json!({"thread": h, "edit_message_id": parent[2].0, "inputs": [user("deux")]}),
    )
    .await;
    assert_eq!(answer, "Echo (3 context messages): deux");
    let h_now = messages(&app, &k.a1, &h).await;
    assert_eq!(h_now[..2], parent[..2]);
    assert_eq!(
        texts(&h_now[2..]),
        ["deux", "Echo (3 context messages): deux"]
    );
    assert_eq!(count(&app, &k.a1, &h).await, 4);
    assert_eq!(messages(&app, &k.a1, &g).await, parent[..4].to_vec());
    assert_eq!(messages(&app, &k.a1, &f).await, f_now);
    let p_after = messages(&app, &k.a1, "p").await;
    assert_eq!(
        texts(&p_after),
        [
            "ONE",
            "Echo (1 context messages): one",
            "again",
            "Echo (3 context messages): again"
        ]
    );
    // The fork of a fork still works on its own.
    assert_eq!(
        app.delete_message(&k.a1, &g, &parent[3].0).await.status,
        200
    );
    assert_eq!(messages(&app, &k.a1, &g).await, parent[..3].to_vec());
    assert_eq!(count(&app, &k.a1, &g).await, 3);
    assert_eq!(messages(&app, &k.a1, &f).await, f_now);
}

async fn a_fork_keeps_its_history_when_the_parent_is_deleted_and_purged(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| s.clock = handle).await;
    let k = &app.keys;
    let parent = three_turns(&app, &k.a1, "gone").await;
    let f = forked(&app, &k.a1, "gone", json!({})).await;
    let g = forked(&app, &k.a1, &f, json!({"message_id": parent[3].0})).await;
    turn(&app, &k.a1, json!({"thread": f, "inputs": [user("mine")]})).await;
    let f_before = messages(&app, &k.a1, &f).await;
    assert_eq!(f_before.len(), 8);

    assert_eq!(app.delete_thread(&k.a1, "gone").await.status, 204);
    assert_eq!(app.get_thread(&k.a1, "gone").await.status, 404);
    assert_eq!(
        messages(&app, &k.a1, &f).await,
        f_before,
        "deleted, not purged"
    );
    let purge = |days: i64| {
        clock.advance(TimeDelta::days(days));
        retention::purge_all(
            &mut app.store.conn().unwrap(),
            &RetentionPolicy::default(),
            clock.now(),
            100,
        )
        .unwrap()
    };
    let purged = purge(31);
    assert_eq!(purged.threads, 1, "{purged:?}");
    assert_eq!(purged.messages, 6, "{purged:?}");
    assert_eq!(messages(&app, &k.a1, &f).await, f_before);
    assert_eq!(count(&app, &k.a1, &f).await, 8);
    assert_eq!(messages(&app, &k.a1, &g).await, parent[..4].to_vec());
    assert_eq!(count(&app, &k.a1, &g).await, 4);
    // The history is the fork's own now: a turn sees it, search finds it
    // under the fork.
    let answer = turn(&app, &k.a1, json!({"thread": g, "inputs": [user("more")]})).await;
    assert_eq!(answer, "Echo (5 context messages): more");
    let r = app
        .get(format!("/v1/search/messages?q=three&thread_id={f}"))
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut hits: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message_id"].as_str().unwrap())
        .collect();
    hits.sort();
    let mut want = vec![parent[4].0.as_str(), parent[5].0.as_str()];
    want.sort();
    assert_eq!(hits, want, "'three' and its echo, now the fork's own");
    // The middle fork goes too: the last one keeps everything.
    assert_eq!(app.delete_thread(&k.a1, &f).await.status, 204);
    let purged = purge(31);
    assert_eq!(purged.threads, 1, "{purged:?}");
    let g_now = messages(&app, &k.a1, &g).await;
    assert_eq!(g_now[..4], parent[..4]);
    assert_eq!(
        texts(&g_now[4..]),
        ["more", "Echo (5 context messages): more"]
    );
    assert_eq!(count(&app, &k.a1, &g).await, 6);
}

async fn forks_refuse_what_they_cannot_do_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let parent = three_turns(&app, &k.a1, "mine").await;
    let other = three_turns(&app, &k.a1, "other").await;
    let total =
        || async { app.list_threads(&k.a1, "include_total=true").await.body["total"].clone() };
    let before = total().await;
    // Someone else's thread, a missing one: 404 as for any thread.
    assert_error(
        &fork(&app, &k.a2, "mine", json!({})).await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_error(
        &fork(&app, &k.b1, "mine", json!({})).await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_error(
        &fork(&app, &k.a1, "nope", json!({})).await,
        404,
        "THREAD_NOT_FOUND",
    );
    // A message the parent does not hold (another thread's, a deleted one,
    // an unknown id).
    for m in [other[1].0.clone(), "msg_unknown".to_string()] {
        let r = fork(&app, &k.a1, "mine", json!({"message_id": m})).await;
        assert_error(&r, 404, "MESSAGE_NOT_FOUND");
    }
    assert_eq!(
        app.delete_message(&k.a1, "mine", &parent[2].0).await.status,
        200
    );
    let r = fork(&app, &k.a1, "mine", json!({"message_id": parent[2].0})).await;
    assert_error(&r, 404, "MESSAGE_NOT_FOUND");
    // A bad title or metadata.
    let r = fork(&app, &k.a1, "mine", json!({"title": "x".repeat(201)})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = fork(
        &app,
        &k.a1,
        "mine",
        json!({"metadata": {"k": "v".repeat(600)}}),
    )
    .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    assert_eq!(total().await, before, "nothing was created");

    // Title and metadata: the parent's unless given.
    let r = app
        .patch_thread(
            &k.a1,
            "mine",
            json!({"title": "Plans", "metadata": {"team": "a"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let same = fork(&app, &k.a1, "mine", json!({})).await;
    assert_eq!(same.body["title"], "Plans");
    assert_eq!(same.body["metadata"], json!({"team": "a"}));
    assert_eq!(same.body["message_count"], 5);
    let own = fork(
        &app,
        &k.a1,
        "mine",
        json!({"title": "", "metadata": {"team": "b"}}),
    )
    .await;
    assert_eq!(own.body["title"], Value::Null);
    assert_eq!(own.body["metadata"], json!({"team": "b"}));
    // An empty thread forks into an empty thread.
    app.create_thread(&k.a1, json!({})).await;
    let empty = app.create_thread(&k.a1, json!({})).await;
    let id = empty["id"].as_str().unwrap();
    let r = fork(&app, &k.a1, id, json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["forked_from"],
        json!({"thread_id": id, "message_id": null})
    );
    assert_eq!(r.body["message_count"], 0);
    let fid = r.body["id"].as_str().unwrap();
    assert_eq!(messages(&app, &k.a1, fid).await, vec![]);
    app.post_message(&k.a1, fid, json!({"role": "user", "content": "first"}))
        .await;
    assert_eq!(texts(&messages(&app, &k.a1, fid).await), ["first"]);
    assert_eq!(messages(&app, &k.a1, id).await, vec![]);
}

async fn concurrent_writes_on_a_parent_never_show_in_forks_being_read(backend: Backend) {
    use futures_util::future::join_all;
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let parent = three_turns(&app, &k.a1, "busy").await;
    let mut forks = Vec::new();
    for _ in 0..3 {
        forks.push(forked(&app, &k.a1, "busy", json!({})).await);
    }
    // Edits and deletes of the parent, a delete in one fork, new forks and
    // reads of the others, all at once.
    let edits = parent.iter().take(3).map(|(id, _, _)| {
        app.request(Method::PATCH, format!("/v1/threads/busy/messages/{id}"))
            .key(&k.a1)
            .json(json!({"content": "changed"}))
            .send()
    });
    let deletes = parent.iter().skip(3).map(|(id, _, _)| {
        app.request(Method::DELETE, format!("/v1/threads/busy/messages/{id}"))
            .key(&k.a1)
            .send()
    });
    let in_fork = app
        .request(
            Method::DELETE,
            format!("/v1/threads/{}/messages/{}", forks[0], parent[0].0),
        )
        .key(&k.a1)
        .send();
    let new_forks = (0..3).map(|_| {
        app.post("/v1/threads/busy/fork")
            .key(&k.a1)
            .json(json!({}))
            .send()
    });
    let reads = (0..12).map(|i| {
        app.get(format!(
            "/v1/threads/{}/messages?order=asc&limit=100",
            forks[1 + i % 2]
        ))
        .key(&k.a1)
        .send()
    });
    let (edits, deletes, in_fork, new_forks, reads) = bounded(
        "concurrent fork traffic",
        30,
        futures_util::future::join5(
            join_all(edits),
            join_all(deletes),
            in_fork,
            join_all(new_forks),
            join_all(reads),
        ),
    )
    .await;
    for r in edits
        .iter()
        .chain(&deletes)
        .chain(std::iter::once(&in_fork))
    {
        assert!(
            r.status == 200 || r.status == 204,
            "{} {}",
            r.status,
            r.body
        );
    }
    let ids: Vec<&str> = parent.iter().map(|(id, _, _)| id.as_str()).collect();
    for r in &reads {
        assert_eq!(r.status, 200, "{}", r.body);
        let got: Vec<&str> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(got, ids, "a read of a fork saw the parent change");
        assert!(
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| !m.to_string().contains("changed")),
            "{}",
            r.body
        );
    }
    // Every fork made meanwhile counts exactly what it shows.
    for r in &new_forks {
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap();
        let got = messages(&app, &k.a1, id).await;
        assert_eq!(
            got.len() as i64,
            r.body["message_count"].as_i64().unwrap(),
            "{got:?}"
        );
    }
    assert_eq!(messages(&app, &k.a1, &forks[1]).await, parent);
    assert_eq!(messages(&app, &k.a1, &forks[2]).await, parent);
    assert_eq!(messages(&app, &k.a1, &forks[0]).await, parent[1..].to_vec());
    let now = messages(&app, &k.a1, "busy").await;
    assert_eq!(texts(&now), ["changed", "changed", "changed"]);
}
