//! Message search on a large database (issue 13): `GET /v1/search/messages`
//! beside `GET /v1/threads` page 1, at 1 and 8 connections.

use super::percentile;
use super::sidebar::{ms, series, time_get};
use reqwest::blocking::Client;
use serde_json::Value;
use skein_persistence::{Backend, DbConnection};
use skein_tests::Server;
use std::time::{Duration, Instant};

/// Messages per seeded thread.
const PER_THREAD: u64 = 100;

/// p50 and p99 of `samples` GETs of `path` over `conns` connections at once.
fn time_get_parallel(
    base: &str,
    key: &str,
    path: &str,
    samples: usize,
    conns: usize,
) -> (Duration, Duration) {
    let per = samples.div_ceil(conns);
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (base, key, path) = (base.to_string(), key.to_string(), path.to_string());
            std::thread::spawn(move || {
                let http = Client::new();
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    let r = http
                        .get(format!("{base}{path}"))
                        .header("X-API-Key", &key)
                        .send()
                        .unwrap();
                    assert!(r.status().is_success(), "{path}: {}", r.status());
                    let _: Value = r.json().unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    (percentile(&mut lat, 50), percentile(&mut lat, 99))
}

/// `total` messages in threads of [`PER_THREAD`], `own` of them the
/// caller's (the rest another user's in the same organization), each
/// "Note N about topic(N % 500): lorem ipsum dolor", written through the
/// index's own triggers (SQLite) or generated column (PostgreSQL). Then
/// page 1 of `GET /v1/threads`, and searches for a topic (0.2% of the
/// messages), a phrase, and a word in every message, `samples` each at one
/// connection and at eight.
pub fn messages(backend: Backend, total: u64, own: u64, samples: usize) {
    let super::load::Bootstrapped {
        db: _db,
        dir,
        url,
        key,
        org,
        user,
        store,
    } = super::load::Bootstrapped::new(backend);
    let started = Instant::now();
    store
        .blocking(|conn| -> Result<(), skein_persistence::StoreError> {
            use diesel::RunQueryDsl;
            let sqlite = matches!(conn, DbConnection::Sqlite(_));
            let yes = if sqlite { "1" } else { "true" };
            diesel::sql_query(
                "INSERT INTO users (id, name, created_at) VALUES ('usr_bench_other', 'other', CURRENT_TIMESTAMP)",
            )
            .execute(conn)?;
            for (owner, from, count) in [("usr_bench_other", 0, total - own), (user.as_str(), total - own, own)] {
                let threads = count / PER_THREAD;
                let first = from / PER_THREAD;
                diesel::sql_query(format!(
                    "INSERT INTO threads (id, organization_id, user_id, metadata, status, state, \
                     message_count, visible_in_ui, created_at, updated_at, last_seq, unread) \
                     SELECT 'thread_find' || (t.n + {first}), '{org}', '{owner}', '{{}}', 'inactive', 'open', \
                     {PER_THREAD}, {yes}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, {PER_THREAD}, {} FROM {}",
                    if sqlite { "0" } else { "false" },
                    series(sqlite, threads, "t")
                ))
                .execute(conn)?;
                diesel::sql_query(format!(
                    "INSERT INTO messages (id, thread_pk, seq, role, content, token_count, metadata, \
                     attachments, created_at, updated_at) \
                     SELECT 'msg_find' || (m.n + {from}), \
                     (SELECT pk FROM threads WHERE organization_id = '{org}' \
                      AND id = 'thread_find' || ((m.n - 1) / {PER_THREAD} + 1 + {first})), \
                     (m.n - 1) % {PER_THREAD} + 1, 'user', \
                     'Note ' || (m.n + {from}) || ' about topic' || ((m.n + {from}) % 500) || ': lorem ipsum dolor', \
                     8, '{{}}', '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM {}",
                    series(sqlite, count, "m")
                ))
                .execute(conn)?;
            }
            if !sqlite {
                diesel::sql_query("ANALYZE threads, messages").execute(conn)?;
            }
            Ok(())
        })
        .unwrap();
    let seeded = started.elapsed();
    drop(store);
    let server = Server::start(&url, dir.path());
    let http = Client::new();
    let base = server.base_url.clone();
    println!(
        "\n{total} messages ({own} the caller's, in threads of {PER_THREAD}), seeded and indexed in {:.0} s; {samples} requests per row:\n",
        seeded.as_secs_f64()
    );
    println!("| request | p50 (1 conn) | p99 (1 conn) | p50 (8 conns) | p99 (8 conns) | p50 / page 1 (1 conn) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let rows = [
        (
            "GET /v1/threads (page 1, 20)",
            "/v1/threads?limit=20".to_string(),
        ),
        (
            "search topic123 (a word in 0.2% of messages)",
            "/v1/search/messages?q=topic123".to_string(),
        ),
        (
            "search \"about topic7\" (a phrase, 0.2%)",
            "/v1/search/messages?q=%22about%20topic7%22".to_string(),
        ),
        (
            "search lorem (every message)",
            "/v1/search/messages?q=lorem".to_string(),
        ),
    ];
    for (_, path) in &rows {
        time_get(&http, &base, &key, path, 10);
    }
    let mut plain = None;
    for (label, path) in &rows {
        let (p50, p99) = time_get(&http, &base, &key, path, samples);
        let (p50_8, p99_8) = time_get_parallel(&base, &key, path, samples, 8);
        let base_p50 = *plain.get_or_insert(p50);
        println!(
            "| {label} | {} | {} | {} | {} | {:.2} |",
            ms(p50),
            ms(p99),
            ms(p50_8),
            ms(p99_8),
            p50.as_secs_f64() / base_p50.as_secs_f64()
        );
    }
    let check: Value = http
        .get(format!("{base}/v1/search/messages?q=topic123&limit=100"))
        .header("X-API-Key", &key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    // 0.2% of the caller's messages: more than a page of 100.
    assert_eq!(check["data"].as_array().map(Vec::len), Some(100), "{check}");
    assert_eq!(check["has_more"], own / 500 > 100, "{check}");
    assert!(server.terminate());
}
