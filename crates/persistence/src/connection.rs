//! The multi-backend connection, URL parsing and the r2d2 connection manager.

use crate::StoreError;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

#[allow(missing_docs)] // the derive generates undocumented items
mod multi {
    use diesel::pg::PgConnection;
    use diesel::sqlite::SqliteConnection;

    /// One connection to either backend. Queries are written once against
    /// this type; the rare dialect-specific statement matches on the variant.
    #[derive(diesel::MultiConnection)]
    pub enum DbConnection {
        /// PostgreSQL.
        Postgresql(PgConnection),
        /// SQLite (embedded).
        Sqlite(SqliteConnection),
    }
}
pub use multi::DbConnection;

/// Evaluates `$body` with `$c` bound to the backend's own connection (the
/// same expression, compiled once per backend). For what the multi-backend
/// connection cannot run (batch inserts, upserts) and for the reads on
/// almost every request's path: through it, diesel writes a statement's
/// SQL out again in each of its passes (checking whether it may be cached,
/// collecting its binds), cached or not.
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::DbConnection::Postgresql($c) => $body,
            $crate::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A parsed database URL: `sqlite://path/to/file.db` or `postgres://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// The engine.
    pub backend: Backend,
    /// What the driver is given: a file path for SQLite, the URL for PostgreSQL.
    pub target: String,
}

impl DatabaseUrl {
    /// Picks the backend from the scheme. `sqlite://data/skein.db` is a path
    /// relative to the working directory, `sqlite:///var/lib/skein.db` an
    /// absolute one. `:memory:` is refused: every pooled connection would get
    /// its own empty database.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() || path.contains(":memory:") || path.contains("mode=memory") {
                return Err(StoreError::Unavailable(
                    "an in-memory SQLite database cannot be shared by a pool; use a file path"
                        .into(),
                ));
            }
            return Ok(Self {
                backend: Backend::Sqlite,
                target: path.to_string(),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // An unreachable server fails within seconds instead of the
            // operating system's TCP timeout (minutes), unless the URL
            // says otherwise.
            let target = if url.contains("connect_timeout=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
            } else {
                format!("{url}?connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
            };
            return Ok(Self {
                backend: Backend::Postgres,
                target,
            });
        }
        Err(StoreError::Unavailable(format!(
            "unsupported database URL '{}': use sqlite://PATH or postgres://...",
            redact(url)
        )))
    }

    /// Opens one connection, with Skein's per-connection settings applied.
    pub fn connect(&self, busy_timeout: Duration) -> Result<DbConnection, StoreError> {
        match self.backend {
            Backend::Sqlite => {
                let mut c = SqliteConnection::establish(&self.target)?;
                c.batch_execute(&format!(
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL;",
                    busy_timeout.as_millis()
                ))?;
                c.batch_execute(&format!("PRAGMA cache_size = -{READER_CACHE_KIB};"))?;
                // The message index's normalization (see migration 000012's
                // triggers): every connection that may write a message has it.
                search_fn::skein_search_text_utils::register_impl(&mut c, |text: String| {
                    skein_domain::search::search_text(&text)
                })?;
                Ok(DbConnection::Sqlite(c))
            }
            Backend::Postgres => Ok(DbConnection::Postgresql(PgConnection::establish(
                &self.target,
            )?)),
        }
    }
}

/// SQLite's page cache per pooled connection, in KiB (SQLite's default is
/// 2 MiB). A pooled connection's cache is dropped whenever the writer
/// commits, and the operating system's page cache serves its reads at
/// about the same speed: with 2 MiB, and with 16 MiB, the reads of the
/// benchmark (get thread, the pages of threads and of messages, 32
/// connections) were as fast within the machine's noise, and the server
/// held 1-2 MiB (16 MiB: 5-7 MiB) more (docs/architecture.md, "Memory").
pub const READER_CACHE_KIB: u32 = 1024;

/// SQLite's page cache of the writer connection, in KiB: the default,
/// which its warm cache needs no more of (512 KiB and 8 MiB gave the same
/// creates and appends a second at 32 connections).
pub const WRITER_CACHE_KIB: u32 = 2048;

