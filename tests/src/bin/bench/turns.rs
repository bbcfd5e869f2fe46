//! The turn engine's benchmarks: gateway overhead against calling the
//! upstream directly, the cost of context assembly by history length, and
//! thread reads while large bodies are being counted.

use super::load::post;
use super::{percentile, Timings};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use skein_tests::upstream::FastUpstream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The configuration file of the benchmark's server: `fast` routes to the
/// local upstream, everything else to echo; threads may hold 20,000
/// messages (the history benchmark needs more than the default 10,000).
pub fn config(upstream: &FastUpstream) -> String {
    format!(
        r#"
[limits]
max_messages_per_thread = 20000

[routing.providers.fast]
kind = "openai"
base_url = "{}"

[routing.providers.echo]
kind = "echo"

[[routing.models]]
pattern = "fast"
provider = "fast"
context_window = 8192

[routing.default]
provider = "echo"
context_window = 8192
"#,
        upstream.base_url
    )
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `POST /v1/model/response` through Skein (a thread of 10 messages, the
/// `fast` upstream) against the same chat completion sent to the upstream
/// directly; one connection each, requests alternating A/B so that both
/// see the same machine.
pub fn gateway_overhead(base: &str, key: &str, upstream: &FastUpstream, requests: usize) {
    let http = Client::new();
    let direct = Client::new();
    let n = requests.clamp(100, 1_000);
    for i in 0..n {
        for turn in 0..5 {
            let body = json!({"model": "seed", "thread": format!("g{i}"),
                              "inputs": [{"role": "user", "content": format!("question {turn}")}]});
            post(&http, &format!("{base}/v1/model/response"), key, &body);
        }
    }
    let messages: Vec<Value> = (0..11)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": format!("message {i}")})
        })
        .collect();
    let upstream_body = json!({"model": "fast", "stream": true, "messages": messages,
                               "stream_options": {"include_usage": true}});
    let mut through = Timings::default();
    let mut straight = Timings::default();
    for i in 0..n {
        let t = Instant::now();
        let r = direct
            .post(format!("{}/chat/completions", upstream.base_url))
            .json(&upstream_body)
            .send()
            .unwrap();
        assert!(r.status().is_success());
        r.bytes().unwrap();
        straight.push(t.elapsed());
        let t = Instant::now();
        let body = json!({"model": "fast", "thread": format!("g{i}"),
                          "inputs": [{"role": "user", "content": "one more"}]});
        let answer = post(&http, &format!("{base}/v1/model/response"), key, &body);
        through.push(t.elapsed());
        assert_eq!(
            answer["output"][0]["content"][0]["text"],
            skein_tests::upstream::ANSWER
        );
    }
    println!("\nGateway overhead: {n} turns on threads of 10 messages, one connection, A/B alternating.\n");
    println!("| path | p50 | p99 |");
    println!("|---|---:|---:|");
    for (name, t) in [
        ("upstream called directly", &mut straight),
        ("through Skein (`POST /v1/model/response`)", &mut through),
    ] {
        println!("| {name} | {:.3} ms | {:.3} ms |", ms(t.p(50)), ms(t.p(99)));
    }
    println!(
        "| **added by Skein** | **{:.3} ms** | |",
        ms(through.p(50).saturating_sub(straight.p(50)))
    );
}

/// Turns on threads whose context holds 11 and 328 messages (both fit the
/// window; each turn on a thread of its own, so the length stays exact):
/// the difference, per message, is the cost of assembling the context.
pub fn context_assembly(base: &str, key: &str, seed: &dyn Fn(&str, usize), requests: usize) {
    let http = Client::new();
    let n = (requests / 20).clamp(50, 200);
    let mut rows = Vec::new();
    for len in [10usize, 327] {
        for i in 0..n {
            let thread = format!("ctx{len}-{i}");
            post(
                &http,
                &format!("{base}/v1/model/response"),
                key,
                &json!({"thread": thread, "inputs": [{"role": "user", "content": "start"}]}),
            );
            seed(&thread, len - 2);
        }
        let mut t = Timings::default();
        for i in 0..n {
            let started = Instant::now();
            let answer = post(
                &http,
                &format!("{base}/v1/model/response"),
                key,
                &json!({"thread": format!("ctx{len}-{i}"), "inputs": [{"role": "user", "content": "count"}]}),
            );
            t.push(started.elapsed());
            let text = answer["output"][0]["content"][0]["text"].as_str().unwrap();
            assert!(
                text.starts_with(&format!("Echo ({} context", len + 1)),
                "{text}"
            );
        }
        rows.push((len + 1, t));
    }
    println!("\nContext assembly: {n} turns per length, each on a thread of its own (echo model, 8,192-token window, one connection).\n");
    println!("| messages in the context | p50 | p99 |");
    println!("|---|---:|---:|");
    for (len, t) in &mut rows {
        println!("| {len} | {:.3} ms | {:.3} ms |", ms(t.p(50)), ms(t.p(99)));
    }
    let extra = ms(rows[1].1.p(50)) - ms(rows[0].1.p(50));
    let more = rows[1].0 - rows[0].0;
    println!(
        "\nPer context message: {:.1} µs ({extra:.2} ms more for {more} more messages).",
        extra * 1e3 / more as f64
    );
}

