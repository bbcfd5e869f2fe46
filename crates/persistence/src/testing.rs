//! Test support: each test gets its own fresh database.
//!
//! SQLite: a file in a temporary directory. PostgreSQL: a uniquely named
//! database created on the server named by `SKEIN_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) and dropped when the
//! [`TestDb`] is dropped. An unreachable PostgreSQL server fails the test:
//! it never skips.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use crate::{Backend, DatabaseUrl, PoolOptions, Store};
use diesel::connection::SimpleConnection;
use std::time::Duration;

/// The default administrative connection for creating test databases.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh, migrated database that disappears when dropped.
pub struct TestDb {
    /// The database URL to hand to a `Store` or the server.
    pub url: String,
    backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn admin_url() -> String {
    std::env::var("SKEIN_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

fn admin_connection() -> crate::DbConnection {
    let url =
        DatabaseUrl::parse(&admin_url()).expect("SKEIN_TEST_POSTGRES_URL must be postgres://");
    url.connect(Duration::from_secs(5)).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for this test and is not reachable at {} ({e}). \
             Start it (see docs/operations.md) or set SKEIN_TEST_POSTGRES_URL.",
            crate::connection::redact(&admin_url())
        )
    })
}

impl TestDb {
    /// A fresh database on the given backend (not yet migrated).
    pub fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres(),
        }
    }

    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("skein.db").display());
        Self {
            url,
            backend: Backend::Sqlite,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    /// A fresh, uniquely named PostgreSQL database.
    pub fn postgres() -> Self {
        let name = format!(
            "skein_test_{}",
            skein_domain::ids::random_base62(16).to_lowercase()
        );
        admin_connection()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let admin = admin_url();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Self {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            pg_name: Some(name),
            _dir: None,
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A migrated store on this database, with a small pool.
    pub fn store(&self) -> Store {
        let store = Store::open(
            &self.url,
            PoolOptions {
                max_size: 4,
                ..PoolOptions::default()
            },
        )
        .expect("open test store");
        store.migrate().expect("migrate test store");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            // FORCE ends the pool's connections that may still be open.
            let _ = admin_connection()
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Generates, for each named story `fn name(backend: Backend)`, a test in
/// module `sqlite` and one in module `postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name($crate::Backend::Postgres) })*
        }
    };
}

/// Like [`on_both_backends!`] for `async fn name(backend: Backend)` stories,
/// run on the actix test runtime.
#[macro_export]
macro_rules! on_both_backends_async {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[actix_web::test] async fn $name() { super::$name($crate::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[actix_web::test] async fn $name() { super::$name($crate::Backend::Postgres).await })*
        }
    };
}