/// Seconds a PostgreSQL connection may take to open, unless the URL names
/// its own `connect_timeout`.
pub const PG_CONNECT_TIMEOUT_SECS: u32 = 10;

/// The URL with any password replaced, for logs and error messages: the
/// one in `user:password@` and a `password=` query parameter (libpq's
/// spelling; any case).
pub fn redact(url: &str) -> String {
    let masked = match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    match masked.split_once('?') {
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                        format!("{name}=***")
                    }
                    _ => param.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
        None => masked,
    }
}

/// The r2d2 manager: dispatches on the parsed scheme itself (the derived
/// `establish` tries every backend in turn and hides the real error).
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
    busy_timeout: Duration,
}

impl Manager {
    /// A manager for this URL.
    pub fn new(url: DatabaseUrl, busy_timeout: Duration) -> Self {
        Self { url, busy_timeout }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        self.url.connect(self.busy_timeout).map_err(|e| match e {
            StoreError::Query(q) => match std::sync::Arc::try_unwrap(q) {
                Ok(q) => r2d2::Error::QueryError(q),
                Err(q) => r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(
                    q.to_string(),
                )),
            },
            other => r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(
                other.to_string(),
            )),
        })
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// The in-process writer of an SQLite database. SQLite lets one writer in
/// at a time and makes the others poll for the lock with sleeps
/// (`busy_timeout`), which is unfair: a writer that commits and begins again
/// at once (a purge in chunks, a burst of appends) can starve the sleepers
/// and give them "database is locked". Every write transaction run through a
/// [`crate::Store`] first takes its database's gate, a fair (FIFO) lock, so
/// in-process writers take turns in arrival order and reach `BEGIN
/// IMMEDIATE` when the lock is free. The gate also holds the database's
/// writer connection, on which every such transaction runs: one connection
/// writes, so its page cache and prepared statements stay warm (a pooled
/// connection's cache is dropped whenever another connection has written,
/// and every page the transaction touches is read again). `busy_timeout`
/// still covers other processes (the CLI).
pub struct WriteGate {
    /// The writer connection and the transaction open on it, if any.
    lock: parking_lot::FairMutex<Writer>,
    /// Writes queued for `lock`: one that ends while others wait leaves its
    /// transaction open for them (group commit).
    waiting: AtomicUsize,
    /// Writes run on the writer connection (the checkpoint thread looks
    /// whether there were any since its last round).
    writes: AtomicU64,
    wait: Duration,
    url: DatabaseUrl,
}

/// What the gate's lock guards.
#[derive(Default)]
struct Writer {
    /// The writer connection, opened on first use; taken out while a write
    /// runs on it and put back only when it is sound (a panic or a failed
    /// rollback drops it, and the next write opens a fresh one).
    conn: Option<DbConnection>,
    /// The transaction open on `conn` (always there while this is), shared
    /// by the writes that joined it, and how many have.
    batch: Option<(Arc<Batch>, usize)>,
    /// No checkpoint thread could be started: a writer connection opened
    /// now keeps SQLite's own checkpoints in its commits.
    checkpoints_in_commits: bool,
}

/// Writes that share one SQLite transaction (group commit): each runs in
/// a savepoint of its own, so that one that fails leaves the others' work
/// in place, and each answers only once the transaction has committed.
#[derive(Default)]
struct Batch {
    outcome: parking_lot::Mutex<Option<Result<(), StoreError>>>,
    settled: parking_lot::Condvar,
}

/// The most writes that share one transaction: the first of them answers
/// only after the last has run.
const MAX_BATCH: usize = 16;

/// How long a write that left its transaction open for the next ones waits
/// before it goes to commit the transaction itself (should the writer it
/// left it to have given up waiting for its turn).
const BATCH_PATIENCE: Duration = Duration::from_millis(100);

