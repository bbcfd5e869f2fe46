//! The engine's error: what can stop a turn, already classified so that
//! each front door maps it once to its own wire form.

use skein_domain::context::ContextTooLong;
use skein_domain::DomainError;
use skein_persistence::StoreError;
use skein_providers::ProviderError;

/// Why a turn (or a cancel, or CPU work) failed. Cheap to clone, so that one
/// failure can both end a stream and answer a waiting caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// Storage said no (missing objects, rules, conflicts) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model name routes to no provider.
    #[error("model '{0}' is not configured")]
    ModelNotFound(String),
    /// The new inputs and instructions alone do not fit the window.
    #[error(transparent)]
    ContextTooLong(#[from] ContextTooLong),
    /// The history does not fit the window and the request forbids cutting
    /// it (OpenAI's `truncation: "disabled"`).
    #[error("the conversation does not fit in the model's context window of {window} tokens, and truncation is disabled")]
    HistoryTooLong {
        /// The model's window.
        window: u32,
    },
    /// The response to continue is unknown or older than the response TTL.
    #[error("response '{0}' not found")]
    ResponseNotFound(String),
    /// The request cannot be served as asked.
    #[error("{0}")]
    Invalid(String),
    /// The model provider failed or timed out; nothing was saved.
    #[error(transparent)]
    Upstream(#[from] ProviderError),
    /// The turn was cancelled (the cancel request got the outcome).
    #[error("the response was cancelled")]
    Cancelled,
    /// No response is running in the thread (or the thread is not the
    /// caller's).
    #[error("no response is running in thread '{0}'")]
    NotRunning(String),
    /// A task of the engine panicked; its lease was released.
    #[error("an engine task failed: {0}")]
    Panicked(String),
}

impl From<DomainError> for EngineError {
    fn from(e: DomainError) -> Self {
        Self::Store(StoreError::Rule(e))
    }
}

/// The text of a panic payload, for logs.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}
