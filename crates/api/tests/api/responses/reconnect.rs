//! Reconnecting to a response stream (`GET /v1/model/response/{thread}/stream`):
//! replay after the client's last event, the live tail, the end of a
//! response whose process died, a completion rebuilt after the events were
//! purged, and the threads a dead first turn leaves behind.

use super::fake_upstream::Upstream;
use super::user;
use crate::common::*;
use chrono::TimeDelta;
use serde_json::{json, Value};
use skein_api::AppState;
use skein_domain::retention::{Clock, RetentionPolicy};
use skein_domain::{Limits, Metadata, OrganizationId, ThreadId, UserId};
use skein_engine::{events::encode_run, Sequenced, TurnEvent};
use skein_persistence::events::{self, NewEvents};
use skein_persistence::turns::{self, TurnStart};
use skein_persistence::{retention, Backend, Scope};
use std::time::Duration;

skein_persistence::on_both_backends_async!(
    every_frame_has_its_id_and_a_reconnect_replays_what_came_after_it,
    a_reconnect_follows_a_running_response_live_to_its_end,
    reconnecting_where_there_is_nothing_to_follow_is_a_clear_4xx,
    after_the_events_are_purged_the_saved_turn_comes_back_as_one_completion,
    a_response_whose_process_died_ends_interrupted_and_its_thread_recovers,
    a_generation_longer_than_the_lease_keeps_it,
);

fn names(frames: &[(String, Value)]) -> Vec<&str> {
    frames.iter().map(|(n, _)| n.as_str()).collect()
}

async fn every_frame_has_its_id_and_a_reconnect_replays_what_came_after_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    // The test client checks every frame's `id:` against its sequence number.
    let original = app
        .stream_response(
            &k.a1,
            json!({"thread": "r", "stream": true, "inputs": [user("replay me")]}),
        )
        .await
        .finish()
        .await;
    assert!(original.len() > 4, "{original:?}");
    // By query, by the standard header, and from the start.
    let by_query = app.reconnect(&k.a1, "r", "last_event_id=2").await;
    assert_eq!(by_query.status, 200);
    assert_eq!(by_query.finish().await, original[2..]);
    let by_header = app
        .get("/v1/model/response/r/stream")
        .key(&k.a1)
        .header("Last-Event-ID", "3")
        .stream()
        .await
        .finish()
        .await;
    assert_eq!(by_header, original[3..]);
    let whole = app.reconnect(&k.a1, "r", "").await.finish().await;
    assert_eq!(whole, original);
    // A Fern-generated SDK reads the answer as one JSON document.
    let fern = app
        .get("/v1/model/response/r/stream?last_event_id=1")
        .key(&k.a1)
        .header("X-Fern-Language", "Python")
        .send()
        .await;
    assert_eq!(fern.status, 200, "{}", fern.body);
    let events: Vec<Value> = original[1..original.len() - 1]
        .iter()
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(fern.body["events"], Value::Array(events));
    assert_eq!(fern.body["thread_id"], "r");
}

async fn a_reconnect_follows_a_running_response_live_to_its_end(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.router = upstream.router();
        s.quick_cancel = Duration::ZERO;
    })
    .await;
    let k = &app.keys;
    // fake-slow sends one delta, "partial answer", and then stalls.
    let mut first = app
        .stream_response(
            &k.a1,
            json!({"model": "fake-slow", "thread": "live", "stream": true, "inputs": [user("go")]}),
        )
        .await;
    assert_eq!(upstream.next_request().await["model"], "fake-slow");
    let created = first.until_event("response.created").await;
    assert_eq!(created["sequence_number"], 1);
    // The first client drops away; another reconnects after event 1.
    drop(first);
    let mut second = app.reconnect(&k.a1, "live", "last_event_id=1").await;
    assert_eq!(second.status, 200);
    let delta = second.until_event("response.content_delta").await;
    assert_eq!(
        (delta["delta"].as_str(), delta["sequence_number"].as_u64()),
        (Some("partial answer"), Some(2))
    );
    // Still running: the reconnect waits live. Cancel it: the reconnected
    // stream sees the end.
    let cancelled = app.cancel(&k.a1, "live").await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["cancel_mode"], "keep_partial");
    let rest = second.finish().await;
    assert_eq!(
        names(&rest)[names(&rest).len() - 2..],
        ["response.cancelled", "[DONE]"]
    );
}

