//! Skein's domain: the rules of conversation threads, free of I/O.
//!
//! Everything here is plain data and pure functions: typed identifiers, the
//! [`Thread`] and [`Assistant`] entities, title and metadata rules, the
//! lifecycle state machine, the pin limit and the configurable [`Limits`].
//! Storage, HTTP and model providers live in other crates and depend on this
//! one, never the reverse, so other teams can reuse it on its own.
#![doc = include_str!("../README.md")]

pub mod assistant;
pub mod clock;
pub mod context;
pub mod error;
pub mod ids;
pub mod limits;
pub mod message;
pub mod metadata;
pub mod naming;
pub mod retention;
pub mod search;
pub mod thread;
pub mod turn;

pub use assistant::{
    Assistant, AssistantError, AssistantName, AssistantSpec, Instructions, Temperature,
};
pub use error::DomainError;
pub use ids::{
    ApiKeyId, AssistantId, IdError, MessageId, OrganizationId, ResponseId, ThreadId, UserId,
};
pub use limits::Limits;
pub use message::{item_kind, item_role, Message, MessagePatch, MessageRole, NewMessage};
pub use metadata::{Metadata, MetadataError, MetadataLimits};
pub use thread::{
    fold_case, ForkPoint, ForkedFrom, InvalidStateTransition, Lease, NewThread, StoredThread,
    Thread, ThreadPatch, ThreadState, ThreadStatus, ThreadTitle, TitleError, WorkflowId,
    MAX_WORKFLOW_ID_CHARS,
};
