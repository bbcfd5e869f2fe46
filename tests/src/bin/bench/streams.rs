//! Streams: how fast a reconnect replays its first event while 100 streams
//! are open, what storing a response's events costs a streamed turn, and
//! (PostgreSQL) the throughput of three replicas on one database against
//! one.

use super::load::{post, run_wrk, Row};
use super::turns::ms;
use super::Timings;
use reqwest::blocking::{Client, Response};
use serde_json::json;
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::upstream::{PacedUpstream, FLOOD_DELTAS};
use skein_tests::Server;
use std::io::{BufRead, BufReader};
use std::time::Instant;

/// A server of its own on a fresh database, routed to `upstream`.
struct Fresh {
    server: Server,
    key: String,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

fn fresh(backend: Backend, upstream: &PacedUpstream, env: &[(&str, &str)]) -> Fresh {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => "sqlite://data/skein.db".to_string(),
        Backend::Postgres => db.url.clone(),
    };
    let cfg = upstream.config(dir.path());
    let mut all = vec![("SKEIN_CONFIG", cfg.as_str())];
    all.extend_from_slice(env);
    let server = Server::start_with(&url, dir.path(), &all);
    let key = server.bootstrap_key.clone().unwrap();
    Fresh {
        server,
        key,
        _dir: dir,
        _db: db,
    }
}

fn stream(http: &Client, url: String, key: &str, body: Option<serde_json::Value>) -> Response {
    let req = match body {
        Some(b) => http.post(url).json(&b),
        None => http.get(url),
    };
    let r = req.header("X-API-Key", key).send().unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r
}

/// Reads until the first `data:` line; returns the reader for more.
fn first_data(r: Response) -> BufReader<Response> {
    let mut reader = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        if line.starts_with("data: ") {
            return reader;
        }
    }
}

/// Reads to `data: [DONE]`; the words of the streamed answer (a slow
/// reader may get several upstream deltas merged into one frame).
fn words_to_done(r: Response) -> usize {
    let mut reader = BufReader::new(r);
    let mut line = String::new();
    let mut words = 0;
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
        if let Some(data) = line.strip_prefix("data: ") {
            if data.starts_with("[DONE]") {
                return words;
            }
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            if v["event"] == "response.content_delta" {
                words += v["delta"].as_str().unwrap().split_whitespace().count();
            }
        }
    }
}

const OPEN: usize = 100;

/// The reconnect latency: with 100 responses running (their upstreams
/// stalled) and 100 reconnected streams following them, the time from a
/// new `GET .../stream` to its first replayed event.
pub fn reconnect_latency(backend: Backend, samples: usize) {
    let upstream = PacedUpstream::start().unwrap();
    let f = fresh(backend, &upstream, &[]);
    let http = Client::new();
    let base = f.server.base_url.clone();
    let running: Vec<_> = (0..OPEN)
        .map(|i| {
            let body = json!({"model": "stall", "thread": format!("s{i}"), "stream": true,
                              "inputs": [{"role": "user", "content": "wait"}]});
            first_data(stream(
                &http,
                format!("{base}/v1/model/response"),
                &f.key,
                Some(body),
            ))
        })
        .collect();
    let following: Vec<_> = (0..OPEN)
        .map(|i| {
            first_data(stream(
                &http,
                format!("{base}/v1/model/response/s{i}/stream"),
                &f.key,
                None,
            ))
        })
        .collect();
    let mut first = Timings::default();
    for j in 0..samples {
        let t = Instant::now();
        let r = stream(
            &http,
            format!(
                "{base}/v1/model/response/s{}/stream?last_event_id=0",
                j % OPEN
            ),
            &f.key,
            None,
        );
        drop(first_data(r));
        first.push(t.elapsed());
    }
    println!(
        "\nReconnect ({}): {samples} reconnects while {OPEN} responses run and {OPEN} reconnected streams follow them; time from the GET to the first replayed event.\n",
        backend.name()
    );
    println!("| p50 | p99 |");
    println!("|---:|---:|");
    println!(
        "| {:.2} ms | **{:.2} ms** |",
        ms(first.p(50)),
        ms(first.p(99))
    );
    drop(following);
    drop(running);
    assert!(f.server.terminate());
}

