//! `Idempotency-Key` on POST and DELETE (contract 11.4): a retried request
//! gets the first answer again and runs nothing twice.

use super::common::*;
use super::responses::fake_upstream::Upstream;
use super::responses::user;
use actix_web::http::Method;
use chrono::TimeDelta;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_domain::retention::{Clock, RetentionPolicy};
use skein_persistence::retention::purge_batch;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    a_retried_create_gets_the_first_answer_and_creates_nothing_more,
    a_retried_model_response_never_runs_the_model_twice,
    a_retried_stream_replays_its_events_and_a_running_key_answers_409,
    concurrent_requests_with_one_key_create_one_thread,
);

fn replayed(r: &Resp) -> bool {
    r.headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn create(app: &TestApp, key: &str, idem: &str, title: &str) -> Resp {
    app.post("/v1/threads")
        .key(key)
        .header("Idempotency-Key", idem)
        .json(json!({ "title": title }))
        .send()
        .await
}

async fn thread_count(app: &TestApp, key: &str) -> usize {
    let r = app.list_threads(key, "limit=100").await;
    r.body["data"].as_array().unwrap().len()
}

async fn a_retried_create_gets_the_first_answer_and_creates_nothing_more(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| s.clock = handle).await;
    let k = &app.keys;
    let too_long = "x".repeat(300);
    let first = create(&app, &k.a1, "create-1", "once").await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!replayed(&first));
    let again = create(&app, &k.a1, "create-1", "once").await;
    assert_eq!(again.status, 201);
    assert!(replayed(&again));
    assert_eq!(again.body, first.body, "the same thread");
    assert_eq!(again.headers.get("etag"), first.headers.get("etag"));
    assert_eq!(thread_count(&app, &k.a1).await, 1);
    // The key names that request: another body under it is refused.
    let other = create(&app, &k.a1, "create-1", "twice").await;
    assert_error(&other, 422, "IDEMPOTENCY_KEY_REUSED");
    // Even when the other body is one the handler refuses before it
    // reaches the database.
    let refused = create(&app, &k.a1, "create-1", &too_long).await;
    assert_error(&refused, 422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(thread_count(&app, &k.a1).await, 1);
    // Keys are the caller's: another user's same key is its own.
    let theirs = create(&app, &k.a2, "create-1", "once").await;
    assert_eq!(theirs.status, 201);
    assert!(!replayed(&theirs));
    assert_ne!(theirs.body["id"], first.body["id"]);
    // A DELETE replays its first answer (204), not the 404 it would get now.
    let id = first.body["id"].as_str().unwrap();
    let delete = || {
        app.request(Method::DELETE, format!("/v1/threads/{id}"))
            .key(&k.a1)
            .header("Idempotency-Key", "delete-1")
            .send()
    };
    assert_eq!(delete().await.status, 204);
    let again = delete().await;
    assert_eq!(again.status, 204);
    assert!(replayed(&again));
    // A refusal is an answer too (kept): a 4xx replays as it was.
    let bad = create(&app, &k.a1, "bad-1", &too_long).await;
    assert_error(&bad, 422, "VALIDATION_ERROR");
    assert!(!replayed(&bad));
    let again = create(&app, &k.a1, "bad-1", &too_long).await;
    // The kept refusal as it was (its body names the first request's id).
    assert_eq!(again.status, 422);
    assert!(replayed(&again), "the refusal is the key's kept answer");
    assert_eq!(again.body, bad.body);
    // Malformed keys are refused before anything runs.
    for bad in ["", &"k".repeat(256), "with space", "naïve"] {
        let r = app
            .post("/v1/threads")
            .key(&k.a1)
            .header("Idempotency-Key", bad)
            .json(json!({"title": "x"}))
            .send()
            .await;
        assert_error(&r, 400, "INVALID_REQUEST");
    }
    assert_eq!(
        thread_count(&app, &k.a1).await,
        0,
        "the one thread was deleted"
    );
    // After 24 hours the keys are purged, and free again.
    clock.advance(TimeDelta::hours(25));
    let purged = {
        let mut conn = app.store.conn().unwrap();
        purge_batch(&mut conn, &RetentionPolicy::default(), clock.now(), 500).unwrap()
    };
    // create-1 twice (two users), delete-1, bad-1.
    assert_eq!(purged.idempotency_keys, 4, "{purged}");
    let later = create(&app, &k.a1, "create-1", "twice").await;
    assert_eq!(later.status, 201, "{}", later.body);
    assert!(!replayed(&later));
    // Without a key nothing changes: two posts, two threads.
    for _ in 0..2 {
        let r = app.post_thread(&k.a1, json!({"title": "plain"})).await;
        assert_eq!(r.status, 201);
    }
    assert_eq!(thread_count(&app, &k.a1).await, 3);
}

