//! Request handlers, one module per resource.

pub mod messages;
pub mod service;
pub mod threads;
