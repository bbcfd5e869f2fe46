//! Request handlers, one module per resource.

pub mod assistants;
pub mod export;
pub mod messages;
pub mod read_state;
pub mod responses;
pub mod search;
pub mod service;
pub mod threads;
pub mod user_state;
