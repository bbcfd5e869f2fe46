//! Safe retries (issue 13): a write with an `Idempotency-Key` beside the
//! same write without one, and a replay beside a `GET` of the thread.

use super::percentile;
use super::sidebar::ms;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// p50 and p99 of `n` sequential calls of `a` and of `b`, taken in turns
/// (a, b, a, b, ...) so that the machine's drift during the phase weighs
/// on both alike.
fn time_pair(
    n: usize,
    mut a: impl FnMut(usize),
    mut b: impl FnMut(usize),
) -> ((Duration, Duration), (Duration, Duration)) {
    let (mut lat_a, mut lat_b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let t = Instant::now();
        a(i);
        lat_a.push(t.elapsed());
        let t = Instant::now();
        b(i);
        lat_b.push(t.elapsed());
    }
    let summary = |lat: &mut Vec<Duration>| (percentile(lat, 50), percentile(lat, 99));
    (summary(&mut lat_a), summary(&mut lat_b))
}

/// `POST /v1/threads` without and with a fresh key, a replay of one key,
/// and `GET /v1/threads/{id}`, `n` each on one connection.
pub fn idempotency(base: &str, key: &str, n: usize) {
    let http = Client::new();
    let create = |idem: Option<String>| {
        let mut req = http
            .post(format!("{base}/v1/threads"))
            .header("X-API-Key", key)
            .json(&json!({"title": "retry me", "metadata": {"bench": "retries"}}));
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json::<Value>().unwrap()
    };
    let run = format!("{}", std::process::id());
    // Warm both paths.
    for i in 0..50 {
        create(None);
        create(Some(format!("warm-{run}-{i}")));
    }
    let thread = create(Some(format!("replayed-{run}")));
    let id = thread["id"].as_str().unwrap().to_string();
    let (plain, keyed) = time_pair(
        n,
        |_| {
            create(None);
        },
        |i| {
            create(Some(format!("first-{run}-{i}")));
        },
    );
    let (get, replay) = time_pair(
        n,
        |_| {
            let r = http
                .get(format!("{base}/v1/threads/{id}"))
                .header("X-API-Key", key)
                .send()
                .unwrap();
            assert!(r.status().is_success());
            let _: Value = r.json().unwrap();
        },
        |_| {
            let again = create(Some(format!("replayed-{run}")));
            assert_eq!(again["id"], id.as_str());
        },
    );
    println!(
        "\nIdempotency-Key, one connection, {n} requests per row (each pair of rows taken in turns):\n"
    );
    println!("| request | p50 | p99 | p50 ratio |");
    println!("|---|---:|---:|---:|");
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "| POST /v1/threads | {} | {} | 1.00 |",
        ms(plain.0),
        ms(plain.1)
    );
    println!(
        "| POST /v1/threads with a new Idempotency-Key | {} | {} | {:.2} (of the plain POST) |",
        ms(keyed.0),
        ms(keyed.1),
        ratio(keyed.0, plain.0)
    );
    println!(
        "| GET /v1/threads/{{id}} | {} | {} | 1.00 |",
        ms(get.0),
        ms(get.1)
    );
    println!(
        "| POST /v1/threads replayed (same key) | {} | {} | {:.2} (of the GET) |",
        ms(replay.0),
        ms(replay.1),
        ratio(replay.0, get.0)
    );
}