impl std::fmt::Debug for WriteGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGate")
            .field("database", &self.url.target)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl WriteGate {
    /// The gate of the SQLite database at `url` (one per file and process,
    /// shared by every store opened on it); waiting for it gives up after
    /// `wait`, which is also the writer connection's `busy_timeout`.
    pub(crate) fn for_database(url: &DatabaseUrl, wait: Duration) -> Arc<WriteGate> {
        static GATES: std::sync::OnceLock<Mutex<HashMap<String, Weak<WriteGate>>>> =
            std::sync::OnceLock::new();
        let key = std::fs::canonicalize(&url.target)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| url.target.clone());
        let mut gates = GATES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.retain(|_, gate| gate.strong_count() > 0);
        if let Some(gate) = gates.get(&key).and_then(Weak::upgrade) {
            return gate;
        }
        let gate = Arc::new(WriteGate {
            lock: parking_lot::FairMutex::new(Writer::default()),
            waiting: AtomicUsize::new(0),
            writes: AtomicU64::new(0),
            wait,
            url: url.clone(),
        });
        gates.insert(key, Arc::downgrade(&gate));
        let checkpointer = Arc::downgrade(&gate);
        let spawned = std::thread::Builder::new()
            .name("skein-checkpoint".into())
            .spawn(move || checkpoints(&checkpointer));
        if let Err(e) = spawned {
            // The writer then checkpoints in its commits, as SQLite would.
            log::warn!("no checkpoint thread for the SQLite database: {e}");
            gate.lock.lock().checkpoints_in_commits = true;
        }
        gate
    }

    /// Runs `f` with this gate as the current thread's gate: write
    /// transactions inside it queue on the gate.
    pub(crate) fn install<R>(gate: Option<&Arc<WriteGate>>, f: impl FnOnce() -> R) -> R {
        let previous = CURRENT_GATE.with(|g| g.replace(gate.cloned()));
        let result = f();
        CURRENT_GATE.with(|g| g.replace(previous));
        result
    }
}

thread_local! {
    static CURRENT_GATE: RefCell<Option<Arc<WriteGate>>> = const { RefCell::new(None) };
    /// Work that joins the next write transaction on one connection, by
    /// the connection's address ([`join_next_write`]).
    static JOINING: RefCell<Option<(usize, Arc<dyn Joining>)>> = const { RefCell::new(None) };
}

/// Work that runs first in the next write transaction on a connection, so
/// that it commits or rolls back with that transaction's own writes (an
/// `Idempotency-Key` claim: [`crate::idempotency::Deferred`]).
pub(crate) trait Joining {
    /// Runs at the start of the transaction; an error rolls it back.
    fn run(&self, conn: &mut DbConnection) -> Result<(), StoreError>;
    /// The transaction ended (committed or not); whether the work is still
    /// to do, in the next write transaction.
    fn ended(&self, committed: bool) -> bool;
}

fn address(conn: &DbConnection) -> usize {
    std::ptr::from_ref(conn) as usize
}

/// Makes `work` run first in the next write transaction on `conn` on this
/// thread, until [`leave_next_write`].
pub(crate) fn join_next_write(conn: &DbConnection, work: Arc<dyn Joining>) {
    join_at(address(conn), work);
}

/// [`join_next_write`] by the connection's address.
fn join_at(at: usize, work: Arc<dyn Joining>) {
    JOINING.with(|j| *j.borrow_mut() = Some((at, work)));
}

/// Takes back what [`join_next_write`] left, if no write transaction took
/// it for good.
pub(crate) fn leave_next_write() {
    JOINING.with(|j| j.borrow_mut().take());
}

/// The work that joins this write transaction on `conn`, if any.
fn joining(conn: &DbConnection) -> Option<Arc<dyn Joining>> {
    JOINING.with(|j| {
        let mut j = j.borrow_mut();
        match &*j {
            Some((at, _)) if *at == address(conn) => j.take().map(|(_, work)| work),
            _ => None,
        }
    })
}

/// Runs `f` in a transaction that takes the write lock up front: `BEGIN
/// IMMEDIATE` on SQLite (after the database's [`WriteGate`], when the
/// connection came through a store) (so a read-then-write never fails half-way with
/// SQLITE_BUSY), a plain `BEGIN` on PostgreSQL, where the statements inside
/// lock the rows they read with `FOR UPDATE`. Commits on `Ok`, rolls back on
/// `Err`.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    write_transaction_as(conn, Durability::Full, f)
}

