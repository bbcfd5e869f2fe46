//! Rate limits: a budget per API key and per token user, answered with 429
//! `RATE_LIMITED` and `Retry-After`; off by default.

use super::common::*;
use actix_web::http::Method;
use serde_json::json;
use skein_api::ratelimit::{RateLimitSettings, RateLimiter};
use skein_api::AppState;
use skein_domain::{clock, OrganizationId, UserId};
use skein_persistence::{keys, Backend};
use std::sync::Arc;

skein_persistence::on_both_backends_async!(
    the_request_after_the_budget_is_refused_with_retry_after,
    a_token_user_has_one_budget_for_all_its_tokens,
    off_by_default_every_request_passes,
);

fn budget_of_3(s: &mut AppState) {
    s.rate_limiter = Arc::new(RateLimiter::new(RateLimitSettings {
        requests: 3,
        window_secs: 60,
    }));
}

fn retry_after(r: &Resp) -> u64 {
    r.headers
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn the_request_after_the_budget_is_refused_with_retry_after(backend: Backend) {
    let (_db, store, app, k) = setup_with!(backend, budget_of_3);
    for i in 0..3 {
        let r = send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let refused = send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
    assert_error(&refused, 429, "RATE_LIMITED");
    assert_eq!(refused.body["error"]["type"], "client_error");
    assert!((1..=60).contains(&retry_after(&refused)));
    // Writes are refused too, and change nothing.
    let write = send(
        &app,
        Method::POST,
        "/v1/threads",
        Some(&k.a1),
        Some(json!({"title": "x"})),
    )
    .await;
    assert_error(&write, 429, "RATE_LIMITED");

    // Another key of the same organization, and another key of the same
    // user, have budgets of their own.
    let second_key_of_usr_1 = {
        let mut conn = store.conn().unwrap();
        keys::create(
            &mut conn,
            &OrganizationId::parse(ORG_A).unwrap(),
            &UserId::parse("usr_1").unwrap(),
            Some("second"),
            clock::now(),
        )
        .unwrap()
        .secret
    };
    for key in [&k.a2, &second_key_of_usr_1] {
        for _ in 0..3 {
            let r = send(&app, Method::GET, "/v1/threads", Some(key), None).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    let threads = send(&app, Method::GET, "/v1/threads", Some(&k.b1), None).await;
    assert_eq!(threads.status, 200, "{}", threads.body);
    assert_eq!(
        threads.body["data"],
        json!([]),
        "the refused write made nothing"
    );

    // Failed authentications are answered as such, not counted, and
    // service endpoints have no budget.
    let anonymous = send(&app, Method::GET, "/v1/threads", None, None).await;
    assert_error(&anonymous, 401, "AUTHENTICATION_REQUIRED");
    let bad = send(&app, Method::GET, "/v1/threads", Some("sk_nope"), None).await;
    assert_error(&bad, 401, "INVALID_API_KEY");
    for _ in 0..5 {
        assert_eq!(
            send(&app, Method::GET, "/healthz", None, None).await.status,
            200
        );
    }
    // Still refused: the window has not ended.
    let again = send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
    assert_error(&again, 429, "RATE_LIMITED");
}

async fn with_token<S, B>(app: &S, token: &str) -> Resp
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    send_bearer(
        app,
        Method::GET,
        "/v1/threads?organization_id=org_a",
        token,
        None,
    )
    .await
}

async fn a_token_user_has_one_budget_for_all_its_tokens(backend: Backend) {
    let (_db, _store, app, k) = setup_with!(backend, |s: &mut AppState| {
        budget_of_3(s);
        enable_tokens(s);
    });
    // Two different tokens of usr_1 share the user's budget.
    let (first, second) = (token_for("usr_1", 600), token_for("usr_1", 900));
    assert_ne!(first, second);
    for token in [&first, &second, &first] {
        let r = with_token(&app, token).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let refused = with_token(&app, &second).await;
    assert_error(&refused, 429, "RATE_LIMITED");
    assert!((1..=60).contains(&retry_after(&refused)));
    // Another user's token, and usr_1's API key, are counted apart.
    let other = with_token(&app, &token_for("usr_2", 600)).await;
    assert_eq!(other.status, 200, "{}", other.body);
    let key = send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
    assert_eq!(key.status, 200, "{}", key.body);
    // An invalid token is a 401, not a 429, even for a spent user.
    let expired = with_token(&app, &token_for("usr_1", -600)).await;
    assert_error(&expired, 401, "TOKEN_EXPIRED");
}

async fn off_by_default_every_request_passes(backend: Backend) {
    let (_db, _store, app, k) = setup!(backend);
    for i in 0..20 {
        let r = send(&app, Method::GET, "/v1/threads", Some(&k.a1), None).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        assert!(r.headers.get("retry-after").is_none());
    }
}
