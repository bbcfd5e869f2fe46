//! Forks (issue 13, contract 11.2): forking a 10-message and a
//! 10,000-message thread, and reading a fork beside its parent.

use super::percentile;
use super::sidebar::ms;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `n` forks of each thread, interleaved on one connection, then `n` reads
/// of the newest page of a 10,000-message fork and of its parent.
pub fn forks(base: &str, key: &str, seed: &dyn Fn(&str, usize), analyze: &dyn Fn(), n: usize) {
    let http = Client::new();
    let post = |uri: String, body: Value| -> (Duration, Value) {
        let t = Instant::now();
        let r = http
            .post(format!("{base}{uri}"))
            .header("X-API-Key", key)
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{uri}: {}", r.status());
        let v: Value = r.json().unwrap();
        (t.elapsed(), v)
    };
    let get = |uri: String| -> (Duration, Value) {
        let t = Instant::now();
        let r = http
            .get(format!("{base}{uri}"))
            .header("X-API-Key", key)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{uri}: {}", r.status());
        let v: Value = r.json().unwrap();
        (t.elapsed(), v)
    };
    let run = std::process::id();
    let small = format!("fork-10-{run}");
    let large = format!("fork-10k-{run}");
    for (thread, total) in [(&small, 10), (&large, 10_000)] {
        post(
            "/v1/model/response".into(),
            json!({"model": "bench", "thread": thread,
                   "inputs": [{"role": "user", "content": "start"}]}),
        );
        seed(thread, total - 2);
    }
    analyze();
    let (_, first) = get(format!("/v1/threads/{large}/messages?order=asc&limit=2"));
    let first_answer = first["data"][1]["id"].as_str().unwrap().to_string();
    let fork = |thread: &str, body: Value| post(format!("/v1/threads/{thread}/fork"), body);
    for _ in 0..20 {
        fork(&small, json!({}));
        fork(&large, json!({}));
    }
    let (mut of_small, mut of_large, mut at_start) = (Vec::new(), Vec::new(), Vec::new());
    let mut big_fork = String::new();
    for _ in 0..n {
        of_small.push(fork(&small, json!({})).0);
        let (d, v) = fork(&large, json!({}));
        assert_eq!(v["message_count"], 10_000);
        big_fork = v["id"].as_str().unwrap().to_string();
        of_large.push(d);
        at_start.push(fork(&large, json!({ "message_id": first_answer })).0);
    }
    let page = |thread: &str| get(format!("/v1/threads/{thread}/messages?order=desc&limit=20")).0;
    let (mut read_parent, mut read_fork) = (Vec::new(), Vec::new());
    for _ in 0..n {
        read_parent.push(page(&large));
        read_fork.push(page(&big_fork));
    }
    let p50 = |v: &mut Vec<Duration>| percentile(v, 50);
    let p99 = |v: &mut Vec<Duration>| percentile(v, 99);
    let base_fork = p50(&mut of_small);
    let base_read = p50(&mut read_parent);
    println!("\nForks, one connection, {n} requests per row:\n");
    println!("| request | p50 | p99 | p50 ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| fork a 10-message thread | {} | {} | 1.00 |",
        ms(base_fork),
        ms(p99(&mut of_small))
    );
    let l50 = p50(&mut of_large);
    println!(
        "| fork a 10,000-message thread | {} | {} | {:.2} (of the 10-message fork) |",
        ms(l50),
        ms(p99(&mut of_large)),
        l50.as_secs_f64() / base_fork.as_secs_f64()
    );
    let s50 = p50(&mut at_start);
    println!(
        "| fork a 10,000-message thread at its 2nd message | {} | {} | {:.2} (of the 10-message fork) |",
        ms(s50),
        ms(p99(&mut at_start)),
        s50.as_secs_f64() / base_fork.as_secs_f64()
    );
    println!(
        "| newest 20 messages of the 10,000-message parent | {} | {} | 1.00 |",
        ms(base_read),
        ms(p99(&mut read_parent))
    );
    let f50 = p50(&mut read_fork);
    println!(
        "| newest 20 messages of its fork (shared history) | {} | {} | {:.2} (of the parent's page) |",
        ms(f50),
        ms(p99(&mut read_fork)),
        f50.as_secs_f64() / base_read.as_secs_f64()
    );
}
