//! The OpenAI dialect beside Freddy's, in the same run: a turn through
//! `POST /v1/responses` against `POST /v1/model/response` on the same
//! conversations, and the conversation operations against their thread
//! twins under `wrk` at 1 and 32 connections.

use super::load::{post, run_wrk, Measured, Row};
use super::percentile;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A new, empty conversation (`POST /v1/conversations`).
fn conversation(http: &Client, base: &str, key: &str) -> String {
    let body = post(http, &format!("{base}/v1/conversations"), key, &json!({}));
    body["id"].as_str().unwrap().to_string()
}

/// A new, empty thread (`POST /v1/threads`).
fn thread(http: &Client, base: &str, key: &str) -> String {
    let body = post(http, &format!("{base}/v1/threads"), key, &json!({}));
    body["id"].as_str().unwrap().to_string()
}

/// Both measurements of the section; prints its tables under one heading.
/// `seed(thread, n)` appends messages straight into the database; `per`
/// turns of each dialect per thread size; `secs` per `wrk` row.
pub fn dialect(base: &str, key: &str, seed: &dyn Fn(&str, usize), per: usize, secs: u64) {
    let started = Instant::now();
    println!("\n#### OpenAI dialect\n");
    turns(base, key, seed, per);
    operations(base, key, seed, secs);
    println!(
        "The OpenAI dialect section took {:.0} s.\n",
        started.elapsed().as_secs_f64()
    );
}

