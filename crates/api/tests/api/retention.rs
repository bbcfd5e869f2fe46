//! Expiry seen through the API: an expired thread answers 404 on every
//! endpoint at once, before any purge. The service clock is moved forward.

use super::common::*;
use actix_web::http::Method;
use chrono::TimeDelta;
use serde_json::json;
use skein_api::AppState;
use skein_domain::retention::Clock;
use skein_persistence::Backend;

skein_persistence::on_both_backends_async!(
    an_inactive_thread_expires_after_90_days_everywhere_at_once,
    archived_threads_outlive_inactivity_but_not_one_year,
);

async fn an_inactive_thread_expires_after_90_days_everywhere_at_once(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| s.clock = handle).await;
    let k = &app.keys;
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "quiet", "inputs": [{"role": "user", "content": "hello"}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let msgs = app.list_messages(&k.a1, "quiet", "").await;
    let mid = msgs.body["data"][0]["id"].as_str().unwrap().to_string();

    clock.advance(TimeDelta::days(89));
    assert_eq!(
        app.get_thread(&k.a1, "quiet").await.status,
        200,
        "day 89: still there"
    );
    let list = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(list.body["total"], 1);

    clock.advance(TimeDelta::days(2));
    // Day 91: gone from every endpoint, although nothing was purged.
    for (method, uri, body) in [
        (Method::GET, "/v1/threads/quiet".to_string(), None),
        (
            Method::PATCH,
            "/v1/threads/quiet".to_string(),
            Some(json!({"title": "x"})),
        ),
        (Method::POST, "/v1/threads/quiet/pin".to_string(), None),
        (Method::POST, "/v1/threads/quiet/unpin".to_string(), None),
        (
            Method::POST,
            "/v1/threads/quiet/generateName".to_string(),
            None,
        ),
        (Method::GET, "/v1/threads/quiet/messages".to_string(), None),
        (
            Method::POST,
            "/v1/threads/quiet/messages".to_string(),
            Some(json!({"role": "user", "content": "x"})),
        ),
        (
            Method::PATCH,
            format!("/v1/threads/quiet/messages/{mid}"),
            Some(json!({"content": "x"})),
        ),
        (
            Method::DELETE,
            format!("/v1/threads/quiet/messages/{mid}"),
            None,
        ),
        (Method::DELETE, "/v1/threads/quiet".to_string(), None),
    ] {
        let r = app.request(method, uri).key(&k.a1).json(body).send().await;
        assert_error(&r, 404, "THREAD_NOT_FOUND");
    }
    let r = app
        .post_response(
            &k.a1,
            json!({"thread": "quiet", "inputs": [{"role": "user", "content": "anyone?"}]}),
        )
        .await;
    assert_error(&r, 404, "THREAD_NOT_FOUND");
    let list = app.list_threads(&k.a1, "include_total=true").await;
    assert_eq!(list.body["total"], 0);
    assert_eq!(list.body["data"], json!([]));
    let all = app.delete_threads(&k.a1, "").await;
    assert_eq!(
        all.body["deleted"], 0,
        "expired threads are not the caller's to delete any more"
    );
    // A thread created now is of course visible.
    let fresh = app.create_thread(&k.a1, json!({"title": "new"})).await;
    let got = app.get_thread(&k.a1, fresh["id"].as_str().unwrap()).await;
    assert_eq!(got.status, 200);
}

async fn archived_threads_outlive_inactivity_but_not_one_year(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| s.clock = handle).await;
    let k = &app.keys;
    let t = app.create_thread(&k.a1, json!({"title": "kept"})).await;
    let id = t["id"].as_str().unwrap();
    let r = app
        .patch_thread(&k.a1, id, json!({"state": "archived"}))
        .await;
    assert_eq!(r.status, 200);
    clock.advance(TimeDelta::days(200));
    assert_eq!(
        app.get_thread(&k.a1, id).await.status,
        200,
        "archived: no inactivity expiry"
    );
    clock.advance(TimeDelta::days(164));
    assert_eq!(app.get_thread(&k.a1, id).await.status, 200, "day 364");
    clock.advance(TimeDelta::days(2));
    assert_error(&app.get_thread(&k.a1, id).await, 404, "THREAD_NOT_FOUND");
}
