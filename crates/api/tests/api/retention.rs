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
    let (_db, _store, app, k) =
        setup_with!(backend, move |s: &mut AppState| s.clock = handle.clone());
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "quiet", "inputs": [{"role": "user", "content": "hello"}]})),
    )
    .await;
    assert_eq!(r.status, 200);
    let msgs = send(
        &app,
        Method::GET,
        "/v1/threads/quiet/messages",
        Some(&k.a1),
        None,
    )
    .await;
    let mid = msgs.body["data"][0]["id"].as_str().unwrap().to_string();

    clock.advance(TimeDelta::days(89));
    assert_eq!(
        send(&app, Method::GET, "/v1/threads/quiet", Some(&k.a1), None)
            .await
            .status,
        200,
        "day 89: still there"
    );
    let list = send(
        &app,
        Method::GET,
        "/v1/threads?include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
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
        let r = send(&app, method.clone(), &uri, Some(&k.a1), body).await;
        assert_error(&r, 404, "THREAD_NOT_FOUND");
    }
    let r = send(
        &app,
        Method::POST,
        "/v1/model/response",
        Some(&k.a1),
        Some(json!({"thread": "quiet", "inputs": [{"role": "user", "content": "anyone?"}]})),
    )
    .await;
    assert_error(&r, 404, "THREAD_NOT_FOUND");
    let list = send(
        &app,
        Method::GET,
        "/v1/threads?include_total=true",
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(list.body["total"], 0);
    assert_eq!(list.body["data"], json!([]));
    let all = send(&app, Method::DELETE, "/v1/threads", Some(&k.a1), None).await;
    assert_eq!(
        all.body["deleted"], 0,
        "expired threads are not the caller's to delete any more"
    );
    // A thread created now is of course visible.
    let fresh = create_thread(&app, &k.a1, json!({"title": "new"})).await;
    let got = send(
        &app,
        Method::GET,
        &format!("/v1/threads/{}", fresh["id"].as_str().unwrap()),
        Some(&k.a1),
        None,
    )
    .await;
    assert_eq!(got.status, 200);
}

async fn archived_threads_outlive_inactivity_but_not_one_year(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let (_db, _store, app, k) =
        setup_with!(backend, move |s: &mut AppState| s.clock = handle.clone());
    let t = create_thread(&app, &k.a1, json!({"title": "kept"})).await;
    let uri = format!("/v1/threads/{}", t["id"].as_str().unwrap());
    let r = send(
        &app,
        Method::PATCH,
        &uri,
        Some(&k.a1),
        Some(json!({"state": "archived"})),
    )
    .await;
    assert_eq!(r.status, 200);
    clock.advance(TimeDelta::days(200));
    assert_eq!(
        send(&app, Method::GET, &uri, Some(&k.a1), None)
            .await
            .status,
        200,
        "archived: no inactivity expiry"
    );
    clock.advance(TimeDelta::days(164));
    assert_eq!(
        send(&app, Method::GET, &uri, Some(&k.a1), None)
            .await
            .status,
        200,
        "day 364"
    );
    clock.advance(TimeDelta::days(2));
    assert_error(
        &send(&app, Method::GET, &uri, Some(&k.a1), None).await,
        404,
        "THREAD_NOT_FOUND",
    );
}
