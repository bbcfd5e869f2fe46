//! The storage layer's error type.

use skein_domain::DomainError;

/// What was looked for and not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A thread (or one the caller may not see).
    Thread,
    /// A message.
    Message,
    /// An assistant.
    Assistant,
    /// An organization.
    Organization,
    /// An API key.
    ApiKey,
}

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (or is not visible to the caller).
    #[error("{0:?} not found")]
    NotFound(Missing),
    /// A pagination cursor names no item of the list.
    #[error("cursor '{0}' does not name an item of this list")]
    InvalidCursor(String),
    /// A uniqueness rule was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A domain rule rejected the change; nothing was written.
    #[error(transparent)]
    Rule(#[from] DomainError),
    /// No connection could be had (database down, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be read back into a domain type.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database rejected a query.
    #[error("database error")]
    Query(#[source] diesel::result::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A blocking task failed to complete.
    #[error("blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_string())
            }
            other => StoreError::Query(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for StoreError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<diesel::ConnectionError> for StoreError {
    fn from(e: diesel::ConnectionError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}
