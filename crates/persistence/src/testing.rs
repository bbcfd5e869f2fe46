//! Test support: each test gets its own fresh database.
//!
//! SQLite: a file in a temporary directory. PostgreSQL: a uniquely named
//! database on the server named by `SKEIN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped when the [`TestDb`]
//! is dropped. An unreachable PostgreSQL server fails the test: it never
//! skips.
//!
//! PostgreSQL databases are cloned (`CREATE DATABASE .. TEMPLATE`) from a
//! template that is already migrated, so a test does not pay for running
//! every migration. The template is named after a digest of the migrations
//! (`skein_tmpl_<digest>`, see `build.rs`): a change to them gets a new one.
//! It is built at most once per test process, by whichever process first
//! finds it missing, under a PostgreSQL advisory lock, migrated under a
//! temporary name and renamed when complete, so concurrent test processes
//! neither race nor ever clone a half-migrated template. Nobody may connect
//! to it (`ALLOW_CONNECTIONS false`): a connection to a template makes
//! `CREATE DATABASE .. TEMPLATE` fail. Templates of other migrations that no
//! process has used for an hour are dropped when a new one is built.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use crate::{Backend, DatabaseUrl, PoolOptions, Store};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sql_types::Text;
use diesel::{QueryResult, QueryableByName, RunQueryDsl};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The default administrative connection for creating test databases.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Names of template databases start with this.
const TEMPLATE_PREFIX: &str = "skein_tmpl_";

/// Serializes building templates across test processes (`pg_advisory_lock`).
const TEMPLATE_LOCK: i64 = 0x736b_6569_6e74_6d70; // "skeintmp"

/// Templates of other migrations unused for longer than this are dropped.
const STALE_TEMPLATE_SECS: u64 = 3600;

/// Whether this process has made sure the template exists.
static TEMPLATE_READY: Mutex<bool> = Mutex::new(false);

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

/// The admin URL with its database replaced by `name`.
fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

fn admin_connection() -> PgConnection {
    let url =
        DatabaseUrl::parse(&admin_url()).expect("SKEIN_TEST_POSTGRES_URL must be postgres://");
    match url.connect(Duration::from_secs(5)) {
        Ok(crate::DbConnection::Postgresql(conn)) => conn,
        Ok(_) => panic!("SKEIN_TEST_POSTGRES_URL must be postgres://"),
        Err(e) => panic!(
            "PostgreSQL is required for this test and is not reachable at {} ({e}). \
             Start it (see docs/operations.md) or set SKEIN_TEST_POSTGRES_URL.",
            crate::connection::redact(&admin_url())
        ),
    }
}

fn unique_name() -> String {
    format!(
        "skein_test_{}",
        skein_domain::ids::random_base62(16).to_lowercase()
    )
}

/// The template for the migrations this crate embeds.
fn template_name() -> String {
    format!("{TEMPLATE_PREFIX}{}", env!("SKEIN_PG_MIGRATIONS_DIGEST"))
}

impl TestDb {
    /// A fresh database on the given backend. On PostgreSQL it comes
    /// migrated (a clone of the template); on SQLite it is an empty file
    /// path. Either way [`TestDb::store`] hands out a migrated store.
    pub fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres(),
        }
    }

    /// A fresh database without any table, for tests of the migrations
    /// themselves (and of whatever runs them first).
    pub fn empty(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => {
                let name = unique_name();
                admin_connection()
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                Self::on_postgres(name)
            }
        }
    }

    /// A fresh SQLite file (not yet migrated).
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

    /// A fresh, uniquely named PostgreSQL database, migrated: cloned from
    /// the template.
    pub fn postgres() -> Self {
        let name = unique_name();
        clone_template(&mut admin_connection(), &name);
        Self::on_postgres(name)
    }

    fn on_postgres(name: String) -> Self {
        Self {
            url: database_url(&name),
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
        // A no-op on a database cloned from the template.
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

/// `CREATE DATABASE name TEMPLATE <template>`, building the template first
/// if this process has not yet made sure it exists. Retries for a while
/// when PostgreSQL reports the template in use (a session that was just
/// closed may linger for a moment), and rebuilds it once if another
/// process dropped it meanwhile.
fn clone_template(admin: &mut PgConnection, name: &str) {
    let template = template_name();
    ensure_template(admin, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rebuilt = false;
    loop {
        let created = admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"));
        let message = match created {
            Ok(()) => return,
            Err(e) => e.to_string(),
        };
        if message.contains("does not exist") && !rebuilt {
            rebuilt = true;
            ensure_template(admin, true);
        } else if message.contains("being accessed by other users") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        } else {
            panic!("create test database {name} from {template}: {message}");
        }
    }
}

/// Makes sure the template exists: once per process, or again when
/// `recheck` (it went missing).
fn ensure_template(admin: &mut PgConnection, recheck: bool) {
    let mut ready = TEMPLATE_READY
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if *ready && !recheck {
        return;
    }
    // Bounded: a process that holds the lock is building, which takes
    // seconds; one that died has released it with its session.
    admin
        .batch_execute("SET lock_timeout = '120s'")
        .and_then(|()| admin.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})")))
        .unwrap_or_else(|e| panic!("lock the test template: {e}"));
    let built = build_template_unless_present(admin);
    let _ = admin.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"));
    let _ = admin.batch_execute("RESET lock_timeout");
    if let Err(e) = built {
        panic!("build the test template {}: {e}", template_name());
    }
    *ready = true;
}

#[derive(QueryableByName)]
struct Template {
    #[diesel(sql_type = Text)]
    datname: String,
    #[diesel(sql_type = Text)]
    note: String,
}

/// The caller holds the advisory lock.
fn build_template_unless_present(admin: &mut PgConnection) -> QueryResult<()> {
    let template = template_name();
    let templates: Vec<Template> = diesel::sql_query(format!(
        "SELECT datname::text AS datname, \
                COALESCE(shobj_description(oid, 'pg_database'), '') AS note \
         FROM pg_database WHERE starts_with(datname, '{TEMPLATE_PREFIX}')"
    ))
    .load(admin)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if !templates.iter().any(|t| t.datname == template) {
        // Migrated under another name and renamed when complete: a crash
        // midway never leaves a half-migrated template behind.
        let building = format!("{template}_new");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))?;
        admin.batch_execute(&format!("CREATE DATABASE {building}"))?;
        migrate(&building);
        admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))?;
        admin.batch_execute(&format!(
            "ALTER DATABASE {template} WITH ALLOW_CONNECTIONS false"
        ))?;
        for stale in templates.iter().filter(|t| {
            let used = t.note.strip_prefix("used ").and_then(|s| s.parse().ok());
            used.is_none_or(|secs: u64| now.saturating_sub(secs) > STALE_TEMPLATE_SECS)
        }) {
            // May fail if in use right now: then it is not stale after all.
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", stale.datname));
        }
    }
    admin.batch_execute(&format!("COMMENT ON DATABASE {template} IS 'used {now}'"))
}

/// Runs every migration on the named database; the connection is closed
/// before this returns.
fn migrate(name: &str) {
    let url = DatabaseUrl::parse(&database_url(name)).expect("a postgres:// URL");
    let mut conn = url
        .connect(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {name}: {e}"));
    crate::migrations::run_pending(&mut conn).unwrap_or_else(|e| panic!("migrate {name}: {e}"));
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
