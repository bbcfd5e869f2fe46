//! End to end: the real `skein` binary over real HTTP, on SQLite and on
//! PostgreSQL, and the published Python clients driving it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use reqwest::blocking::Client;
use serde_json::{json, Value};
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::{skein, workspace_root, OutputWithin, Server, COMMAND_DEADLINE};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long setting up a Python venv may take (pip downloads the first time).
const INSTALL_DEADLINE: Duration = Duration::from_secs(900);

/// How long one Python client script may take.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);

#[path = "e2e/browser.rs"]
mod browser;
#[path = "e2e/edge.rs"]
mod edge;
#[path = "e2e/examples.rs"]
mod examples;
#[path = "e2e/first_use.rs"]
mod first_use;
#[path = "e2e/metrics.rs"]
mod metrics;
#[path = "e2e/replicas.rs"]
mod replicas;
#[path = "e2e/shutdown.rs"]
mod shutdown;
#[path = "e2e/streams.rs"]
mod streams;
#[path = "e2e/transfer.rs"]
mod transfer;

skein_persistence::on_both_backends!(
    the_binary_serves_the_threads_api_and_shuts_down_gracefully,
    the_cli_creates_keys_and_migrates,
    the_published_python_clients_work_unchanged,
    the_python_clients_drive_messages_and_responses,
    the_freddy_sdk_creates_and_chains_responses,
    the_newest_freddy_sdk_reconnects_to_a_stream,
    the_newest_freddy_sdk_drives_search_read_state_changes_and_incognito,
    the_openai_sdk_drives_conversations_items_and_models,
    the_openai_agents_sdk_keeps_a_conversation_session,
    organizations_users_and_memberships_are_managed_from_the_cli,
    the_sweeper_and_skein_purge_delete_what_is_due,
);

fn backend_url(db: &TestDb, dir: &Path) -> String {
    match db.backend() {
        // A relative path, as `make run` uses: resolved in the working directory.
        Backend::Sqlite => {
            let _ = dir;
            "sqlite://data/skein.db".to_string()
        }
        Backend::Postgres => db.url.clone(),
    }
}

