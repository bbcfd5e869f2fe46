//! OpenAI's front door (contract 10) on the same turn engine: a response
//! in a conversation is the same turn as a Freddy response in a thread.

use super::common::*;
use super::responses::fake_upstream::Upstream;
use chrono::TimeDelta;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_domain::retention::Clock;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    a_conversation_turn_is_saved_whole_and_seen_by_both_dialects,
    a_failed_or_busy_turn_saves_nothing,
    lifecycle_caps_and_chains_hold_as_on_the_freddy_route,
    truncation_disabled_refuses_a_history_that_does_not_fit,
    a_streamed_turn_uses_openai_events_and_ends_with_the_saved_answer,
    stored_responses_are_retrieved_listed_and_deleted,
    input_tokens_counts_what_the_turn_sends_and_changes_nothing,
    a_token_in_several_organizations_names_one_with_the_openai_header,
    other_items_are_kept_as_given_hidden_from_freddy_and_sent_as_tool_calls,
    other_items_count_toward_the_limit_and_go_with_deletes_and_rewinds,
);

async fn count_raw(app: &TestApp, key: &str, body: Value) -> Resp {
    app.post("/v1/responses/input_tokens")
        .key(key)
        .json(body)
        .send()
        .await
}

async fn respond(app: &TestApp, key: &str, body: Value) -> Resp {
    app.post("/v1/responses").key(key).json(body).send().await
}

async fn conversation(app: &TestApp, key: &str, items: Value) -> String {
    let r = app
        .post("/v1/conversations")
        .key(key)
        .json(json!({ "items": items }))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn items(app: &TestApp, key: &str, conv: &str) -> Vec<Value> {
    let r = app
        .get(format!(
            "/v1/conversations/{conv}/items?order=asc&limit=100"
        ))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

fn text(item: &Value) -> &str {
    item["content"][0]["text"].as_str().unwrap()
}

fn answer(r: &Resp) -> &str {
    r.body["output"][0]["content"][0]["text"].as_str().unwrap()
}

fn openai_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(r.body["error"]["message"].is_string(), "{}", r.body);
}

async fn a_conversation_turn_is_saved_whole_and_seen_by_both_dialects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let conv = conversation(
        &app,
        &k.a1,
        json!([{"role": "user", "content": "my name is Ann"}]),
    )
    .await;
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": conv, "input": "what is my name?", "instructions": "be brief"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The instructions, the stored message and the input.
    assert_eq!(answer(&r), "Echo (3 context messages): what is my name?");
    for (field, want) in [
        ("object", json!("response")),
        ("status", json!("completed")),
        ("conversation", json!({"id": conv})),
        ("instructions", json!("be brief")),
        ("tools", json!([])),
        ("error", Value::Null),
    ] {
        assert_eq!(r.body[field], want, "{field}: {}", r.body);
    }
    assert!(r.body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let all = items(&app, &k.a1, &conv).await;
    let texts: Vec<&str> = all.iter().map(text).collect();
    assert_eq!(
        texts,
        [
            "my name is Ann",
            "what is my name?",
            "Echo (3 context messages): what is my name?"
        ]
    );
    assert_eq!(
        all[2]["id"], r.body["output"][0]["id"],
        "the output item is the stored message"
    );
    // The same turn through the Freddy dialect: its messages, its count.
    let messages = app.list_messages(&k.a1, &conv, "").await.body;
    assert_eq!(messages["data"][2]["id"], all[2]["id"]);
    assert_eq!(app.get_thread(&k.a1, &conv).await.body["message_count"], 3);
    // And a Freddy response in it is seen by the next OpenAI one.
    let f = app
        .post_response(
            &k.a1,
            json!({"thread": conv, "inputs": [{"role": "user", "content": "again"}]}),
        )
        .await;
    assert_eq!(f.status, 200, "{}", f.body);
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": {"id": conv}, "input": "and now?"}),
    )
    .await;
    assert_eq!(answer(&r), "Echo (6 context messages): and now?");
}