/// `GET /v1/threads/{id}` on one connection at rest, then while two clients
/// post messages of 1 MB of random letters in a loop (the slowest text to
/// count): the p99 under load against the p99 at rest.
pub fn reads_while_counting(base: &str, key: &str, requests: usize) {
    let http = Client::new();
    let thread = post(
        &http,
        &format!("{base}/v1/threads"),
        key,
        &json!({"title": "reader"}),
    );
    let id = thread["id"].as_str().unwrap().to_string();
    let n = requests.clamp(500, 4_000);
    let read = |label: &str| {
        let mut t = Timings::default();
        for _ in 0..n {
            let started = Instant::now();
            let r = http
                .get(format!("{base}/v1/threads/{id}"))
                .header("X-API-Key", key)
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{label}: {}", r.status());
            r.bytes().unwrap();
            t.push(started.elapsed());
        }
        t
    };
    read("warm-up");
    let mut rest = read("at rest");
    let stop = Arc::new(AtomicBool::new(false));
    let posted = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..2)
        .map(|p| {
            let (base, key, stop, posted) = (
                base.to_string(),
                key.to_string(),
                stop.clone(),
                posted.clone(),
            );
            std::thread::spawn(move || {
                let http = Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap();
                let t = post(
                    &http,
                    &format!("{base}/v1/threads"),
                    &key,
                    &json!({"title": format!("big {p}")}),
                );
                let tid = t["id"].as_str().unwrap().to_string();
                while !stop.load(Ordering::Relaxed) {
                    let big = random_letters(1_000_000);
                    post(
                        &http,
                        &format!("{base}/v1/threads/{tid}/messages"),
                        &key,
                        &json!({"role": "user", "content": big}),
                    );
                    posted.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Reads begin once the first large body is on its way.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut loaded = read("under load");
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for p in posters {
        p.join().unwrap();
    }
    println!(
        "\nReads while two clients post 1 MB of random letters in a loop ({} posts in {:.1} s), {n} reads each:\n",
        posted.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
    println!("| `GET /v1/threads/{{id}}` | p50 | p99 |");
    println!("|---|---:|---:|");
    println!(
        "| at rest | {:.3} ms | {:.3} ms |",
        ms(rest.p(50)),
        ms(rest.p(99))
    );
    println!(
        "| while 1 MB bodies are counted | {:.3} ms | {:.3} ms |",
        ms(loaded.p(50)),
        ms(loaded.p(99))
    );
    println!(
        "\np99 under load / p99 at rest: **{:.1}x**",
        loaded.p(99).as_secs_f64() / rest.p(99).as_secs_f64()
    );
}

/// Counting 1 MB of random letters (one pre-tokenizer piece, the slowest
/// input for a byte-pair encoder) in this process: Skein's counter against
/// tiktoken-rs's `encode_ordinary`, the same count.
pub fn token_counting() {
    let text = random_letters(1_000_000);
    let time = |runs: usize, f: &dyn Fn(&str) -> usize| {
        let mut t = Timings::default();
        let mut n = 0;
        for _ in 0..runs {
            let started = Instant::now();
            n = f(&text);
            t.push(started.elapsed());
        }
        (n, t)
    };
    let tiktoken = tiktoken_rs::o200k_base_singleton();
    let (ours, mut skein) = time(9, &|s| skein_providers::tokens::count(s) as usize);
    let (theirs, mut reference) = time(3, &|s| tiktoken.encode_ordinary(s).len());
    assert_eq!(ours, theirs, "the counts differ");
    println!("\nCounting 1 MB of random letters ({ours} tokens) in one process, release build:\n");
    println!("| counter | p50 | slowest |");
    println!("|---|---:|---:|");
    for (name, t) in [
        ("Skein (`skein_providers::tokens::count`)", &mut skein),
        ("tiktoken-rs 0.12 (`encode_ordinary`)", &mut reference),
    ] {
        println!(
            "| {name} | {:.1} ms | {:.1} ms |",
            ms(t.p(50)),
            ms(t.p(100))
        );
    }
    println!(
        "\ntiktoken-rs / Skein: **{:.1}x**",
        reference.p(50).as_secs_f64() / skein.p(50).as_secs_f64()
    );
}

/// `n` random lower-case letters: a single word to o200k's pre-tokenizer,
/// the slowest input of a byte-pair encoder (upper-case letters would start
/// new words).
fn random_letters(n: usize) -> String {
    skein_domain::ids::random_base62(n)
        .bytes()
        .map(|b| (b'a' + b % 26) as char)
        .collect()
}

impl Timings {
    pub(crate) fn p(&mut self, q: usize) -> Duration {
        percentile(&mut self.0, q)
    }
}
