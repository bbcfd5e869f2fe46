//! Request budgets: at most `requests` requests per `window_secs` seconds
//! for each caller, counted in memory in this process.
//!
//! The caller is the API key for key requests and the user for token
//! requests (see [`key_identity`] and [`user_identity`]). Each identity has a
//! fixed window that starts with its first request; once the budget of a
//! window is spent, further requests are refused with the seconds left until
//! the window ends. Refused requests do not count. Windows that have ended
//! are dropped when a window's time has passed since the last sweep, or when
//! the table grows past a size threshold, so memory holds only the callers
//! of the last two windows or so.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Default window length in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 60;

/// Table size at which ended windows are swept regardless of time; the
/// threshold then doubles while the live entries need the room.
const SWEEP_AT: usize = 10_000;

/// Rate-limit settings as configured (`[rate_limit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests allowed per caller and window; 0 turns rate limiting off.
    pub requests: u32,
    /// Length of a window in seconds (at least 1).
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

/// One identity's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the window ends; `None` if that is beyond what `Instant` holds.
    ends: Option<Instant>,
    /// Requests accepted in it.
    used: u32,
}

impl Window {
    fn is_over(&self, now: Instant) -> bool {
        self.ends.is_some_and(|ends| now >= ends)
    }
}

#[derive(Debug)]
struct Table {
    windows: HashMap<String, Window>,
    /// When ended windows were last dropped.
    last_sweep: Option<Instant>,
    /// Size at which the table is swept regardless of time.
    sweep_at: usize,
}

/// Counts requests per identity and refuses those over the budget.
#[derive(Debug)]
pub struct RateLimiter {
    settings: RateLimitSettings,
    window: Duration,
    table: Mutex<Table>,
    min_sweep_at: usize,
}

impl Default for RateLimiter {
    /// Off.
    fn default() -> Self {
        Self::off()
    }
}

impl RateLimiter {
    /// A limiter with these settings (a window of 0 s counts as 1 s).
    pub fn new(settings: RateLimitSettings) -> Self {
        Self::with_sweep_threshold(settings, SWEEP_AT)
    }

    /// A limiter that accepts every request.
    pub fn off() -> Self {
        Self::new(RateLimitSettings::default())
    }