fn the_binary_serves_the_threads_api_and_shuts_down_gracefully(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = backend_url(&db, dir.path());
    let server = Server::start(&url, dir.path());
    let key = server
        .bootstrap_key
        .clone()
        .expect("first start prints a key");
    assert!(key.starts_with("sk_"));
    assert!(server.banner.contains("curl"), "{}", server.banner);
    let http = Client::new();

    assert_eq!(
        http.get(server.url("/healthz")).send().unwrap().status(),
        200
    );
    assert_eq!(
        http.get(server.url("/readyz")).send().unwrap().status(),
        200
    );
    let created = http
        .post(server.url("/v1/threads"))
        .header("X-API-Key", &key)
        .json(&json!({"title": "Hello", "metadata": {"source": "e2e"}}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("x-request-id"));
    let thread: Value = created.json().unwrap();
    let id = thread["id"].as_str().unwrap();
    let got: Value = http
        .get(server.url(&format!("/v1/threads/{id}")))
        .bearer_auth(&key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got, thread);
    let list: Value = http
        .get(server.url("/v1/threads"))
        .header("api-key", &key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["data"][0]["id"], id);
    let deleted = http
        .delete(server.url(&format!("/v1/threads/{id}")))
        .header("X-API-Key", &key)
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = http
        .get(server.url(&format!("/v1/threads/{id}")))
        .header("X-API-Key", &key)
        .send()
        .unwrap();
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().unwrap();
    assert_eq!(body["error"]["code"], "THREAD_NOT_FOUND");
    let spec: Value = http
        .get(server.url("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(spec["paths"]["/v1/threads"].is_object());
    let docs = http.get(server.url("/docs/")).send().unwrap();
    assert_eq!(docs.status(), 200);

    let logs_before_stop = server.logs();
    assert!(
        logs_before_stop.contains("\"POST /v1/threads HTTP/1.1\" 201"),
        "{logs_before_stop}"
    );
    assert!(server.terminate(), "SIGTERM ends the server cleanly");
    let logs =
        std::fs::read_to_string(dir.path().join(format!("skein-{}.log", std::process::id())))
            .unwrap();
    assert!(
        logs.contains("SIGTERM received") && logs.contains("shut down"),
        "{logs}"
    );
    assert!(!logs.contains(&key), "the key never appears in the logs");

    // A second start on the same database prints no key and keeps the data.
    let again = Server::start(&url, dir.path());
    assert!(again.bootstrap_key.is_none(), "{}", again.banner);
    let still = http
        .get(again.url("/v1/threads?include_deleted=true"))
        .header("X-API-Key", &key)
        .send()
        .unwrap();
    assert_eq!(still.status(), 200);
    let still: Value = still.json().unwrap();
    assert_eq!(still["data"][0]["id"], id);
}

fn the_cli_creates_keys_and_migrates(backend: Backend) {
    // Empty: here `skein migrate` is what applies the migrations.
    let db = TestDb::empty(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = backend_url(&db, dir.path());
    let migrate = skein(&url, dir.path())
        .arg("migrate")
        .output_within(COMMAND_DEADLINE);
    assert!(migrate.status.success(), "{migrate:?}");
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("applied migrations"));
    let again = skein(&url, dir.path())
        .arg("migrate")
        .output_within(COMMAND_DEADLINE);
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    let out = skein(&url, dir.path())
        .args(["keys", "create", "--org", "org_acme", "--user", "usr_alice"])
        .output_within(COMMAND_DEADLINE);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("api key:"))
        .unwrap()
        .trim()
        .to_string();
    let key_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_string();
    let bad = skein(&url, dir.path())
        .args([
            "keys",
            "create",
            "--org",
            "not valid",
            "--user",
            "usr_alice",
        ])
        .output_within(COMMAND_DEADLINE);
    assert!(!bad.status.success());

    // With organizations present, serve does not bootstrap another key.
    let server = Server::start(&url, dir.path());
    assert!(server.bootstrap_key.is_none());
    let http = Client::new();
    let t: Value = http
        .post(server.url("/v1/threads"))
        .header("X-API-Key", &key)
        .json(&json!({"organization_id": "org_acme"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(t["organization_id"], "org_acme");
    assert_eq!(t["user_id"], "usr_alice");

    let list = skein(&url, dir.path())
        .args(["keys", "list"])
        .output_within(COMMAND_DEADLINE);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        listed.contains(&key_id) && listed.contains("org_acme"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "keys list never shows the secret");

    let revoke = skein(&url, dir.path())
        .args(["keys", "revoke", &key_id])
        .output_within(COMMAND_DEADLINE);
    assert!(revoke.status.success(), "{revoke:?}");
    let denied = http
        .get(server.url("/v1/threads"))
        .header("X-API-Key", &key)
        .send()
        .unwrap();
    assert_eq!(
        denied.status(),
        401,
        "revocation takes effect on the next request"
    );

    let spec = skein(&url, dir.path())
        .arg("openapi")
        .output_within(COMMAND_DEADLINE);
    let printed: Value = serde_json::from_slice(&spec.stdout).unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn a_command_whose_reader_stops_early_ends_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("stderr");
    let mut child = skein("sqlite://data/skein.db", dir.path())
        .arg("openapi")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap();
    // Read the start of the document, then close the pipe (`| head`).
    let mut start = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut start).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait()));
    let status = rx
        .recv_timeout(COMMAND_DEADLINE)
        .expect("skein openapi ends once its reader is gone")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        std::fs::read_to_string(&errors).unwrap(),
        "",
        "nothing on stderr"
    );
}

#[test]
fn a_taken_port_is_refused_with_a_hint_that_names_skein_bind() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = skein("sqlite://data/skein.db", dir.path())
        .arg("serve")
        .env("SKEIN_BIND", &addr)
        .output_within(COMMAND_DEADLINE);
    assert!(!out.status.success());
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains(&format!("cannot listen on {addr}")) && errors.contains("SKEIN_BIND"),
        "{errors}"
    );
    drop(held);
}

#[test]
fn config_check_prints_the_effective_settings_with_secrets_masked_and_fails_on_problems() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-jwt-secret-that-is-long-enough-0123456789";
    let out = skein("postgres://skein:db-password@db.internal/skein", dir.path())
        .args(["config", "check"])
        .env("SKEIN_JWT_SECRET", secret)
        .env("SKEIN_SWEEP_BATCH", "42")
        .output_within(COMMAND_DEADLINE);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("sweep_batch = 42"), "{printed}");
    assert!(
        printed.contains("postgres://skein:***@db.internal/skein"),
        "{printed}"
    );
    assert!(printed.contains("secret = \"***\""), "{printed}");
    assert!(
        !printed.contains(secret) && !printed.contains("db-password"),
        "{printed}"
    );
    // Problems: each named, exit 1, nothing printed as if it were fine.
    let out = skein("mysql://nope", dir.path())
        .args(["config", "check"])
        .env("SKEIN_JWT_SECRET", "short")
        .output_within(COMMAND_DEADLINE);
    assert!(!out.status.success());
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains("database_url") && errors.contains("[jwt]"),
        "{errors}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("# ok"));
}

