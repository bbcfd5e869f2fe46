//! What the turn engine holds under abuse: a concurrent first use of a
//! thread id, failures that must not leak the upstream's details, a panic in
//! a model, a client that stops reading, and a large body that must not hold
//! up other requests.

use super::fake_upstream::{flood_text, Upstream};
use super::user;
use crate::common::*;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use skein_api::AppState;
use skein_persistence::Backend;
use skein_providers::{ModelOutput, ModelRequest, Provider, ProviderError, ProviderStream};
use std::sync::Arc;
use std::time::Duration;

skein_persistence::on_both_backends_async!(
    concurrent_first_use_of_a_thread_is_busy_never_missing,
    a_failed_turn_names_no_upstream_detail_and_is_logged_once,
    a_panicking_model_is_a_500_and_gives_the_thread_back,
    a_client_that_stops_reading_does_not_stall_the_turn,
    counting_a_large_body_does_not_hold_up_other_requests,
);

const RACERS: usize = 8;

async fn concurrent_first_use_of_a_thread_is_busy_never_missing(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    // The winner holds the lease at the gate until the others have answered.
    let body = json!({"model": "fake-gated", "thread": "first_use", "inputs": [user("hi")]});
    let mut racing: FuturesUnordered<_> = (0..RACERS)
        .map(|_| app.post_response(&k.a1, body.clone()))
        .collect();
    let mut answers = Vec::new();
    while answers.len() < RACERS - 1 {
        answers.push(within(REQUEST_TIMEOUT_SECS, racing.next()).await.unwrap());
    }
    for r in &answers {
        assert_error(r, 409, "THREAD_BUSY");
        assert!(r.headers.contains_key("retry-after"));
    }
    // The winner's request is still in `racing`: keep polling it while
    // waiting for its model call, or under load its handler may not have
    // reached the model yet and would never be polled again.
    let seen = {
        let next = upstream.next_request();
        tokio::pin!(next);
        tokio::select! {
            seen = &mut next => seen,
            early = racing.next() => panic!(
                "the winner answered before its model was called: {:?}",
                early.map(|r| r.body)
            ),
        }
    };
    assert_eq!(seen["model"], "fake-gated");
    upstream.open_gate();
    let winner = within(REQUEST_TIMEOUT_SECS, racing.next()).await.unwrap();
    assert_eq!(winner.status, 200, "{}", winner.body);
    let t = app.get_thread(&k.a1, "first_use").await;
    assert_eq!(t.body["message_count"], 2, "{}", t.body);
    assert_eq!(t.body["status"], "inactive");
}

