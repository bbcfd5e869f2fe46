//! Shared application state.

use skein_domain::Limits;
use skein_persistence::Store;

/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach: the store and the configured limits.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Domain limits.
    pub limits: Limits,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
}

impl AppState {
    /// State with the contract's default limits.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            limits: Limits::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}
