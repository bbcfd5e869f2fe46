//! One turn at a time per thread: the busy lease, its expiry, and two
//! requests racing for it.

use super::fake_upstream::Upstream;
use super::user;
use crate::common::*;
use serde_json::json;
use skein_api::AppState;
use skein_domain::{clock, Limits, OrganizationId, UserId};
use skein_persistence::{Backend, Scope};

skein_persistence::on_both_backends_async!(
    a_busy_thread_answers_409_and_an_expired_lease_does_not_block,
    of_two_concurrent_responses_exactly_one_wins,
);

async fn a_busy_thread_answers_409_and_an_expired_lease_does_not_block(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    let scope = Scope {
        organization_id: OrganizationId::parse(ORG_A).unwrap(),
        user_id: UserId::parse("usr_1").unwrap(),
        live: None,
    };
    // Takes the thread's lease as another (crashed or running) turn would.
    let hold = |lease: &str, ttl: chrono::TimeDelta| {
        let start = skein_persistence::turns::TurnStart {
            create: true,
            workflow_id: None,
            incognito_ttl: None,
            thread_id: skein_domain::ThreadId::parse("busy").unwrap(),
            metadata: Default::default(),
            assistant: None,
            lease_id: lease.into(),
            lease_ttl: ttl,
            new_messages: 2,
            rewind: None,
        };
        let mut conn = app.store.conn().unwrap();
        skein_persistence::turns::begin(
            &mut conn,
            &scope,
            &start,
            &Limits::default(),
            clock::now(),
        )
        .unwrap();
    };
    hold("resp_other", chrono::TimeDelta::seconds(30));
    assert_eq!(
        app.get_thread(&k.a1, "busy").await.body["status"],
        "streaming"
    );
    let r = app
        .post_response(&k.a1, json!({"thread": "busy", "inputs": [user("x")]}))
        .await;
    assert_error(&r, 409, "THREAD_BUSY");
    let retry: u64 = r
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=5).contains(&retry),
        "clients are told to retry soon: {retry}"
    );
    // A crashed holder's lease lapses by itself.
    {
        let mut conn = app.store.conn().unwrap();
        let id = skein_domain::ThreadId::parse("busy").unwrap();
        skein_persistence::turns::release(&mut conn, &scope, &id, "resp_other", false).unwrap();
    }
    hold("resp_crashed", chrono::TimeDelta::milliseconds(-1));
    assert_eq!(
        app.get_thread(&k.a1, "busy").await.body["status"],
        "inactive"
    );
    let r = app
        .post_response(&k.a1, json!({"thread": "busy", "inputs": [user("x")]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn of_two_concurrent_responses_exactly_one_wins(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| s.router = upstream.router()).await;
    let k = &app.keys;
    let body = json!({"model": "fake-gated", "thread": "race", "inputs": [user("who wins?")]});
    let first = app.post_response(&k.a1, body.clone());
    let second = async {
        // Once the upstream has the first request, its lease is taken.
        assert_eq!(upstream.next_request().await["model"], "fake-gated");
        let r = app.post_response(&k.a1, body.clone()).await;
        upstream.open_gate();
        r
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_error(&second, 409, "THREAD_BUSY");
    let t = app.get_thread(&k.a1, "race").await.body;
    assert_eq!(
        (t["message_count"].as_i64(), t["status"].as_str()),
        (Some(2), Some("inactive"))
    );
}
