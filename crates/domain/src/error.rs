//! The umbrella error for rule violations.

use crate::{IdError, InvalidStateTransition, MetadataError, TitleError};

/// A request broke one of the domain's rules. Each variant is precise enough
/// for the API layer to map it once to a status code and an error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Metadata broke a size or shape rule.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The title is too long.
    #[error(transparent)]
    Title(#[from] TitleError),
    /// An identifier is malformed.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The requested lifecycle transition is not allowed.
    #[error(transparent)]
    Transition(#[from] InvalidStateTransition),
    /// The user already has the maximum number of pinned threads.
    #[error("at most {max} threads can be pinned per user and organization")]
    PinLimit {
        /// The configured limit.
        max: u32,
    },
    /// The assistant binding cannot change once the thread has messages.
    #[error("the assistant of a thread cannot change once it has messages")]
    AssistantBindingLocked,
    /// The thread is locked: no new messages or responses.
    #[error("the thread is locked: unlock it (state open) to add messages")]
    ThreadLocked,
    /// The thread is archived: read-only for good.
    #[error("the thread is archived and read-only")]
    ThreadArchived,
    /// The thread already holds the maximum number of messages.
    #[error("a thread holds at most {max} messages")]
    MessageLimit {
        /// The configured limit.
        max: u32,
    },
    /// A response is already being generated in the thread.
    #[error("a response is already being generated in this thread")]
    ThreadBusy {
        /// Seconds until the running response's lease expires at the latest.
        retry_after_secs: u64,
    },
    /// A message is malformed (empty content, unknown role).
    #[error("{0}")]
    InvalidMessage(String),
    /// A rewind names a message it cannot rewind to (an edit of a message
    /// that is not the user's).
    #[error("{0}")]
    InvalidRewind(String),
    /// A conditional write (`If-Match`) found the object changed since the
    /// version it names was read.
    #[error("the {0} changed since the version named in If-Match was read: read it again")]
    PreconditionFailed(&'static str),
}
