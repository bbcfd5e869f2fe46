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
}
