//! Request budgets: `requests` requests per `window_secs` seconds for each
//! caller, by GCRA (the generic cell rate algorithm).
//!
//! The caller is the API key for key requests and the user for token
//! requests (see [`key_identity`] and [`user_identity`]). A caller may spend
//! its whole budget at once; after that one request more is admitted every
//! `window_secs / requests` seconds, so no stretch of `window_secs` ever
//! admits more than the budget plus what it earns back meanwhile (a fixed
//! window would admit twice the budget around its boundary). A refused
//! request is not counted and is told when the next one would pass.
//!
//! On PostgreSQL the budgets live in the database
//! ([`skein_persistence::ratelimits`]), so every replica counts against
//! the same budget of a caller; the check is one statement in the
//! request's own trip to the database. On SQLite (one process) they are
//! counted in memory with the `governor` crate's keyed GCRA; callers whose
//! budget is whole again are dropped from memory from time to time.

use serde::Deserialize;
use skein_domain::retention::Clock;
use skein_persistence::ratelimits::{self, Gcra, Verdict};
use skein_persistence::{DbConnection, StoreError};
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Default window length in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 60;

/// Longest window honoured (about a hundred years): longer ones are cut to
/// it, so that no time computation overflows.
const MAX_WINDOW_SECS: u64 = 100 * 365 * 24 * 3600;

/// Number of tracked callers at which memory is tidied regardless of time;
/// the threshold then doubles while the live entries need the room.
const SWEEP_AT: usize = 10_000;

/// Rate-limit settings as configured (`[rate_limit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests allowed per caller and window (also the largest burst); 0
    /// turns rate limiting off.
    pub requests: u32,
    /// The window in seconds (at least 1): the budget is earned back over
    /// this time, one request every `window_secs / requests` seconds.
    pub window_secs: u64,
}

impl Default for RateLimitSettings {
    /// Off, with a 60-second window.
    fn default() -> Self {
        Self {
            requests: 0,
            window_secs: DEFAULT_WINDOW_SECS,
        }
    }
}

impl RateLimitSettings {
    /// Whether requests are limited at all.
    pub fn is_enabled(&self) -> bool {
        self.requests > 0
    }
}

/// The identity an API key's requests are counted under.
pub fn key_identity(key_id: &str) -> String {
    format!("key:{key_id}")
}

/// The identity a user token's requests are counted under.
pub fn user_identity(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The service clock as a monotonic clock for `governor`: the time since
/// the limiter was made, plus however far the service clock was moved
/// (tests move it).
#[derive(Debug, Clone)]
struct ServiceClock {
    base: Instant,
    clock: Clock,
}

impl ServiceClock {
    fn offset(&self) -> Duration {
        self.clock.offset().to_std().unwrap_or_default()
    }
}

impl governor::clock::Clock for ServiceClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.base.elapsed().saturating_add(self.offset())
    }
}

type Local = governor::RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    ServiceClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// When in-memory budgets were last tidied.
#[derive(Debug)]
struct Housekeeping {
    last_sweep: Option<Duration>,
    sweep_at: usize,
}

/// Counts requests per identity and refuses those over the budget.
pub struct RateLimiter {
    settings: RateLimitSettings,
    gcra: Gcra,
    clock: ServiceClock,
    local: Option<Local>,
    housekeeping: Mutex<Housekeeping>,
    min_sweep_at: usize,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("settings", &self.settings)
            .field("gcra", &self.gcra)
            .finish_non_exhaustive()
    }
}

impl Default for RateLimiter {
    /// Off.
    fn default() -> Self {
        Self::off()
    }
}

impl RateLimiter {
    /// A limiter with these settings, on this service clock (a window of
    /// 0 s counts as 1 s).
    pub fn new(settings: RateLimitSettings, clock: Clock) -> Self {
        Self::with_sweep_threshold(settings, clock, SWEEP_AT)
    }

    /// A limiter that accepts every request.
    pub fn off() -> Self {
        Self::new(RateLimitSettings::default(), Clock::system())
    }

