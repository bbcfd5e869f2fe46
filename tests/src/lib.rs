//! Harness for the end-to-end tests: starts the real `skein` binary on a free
//! port and talks HTTP to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `skein` binary under test: `SKEIN_BIN`, else the debug build in the
/// workspace's target directory (`make test` builds it first).
pub fn skein_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SKEIN_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let bin = target.join("debug").join("skein");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p skein` first (`make test` does)",
        bin.display()
    );
    bin
}

/// A `skein` command with a clean environment for the given database.
pub fn skein(database_url: &str, workdir: &std::path::Path) -> Command {
    let mut cmd = Command::new(skein_bin());
    cmd.current_dir(workdir)
        .env_remove("RUST_LOG")
        .env_remove("SKEIN_CONFIG")
        .env("SKEIN_DATABASE_URL", database_url)
        .env("SKEIN_LOG", "info");
    cmd
}

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The key printed at first start, if this start printed one.
    pub bootstrap_key: Option<String>,
    /// Everything printed to stdout before the server was listening.
    pub banner: String,
    /// Where stderr (the logs) goes.
    pub log_path: PathBuf,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `skein serve` on a free port and waits for its "listening" line.
    pub fn start(database_url: &str, workdir: &std::path::Path) -> Self {
        Self::start_with(database_url, workdir, &[])
    }

    /// Like [`Server::start`] with extra environment variables.
    pub fn start_with(database_url: &str, workdir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let log_path = workdir.join(format!("skein-{}.log", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut child = skein(database_url, workdir)
            .envs(env.iter().copied())
            .arg("serve")
            .env("SKEIN_BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start skein");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let mut bootstrap_key = None;
        let base_url = loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).unwrap();
            if n == 0 {
                let status = child.wait().unwrap();
                let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "skein exited ({status}) before listening.\nstdout:\n{banner}\nlogs:\n{logs}"
                );
            }
            banner.push_str(&line);
            if let Some(key) = line.trim().strip_prefix("API key:") {
                bootstrap_key = Some(key.trim().to_string());
            }
            if let Some(url) = line.trim().strip_prefix("Skein listening on ") {
                break url.trim().to_string();
            }
        };
        Self {
            child,
            base_url,
            bootstrap_key,
            banner,
            log_path,
            _stdout: stdout,
        }
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Sends SIGTERM and waits; returns whether it exited successfully.
    pub fn terminate(self) -> bool {
        self.signal("TERM")
    }

    /// Sends the named signal (`TERM`, `INT`) and waits; returns whether the
    /// server exited successfully.
    pub fn signal(mut self, name: &str) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([format!("-{name}"), pid])
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.wait().unwrap().success()
    }

    /// The logs written so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
