//! Cancelling a running response: within the quick-cancel window nothing of
//! the turn is kept; later the user's input and the partial answer are.

use super::fake_upstream::Upstream;
use super::user;
use crate::common::*;
use serde_json::json;
use skein_api::AppState;
use skein_persistence::Backend;
use std::time::Duration;

skein_persistence::on_both_backends_async!(
    cancel_quickly_keeps_nothing_and_later_keeps_the_partial_answer,
    a_turn_asked_for_while_the_server_shuts_down_is_refused_and_writes_nothing,
);

/// Once a graceful stop drains the running turns, a new turn on a
/// connection still open is 503 with `Retry-After` through either front
/// door, and creates nothing (a turn begun then could outlive the drain).
async fn a_turn_asked_for_while_the_server_shuts_down_is_refused_and_writes_nothing(
    backend: Backend,
) {
    let mut running = None;
    let app = TestApp::with(backend, |s: &mut AppState| {
        running = Some(std::sync::Arc::clone(&s.running));
    })
    .await;
    let k = &app.keys;
    let before = app
        .post_response(&k.a1, json!({"thread": "early", "inputs": [user("hi")]}))
        .await;
    assert_eq!(before.status, 200, "{}", before.body);
    let drained = tokio::time::timeout(
        Duration::from_secs(10),
        running.unwrap().drain(Duration::ZERO, Duration::ZERO),
    )
    .await
    .unwrap();
    assert_eq!(drained.running, 0);
    let late = app
        .post_response(&k.a1, json!({"thread": "late", "inputs": [user("hi")]}))
        .await;
    assert_error(&late, 503, "SERVICE_UNAVAILABLE");
    assert!(late.headers.contains_key("retry-after"));
    assert_error(
        &app.get_thread(&k.a1, "late").await,
        404,
        "THREAD_NOT_FOUND",
    );
    let openai = app
        .post("/v1/responses")
        .key(&k.a1)
        .json(json!({"model": "echo", "input": "hi"}))
        .send()
        .await;
    assert_error_on("/v1/responses", &openai, 503, "SERVICE_UNAVAILABLE");
    // Reads and other writes are still served until the workers stop.
    let thread = app.get_thread(&k.a1, "early").await;
    assert_eq!(thread.status, 200, "{}", thread.body);
}

async fn cancel_quickly_keeps_nothing_and_later_keeps_the_partial_answer(backend: Backend) {
    for (window, mode) in [
        (Duration::from_secs(60), "quick_edit"),
        (Duration::ZERO, "keep_partial"),
    ] {
        let mut upstream = Upstream::start();
        let app = TestApp::with(backend, |s: &mut AppState| {
            s.router = upstream.router();
            s.quick_cancel = window;
        })
        .await;
        let k = &app.keys;
        let none = app.cancel(&k.a1, "nothing").await;
        assert_error(&none, 404, "THREAD_NOT_FOUND");
        // fake-slow sends one delta, "partial answer", and then stalls.
        let mut stream = app
            .stream_response(
                &k.a1,
                json!({"model": "fake-slow", "thread": "c", "stream": true, "inputs": [user("go")]}),
            )
            .await;
        assert_eq!(stream.status, 200);
        assert_eq!(upstream.next_request().await["model"], "fake-slow");
        // Keeping the partial answer: cancel once the client has read it
        // (the turn records a delta before it sends it).
        let partial = match mode {
            "keep_partial" => {
                let delta = stream.until_event("response.content_delta").await;
                delta["delta"].as_str().unwrap().to_string()
            }
            _ => String::new(),
        };
        // Others cannot cancel it.
        let foreign = app.cancel(&k.a2, "c").await;
        assert_error(&foreign, 404, "THREAD_NOT_FOUND");
        let cancelled = app.cancel(&k.a1, "c").await;
        assert_eq!(cancelled.status, 200, "{}", cancelled.body);
        assert_eq!(cancelled.body["success"], true);
        assert_eq!(cancelled.body["cancel_mode"], mode);
        assert!(cancelled.body["elapsed_seconds"].is_f64());
        let names: Vec<_> = stream.finish().await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(&names[names.len() - 2..], ["response.cancelled", "[DONE]"]);
        let t = app.get_thread(&k.a1, "c").await.body;
        if mode == "quick_edit" {
            // The turn created the thread: nothing of it is kept.
            assert_eq!(t["error"]["code"], "THREAD_NOT_FOUND", "{t}");
            assert_eq!(cancelled.body["user_message_deleted"], true);
            assert_eq!(cancelled.body["partial_content_saved"], false);
            continue;
        }
        assert_eq!(partial, "partial answer");
        assert_eq!(t["status"], "inactive");
        assert_eq!(t["message_count"], 2, "{t}");
        assert_eq!(cancelled.body["user_message_deleted"], false);
        assert_eq!(cancelled.body["partial_content_saved"], true);
        let msgs = app.list_messages(&k.a1, "c", "").await;
        let saved: Vec<_> = msgs.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        assert_eq!(
            saved,
            [("user", "go"), ("assistant", partial.as_str())],
            "the user's input and exactly the partial answer the client saw"
        );
    }
}
