//! The Swagger UI in a real browser (Debian's Chromium, headless, driven by
//! playwright-core from npm): open `/docs`, authorize with an API key, run
//! "Try it out" on `POST /v1/threads` with the body the UI prefills. It must
//! answer 201 and create the example's thread.

use skein_tests::{workspace_root, OutputWithin, Server};
use std::process::Command;
use std::time::Duration;

const INSTALL: Duration = Duration::from_secs(300);
const RUN: Duration = Duration::from_secs(120);

/// `build/browser` with playwright-core installed from the committed lock
/// file, and the script; its directory.
fn browser_dir() -> std::path::PathBuf {
    let src = workspace_root().join("tests/browser");
    let dir = workspace_root().join("build/browser");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(workspace_root().join("build/browser.lock")).unwrap();
    lock.lock().unwrap();
    for file in ["package.json", "package-lock.json", "swagger.mjs"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    if !dir.join("node_modules/playwright-core").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output_within(INSTALL);
        assert!(
            out.status.success(),
            "npm ci failed (node and npm are needed; .ci/run installs them)\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    lock.unlock().unwrap();
    dir
}

#[test]
fn the_swagger_ui_authorizes_and_creates_a_thread_with_its_prefilled_body() {
    let dir = browser_dir();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start("sqlite://data/skein.db", work.path());
    let key = server.bootstrap_key.clone().unwrap();
    let out = Command::new("node")
        .arg("swagger.mjs")
        .current_dir(&dir)
        .env("SKEIN_BASE_URL", &server.base_url)
        .env("SKEIN_API_KEY", &key)
        .output_within(RUN);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the browser run failed (Chromium at /usr/bin/chromium is needed; .ci/run installs \
         Debian's chromium)\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().next(), Some("status 201"), "{stdout}");
    // The thread the prefilled example describes now exists.
    let list: serde_json::Value = reqwest::blocking::Client::new()
        .get(server.url("/v1/threads"))
        .header("X-API-Key", &key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let threads = list["data"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{list}");
    assert_eq!(threads[0]["title"], "Support chat");
    assert_eq!(
        threads[0]["metadata"],
        serde_json::json!({"category": "support", "priority": "high"})
    );
    assert!(server.terminate());
}
