//! Per-user thread settings (contract 9.4): `GET`/`PATCH
//! /v1/threads/{thread_id}/user-state` merge their fields, and
//! `model_override` picks the model of the thread's responses between the
//! request's and the default.

use super::common::*;
use serde_json::{json, Value};
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    settings_start_empty_and_patches_merge_with_null_clearing,
    model_override_sits_between_the_request_and_the_default,
    concurrent_patches_keep_each_others_keys,
);

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

async fn settings_start_empty_and_patches_merge_with_null_clearing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let r = app
        .post_response(&k.a1, json!({"thread": "prefs", "inputs": [user("hi")]}))
        .await;
    assert_eq!(r.status, 200);
    let empty = app.user_state(&k.a1, "prefs").await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(
        empty.body,
        json!({"thread_id": "prefs", "state": {"model_override": null, "reasoning_override": null,
                                               "disabled_tools": null, "tool_conflict_choices": null}})
    );
    let r = app
        .patch_user_state(
            &k.a1,
            "prefs",
            json!({"model_override": "gpt-4.1", "disabled_tools": ["web_search"],
                   "tool_conflict_choices": {"search": "web_search", "mail": "gmail"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Absent fields stay; null clears; a null choice removes its key.
    let r = app
        .patch_user_state(
            &k.a1,
            "prefs",
            json!({"disabled_tools": null, "reasoning_override": "high",
                   "tool_conflict_choices": {"mail": null}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let want = json!({"thread_id": "prefs", "state": {"model_override": "gpt-4.1", "reasoning_override": "high",
                                                      "disabled_tools": null,
                                                      "tool_conflict_choices": {"search": "web_search"}}});
    assert_eq!(r.body, want);
    assert_eq!(app.user_state(&k.a1, "prefs").await.body, want);
    // Refused, and nothing changes.
    for bad in [
        json!({"model_override": 7}),
        json!({"model_override": ""}),
        json!({"reasoning_override": "extreme"}),
        json!({"disabled_tools": "web_search"}),
        json!({"disabled_tools": [1]}),
        json!({"tool_conflict_choices": ["x"]}),
        json!({"tool_conflict_choices": {"k": 1}}),
    ] {
        let r = app.patch_user_state(&k.a1, "prefs", bad.clone()).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(app.user_state(&k.a1, "prefs").await.body, want, "{bad}");
    }
    // Someone else's thread, or none.
    assert_error(
        &app.user_state(&k.a2, "prefs").await,
        404,
        "THREAD_NOT_FOUND",
    );
    let r = app
        .patch_user_state(&k.a2, "prefs", json!({"model_override": "x"}))
        .await;
    assert_error(&r, 404, "THREAD_NOT_FOUND");
    assert_error(
        &app.user_state(&k.a1, "nothing").await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_eq!(app.user_state(&k.a1, "prefs").await.body, want);
}

async fn model_override_sits_between_the_request_and_the_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let first = app
        .post_response(&k.a1, json!({"thread": "m", "inputs": [user("one")]}))
        .await;
    assert_eq!(first.body["model"], "default", "{}", first.body);
    let r = app
        .patch_user_state(&k.a1, "m", json!({"model_override": "my-model"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let overridden = app
        .post_response(&k.a1, json!({"thread": "m", "inputs": [user("two")]}))
        .await;
    assert_eq!(overridden.body["model"], "my-model", "{}", overridden.body);
    let requested = app
        .post_response(
            &k.a1,
            json!({"thread": "m", "model": "asked-for", "inputs": [user("three")]}),
        )
        .await;
    assert_eq!(requested.body["model"], "asked-for", "{}", requested.body);
    let r = app
        .patch_user_state(&k.a1, "m", json!({"model_override": null}))
        .await;
    assert_eq!(r.status, 200);
    let back = app
        .post_response(&k.a1, json!({"thread": "m", "inputs": [user("four")]}))
        .await;
    assert_eq!(back.body["model"], "default", "{}", back.body);
}

async fn concurrent_patches_keep_each_others_keys(backend: Backend) {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let r = app
        .post_response(&k.a1, json!({"thread": "many", "inputs": [user("hi")]}))
        .await;
    assert_eq!(r.status, 200);
    let mut patches: FuturesUnordered<_> = (0..16)
        .map(|i| {
            app.patch_user_state(
                &k.a1,
                "many",
                json!({"tool_conflict_choices": {format!("k{i}"): format!("tool{i}")}}),
            )
        })
        .collect();
    while let Some(r) = within(REQUEST_TIMEOUT_SECS, patches.next()).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let state = app.user_state(&k.a1, "many").await.body;
    let choices = state["state"]["tool_conflict_choices"].as_object().unwrap();
    assert_eq!(choices.len(), 16, "{state}");
}
