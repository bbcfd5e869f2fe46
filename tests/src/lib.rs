//! Harness for the end-to-end tests: starts the real `skein` binary on a free
//! port and talks HTTP to it. Every wait on a process has a deadline (the
//! server's "listening" line, its exit, a command's output), so that a hung
//! server or command fails the test instead of hanging it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod upstream;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long the server may take to print its "listening" line, and to exit
/// once signalled (its graceful shutdown waits up to 30 s for connections).
pub const SERVER_DEADLINE: Duration = Duration::from_secs(60);

/// How long one CLI command may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

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
    /// The lines of stdout after the banner; disconnected once stdout closes,
    /// that is when the server has exited. A thread reads them, so the
    /// server never blocks on a full pipe.
    stdout: Receiver<String>,
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
        let stdout = lines_of(child.stdout.take().unwrap());
        let mut banner = String::new();
        let mut bootstrap_key = None;
        let deadline = Instant::now() + SERVER_DEADLINE;
        let base_url = loop {
            let line = match stdout.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => line,
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!(
                        "skein exited ({status}) before listening.\nstdout:\n{banner}\nlogs:\n{logs}"
                    );
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!(
                        "skein did not listen within {SERVER_DEADLINE:?}.\nstdout:\n{banner}\nlogs:\n{logs}"
                    );
                }
            };
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
            stdout,
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

    /// Sends the named signal (`TERM`, `INT`) and waits, at most
    /// [`SERVER_DEADLINE`]; returns whether the server exited successfully.
    pub fn signal(self, name: &str) -> bool {
        self.send(name);
        self.wait_exit()
    }

    /// Sends the named signal and returns at once.
    pub fn send(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = output_within(
            Command::new("kill").args([format!("-{name}"), pid]),
            COMMAND_DEADLINE,
        );
        assert!(sent.status.success(), "{sent:?}");
    }

    /// Waits, at most [`SERVER_DEADLINE`], for the server to exit (after a
    /// signal); returns whether it exited successfully.
    pub fn wait_exit(mut self) -> bool {
        // Its stdout closes when it exits.
        let deadline = Instant::now() + SERVER_DEADLINE;
        loop {
            match self
                .stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "skein did not exit within {SERVER_DEADLINE:?}.\nlogs:\n{}",
                    self.logs()
                ),
            }
        }
        self.child.wait().unwrap().success()
    }

    /// The logs written so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now and at its peak, in KiB (`VmRSS`,
    /// `VmHWM` of `/proc/PID/status`).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Several `skein serve` processes on one database (PostgreSQL: SQLite is
/// one process), each on its own port and in its own working directory
/// (so each has its own log), all stopped when this is dropped.
pub struct Replicas {
    /// The servers, in the order they were started.
    pub servers: Vec<Server>,
    /// The key the first one printed at its first start on the empty
    /// database; it works on every replica.
    pub key: String,
}

impl Replicas {
    /// Starts `n` replicas on `database_url`, with extra environment
    /// variables, in subdirectories `replica-<i>` of `workdir`. The first
    /// starts alone and bootstraps the database (printing the key); the
    /// others start after it listens, find the database set up and print
    /// no key.
    pub fn start(
        n: usize,
        database_url: &str,
        workdir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Self {
        assert!(n >= 1, "at least one replica");
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let dir = workdir.join(format!("replica-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let server = Server::start_with(database_url, &dir, env);
            if i > 0 {
                assert!(
                    server.bootstrap_key.is_none(),
                    "replica {i} bootstrapped again:\n{}",
                    server.banner
                );
            }
            servers.push(server);
        }
        let key = servers[0].bootstrap_key.clone().unwrap_or_else(|| {
            panic!(
                "the first replica printed no key (was the database empty?):\n{}",
                servers[0].banner
            )
        });
        Self { servers, key }
    }

    /// The replica a round-robin balancer sends request `i` to.
    pub fn pick(&self, i: usize) -> &Server {
        &self.servers[i % self.servers.len()]
    }

    /// Every replica's logs, labelled, for failure messages.
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("--- replica {i} ({}):\n{}", s.base_url, s.logs()))
            .collect()
    }
}

/// The lines a reader yields, read on a thread until its end (the channel
/// then disconnects).
fn lines_of(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            // Keep draining even when nobody listens any more.
            let _ = tx.send(line + "\n");
        }
    });
    rx
}

/// Runs `cmd` to its end like [`Command::output`], within `limit`: past it,
/// the process is killed and the test fails naming it.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let (tx, rx) = mpsc::channel();
    let pipes: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for (i, mut pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send((i, bytes));
        });
    }
    let deadline = Instant::now() + limit;
    let mut out = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((i, bytes)) => out[i] = bytes,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {limit:?}");
            }
        }
    }
    let status: ExitStatus = child.wait().unwrap();
    let [stdout, stderr] = out;
    Output {
        status,
        stdout,
        stderr,
    }
}

/// [`output_within`] as a method of [`Command`].
pub trait OutputWithin {
    /// Like [`Command::output`], failing the test past `limit`.
    fn output_within(&mut self, limit: Duration) -> Output;
}

impl OutputWithin for Command {
    fn output_within(&mut self, limit: Duration) -> Output {
        output_within(self, limit)
    }
}