async fn a_failed_or_busy_turn_saves_nothing(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let conv = conversation(&app, &k.a1, json!([{"role": "user", "content": "hello"}])).await;
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": conv, "model": "fake-500", "input": "x"}),
    )
    .await;
    openai_error(&r, 502, "server_error");
    assert!(!r.body.to_string().contains("127.0.0.1"), "{}", r.body);
    assert_eq!(upstream.next_request().await["model"], "fake-500");
    assert_eq!(items(&app, &k.a1, &conv).await.len(), 1, "nothing saved");
    // One turn at a time per conversation: the second answers 409.
    let gated = respond(
        &app,
        &k.a1,
        json!({"conversation": conv, "model": "fake-gated", "input": "first"}),
    );
    let second = async {
        assert_eq!(upstream.next_request().await["model"], "fake-gated");
        let r = respond(
            &app,
            &k.a1,
            json!({"conversation": conv, "input": "second"}),
        )
        .await;
        upstream.open_gate();
        r
    };
    let (first, second) = tokio::join!(gated, second);
    openai_error(&second, 409, "thread_busy");
    assert!(second.headers.contains_key("retry-after"));
    assert_eq!(first.status, 200, "{}", first.body);
    let texts: Vec<String> = items(&app, &k.a1, &conv)
        .await
        .iter()
        .map(|i| text(i).to_string())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[1], "first");
}

async fn lifecycle_caps_and_chains_hold_as_on_the_freddy_route(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.clock = handle;
        s.limits.max_messages_per_thread = 4;
    })
    .await;
    let k = &app.keys;
    let conv = conversation(&app, &k.a1, json!([])).await;
    assert_eq!(
        app.patch_thread(&k.a1, &conv, json!({"state": "locked"}))
            .await
            .status,
        200
    );
    let r = respond(&app, &k.a1, json!({"conversation": conv, "input": "x"})).await;
    openai_error(&r, 423, "thread_locked");
    assert_eq!(
        app.patch_thread(&k.a1, &conv, json!({"state": "open"}))
            .await
            .status,
        200
    );
    for _ in 0..2 {
        let r = respond(&app, &k.a1, json!({"conversation": conv, "input": "x"})).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": conv, "input": "one too many"}),
    )
    .await;
    openai_error(&r, 400, "thread_message_limit");
    assert_eq!(items(&app, &k.a1, &conv).await.len(), 4);
    // A missing conversation is not created.
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": "conv_missing", "input": "x"}),
    )
    .await;
    openai_error(&r, 404, "conversation_not_found");
    assert_eq!(app.get_thread(&k.a1, "conv_missing").await.status, 404);
    // Chains: stored responses for 24 hours; `store: false` is not kept.
    let first = respond(&app, &k.a1, json!({"input": "one"})).await;
    let id = first.body["id"].as_str().unwrap();
    let next = respond(
        &app,
        &k.a1,
        json!({"previous_response_id": id, "input": "two"}),
    )
    .await;
    assert_eq!(answer(&next), "Echo (3 context messages): two");
    let unkept = respond(&app, &k.a1, json!({"input": "secret", "store": false})).await;
    assert_eq!(unkept.body["store"], false);
    let gone = unkept.body["id"].as_str().unwrap();
    let r = respond(
        &app,
        &k.a1,
        json!({"previous_response_id": gone, "input": "x"}),
    )
    .await;
    openai_error(&r, 404, "response_not_found");
    let r = respond(
        &app,
        &k.a1,
        json!({"previous_response_id": id, "conversation": conv, "input": "x"}),
    )
    .await;
    openai_error(&r, 400, "invalid_request");
    clock.advance(TimeDelta::hours(25));
    let r = respond(
        &app,
        &k.a1,
        json!({"previous_response_id": id, "input": "late"}),
    )
    .await;
    openai_error(&r, 404, "response_not_found");
    // What Skein does not implement is refused, never ignored.
    for (body, param) in [
        (
            json!({"input": "x", "tools": [{"type": "function", "name": "f"}]}),
            "tools",
        ),
        (
            json!({"input": "x", "tool_choice": "required"}),
            "tool_choice",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "json_object"}}}),
            "text.format",
        ),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_x"}]}),
            "item_reference",
        ),
    ] {
        let r = respond(&app, &k.a1, body).await;
        openai_error(&r, 400, "unsupported_feature");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(param),
            "{}",
            r.body
        );
    }
    let r = respond(&app, &k.a1, json!({"input": "x", "background": true})).await;
    openai_error(&r, 400, "invalid_request");
    let r = respond(
        &app,
        &k.a1,
        json!({"input": "x", "truncation": "sometimes"}),
    )
    .await;
    openai_error(&r, 400, "validation_error");
    assert_eq!(r.body["error"]["param"], "truncation");
}