    fn with_sweep_threshold(settings: RateLimitSettings, clock: Clock, sweep_at: usize) -> Self {
        let settings = RateLimitSettings {
            window_secs: settings.window_secs.clamp(1, MAX_WINDOW_SECS),
            ..settings
        };
        let burst = NonZeroU32::new(settings.requests).unwrap_or(NonZeroU32::MIN);
        let emission = Duration::from_secs(settings.window_secs) / burst.get();
        let emission = emission.max(Duration::from_micros(1));
        let gcra = Gcra {
            emission,
            tolerance: emission.saturating_mul(burst.get() - 1),
        };
        let clock = ServiceClock {
            base: Instant::now(),
            clock,
        };
        let local = settings.is_enabled().then(|| {
            let quota = governor::Quota::with_period(emission)
                .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
                .allow_burst(burst);
            governor::RateLimiter::new(quota, Default::default(), clock.clone())
        });
        Self {
            settings,
            gcra,
            clock,
            local,
            housekeeping: Mutex::new(Housekeeping {
                last_sweep: None,
                sweep_at,
            }),
            min_sweep_at: sweep_at,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> RateLimitSettings {
        self.settings
    }

    /// Whether requests are limited at all.
    pub fn is_enabled(&self) -> bool {
        self.settings.is_enabled()
    }

    /// Counts one request of `identity`. On PostgreSQL against the budget
    /// shared by every replica (one statement on `conn`), on SQLite in
    /// memory. The inner `Err` carries the seconds to wait (1 to
    /// `window_secs`, rounded up): the request is over the budget and was
    /// not counted.
    pub fn check(
        &self,
        conn: &mut DbConnection,
        identity: &str,
    ) -> Result<Result<(), u64>, StoreError> {
        if !self.is_enabled() {
            return Ok(Ok(()));
        }
        match ratelimits::take(conn, identity, self.gcra, self.clock.offset())? {
            Some(Verdict::Admitted) => Ok(Ok(())),
            Some(Verdict::Refused { retry_after }) => Ok(Err(self.wait_secs(retry_after))),
            None => Ok(self.check_in_memory(identity)),
        }
    }

    /// Counts one request of `identity` in this process's memory (SQLite
    /// mode); `Err` as in [`RateLimiter::check`].
    pub fn check_in_memory(&self, identity: &str) -> Result<(), u64> {
        let Some(local) = &self.local else {
            return Ok(());
        };
        self.sweep_if_due(local);
        local.check_key(&identity.to_string()).map_err(|not_until| {
            let now = governor::clock::Clock::now(&self.clock);
            self.wait_secs(not_until.wait_time_from(now))
        })
    }

    /// Whole seconds to wait, rounded up, between 1 and the window.
    fn wait_secs(&self, wait: Duration) -> u64 {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        secs.clamp(1, self.settings.window_secs)
    }

    /// How many identities are held in memory.
    pub fn tracked(&self) -> usize {
        self.local.as_ref().map_or(0, Local::len)
    }

    /// Drops callers whose budget is whole again once a window has passed
    /// since the last sweep, or when memory holds the threshold's number.
    fn sweep_if_due(&self, local: &Local) {
        let now = governor::clock::Clock::now(&self.clock);
        let mut hk = self
            .housekeeping
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last = *hk.last_sweep.get_or_insert(now);
        let timely = now.saturating_sub(last) >= Duration::from_secs(self.settings.window_secs);
        let crowded = local.len() >= hk.sweep_at;
        if !(timely || crowded) {
            return;
        }
        local.retain_recent();
        local.shrink_to_fit();
        hk.last_sweep = Some(now);
        // Live entries that fill memory would otherwise make every new
        // identity pay for a full sweep.
        hk.sweep_at = self.min_sweep_at.max(local.len().saturating_mul(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn limiter(requests: u32, window_secs: u64) -> (RateLimiter, Clock) {
        let clock = Clock::system();
        let l = RateLimiter::new(
            RateLimitSettings {
                requests,
                window_secs,
            },
            clock.clone(),
        );
        (l, clock)
    }

    fn advance(clock: &Clock, ms: i64) {
        clock.advance(TimeDelta::milliseconds(ms));
    }

    #[test]
    fn off_by_default() {
        let settings = RateLimitSettings::default();
        assert_eq!(settings.requests, 0);
        assert_eq!(settings.window_secs, 60);
        let off = RateLimiter::default();
        assert!(!off.is_enabled());
        for _ in 0..1000 {
            assert_eq!(off.check_in_memory("key:k"), Ok(()));
        }
        assert_eq!(off.tracked(), 0);
    }

    #[test]
    fn the_budget_is_allowed_at_once_and_then_one_request_per_share_of_the_window() {
        let (l, clock) = limiter(3, 30);
        for _ in 0..3 {
            assert_eq!(l.check_in_memory("key:a"), Ok(()));
        }
        // One request is earned back every 10 s.
        assert_eq!(l.check_in_memory("key:a"), Err(10));
        advance(&clock, 2_500);
        // Refused requests do not count, and the wait shrinks.
        assert_eq!(l.check_in_memory("key:a"), Err(8));
        advance(&clock, 7_600);
        assert_eq!(l.check_in_memory("key:a"), Ok(()));
        assert_eq!(l.check_in_memory("key:a"), Err(10));
        // A whole window later the whole budget is back, and no more.
        advance(&clock, 30_000);
        for _ in 0..3 {
            assert_eq!(l.check_in_memory("key:a"), Ok(()));
        }
        assert!(l.check_in_memory("key:a").is_err());
    }

    #[test]
    fn no_double_burst_at_a_window_boundary() {
        // A fixed window started by the first request would admit the
        // two requests at 59 s and three more at 61 s.
        let (l, clock) = limiter(3, 60);
        assert_eq!(l.check_in_memory("u"), Ok(()));
        advance(&clock, 59_000);
        assert_eq!(l.check_in_memory("u"), Ok(()));
        assert_eq!(l.check_in_memory("u"), Ok(()));
        advance(&clock, 2_000);
        assert_eq!(l.check_in_memory("u"), Ok(()));
        let wait = l.check_in_memory("u").unwrap_err();
        assert!((17..=18).contains(&wait), "{wait}");
    }

    #[test]
    fn retry_after_is_always_between_one_and_the_window() {
        let (l, clock) = limiter(1, 5);
        assert_eq!(l.check_in_memory("u"), Ok(()));
        for _ in 0..19 {
            let wait = l.check_in_memory("u").unwrap_err();
            assert!((1..=5).contains(&wait), "{wait}");
            advance(&clock, 250);
        }
    }

    #[test]
    fn identities_are_independent() {
        let (l, _clock) = limiter(2, 60);
        assert_eq!(l.check_in_memory(&key_identity("key_1")), Ok(()));
        assert_eq!(l.check_in_memory(&key_identity("key_1")), Ok(()));
        assert!(l.check_in_memory(&key_identity("key_1")).is_err());
        assert_eq!(l.check_in_memory(&key_identity("key_2")), Ok(()));
        assert_eq!(l.check_in_memory(&user_identity("key_1")), Ok(()));
        assert_eq!(l.check_in_memory(&user_identity("usr_1")), Ok(()));
        assert_eq!(l.check_in_memory(&user_identity("usr_1")), Ok(()));
        assert!(l.check_in_memory(&user_identity("usr_1")).is_err());
        assert_ne!(key_identity("x"), user_identity("x"));
    }

    #[test]
    fn a_zero_window_counts_as_one_second_and_huge_windows_do_not_overflow() {
        let (l, clock) = limiter(1, 0);
        assert_eq!(l.settings().window_secs, 1);
        assert_eq!(l.check_in_memory("a"), Ok(()));
        assert_eq!(l.check_in_memory("a"), Err(1));
        advance(&clock, 1_000);
        assert_eq!(l.check_in_memory("a"), Ok(()));

        let (l, clock) = limiter(1, u64::MAX);
        assert_eq!(l.check_in_memory("a"), Ok(()));
        advance(&clock, 3_600_000);
        let wait = l.check_in_memory("a").unwrap_err();
        assert!(wait >= 1);
    }

    #[test]
    fn whole_budgets_are_dropped_from_memory_when_a_window_has_passed() {
        let (l, clock) = limiter(5, 10);
        for i in 0..500 {
            assert_eq!(l.check_in_memory(&format!("key:{i}")), Ok(()));
        }
        assert_eq!(l.tracked(), 500);
        // Still within the window: nothing is dropped. This caller spends
        // its whole budget, which is back only at 15 s.
        advance(&clock, 5_000);
        for _ in 0..5 {
            assert_eq!(l.check_in_memory("key:late"), Ok(()));
        }
        assert_eq!(l.tracked(), 501);
        // A window later, only the spent budget and the new one remain.
        advance(&clock, 6_000);
        assert_eq!(l.check_in_memory("key:new"), Ok(()));
        assert_eq!(l.tracked(), 2);
    }

    #[test]
    fn crowded_memory_is_tidied_before_time_and_stays_bounded() {
        let clock = Clock::system();
        let l = RateLimiter::with_sweep_threshold(
            RateLimitSettings {
                requests: 10,
                window_secs: 1000,
            },
            clock.clone(),
            100,
        );
        // Identities arrive one per second, each earning its request back
        // in 100 s: memory reaches its threshold long before a window.
        for i in 0..100u64 {
            assert_eq!(l.check_in_memory(&format!("a{i}")), Ok(()));
            advance(&clock, 1_000);
        }
        assert_eq!(l.tracked(), 100);
        // All live: the sweep keeps them and raises the threshold, so the
        // next identities do not each trigger a sweep.
        assert_eq!(l.check_in_memory("b"), Ok(()));
        assert_eq!(l.tracked(), 101);
        // Once the first ones' budgets are whole, crowded memory drops
        // them even though a full window has not passed since the sweep.
        advance(&clock, 250_000);
        for i in 0..100u64 {
            assert_eq!(l.check_in_memory(&format!("c{i}")), Ok(()));
        }
        assert_eq!(l.tracked(), 100);
        // A long quiet spell leaves one entry.
        advance(&clock, 5_000_000);
        assert_eq!(l.check_in_memory("d"), Ok(()));
        assert_eq!(l.tracked(), 1);
    }
}
