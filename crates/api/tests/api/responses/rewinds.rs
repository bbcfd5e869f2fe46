//! Section 9.1 and 9.5 of the contract: rewinding a thread with
//! `previous_message_id` / `edit_message_id` (inside the turn's commit, so a
//! failed or quickly cancelled turn rewinds nothing), the context modes,
//! `max_completion_tokens`, and the fields Skein refuses rather than ignores.

use super::fake_upstream::Upstream;
use super::{output_text, user};
use crate::common::*;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    previous_message_id_continues_after_it_and_edit_message_id_replaces_it,
    a_rewind_that_fails_or_is_cancelled_quickly_rewinds_nothing,
    context_modes_choose_the_history_the_model_sees,
    max_completion_tokens_wins_and_unsupported_fields_are_refused,
);

/// `(id, role, text)` of the thread's messages, oldest first.
pub async fn messages(app: &TestApp, key: &str, thread: &str) -> Vec<(String, String, String)> {
    let r = app.list_messages(key, thread, "order=asc&limit=100").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = m["content"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| m["content"][0]["text"].as_str().unwrap_or("").to_string());
            (
                m["id"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
                text,
            )
        })
        .collect()
}

pub fn texts(msgs: &[(String, String, String)]) -> Vec<&str> {
    msgs.iter().map(|(_, _, t)| t.as_str()).collect()
}

async fn turn(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post_response(key, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn previous_message_id_continues_after_it_and_edit_message_id_replaces_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    for q in ["one", "two", "three"] {
        turn(&app, &k.a1, json!({"thread": "rw", "inputs": [user(q)]})).await;
    }
    let before = messages(&app, &k.a1, "rw").await;
    assert_eq!(before.len(), 6);
    let first_answer = before[1].0.clone();
    // Continue after the first answer: the later turns go, in history too.
    let r = turn(
        &app,
        &k.a1,
        json!({"thread": "rw", "previous_message_id": first_answer, "inputs": [user("again")]}),
    )
    .await;
    assert_eq!(output_text(&r), "Echo (3 context messages): again");
    let after = messages(&app, &k.a1, "rw").await;
    assert_eq!(
        texts(&after),
        [
            "one",
            "Echo (1 context messages): one",
            "again",
            "Echo (3 context messages): again"
        ]
    );
    assert_eq!(app.get_thread(&k.a1, "rw").await.body["message_count"], 4);
    // Edit the user message "again" (camelCase, as the SDKs send it).
    let again = after[2].0.clone();
    let r = turn(
        &app,
        &k.a1,
        json!({"threadId": "rw", "editMessageId": again, "inputs": [user("edited")]}),
    )
    .await;
    assert_eq!(output_text(&r), "Echo (3 context messages): edited");
    let edited = messages(&app, &k.a1, "rw").await;
    assert_eq!(
        texts(&edited),
        [
            "one",
            "Echo (1 context messages): one",
            "edited",
            "Echo (3 context messages): edited"
        ]
    );
    assert!(
        !edited.iter().any(|(id, _, _)| *id == again),
        "the edited message is gone"
    );
    assert_eq!(app.get_thread(&k.a1, "rw").await.body["message_count"], 4);

    // What is refused changes nothing.
    let refused = [
        (
            json!({"thread": "rw", "edit_message_id": first_answer, "inputs": [user("x")]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"thread": "rw", "previous_message_id": "msg_nope", "inputs": [user("x")]}),
            404,
            "MESSAGE_NOT_FOUND",
        ),
        (
            json!({"thread": "rw", "previous_message_id": first_answer, "edit_message_id": again, "inputs": [user("x")]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"previous_message_id": first_answer, "inputs": [user("x")]}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"previous_response_id": r["id"], "previous_message_id": first_answer, "inputs": [user("x")]}),
            400,
            "INVALID_REQUEST",
        ),
    ];
    for (body, status, code) in refused {
        let r = app.post_response(&k.a1, body.clone()).await;
        assert_error(&r, status, code);
        assert_eq!(messages(&app, &k.a1, "rw").await, edited, "{body}");
    }
    // Another user's message is not in the caller's thread.
    turn(
        &app,
        &k.a2,
        json!({"thread": "theirs", "inputs": [user("mine")]}),
    )
    .await;
    let theirs = messages(&app, &k.a2, "theirs").await[0].0.clone();
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "rw", "previous_message_id": theirs, "inputs": [user("x")]}),
        )
        .await;
    assert_error(&r, 404, "MESSAGE_NOT_FOUND");
}

