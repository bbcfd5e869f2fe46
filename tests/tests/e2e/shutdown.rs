//! A graceful stop (SIGTERM) and the model responses running at that
//! moment: one whose client went away is finished and saved whole before
//! the process exits; one still generating when the grace runs out is
//! cancelled with its partial answer saved, its stream told so, and its
//! thread free again after a restart. On SQLite and on PostgreSQL.

use crate::streams::{http, start_stream};
use serde_json::Value;
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::upstream::PacedUpstream;
use skein_tests::Server;

skein_persistence::on_both_backends!(
    a_response_whose_client_left_is_finished_before_the_process_exits,
    a_response_still_generating_after_the_grace_is_cancelled_and_keeps_its_part,
);

fn get(server: &Server, key: &str, path: &str) -> Value {
    let r = http()
        .get(server.url(path))
        .header("X-API-Key", key)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().unwrap()
}

/// The thread's status and its messages as `(role, content)`, oldest first.
fn saved(server: &Server, key: &str, thread: &str) -> (Value, Vec<(String, String)>) {
    let status = get(server, key, &format!("/v1/threads/{thread}"))["status"].clone();
    let list = get(
        server,
        key,
        &format!("/v1/threads/{thread}/messages?order=asc&limit=100"),
    );
    let messages = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (status, messages)
}

fn a_response_whose_client_left_is_finished_before_the_process_exits(backend: Backend) {
    let upstream = PacedUpstream::start().unwrap();
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = super::backend_url(&db, dir.path());
    let cfg = upstream.config(dir.path());
    let env = [("SKEIN_CONFIG", cfg.as_str())];
    let server = Server::start_with(&url, dir.path(), &env);
    let key = server.bootstrap_key.clone().unwrap();

    // `slow` answers in about 2 s; the client reads one delta and leaves.
    let mut stream = start_stream(&server, &key, "slow", "left");
    stream.until("response.content_delta");
    drop(stream);
    assert!(server.terminate(), "SIGTERM ends the server cleanly");

    let server = Server::start_with(&url, dir.path(), &env);
    let (status, messages) = saved(&server, &key, "left");
    assert_eq!(status, "inactive");
    assert_eq!(
        messages,
        vec![
            ("user".to_string(), "go".to_string()),
            ("assistant".to_string(), PacedUpstream::slow_text()),
        ],
        "the whole answer was saved before the process exited"
    );
    assert!(server.terminate());
}

fn a_response_still_generating_after_the_grace_is_cancelled_and_keeps_its_part(backend: Backend) {
    let upstream = PacedUpstream::start().unwrap();
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = super::backend_url(&db, dir.path());
    let cfg = upstream.config(dir.path());
    let env = [
        ("SKEIN_CONFIG", cfg.as_str()),
        ("SKEIN_SHUTDOWN_GRACE_SECS", "1"),
    ];
    let server = Server::start_with(&url, dir.path(), &env);
    let key = server.bootstrap_key.clone().unwrap();

    // `stall` sends "partial" and then nothing until Skein hangs up; the
    // client keeps following. A stop this early would be a quick edit for
    // a cancel request; a shutdown keeps what the turn has.
    let mut stream = start_stream(&server, &key, "stall", "stalled");
    stream.until("response.content_delta");
    server.send("TERM");
    let end = stream.rest();
    let last = &end.last().expect("the stream says how it ended").1;
    assert_eq!(last["event"], "response.cancelled", "{end:?}");
    assert!(
        server.wait_exit(),
        "the server exits cleanly after the cancel"
    );

    let server = Server::start_with(&url, dir.path(), &env);
    let (status, messages) = saved(&server, &key, "stalled");
    assert_eq!(status, "inactive", "the lease was given back");
    assert_eq!(
        messages,
        vec![
            ("user".to_string(), "go".to_string()),
            ("assistant".to_string(), "partial".to_string()),
        ]
    );
    assert!(server.terminate());
}
