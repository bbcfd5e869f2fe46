//! `ETag`, `If-None-Match` and `If-Match` on threads and messages
//! (contract 11.4): a stale `If-Match` changes nothing.

use super::common::*;
use actix_web::http::Method;
use serde_json::json;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    threads_answer_etags_and_honour_if_none_match_and_if_match,
    messages_answer_etags_and_a_stale_if_match_changes_nothing,
    large_messages_answer_their_json_and_tags_that_if_match_takes,
);

fn etag(r: &Resp) -> String {
    r.headers
        .get("etag")
        .unwrap_or_else(|| panic!("no ETag: {} {}", r.status, r.body))
        .to_str()
        .unwrap()
        .to_string()
}

async fn threads_answer_etags_and_honour_if_none_match_and_if_match(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let created = app.post_thread(&k.a1, json!({"title": "first"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let e0 = etag(&created);
    let id = created.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/threads/{id}");
    let got = app.get(&path).key(&k.a1).send().await;
    assert_eq!(etag(&got), e0, "the creation answer is the thread as read");
    // The client's copy is current: 304 without a body.
    for held in [
        e0.clone(),
        format!("W/{e0}"),
        format!("\"x\", {e0}"),
        "*".into(),
    ] {
        let r = app
            .get(&path)
            .key(&k.a1)
            .header("If-None-Match", &held)
            .send()
            .await;
        assert_eq!(r.status, 304, "{held}");
        assert!(r.raw.is_empty());
        assert_eq!(etag(&r), e0);
    }
    let r = app
        .get(&path)
        .key(&k.a1)
        .header("If-None-Match", "\"old\"")
        .send()
        .await;
    assert_eq!(r.status, 200);
    // A matching If-Match writes and answers the new tag.
    let patch = |tag: &str, title: &str| {
        app.request(Method::PATCH, &path)
            .key(&k.a1)
            .header("If-Match", tag)
            .json(json!({ "title": title }))
            .send()
    };
    let r = patch(&e0, "second").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e1 = etag(&r);
    assert_ne!(e1, e0);
    assert_eq!(etag(&app.get(&path).key(&k.a1).send().await), e1);
    // A stale one changes nothing.
    let r = patch(&e0, "third").await;
    assert_error(&r, 412, "PRECONDITION_FAILED");
    let now = app.get_thread(&k.a1, &id).await;
    assert_eq!(now.body["title"], "second");
    assert_eq!(etag(&now), e1);
    // A new message changes the thread (its count): e1 is stale for a delete.
    let m = app
        .post_message(&k.a1, &id, json!({"role": "user", "content": "hi"}))
        .await;
    assert_eq!(m.status, 201, "{}", m.body);
    let delete = |tag: String| {
        app.request(Method::DELETE, &path)
            .key(&k.a1)
            .header("If-Match", &tag)
            .send()
    };
    assert_error(&delete(e1).await, 412, "PRECONDITION_FAILED");
    let current = etag(&app.get_thread(&k.a1, &id).await);
    assert_eq!(app.get_thread(&k.a1, &id).await.status, 200, "still there");
    assert_eq!(delete(current).await.status, 204);
    assert_eq!(app.get_thread(&k.a1, &id).await.status, 404);
}

async fn messages_answer_etags_and_a_stale_if_match_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let id = app.new_thread(&k.a1).await;
    let created = app
        .post_message(&k.a1, &id, json!({"role": "user", "content": "one"}))
        .await;
    let m0 = etag(&created);
    let mid = created.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/threads/{id}/messages/{mid}");
    let patch = |tag: &str, content: &str| {
        app.request(Method::PATCH, &path)
            .key(&k.a1)
            .header("If-Match", tag)
            .json(json!({ "content": content }))
            .send()
    };
    let r = patch(&m0, "two").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m1 = etag(&r);
    assert_ne!(m1, m0);
    let r = patch(&m0, "three").await;
    assert_error(&r, 412, "PRECONDITION_FAILED");
    let listed = app.list_messages(&k.a1, &id, "").await;
    assert_eq!(listed.body["data"][0]["content"], "two");
    let delete = |tag: &str| {
        app.request(Method::DELETE, &path)
            .key(&k.a1)
            .header("If-Match", tag)
            .send()
    };
    assert_error(&delete(&m0).await, 412, "PRECONDITION_FAILED");
    assert_eq!(app.get_thread(&k.a1, &id).await.body["message_count"], 1);
    let r = delete(&m1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get_thread(&k.a1, &id).await.body["message_count"], 0);
    // `*` names any current version.
    let again = app
        .post_message(&k.a1, &id, json!({"role": "user", "content": "again"}))
        .await;
    let path = format!(
        "/v1/threads/{id}/messages/{}",
        again.body["id"].as_str().unwrap()
    );
    let r = app
        .request(Method::PATCH, &path)
        .key(&k.a1)
        .header("If-Match", "*")
        .json(json!({"content": "any"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Answers over 64 KiB of text are written off the workers: the same JSON,
/// and a tag that names that version.
async fn large_messages_answer_their_json_and_tags_that_if_match_takes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let id = app.new_thread(&k.a1).await;
    let big = |c: char| c.to_string().repeat(100_000) + "\u{e9}\"\n";
    let created = app
        .post_message(&k.a1, &id, json!({"role": "user", "content": big('a')}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["content"], big('a'));
    assert_eq!(
        created.headers.get("content-type").unwrap(),
        "application/json"
    );
    let m0 = etag(&created);
    let path = format!(
        "/v1/threads/{id}/messages/{}",
        created.body["id"].as_str().unwrap()
    );
    let patch = |tag: String, content: String| {
        app.request(Method::PATCH, &path)
            .key(&k.a1)
            .header("If-Match", &tag)
            .json(json!({ "content": content }))
            .send()
    };
    let r = patch(m0.clone(), big('b')).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["content"], big('b'));
    let m1 = etag(&r);
    assert_ne!(m1, m0);
    assert_error(&patch(m0, big('c')).await, 412, "PRECONDITION_FAILED");
    assert_eq!(patch(m1, big('d')).await.status, 200);
}
