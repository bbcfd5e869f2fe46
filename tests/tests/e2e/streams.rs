//! Streams across replicas: three `skein serve` processes on one PostgreSQL
//! database. A streamed response started on replica A is reconnected
//! through B from the middle (no event missing or repeated), cancelled
//! through C, and, after A is killed with SIGKILL mid-stream, ends with
//! `RESPONSE_INTERRUPTED` through B once its lease has lapsed; the thread
//! then accepts a new response.

use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::upstream::PacedUpstream;
use skein_tests::Server;
use std::io::{BufRead, BufReader};
use std::time::Duration;

/// Lease lifetime of the replicas: a killed replica's response lapses fast.
const LEASE_SECS: &str = "2";

struct Replicas {
    servers: Vec<Server>,
    key: String,
    _dirs: Vec<tempfile::TempDir>,
    _db: TestDb,
}

fn replicas(n: usize, upstream: &PacedUpstream) -> Replicas {
    let db = TestDb::new(Backend::Postgres);
    let mut dirs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let cfg = upstream.config(dir.path());
        servers.push(Server::start_with(
            &db.url,
            dir.path(),
            &[("SKEIN_CONFIG", &cfg), ("SKEIN_LEASE_TTL_SECS", LEASE_SECS)],
        ));
        dirs.push(dir);
    }
    let key = servers[0]
        .bootstrap_key
        .clone()
        .expect("the first replica prints a key");
    Replicas {
        servers,
        key,
        _dirs: dirs,
        _db: db,
    }
}

pub(crate) fn http() -> Client {
    // Every request, its body included, ends within this bound.
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Reads SSE frames `(id, data)` off a response body as they come.
pub(crate) struct Frames(BufReader<Response>);

impl Frames {
    fn next(&mut self) -> Option<(u64, Value)> {
        let (mut id, mut data) = (None, None);
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            let line = line.trim_end();
            if let Some(i) = line.strip_prefix("id: ") {
                id = Some(i.parse().unwrap());
            } else if let Some(d) = line.strip_prefix("data: ") {
                if d == "[DONE]" {
                    return None;
                }
                data = Some(serde_json::from_str(d).unwrap());
            } else if line.is_empty() {
                if let (Some(id), Some(data)) = (id, data.take()) {
                    return Some((id, data));
                }
            }
        }
    }

    pub(crate) fn until(&mut self, event: &str) -> Vec<(u64, Value)> {
        let mut seen = Vec::new();
        while let Some(frame) = self.next() {
            let done = frame.1["event"] == event;
            seen.push(frame);
            if done {
                return seen;
            }
        }
        panic!("the stream ended without {event}: {seen:?}");
    }

    pub(crate) fn rest(mut self) -> Vec<(u64, Value)> {
        let mut seen = Vec::new();
        while let Some(frame) = self.next() {
            seen.push(frame);
        }
        seen
    }
}

pub(crate) fn start_stream(server: &Server, key: &str, model: &str, thread: &str) -> Frames {
    let r = http()
        .post(server.url("/v1/model/response"))
        .header("X-API-Key", key)
        .json(&json!({"model": model, "thread_id": thread, "stream": true,
                      "inputs": [{"role": "user", "texts": [{"text": "go"}]}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    Frames(BufReader::new(r))
}

fn reconnect(server: &Server, key: &str, thread: &str, after: u64) -> Frames {
    let r = http()
        .get(server.url(&format!("/v1/model/response/{thread}/stream")))
        .header("X-API-Key", key)
        .header("Last-Event-ID", after.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    Frames(BufReader::new(r))
}

fn respond(server: &Server, key: &str, thread: &str) -> Value {
    let r = http()
        .post(server.url("/v1/model/response"))
        .header("X-API-Key", key)
        .json(&json!({"thread_id": thread, "inputs": [{"role": "user", "texts": [{"text": "again"}]}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "the thread accepts a new response");
    r.json().unwrap()
}

#[test]
fn postgres_a_stream_started_on_one_replica_is_resumed_and_cancelled_through_others() {
    let upstream = PacedUpstream::start().unwrap();
    let rs = replicas(3, &upstream);
    let (a, b, c, key) = (&rs.servers[0], &rs.servers[1], &rs.servers[2], &rs.key);

    // (a) Started on A, left after three deltas, resumed through B.
    let mut on_a = start_stream(a, key, "slow", "resumed");
    let mut seen = on_a.until("response.content_delta");
    seen.extend(on_a.until("response.content_delta"));
    seen.extend(on_a.until("response.content_delta"));
    drop(on_a);
    let last = seen.last().unwrap().0;
    let mut rest = reconnect(b, key, "resumed", last).rest();
    assert_eq!(
        rest.last().unwrap().1["event"],
        "response.completed",
        "{rest:?}"
    );
    seen.append(&mut rest);
    let ids: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "no event missing or repeated"
    );
    let text: String = seen
        .iter()
        .filter(|(_, v)| v["event"] == "response.content_delta")
        .map(|(_, v)| v["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, PacedUpstream::slow_text());
    // The same events, replayed whole through C.
    let whole = reconnect(c, key, "resumed", 0).rest();
    assert_eq!(whole, seen);

    // (b) Started on A, cancelled through C: the answer says what was kept,
    // A's stream ends cancelled, and the thread takes a new response.
    let mut on_a = start_stream(a, key, "stall", "cancelled");
    on_a.until("response.content_delta");
    let cancelled = http()
        .post(c.url("/v1/model/response/cancelled/cancel"))
        .header("X-API-Key", key)
        .send()
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().unwrap();
    assert_eq!(cancelled["success"], true, "{cancelled}");
    assert_eq!(cancelled["cancel_mode"], "quick_edit", "{cancelled}");
    let end = on_a.rest();
    assert_eq!(
        end.last().unwrap().1["event"],
        "response.cancelled",
        "{end:?}"
    );
    respond(b, key, "cancelled");
}

#[test]
fn postgres_a_killed_replica_s_stream_ends_interrupted_and_its_thread_recovers() {
    let upstream = PacedUpstream::start().unwrap();
    let mut rs = replicas(2, &upstream);
    let key = rs.key.clone();
    let mut on_a = start_stream(&rs.servers[0], &key, "stall", "killed");
    let seen = on_a.until("response.content_delta");
    let a = rs.servers.remove(0);
    a.signal("KILL");
    drop(on_a);
    let b = &rs.servers[0];
    let rest = reconnect(b, &key, "killed", seen.last().unwrap().0).rest();
    let (id, error) = rest.last().unwrap();
    assert_eq!(error["event"], "response.error", "{rest:?}");
    assert_eq!(error["code"], "RESPONSE_INTERRUPTED", "{error}");
    assert_eq!(*id, seen.last().unwrap().0 + 1);
    let thread: Value = http()
        .get(b.url("/v1/threads/killed"))
        .header("X-API-Key", &key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(thread["status"], "inactive", "{thread}");
    let next = respond(b, &key, "killed");
    assert_eq!(next["thread_id"], "killed");
}
