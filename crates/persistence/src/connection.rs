//! The multi-backend connection, URL parsing and the r2d2 connection manager.

use crate::StoreError;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
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
            return Ok(Self {
                backend: Backend::Postgres,
                target: url.to_string(),
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
                Ok(DbConnection::Sqlite(c))
            }
            Backend::Postgres => Ok(DbConnection::Postgresql(PgConnection::establish(
                &self.target,
            )?)),
        }
    }
}

/// The URL with any password replaced, for logs and error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
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

/// Runs `f` in a transaction that takes the write lock up front: `BEGIN
/// IMMEDIATE` on SQLite (so a read-then-write never fails half-way with
/// SQLITE_BUSY), a plain `BEGIN` on PostgreSQL, where the statements inside
/// lock the rows they read with `FOR UPDATE`. Commits on `Ok`, rolls back on
/// `Err`.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    let begun = match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begun.map_err(|e| E::from(e.into()))?;
    let result = f(conn);
    let end = match (&result, &mut *conn) {
        (Ok(_), DbConnection::Sqlite(c)) => AnsiTransactionManager::commit_transaction(c),
        (Ok(_), DbConnection::Postgresql(c)) => AnsiTransactionManager::commit_transaction(c),
        (Err(_), DbConnection::Sqlite(c)) => AnsiTransactionManager::rollback_transaction(c),
        (Err(_), DbConnection::Postgresql(c)) => AnsiTransactionManager::rollback_transaction(c),
    };
    match (result, end) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(E::from(e.into())),
        // The rule error is what the caller needs; a failed rollback leaves
        // the connection marked broken and r2d2 discards it.
        (Err(e), _) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://user:secret@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
    }
}
