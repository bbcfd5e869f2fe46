//! Skein's storage layer.
//!
//! One diesel [`DbConnection`] enum covers SQLite and PostgreSQL; the backend
//! is chosen from the database URL's scheme. Query functions are plain
//! synchronous functions over `&mut DbConnection`; the async [`Store`] facade
//! runs them on the blocking thread pool so that no database call ever runs
//! on an async worker.

pub mod assistants;
pub mod connection;
pub mod error;
pub mod events;
pub mod export;
pub mod forks;
pub mod idempotency;
pub mod keys;
mod keyset;
pub mod locks;
pub mod messages;
pub mod migrations;
mod prepared;
pub mod ratelimits;
pub mod responses;
pub mod retention;
pub mod rows;
pub mod schema;
pub mod search;
pub mod store;
pub mod tenancy;
#[cfg(feature = "testing")]
pub mod testing;
pub mod threads;
mod trips;
pub mod turns;

pub use connection::{Backend, DatabaseUrl, DbConnection};
pub use error::{ListKind, Missing, StoreError};
pub use store::{open_direct, PoolOptions, PoolStatus, Store};
pub use threads::{ListOrder, Scope, ThreadPage, ThreadQuery};
