//! Rate limits: a budget per API key and per token user (GCRA: the whole
//! budget at once, then one request per share of the window), answered
//! with 429 `RATE_LIMITED` and `Retry-After`; off by default. On
//! PostgreSQL the budget is the database's (shared by replicas), on SQLite
//! in memory: the same stories hold on both.

use super::common::*;
use chrono::TimeDelta;
use serde_json::json;
use skein_api::ratelimit::{RateLimitSettings, RateLimiter};
use skein_api::AppState;
use skein_domain::retention::Clock;
use skein_domain::{clock, OrganizationId, UserId};
use skein_persistence::{keys, Backend};
use std::sync::Arc;

skein_persistence::on_both_backends_async!(
    the_request_after_the_budget_is_refused_with_retry_after,
    a_token_user_has_one_budget_for_all_its_tokens,
    off_by_default_every_request_passes,
    no_double_burst_at_a_window_boundary,
);

fn budget_of_3(s: &mut AppState) {
    s.rate_limiter = Arc::new(RateLimiter::new(
        RateLimitSettings {
            requests: 3,
            window_secs: 60,
        },
        s.clock.clone(),
    ));
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
    let app = TestApp::with(backend, budget_of_3).await;
    let k = &app.keys;
    for i in 0..3 {
        let r = app.list_threads(&k.a1, "").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let refused = app.list_threads(&k.a1, "").await;
    assert_error(&refused, 429, "RATE_LIMITED");
    assert_eq!(refused.body["error"]["type"], "client_error");
    // One request of the budget comes back every 20 s.
    assert!(
        (19..=20).contains(&retry_after(&refused)),
        "{}",
        refused.body
    );
    // Writes are refused too, and change nothing.
    let write = app.post_thread(&k.a1, json!({"title": "x"})).await;
    assert_error(&write, 429, "RATE_LIMITED");

    // Another key of the same organization, and another key of the same
    // user, have budgets of their own.
    let second_key_of_usr_1 = {
        let mut conn = app.store.conn().unwrap();
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
            let r = app.list_threads(key, "").await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    let threads = app.list_threads(&k.b1, "").await;
    assert_eq!(threads.status, 200, "{}", threads.body);
    assert_eq!(
        threads.body["data"],
        json!([]),
        "the refused write made nothing"
    );

    // Failed authentications are answered as such, not counted, and
    // service endpoints have no budget.
    let anonymous = app.get("/v1/threads").send().await;
    assert_error(&anonymous, 401, "AUTHENTICATION_REQUIRED");
    let bad = app.list_threads("sk_nope", "").await;
    assert_error(&bad, 401, "INVALID_API_KEY");
    for _ in 0..5 {
        assert_eq!(app.get("/healthz").send().await.status, 200);
    }
    // Still refused: no request has been earned back yet.
    let again = app.list_threads(&k.a1, "").await;
    assert_error(&again, 429, "RATE_LIMITED");
}

async fn with_token(app: &TestApp, token: &str) -> Resp {
    app.get("/v1/threads?organization_id=org_a")
        .bearer(token)
        .send()
        .await
}

async fn a_token_user_has_one_budget_for_all_its_tokens(backend: Backend) {
    let app = TestApp::with(backend, |s: &mut AppState| {
        budget_of_3(s);
        enable_tokens(s);
    })
    .await;
    let k = &app.keys;
    // Two different tokens of usr_1 share the user's budget.
    let (first, second) = (token_for("usr_1", 600), token_for("usr_1", 900));
    assert_ne!(first, second);
    for token in [&first, &second, &first] {
        let r = with_token(&app, token).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let refused = with_token(&app, &second).await;
    assert_error(&refused, 429, "RATE_LIMITED");
    assert!(
        (19..=20).contains(&retry_after(&refused)),
        "{}",
        refused.body
    );
    // Another user's token, and usr_1's API key, are counted apart.
    let other = with_token(&app, &token_for("usr_2", 600)).await;
    assert_eq!(other.status, 200, "{}", other.body);
    let key = app.list_threads(&k.a1, "").await;
    assert_eq!(key.status, 200, "{}", key.body);
    // An invalid token is a 401, not a 429, even for a spent user.
    let expired = with_token(&app, &token_for("usr_1", -600)).await;
    assert_error(&expired, 401, "TOKEN_EXPIRED");
}

async fn off_by_default_every_request_passes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..20 {
        let r = app.list_threads(&app.keys.a1, "").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        assert!(r.headers.get("retry-after").is_none());
    }
}

/// A fixed window that starts with the first request admits the two
/// requests at 59 s and a whole budget again at 61 s (five in two
/// seconds); GCRA has earned back one request by 61 s, and no more.
async fn no_double_burst_at_a_window_boundary(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.clock = handle;
        budget_of_3(s);
    })
    .await;
    let key = &app.keys.a1;
    assert_eq!(app.list_threads(key, "").await.status, 200);
    clock.advance(TimeDelta::seconds(59));
    for i in 0..2 {
        let r = app.list_threads(key, "").await;
        assert_eq!(r.status, 200, "request {i} at 59 s: {}", r.body);
    }
    clock.advance(TimeDelta::seconds(2));
    let earned = app.list_threads(key, "").await;
    assert_eq!(earned.status, 200, "{}", earned.body);
    let refused = app.list_threads(key, "").await;
    assert_error(&refused, 429, "RATE_LIMITED");
    // The next one is earned back at 79 s.
    assert!(
        (17..=18).contains(&retry_after(&refused)),
        "{}",
        refused.body
    );
    // Refused requests are not counted: waiting as told is enough.
    clock.advance(TimeDelta::seconds(18));
    let after_wait = app.list_threads(key, "").await;
    assert_eq!(after_wait.status, 200, "{}", after_wait.body);
}
