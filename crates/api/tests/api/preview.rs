//! `POST /v1/model/response/preview` (contract 11.3): what the model would
//! receive, built by the turn engine's own steps, without calling it and
//! without writing anything.

use super::common::*;
use super::responses::fake_upstream::Upstream;
use super::responses::user;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    the_preview_is_what_the_model_receives_and_writes_nothing,
    the_preview_accounts_for_dropped_history_and_fails_as_the_call_fails,
);

async fn preview(app: &TestApp, key: &str, body: Value) -> Resp {
    app.post("/v1/model/response/preview")
        .key(key)
        .json(body)
        .send()
        .await
}

/// A preview item as the upstream's message it becomes: role and text, or
/// for a function call's items the call id.
fn as_sent(item: &Value) -> (String, String) {
    let role = item["role"].as_str().unwrap().to_string();
    let content = item["content"].as_str().unwrap();
    match serde_json::from_str::<Value>(content) {
        Ok(v) if v.get("call_id").is_some() => (role, v["call_id"].as_str().unwrap().into()),
        _ => (role, content.to_string()),
    }
}

/// An upstream message the same way.
fn received(m: &Value) -> (String, String) {
    let role = m["role"].as_str().unwrap().to_string();
    if let Some(id) = m["tool_call_id"].as_str() {
        return (role, id.into());
    }
    if let Some(calls) = m["tool_calls"].as_array() {
        return (role, calls[0]["id"].as_str().unwrap().into());
    }
    (role, m["content"].as_str().unwrap().to_string())
}

async fn the_preview_is_what_the_model_receives_and_writes_nothing(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let tid = "thread_preview_1";
    let first = app
        .post_response(
            &k.a1,
            json!({"thread": tid, "model": "fake-ok", "inputs": [user("my name is Ann")]}),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    upstream.next_request().await;
    // A tool call and its output, added through the OpenAI dialect.
    let r = app
        .post(format!("/v1/conversations/{tid}/items"))
        .key(&k.a1)
        .json(json!({"items": [
            {"type": "function_call", "call_id": "call_7", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_7", "output": "found"}]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let before = app.get_thread(&k.a1, tid).await.body;
    let body = json!({"thread": tid, "model": "fake-ok", "instructions": "be brief",
                      "inputs": [{"role": "system", "texts": [{"text": "today is Monday"}]},
                                 user("what is my name?")]});
    let p = preview(&app, &k.a1, body.clone()).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(upstream.nothing_received(), "the model is not called");
    assert_eq!(
        app.get_thread(&k.a1, tid).await.body,
        before,
        "nothing written"
    );
    let sources: Vec<&str> = p.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        [
            "instructions",
            "input",
            "history",
            "history",
            "history",
            "history",
            "input"
        ]
    );
    let history = app.list_messages(&k.a1, tid, "").await.body;
    assert_eq!(p.body["items"][2]["message_id"], history["data"][0]["id"]);
    assert_eq!(p.body["items"][3]["message_id"], history["data"][1]["id"]);
    assert_eq!(p.body["items"][5]["role"], "tool");
    assert_eq!(p.body["provider"], "fake");
    assert_eq!(p.body["model"], "fake-ok");
    assert_eq!(p.body["context_window"], 8192);
    assert_eq!(p.body["dropped"], json!({"messages": 0, "tokens": 0}));
    let sum: u64 = p.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(p.body["total_tokens"], sum);
    // The real call sends exactly those items, in that order.
    let r = app.post_response(&k.a1, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = upstream.next_request().await;
    let want: Vec<_> = p.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_sent)
        .collect();
    let got: Vec<_> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(received)
        .collect();
    assert_eq!(got, want);
    // Token by token: the echo model reports what it received, counted as
    // Skein counts, which is the preview's total.
    let echo = json!({"thread": tid, "inputs": [user("and now?")], "instructions": "be brief"});
    let p = preview(&app, &k.a1, echo.clone()).await;
    assert_eq!(p.status, 200, "{}", p.body);
    let r = app.post_response(&k.a1, echo).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["usage"]["input_tokens"], p.body["total_tokens"]);
    let items = p.body["items"].as_array().unwrap().len();
    assert_eq!(
        r.body["output"][0]["content"][0]["text"],
        format!("Echo ({items} context messages): and now?")
    );
}

async fn the_preview_accounts_for_dropped_history_and_fails_as_the_call_fails(backend: Backend) {
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.limits.max_messages_per_thread = 6;
    })
    .await;
    let k = &app.keys;
    let tid = "thread_preview_2";
    for text in ["one", "two"] {
        let r = app
            .post_response(&k.a1, json!({"thread": tid, "inputs": [user(text)]}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let stored = app.list_messages(&k.a1, tid, "").await.body;
    let stored_tokens: u64 = stored["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            // The echo model's answers and the inputs, counted when written.
            skein_providers::tokens::count(m["content"].as_str().unwrap()) as u64
        })
        .sum();
    let p = preview(
        &app,
        &k.a1,
        json!({"thread": tid, "thread_context_mode": "off", "inputs": [user("three")]}),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        p.body["dropped"],
        json!({"messages": 4, "tokens": stored_tokens})
    );
    assert_eq!(p.body["items"].as_array().unwrap().len(), 1);
    let p = preview(
        &app,
        &k.a1,
        json!({"thread": tid, "thread_context_mode": "recent", "inputs": [user("three")],
               "previous_message_id": stored["data"][1]["id"]}),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        p.body["items"].as_array().unwrap().len(),
        3,
        "rewound to two"
    );
    // A new thread id previews as empty and is not created.
    let p = preview(
        &app,
        &k.a1,
        json!({"thread": "thread_preview_new", "inputs": [user("hi")]}),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        app.get_thread(&k.a1, "thread_preview_new").await.status,
        404
    );
    // The same errors as the real call.
    let full = json!({"thread": tid, "inputs": [user("a"), user("b")]});
    let p = preview(&app, &k.a1, full.clone()).await;
    assert_error(&p, 400, "THREAD_MESSAGE_LIMIT");
    assert_error(
        &app.post_response(&k.a1, full).await,
        400,
        "THREAD_MESSAGE_LIMIT",
    );
    assert_eq!(
        app.patch_thread(&k.a1, tid, json!({"state": "locked"}))
            .await
            .status,
        200
    );
    let p = preview(&app, &k.a1, json!({"thread": tid, "inputs": [user("x")]})).await;
    assert_error(&p, 423, "THREAD_LOCKED");
    let p = preview(&app, &k.a1, json!({"thread": tid, "inputs": []})).await;
    assert_eq!(p.status, 422, "{}", p.body);
    let p = preview(&app, &k.a2, json!({"thread": tid, "inputs": [user("x")]})).await;
    assert_eq!(p.status, 404, "another user's thread: {}", p.body);
    assert_eq!(
        app.list_messages(&k.a1, tid, "").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}
