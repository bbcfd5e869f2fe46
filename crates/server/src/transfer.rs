//! `skein export` and `skein import`: moving threads with their messages
//! between databases (SQLite to PostgreSQL, one server to another) as
//! NDJSON, one thread per line (the format of `GET /v1/threads/export`,
//! see `skein_persistence::export`).
//!
//! Export reads the database directly, on one connection, a page of threads
//! and a chunk of messages at a time (constant memory): an organization's
//! live threads (not soft-deleted, not expired under the configured
//! retention, not a first response's provisional thread), user by user,
//! each user's oldest first. Import stores each line in one transaction,
//! creating the organization, user and membership it names if missing; a
//! thread id already taken in the organization is skipped (or replaced with
//! `--replace`), and the first invalid line stops the import, naming its
//! number: the lines before it are imported, nothing of it is, and running
//! the import again after fixing the file skips what is already there.
//!
//! Progress goes to stderr: a progress bar when stderr is a terminal,
//! otherwise a line every 1,000 threads.

use super::{config::Config, open_direct};
use anyhow::{anyhow, bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use skein_domain::{clock, OrganizationId, UserId};
use skein_persistence::export::{self, ExportLine, Imported, Written, THREAD_PAGE};
use skein_persistence::{migrations, tenancy, ListOrder, Scope, ThreadQuery};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::Path;

/// Threads between two plain progress lines.
const REPORT_EVERY: u64 = 1_000;

/// Progress on stderr: a bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    reported: u64,
}