#[test]
fn sigint_shuts_down_as_gracefully_as_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start("sqlite://data/skein.db", dir.path());
    let log_path = server.log_path.clone();
    assert!(server.signal("INT"), "SIGINT ends the server cleanly");
    let logs = std::fs::read_to_string(log_path).unwrap();
    assert!(
        logs.contains("SIGINT received") && logs.contains("shut down"),
        "{logs}"
    );
}

/// A venv under `build/` with the packages of `requirements` (installed
/// once; pip is a no-op when they are there).
fn python_venv(name: &str, requirements: &str) -> std::path::PathBuf {
    let venv = workspace_root().join("build").join(name);
    let python = venv.join("bin/python");
    std::fs::create_dir_all(workspace_root().join("build")).unwrap();
    // Tests may run in parallel threads or processes: one sets a venv up.
    let lock = std::fs::File::create(workspace_root().join(format!("build/{name}.lock"))).unwrap();
    lock.lock().unwrap();
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output_within(INSTALL_DEADLINE);
        assert!(
            made.status.success(),
            "python3 with venv is required for the client-compatibility tests: {made:?}"
        );
    }
    let pip = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(workspace_root().join("tests/python").join(requirements))
        .output_within(INSTALL_DEADLINE);
    assert!(
        pip.status.success(),
        "installing {requirements} failed\n{}\n{}",
        String::from_utf8_lossy(&pip.stdout),
        String::from_utf8_lossy(&pip.stderr)
    );
    lock.unlock().unwrap();
    python
}

/// Runs one client script against a fresh server; it must end with
/// "N passed, 0 failed" and at least `min_checks` checks.
fn run_client_script(
    backend: Backend,
    venv: &str,
    requirements: &str,
    script: &str,
    min_checks: u32,
) {
    let python = python_venv(venv, requirements);
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = backend_url(&db, dir.path());
    let server = Server::start(&url, dir.path());
    let key = server.bootstrap_key.clone().unwrap();
    let out = Command::new(&python)
        .arg(workspace_root().join("tests/python").join(script))
        .env("SKEIN_BASE_URL", &server.base_url)
        .env("SKEIN_API_KEY", &key)
        .output_within(SCRIPT_DEADLINE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed\n{stdout}\n{stderr}\nserver logs:\n{}",
        server.logs()
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with("passed, 0 failed"), "{stdout}");
    let passed: u32 = last.split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed >= min_checks, "{stdout}");
}

fn the_published_python_clients_work_unchanged(backend: Backend) {
    run_client_script(
        backend,
        "venv-clients",
        "requirements.txt",
        "test_threads_clients.py",
        20,
    );
}

fn the_python_clients_drive_messages_and_responses(backend: Backend) {
    run_client_script(
        backend,
        "venv-clients",
        "requirements.txt",
        "test_responses_clients.py",
        13,
    );
}

fn the_freddy_sdk_creates_and_chains_responses(backend: Backend) {
    run_client_script(
        backend,
        "venv-freddy",
        "requirements-freddy.txt",
        "test_freddy_sdk.py",
        5,
    );
}

fn the_newest_freddy_sdk_reconnects_to_a_stream(backend: Backend) {
    run_client_script(
        backend,
        "venv-sdk178",
        "requirements-sdk178.txt",
        "test_sdk_reconnect.py",
        5,
    );
}

fn the_newest_freddy_sdk_drives_search_read_state_changes_and_incognito(backend: Backend) {
    run_client_script(
        backend,
        "venv-sdk178",
        "requirements-sdk178.txt",
        "test_sdk_threads178.py",
        15,
    );
}

fn the_openai_sdk_drives_conversations_items_and_models(backend: Backend) {
    run_client_script(
        backend,
        "venv-openai",
        "requirements-openai.txt",
        "test_openai_sdk.py",
        37,
    );
}

fn the_openai_agents_sdk_keeps_a_conversation_session(backend: Backend) {
    run_client_script(
        backend,
        "venv-openai",
        "requirements-openai.txt",
        "test_openai_agents.py",
        10,
    );
}