async fn a_rewind_that_fails_or_is_cancelled_quickly_rewinds_nothing(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    for q in ["one", "two"] {
        turn(&app, &k.a1, json!({"thread": "keep", "inputs": [user(q)]})).await;
    }
    let before = messages(&app, &k.a1, "keep").await;
    let first = before[0].0.clone();
    // The model fails: nothing is rewound.
    let r = app
        .post_response(
            &k.a1,
            json!({"model": "fake-500", "thread": "keep", "edit_message_id": first, "inputs": [user("x")]}),
        )
        .await;
    assert_error(&r, 502, "UPSTREAM_ERROR");
    upstream.next_request().await;
    assert_eq!(messages(&app, &k.a1, "keep").await, before);
    // Cancelled within the quick-cancel window: nothing is rewound.
    let stream = app
        .stream_response(
            &k.a1,
            json!({"model": "fake-slow", "thread": "keep", "stream": true,
                   "previous_message_id": first, "inputs": [user("x")]}),
        )
        .await;
    assert_eq!(stream.status, 200);
    upstream.next_request().await;
    let cancelled = app.cancel(&k.a1, "keep").await;
    assert_eq!(
        cancelled.body["cancel_mode"], "quick_edit",
        "{}",
        cancelled.body
    );
    stream.finish().await;
    assert_eq!(messages(&app, &k.a1, "keep").await, before);
    assert_eq!(app.get_thread(&k.a1, "keep").await.body["message_count"], 4);
}

async fn context_modes_choose_the_history_the_model_sees(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let created = app.create_thread(&k.a1, json!({})).await;
    let modes = created["id"].as_str().unwrap();
    for i in 0..14 {
        let r = app
            .post_message(
                &k.a1,
                modes,
                json!({"role": "user", "content": format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let m = |range: std::ops::Range<usize>| range.map(|i| format!("m{i}")).collect::<Vec<_>>();
    let cases = [
        ("full", m(0..14)),
        ("off", Vec::new()),
        ("recent", m(4..14)),
        ("saver", m(4..14)),
        ("smart", [m(0..3), m(7..14)].concat()),
        ("auto", [m(0..3), m(7..14)].concat()),
    ];
    for (mode, history) in cases {
        // Each turn is rewound away again, so every mode sees the same 14.
        let last = messages(&app, &k.a1, modes).await[13].0.clone();
        let r = app
            .post_response(
                &k.a1,
                json!({"model": "fake-ok", "thread": modes, "thread_context_mode": mode,
                       "previous_message_id": last, "inputs": [user("now")]}),
            )
            .await;
        assert_eq!(r.status, 200, "{mode}: {}", r.body);
        let sent = upstream.next_request().await;
        let contents: Vec<&str> = sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        let mut want: Vec<&str> = history.iter().map(String::as_str).collect();
        want.push("now");
        assert_eq!(contents, want, "{mode}");
    }
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": modes, "thread_context_mode": "everything", "inputs": [user("x")]}),
        )
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
}

async fn max_completion_tokens_wins_and_unsupported_fields_are_refused(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let r = app
        .post_response(
            &k.a1,
            json!({"model": "fake-ok", "max_output_synapses": 50, "max_completion_tokens": 20,
                   "inputs": [user("short")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(upstream.next_request().await["max_tokens"], 20);
    // Empty values ask for nothing and are accepted.
    let r = app
        .post_response(
            &k.a1,
            json!({"tools": [], "space_id": "", "vector_store_ids": null, "inputs": [user("x")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for (field, value) in [
        ("tools", json!([{"type": "function", "name": "f"}])),
        ("system_tools", json!({"web_search": true})),
        ("vector_store_ids", json!(["vs_1"])),
        ("space_id", json!("space_1")),
        ("slice_ids", json!(["s"])),
        ("skill_ids", json!(["k"])),
        ("force_skill_id", json!("k")),
    ] {
        let mut body = json!({"thread": "never", "inputs": [user("x")]});
        body[field] = value;
        let r = app.post_response(&k.a1, body).await;
        assert_error(&r, 400, "UNSUPPORTED_FEATURE");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(field),
            "{}",
            r.body
        );
    }
    assert_error(
        &app.get_thread(&k.a1, "never").await,
        404,
        "THREAD_NOT_FOUND",
    );
}
