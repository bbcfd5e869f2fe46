//! `skein-bench`: load on the real server over loopback HTTP.
//!
//! Starts the release `skein` binary on SQLite, then on PostgreSQL, and runs
//! the sections of docs/benchmarks.md (`BENCH_SECTIONS` picks some): load
//! (`wrk` at 1 and 32 connections, every common operation, `/healthz` as the
//! ceiling), history, gateway, context, counting, rewind, openai (the OpenAI
//! dialect beside Freddy's), retries, forks, reconnect, events, replicas, sidebar (search and
//! unread on 1M threads) and idle (memory at rest on a large database).
//! Prints Markdown tables for docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use reqwest::blocking::Client;
use serde_json::{json, Value};
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::Server;
use std::time::{Duration, Instant};

#[path = "bench/forks.rs"]
mod forks;
#[path = "bench/load.rs"]
mod load;
#[path = "bench/openai.rs"]
mod openai;
#[path = "bench/retries.rs"]
mod retries;
#[path = "bench/search.rs"]
mod search;
#[path = "bench/sidebar.rs"]
mod sidebar;
#[path = "bench/streams.rs"]
mod streams;
#[path = "bench/turns.rs"]
mod turns;

/// Latencies of one benchmark row.
#[derive(Default)]
struct Timings(Vec<Duration>);

impl Timings {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }
}