fn cli(url: &str, dir: &Path, args: &[&str]) -> (bool, String) {
    let out = skein(url, dir).args(args).output_within(COMMAND_DEADLINE);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn organizations_users_and_memberships_are_managed_from_the_cli(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = backend_url(&db, dir.path());
    let (ok, out) = cli(
        &url,
        dir.path(),
        &["orgs", "create", "org_acme", "--name", "Acme"],
    );
    assert!(ok && out.contains("created organization org_acme"), "{out}");
    let (ok, out) = cli(&url, dir.path(), &["orgs", "create", "org_acme"]);
    assert!(ok && out.contains("already exists"), "{out}");
    let (ok, out) = cli(&url, dir.path(), &["users", "create", "usr_bob"]);
    assert!(ok && out.contains("created user usr_bob"), "{out}");
    // Membership needs both to exist.
    let (ok, out) = cli(
        &url,
        dir.path(),
        &["members", "add", "--org", "org_none", "--user", "usr_bob"],
    );
    assert!(!ok && out.contains("skein orgs create"), "{out}");
    let (ok, out) = cli(
        &url,
        dir.path(),
        &["members", "add", "--org", "org_acme", "--user", "usr_bob"],
    );
    assert!(ok && out.contains("is now a member"), "{out}");
    let (ok, out) = cli(
        &url,
        dir.path(),
        &["keys", "create", "--org", "org_acme", "--user", "usr_bob"],
    );
    assert!(ok, "{out}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("api key:"))
        .unwrap()
        .trim()
        .to_string();
    let server = Server::start(&url, dir.path());
    let http = Client::new();
    let status = |key: &str| {
        http.get(server.url("/v1/threads"))
            .header("X-API-Key", key)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(&key), 200);
    // Leaving the organization ends the key's access on the next request.
    let (ok, out) = cli(
        &url,
        dir.path(),
        &[
            "members", "remove", "--org", "org_acme", "--user", "usr_bob",
        ],
    );
    assert!(ok && out.contains("removed usr_bob from org_acme"), "{out}");
    assert_eq!(status(&key), 401);
    let (ok, out) = cli(
        &url,
        dir.path(),
        &[
            "members", "remove", "--org", "org_acme", "--user", "usr_bob",
        ],
    );
    assert!(!ok && out.contains("not a member"), "{out}");
    let (ok, _) = cli(
        &url,
        dir.path(),
        &["members", "add", "--org", "org_acme", "--user", "usr_bob"],
    );
    assert!(ok);
    assert_eq!(
        status(&key),
        200,
        "membership restored, the key works again"
    );
    let (ok, out) = cli(&url, dir.path(), &["users", "create", "bad id!"]);
    assert!(!ok && out.contains("user id"), "{out}");
}

#[test]
fn no_key_token_or_secret_ever_reaches_the_text_logs() {
    secrets_stay_out_of_the_logs("text");
}

#[test]
fn json_logs_parse_line_by_line_name_the_request_and_hold_no_secret() {
    secrets_stay_out_of_the_logs("json");
}

fn secrets_stay_out_of_the_logs(format: &str) {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let secret = "log-capture-secret-that-is-at-least-32-bytes";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        "sqlite://data/skein.db",
        dir.path(),
        &[
            ("SKEIN_JWT_SECRET", secret),
            ("SKEIN_LOG", "debug"),
            ("SKEIN_LOG_FORMAT", format),
        ],
    );
    let key = server.bootstrap_key.clone().unwrap();
    let user = server
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("user:"))
        .unwrap()
        .trim()
        .to_string();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = encode(
        &Header::default(),
        &json!({"sub": user, "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let http = Client::new();
    let ok = http
        .get(server.url("/v1/threads"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    let bad_token = format!("{token}x");
    let bad = http
        .get(server.url("/v1/threads"))
        .bearer_auth(&bad_token)
        .send()
        .unwrap();
    assert_eq!(bad.status(), 401);
    let r = http
        .post(server.url("/v1/model/response"))
        .header("X-API-Key", &key)
        .json(&json!({"thread": "logged", "inputs": [{"role": "user", "content": "hi"}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let turn_request = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let turn: Value = r.json().unwrap();
    // The last character changed (to one it is not: a key ending in Z
    // would otherwise stay the same key).
    let last = if key.ends_with('Z') { "Y" } else { "Z" };
    let wrong_key = format!("{}{last}", &key[..key.len() - 1]);
    assert_ne!(wrong_key, key);
    let r = http
        .get(server.url("/v1/threads"))
        .header("api-key", &wrong_key)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let logs_path = server.log_path.clone();
    assert!(server.terminate());
    let logs = std::fs::read_to_string(logs_path).unwrap();
    assert!(
        logs.contains("GET /v1/threads"),
        "the access log is there: {logs}"
    );
    if format == "json" {
        let records: Vec<Value> = logs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        for r in &records {
            for field in ["time", "level", "target", "message"] {
                assert!(r[field].is_string(), "{field} in {r}");
            }
        }
        // The access record of the model call: its fields, its request id.
        let access = records
            .iter()
            .find(|r| r["target"] == "skein::access" && r["route"] == "/v1/model/response")
            .expect("the model call's access record");
        assert_eq!(access["request_id"], turn_request.as_str());
        assert_eq!(access["method"], "POST");
        assert_eq!(access["status"], 200);
        assert!(access["latency_ms"].as_f64().unwrap() > 0.0, "{access}");
        assert!(
            access["organization"].as_str().unwrap().starts_with("org_"),
            "{access}"
        );
        // The generation task logs under the request that started it.
        let done = records
            .iter()
            .find(|r| {
                r["message"].as_str().unwrap().contains(&format!(
                    "response {} completed",
                    turn["id"].as_str().unwrap()
                ))
            })
            .expect("the generation task's record");
        assert_eq!(done["request_id"], turn_request.as_str(), "{done}");
        // A refused caller has no organization.
        let refused = records
            .iter()
            .find(|r| r["target"] == "skein::access" && r["status"] == 401)
            .unwrap();
        assert_eq!(refused["organization"], "", "{refused}");
        assert_eq!(refused["route"], "/v1/threads");
    }
    let signature = token.rsplit('.').next().unwrap();
    for (what, secret_text) in [
        ("API key", key.as_str()),
        ("wrong key", wrong_key.as_str()),
        ("token", token.as_str()),
        ("token signature", signature),
        ("JWT secret", secret),
    ] {
        assert!(
            !logs.contains(secret_text),
            "the {what} appears in the logs"
        );
    }
}

fn the_sweeper_and_skein_purge_delete_what_is_due(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = backend_url(&db, dir.path());
    let http = Client::new();
    let create_and_delete = |server: &Server, key: &str| {
        let created: Value = http
            .post(server.url("/v1/threads"))
            .header("X-API-Key", key)
            .json(&json!({"title": "soon gone"}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        let status = http
            .delete(server.url(&format!("/v1/threads/{id}")))
            .header("X-API-Key", key)
            .send()
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 204);
    };

    // The sweeper off: `skein purge` does the work.
    let server = Server::start_with(&url, dir.path(), &[("SKEIN_SWEEP_INTERVAL", "0s")]);
    let key = server.bootstrap_key.clone().unwrap();
    create_and_delete(&server, &key);
    assert!(server.terminate());
    let no_grace = |args: &[&str]| {
        let out = skein(&url, dir.path())
            .env("SKEIN_DELETED_GRACE", "0s")
            .args(args)
            .output_within(COMMAND_DEADLINE);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (ok, out) = cli(&url, dir.path(), &["purge", "--dry-run"]);
    assert!(ok && out.contains("would purge: 0 threads"), "{out}");
    let out = no_grace(&["purge", "--dry-run"]);
    assert!(
        out.contains("would purge: 1 threads, 0 messages, 0 responses"),
        "{out}"
    );
    let out = no_grace(&["purge"]);
    assert!(out.contains("purged: 1 threads"), "{out}");
    let out = no_grace(&["purge", "--dry-run"]);
    assert!(out.contains("would purge: 0 threads"), "{out}");
    let out = skein(&url, dir.path())
        .env("SKEIN_DELETED_GRACE", "soon")
        .args(["purge", "--dry-run"])
        .output_within(COMMAND_DEADLINE);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SKEIN_DELETED_GRACE"));

    // The background sweeper, every second, counted in /metrics.
    let server = Server::start_with(
        &url,
        dir.path(),
        &[
            ("SKEIN_DELETED_GRACE", "0s"),
            ("SKEIN_SWEEP_INTERVAL", "1s"),
        ],
    );
    create_and_delete(&server, &key);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let metrics = http
            .get(server.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        // The counter moves with each batch; the log line comes once the
        // round is over (after one more, empty, batch).
        if metrics.contains("skein_purged_rows_total{kind=\"threads\"} 1\n")
            && server.logs().contains("retention sweep purged 1 threads")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper did not purge in time:\n{metrics}\n{}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(server.logs().contains("retention sweep purged 1 threads"));
    assert!(server.terminate());
}
