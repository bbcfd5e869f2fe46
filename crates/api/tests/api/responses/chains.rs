//! Thread-less conversations chained with `previous_response_id`.

use super::{output_text, user};
use crate::common::*;
use serde_json::json;
use skein_api::AppState;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(previous_response_id_rebuilds_the_conversation);

async fn previous_response_id_rebuilds_the_conversation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let r1 = app
        .post_response(
            &k.a1,
            json!({"model": "m", "inputs": [user("My name is Ada.")]}),
        )
        .await;
    assert_eq!(r1.status, 200);
    let id1 = r1.body["id"].as_str().unwrap();
    let r2 = app
        .post_response(
            &k.a1,
            json!({"model": "m", "previousResponseId": id1, "inputs": [user("What is my name?")]}),
        )
        .await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(
        output_text(&r2.body),
        "Echo (3 context messages): What is my name?"
    );
    assert_eq!(r2.body["previous_response_id"], id1);
    assert!(r2.body["thread_id"].is_null());
    let id2 = r2.body["id"].as_str().unwrap();
    let r3 = app
        .post_response(
            &k.a1,
            json!({"model": "m", "previous_response_id": id2, "inputs": [user("And again?")]}),
        )
        .await;
    assert_eq!(
        output_text(&r3.body),
        "Echo (5 context messages): And again?"
    );
    // Not stored, unknown, or someone else's: not found.
    let unstored = app
        .post_response(
            &k.a1,
            json!({"model": "m", "store": false, "inputs": [user("forget me")]}),
        )
        .await;
    let gone = unstored.body["id"].as_str().unwrap();
    for (key, prev) in [
        (&k.a1, gone),
        (&k.a1, "resp_nope"),
        (&k.a2, id1),
        (&k.b1, id1),
    ] {
        let r = app
            .post_response(
                key,
                json!({"model": "m", "previous_response_id": prev, "inputs": [user("x")]}),
            )
            .await;
        assert_error(&r, 404, "RESPONSE_NOT_FOUND");
    }
    let list = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(list.body["total"], 0, "chains create no threads");
}

#[actix_web::test]
async fn responses_older_than_the_ttl_cannot_be_chained() {
    let app = TestApp::with(Backend::Sqlite, |s: &mut AppState| {
        s.response_ttl = chrono::TimeDelta::milliseconds(-1);
    })
    .await;
    let k = &app.keys;
    let r1 = app
        .post_response(&k.a1, json!({"inputs": [user("old")]}))
        .await;
    let id1 = r1.body["id"].as_str().unwrap();
    let r = app
        .post_response(
            &k.a1,
            json!({"previous_response_id": id1, "inputs": [user("x")]}),
        )
        .await;
    assert_error(&r, 404, "RESPONSE_NOT_FOUND");
}