/// Tokens per second through a streamed turn of [`FLOOD_DELTAS`] deltas,
/// with the events stored and without (two servers, alternating).
pub fn event_storage_cost(backend: Backend, rounds: usize) {
    let upstream = PacedUpstream::start().unwrap();
    let stored = fresh(backend, &upstream, &[]);
    let unstored = fresh(
        backend,
        &upstream,
        &[("SKEIN_STORE_STREAM_EVENTS", "false")],
    );
    let http = Client::new();
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        // A B B A: neither server always goes first.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let f = [&stored, &unstored][i];
            let body = json!({"model": "flood", "thread": format!("f{round}"), "stream": true,
                              "inputs": [{"role": "user", "content": "go"}]});
            let t = Instant::now();
            let r = stream(
                &http,
                format!("{}/v1/model/response", f.server.base_url),
                &f.key,
                Some(body),
            );
            let words = words_to_done(r);
            assert_eq!(words, FLOOD_DELTAS, "the whole answer arrived");
            rates[i].push(words as f64 / t.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on, off) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "\nStoring events ({}): a streamed turn of {FLOOD_DELTAS} deltas, {rounds} rounds alternating (A B B A) between a server that stores events and one that does not (median).\n",
        backend.name()
    );
    println!("| events | tokens/s |");
    println!("|---|---:|");
    println!("| stored (default) | {on:.0} |");
    println!("| not stored (`SKEIN_STORE_STREAM_EVENTS=false`) | {off:.0} |");
    println!("| **stored / not stored** | **{:.2}** |", on / off);
    assert!(stored.server.terminate());
    assert!(unstored.server.terminate());
}

/// Get, create and append with three replicas on one PostgreSQL database
/// against one replica, the same total connections (one `wrk` per replica).
pub fn replica_scaling(conns: usize, secs: u64) {
    let upstream = PacedUpstream::start().unwrap();
    let db = TestDb::new(Backend::Postgres);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |i: usize| {
        let cfg = upstream.config(dirs[i].path());
        Server::start_with(&db.url, dirs[i].path(), &[("SKEIN_CONFIG", &cfg)])
    };
    let first = start(0);
    let key = first.bootstrap_key.clone().unwrap();
    let http = Client::new();
    let base = first.base_url.clone();
    let thread = post(
        &http,
        &format!("{base}/v1/threads"),
        &key,
        &json!({"title": "read"}),
    );
    let some_id = thread["id"].as_str().unwrap().to_string();
    let writers: Vec<String> = (0..256).map(|i| format!("w{i}")).collect();
    for w in &writers {
        post(
            &http,
            &format!("{base}/v1/model/response"),
            &key,
            &json!({"thread": w, "inputs": [{"role": "user", "content": "start"}]}),
        );
    }
    let rows = [
        Row::new(
            "`GET /v1/threads/{id}`",
            "GET",
            format!("/v1/threads/{some_id}"),
        ),
        Row {
            bodies: vec![json!({"title": "new"})],
            ..Row::new("`POST /v1/threads` (create)", "POST", "/v1/threads")
        },
        Row {
            paths: writers
                .iter()
                .map(|w| format!("/v1/threads/{w}/messages"))
                .collect(),
            bodies: vec![json!({"role": "user", "content": "one more message"})],
            ..Row::new("`POST /v1/threads/{id}/messages` (append)", "POST", "")
        },
    ];
    let one: Vec<f64> = rows
        .iter()
        .map(|row| run_wrk(&base, &key, row, conns, secs).rps)
        .collect();
    let servers = [first, start(1), start(2)];
    let bases: Vec<String> = servers.iter().map(|s| s.base_url.clone()).collect();
    let three: Vec<f64> = rows
        .iter()
        .map(|row| {
            std::thread::scope(|scope| {
                let runs: Vec<_> = bases
                    .iter()
                    .map(|b| {
                        let key = &key;
                        scope.spawn(move || run_wrk(b, key, row, conns / 3, secs).rps)
                    })
                    .collect();
                runs.into_iter().map(|r| r.join().unwrap()).sum()
            })
        })
        .collect();
    println!(
        "\nReplicas (PostgreSQL): {conns} connections in all, {secs} s per row; one replica, then three on the same database (one `wrk` of {} connections each).\n",
        conns / 3
    );
    println!("| operation | 1 replica req/s | 3 replicas req/s | scaling |");
    println!("|---|---:|---:|---:|");
    for (row, (a, b)) in rows.iter().zip(one.iter().zip(&three)) {
        println!("| {} | {a:.0} | {b:.0} | **{:.2}x** |", row.name, b / a);
    }
    for s in servers {
        let logs = s.logs();
        assert!(s.terminate(), "a replica did not stop cleanly:\n{logs}");
    }
}
