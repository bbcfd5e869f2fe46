//! Streamed responses: the frames, heartbeats while the model is silent, and
//! a client that goes away mid-stream.

use super::fake_upstream::Upstream;
use super::{output_text, user};
use crate::common::*;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    streaming_sends_frames_and_saves_the_turn,
    heartbeats_fill_the_silence_of_a_stream,
    a_client_that_disconnects_mid_stream_does_not_lose_the_turn,
);

async fn streaming_sends_frames_and_saves_the_turn(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "streamed", "stream": true, "inputs": [user("Stream me please")]}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_events(&r.raw);
    let names: Vec<_> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(&names[names.len() - 2..], ["response.completed", "[DONE]"]);
    assert!(
        names
            .iter()
            .filter(|n| **n == "response.content_delta")
            .count()
            >= 2
    );
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|(_, v)| v["sequence_number"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs[0] == 1,
        "{seqs:?}"
    );
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.content_delta")
        .map(|(_, v)| v["delta"].as_str().unwrap())
        .collect();
    let completed = &events[events.len() - 2].1["response"];
    assert_eq!(output_text(completed), deltas);
    assert_eq!(deltas, "Echo (1 context messages): Stream me please");
    assert_eq!(events[0].1["thread_id"], "streamed");
    assert_eq!(events[0].1["response_id"], completed["id"]);
    let t = app.get_thread(&k.a1, "streamed").await.body;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(2), Some("inactive"))
    );
}

async fn heartbeats_fill_the_silence_of_a_stream(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.router = upstream.router();
        s.heartbeat = std::time::Duration::from_millis(20);
    })
    .await;
    let k = &app.keys;
    let mut stream = app
        .stream_response(
            &k.a1,
            json!({"model": "fake-slow", "thread": "hb", "stream": true, "inputs": [user("go")]}),
        )
        .await;
    assert_eq!(stream.status, 200);
    // The upstream stalls after one delta: the stream must keep talking.
    stream.until_event("response.heartbeat").await;
    assert_eq!(upstream.next_request().await["model"], "fake-slow");
    let cancelled = app.cancel(&k.a1, "hb").await;
    assert_eq!(cancelled.status, 200);
    let events = stream.finish().await;
    let heartbeat = events
        .iter()
        .find(|(n, _)| n == "response.heartbeat")
        .unwrap();
    assert!(heartbeat.1["sequence_number"].as_u64().unwrap() >= 2);
    let names: Vec<_> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "response.created");
    assert_eq!(&names[names.len() - 2..], ["response.cancelled", "[DONE]"]);
}

async fn a_client_that_disconnects_mid_stream_does_not_lose_the_turn(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    {
        let mut stream = app
            .stream_response(
                &k.a1,
                json!({"model": "fake-gated", "thread": "gone", "stream": true, "inputs": [user("still there?")]}),
            )
            .await;
        let first = stream.next_chunk().await.expect("a first frame");
        assert!(String::from_utf8_lossy(&first).contains("response.created"));
        assert_eq!(upstream.next_request().await["model"], "fake-gated");
        // The client goes away here: the stream is dropped mid-answer.
    }
    upstream.open_gate();
    // The turn is saved by the generation task regardless. Poll the thread
    // (each read is a real round trip, so the task runs meanwhile).
    let mut saved = Value::Null;
    within(REQUEST_TIMEOUT_SECS, async {
        for _ in 0..10_000 {
            saved = app.get_thread(&k.a1, "gone").await.body;
            if saved["message_count"] == 2 && saved["status"] == "inactive" {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(saved["message_count"], 2, "{saved}");
    assert_eq!(saved["status"], "inactive");
    let msgs = app.list_messages(&k.a1, "gone", "").await;
    assert_eq!(msgs.body["data"][1]["content"], "fake answer");
}