async fn reconnecting_where_there_is_nothing_to_follow_is_a_clear_4xx(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let k = &app.keys;
    app.create_thread(&k.a1, json!({})).await;
    let quiet = app.list_threads(&k.a1, "").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .get(format!("/v1/model/response/{quiet}/stream"))
        .key(&k.a1)
        .send()
        .await;
    assert_error(&r, 404, "RESPONSE_NOT_FOUND");
    let r = app
        .get("/v1/model/response/nothing/stream")
        .key(&k.a1)
        .send()
        .await;
    assert_error(&r, 404, "THREAD_NOT_FOUND");
    // Someone else's thread does not exist for the caller.
    let r = app
        .post_response(&k.a1, json!({"thread": "mine", "inputs": [user("hi")]}))
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .get("/v1/model/response/mine/stream")
        .key(&k.a2)
        .send()
        .await;
    assert_error(&r, 404, "THREAD_NOT_FOUND");
    let r = app
        .get("/v1/model/response/mine/stream")
        .key(&k.a1)
        .header("Last-Event-ID", "abc")
        .send()
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = app
        .get("/v1/model/response/mine/stream?last_event_id=-1")
        .key(&k.a1)
        .send()
        .await;
    assert_error(&r, 422, "VALIDATION_ERROR");
    let r = app.get("/v1/model/response/mine/stream").send().await;
    assert_eq!(r.status, 401);
}

async fn after_the_events_are_purged_the_saved_turn_comes_back_as_one_completion(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| s.clock = handle).await;
    let k = &app.keys;
    let done = app
        .post_response(
            &k.a1,
            json!({"thread": "old", "inputs": [user("remember me")]}),
        )
        .await;
    assert_eq!(done.status, 200);
    // The events are stored right after the turn (a reconnect waits for
    // them): replayed as they were.
    let stored = app.reconnect(&k.a1, "old", "").await.finish().await;
    assert_eq!(names(&stored)[0], "response.created", "{stored:?}");
    // Past the response TTL (24 h), the sweeper removes the stored events.
    clock.advance(TimeDelta::hours(25));
    let purged = retention::purge_all(
        &mut app.store.conn().unwrap(),
        &RetentionPolicy::default(),
        clock.now(),
        100,
    )
    .unwrap();
    assert!(purged.events > 0, "{purged:?}");
    let frames = app.reconnect(&k.a1, "old", "").await.finish().await;
    assert_eq!(names(&frames), ["response.completed", "[DONE]"]);
    let response = &frames[0].1["response"];
    assert_eq!(response["id"], done.body["id"]);
    assert_eq!(
        super::output_text(response),
        super::output_text(&done.body),
        "the saved answer"
    );
}