async fn a_failed_turn_names_no_upstream_detail_and_is_logged_once(backend: Backend) {
    captured_logs();
    let upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let port = upstream.base_url.trim_start_matches("http://");
    let leaks = |text: &str| {
        [
            "127.0.0.1",
            port,
            "model exploded",
            "chat/completions",
            "http://",
        ]
        .into_iter()
        .filter(|detail| text.contains(detail))
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    // fake-500 answers 500 with a body; `hang` never answers (0.3 s timeout).
    for (model, code, cause) in [
        ("fake-500", "UPSTREAM_ERROR", "model exploded"),
        ("hang", "UPSTREAM_TIMEOUT", "timed out"),
    ] {
        let request = json!({"model": model, "thread": format!("t-{model}"), "stream": true,
                             "inputs": [user("x")]});
        let stream = app.stream_response(&k.a1, request.clone()).await;
        assert_eq!(stream.status, 200);
        let request_id = header(&stream.headers, "x-request-id");
        let events = stream.finish().await;
        let (_, error) = events
            .iter()
            .find(|(name, _)| name == "response.error")
            .unwrap_or_else(|| panic!("{model}: no response.error in {events:?}"));
        assert_eq!(error["code"], code, "{error}");
        assert_eq!(error["status"], "failed");
        let message = error["message"].as_str().unwrap();
        assert!(
            leaks(message).is_empty(),
            "{model} stream leaks {:?}: {message}",
            leaks(message)
        );
        let lines = logged(&request_id);
        let errors: Vec<_> = lines.iter().filter(|l| l.starts_with("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{model} stream: logged once: {lines:?}");
        assert!(
            errors[0].contains(cause),
            "the log has the cause: {}",
            errors[0]
        );

        // The same without a stream: the JSON answer hides it, the log has it.
        let mut plain = request;
        plain["stream"] = json!(false);
        let r = app.post_response(&k.a1, plain).await;
        assert_error(&r, if code == "UPSTREAM_ERROR" { 502 } else { 504 }, code);
        let text = r.body.to_string();
        assert!(
            leaks(&text).is_empty(),
            "{model} answer leaks {:?}: {text}",
            leaks(&text)
        );
        let request_id = header(&r.headers, "x-request-id");
        let errors: Vec<_> = logged(&request_id)
            .into_iter()
            .filter(|l| l.starts_with("ERROR"))
            .collect();
        assert_eq!(errors.len(), 1, "{model} answer: logged once: {errors:?}");
    }
}

fn header(headers: &actix_web::http::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_string()
}

/// A model with a bug: it panics when its answer is read.
#[derive(Debug)]
struct Panicking;

impl Provider for Panicking {
    fn complete(
        &self,
        _req: ModelRequest,
    ) -> futures_util::future::BoxFuture<'static, Result<ModelOutput, ProviderError>> {
        Box::pin(async { panic!("the model has a bug") })
    }

    fn stream(&self, _req: ModelRequest) -> ProviderStream {
        Box::pin(futures_util::stream::poll_fn(|_| {
            panic!("the model has a bug")
        }))
    }
}

async fn a_panicking_model_is_a_500_and_gives_the_thread_back(backend: Backend) {
    captured_logs();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.router = s
            .router
            .with_route("buggy", "buggy", Arc::new(Panicking), 8192);
    })
    .await;
    let k = &app.keys;
    let buggy = |thread: &str, stream: bool| json!({"model": "buggy", "thread": thread, "stream": stream, "inputs": [user("x")]});
    // A first turn that panics leaves no thread behind.
    let r = app.post_response(&k.a1, buggy("fresh", false)).await;
    assert_error(&r, 500, "INTERNAL_ERROR");
    assert!(!r.body.to_string().contains("bug"), "{}", r.body);
    let errors: Vec<_> = logged(&header(&r.headers, "x-request-id"))
        .into_iter()
        .filter(|l| l.starts_with("ERROR"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("the model has a bug"), "{}", errors[0]);
    assert_error(
        &app.get_thread(&k.a1, "fresh").await,
        404,
        "THREAD_NOT_FOUND",
    );
    // On a thread with history: nothing saved, the lease given back.
    let first = app
        .post_response(&k.a1, json!({"thread": "kept", "inputs": [user("hello")]}))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let r = app.post_response(&k.a1, buggy("kept", false)).await;
    assert_error(&r, 500, "INTERNAL_ERROR");
    let events = app
        .stream_response(&k.a1, buggy("kept", true))
        .await
        .finish()
        .await;
    let (name, error) = &events[events.len() - 2];
    assert_eq!(
        (name.as_str(), &error["code"]),
        ("response.error", &json!("INTERNAL_ERROR"))
    );
    let t = app.get_thread(&k.a1, "kept").await.body;
    assert_eq!(
        (t["status"].clone(), t["message_count"].clone()),
        (json!("inactive"), json!(2))
    );
    let again = app
        .post_response(
            &k.a1,
            json!({"thread": "kept", "inputs": [user("still there?")]}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
}

async fn a_client_that_stops_reading_does_not_stall_the_turn(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.router = upstream.router();
        s.quick_cancel = Duration::ZERO;
    })
    .await;
    let k = &app.keys;
    // fake-flood sends thousands of deltas at once, then stalls; this
    // client reads the first one and then nothing more.
    let mut stream = app
        .stream_response(
            &k.a1,
            json!({"model": "fake-flood", "thread": "flood", "stream": true, "inputs": [user("go")]}),
        )
        .await;
    assert_eq!(upstream.next_request().await["model"], "fake-flood");
    let first = stream.until_event("response.content_delta").await;
    let first = first["delta"].as_str().unwrap().to_string();
    // The turn keeps reading its upstream, so its cancel answers at once.
    let cancelled = bounded(
        "cancel while the client does not read",
        10,
        app.cancel(&k.a1, "flood"),
    )
    .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["cancel_mode"], "keep_partial");
    assert_eq!(cancelled.body["partial_content_saved"], true);
    let messages = app.list_messages(&k.a1, "flood", "").await.body;
    let saved: Vec<&Value> = messages["data"].as_array().unwrap().iter().collect();
    assert_eq!(saved.len(), 2, "{messages}");
    let partial = saved[1]["content"].as_str().unwrap();
    assert!(
        partial.starts_with(&first),
        "{partial:?} continues what was read"
    );
    assert!(
        flood_text().starts_with(partial),
        "the partial answer is the upstream's text"
    );
    drop(stream);
    let next = app
        .post_response(&k.a1, json!({"thread": "flood", "inputs": [user("again")]}))
        .await;
    assert_eq!(next.status, 200, "the lease is free: {}", next.body);
}

/// Requests served while one large body is counted (thousands when the
/// counting runs off the async worker, a handful when it blocks it).
const SERVED_MEANWHILE: usize = 50;

async fn counting_a_large_body_does_not_hold_up_other_requests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app.create_thread(&k.a1, json!({})).await;
    let id = t["id"].as_str().unwrap().to_string();
    // Random letters: the slowest text to count, about a megabyte.
    let big = skein_domain::ids::random_base62(1_000_000);
    let post = app.post_message(&k.a1, &id, json!({"role": "user", "content": big}));
    tokio::pin!(post);
    let mut served = 0;
    let posted = loop {
        tokio::select! {
            biased;
            r = &mut post => break r,
            r = app.get_thread(&k.a1, &id) => {
                assert_eq!(r.status, 200);
                served += 1;
            }
        }
    };
    assert_eq!(posted.status, 201, "{}", posted.body);
    assert!(
        served >= SERVED_MEANWHILE,
        "only {served} requests were served while the body was counted"
    );
}