/// Runs `f`, a single statement that is atomic on its own, as a write: on
/// PostgreSQL as it is (autocommit: one round trip, not three), on SQLite
/// in a [`write_transaction`] (behind the database's write gate, so that it
/// never waits in `busy_timeout`). Not for use inside a transaction.
pub(crate) fn write_statement<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    match conn {
        DbConnection::Postgresql(_) => f(conn),
        DbConnection::Sqlite(_) => write_transaction(conn, f),
    }
}

/// How a write transaction's commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// The commit returns once it is durable (the database's setting).
    Full,
    /// PostgreSQL may acknowledge the commit before its WAL is on disk
    /// (`synchronous_commit = off` for this transaction only): for state
    /// that a crash may lose at no cost, such as a busy lease. The next
    /// durable commit flushes it too. No difference on SQLite.
    Relaxed,
}

/// [`write_transaction`] with a choice of [`Durability`].
pub(crate) fn write_transaction_as<T, E, F>(
    conn: &mut DbConnection,
    durability: Durability,
    f: F,
) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    let gate = match conn {
        DbConnection::Sqlite(_) => CURRENT_GATE.with(|g| g.borrow().clone()),
        DbConnection::Postgresql(_) => None,
    };
    let joined = joining(conn);
    let joined_at = address(conn);
    let (result, committed) = match gate {
        // On the gate's writer connection, in the transaction open there
        // if other writes left one.
        Some(gate) if sqlite_outside_transaction(conn) => gate
            .write(joined.as_ref(), f)
            .unwrap_or_else(|e| (Err(E::from(e)), false)),
        // A caller already inside a transaction keeps its own connection
        // (and gets diesel's error for a nested one, as it would without a
        // gate), once the writer's open transaction is committed.
        Some(gate) => match gate.acquire() {
            Ok(mut writer) => {
                // Its outcome is the business of the writes that share it.
                let _ = writer.commit_open();
                let result = transaction_on(conn, durability, joined.as_ref(), f);
                let committed = result.is_ok();
                (result, committed)
            }
            Err(e) => (Err(E::from(e)), false),
        },
        None => {
            let result = transaction_on(conn, durability, joined.as_ref(), f);
            let committed = result.is_ok();
            (result, committed)
        }
    };
    if let Some(work) = joined {
        if work.ended(committed) {
            join_at(joined_at, work);
        }
    }
    result
}

