//! `skein export` and `skein import` with the real binary: threads made
//! through HTTP on one database read back identically through HTTP from
//! another after an export and an import, SQLite to SQLite, PostgreSQL to
//! PostgreSQL and SQLite to PostgreSQL (the documented migration path);
//! importing again skips every thread, and `--replace` puts them back as
//! exported.

use super::cli;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::{skein, skein_bin, OutputWithin, Server, COMMAND_DEADLINE};
use std::path::Path;

skein_persistence::on_both_backends!(
    threads_exported_and_imported_read_back_identically_and_import_skips_or_replaces,
);

fn threads_exported_and_imported_read_back_identically_and_import_skips_or_replaces(
    backend: Backend,
) {
    round_trip(backend, backend);
}

#[test]
fn sqlite_threads_move_to_postgresql_identically() {
    round_trip(Backend::Sqlite, Backend::Postgres);
}

/// A small HTTP client of one server with one key.
struct Api<'a> {
    http: Client,
    server: &'a Server,
    key: String,
}

impl Api<'_> {
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.server.url(path))
            .header("X-API-Key", &self.key)
            .timeout(std::time::Duration::from_secs(30));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    #[track_caller]
    fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.send(method, path, body);
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }

    fn get(&self, path: &str) -> Value {
        self.ok(reqwest::Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.ok(reqwest::Method::POST, path, Some(body))
    }

    fn patch(&self, path: &str, body: Value) -> Value {
        self.ok(reqwest::Method::PATCH, path, Some(body))
    }

    /// Everything a client can read of the caller's threads: the list, and
    /// for each thread the thread, its messages, its conversation items and
    /// its settings.
    fn everything(&self) -> Vec<(String, Value)> {
        let list = self.get("/v1/threads?limit=100");
        assert_eq!(list["has_more"], false);
        let mut seen = vec![("list".to_string(), list.clone())];
        for t in list["data"].as_array().unwrap() {
            let id = t["id"].as_str().unwrap();
            for path in [
                format!("/v1/threads/{id}"),
                format!("/v1/threads/{id}/messages?limit=100&order=asc"),
                format!("/v1/conversations/{id}/items?limit=100&order=asc"),
                format!("/v1/threads/{id}/user-state"),
            ] {
                let body = self.get(&path);
                seen.push((path, body));
            }
        }
        seen
    }
}

/// The value of `name:` in the first-start banner.
fn banner_value(server: &Server, name: &str) -> String {
    server
        .banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{}", server.banner))
        .trim()
        .to_string()
}