/// `POST /v1/responses` (`conversation`) against `POST /v1/model/response`
/// (`thread`) on the same conversations, one connection, the two
/// alternating request by request (the first of each pair alternating
/// too). Each conversation takes two turns of each, so that the history
/// stays near its seeded length: `per / 2` conversations per size.
fn turns(base: &str, key: &str, seed: &dyn Fn(&str, usize), per: usize) {
    let http = Client::new();
    let responses = format!("{base}/v1/responses");
    let freddy = format!("{base}/v1/model/response");
    let openai_turn = |conv: &str| {
        let t = Instant::now();
        let r = http
            .post(&responses)
            .header("X-API-Key", key)
            .json(&json!({"model": "bench", "conversation": conv, "input": "How long is this thread?"}))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "/v1/responses: {}", r.status());
        let body: Value = r.json().unwrap();
        let took = t.elapsed();
        assert_eq!(body["status"], "completed", "{body}");
        assert_eq!(body["conversation"]["id"], conv, "{body}");
        let text = body["output"][0]["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("Echo ("), "{text}");
        took
    };
    let freddy_turn = |conv: &str| {
        let t = Instant::now();
        let r = http
            .post(&freddy)
            .header("X-API-Key", key)
            .json(&json!({"model": "bench", "thread": conv,
                          "inputs": [{"role": "user", "content": "How long is this thread?"}]}))
            .send()
            .unwrap();
        assert!(
            r.status().is_success(),
            "/v1/model/response: {}",
            r.status()
        );
        let body: Value = r.json().unwrap();
        let took = t.elapsed();
        let text = body["output"][0]["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("Echo ("), "{text}");
        took
    };
    let pool = (per / 2).max(1);
    println!(
        "A turn (echo model, 8,192-token window) through each dialect on the same conversations: one connection, \
         {per} of each per size, alternating request by request; {pool} conversations per size created with \
         `POST /v1/conversations` and seeded, each taking two turns of each (so its history grows by at most 6 \
         messages before a measured turn).\n"
    );
    println!("| turn | conversation of | p50 | p99 | p50 / Freddy's |");
    println!("|---|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for (size, label) in [(10usize, "10"), (1_000, "1,000")] {
        let seeding = Instant::now();
        let convs: Vec<String> = (0..pool).map(|_| conversation(&http, base, key)).collect();
        for c in &convs {
            seed(c, size);
        }
        let seeded = seeding.elapsed();
        // Warm both paths on a conversation of the same size.
        let warm = conversation(&http, base, key);
        seed(&warm, size);
        for _ in 0..10 {
            openai_turn(&warm);
            freddy_turn(&warm);
        }
        let (mut a, mut b) = (Vec::with_capacity(per), Vec::with_capacity(per));
        for i in 0..per {
            let conv = &convs[i % pool];
            if i % 2 == 0 {
                a.push(openai_turn(conv));
                b.push(freddy_turn(conv));
            } else {
                b.push(freddy_turn(conv));
                a.push(openai_turn(conv));
            }
        }
        let (a50, a99) = (percentile(&mut a, 50), percentile(&mut a, 99));
        let (b50, b99) = (percentile(&mut b, 50), percentile(&mut b, 99));
        let ratio = a50.as_secs_f64() / b50.as_secs_f64();
        ratios.push((label, ratio, seeded));
        println!(
            "| `POST /v1/responses` (`conversation`) | {label} messages | {} | {} | **{ratio:.2}** |",
            ms(a50),
            ms(a99)
        );
        println!(
            "| `POST /v1/model/response` (`thread`) | {label} messages | {} | {} | 1.00 |",
            ms(b50),
            ms(b99)
        );
    }
    println!();
    for (label, ratio, seeded) in ratios {
        println!(
            "- {label} messages: OpenAI p50 / Freddy p50 **{ratio:.2}** ({}; target <= 1.10); {pool} conversations seeded in {:.1} s.",
            if ratio <= 1.10 { "within" } else { "OVER" },
            seeded.as_secs_f64()
        );
    }
    println!();
}

/// The conversation operations beside their Freddy twins, `wrk` at 1 and
/// 32 connections, `secs` per row, each pair measured back to back.
/// Reads go to one conversation of 1,000 messages through both dialects
/// (a conversation is a thread); appends rotate over fresh conversations
/// and threads of 1,000 messages each, per connection count, enough that
/// none nears the 20,000-message cap.
fn operations(base: &str, key: &str, seed: &dyn Fn(&str, usize), secs: u64) {
    let http = Client::new();
    let seeding = Instant::now();
    let listed = conversation(&http, base, key);
    seed(&listed, 1_000);
    // At most 18,000 appends per conversation at 20,000 appends/s.
    let writers = (secs as usize * 20_000).div_ceil(18_000).max(16);
    let mut pools = Vec::new();
    for _ in 0..2 {
        let convs: Vec<String> = (0..writers)
            .map(|_| conversation(&http, base, key))
            .collect();
        let threads: Vec<String> = (0..writers).map(|_| thread(&http, base, key)).collect();
        for t in convs.iter().chain(&threads) {
            seed(t, 1_000);
        }
        pools.push((convs, threads));
    }
    println!(
        "Conversation operations beside their Freddy twins: `wrk`, closed loop, keep-alive, {secs} s per row, \
         each pair back to back; reads on one conversation of 1,000 messages through both dialects, appends \
         rotating over {writers} conversations (threads) of 1,000 messages, fresh for each connection count \
         ({} conversations and threads seeded in {:.1} s).\n",
        1 + 4 * writers,
        seeding.elapsed().as_secs_f64()
    );
    println!(
        "| operation | conns | req/s | p50 | p99 | Freddy twin | req/s | p50 | p99 | req/s / twin's |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for (conns, (convs, threads)) in [1usize, 32].into_iter().zip(pools) {
        let pairs = [
            (
                Row {
                    bodies: vec![json!({})],
                    ..Row::new(
                        "`POST /v1/conversations` (create)",
                        "POST",
                        "/v1/conversations",
                    )
                },
                Row {
                    bodies: vec![json!({})],
                    ..Row::new("`POST /v1/threads`", "POST", "/v1/threads")
                },
            ),
            (
                Row {
                    paths: convs
                        .iter()
                        .map(|c| format!("/v1/conversations/{c}/items"))
                        .collect(),
                    bodies: vec![
                        json!({"items": [{"role": "user", "content": "one more message"}]}),
                    ],
                    ..Row::new(
                        "`POST /v1/conversations/{id}/items` (append one)",
                        "POST",
                        "",
                    )
                },
                Row {
                    paths: threads
                        .iter()
                        .map(|t| format!("/v1/threads/{t}/messages"))
                        .collect(),
                    bodies: vec![json!({"role": "user", "content": "one more message"})],
                    ..Row::new("`POST /v1/threads/{id}/messages`", "POST", "")
                },
            ),
            (
                Row::new(
                    "`GET /v1/conversations/{id}/items?limit=20` (newest 20 of 1,000)",
                    "GET",
                    format!("/v1/conversations/{listed}/items?limit=20"),
                ),
                Row::new(
                    "`GET /v1/threads/{id}/messages?order=desc&limit=20`",
                    "GET",
                    format!("/v1/threads/{listed}/messages?order=desc&limit=20"),
                ),
            ),
            (
                Row::new(
                    "`GET /v1/conversations/{id}` (retrieve)",
                    "GET",
                    format!("/v1/conversations/{listed}"),
                ),
                Row::new(
                    "`GET /v1/threads/{id}`",
                    "GET",
                    format!("/v1/threads/{listed}"),
                ),
            ),
        ];
        for (openai, freddy) in &pairs {
            let a: Measured = run_wrk(base, key, openai, conns, secs);
            let b: Measured = run_wrk(base, key, freddy, conns, secs);
            println!(
                "| {} | {conns} | {:.0} | {} | {} | {} | {:.0} | {} | {} | {:.2} |",
                openai.name,
                a.rps,
                ms(a.p50),
                ms(a.p99),
                freddy.name,
                b.rps,
                ms(b.p50),
                ms(b.p99),
                a.rps / b.rps
            );
        }
    }
    println!();
}
