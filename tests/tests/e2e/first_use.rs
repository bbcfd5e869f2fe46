//! Several `skein serve` processes on one database, asked at once to open
//! the same new client-named thread: every answer is 200 or 409
//! `THREAD_BUSY`, never 404, and the thread holds exactly the turns that
//! were answered 200.

use super::backend_url;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::Server;
use std::sync::{Arc, Barrier};
use std::time::Duration;

skein_persistence::on_both_backends!(
    processes_racing_to_open_a_new_thread_answer_200_or_409_never_404,
);

const PROCESSES: usize = 2;
const REQUESTS_EACH: usize = 8;

fn processes_racing_to_open_a_new_thread_answer_200_or_409_never_404(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = backend_url(&db, dir.path());
    let first = Server::start(&url, dir.path());
    let key = first
        .bootstrap_key
        .clone()
        .expect("first start prints a key");
    let mut servers = vec![first];
    while servers.len() < PROCESSES {
        servers.push(Server::start(&url, dir.path()));
    }
    let bases: Vec<String> = servers.iter().map(|s| s.url("")).collect();
    let barrier = Arc::new(Barrier::new(PROCESSES * REQUESTS_EACH));
    let racers: Vec<_> = (0..PROCESSES * REQUESTS_EACH)
        .map(|i| {
            let (base, key, barrier) = (bases[i % PROCESSES].clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                let http = Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                barrier.wait();
                let r = http
                    .post(format!("{base}/v1/model/response"))
                    .header("X-API-Key", &key)
                    .json(&json!({"thread": "raced", "inputs": [{"role": "user", "content": format!("hi {i}")}]}))
                    .send()
                    .unwrap();
                let status = r.status().as_u16();
                let retry = r.headers().contains_key("retry-after");
                (status, retry, r.json::<Value>().unwrap_or(Value::Null))
            })
        })
        .collect();
    let answers: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let won = answers.iter().filter(|(s, _, _)| *s == 200).count();
    for (status, retry, body) in &answers {
        match status {
            200 => {}
            409 => {
                assert_eq!(body["error"]["code"], "THREAD_BUSY", "{body}");
                assert!(retry, "409 carries Retry-After");
            }
            other => panic!("answered {other}: {body}"),
        }
    }
    assert!(won >= 1, "{answers:?}");
    let thread: Value = Client::new()
        .get(format!("{}/v1/threads/raced", bases[0]))
        .header("X-API-Key", &key)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(thread["message_count"], json!(2 * won), "{thread}");
    assert_eq!(thread["status"], "inactive");
    for server in servers {
        assert!(server.terminate());
    }
}
