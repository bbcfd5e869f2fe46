//! Shared application state.

use crate::ratelimit::RateLimiter;
use chrono::TimeDelta;
use skein_domain::Limits;
use skein_engine::{Engine, Running};
use skein_persistence::Store;
use skein_providers::Router;
use std::sync::Arc;

/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default lifetime of a thread's busy lease: a response that has not
/// finished by then (a crashed process) no longer blocks the thread.
pub const DEFAULT_LEASE_TTL: TimeDelta = TimeDelta::minutes(10);

/// The contract's heartbeat interval on silent response streams.
pub const DEFAULT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// Thread-less responses can be chained to for this long.
pub const DEFAULT_RESPONSE_TTL: TimeDelta = TimeDelta::hours(24);

/// The contract's quick-cancel window.
pub const DEFAULT_QUICK_CANCEL: std::time::Duration = std::time::Duration::from_secs(5);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Domain limits.
    pub limits: Limits,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Model name -> provider.
    pub router: Router,
    /// Lifetime of a busy lease.
    pub lease_ttl: TimeDelta,
    /// Responses being generated in this process.
    pub running: Arc<Running>,
    /// Retention periods (expiry, purge, response TTL).
    pub retention: skein_domain::retention::RetentionPolicy,
    /// The service clock (tests move it forward).
    pub clock: skein_domain::retention::Clock,
    /// Verifies user tokens; `None` when they are not enabled.
    pub tokens: Option<Arc<crate::tokens::TokenVerifier>>,
    /// Silence after which a response stream sends `response.heartbeat`.
    pub heartbeat: std::time::Duration,
    /// How long a thread-less response can be chained to.
    pub response_ttl: TimeDelta,
    /// A cancel within this time of the start keeps nothing of the turn
    /// (`quick_edit`); later the partial answer is saved (`keep_partial`).
    pub quick_cancel: std::time::Duration,
    /// Request budgets per API key and per token user, checked after
    /// authentication (shared by every replica on PostgreSQL); off unless
    /// configured.
    pub rate_limiter: Arc<RateLimiter>,
    /// Store thread responses' events for reconnects (on by default).
    pub store_stream_events: bool,
    /// Origins browsers may call from (CORS); empty (the default): no
    /// CORS headers, so browsers on other origins are refused. `*`: any.
    pub cors_origins: Vec<String>,
    /// `Idempotency-Key` answers this process is writing down right now
    /// (see [`crate::idempotency`]).
    pub settling: Arc<crate::idempotency::Settling>,
}

impl AppState {
    /// The turn engine over this state's store, models and settings (a
    /// cheap view: every field is shared).
    pub fn engine(&self) -> Engine {
        Engine {
            store: self.store.clone(),
            router: self.router.clone(),
            limits: self.limits,
            clock: self.clock.clone(),
            lease_ttl: self.lease_ttl,
            response_ttl: self.response_ttl,
            heartbeat: self.heartbeat,
            quick_cancel: self.quick_cancel,
            running: Arc::clone(&self.running),
            store_events: self.store_stream_events,
        }
    }

    /// State with the contract's default limits and the echo model for
    /// every model name.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            limits: Limits::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            router: Router::echo_default(),
            lease_ttl: DEFAULT_LEASE_TTL,
            running: Arc::new(Running::default()),
            quick_cancel: DEFAULT_QUICK_CANCEL,
            response_ttl: DEFAULT_RESPONSE_TTL,
            heartbeat: DEFAULT_HEARTBEAT,
            tokens: None,
            retention: skein_domain::retention::RetentionPolicy::default(),
            clock: skein_domain::retention::Clock::system(),
            rate_limiter: Arc::new(RateLimiter::off()),
            store_stream_events: true,
            cors_origins: Vec::new(),
            settling: Arc::default(),
        }
    }
}