/// Threads of every kind, made through HTTP; returns the id of the one that
/// was deleted (live threads only are exported).
fn populate(api: &Api) -> String {
    use reqwest::Method;
    // Two turns on the echo model, then renamed, tagged, pinned, with
    // per-user settings.
    for text in ["hello", "and again"] {
        api.post(
            "/v1/model/response",
            json!({"thread": "chat", "inputs": [{"role": "user", "content": text}]}),
        );
    }
    api.patch(
        "/v1/threads/chat",
        json!({"title": "Chat", "metadata": {"team": "support", "tier": "gold"}}),
    );
    api.post("/v1/threads/chat/pin", json!({}));
    api.patch(
        "/v1/threads/chat/user-state",
        json!({"model_override": "default"}),
    );
    // Locked, with a workflow label and a message that carries metadata.
    let locked = api.post(
        "/v1/threads",
        json!({"title": "Locked", "metadata": {"k": "v"}, "workflow_id": "wf-1"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &format!("/v1/threads/{locked}/messages"),
        json!({"role": "user", "content": "a note", "metadata": {"source": "e2e"}}),
    );
    api.post(
        &format!("/v1/threads/{locked}/messages"),
        json!({"role": "assistant", "content": "noted"}),
    );
    api.patch(&format!("/v1/threads/{locked}"), json!({"state": "locked"}));
    // Archived after a turn, and read by its owner.
    api.post(
        "/v1/model/response",
        json!({"thread": "old", "inputs": [{"role": "user", "content": "long ago"}]}),
    );
    api.post("/v1/threads/old/read", json!({}));
    api.patch("/v1/threads/old", json!({"state": "archived"}));
    // A fork of the chat at its first answer, with a turn of its own.
    let first_answer = api.get("/v1/threads/chat/messages?order=asc&limit=2")["data"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fork = api.post(
        "/v1/threads/chat/fork",
        json!({"message_id": first_answer, "title": "Forked"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        "/v1/model/response",
        json!({"thread": fork, "inputs": [{"role": "user", "content": "in the fork"}]}),
    );
    // Incognito, with its deletion time.
    api.post(
        "/v1/threads",
        json!({"title": "Secret", "is_incognito": true}),
    );
    // A conversation of the OpenAI dialect with a function call and its output.
    let conv = api.post(
        "/v1/conversations",
        json!({"items": [{"role": "user", "content": "weather in Oslo?"}], "metadata": {"via": "openai"}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &format!("/v1/conversations/{conv}/items"),
        json!({"items": [
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
        ]}),
    );
    // Deleted: not exported.
    let gone = api.post("/v1/threads", json!({"title": "Gone"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.ok(Method::DELETE, &format!("/v1/threads/{gone}"), None);
    gone
}

/// Runs a CLI command that must succeed; its stdout and stderr.
#[track_caller]
fn run(url: &str, dir: &Path, args: &[&str]) -> String {
    let (ok, out) = cli(url, dir, args);
    assert!(ok, "skein {args:?} failed:\n{out}");
    out
}

fn round_trip(from: Backend, to: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (source_db, target_db) = (TestDb::new(from), TestDb::new(to));
    let source = Server::start(&source_db.url, dir.path());
    let key = source
        .bootstrap_key
        .clone()
        .expect("first start prints a key");
    let (org, user) = (
        banner_value(&source, "organization:"),
        banner_value(&source, "user:"),
    );
    let api = Api {
        http: Client::new(),
        server: &source,
        key,
    };
    let gone = populate(&api);
    let before = api.everything();
    let threads = before[0].1["data"].as_array().unwrap().len();
    assert_eq!(threads, 6, "{}", before[0].1);

    // Export to a file and to stdout: the same lines, one per live thread.
    let file = dir.path().join("threads.ndjson");
    let file_arg = file.to_str().unwrap();
    let out = run(
        &source_db.url,
        dir.path(),
        &["export", "--org", &org, "--output", file_arg],
    );
    assert!(
        out.contains(&format!("exported {threads} threads (")),
        "{out}"
    );
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), threads);
    assert!(!exported.contains(&gone), "deleted threads stay behind");
    let stdout = skein(&source_db.url, dir.path())
        .args(["export", "--org", &org, "--user", &user])
        .output_within(COMMAND_DEADLINE);
    assert!(stdout.status.success(), "{stdout:?}");
    assert_eq!(String::from_utf8(stdout.stdout).unwrap(), exported);

    // Import into an empty database; a key for the same user there.
    let out = run(&target_db.url, dir.path(), &["import", file_arg]);
    let messages: usize = exported
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["messages"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert!(
        out.contains(&format!(
            "imported {threads} threads ({messages} messages), skipped 0"
        )),
        "{out}"
    );
    let created = run(
        &target_db.url,
        dir.path(),
        &["keys", "create", "--org", &org, "--user", &user],
    );
    let target_key = created
        .lines()
        .find_map(|l| l.strip_prefix("api key:"))
        .unwrap()
        .trim()
        .to_string();
    let target = Server::start(&target_db.url, dir.path());
    assert!(target.bootstrap_key.is_none(), "{}", target.banner);
    let moved = Api {
        http: Client::new(),
        server: &target,
        key: target_key,
    };
    // Every answer is the same JSON, field for field.
    let after = moved.everything();
    assert_eq!(after.len(), before.len());
    for ((path, want), (_, got)) in before.iter().zip(&after) {
        assert_eq!(got, want, "{path} differs after the move");
    }
    let (status, _) = moved.send(reqwest::Method::GET, &format!("/v1/threads/{gone}"), None);
    assert_eq!(status, 404);
    // Exporting the new database gives the same file.
    let again = skein(&target_db.url, dir.path())
        .args(["export", "--org", &org])
        .output_within(COMMAND_DEADLINE);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), exported);

    // The same file again: every thread is skipped, nothing is duplicated.
    moved.post(
        "/v1/threads/chat/messages",
        json!({"role": "user", "content": "only in the new database"}),
    );
    let out = run(&target_db.url, dir.path(), &["import", file_arg]);
    assert!(
        out.contains(&format!(
            "imported 0 threads (0 messages), skipped {threads}"
        )),
        "{out}"
    );
    assert_eq!(moved.get("/v1/threads/chat")["message_count"], 5);
    assert_eq!(
        moved.get("/v1/threads?limit=100")["data"]
            .as_array()
            .unwrap()
            .len(),
        threads
    );
    // --replace (from stdin): the threads are as exported again.
    let replaced = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec '{}' import --replace - < '{file_arg}'",
            skein_bin().display()
        ))
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("SKEIN_CONFIG")
        .env("SKEIN_DATABASE_URL", &target_db.url)
        .output_within(COMMAND_DEADLINE);
    let out = String::from_utf8_lossy(&replaced.stdout);
    assert!(replaced.status.success(), "{replaced:?}");
    assert!(
        out.contains(&format!(
            "imported {threads} threads ({messages} messages), skipped 0, replaced {threads}"
        )),
        "{out}"
    );
    let after = moved.everything();
    for ((path, want), (_, got)) in before.iter().zip(&after) {
        assert_eq!(got, want, "{path} differs after --replace");
    }

    // A bad line stops the import at its number; the lines before it stay.
    let broken = dir.path().join("broken.ndjson");
    let first = exported.lines().next().unwrap();
    std::fs::write(&broken, format!("{first}\n{{\"thread\": 7}}\n{first}\n")).unwrap();
    let fresh = TestDb::new(to);
    let (ok, out) = cli(
        &fresh.url,
        dir.path(),
        &["import", broken.to_str().unwrap()],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("line 2:"), "{out}");
    assert!(out.contains("imported 1 threads"), "{out}");
    assert!(source.terminate());
    assert!(target.terminate());
}