async fn a_response_whose_process_died_ends_interrupted_and_its_thread_recovers(backend: Backend) {
    let clock = Clock::system();
    let handle = clock.clone();
    let app = TestApp::with(backend, |s: &mut AppState| s.clock = handle).await;
    let k = &app.keys;
    // A first response that another process opened (creating the thread),
    // stored its first event for, and then died: its lease (one second, on
    // the real clock, which thread status reads) still holds.
    let scope = Scope::new(
        OrganizationId::parse(ORG_A).unwrap(),
        UserId::parse("usr_1").unwrap(),
    );
    let mut conn = app.store.conn().unwrap();
    let start = TurnStart {
        create: true,
        workflow_id: None,
        incognito_ttl: None,
        thread_id: ThreadId::parse("ghost").unwrap(),
        metadata: Metadata::default(),
        assistant: None,
        lease_id: "resp_dead".into(),
        lease_ttl: TimeDelta::seconds(1),
        new_messages: 2,
        rewind: None,
    };
    let (_, created) =
        turns::begin(&mut conn, &scope, &start, &Limits::default(), clock.now()).unwrap();
    assert!(created);
    let target = events::locate(&mut conn, &scope, "ghost", clock.now()).unwrap();
    let run = [Sequenced {
        sequence: 1,
        event: TurnEvent::Created {
            response_id: "resp_dead".into(),
            thread_id: Some("ghost".into()),
        },
    }];
    let stored = NewEvents {
        first_seq: 1,
        last_seq: 1,
        events: encode_run(&run),
        terminal: false,
    };
    events::append(
        &mut conn,
        target.thread_pk,
        "resp_dead",
        &stored,
        clock.now(),
    )
    .unwrap();
    drop(conn);
    // Unlisted while its first turn is unsaved.
    let listed = app.list_threads(&k.a1, "").await.body;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");
    let mut stream = app.reconnect(&k.a1, "ghost", "").await;
    assert_eq!(
        stream.until_event("response.created").await["response_id"],
        "resp_dead"
    );
    // The lease lapses: the reconnected stream ends with RESPONSE_INTERRUPTED.
    let error = stream.until_event("response.error").await;
    assert_eq!(error["code"], "RESPONSE_INTERRUPTED", "{error}");
    assert_eq!(error["sequence_number"], 2);
    assert_eq!(names(&stream.finish().await).last(), Some(&"[DONE]"));
    let t = app.get_thread(&k.a1, "ghost").await.body;
    assert_eq!(t["status"], "inactive", "{t}");
    let next = app
        .post_response(&k.a1, json!({"thread": "ghost", "inputs": [user("again")]}))
        .await;
    assert_eq!(next.status, 200, "{}", next.body);
    let listed = app.list_threads(&k.a1, "").await.body;
    assert_eq!(
        listed["data"][0]["id"], "ghost",
        "listed once a turn is saved"
    );

    // Another dead first turn: the sweeper removes its empty thread once
    // the lease has lapsed, and not before.
    let mut conn = app.store.conn().unwrap();
    let lost = TurnStart {
        create: true,
        workflow_id: None,
        incognito_ttl: None,
        thread_id: ThreadId::parse("lost").unwrap(),
        lease_id: "resp_lost".into(),
        lease_ttl: TimeDelta::seconds(60),
        ..start
    };
    turns::begin(&mut conn, &scope, &lost, &Limits::default(), clock.now()).unwrap();
    let policy = RetentionPolicy::default();
    let early = retention::purge_all(&mut conn, &policy, clock.now(), 100).unwrap();
    assert_eq!(early.threads, 0, "{early:?}");
    let after_lapse = clock.now() + TimeDelta::seconds(61);
    let late = retention::purge_all(&mut conn, &policy, after_lapse, 100).unwrap();
    assert_eq!(late.threads, 1, "{late:?}");
    drop(conn);
    assert_error(
        &app.get_thread(&k.a1, "lost").await,
        404,
        "THREAD_NOT_FOUND",
    );
    assert_eq!(app.get_thread(&k.a1, "ghost").await.status, 200);
}

async fn a_generation_longer_than_the_lease_keeps_it(backend: Backend) {
    let mut upstream = Upstream::start();
    let app = TestApp::with(backend, |s: &mut AppState| {
        s.router = upstream.router();
        s.lease_ttl = TimeDelta::milliseconds(600);
    })
    .await;
    let k = &app.keys;
    let body = json!({"model": "fake-gated", "thread": "long", "inputs": [user("take your time")]});
    let pending = app.post_response(&k.a1, body);
    let renewed = async {
        upstream.next_request().await;
        let scope = Scope::new(
            OrganizationId::parse(ORG_A).unwrap(),
            UserId::parse("usr_1").unwrap(),
        );
        let first = lease_until(&app, &scope);
        // The lease is renewed every third of its lifetime while the model
        // works: wait (bounded) until it moves past its first expiry.
        bounded("the lease to be renewed", 10, async {
            loop {
                if lease_until(&app, &scope) > first + TimeDelta::milliseconds(500) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        upstream.open_gate();
    };
    let (answer, ()) = tokio::join!(pending, renewed);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let t = app.get_thread(&k.a1, "long").await.body;
    assert_eq!(t["message_count"], 2, "the turn was saved: {t}");
}

fn lease_until(app: &TestApp, scope: &Scope) -> chrono::DateTime<chrono::Utc> {
    let mut conn = app.store.conn().unwrap();
    skein_persistence::threads::find(&mut conn, scope, "long")
        .unwrap()
        .and_then(|t| t.lease().cloned())
        .map(|l| l.expires_at)
        .expect("the thread holds a lease while the model works")
}
