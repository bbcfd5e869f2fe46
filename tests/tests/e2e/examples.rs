//! The scripts of `examples/` run as they are against a fresh server: the
//! curl walk-through and the Freddy SDK one (the README links both).

use super::python_venv;
use skein_tests::{workspace_root, OutputWithin, Server};
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn the_examples_run_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start("sqlite://data/skein.db", dir.path());
    let key = server.bootstrap_key.clone().unwrap();
    let run = |program: &std::path::Path, script: &str| {
        let out = Command::new(program)
            .arg(workspace_root().join("examples").join(script))
            .env("SKEIN_BASE_URL", &server.base_url)
            .env("SKEIN_API_KEY", &key)
            .output_within(DEADLINE);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{script} failed\n{stdout}\n{}\nserver logs:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.logs()
        );
        stdout
    };
    let curl = run(std::path::Path::new("bash"), "curl.sh");
    for line in [
        "answer: Echo (2 context messages): What is my name?",
        "\"event\":\"response.completed\"",
        "5 messages",
        "deleted: HTTP 204",
    ] {
        assert!(curl.contains(line), "curl.sh: no {line:?} in\n{curl}");
    }
    let python = python_venv("venv-sdk178", "requirements-sdk178.txt");
    let sdk = run(&python, "freddy_sdk.py");
    for line in [
        "answer: Echo (1 context messages): Where should I go in June?",
        ": Trip planning",
        "streamed: Echo (3 context messages): And in July?",
        "message_count: 4",
        "4 messages",
        "deleted trip-",
    ] {
        assert!(sdk.contains(line), "freddy_sdk.py: no {line:?} in\n{sdk}");
    }
    assert!(server.terminate());
}