    fn with_sweep_threshold(settings: RateLimitSettings, sweep_at: usize) -> Self {
        let settings = RateLimitSettings {
            window_secs: settings.window_secs.max(1),
            ..settings
        };
        Self {
            settings,
            window: Duration::from_secs(settings.window_secs),
            table: Mutex::new(Table {
                windows: HashMap::new(),
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

    /// Counts one request of `identity` at `now`. `Err` carries the seconds
    /// until the identity's window ends (1 to `window_secs`): the request is
    /// over the budget and was not counted.
    pub fn check(&self, identity: &str, now: Instant) -> Result<(), u64> {
        if !self.is_enabled() {
            return Ok(());
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        self.sweep_if_due(&mut table, now);
        let fresh = Window {
            ends: now.checked_add(self.window),
            used: 0,
        };
        let window = table.windows.entry(identity.to_string()).or_insert(fresh);
        if window.is_over(now) {
            *window = fresh;
        }
        if window.used < self.settings.requests {
            window.used += 1;
            return Ok(());
        }
        let left = window
            .ends
            .map_or(self.window, |ends| ends.saturating_duration_since(now));
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Err(secs.clamp(1, self.settings.window_secs))
    }

    /// [`check`](Self::check) at the current time.
    pub fn check_now(&self, identity: &str) -> Result<(), u64> {
        self.check(identity, Instant::now())
    }

    /// How many identities are being tracked.
    pub fn tracked(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .windows
            .len()
    }

    /// Drops ended windows once a window's time has passed since the last
    /// sweep, or when the table has reached its size threshold.
    fn sweep_if_due(&self, table: &mut Table, now: Instant) {
        let last = *table.last_sweep.get_or_insert(now);
        let timely = now.saturating_duration_since(last) >= self.window;
        let crowded = table.windows.len() >= table.sweep_at;
        if !(timely || crowded) {
            return;
        }
        table.windows.retain(|_, w| !w.is_over(now));
        table.last_sweep = Some(now);
        // Live entries that fill the table would otherwise make every new
        // identity pay for a full sweep.
        table.sweep_at = self.min_sweep_at.max(table.windows.len().saturating_mul(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(requests: u32, window_secs: u64) -> RateLimiter {
        RateLimiter::new(RateLimitSettings {
            requests,
            window_secs,
        })
    }

    #[test]
    fn off_by_default() {
        let settings = RateLimitSettings::default();
        assert_eq!(settings.requests, 0);
        assert_eq!(settings.window_secs, 60);
        let off = RateLimiter::default();
        assert!(!off.is_enabled());
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(off.check("key:k", t0), Ok(()));
        }
        assert_eq!(off.tracked(), 0);
    }

    #[test]
    fn the_budget_is_allowed_and_one_more_is_refused_until_the_window_ends() {
        let l = limiter(3, 10);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.check("key:a", t0 + Duration::from_secs(i)), Ok(()));
        }
        // 2.5 s into the window: 7.5 s left, rounded up.
        assert_eq!(l.check("key:a", t0 + Duration::from_millis(2500)), Err(8));
        // Refused requests do not count, and the wait shrinks.
        assert_eq!(l.check("key:a", t0 + Duration::from_secs(9)), Err(1));
        assert_eq!(l.check("key:a", t0 + Duration::from_millis(9999)), Err(1));
        // The next window has the full budget again.
        let t1 = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(l.check("key:a", t1), Ok(()));
        }
        assert_eq!(l.check("key:a", t1), Err(10));
    }

    #[test]
    fn retry_after_is_always_between_one_and_the_window() {
        let l = limiter(1, 5);
        let t0 = Instant::now();
        assert_eq!(l.check("u", t0), Ok(()));
        for ms in (0..5000).step_by(250) {
            let wait = l.check("u", t0 + Duration::from_millis(ms)).unwrap_err();
            assert!((1..=5).contains(&wait), "{ms} ms: {wait}");
        }
    }

    #[test]
    fn identities_are_independent() {
        let l = limiter(2, 60);
        let t0 = Instant::now();
        assert_eq!(l.check(&key_identity("key_1"), t0), Ok(()));
        assert_eq!(l.check(&key_identity("key_1"), t0), Ok(()));
        assert!(l.check(&key_identity("key_1"), t0).is_err());
        assert_eq!(l.check(&key_identity("key_2"), t0), Ok(()));
        assert_eq!(l.check(&user_identity("key_1"), t0), Ok(()));
        assert_eq!(l.check(&user_identity("usr_1"), t0), Ok(()));
        assert_eq!(l.check(&user_identity("usr_1"), t0), Ok(()));
        assert!(l.check(&user_identity("usr_1"), t0).is_err());
        assert_ne!(key_identity("x"), user_identity("x"));
    }

    #[test]
    fn a_zero_window_counts_as_one_second_and_huge_windows_do_not_overflow() {
        let l = limiter(1, 0);
        assert_eq!(l.settings().window_secs, 1);
        let t0 = Instant::now();
        assert_eq!(l.check("a", t0), Ok(()));
        assert_eq!(l.check("a", t0), Err(1));
        assert_eq!(l.check("a", t0 + Duration::from_secs(1)), Ok(()));

        let l = limiter(1, u64::MAX);
        assert_eq!(l.check("a", t0), Ok(()));
        let wait = l.check("a", t0 + Duration::from_secs(3600)).unwrap_err();
        assert!(wait >= 1);
    }

    #[test]
    fn ended_windows_are_dropped_when_a_window_has_passed() {
        let l = limiter(5, 10);
        let t0 = Instant::now();
        for i in 0..500 {
            assert_eq!(l.check(&format!("key:{i}"), t0), Ok(()));
        }
        assert_eq!(l.tracked(), 500);
        // Still within the window: nothing is dropped.
        assert_eq!(l.check("key:late", t0 + Duration::from_secs(5)), Ok(()));
        assert_eq!(l.tracked(), 501);
        // A window later, only the still-live entry and the new one remain.
        assert_eq!(l.check("key:new", t0 + Duration::from_secs(12)), Ok(()));
        assert_eq!(l.tracked(), 2);
    }

    #[test]
    fn a_crowded_table_is_swept_before_time_and_stays_bounded() {
        let l = RateLimiter::with_sweep_threshold(
            RateLimitSettings {
                requests: 1,
                window_secs: 1000,
            },
            100,
        );
        let t0 = Instant::now();
        // Identities arrive one per second, each window lasting 1000 s:
        // the table reaches its threshold long before a window has passed.
        for i in 0..100u64 {
            assert_eq!(
                l.check(&format!("a{i}"), t0 + Duration::from_secs(i)),
                Ok(())
            );
        }
        assert_eq!(l.tracked(), 100);
        // All live: the sweep keeps them and raises the threshold, so the
        // next identities do not each trigger a sweep.
        assert_eq!(l.check("b", t0 + Duration::from_secs(100)), Ok(()));
        assert_eq!(l.tracked(), 101);
        // Once the first ones' windows have ended, a crowded table drops
        // them even though a full window has not passed since the last sweep.
        let later = t0 + Duration::from_secs(1050);
        for i in 0..100u64 {
            assert_eq!(l.check(&format!("c{i}"), later), Ok(()));
        }
        assert!(l.tracked() <= 200, "{}", l.tracked());
        // A long quiet spell leaves one entry.
        assert_eq!(l.check("d", t0 + Duration::from_secs(5000)), Ok(()));
        assert_eq!(l.tracked(), 1);
    }
}
