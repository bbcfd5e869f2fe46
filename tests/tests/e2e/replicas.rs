//! Several `skein serve` processes on one PostgreSQL database behind a
//! round-robin balancer (the test plays the balancer). PostgreSQL only:
//! SQLite mode is one process.

use reqwest::blocking::Client;
use serde_json::Value;
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::Replicas;
use std::time::Duration;

/// The budget under test and the window it is earned back over (long, so
/// that nothing is earned back while the test runs: one request per 400 s).
const BUDGET: usize = 9;
const WINDOW_SECS: u64 = 3600;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Three replicas on a fresh PostgreSQL database with the budget under
/// test (the database and the directory are dropped after the replicas).
fn three_replicas_with_a_budget() -> (TestDb, tempfile::TempDir, Replicas) {
    let db = TestDb::new(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let budget = BUDGET.to_string();
    let window = WINDOW_SECS.to_string();
    let replicas = Replicas::start(
        3,
        &db.url,
        dir.path(),
        &[
            ("SKEIN_RATE_LIMIT_REQUESTS", &budget),
            ("SKEIN_RATE_LIMIT_WINDOW_SECS", &window),
        ],
    );
    (db, dir, replicas)
}

#[test]
fn a_budget_spread_round_robin_over_three_replicas_admits_exactly_its_size() {
    let (_db, _dir, replicas) = three_replicas_with_a_budget();
    let http = client();
    let mut statuses = Vec::new();
    for i in 0..3 * BUDGET {
        let server = replicas.pick(i);
        let r = http
            .get(server.url("/v1/threads"))
            .header("X-API-Key", &replicas.key)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        if status == 429 {
            let retry_after: u64 = r
                .headers()
                .get("retry-after")
                .expect("a 429 carries Retry-After")
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            // One request is earned back every WINDOW_SECS / BUDGET s.
            assert!(
                (1..=WINDOW_SECS / BUDGET as u64).contains(&retry_after),
                "{retry_after}"
            );
            let body: Value = r.json().unwrap();
            assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
        }
        statuses.push(status);
    }
    // Each replica admitted its share of the one budget; a budget counted
    // per process would have admitted all 27.
    let expected: Vec<u16> = (0..3 * BUDGET)
        .map(|i| if i < BUDGET { 200 } else { 429 })
        .collect();
    assert_eq!(statuses, expected, "{}", replicas.logs());
}

#[test]
fn concurrent_requests_on_three_replicas_share_one_budget() {
    let (_db, _dir, replicas) = three_replicas_with_a_budget();
    // Three clients at once, one per replica, each asking for the whole
    // budget and more.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let workers: Vec<_> = replicas
            .servers
            .iter()
            .map(|server| {
                let (key, url) = (replicas.key.clone(), server.url("/v1/threads"));
                s.spawn(move || {
                    let http = client();
                    (0..2 * BUDGET)
                        .map(|_| {
                            http.get(&url)
                                .header("X-API-Key", &key)
                                .send()
                                .unwrap()
                                .status()
                                .as_u16()
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (admitted, refused),
        (BUDGET, 5 * BUDGET),
        "{statuses:?}\n{}",
        replicas.logs()
    );
}

#[test]
fn a_retry_that_reaches_another_replica_gets_the_first_answer() {
    let db = TestDb::new(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let replicas = Replicas::start(2, &db.url, dir.path(), &[]);
    let http = client();
    let create = |replica: usize, title: &str| {
        http.post(replicas.pick(replica).url("/v1/threads"))
            .header("X-API-Key", &replicas.key)
            .header("Idempotency-Key", "across-replicas-1")
            .json(&serde_json::json!({ "title": title }))
            .send()
            .unwrap()
    };
    let replayed = |r: &reqwest::blocking::Response| {
        r.headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    };
    let first = create(0, "once");
    assert_eq!(first.status(), 201, "{}", replicas.logs());
    assert!(!replayed(&first));
    let first: Value = first.json().unwrap();
    // The same replica again: it waits until the first answer is written
    // down, so once this returns the answer is in the database.
    let again = create(0, "once");
    assert!(replayed(&again), "{}", replicas.logs());
    // The other replica replays it from the database and runs nothing.
    let elsewhere = create(1, "once");
    assert_eq!(elsewhere.status(), 201);
    assert!(replayed(&elsewhere), "{}", replicas.logs());
    let elsewhere: Value = elsewhere.json().unwrap();
    assert_eq!(elsewhere["id"], first["id"]);
    // The key names that request on every replica.
    let other = create(1, "twice");
    assert_eq!(other.status(), 422);
    let other: Value = other.json().unwrap();
    assert_eq!(other["error"]["code"], "IDEMPOTENCY_KEY_REUSED", "{other}");
    let list: Value = http
        .get(replicas.pick(1).url("/v1/threads"))
        .header("X-API-Key", &replicas.key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}