impl Progress {
    /// `bytes`: the input's length, when known (a bar of bytes read).
    fn new(bytes: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match bytes {
                Some(len) => ProgressBar::new(len).with_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Self { bar, reported: 0 }
    }

    /// After each thread: `summary` says what was done so far, `position`
    /// how many bytes were read.
    fn update(&mut self, threads: u64, summary: impl FnOnce() -> String, position: Option<u64>) {
        match &self.bar {
            Some(bar) => {
                if let Some(p) = position {
                    bar.set_position(p);
                }
                bar.set_message(summary());
            }
            None => {
                if threads >= self.reported + REPORT_EVERY {
                    self.reported = threads - threads % REPORT_EVERY;
                    eprintln!("{} so far", summary());
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Where the export goes.
enum Output {
    Stdout(BufWriter<std::io::Stdout>),
    File(BufWriter<std::fs::File>),
}

impl Output {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::File(w) => w,
        }
    }
}

/// A write to the output failed; a closed pipe (`skein export | head`) is
/// not a failure of the export.
#[derive(Debug)]
enum Stop {
    Closed,
    Failed(anyhow::Error),
}

impl From<skein_persistence::StoreError> for Stop {
    fn from(e: skein_persistence::StoreError) -> Self {
        Stop::Failed(e.into())
    }
}

/// `skein export --org ORG [--user USER] [--output FILE]`.
pub fn export(
    config: &Config,
    org: &str,
    user: Option<&str>,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let org = OrganizationId::parse(org).context("--org")?;
    let user = user.map(UserId::parse).transpose().context("--user")?;
    let mut conn = open_direct(config)?;
    migrations::run_pending(&mut conn)?;
    if !tenancy::organization_exists(&mut conn, &org)? {
        bail!("no organization {org} in this database");
    }
    if let Some(u) = &user {
        if !tenancy::user_exists(&mut conn, u)? {
            bail!("no user {u} in this database");
        }
    }
    let mut out = match output {
        Some(path) => Output::File(BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Output::Stdout(BufWriter::new(std::io::stdout())),
    };
    // What the owners see through the API: not deleted, not expired.
    let live = config.retention.policy().liveness(clock::now());
    let query = ThreadQuery {
        limit: THREAD_PAGE,
        order: ListOrder::Asc,
        ..ThreadQuery::default()
    };
    let mut written = Written::default();
    let mut progress = Progress::new(None);
    let mut walk = || -> Result<(), Stop> {
        let mut after: Option<UserId> = None;
        loop {
            let users = match &user {
                Some(u) if after.is_none() => vec![u.clone()],
                Some(_) => Vec::new(),
                None => export::owners(&mut conn, &org, after.as_ref().map(UserId::as_str), 100)?,
            };
            let Some(last) = users.last().cloned() else {
                break;
            };
            for u in users {
                let scope = Scope {
                    organization_id: org.clone(),
                    user_id: u,
                    live: Some(live),
                };
                export::write_scope(
                    &mut conn,
                    &scope,
                    &query,
                    |piece| {
                        out.writer().write_all(piece).map_err(|e| match e.kind() {
                            std::io::ErrorKind::BrokenPipe => Stop::Closed,
                            _ => Stop::Failed(anyhow!(e).context("cannot write the export")),
                        })
                    },
                    |w| {
                        progress.update(
                            w.threads,
                            || format!("exported {} threads ({} messages)", w.threads, w.messages),
                            None,
                        )
                    },
                    &mut written,
                )?;
            }
            after = Some(last);
        }
        out.writer().flush().map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Stop::Closed,
            _ => Stop::Failed(anyhow!(e).context("cannot write the export")),
        })
    };
    let result = walk();
    progress.finish();
    match result {
        Ok(()) => {
            eprintln!(
                "exported {} threads ({} messages)",
                written.threads, written.messages
            );
            Ok(())
        }
        Err(Stop::Closed) => Ok(()),
        Err(Stop::Failed(e)) => {
            // An incomplete file is never left to be taken for an export.
            if let Some(path) = output {
                let _ = std::fs::remove_file(path);
            }
            Err(e.context(format!(
                "the export failed after {} threads",
                written.threads
            )))
        }
    }
}

/// What an import did so far.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    threads: u64,
    messages: u64,
    skipped: u64,
    replaced: u64,
}

impl Counts {
    fn summary(&self, replace: bool) -> String {
        let mut s = format!(
            "imported {} threads ({} messages), skipped {}",
            self.threads, self.messages, self.skipped
        );
        if replace {
            s.push_str(&format!(", replaced {}", self.replaced));
        }
        s
    }
}

/// `skein import FILE [--replace]` (`-`: standard input).
pub fn import(config: &Config, file: &str, replace: bool) -> anyhow::Result<()> {
    let (mut reader, bytes): (Box<dyn BufRead>, Option<u64>) = if file == "-" {
        (Box::new(BufReader::new(std::io::stdin())), None)
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::new(f)), len)
    };
    let mut conn = open_direct(config)?;
    migrations::run_pending(&mut conn)?;
    let mut owners: HashSet<(String, String)> = HashSet::new();
    let mut counts = Counts::default();
    let mut progress = Progress::new(bytes);
    let mut text = String::new();
    let mut number: u64 = 0;
    let mut position: u64 = 0;
    let mut step = || -> anyhow::Result<bool> {
        text.clear();
        number += 1;
        let read = reader
            .read_line(&mut text)
            .with_context(|| format!("line {number}: cannot read it"))?;
        if read == 0 {
            return Ok(false);
        }
        position += read as u64;
        let line = text.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            return Ok(true);
        }
        let parsed = ExportLine::parse(line).map_err(|e| anyhow!("line {number}: {e}"))?;
        let t = &parsed.thread;
        let owner = (t.organization_id.clone(), t.user_id.clone());
        if !owners.contains(&owner) {
            export::ensure_owner(&mut conn, t, clock::now())
                .with_context(|| format!("line {number}: creating {} in {}", owner.1, owner.0))?;
            owners.insert(owner);
        }
        match export::import_thread(&mut conn, &parsed, replace)
            .with_context(|| format!("line {number}: thread {} in {}", t.id, t.organization_id))?
        {
            Imported::Created { messages } => {
                counts.threads += 1;
                counts.messages += messages;
            }
            Imported::Replaced { messages } => {
                counts.threads += 1;
                counts.replaced += 1;
                counts.messages += messages;
            }
            Imported::Skipped => counts.skipped += 1,
        }
        let c = counts;
        progress.update(c.threads + c.skipped, || c.summary(replace), Some(position));
        Ok(true)
    };
    let result = loop {
        match step() {
            Ok(true) => continue,
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    progress.finish();
    match result {
        Ok(()) => {
            println!("{}", counts.summary(replace));
            Ok(())
        }
        Err(e) => {
            eprintln!("{} before line {number}", counts.summary(replace));
            Err(anyhow!(
                "{e:#}\nimport stopped at line {number}: nothing of it was imported, the lines \
                 before it were (after fixing the file, import it again: the threads already \
                 imported are skipped)"
            ))
        }
    }
}