impl WriteGate {
    /// Writes queued for the writer connection right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The gate's lock, in arrival order, counted as waiting meanwhile.
    fn acquire(&self) -> Result<parking_lot::FairMutexGuard<'_, Writer>, StoreError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self.lock.try_lock_for(self.wait);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        guard.ok_or_else(|| {
            StoreError::Unavailable(format!(
                "no turn to write within {} ms",
                self.wait.as_millis()
            ))
        })
    }

    /// Runs `joined` and `f` in a savepoint of the writer connection's
    /// transaction (begun now unless another write left it open), then
    /// commits the transaction, or leaves it open for the next write when
    /// writes are waiting (at most [`MAX_BATCH`] share one) and waits for
    /// its commit. Returns `f`'s result and whether it was committed; an
    /// `Err` only when the transaction could not begin. A panic in `f`
    /// rolls back every write of its transaction (those waiting get an
    /// error) and goes on.
    fn write<T, E, F>(
        &self,
        joined: Option<&Arc<dyn Joining>>,
        f: F,
    ) -> Result<(Result<T, E>, bool), StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut writer = self.acquire()?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut conn = match writer.conn.take() {
            Some(c) => c,
            None => {
                let mut c = self.url.connect(self.wait)?;
                c.batch_execute(&format!(
                    "PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA temp_store = MEMORY;"
                ))?;
                if !writer.checkpoints_in_commits {
                    // The checkpoint thread's work.
                    c.batch_execute("PRAGMA wal_autocheckpoint = 0;")?;
                }
                c
            }
        };
        let batch = match &mut writer.batch {
            Some((batch, members)) => {
                *members += 1;
                Arc::clone(batch)
            }
            None => {
                if let Err(e) = begin(&mut conn, Durability::Full) {
                    writer.put_back(conn);
                    return Err(e.into());
                }
                let batch = Arc::new(Batch::default());
                writer.batch = Some((Arc::clone(&batch), 1));
                batch
            }
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            savepoint(&mut conn, joined, f)
        }));
        let (result, sound) = match ran {
            Ok(ran) => ran,
            Err(panic) => {
                // The connection's state is unknown: dropping it rolls the
                // whole transaction back.
                drop(conn);
                writer.abandon("another write of its transaction failed");
                std::panic::resume_unwind(panic)
            }
        };
        if !sound {
            drop(conn);
            writer.abandon("another write of its transaction could not be undone");
            return Ok((result, false));
        }
        writer.conn = Some(conn);
        let members = writer.batch.as_ref().map_or(0, |(_, n)| *n);
        if self.waiting.load(Ordering::SeqCst) > 0 && members < MAX_BATCH {
            // The next write in line joins this transaction.
            drop(writer);
            if result.is_err() {
                return Ok((result, false));
            }
            let outcome = batch.wait(self);
            let committed = outcome.is_ok();
            return Ok((
                result.and_then(|v| outcome.map(|()| v).map_err(E::from)),
                committed,
            ));
        }
        let outcome = writer.commit_open();
        drop(writer);
        Ok(match (result, outcome) {
            (Ok(v), Ok(())) => (Ok(v), true),
            (Ok(_), Err(e)) => (Err(E::from(e)), false),
            (Err(e), _) => (Err(e), false),
        })
    }
}

impl Writer {
    /// Commits the transaction open on the writer connection, if any, and
    /// tells the writes that share it; returns its outcome.
    fn commit_open(&mut self) -> Result<(), StoreError> {
        let Some((batch, _)) = self.batch.take() else {
            return Ok(());
        };
        let outcome = match self.conn.take() {
            Some(mut conn) => {
                let committed = end(&mut conn, true);
                self.put_back(conn);
                committed.map_err(StoreError::from)
            }
            // Unreachable: a transaction is open only on a connection there.
            None => Err(StoreError::Unavailable(
                "the writer connection is gone".into(),
            )),
        };
        batch.settle(outcome.clone());
        outcome
    }

    /// Gives up the open transaction (its connection is already dropped):
    /// the writes that share it get an error.
    fn abandon(&mut self, why: &str) {
        if let Some((batch, _)) = self.batch.take() {
            batch.settle(Err(StoreError::Unavailable(why.into())));
        }
    }

    /// Keeps the writer connection for the next write if it is sound and
    /// outside any transaction.
    fn put_back(&mut self, mut conn: DbConnection) {
        if !conn.is_broken() && sqlite_outside_transaction(&mut conn) {
            self.conn = Some(conn);
        }
    }
}

impl Batch {
    fn settle(&self, outcome: Result<(), StoreError>) {
        *self.outcome.lock() = Some(outcome);
        self.settled.notify_all();
    }

    /// Waits for the transaction's outcome. Should it still be open after
    /// [`BATCH_PATIENCE`] (the write it was left to gave up waiting for its
    /// turn), commits it.
    fn wait(self: &Arc<Self>, gate: &WriteGate) -> Result<(), StoreError> {
        loop {
            {
                let mut outcome = self.outcome.lock();
                if outcome.is_none() {
                    let _ = self.settled.wait_for(&mut outcome, BATCH_PATIENCE);
                }
                if let Some(outcome) = &*outcome {
                    return outcome.clone();
                }
            }
            // Not counted as waiting: the write that holds the lock commits
            // unless others are in line.
            if let Some(mut writer) = gate.lock.try_lock_for(gate.wait) {
                if writer
                    .batch
                    .as_ref()
                    .is_some_and(|(open, _)| Arc::ptr_eq(open, self))
                {
                    return writer.commit_open();
                }
            }
        }
    }
}

