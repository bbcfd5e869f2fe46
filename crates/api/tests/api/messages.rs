//! The Messages API of a thread: append, list, update, delete, and what they
//! do to the thread.

use super::common::*;
use serde_json::json;
use skein_api::AppState;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    messages_append_list_update_delete_keep_the_thread_exact,
    message_writes_obey_the_lifecycle_and_the_cap,
    messages_are_invisible_to_others_and_validated,
);

async fn messages_append_list_update_delete_keep_the_thread_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app.create_thread(&k.a1, json!({})).await;
    let tid = t["id"].as_str().unwrap();
    let first = app
        .post_message(
            &k.a1,
            tid,
            json!({"role": "user", "content": "Hello there", "metadata": {"src": "import"}}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let m = &first.body;
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(m["object"], "thread.message");
    assert_eq!(m["thread_id"], tid);
    assert_eq!(m["role"], "user");
    assert_eq!(m["content"], "Hello there");
    assert_eq!(m["metadata"], json!({"src": "import"}));
    assert_eq!(m["attachments"], json!([]));
    assert!(m["response_id"].is_null() && m["model"].is_null());
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    // Blocks and texts are accepted and joined.
    let blocks = app
        .post_message(
            &k.a1,
            tid,
            json!({"role": "assistant", "content": [{"type": "output_text", "text": "Hi!"}, {"type": "output_text", "text": "How can I help?"}]}),
        )
        .await;
    assert_eq!(blocks.status, 201);
    assert_eq!(blocks.body["content"], "Hi!\nHow can I help?");
    let texts = app
        .post_message(
            &k.a1,
            tid,
            json!({"role": "user", "texts": [{"text": "third"}]}),
        )
        .await;
    assert_eq!(texts.body["content"], "third");

    let thread = app.get_thread(&k.a1, tid).await;
    assert_eq!(thread.body["message_count"], 3);
    assert_eq!(thread.body["last_message_at"], texts.body["created_at"]);

    let page = app.list_messages(&k.a1, tid, "limit=2").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body["object"], "list");
    let contents: Vec<_> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["Hello there", "Hi!\nHow can I help?"]);
    assert_eq!(page.body["has_more"], true);
    let after = page.body["last_id"].as_str().unwrap();
    let rest = app
        .list_messages(&k.a1, tid, &format!("limit=2&after={after}"))
        .await;
    assert_eq!(rest.body["data"][0]["content"], "third");
    assert_eq!(rest.body["has_more"], false);
    let desc = app
        .list_messages(&k.a1, tid, "order=desc&output_mode=text")
        .await;
    assert_eq!(desc.body["data"][0]["content"], "third");

    let mid = m["id"].as_str().unwrap();
    let patched = app
        .patch_message(
            &k.a1,
            tid,
            mid,
            json!({"content": "Hello again", "metadata": {"src": null, "edited": true}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["content"], "Hello again");
    assert_eq!(patched.body["metadata"], json!({"edited": true}));
    assert!(patched.body["updated_at"].as_str().unwrap() >= m["updated_at"].as_str().unwrap());

    let newest = texts.body["id"].as_str().unwrap();
    let del = app.delete_message(&k.a1, tid, newest).await;
    assert_eq!(del.status, 200);
    assert_eq!(
        del.body,
        json!({"id": newest, "deleted": true, "object": "thread.message.deleted"})
    );
    let again = app.delete_message(&k.a1, tid, newest).await;
    assert_error(&again, 404, "MESSAGE_NOT_FOUND");
    let thread = app.get_thread(&k.a1, tid).await;
    assert_eq!(thread.body["message_count"], 2);
    assert_eq!(thread.body["last_message_at"], blocks.body["created_at"]);
    let missing = app
        .patch_message(&k.a1, tid, "msg_nope", json!({"content": "x"}))
        .await;
    assert_error(&missing, 404, "MESSAGE_NOT_FOUND");
    // Errors name what was missing, and in which list.
    assert_eq!(
        missing.body["error"]["system_message"],
        "message 'msg_nope' not found"
    );
    let bad_cursor = app.list_messages(&k.a1, tid, "after=msg_nope").await;
    assert_error(&bad_cursor, 400, "INVALID_REQUEST");
    assert_eq!(
        bad_cursor.body["error"]["system_message"],
        "cursor 'msg_nope' does not name one of your messages"
    );
    let gone = app.list_messages(&k.a1, "thread_gone", "").await;
    assert_eq!(
        gone.body["error"]["system_message"],
        "thread 'thread_gone' not found"
    );
}

async fn message_writes_obey_the_lifecycle_and_the_cap(backend: Backend) {
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.limits.max_messages_per_thread = 3;
    })
    .await;
    let k = &app.keys;
    let t = app.create_thread(&k.a1, json!({})).await;
    let tid = t["id"].as_str().unwrap();
    let m = app
        .post_message(&k.a1, tid, json!({"role": "user", "content": "one"}))
        .await;
    let mid = m.body["id"].as_str().unwrap().to_string();
    for (state, code) in [("locked", "THREAD_LOCKED"), ("archived", "THREAD_ARCHIVED")] {
        let r = app.patch_thread(&k.a1, tid, json!({"state": state})).await;
        assert_eq!(r.status, 200);
        assert_error(
            &app.post_message(&k.a1, tid, json!({"role": "user", "content": "x"}))
                .await,
            423,
            code,
        );
        assert_error(
            &app.patch_message(&k.a1, tid, &mid, json!({"content": "x"}))
                .await,
            423,
            code,
        );
        assert_error(&app.delete_message(&k.a1, tid, &mid).await, 423, code);
        // Reading still works.
        let list = app.list_messages(&k.a1, tid, "").await;
        assert_eq!(list.body["data"][0]["content"], "one");
    }
    let t2 = app.create_thread(&k.a1, json!({})).await;
    let tid2 = t2["id"].as_str().unwrap();
    for i in 0..3 {
        let r = app
            .post_message(
                &k.a1,
                tid2,
                json!({"role": "user", "content": format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let over = app
        .post_message(&k.a1, tid2, json!({"role": "user", "content": "too many"}))
        .await;
    assert_error(&over, 400, "THREAD_MESSAGE_LIMIT");
    let t2 = app.get_thread(&k.a1, tid2).await;
    assert_eq!(t2.body["message_count"], 3);
    // With messages, the assistant binding is locked.
    insert_assistant(&app.store, "asst_late", ORG_A);
    let r = app
        .patch_thread(&k.a1, tid2, json!({"assistant_id": "asst_late"}))
        .await;
    assert_error(&r, 400, "ASSISTANT_BINDING_LOCKED");
}

async fn messages_are_invisible_to_others_and_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let t = app.create_thread(&k.a1, json!({})).await;
    let tid = t["id"].as_str().unwrap();
    let m = app
        .post_message(&k.a1, tid, json!({"role": "user", "content": "secret"}))
        .await;
    let mid = m.body["id"].as_str().unwrap();
    for other in [&k.a2, &k.b1] {
        assert_error(
            &app.list_messages(other, tid, "").await,
            404,
            "THREAD_NOT_FOUND",
        );
        assert_error(
            &app.post_message(other, tid, json!({"role": "user", "content": "x"}))
                .await,
            404,
            "THREAD_NOT_FOUND",
        );
        assert_error(
            &app.patch_message(other, tid, mid, json!({"content": "x"}))
                .await,
            404,
            "THREAD_NOT_FOUND",
        );
        assert_error(
            &app.delete_message(other, tid, mid).await,
            404,
            "THREAD_NOT_FOUND",
        );
    }
    for (body, loc) in [
        (json!({"role": "system", "content": "x"}), "role"),
        (json!({"role": "developer", "content": "x"}), "role"),
        (json!({"role": "user"}), "content"),
        (json!({"role": "user", "content": ""}), "content"),
        (
            json!({"role": "user", "content": [{"type": "image", "url": "x"}]}),
            "content",
        ),
    ] {
        let r = app.post_message(&k.a1, tid, body).await;
        assert_error(&r, 422, "VALIDATION_ERROR");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", loc]));
    }
    let r = app
        .post_message(&k.a1, tid, json!({"content": "no role"}))
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    for q in ["limit=0", "order=up", "output_mode=fancy"] {
        assert_error(
            &app.list_messages(&k.a1, tid, q).await,
            422,
            "VALIDATION_ERROR",
        );
    }
    let thread = app.get_thread(&k.a1, tid).await;
    assert_eq!(
        thread.body["message_count"], 1,
        "rejected writes changed nothing"
    );
    // A deleted thread's messages are gone at once.
    app.delete_thread(&k.a1, tid).await;
    assert_error(
        &app.list_messages(&k.a1, tid, "").await,
        404,
        "THREAD_NOT_FOUND",
    );
}
