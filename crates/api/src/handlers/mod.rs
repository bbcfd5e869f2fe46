//! Request handlers, one module per resource.

pub mod service;
pub mod threads;
