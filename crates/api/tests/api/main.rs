//! The HTTP API through the real app builder, on SQLite and PostgreSQL, each
//! test with its own fresh database. One test binary (link time), one module
//! per resource; `common` and `client` hold the shared helpers and the typed
//! test client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[macro_use]
mod common;
mod client;

mod assistants;
mod conditional;
mod edge;
mod export;
mod forks;
mod idempotency;
mod isolation;
mod messages;
mod openai;
mod preview;
mod ratelimit;
mod responses;
mod retention;
mod search;
mod service;
mod thread_feed;
mod threads;
mod tokens;
mod user_state;