/// Runs `joined` and `f` in a savepoint (the transaction is open): released
/// on `Ok`, rolled back on `Err`. Also says whether the connection is sound
/// (false when the savepoint could not be begun or ended).
fn savepoint<T, E, F>(
    conn: &mut DbConnection,
    joined: Option<&Arc<dyn Joining>>,
    f: F,
) -> (Result<T, E>, bool)
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    // Inside a transaction, diesel's nested "transaction" is a savepoint.
    if let Err(e) = on_backend!(&mut *conn, c => AnsiTransactionManager::begin_transaction(c)) {
        return (Err(E::from(e.into())), false);
    }
    run_and_end(conn, joined, f)
}

/// Runs `joined` and `f` in the transaction (or savepoint) just begun on
/// `conn`, then ends it: commits on `Ok`, rolls back on `Err`. Returns
/// `f`'s result (a failed commit's error in its place) and whether the
/// transaction could be ended.
fn run_and_end<T, E, F>(
    conn: &mut DbConnection,
    joined: Option<&Arc<dyn Joining>>,
    f: F,
) -> (Result<T, E>, bool)
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    let result = match joined {
        Some(work) => work.run(conn).map_err(E::from).and_then(|()| f(conn)),
        None => f(conn),
    };
    let ended = end(conn, result.is_ok());
    match (result, ended) {
        (Ok(v), Ok(())) => (Ok(v), true),
        (Ok(_), Err(e)) => (Err(E::from(e.into())), false),
        (Err(e), end) => (Err(e), end.is_ok()),
    }
}

/// How often the checkpoint thread looks for new writes.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL pages from which the checkpoint thread has the WAL start over
/// (SQLite's own threshold for the checkpoints it runs in commits).
const CHECKPOINT_PAGES: i64 = 1000;

/// WAL pages left to copy that the checkpoint thread copies with the gate
/// held (more are copied first without it).
const CHECKPOINT_REST: i64 = 100;

/// The checkpoint thread of an SQLite database, until its gate is gone:
/// checkpoints run here rather than in the commit that crosses SQLite's
/// threshold, where the copy and the file's flush to disk held up every
/// write queued behind that commit (the long p99 of writes). After writes,
/// a `PASSIVE` checkpoint copies the WAL into the database file while the
/// writes go on; once the WAL holds [`CHECKPOINT_PAGES`], the pages written
/// meanwhile are copied again (without the gate, until at most
/// [`CHECKPOINT_REST`] are left, three rounds at most), and the rest with
/// the gate held, so that the copy catches up with the last commit and the
/// writer's next transaction starts the WAL over (a checkpoint that never
/// catches up lets the WAL grow without end).
fn checkpoints(gate: &Weak<WriteGate>) {
    let mut conn = None;
    let mut seen = 0;
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(gate) = gate.upgrade() else {
            return;
        };
        let writes = gate.writes.load(Ordering::Relaxed);
        if writes == seen {
            continue;
        }
        seen = writes;
        if let Err(e) = checkpoint(&gate, &mut conn) {
            log::warn!("SQLite checkpoint failed: {e}");
            conn = None;
        }
    }
}

/// One round of [`checkpoints`], on the thread's own connection.
fn checkpoint(gate: &WriteGate, conn: &mut Option<DbConnection>) -> Result<(), StoreError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(gate.url.connect(gate.wait)?),
    };
    let mut wal = wal_checkpoint(c)?;
    if wal.log < CHECKPOINT_PAGES {
        return Ok(());
    }
    for _ in 0..3 {
        if wal.log - wal.copied <= CHECKPOINT_REST {
            break;
        }
        wal = wal_checkpoint(c)?;
    }
    let mut writer = gate.acquire()?;
    // The writes that share the open transaction get its outcome.
    let _ = writer.commit_open();
    wal_checkpoint(c)?;
    Ok(())
}

/// What `PRAGMA wal_checkpoint` says: pages in the WAL, and how many of
/// them are in the database file.
#[derive(diesel::QueryableByName)]
struct WalPages {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    log: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt, column_name = checkpointed)]
    copied: i64,
}

