//! The pooled store and its async facade.

use crate::connection::{redact, Manager};
use crate::{migrations, Backend, DatabaseUrl, DbConnection, StoreError};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{Pool, PooledConnection};
use std::time::Duration;

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

/// A connection pool plus the async facade that runs queries off the async
/// workers. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    backend: Backend,
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
            .build(Manager::new(parsed, options.busy_timeout))?;
        Ok(Self { pool, backend })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for blocking callers (the CLI, start-up, tests).
    pub fn conn(&self) -> Result<PooledConnection<Manager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Applies pending migrations (blocking).
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        migrations::run_pending(&mut *self.conn()?)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, so that
    /// neither waiting for a connection nor the query itself ever blocks an
    /// async worker.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(StoreError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(StoreError::Task(e)))?
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
