//! What users feel: `wrk` (closed loop, keep-alive) at 1 and 32 connections
//! on every common operation, with `GET /healthz` of the same run as the
//! ceiling; every row also as a fraction of that ceiling.

use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// One measured row. Requests cycle over its paths and its bodies (writes
/// rotate over many threads, so that none reaches its message cap).
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) method: &'static str,
    pub(crate) paths: Vec<String>,
    pub(crate) bodies: Vec<Value>,
}

impl Row {
    pub(crate) fn new(
        name: impl Into<String>,
        method: &'static str,
        path: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            method,
            paths: vec![path.into()],
            bodies: Vec::new(),
        }
    }
}

/// What `wrk` reported.
pub(crate) struct Measured {
    pub(crate) rps: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

fn lua_string(s: &str) -> String {
    format!("{s:?}")
}

/// The wrk script of a row. Each of wrk's threads walks its own share of
/// the row's paths and bodies, so two connections never write the same
/// thread at once (a turn's thread would answer 409 `THREAD_BUSY`).
fn script(key: &str, row: &Row, threads: usize) -> String {
    let list = |items: Vec<String>| {
        items
            .iter()
            .map(|i| lua_string(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"local paths = {{{paths}}}
local bodies = {{{bodies}}}
local threads = {threads}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local i = 0
function init(args)
  i = 0
end
wrk.headers["X-API-Key"] = {key}
wrk.headers["Content-Type"] = "application/json"
local function pick(list)
  local share = math.max(1, math.floor(#list / threads))
  local first = (id or 0) * share
  return list[(first + i % share) % #list + 1]
end
request = function()
  i = i + 1
  local body = nil
  if #bodies > 0 then body = pick(bodies) end
  return wrk.format({method}, pick(paths), nil, body)
end
"#,
        paths = list(row.paths.clone()),
        bodies = list(row.bodies.iter().map(Value::to_string).collect()),
        key = lua_string(key),
        method = lua_string(row.method),
    )
}

fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

pub(crate) fn run_wrk(base: &str, key: &str, row: &Row, conns: usize, secs: u64) -> Measured {
    static SCRIPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SCRIPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("skein-bench-{}-{n}.lua", std::process::id()));
    let threads = conns.min(2);
    std::fs::write(&file, script(key, row, threads)).unwrap();
    let out = Command::new("wrk")
        .args([
            format!("-t{threads}"),
            format!("-c{conns}"),
            format!("-d{secs}s"),
            "--latency".into(),
            "-s".into(),
            file.display().to_string(),
            format!("{base}{}", row.paths[0]),
        ])
        .output()
        .expect("wrk runs (scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !text.contains("Non-2xx or 3xx responses"),
        "{}: some answers were errors:\n{text}",
        row.name
    );
    let line = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{}: no '{prefix}' in wrk's output:\n{text}", row.name))
            .trim()
            .to_string()
    };
    Measured {
        rps: line("Requests/sec:").parse().unwrap(),
        p50: duration(&line("50%")).unwrap(),
        p99: duration(&line("99%")).unwrap(),
    }
}

pub(crate) fn post(http: &Client, url: &str, key: &str, body: &Value) -> Value {
    let r = http
        .post(url)
        .header("X-API-Key", key)
        .json(body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().unwrap()
}

/// Seeds what the rows read, then measures every row at 1 and 32
/// connections. `seed_messages(thread, n)` appends messages straight into
/// the database.
pub fn load(base: &str, key: &str, threads: usize, secs: u64, seed_messages: &dyn Fn(&str, usize)) {
    let http = Client::new();
    let started = std::time::Instant::now();
    for i in 0..threads {
        post(
            &http,
            &format!("{base}/v1/threads"),
            key,
            &json!({"title": format!("thread {i}")}),
        );
    }
    let seeded = started.elapsed();
    let oldest: Value = http
        .get(format!("{base}/v1/threads?order=asc&limit=21"))
        .header("X-API-Key", key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let cursor = oldest["last_id"].as_str().unwrap().to_string();
    let some_id = oldest["first_id"].as_str().unwrap().to_string();
    // A thread of 1,000 messages to list, writers' threads and turns' threads.
    post(
        &http,
        &format!("{base}/v1/model/response"),
        key,
        &json!({"thread": "listed", "inputs": [{"role": "user", "content": "start"}]}),
    );
    seed_messages("listed", 998);
    let writers: Vec<String> = (0..256).map(|i| format!("w{i}")).collect();
    for w in &writers {
        post(
            &http,
            &format!("{base}/v1/model/response"),
            key,
            &json!({"thread": w, "inputs": [{"role": "user", "content": "start"}]}),
        );
    }
    let deep_page = threads.saturating_sub(21) / 20;
    println!(
        "\nLoad: `wrk`, closed loop, keep-alive, {secs} s per row; {threads} threads seeded through the API ({:.0} creates/s).\n",
        threads as f64 / seeded.as_secs_f64()
    );
    for conns in [1usize, 32] {
        let rows = vec![
            Row::new("`GET /healthz` (the ceiling: no database)", "GET", "/healthz"),
            Row::new("`GET /v1/threads/{id}`", "GET", format!("/v1/threads/{some_id}")),
            Row::new("`GET /v1/threads?limit=20` (page 1)", "GET", "/v1/threads?limit=20"),
            Row::new(
                format!("`GET /v1/threads?limit=20&after=…` (page {deep_page})"),
                "GET",
                format!("/v1/threads?limit=20&after={cursor}"),
            ),
            Row::new(
                "`GET /v1/threads/{id}/messages?order=desc&limit=20` (newest 20 of 1,000)",
                "GET",
                "/v1/threads/listed/messages?order=desc&limit=20",
            ),
            Row {
                bodies: vec![json!({"title": "new"})],
                ..Row::new("`POST /v1/threads` (create)", "POST", "/v1/threads")
            },
            Row {
                paths: writers.iter().map(|w| format!("/v1/threads/{w}/messages")).collect(),
                bodies: vec![json!({"role": "user", "content": "one more message"})],
                ..Row::new("`POST /v1/threads/{id}/messages` (append)", "POST", "")
            },
            Row {
                bodies: (0..512)
                    .map(|i| json!({"thread": format!("turn-{conns}-{i}"), "inputs": [{"role": "user", "content": "hello"}]}))
                    .collect(),
                ..Row::new("`POST /v1/model/response` (a turn, echo model)", "POST", "/v1/model/response")
            },
        ];
        println!(
            "At {conns} connection{}:\n",
            if conns == 1 { "" } else { "s" }
        );
        println!("| operation | req/s | of the ceiling | p50 | p99 | p99/p50 |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut ceiling = None;
        for row in &rows {
            let m = run_wrk(base, key, row, conns, secs);
            let top = *ceiling.get_or_insert(m.rps);
            println!(
                "| {} | {:.0} | {:.0}% | {:.2} ms | {:.2} ms | {:.1} |",
                row.name,
                m.rps,
                100.0 * m.rps / top,
                m.p50.as_secs_f64() * 1e3,
                m.p99.as_secs_f64() * 1e3,
                m.p99.as_secs_f64() / m.p50.as_secs_f64()
            );
        }
        println!();
    }
}

/// The server's memory at rest on a large database: `threads` threads of
/// `per_thread` messages each are written straight into the database (SQL,
/// in a few statements), the server is started on it, serves a handful of
/// requests, and its resident set is read (`VmRSS`) with its peak
/// (`VmHWM`).
/// A fresh database that a first start of the server bootstrapped (its
/// organization, user and key), stopped again so that a benchmark can seed
/// it directly through `store`.
pub struct Bootstrapped {
    /// The database (dropped last).
    pub db: skein_persistence::testing::TestDb,
    /// The server's working directory.
    pub dir: tempfile::TempDir,
    /// The URL the server is started with.
    pub url: String,
    /// The bootstrap key, organization and user.
    pub key: String,
    pub org: String,
    pub user: String,
    /// A store on the same database, for seeding.
    pub store: skein_persistence::Store,
}

impl Bootstrapped {
    pub fn new(backend: skein_persistence::Backend) -> Self {
        use skein_persistence::Backend;
        let db = skein_persistence::testing::TestDb::new(backend);
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => "sqlite://data/skein.db".to_string(),
            Backend::Postgres => db.url.clone(),
        };
        let first = skein_tests::Server::start(&url, dir.path());
        let key = first.bootstrap_key.clone().unwrap();
        let org = super::banner_value(&first.banner, "organization:");
        let user = super::banner_value(&first.banner, "user:");
        assert!(first.terminate());
        let direct = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("data/skein.db").display()),
            Backend::Postgres => db.url.clone(),
        };
        let store = skein_persistence::Store::open(&direct, Default::default()).unwrap();
        Self {
            db,
            dir,
            url,
            key,
            org,
            user,
            store,
        }
    }
}

pub fn idle(backend: skein_persistence::Backend, threads: u64, per_thread: u64) {
    use skein_persistence::DbConnection;
    use skein_tests::Server;
    let Bootstrapped {
        db: _db,
        dir,
        url,
        key,
        org,
        user,
        store,
    } = Bootstrapped::new(backend);
    let started = std::time::Instant::now();
    store
        .blocking(|conn| -> Result<(), skein_persistence::StoreError> {
            use diesel::RunQueryDsl;
            // `n` = 1..=count, as a table named `alias` with a column `n`.
            let sqlite = matches!(conn, DbConnection::Sqlite(_));
            let series = |count: u64, alias: &str| {
                if sqlite {
                    format!(
                        "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s \
                         WHERE n < {count}) SELECT n FROM s) AS {alias}"
                    )
                } else {
                    format!("generate_series(1, {count}) AS {alias}(n)")
                }
            };
            let visible = if sqlite { "1" } else { "true" };
            diesel::sql_query(format!(
                "INSERT INTO threads (id, organization_id, user_id, metadata, status, state, \
                 message_count, visible_in_ui, created_at, updated_at, last_message_at, last_seq) \
                 SELECT 'thread_idle' || t.n, '{org}', '{user}', '{{}}', 'inactive', 'open', \
                 {per_thread}, {visible}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, \
                 {per_thread} FROM {}",
                series(threads, "t")
            ))
            .execute(conn)?;
            diesel::sql_query(format!(
                "INSERT INTO messages (id, thread_pk, seq, role, content, token_count, metadata, \
                 attachments, created_at, updated_at) \
                 SELECT 'msg_idle' || t.pk || '_' || m.n, t.pk, m.n, \
                 CASE WHEN m.n % 2 = 1 THEN 'user' ELSE 'assistant' END, \
                 'message number ' || m.n, 4, '{{}}', '[]', t.created_at, t.created_at \
                 FROM threads t, {} WHERE t.id LIKE 'thread_idle%'",
                series(per_thread, "m")
            ))
            .execute(conn)?;
            Ok(())
        })
        .unwrap();
    let seeded = started.elapsed();
    drop(store);
    let server = Server::start(&url, dir.path());
    let http = Client::new();
    let base = server.base_url.clone();
    for path in [
        "/v1/threads/thread_idle1",
        "/v1/threads?limit=20",
        "/v1/threads/thread_idle1/messages?order=desc&limit=20",
    ] {
        let r = http
            .get(format!("{base}{path}"))
            .header("X-API-Key", &key)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    post(
        &http,
        &format!("{base}/v1/model/response"),
        &key,
        &json!({"thread": "thread_idle2", "inputs": [{"role": "user", "content": "hello"}]}),
    );
    let (rss, peak) = server.memory_kib();
    println!(
        "\nAt rest on {threads} threads and {} messages (seeded in {:.0} s), after a get, a list, a message page and a turn: RSS **{:.1} MiB**, peak {:.1} MiB.\n",
        threads * per_thread,
        seeded.as_secs_f64(),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    assert!(server.terminate());
}