async fn a_retried_model_response_never_runs_the_model_twice(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let body = json!({"thread": "idem-turn", "model": "fake-ok", "inputs": [user("hello")]});
    let post = |idem: &'static str, body: Value| {
        app.post("/v1/model/response")
            .key(&k.a1)
            .header("Idempotency-Key", idem)
            .json(body)
            .send()
    };
    let first = post("turn-1", body.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    upstream.next_request().await;
    let again = post("turn-1", body.clone()).await;
    assert_eq!(again.status, 200);
    assert!(replayed(&again));
    assert_eq!(again.body["id"], first.body["id"]);
    assert!(upstream.nothing_received(), "the model ran once");
    let thread = app.get_thread(&k.a1, "idem-turn").await;
    assert_eq!(thread.body["message_count"], 2, "one turn saved");
    // The OpenAI door: the same, in its own envelope for a reused key.
    let openai = |input: &'static str| {
        app.post("/v1/responses")
            .key(&k.a1)
            .header("Idempotency-Key", "openai-1")
            .json(json!({"model": "fake-ok", "input": input}))
            .send()
    };
    let first = openai("hi").await;
    assert_eq!(first.status, 200, "{}", first.body);
    upstream.next_request().await;
    let again = openai("hi").await;
    assert_eq!(again.body["id"], first.body["id"]);
    assert!(upstream.nothing_received());
    let reused = openai("other").await;
    assert_eq!(reused.status, 400, "{}", reused.body);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
    // A failed turn (502) is not kept: the retry runs again.
    let failing = json!({"thread": "idem-fail", "model": "fake-500", "inputs": [user("x")]});
    assert_eq!(post("fail-1", failing.clone()).await.status, 502);
    upstream.next_request().await;
    assert_eq!(post("fail-1", failing).await.status, 502);
    assert_eq!(
        upstream.next_request().await["model"],
        "fake-500",
        "ran again"
    );
}

async fn a_retried_stream_replays_its_events_and_a_running_key_answers_409(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    // While the first request runs (its model waits), the same key: 409.
    let body = json!({"thread": "idem-gated", "model": "fake-gated", "inputs": [user("wait")]});
    let gated = app
        .post("/v1/model/response")
        .key(&k.a1)
        .header("Idempotency-Key", "gated-1")
        .json(body.clone())
        .send();
    let retry = async {
        assert_eq!(upstream.next_request().await["model"], "fake-gated");
        let r = app
            .post("/v1/model/response")
            .key(&k.a1)
            .header("Idempotency-Key", "gated-1")
            .json(body.clone())
            .send()
            .await;
        upstream.open_gate();
        r
    };
    let (first, second) = tokio::join!(gated, retry);
    assert_error(&second, 409, "IDEMPOTENCY_IN_PROGRESS");
    assert!(second.headers.contains_key("retry-after"));
    assert_eq!(first.status, 200, "{}", first.body);
    // A stream, read to its end, then retried: the same events, at once.
    let streamed = json!({"thread": "idem-stream", "model": "fake-ok", "stream": true,
                          "inputs": [user("stream it")]});
    let first = app
        .post("/v1/model/response")
        .key(&k.a1)
        .header("Idempotency-Key", "stream-1")
        .json(streamed.clone())
        .send()
        .await;
    assert_eq!(first.status, 200);
    upstream.next_request().await;
    let text = String::from_utf8(first.raw.clone()).unwrap();
    assert!(text.contains("response.completed"), "{text}");
    let again = app
        .post("/v1/model/response")
        .key(&k.a1)
        .header("Idempotency-Key", "stream-1")
        .json(streamed)
        .send()
        .await;
    assert!(replayed(&again));
    assert_eq!(again.raw, first.raw, "the same events");
    assert_eq!(
        again.headers.get("content-type").unwrap(),
        "text/event-stream"
    );
    assert!(upstream.nothing_received());
}

async fn concurrent_requests_with_one_key_create_one_thread(backend: Backend) {
    use futures_util::future::join_all;
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let racers = (0..8).map(|_| create(&app, &k.a1, "race-1", "once"));
    let answers = bounded("eight requests with one key", 30, join_all(racers)).await;
    // One ran; the others got its answer or were told it still runs.
    let ran: Vec<&Resp> = answers
        .iter()
        .filter(|r| r.status == 201 && !replayed(r))
        .collect();
    assert_eq!(ran.len(), 1, "exactly one request ran");
    for r in &answers {
        if r.status == 201 {
            assert_eq!(r.body["id"], ran[0].body["id"]);
        } else {
            assert_error(r, 409, "IDEMPOTENCY_IN_PROGRESS");
        }
    }
    assert_eq!(thread_count(&app, &k.a1).await, 1);
    // Once settled, the key replays that one thread.
    let later = create(&app, &k.a1, "race-1", "once").await;
    assert!(replayed(&later));
    assert_eq!(later.body["id"], ran[0].body["id"]);
}