/// The `q`th percentile (sorts in place).
fn percentile(lat: &mut [Duration], q: usize) -> Duration {
    lat.sort();
    lat[(lat.len() * q / 100).min(lat.len() - 1)]
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(backend: Backend, threads: usize, requests: usize, conns: usize) {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => "sqlite://data/skein.db".to_string(),
        Backend::Postgres => db.url.clone(),
    };
    std::env::set_var(
        "SKEIN_BIN",
        skein_tests::workspace_root().join("target/release/skein"),
    );
    let upstream = skein_tests::upstream::FastUpstream::start().unwrap();
    let config = dir.path().join("skein.toml");
    std::fs::write(&config, turns::config(&upstream)).unwrap();
    let server = Server::start_with(
        &url,
        dir.path(),
        &[("SKEIN_CONFIG", config.to_str().unwrap())],
    );
    let key = server.bootstrap_key.clone().unwrap();
    let base = server.base_url.clone();
    println!(
        "\n### {} — {threads} threads, {requests} requests per row, {conns} connections\n",
        backend.name()
    );
    let seeder = Seeder::new(&server, &url, dir.path());
    // A section of this server, then its memory after it.
    let traced = |name: &str, run: &dyn Fn()| {
        if section(name) {
            run();
            trace_memory(&server, name);
        }
    };
    traced("load", &|| {
        let secs = env_num("BENCH_SECONDS", 10) as u64;
        load::load(&base, &key, threads, secs, &|thread, n| {
            seeder.append(thread, n)
        });
    });
    traced("history", &|| {
        responses_by_history_length(&server, &key, &seeder, requests, conns);
    });
    traced("gateway", &|| {
        turns::gateway_overhead(&base, &key, &upstream, requests);
    });
    traced("context", &|| {
        turns::context_assembly(&base, &key, &|thread, n| seeder.append(thread, n), requests);
    });
    traced("counting", &|| {
        turns::token_counting();
        turns::reads_while_counting(&base, &key, requests);
    });
    traced("rewind", &|| {
        sidebar::rewind(&base, &key, &|thread, n| seeder.append(thread, n), 200);
    });
    traced("openai", &|| {
        openai::dialect(
            &base,
            &key,
            &|thread, n| seeder.append(thread, n),
            (requests / 20).max(100),
            env_num("BENCH_SECONDS", 10) as u64,
        );
    });
    traced("retries", &|| {
        retries::idempotency(&base, &key, requests.min(2_000));
    });
    traced("forks", &|| {
        forks::forks(
            &base,
            &key,
            &|thread, n| seeder.append(thread, n),
            &|| seeder.analyze(),
            200,
        );
    });
    let (rss, peak) = server.memory_kib();
    println!(
        "\nServer memory at the end of the {} run: RSS {:.1} MiB, peak (VmHWM) **{:.1} MiB**.\n",
        backend.name(),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    assert!(server.terminate());
    if section("reconnect") {
        streams::reconnect_latency(backend, env_num("BENCH_RECONNECTS", 500));
    }
    if section("events") {
        streams::event_storage_cost(backend, env_num("BENCH_STREAM_ROUNDS", 60));
    }
    if section("replicas") && backend == Backend::Postgres {
        streams::replica_scaling(30, env_num("BENCH_SECONDS", 10) as u64);
    }
    if section("sidebar") {
        sidebar::search_and_unread(
            backend,
            env_num("BENCH_SIDEBAR_THREADS", 1_000_000) as u64,
            env_num("BENCH_SIDEBAR_OWN", 100_000) as u64,
            500,
        );
    }
    if section("search") {
        search::messages(
            backend,
            env_num("BENCH_SEARCH_MESSAGES", 1_000_000) as u64,
            env_num("BENCH_SEARCH_OWN", 100_000) as u64,
            200,
        );
    }
    if section("idle") {
        load::idle(
            backend,
            env_num("BENCH_IDLE_THREADS", 1_000_000) as u64,
            env_num("BENCH_IDLE_MESSAGES_PER_THREAD", 10) as u64,
        );
    }
}

/// The server's memory after a section, on stderr (the tables go to stdout):
/// which section sets the peak.
fn trace_memory(server: &Server, section: &str) {
    let (rss, peak) = server.memory_kib();
    eprintln!(
        "memory after {section}: RSS {:.1} MiB, peak {:.1} MiB",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// Whether `BENCH_SECTIONS` (a comma-separated list; all when unset) names
/// this section: load, history, gateway, context, counting, rewind, openai,
/// retries, forks, reconnect, events, replicas (PostgreSQL only), sidebar, search, idle.
fn section(name: &str) -> bool {
    std::env::var("BENCH_SECTIONS")
        .map(|v| v.split(',').any(|s| s.trim() == name))
        .unwrap_or(true)
}

fn banner_value(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no '{label}' in the banner"))
}

/// Appends messages straight into the server's database (the caller's
/// scope, read from the start-up banner), far faster than the API.
struct Seeder {
    store: skein_persistence::Store,
    scope: skein_persistence::Scope,
}

impl Seeder {
    fn new(server: &Server, url: &str, workdir: &std::path::Path) -> Self {
        use skein_domain::{OrganizationId, UserId};
        let db_url = if url.starts_with("sqlite://") {
            format!("sqlite://{}", workdir.join("data/skein.db").display())
        } else {
            url.to_string()
        };
        Self {
            store: skein_persistence::Store::open(&db_url, Default::default()).unwrap(),
            scope: skein_persistence::Scope {
                organization_id: OrganizationId::parse(banner_value(
                    &server.banner,
                    "organization:",
                ))
                .unwrap(),
                user_id: UserId::parse(banner_value(&server.banner, "user:")).unwrap(),
                live: None,
            },
        }
    }

    /// Fresh planner statistics after seeding (PostgreSQL; SQLite's
    /// planner needs none for these indexes), as autovacuum would keep them
    /// in a running database.
    fn analyze(&self) {
        use diesel::RunQueryDsl;
        if self.store.backend() == Backend::Postgres {
            self.store
                .blocking(|conn| -> Result<(), skein_persistence::StoreError> {
                    diesel::sql_query("ANALYZE threads, messages").execute(conn)?;
                    Ok(())
                })
                .unwrap();
        }
    }

    /// `n` more messages (user and assistant in turn, 4 tokens each) in the
    /// caller's thread `thread`.
    fn append(&self, thread: &str, n: usize) {
        use skein_domain::{clock, Limits, MessageRole, NewMessage};
        let batch: Vec<NewMessage> = (0..n)
            .map(|i| {
                let role = if i % 2 == 0 {
                    MessageRole::User
                } else {
                    MessageRole::Assistant
                };
                NewMessage::text(role, format!("message number {i}"), 4)
            })
            .collect();
        let limits = Limits {
            max_messages_per_thread: 20_000,
            ..Limits::default()
        };
        self.store
            .blocking(|conn| {
                skein_persistence::messages::append(
                    conn,
                    &self.scope,
                    thread,
                    batch,
                    &limits,
                    clock::now(),
                )
            })
            .unwrap();
    }
}

/// `POST /v1/model/response` on threads of two history lengths that both
/// fill the model's window: the history read stops when the window is full,
/// so both should cost the same.
fn responses_by_history_length(
    server: &Server,
    key: &str,
    seeder: &Seeder,
    requests: usize,
    conns: usize,
) {
    let base = server.base_url.clone();
    let http = Client::new();
    let lengths = [1_000usize, 10_000];
    for len in lengths {
        for c in 0..conns {
            let r = http
                .post(format!("{base}/v1/model/response"))
                .header("X-API-Key", key)
                .json(&json!({"thread": format!("h{len}-{c}"), "inputs": [{"role": "user", "content": "start"}]}))
                .send()
                .unwrap();
            assert!(r.status().is_success());
        }
    }
    let seed_start = Instant::now();
    for len in lengths {
        for c in 0..conns {
            seeder.append(&format!("h{len}-{c}"), len);
        }
    }
    println!(
        "\nSeeded {} messages into {} threads in {:.1} s.\n",
        lengths.iter().sum::<usize>() * conns,
        lengths.len() * conns,
        seed_start.elapsed().as_secs_f64()
    );
    println!("| operation (echo model, 8,192-token window) | req/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    // Four rounds per length in the order A B B A A B B A, so that what drifts over
    // the run (the database, its WAL and search index growing with every
    // turn) weighs on both lengths alike.
    let per = (requests / 32 / conns).max(10);
    let mut lat: Vec<Vec<Duration>> = vec![Vec::new(); lengths.len()];
    let mut elapsed = vec![Duration::ZERO; lengths.len()];
    for i in [0, 1, 1, 0, 0, 1, 1, 0] {
        let len = lengths[i];
        let start = Instant::now();
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let url = format!("{base}/v1/model/response");
                let key = key.to_string();
                let thread = format!("h{len}-{c}");
                std::thread::spawn(move || {
                    let http = Client::new();
                    let mut lat = Vec::with_capacity(per);
                    for _ in 0..per {
                        let t = Instant::now();
                        let r = http
                            .post(&url)
                            .header("X-API-Key", &key)
                            .json(&json!({"model": "bench", "thread": thread, "inputs": [{"role": "user", "content": "How long is this thread?"}]}))
                            .send()
                            .unwrap();
                        assert!(r.status().is_success(), "{}", r.status());
                        let body: Value = r.json().unwrap();
                        assert!(body["output"][0]["content"][0]["text"].as_str().unwrap().starts_with("Echo ("));
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        lat[i].extend(handles.into_iter().flat_map(|h| h.join().unwrap()));
        elapsed[i] += start.elapsed();
    }
    for (i, len) in lengths.iter().enumerate() {
        let lat = &mut lat[i];
        lat.sort();
        println!(
            "| POST /v1/model/response, thread of {len} messages | {:.0} | {:.2} ms | {:.2} ms |",
            lat.len() as f64 / elapsed[i].as_secs_f64(),
            lat[lat.len() / 2].as_secs_f64() * 1e3,
            lat[lat.len() * 99 / 100].as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let threads = env_num("BENCH_THREADS", 20_000);
    let requests = env_num("BENCH_REQUESTS", 8_000);
    let conns = env_num("BENCH_CONNECTIONS", 8);
    // BENCH_BACKENDS picks some (sqlite, postgres; both when unset).
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let wanted = std::env::var("BENCH_BACKENDS")
            .map(|v| v.split(',').any(|b| b.trim() == backend.name()))
            .unwrap_or(true);
        if wanted {
            run(backend, threads, requests, conns);
        }
    }
}