/// A `PASSIVE` checkpoint: copies what it can without waiting for anyone.
fn wal_checkpoint(conn: &mut DbConnection) -> Result<WalPages, StoreError> {
    use diesel::RunQueryDsl;
    Ok(diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<WalPages>(conn)?)
}

/// Begins a write transaction on `conn`: `BEGIN IMMEDIATE` on SQLite (the
/// write lock up front), `BEGIN` on PostgreSQL (with `synchronous_commit`
/// off for a [`Durability::Relaxed`] one, in the same round trip).
fn begin(conn: &mut DbConnection, durability: Durability) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgresql(c) if durability == Durability::Relaxed => {
            AnsiTransactionManager::begin_transaction_sql(
                c,
                "BEGIN; SET LOCAL synchronous_commit TO OFF",
            )
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c),
    }
}

/// Ends the innermost transaction (or savepoint) on `conn`: commits it, or
/// rolls it back.
fn end(conn: &mut DbConnection, commit: bool) -> diesel::QueryResult<()> {
    on_backend!(conn, c => if commit {
        AnsiTransactionManager::commit_transaction(c)
    } else {
        AnsiTransactionManager::rollback_transaction(c)
    })
}

/// An SQLite connection that is not inside a transaction (and whose state
/// is known).
fn sqlite_outside_transaction(conn: &mut DbConnection) -> bool {
    match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()
            .is_ok_and(|d| d.is_none()),
        DbConnection::Postgresql(_) => false,
    }
}

/// Runs `f` in a write transaction on `conn` (after `joined`'s work, if
/// any): commits on `Ok`, rolls back on `Err`.
fn transaction_on<T, E, F>(
    conn: &mut DbConnection,
    durability: Durability,
    joined: Option<&Arc<dyn Joining>>,
    f: F,
) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    begin(conn, durability).map_err(|e| E::from(e.into()))?;
    // The rule error is what the caller needs; a failed rollback leaves
    // the connection marked broken and r2d2 discards it.
    run_and_end(conn, joined, f).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_get_a_connect_timeout_unless_they_name_one() {
        let target = |url: &str| DatabaseUrl::parse(url).unwrap().target;
        assert_eq!(
            target("postgres://h/db"),
            "postgres://h/db?connect_timeout=10"
        );
        assert_eq!(
            target("postgresql://h/db?sslmode=require"),
            "postgresql://h/db?sslmode=require&connect_timeout=10"
        );
        assert_eq!(
            target("postgres://h/db?connect_timeout=3"),
            "postgres://h/db?connect_timeout=3"
        );
    }

    #[test]
    fn the_scheme_picks_the_backend() {
        let s = DatabaseUrl::parse("sqlite://data/skein.db").unwrap();
        assert_eq!(s.backend, Backend::Sqlite);
        assert_eq!(s.target, "data/skein.db");
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/skein.db")
                .unwrap()
                .target,
            "/var/lib/skein.db"
        );
        let p = DatabaseUrl::parse("postgres://u@h/db").unwrap();
        assert_eq!(p.backend, Backend::Postgres);
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@h/db").unwrap().backend,
            Backend::Postgres
        );
    }

    #[test]
    fn in_memory_sqlite_and_unknown_schemes_are_refused() {
        assert!(DatabaseUrl::parse("sqlite://:memory:").is_err());
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn passwords_in_the_query_are_redacted_too() {
        assert_eq!(
            redact("postgres://skein@db:5432/skein?sslmode=require&password=hunter2&x=1"),
            "postgres://skein@db:5432/skein?sslmode=require&password=***&x=1"
        );
        assert_eq!(
            redact("postgres://u:secret@db/s?PASSWORD=two"),
            "postgres://u:***@db/s?PASSWORD=***"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://user:secret@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
    }
}

/// SQL functions Skein defines on its SQLite connections.
mod search_fn {
    use diesel::sql_types::Text;

    #[diesel::declare_sql_function]
    extern "SQL" {
        /// [`skein_domain::search::search_text`]: what the message index holds.
        fn skein_search_text(text: Text) -> Text;
    }
}
