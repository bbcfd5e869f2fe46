//! The pooled store and its async facade.

use crate::connection::{redact, Manager, WriteGate};
use crate::{migrations, Backend, DatabaseUrl, DbConnection, StoreError};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{Pool, PooledConnection};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Most connections kept open.
    pub max_size: u32,
    /// How long a request waits for a free connection before 503.
    pub connection_timeout: Duration,
    /// How long SQLite waits on a locked database before failing.
    pub busy_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connection_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens one connection without a pool, for one-shot commands (the CLI).
///
/// Reports a bad URL or an unreachable server with the driver's own message.
/// On SQLite it creates the file's directory and switches the file to WAL
/// (a setting stored in the file, so pooled connections opened later
/// inherit it without racing each other to set it).
pub fn open_direct(url: &str, busy_timeout: Duration) -> Result<DbConnection, StoreError> {
    let parsed = DatabaseUrl::parse(url)?;
    if parsed.backend == Backend::Sqlite {
        if let Some(parent) = std::path::Path::new(&parsed.target).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot create directory {}: {e}",
                        parent.display()
                    ))
                })?;
            }
        }
    }
    let mut conn = parsed
        .connect(busy_timeout)
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to {}: {e}", redact(url))))?;
    if parsed.backend == Backend::Sqlite {
        conn.batch_execute("PRAGMA journal_mode = WAL;")?;
    }
    Ok(conn)
}

/// A snapshot of the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The pool's size limit.
    pub max: u32,
    /// Connections open (idle or in use).
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// SQLite: writes queued for the writer connection (always 0 on
    /// PostgreSQL, where writers run side by side).
    pub writes_waiting: usize,
}

/// Counts a waiting request while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection pool plus the async facade that runs queries off the async
/// workers. Cheap to clone.
///
/// A request first waits for one of `max_size` permits (an async semaphore,
/// so waiting parks no thread), and only then hops to the blocking pool,
/// where a connection is free for it: a burst waits in line instead of
/// parking a blocking thread per request in `pool.get()`. A request that
/// cannot get a permit within `connection_timeout` fails with
/// [`StoreError::Unavailable`] (503 with `Retry-After` in the API).
#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    backend: Backend,
    gate: Arc<Semaphore>,
    /// Requests waiting for a permit right now.
    waiting: Arc<AtomicUsize>,
    wait: Duration,
    writer: Option<Arc<WriteGate>>,
    /// Wake-ups for stream readers and cancel requests.
    signals: Arc<crate::events::Signals>,
    /// The URL, for the notification listener (PostgreSQL).
    url: Arc<str>,
    /// The threads trips run on (as many as `gate` has permits).
    trips: Arc<crate::trips::Trips>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database and builds the pool. Blocking: call it before the
    /// server starts (or inside `spawn_blocking`). One connection is opened
    /// first with [`open_direct`], for its clear errors and the WAL switch.
    pub fn open(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        let parsed = DatabaseUrl::parse(url)?;
        drop(open_direct(url, options.busy_timeout)?);
        let backend = parsed.backend;
        let pool = Pool::builder()
            .max_size(options.max_size)
            .min_idle(Some(1))
            .connection_timeout(options.connection_timeout)
            // No `SELECT 1` before every use (a round trip per request on
            // PostgreSQL): a connection that broke fails its query, diesel
            // marks it broken, and the pool discards it (`has_broken`).
            .test_on_check_out(false)
            .build(Manager::new(parsed.clone(), options.busy_timeout))?;
        let permits = usize::try_from(options.max_size).unwrap_or(1).max(1);
        let writer = (backend == Backend::Sqlite)
            .then(|| WriteGate::for_database(&parsed, options.busy_timeout));
        Ok(Self {
            pool,
            backend,
            gate: Arc::new(Semaphore::new(permits)),
            waiting: Arc::new(AtomicUsize::new(0)),
            wait: options.connection_timeout,
            writer,
            signals: Arc::new(crate::events::Signals::default()),
            url: Arc::from(url),
            trips: Arc::new(crate::trips::Trips::new(permits)),
        })
    }

    /// This process's stream and cancel signals.
    pub fn signals(&self) -> &Arc<crate::events::Signals> {
        &self.signals
    }

    /// On PostgreSQL, starts following the other replicas' notifications
    /// (stored stream events, cancel requests) on a connection of its own;
    /// must run inside the async runtime. On SQLite (one process) there is
    /// nothing to follow.
    pub fn listen(&self) {
        if self.backend == Backend::Postgres {
            tokio::spawn(crate::events::listen(
                self.url.to_string(),
                Arc::clone(&self.signals),
            ));
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for blocking callers (the CLI, start-up, tests).
    pub fn conn(&self) -> Result<PooledConnection<Manager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Applies pending migrations (blocking). On PostgreSQL under an
    /// advisory lock: replicas that start at once apply each migration once.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        migrations::run_pending(&mut *self.conn()?)
    }

    /// Runs `f` with a pooled connection on one of the store's own threads
    /// (at most `max_size` of them, see `trips.rs`), so that neither waiting
    /// for a connection nor the query itself ever blocks an async worker. At
    /// most `max_size` calls run at once; the others wait for a permit
    /// without a thread, up to the connection timeout.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let waited = Waiting::enter(&self.waiting);
        let acquired = tokio::time::timeout(self.wait, self.gate.clone().acquire_owned()).await;
        drop(waited);
        let permit = match acquired {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => {
                return Err(E::from(StoreError::Unavailable(
                    "the store is closed".into(),
                )))
            }
            Err(_elapsed) => {
                return Err(E::from(StoreError::Unavailable(format!(
                    "all {} database connections stayed busy for {} ms",
                    self.pool.max_size(),
                    self.wait.as_millis()
                ))))
            }
        };
        let store = self.clone();
        self.trips
            .run(move || {
                let _permit = permit;
                store.blocking(f)
            })
            .await
            .map_err(E::from)?
    }

    /// Runs `f` with a pooled connection on the calling thread (blocking),
    /// its write transactions queued fairly with the store's other writers.
    /// For blocking callers (tools, tests); async code uses [`Store::run`].
    pub fn blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        // Nothing left over from a trip on this thread that panicked.
        crate::connection::leave_next_write();
        WriteGate::install(self.writer.as_ref(), || f(&mut conn))
    }

    /// The pool as it is now (for metrics).
    pub fn pool_status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            max: self.pool.max_size(),
            open: state.connections,
            idle: state.idle_connections,
            waiting: self.waiting.load(Ordering::Relaxed),
            writes_waiting: self.writer.as_ref().map_or(0, |gate| gate.waiting()),
        }
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            conn.batch_execute("SELECT 1")?;
            Ok(())
        })
        .await
    }
}
