//! Embedded migrations, one tree per backend with the same directory names.
//!
//! On PostgreSQL, applying them holds an advisory lock, so that replicas
//! that start together (or `skein migrate` run beside them) apply each
//! migration once: the others wait, then find nothing pending.

use crate::locks::{self, Wait};
use crate::{DbConnection, StoreError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Applies every pending migration; returns the names of those applied.
/// On PostgreSQL this waits for the migration lock, so that concurrent
/// callers apply each migration exactly once.
pub fn run_pending(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    locks::exclusive(conn, locks::MIGRATIONS, Wait::Block, run_pending_unlocked)
        .map(Option::unwrap_or_default)
}

fn run_pending_unlocked(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE).map(names),
        DbConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES).map(names),
    };
    applied.map_err(|e| StoreError::Migration(e.to_string()))
}

/// Reverts every applied migration (used by tests and by operators rolling back).
pub fn revert_all(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    let reverted = match conn {
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE).map(names),
        DbConnection::Postgresql(c) => c.revert_all_migrations(POSTGRES).map(names),
    };
    reverted.map_err(|e| StoreError::Migration(e.to_string()))
}

/// True when migrations are waiting to be applied.
pub fn has_pending(conn: &mut DbConnection) -> Result<bool, StoreError> {
    let pending = match conn {
        DbConnection::Sqlite(c) => c.has_pending_migration(SQLITE),
        DbConnection::Postgresql(c) => c.has_pending_migration(POSTGRES),
    };
    pending.map_err(|e| StoreError::Migration(e.to_string()))
}

fn names(versions: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    versions.into_iter().map(|v| v.to_string()).collect()
}
