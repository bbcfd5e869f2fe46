//! The storage layer's error type.

use skein_domain::DomainError;
use std::sync::Arc;

/// What was looked for and not found, with the id the caller gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A thread (or one the caller may not see).
    Thread(String),
    /// A message.
    Message(String),
    /// An assistant.
    Assistant(String),
    /// An organization.
    Organization(String),
    /// An API key.
    ApiKey(String),
}

/// Which list a pagination cursor was meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Thread lists.
    Threads,
    /// A thread's messages.
    Messages,
    /// Assistant lists.
    Assistants,
}

impl ListKind {
    /// The plural noun for messages: "threads", "messages", "assistants".
    pub fn noun(self) -> &'static str {
        match self {
            Self::Threads => "threads",
            Self::Messages => "messages",
            Self::Assistants => "assistants",
        }
    }
}

/// Everything that can go wrong in the storage layer. Cheap to clone (the
/// driver's errors are shared), so that one failure can be reported both to
/// a waiting caller and to a stream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (or is not visible to the caller).
    #[error("{0:?} not found")]
    NotFound(Missing),
    /// A pagination cursor names no item of the list.
    #[error("cursor '{id}' does not name an item of this list of {}", list.noun())]
    InvalidCursor {
        /// The list the cursor was given to.
        list: ListKind,
        /// The cursor as given.
        id: String,
    },
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
    Query(#[source] Arc<diesel::result::Error>),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A trip to the database panicked (the panic's message).
    #[error("a trip to the database failed: {0}")]
    Task(String),
    /// The `Idempotency-Key` claimed with this write belongs to another
    /// request, or holds an answer already: nothing was written (see
    /// [`crate::idempotency::Deferred`], which says what the key holds).
    #[error("idempotency key taken")]
    KeyTaken,
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
            other => StoreError::Query(Arc::new(other)),
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