async fn truncation_disabled_refuses_a_history_that_does_not_fit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    // About 12,000 tokens of history against the echo model's 8,192.
    let long = "lorem ipsum ".repeat(600);
    let history: Vec<Value> = (0..10)
        .map(|_| json!({"role": "user", "content": long}))
        .collect();
    let conv = conversation(&app, &k.a1, json!(history)).await;
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": conv, "input": "too much?", "truncation": "disabled"}),
    )
    .await;
    openai_error(&r, 400, "context_length_exceeded");
    assert_eq!(items(&app, &k.a1, &conv).await.len(), 10, "nothing saved");
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": conv, "input": "too much?"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["truncation"], "auto");
    let seen: u32 = answer(&r)
        .trim_start_matches("Echo (")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (2..11).contains(&seen),
        "the oldest history was cut: {seen}"
    );
}

async fn a_streamed_turn_uses_openai_events_and_ends_with_the_saved_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let conv = conversation(&app, &k.a1, json!([{"role": "user", "content": "hi"}])).await;
    let events = app
        .post("/v1/responses")
        .key(&k.a1)
        .json(json!({"conversation": conv, "input": "stream it", "stream": true}))
        .stream()
        .await;
    assert_eq!(events.status, 200);
    let frames = events.finish().await;
    let kinds: Vec<&str> = frames.iter().map(|(name, _)| name.as_str()).collect();
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.output_text.delta")
        .count();
    assert!(deltas >= 2, "{kinds:?}");
    let mut want = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    want.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    want.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(kinds, want);
    for (n, (name, data)) in frames.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], n, "{data}");
    }
    let streamed: String = frames
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let done = &frames.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], streamed.as_str());
    assert_eq!(done["id"], frames[0].1["response"]["id"]);
    let all = items(&app, &k.a1, &conv).await;
    assert_eq!(all.len(), 3);
    assert_eq!(text(&all[2]), streamed);
    assert_eq!(all[2]["id"], done["output"][0]["id"]);
    assert_eq!(
        frames[2].1["item"]["id"], all[2]["id"],
        "named before it was saved"
    );
}

