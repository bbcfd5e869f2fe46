//! The sidebar's reads on a large database (issue 11): title search and the
//! unread list beside a plain first page, and a rewind beside a plain turn
//! on a 10,000-message thread.

use super::load::post;
use super::percentile;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use skein_persistence::{Backend, DbConnection};
use skein_tests::Server;
use std::time::{Duration, Instant};

/// `n` = 1..=count as a table `alias(n)`, in either dialect.
pub(super) fn series(sqlite: bool, count: u64, alias: &str) -> String {
    if sqlite {
        format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s \
             WHERE n < {count}) SELECT n FROM s) AS {alias}"
        )
    } else {
        format!("generate_series(1, {count}) AS {alias}(n)")
    }
}

/// p50 and p99 of `samples` sequential GETs of `path` (fewer, but at
/// least 20, when they take more than 10 s in all).
pub(super) fn time_get(
    http: &Client,
    base: &str,
    key: &str,
    path: &str,
    samples: usize,
) -> (Duration, Duration) {
    let mut lat = Vec::with_capacity(samples);
    let started = Instant::now();
    for i in 0..samples {
        if i >= 20 && started.elapsed() > Duration::from_secs(10) {
            break;
        }
        let t = Instant::now();
        let r = http
            .get(format!("{base}{path}"))
            .header("X-API-Key", key)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let _: Value = r.json().unwrap();
        lat.push(t.elapsed());
    }
    (percentile(&mut lat, 50), percentile(&mut lat, 99))
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `total` threads in the database, `own` of them the caller's (the rest
/// another user's in the same organization), titled "Chat N on topic-(N %
/// 500) notes"; 1% of the caller's are unread. Then `GET /v1/threads`
/// page 1, `?search=` for one topic (0.2% of the titles) and for a word in
/// every title, and `GET /v1/threads/unread`, one connection, `samples`
/// each.
pub fn search_and_unread(backend: Backend, total: u64, own: u64, samples: usize) {
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
            let (yes, no) = if sqlite { ("1", "0") } else { ("true", "false") };
            diesel::sql_query(
                "INSERT INTO users (id, name, created_at) VALUES ('usr_bench_other', 'other', CURRENT_TIMESTAMP)",
            )
            .execute(conn)?;
            // The other user's threads first (older), then the caller's.
            for (owner, from, count) in [("usr_bench_other", 0, total - own), (user.as_str(), total - own, own)] {
                diesel::sql_query(format!(
                    "INSERT INTO threads (id, organization_id, user_id, title, title_folded, metadata, \
                     status, state, message_count, visible_in_ui, created_at, updated_at, last_seq, unread) \
                     SELECT 'thread_side' || (t.n + {from}), '{org}', '{owner}', \
                     'Chat ' || (t.n + {from}) || ' on topic-' || ((t.n + {from}) % 500) || ' notes', \
                     'chat ' || (t.n + {from}) || ' on topic-' || ((t.n + {from}) % 500) || ' notes', \
                     CASE WHEN t.n % 500 = 7 THEN '{{\"topic\": \"rare\"}}' ELSE '{{}}' END, 'inactive', \
                     CASE WHEN t.n % 1000 = 3 THEN 'archived' ELSE 'open' END, 0, {yes}, \
                     CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, \
                     CASE WHEN t.n % 100 = 0 THEN {yes} ELSE {no} END FROM {}",
                    series(sqlite, count, "t")
                ))
                .execute(conn)?;
            }
            if !sqlite {
                // What autovacuum does after such a load: statistics for the
                // planner and for the search's choice of trigram.
                diesel::sql_query("ANALYZE threads, title_grams").execute(conn)?;
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
        "\n{} threads ({} the caller's, 1% of those unread), seeded in {:.0} s; one connection, {samples} requests per row:\n",
        total,
        own,
        seeded.as_secs_f64()
    );
    println!("| request | p50 | p99 | p50 / page 1 |");
    println!("|---|---:|---:|---:|");
    let rows = [
        ("GET /v1/threads (page 1, 20)", "/v1/threads?limit=20"),
        (
            "GET /v1/threads?search=topic-123%20notes (0.2% of titles)",
            "/v1/threads?limit=20&search=topic-123%20notes",
        ),
        (
            "GET /v1/threads?search=chat (every title)",
            "/v1/threads?limit=20&search=chat",
        ),
        ("GET /v1/threads/unread (1,000 ids)", "/v1/threads/unread"),
        (
            "GET /v1/threads?state=archived (0.1% of threads)",
            "/v1/threads?limit=20&state=archived",
        ),
        (
            "GET /v1/threads?metadata[topic]=rare (0.2% of threads)",
            "/v1/threads?limit=20&metadata%5Btopic%5D=rare",
        ),
    ];
    // Warm every statement and page first.
    for (_, path) in rows {
        time_get(&http, &base, &key, path, 20);
    }
    let mut plain = None;
    for (label, path) in rows {
        let (p50, p99) = time_get(&http, &base, &key, path, samples);
        let base_p50 = *plain.get_or_insert(p50);
        println!(
            "| {label} | {} | {} | {:.2} |",
            ms(p50),
            ms(p99),
            p50.as_secs_f64() / base_p50.as_secs_f64()
        );
    }
    let check = http
        .get(format!("{base}/v1/threads/unread"))
        .header("X-API-Key", &key)
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(
        check["unread_count"],
        own / 100,
        "{}",
        check["unread_count"]
    );
    assert!(server.terminate());
}

/// A plain turn and a rewind (`previous_message_id`: the last exchange is
/// removed and answered again) on a thread of 10,000 messages, `per` of
/// each, one connection.
pub fn rewind(base: &str, key: &str, seed: &dyn Fn(&str, usize), per: usize) {
    let http = Client::new();
    let url = format!("{base}/v1/model/response");
    let thread = "rewind-10k";
    post(
        &http,
        &url,
        key,
        &json!({"thread": thread, "inputs": [{"role": "user", "content": "start"}]}),
    );
    seed(thread, 10_000);
    let turn = |extra: Value| {
        let mut body = json!({"model": "bench", "thread": thread,
                              "inputs": [{"role": "user", "content": "And now?"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let t = Instant::now();
        let r = http
            .post(&url)
            .header("X-API-Key", key)
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let _: Value = r.json().unwrap();
        t.elapsed()
    };
    // The message before the newest exchange: a rewind to it removes the
    // exchange, and the turn puts a new one in its place.
    let before_last = || -> String {
        let page: Value = http
            .get(format!(
                "{base}/v1/threads/{thread}/messages?order=desc&limit=3"
            ))
            .header("X-API-Key", key)
            .send()
            .unwrap()
            .json()
            .unwrap();
        page["data"][2]["id"].as_str().unwrap().to_string()
    };
    for _ in 0..10 {
        turn(json!({}));
        let m = before_last();
        turn(json!({ "previous_message_id": m }));
    }
    let (mut plain, mut rewound) = (Vec::new(), Vec::new());
    for _ in 0..per {
        plain.push(turn(json!({})));
        let m = before_last();
        rewound.push(turn(json!({ "previous_message_id": m })));
    }
    let (p50, r50) = (percentile(&mut plain, 50), percentile(&mut rewound, 50));
    println!("\n| turn on a thread of 10,000 messages (echo model) | p50 | p99 |");
    println!("|---|---:|---:|");
    println!(
        "| plain | {} | {} |",
        ms(p50),
        ms(percentile(&mut plain, 99))
    );
    println!(
        "| rewind (`previous_message_id`, the last exchange replaced) | {} | {} |",
        ms(r50),
        ms(percentile(&mut rewound, 99))
    );
    println!(
        "\nRewind p50 / plain p50: **{:.2}**.\n",
        r50.as_secs_f64() / p50.as_secs_f64()
    );
}
