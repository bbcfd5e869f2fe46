//! Turns on a thread and without one: history, validation, the thread's
//! lifecycle, the context window, upstream failures, naming and assistants.

use super::fake_upstream::Upstream;
use super::{output_text, routing, user};
use crate::common::*;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    two_turns_inject_history_and_create_the_thread_on_first_use,
    thread_less_responses_store_nothing,
    response_requests_are_validated_and_change_nothing,
    responses_respect_the_lifecycle_and_apply_thread_state,
    history_is_cut_to_the_context_window,
    provider_failures_save_nothing_and_release_the_lease,
    a_foreign_thread_id_is_not_found,
    generate_name_titles_the_thread,
    the_bound_assistant_applies_unless_the_request_overrides_it,
    a_turn_that_cannot_fit_under_the_cap_is_refused_before_the_model_runs,
);

async fn two_turns_inject_history_and_create_the_thread_on_first_use(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let first = app
        .post_response(
            &k.a1,
            json!({
                "model": "gpt-4.1",
                "thread": {"id": "support_user123", "metadata": {"channel": "web"}},
                "inputs": [user("My name is Ada.")]
            }),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let r = &first.body;
    assert!(r["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(r["object"], "response");
    assert!(r["created_at"].is_i64());
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "gpt-4.1");
    assert_eq!(r["thread_id"], "support_user123");
    assert!(r["previous_response_id"].is_null() && r["error"].is_null());
    assert_eq!(r["output"][0]["type"], "message");
    assert_eq!(r["output"][0]["role"], "assistant");
    assert_eq!(r["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(output_text(r), "Echo (1 context messages): My name is Ada.");
    let usage = &r["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );

    let t = app.get_thread(&k.a1, "support_user123").await.body;
    assert_eq!(t["metadata"], json!({"channel": "web"}));
    assert_eq!(t["message_count"], 2);
    assert_eq!(t["last_model_used"], "gpt-4.1");
    assert_eq!(t["status"], "inactive");

    // The second answer proves the first turn was in the context.
    let second = app
        .post_response(
            &k.a1,
            json!({
                "model": "gpt-4.1", "threadId": "support_user123",
                "inputs": [{"role": "system", "content": "Be brief."}, user("What is my name?")]
            }),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        output_text(&second.body),
        "Echo (4 context messages): What is my name?"
    );
    let msgs = app.list_messages(&k.a1, "support_user123", "").await;
    let data = msgs.body["data"].as_array().unwrap();
    let roles: Vec<_> = data.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user", "assistant"],
        "system inputs are not stored"
    );
    assert_eq!(
        data[1]["content"],
        "Echo (1 context messages): My name is Ada."
    );
    assert_eq!(data[1]["model"], "gpt-4.1");
    assert_eq!(data[1]["response_id"], first.body["id"]);
    assert_eq!(data[3]["id"], second.body["output"][0]["id"]);
    assert_eq!(
        app.get_thread(&k.a1, "support_user123").await.body["message_count"],
        4
    );
    // The same client-chosen id in another organization is another thread.
    let other = app
        .post_response(
            &k.b1,
            json!({"thread_id": "support_user123", "inputs": [user("hi")]}),
        )
        .await;
    assert_eq!(output_text(&other.body), "Echo (1 context messages): hi");
}

async fn thread_less_responses_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let modes = app
        .get("/v1/model/response/output-modes")
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(modes.body["success"], true);
    let defaults: Vec<_> = modes.body["output_modes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["is_default"] == true)
        .map(|m| m["mode"].clone())
        .collect();
    assert_eq!(defaults, [json!("text")]);
    let levels = app
        .get("/v1/model/response/reasoning-levels")
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(levels.body["reasoning_levels"].as_array().unwrap().len(), 3);
    assert_error(
        &app.get("/v1/model/response/output-modes").send().await,
        401,
        "AUTHENTICATION_REQUIRED",
    );
    let r = app
        .post_response(
            &k.a1,
            json!({
                "inputs": [{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}],
                "metadata": {"trace": "t1"}
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["thread_id"].is_null());
    assert_eq!(r.body["metadata"], json!({"trace": "t1"}));
    assert_eq!(output_text(&r.body), "Echo (1 context messages): Hello");
    let list = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(list.body["total"], 0);
}

async fn response_requests_are_validated_and_change_nothing(backend: Backend) {
    let cfg: skein_providers::RoutingConfig = serde_json::from_value(json!({
        "providers": {"echo": {"kind": "echo"}},
        "models": [{"pattern": "gpt-*", "provider": "echo"}]
    }))
    .unwrap();
    let strict = skein_providers::Router::from_config(&cfg).unwrap();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = strict).await;
    let k = &app.keys;
    let post = |body: Value| app.post_response(&k.a1, body);
    let r = post(json!({"model": "gpt-4", "inputs": []})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = post(json!({"model": "gpt-4", "inputs": [{"role": "tool", "content": "x"}]})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "inputs", 0, "role"])
    );
    let r = post(json!({"model": "gpt-4", "inputs": [{"role": "user"}]})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = post(json!({"model": "gpt-4", "thread": "bad id!", "inputs": [user("x")]})).await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = post(json!({"model": "gpt-4", "thread": "t1", "previous_response_id": "resp_x", "inputs": [user("x")]})).await;
    assert_error(&r, 400, "INVALID_REQUEST");
    let r = post(json!({"model": "claude-3", "thread": "t1", "inputs": [user("x")]})).await;
    assert_error(&r, 400, "MODEL_NOT_FOUND");
    let r = post(json!({"model": "gpt-4", "thread": "t1", "organization_id": "org_b", "inputs": [user("x")]})).await;
    assert_error(&r, 403, "ORGANIZATION_ACCESS_DENIED");
    // Sampling outside its range: temperature 0-2, top_p 0-1.
    for (field, value) in [
        ("temperature", -5.0),
        ("temperature", 2.5),
        ("top_p", 1.5),
        ("top_p", -0.1),
    ] {
        let mut body = json!({"model": "gpt-4", "thread": "t1", "inputs": [user("x")]});
        body[field] = json!(value);
        let r = post(body).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(
            r.body["detail"][0]["loc"],
            json!(["body", field]),
            "{}",
            r.body
        );
    }
    let list = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(
        list.body["total"], 0,
        "no thread was created by a rejected request"
    );
}

async fn responses_respect_the_lifecycle_and_apply_thread_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let post = |body: Value| app.post_response(&k.a1, body);
    let r =
        post(json!({"thread": "life", "threadState": "locked", "inputs": [user("last words")]}))
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = app.get_thread(&k.a1, "life").await.body;
    assert_eq!(t["state"], "locked");
    assert_eq!(t["message_count"], 2, "the turn was saved before locking");
    assert_error(
        &post(json!({"thread": "life", "inputs": [user("more")]})).await,
        423,
        "THREAD_LOCKED",
    );
    app.patch_thread(&k.a1, "life", json!({"state": "archived"}))
        .await;
    assert_error(
        &post(json!({"thread": "life", "inputs": [user("more")]})).await,
        423,
        "THREAD_ARCHIVED",
    );
    let t = app.get_thread(&k.a1, "life").await.body;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(2), Some("inactive"))
    );
    // An impossible thread_state fails the whole turn.
    post(json!({"thread": "life2", "inputs": [user("a")]})).await;
    app.patch_thread(&k.a1, "life2", json!({"state": "open"}))
        .await;
    let r =
        post(json!({"thread": "life2", "thread_state": "archived", "inputs": [user("b")]})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        app.get_thread(&k.a1, "life2").await.body["state"],
        "archived"
    );
}

async fn history_is_cut_to_the_context_window(backend: Backend) {
    // Each stored turn here costs 1 token + 4 of framing; the new input too.
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.router = routing("http://127.0.0.1:9/v1", 40);
    })
    .await;
    let k = &app.keys;
    app.post_response(&k.a1, json!({"thread": "window", "inputs": [user("x")]}))
        .await;
    for i in 0..10 {
        let r = app
            .post_message(
                &k.a1,
                "window",
                json!({"role": "user", "content": format!("{i}")}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // Window 40 = new input (5) + 7 stored turns of 5 tokens: the 7 newest.
    let r = app
        .post_response(&k.a1, json!({"thread": "window", "inputs": [user("q")]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(output_text(&r.body), "Echo (8 context messages): q");
    let long = "word ".repeat(60);
    let r = app
        .post_response(&k.a1, json!({"thread": "window", "inputs": [user(&long)]}))
        .await;
    assert_error(&r, 400, "CONTEXT_LENGTH_EXCEEDED");
    let t = app.get_thread(&k.a1, "window").await.body;
    assert_eq!(
        (t["status"].as_str(), t["message_count"].as_i64()),
        (Some("inactive"), Some(14))
    );
}

async fn provider_failures_save_nothing_and_release_the_lease(backend: Backend) {
    let upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let post = |body: Value| app.post_response(&k.a1, body);
    let ok = post(json!({"model": "fake-ok", "thread": "up", "inputs": [user("first")]})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(output_text(&ok.body), "fake answer");
    let before = app.get_thread(&k.a1, "up").await.body;
    for (model, status, code) in [
        ("fake-500", 502, "UPSTREAM_ERROR"),
        ("hang", 504, "UPSTREAM_TIMEOUT"),
        ("fake-broken", 502, "UPSTREAM_ERROR"),
    ] {
        let r = post(json!({"model": model, "thread": "up", "inputs": [user("lost")]})).await;
        assert_error(&r, status, code);
        let after = app.get_thread(&k.a1, "up").await.body;
        assert_eq!(after, before, "{model}: the thread is exactly as before");
        // The same failure over a stream ends with response.error.
        let s =
            post(json!({"model": model, "thread": "up", "stream": true, "inputs": [user("lost")]}))
                .await;
        let events = sse_events(&s.raw);
        let (name, err) = &events[events.len() - 2];
        assert_eq!(name, "response.error");
        assert_eq!(
            (err["status"].as_str(), err["code"].as_str()),
            (Some("failed"), Some(code))
        );
        assert_eq!(app.get_thread(&k.a1, "up").await.body, before);
    }
    let msgs = app.list_messages(&k.a1, "up", "").await;
    assert_eq!(msgs.body["data"].as_array().unwrap().len(), 2);
}

async fn a_foreign_thread_id_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let mine = app
        .post_response(
            &k.a1,
            json!({"thread": "private", "inputs": [user("mine")]}),
        )
        .await;
    assert_eq!(mine.status, 200);
    let before = app.get_thread(&k.a1, "private").await.body;
    let theirs = app
        .post_response(
            &k.a2,
            json!({"thread": "private", "inputs": [user("intrude")]}),
        )
        .await;
    assert_error(&theirs, 404, "THREAD_NOT_FOUND");
    assert_eq!(app.get_thread(&k.a1, "private").await.body, before);
}

async fn generate_name_titles_the_thread(backend: Backend) {
    let upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    app.post_response(
        &k.a1,
        json!({"thread": "named", "inputs": [user("how do I reset my password, please?")]}),
    )
    .await;
    let r = app
        .post("/v1/threads/named/generateName?stream=false")
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "thread_id": "named", "name": "How do I reset my", "title": "How do I reset my", "message": "Thread name generated"})
    );
    assert_eq!(
        app.get_thread(&k.a1, "named").await.body["title"],
        "How do I reset my"
    );
    let r = app
        .generate_name(
            &k.a1,
            "named",
            Some(json!({"messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Billing"}]})),
        )
        .await;
    assert_eq!(r.body["title"], "Billing conversation");
    let bad = app
        .generate_name(
            &k.a1,
            "named",
            Some(json!({"messages": [{"role": "system", "content": "x"}]})),
        )
        .await;
    assert_error(&bad, 422, "VALIDATION_ERROR");
    // With a real model, the thread's last model is asked.
    app.post_response(
        &k.a1,
        json!({"model": "fake-ok", "thread": "real", "inputs": [user("my password is lost")]}),
    )
    .await;
    let r = app.generate_name(&k.a1, "real", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["title"], "Password Reset Help");
    // Nothing to name from, or not the caller's.
    app.create_thread(&k.a1, json!({})).await;
    let empty = app.list_threads(&k.a1, "limit=1").await;
    let empty_id = empty.body["data"][0]["id"].as_str().unwrap();
    assert_error(
        &app.generate_name(&k.a1, empty_id, None).await,
        400,
        "INVALID_REQUEST",
    );
    assert_error(
        &app.generate_name(&k.a2, "named", None).await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_eq!(
        app.get_thread(&k.a1, "named").await.body["title"],
        "Billing conversation"
    );
}

async fn the_bound_assistant_applies_unless_the_request_overrides_it(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let asst_id = app
        .create_assistant(
            &k.a1,
            json!({"name": "Formal", "instructions": "Always be formal.", "model": "fake-ok", "temperature": 0.3}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Unknown or foreign assistants are refused before anything is written.
    let theirs = app.post_assistant(&k.a2, json!({"name": "Theirs"})).await;
    for bad in ["asst_nope", theirs.body["id"].as_str().unwrap()] {
        let r = app
            .post_response(
                &k.a1,
                json!({"thread": "never", "assistant_id": bad, "inputs": [user("x")]}),
            )
            .await;
        assert_error(&r, 404, "ASSISTANT_NOT_FOUND");
    }
    assert_error(
        &app.get_thread(&k.a1, "never").await,
        404,
        "THREAD_NOT_FOUND",
    );

    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "formal", "assistantId": asst_id, "inputs": [user("hello")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["model"], "fake-ok", "the assistant's model");
    let sent = upstream.next_request().await;
    assert_eq!(sent["model"], "fake-ok");
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Always be formal."})
    );
    assert_eq!(
        app.get_thread(&k.a1, "formal").await.body["assistant_id"],
        asst_id.as_str()
    );

    // Later requests on the thread use the bound assistant without naming it;
    // request values win.
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "formal", "instructions": "Be casual.", "temperature": 1.0, "inputs": [user("again")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = upstream.next_request().await;
    assert_eq!(sent["temperature"], 1.0);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be casual."})
    );
    assert_eq!(
        sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "system")
            .count(),
        1
    );
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "formal", "model": "echo-it", "inputs": [user("third")]}),
        )
        .await;
    assert_eq!(r.body["model"], "echo-it");
    assert_eq!(
        output_text(&r.body),
        "Echo (6 context messages): third",
        "instructions + 4 stored + input"
    );

    // The binding is locked once the thread has messages.
    let other = app.post_assistant(&k.a1, json!({"name": "Other"})).await;
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "formal", "assistant_id": other.body["id"], "inputs": [user("switch")]}),
        )
        .await;
    assert_error(&r, 400, "ASSISTANT_BINDING_LOCKED");
    let t = app.get_thread(&k.a1, "formal").await.body;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(6), Some("inactive"))
    );
}

async fn a_turn_that_cannot_fit_under_the_cap_is_refused_before_the_model_runs(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.router = upstream.router();
        s.limits.max_messages_per_thread = 3;
    })
    .await;
    let k = &app.keys;
    let ok = app
        .post_response(
            &k.a1,
            json!({"model": "fake-ok", "thread": "capped", "inputs": [user("one")]}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(upstream.next_request().await["model"], "fake-ok");
    let over = app
        .post_response(
            &k.a1,
            json!({"model": "fake-ok", "thread": "capped", "inputs": [user("two")]}),
        )
        .await;
    assert_error(&over, 400, "THREAD_MESSAGE_LIMIT");
    assert!(upstream.nothing_received(), "the model was not called");
    let t = app.get_thread(&k.a1, "capped").await.body;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(2), Some("inactive"))
    );
}
