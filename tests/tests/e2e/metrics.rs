//! `/metrics` after a scripted session on the real binary: every metric
//! of docs/metrics.md is scraped, with values that match what was done.

use super::backend_url;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::{workspace_root, Server};
use std::time::{Duration, Instant};

skein_persistence::on_both_backends!(a_scrape_after_a_session_shows_every_documented_metric,);

/// The metric names of docs/metrics.md's table.
fn documented() -> Vec<String> {
    let doc = std::fs::read_to_string(workspace_root().join("docs/metrics.md")).unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The value of the first sample of `name` whose labels contain every
/// `label="value"` of `labels`.
fn sample(scrape: &str, name: &str, labels: &[&str]) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let (set, v) = if let Some(r) = rest.strip_prefix('{') {
            let (set, v) = r.split_once("} ")?;
            (set, v)
        } else {
            ("", rest.strip_prefix(' ')?)
        };
        labels
            .iter()
            .all(|want| set.split(',').any(|have| have == *want))
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

fn a_scrape_after_a_session_shows_every_documented_metric(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = backend_url(&db, dir.path());
    // A provider nobody listens on (its calls fail), the echo model for
    // the rest, a small rate limit, and a sweeper that purges deleted
    // threads every second.
    let config = dir.path().join("skein.toml");
    std::fs::write(
        &config,
        "[rate_limit]\nrequests = 20\nwindow_secs = 60\n\n\
         [routing.providers.broken]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\n\
         [routing.providers.echo]\nkind = \"echo\"\n\n\
         [[routing.models]]\npattern = \"broken\"\nprovider = \"broken\"\ncontext_window = 8192\n\n\
         [routing.default]\nprovider = \"echo\"\ncontext_window = 8192\n",
    )
    .unwrap();
    let server = Server::start_with(
        &url,
        dir.path(),
        &[
            ("SKEIN_CONFIG", config.to_str().unwrap()),
            ("SKEIN_DELETED_GRACE", "0s"),
            ("SKEIN_SWEEP_INTERVAL", "1s"),
        ],
    );
    let key = server
        .bootstrap_key
        .clone()
        .expect("a first start prints a key");
    let http = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, server.url(path))
            .header("X-API-Key", &key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };
    use reqwest::Method;
    let (status, thread) = call(Method::POST, "/v1/threads", Some(json!({"title": "t"})));
    assert_eq!(status, 201);
    let id = thread["id"].as_str().unwrap().to_string();
    assert_eq!(call(Method::GET, &format!("/v1/threads/{id}"), None).0, 200);
    let (status, answer) = call(
        Method::POST,
        "/v1/model/response",
        Some(json!({"thread": id, "inputs": [{"role": "user", "content": "hello there"}]})),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, failed) = call(
        Method::POST,
        "/v1/model/response",
        Some(json!({"model": "broken", "inputs": [{"role": "user", "content": "hi"}]})),
    );
    assert_eq!(status, 502, "{failed}");
    assert_eq!(call(Method::GET, "/v1/nowhere", None).0, 404);
    assert_eq!(
        call(Method::DELETE, &format!("/v1/threads/{id}"), None).0,
        204
    );
    let mut limited = false;
    for _ in 0..25 {
        if call(Method::GET, "/v1/threads", None).0 == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the rate limit refused a request");

    // The sweeper purges the deleted thread within a few rounds.
    let scrape = || {
        http.get(server.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape();
        if sample(&text, "skein_purged_rows_total", &["kind=\"threads\""]).unwrap_or(0.0) >= 1.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "nothing purged in time:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };

    // Every documented family is there.
    for name in documented() {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name}{{"))
                || l.starts_with(&format!("{name} "))
                || l.starts_with(&format!("{name}_bucket{{"))),
            "{name} is documented but not scraped:\n{text}"
        );
    }
    // Sane values.
    let route_created = ["method=\"POST\"", "route=\"/v1/threads\"", "status=\"201\""];
    assert_eq!(
        sample(&text, "skein_http_requests_total", &route_created),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "skein_http_requests_total",
            &["route=\"/v1/threads/{thread_id}\"", "status=\"200\""]
        ),
        Some(1.0)
    );
    assert!(!text.contains(&id), "a raw path leaked into a label");
    assert_eq!(
        sample(
            &text,
            "skein_http_requests_total",
            &["route=\"unmatched\"", "status=\"404\""]
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            "skein_http_request_duration_seconds_count",
            &["route=\"/v1/model/response\""]
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(
        sample(
            &text,
            "skein_upstream_errors_total",
            &[
                "provider=\"broken\"",
                "model=\"broken\"",
                "kind=\"upstream\""
            ]
        ),
        Some(1.0)
    );
    let usage = &answer["usage"];
    for (direction, field) in [("input", "input_tokens"), ("output", "output_tokens")] {
        assert_eq!(
            sample(
                &text,
                "skein_tokens_total",
                &[
                    "provider=\"echo\"",
                    "model=\"default\"",
                    &format!("direction=\"{direction}\"")
                ]
            ),
            usage[field].as_f64(),
            "{direction} tokens: {usage}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "skein_upstream_time_to_first_token_seconds_count",
            &["provider=\"echo\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "skein_upstream_request_duration_seconds_count",
            &["provider=\"echo\"", "outcome=\"completed\""]
        ),
        Some(1.0)
    );
    assert_eq!(value(&text, "skein_responses_in_flight"), Some(0.0));
    assert_eq!(
        sample(&text, "skein_rate_limited_total", &["limit=\"key\""]),
        Some(1.0)
    );
    assert!(sample(&text, "skein_sweeper_runs_total", &["outcome=\"purged\""]).unwrap() >= 1.0);
    assert!(sample(&text, "skein_purged_rows_total", &["kind=\"messages\""]).unwrap() >= 2.0);
    assert_eq!(value(&text, "skein_db_pool_max_connections"), Some(16.0));
    assert_eq!(value(&text, "skein_db_pool_waiters"), Some(0.0));
    assert_eq!(value(&text, "skein_db_writes_waiting"), Some(0.0));
    let open = sample(&text, "skein_db_pool_connections", &["state=\"idle\""]).unwrap()
        + sample(&text, "skein_db_pool_connections", &["state=\"in_use\""]).unwrap();
    assert!((1.0..=8.0).contains(&open), "{open}");
    assert_eq!(
        sample(
            &text,
            "skein_build_info",
            &[&format!("backend=\"{}\"", backend.name())]
        ),
        Some(1.0)
    );
    assert!(server.terminate());
}