async fn stored_responses_are_retrieved_listed_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let r = respond(
        &app,
        &k.a1,
        json!({"input": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                         {"role": "developer", "content": "not kept"}, {"role": "user", "content": "c"}],
               "metadata": {"k": "v"}, "instructions": "be brief", "temperature": 0.5,
               "top_p": 0.9, "max_output_tokens": 64, "truncation": "disabled"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let got = app
        .get(format!("/v1/responses/{id}"))
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    // Read back, it is what creating it answered, field by field.
    assert_eq!(got.body, r.body);
    assert_eq!(got.body["metadata"], json!({"k": "v"}));
    assert_eq!(got.body["temperature"], 0.5);
    assert!(got.body["completed_at"].as_i64().unwrap() >= got.body["created_at"].as_i64().unwrap());
    let listed = app
        .get(format!("/v1/responses/{id}/input_items?order=asc&limit=2"))
        .key(&k.a1)
        .send()
        .await;
    let texts: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(
        (texts, &listed.body["has_more"]),
        (vec!["a", "b"], &json!(true))
    );
    let last = listed.body["last_id"].as_str().unwrap();
    let rest = app
        .get(format!(
            "/v1/responses/{id}/input_items?order=asc&after={last}"
        ))
        .key(&k.a1)
        .send()
        .await;
    let texts: Vec<&str> = rest.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!((texts, &rest.body["has_more"]), (vec!["c"], &json!(false)));
    // Someone else's: not found; deleted: not found.
    let other = app
        .get(format!("/v1/responses/{id}"))
        .key(&k.a2)
        .send()
        .await;
    openai_error(&other, 404, "response_not_found");
    let del = app
        .request(
            actix_web::http::Method::DELETE,
            format!("/v1/responses/{id}"),
        )
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(
        del.body,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    let got = app
        .get(format!("/v1/responses/{id}"))
        .key(&k.a1)
        .send()
        .await;
    openai_error(&got, 404, "response_not_found");
    let again = app
        .request(
            actix_web::http::Method::DELETE,
            format!("/v1/responses/{id}"),
        )
        .key(&k.a1)
        .send()
        .await;
    openai_error(&again, 404, "response_not_found");
}

async fn input_tokens_counts_what_the_turn_sends_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let count = |body: Value| {
        let app = &app;
        async move {
            let r = count_raw(app, &k.a1, body).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.body["object"], "response.input_tokens");
            r.body["input_tokens"].as_u64().unwrap()
        }
    };
    let conv = conversation(
        &app,
        &k.a1,
        json!([{"role": "user", "content": "my name is Ann and I like long walks"},
               {"role": "assistant", "content": "Hello Ann"}]),
    )
    .await;
    let body =
        json!({"conversation": conv, "instructions": "be brief", "input": "what is my name?"});
    let counted = count(body.clone()).await;
    assert_eq!(
        items(&app, &k.a1, &conv).await.len(),
        2,
        "counting saves nothing"
    );
    let r = respond(&app, &k.a1, body).await;
    assert_eq!(r.body["usage"]["input_tokens"], counted, "{}", r.body);
    // A chain counts its history too.
    let id = r.body["id"].as_str().unwrap();
    let chained = json!({"previous_response_id": id, "input": "and now?"});
    let counted = count(chained.clone()).await;
    let r = respond(&app, &k.a1, chained).await;
    assert_eq!(r.body["usage"]["input_tokens"], counted, "{}", r.body);
    // Nothing is created, and what a turn refuses, counting refuses.
    let r = count_raw(
        &app,
        &k.a1,
        json!({"conversation": "conv_missing", "input": "x"}),
    )
    .await;
    openai_error(&r, 404, "conversation_not_found");
    let r = count_raw(
        &app,
        &k.a1,
        json!({"input": "x", "tools": [{"type": "function", "name": "f"}]}),
    )
    .await;
    openai_error(&r, 400, "unsupported_feature");
    let long = "lorem ipsum ".repeat(600);
    let big = conversation(
        &app,
        &k.a1,
        json!((0..10)
            .map(|_| json!({"role": "user", "content": long}))
            .collect::<Vec<_>>()),
    )
    .await;
    let r = count_raw(
        &app,
        &k.a1,
        json!({"conversation": big, "input": "x", "truncation": "disabled"}),
    )
    .await;
    openai_error(&r, 400, "context_length_exceeded");
    // Counting takes no lease: a turn right after it runs.
    let r = respond(&app, &k.a1, json!({"conversation": big, "input": "x"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(count(json!({"conversation": big, "input": "x"})).await <= 8192);
    // A conversation the turn refuses (locked) is refused by counting too.
    let locked = app
        .patch_thread(&k.a1, &conv, json!({"state": "locked"}))
        .await;
    assert_eq!(locked.status, 200, "{}", locked.body);
    let body = json!({"conversation": conv, "input": "x"});
    let turn = respond(&app, &k.a1, body.clone()).await;
    let counted = count_raw(&app, &k.a1, body).await;
    assert_eq!(turn.status, 423, "{}", turn.body);
    assert_eq!(counted.status, turn.status, "{}", counted.body);
    assert_eq!(counted.body["error"]["code"], turn.body["error"]["code"]);
}

async fn a_token_in_several_organizations_names_one_with_the_openai_header(backend: Backend) {
    use skein_domain::{clock, OrganizationId, UserId};
    let app = TestApp::with(backend, enable_tokens).await;
    {
        let mut conn = app.store.conn().unwrap();
        let (org_b, usr_1) = (
            OrganizationId::parse(ORG_B).unwrap(),
            UserId::parse("usr_1").unwrap(),
        );
        skein_persistence::tenancy::ensure_membership(&mut conn, &org_b, &usr_1, clock::now())
            .unwrap();
    }
    let token = token_for("usr_1", 600);
    let call = |uri: &str, org: Option<&str>, body: Value| {
        let mut req = app.post(uri).bearer(&token).json(body);
        if let Some(org) = org {
            req = req.header("OpenAI-Organization", org);
        }
        req.send()
    };
    let r = call("/v1/conversations", None, json!({})).await;
    openai_error(&r, 400, "ambiguous_organization");
    let r = call(
        "/v1/conversations",
        Some(ORG_B),
        json!({"items": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let conv = r.body["id"].as_str().unwrap().to_string();
    let thread = app
        .get(format!("/v1/threads/{conv}?organization_id={ORG_B}"))
        .bearer(&token)
        .send()
        .await;
    assert_eq!(thread.body["organization_id"], ORG_B, "{}", thread.body);
    let r = call("/v1/responses", None, json!({"input": "x"})).await;
    openai_error(&r, 400, "ambiguous_organization");
    let r = call("/v1/responses", Some(ORG_B), json!({"input": "x"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let got = app
        .get(format!("/v1/responses/{id}"))
        .bearer(&token)
        .header("OpenAI-Organization", ORG_B)
        .send()
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    // The conversation is found in the organization that holds it.
    let r = call(
        "/v1/responses",
        None,
        json!({"conversation": conv, "input": "y"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call("/v1/conversations", Some("org_nobody"), json!({})).await;
    openai_error(&r, 403, "organization_access_denied");
    // Streaming a stored response is not offered.
    let r = app
        .get(format!("/v1/responses/{id}?stream=true"))
        .bearer(&token)
        .header("OpenAI-Organization", ORG_B)
        .send()
        .await;
    openai_error(&r, 400, "unsupported_feature");
}

/// A function call, its output and a reasoning item, as an agent stores them.
fn tool_items() -> Value {
    json!([
        {"role": "user", "content": "weather in Oslo?"},
        {"type": "function_call", "id": "fc_client", "call_id": "call_1", "name": "get_weather",
         "arguments": "{\"city\":\"Oslo\"}", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thinking"}],
         "encrypted_content": "opaque"},
    ])
}

async fn other_items_are_kept_as_given_hidden_from_freddy_and_sent_as_tool_calls(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let conv = conversation(&app, &k.a1, tool_items()).await;
    let all = items(&app, &k.a1, &conv).await;
    assert_eq!(all.len(), 4, "{all:?}");
    // Kept as given, in order, with Skein's ids.
    let given = tool_items();
    for (n, item) in all.iter().enumerate().skip(1) {
        let id = item["id"].as_str().unwrap();
        assert!(id.starts_with("msg_"), "{item}");
        let mut want = given[n].clone();
        want["id"] = json!(id);
        if n == 2 {
            // A call's output without a status is stored completed.
            want["status"] = json!("completed");
        }
        assert_eq!(item, &want);
        let one = app
            .get(format!("/v1/conversations/{conv}/items/{id}"))
            .key(&k.a1)
            .send()
            .await;
        assert_eq!(one.body, want);
    }
    // The Freddy dialect sees the one message, and none of the others.
    let messages = app.list_messages(&k.a1, &conv, "").await.body;
    assert_eq!(messages["data"].as_array().unwrap().len(), 1, "{messages}");
    assert_eq!(messages["data"][0]["content"], "weather in Oslo?");
    assert_eq!(app.get_thread(&k.a1, &conv).await.body["message_count"], 1);
    let call = all[1]["id"].as_str().unwrap();
    let r = app
        .patch_message(&k.a1, &conv, call, json!({"content": "x"}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(app.delete_message(&k.a1, &conv, call).await.status, 404);
    let r = app
        .list_messages(&k.a1, &conv, &format!("after={call}"))
        .await;
    assert_eq!(
        r.status, 400,
        "an item is no cursor of the messages: {}",
        r.body
    );
    // The model gets the call and its output as Chat Completions' tool
    // call and tool message; the reasoning item is not sent.
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": conv, "model": "fake-ok", "input": "and tomorrow?"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = upstream.next_request().await;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "content": "sunny, 21C", "tool_call_id": "call_1"},
            {"role": "user", "content": "and tomorrow?"},
        ])
    );
    assert_eq!(items(&app, &k.a1, &conv).await.len(), 6);
    assert_eq!(app.get_thread(&k.a1, &conv).await.body["message_count"], 3);
    // Items given as a response's input are saved with its turn and listed
    // as its input items; a call with no output, or an output of no call,
    // is not sent.
    let input = json!([
        {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "noon"}]},
        {"type": "function_call", "call_id": "call_3", "name": "never_answered", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_x", "output": "answers no call"},
        {"role": "user", "content": "thanks"},
    ]);
    let r = respond(
        &app,
        &k.a1,
        json!({"conversation": conv, "model": "fake-ok", "input": input}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = upstream.next_request().await;
    let sent = sent["messages"].as_array().unwrap();
    assert_eq!(sent.len(), 8, "{sent:?}");
    assert_eq!(
        sent[4],
        json!({"role": "assistant", "content": "fake answer"})
    );
    assert_eq!(sent[5]["tool_calls"].as_array().unwrap().len(), 1);
    assert_eq!(sent[5]["tool_calls"][0]["id"], "call_2");
    assert_eq!(
        sent[6],
        json!({"role": "tool", "tool_call_id": "call_2", "content": "noon"}),
        "text parts are sent as their text"
    );
    assert_eq!(sent[7], json!({"role": "user", "content": "thanks"}));
    let all = items(&app, &k.a1, &conv).await;
    assert_eq!(all.len(), 12);
    assert_eq!(all[8]["name"], "never_answered");
    assert_eq!(all[9]["output"], "answers no call");
    let id = r.body["id"].as_str().unwrap();
    let listed = app
        .get(format!("/v1/responses/{id}/input_items?order=asc"))
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["data"][1]["output"], input[1]["output"]);
    assert_eq!(listed.body["data"][4]["content"][0]["text"], "thanks");
    // The same history through a chain.
    let r = respond(
        &app,
        &k.a1,
        json!({"previous_response_id": id, "model": "fake-ok", "input": "bye"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = upstream.next_request().await;
    assert_eq!(sent["messages"][0]["tool_calls"][0]["id"], "call_2");
    assert_eq!(sent["messages"][1]["tool_call_id"], "call_2");
    // Items that cannot be kept are refused with the item's place, and
    // nothing is stored.
    for (item, param) in [
        (
            json!({"type": "function_call", "call_id": "c", "arguments": "{}"}),
            "name",
        ),
        (
            json!({"type": "function_call_output", "call_id": "c", "output": 5}),
            "output",
        ),
        (json!({"type": "Function Call"}), "type"),
        (json!(7), "items"),
    ] {
        let r = app
            .post(format!("/v1/conversations/{conv}/items"))
            .key(&k.a1)
            .json(json!({"items": [{"role": "user", "content": "ok"}, item]}))
            .send()
            .await;
        openai_error(&r, 400, "validation_error");
        assert!(
            r.body["error"]["param"].as_str().unwrap().contains(param),
            "{}",
            r.body
        );
    }
    assert_eq!(items(&app, &k.a1, &conv).await.len(), 12);
}

async fn other_items_count_toward_the_limit_and_go_with_deletes_and_rewinds(backend: Backend) {
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.limits.max_messages_per_thread = 6;
    })
    .await;
    let k = &app.keys;
    let conv = conversation(&app, &k.a1, tool_items()).await;
    let add = |items: Value| {
        app.post(format!("/v1/conversations/{conv}/items"))
            .key(&k.a1)
            .json(json!({ "items": items }))
            .send()
    };
    let call = json!({"type": "function_call", "call_id": "c9", "name": "f", "arguments": "{}"});
    // 4 stored: 2 more fit, a third does not, whatever its type.
    assert_eq!(add(json!([call, call])).await.status, 200);
    openai_error(&add(json!([call])).await, 400, "thread_message_limit");
    let r = app
        .post_message(&k.a1, &conv, json!({"role": "user", "content": "x"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Deleting an item frees its place; the message count never moved.
    let all = items(&app, &k.a1, &conv).await;
    let last = all[5]["id"].as_str().unwrap();
    let r = app
        .request(
            actix_web::http::Method::DELETE,
            format!("/v1/conversations/{conv}/items/{last}"),
        )
        .key(&k.a1)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get_thread(&k.a1, &conv).await.body["message_count"], 1);
    assert_eq!(add(json!([call])).await.status, 200);
    openai_error(&add(json!([call])).await, 400, "thread_message_limit");
    // A Freddy rewind to the first message removes the items after it:
    // the turn's two messages then fit with room for two more entries.
    let first = all[0]["id"].as_str().unwrap();
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": conv, "previous_message_id": first,
                   "inputs": [{"role": "user", "content": "again"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(items(&app, &k.a1, &conv).await.len(), 3);
    assert_eq!(app.get_thread(&k.a1, &conv).await.body["message_count"], 3);
    assert_eq!(add(json!([call, call, call])).await.status, 200);
    openai_error(&add(json!([call])).await, 400, "thread_message_limit");
}
