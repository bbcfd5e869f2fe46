//! Retention: when threads expire, when deleted data is purged, how long
//! thread-less responses live. Pure rules over a given `now`.

use crate::{Thread, ThreadState};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A duration written like `90d`, `12h`, `10m`, `2s` (or a bare number of
/// seconds).
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 90d, 12h, 10m or 2s"))?;
    let secs_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("'{text}': the unit must be d, h, m or s")),
    };
    n.checked_mul(secs_per_unit)
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// Serde helper: a duration field written like `90d` (see [`parse_duration`]).
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// The retention periods, with the product's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// A thread without activity this long expires (archived threads are
    /// exempt). Default 90 days.
    #[serde(deserialize_with = "duration")]
    pub thread_inactivity_ttl: TimeDelta,
    /// A thread this old expires. Default 365 days.
    #[serde(deserialize_with = "duration")]
    pub thread_max_age: TimeDelta,
    /// Deleted and expired threads are purged this long after. Default 30 days.
    #[serde(deserialize_with = "duration")]
    pub deleted_grace: TimeDelta,
    /// Thread-less responses can be chained to and are kept this long.
    /// Default 24 hours.
    #[serde(deserialize_with = "duration")]
    pub response_ttl: TimeDelta,
    /// An incognito thread is deleted for good this long after its
    /// creation, without the deleted grace period. Default 24 hours.
    #[serde(deserialize_with = "duration")]
    pub incognito_ttl: TimeDelta,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            thread_inactivity_ttl: TimeDelta::days(90),
            thread_max_age: TimeDelta::days(365),
            deleted_grace: TimeDelta::days(30),
            response_ttl: TimeDelta::hours(24),
            incognito_ttl: TimeDelta::hours(24),
        }
    }
}

/// Why a thread expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No activity for longer than the inactivity period.
    Inactive,
    /// An incognito thread at its `expected_deletion_at`.
    Incognito,
    /// Older than the maximum age.
    TooOld,
}

/// The cut-off times a reader filters on at one instant: a live thread was
/// active after `active_after` (unless archived) and created after
/// `created_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Last activity must be later than this (archived threads exempt).
    pub active_after: DateTime<Utc>,
    /// Creation must be later than this.
    pub created_after: DateTime<Utc>,
    /// The instant itself: an incognito thread whose
    /// `expected_deletion_at` is not after it is gone.
    pub now: DateTime<Utc>,
}

impl Liveness {
    /// Whether the thread is still live (not expired) at these cut-offs.
    pub fn admits(&self, thread: &Thread) -> bool {
        let last_activity = thread
            .last_message_at
            .map_or(thread.updated_at, |m| m.max(thread.updated_at));
        thread.created_at > self.created_after
            && (thread.state == ThreadState::Archived || last_activity > self.active_after)
            && thread.expected_deletion_at.is_none_or(|at| at > self.now)
    }
}

impl RetentionPolicy {
    /// Whether (and why) the thread has expired at `now`. Activity is the
    /// last change of the thread (`updated_at`), which every new message
    /// moves too.
    pub fn expiry(&self, thread: &Thread, now: DateTime<Utc>) -> Option<Expiry> {
        let live = self.liveness(now);
        if thread.expected_deletion_at.is_some_and(|at| at <= now) {
            Some(Expiry::Incognito)
        } else if thread.created_at <= live.created_after {
            Some(Expiry::TooOld)
        } else if !live.admits(thread) {
            Some(Expiry::Inactive)
        } else {
            None
        }
    }

    /// The cut-offs at `now`.
    pub fn liveness(&self, now: DateTime<Utc>) -> Liveness {
        Liveness {
            active_after: now - self.thread_inactivity_ttl,
            created_after: now - self.thread_max_age,
            now,
        }
    }

    /// Soft-deleted threads deleted before this are purged.
    pub fn purge_deleted_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.deleted_grace
    }

    /// Responses created before this are gone.
    pub fn responses_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.response_ttl
    }
}

/// The service's clock: the system time, optionally moved forward, so that
/// tests and operators can look at the state of things days from now.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// The current time (whole milliseconds).
    pub fn now(&self) -> DateTime<Utc> {
        crate::clock::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// How far this clock has been moved from the system time (zero
    /// outside tests), for time kept elsewhere (the database's clock, a
    /// monotonic clock) to be moved alike.
    pub fn offset(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock, Metadata, NewThread, OrganizationId, ThreadId, UserId};

    fn thread_at(created: DateTime<Utc>) -> Thread {
        Thread::new(
            NewThread {
                id: ThreadId::generate(),
                organization_id: OrganizationId::generate(),
                user_id: UserId::generate(),
                title: None,
                metadata: Metadata::empty(),
                assistant_id: None,
                visible_in_ui: true,
                workflow_id: None,
                incognito_ttl: None,
            },
            created,
        )
    }

    #[test]
    fn durations_read_like_90d_12h_10m_2s() {
        assert_eq!(parse_duration("90d"), Ok(TimeDelta::days(90)));
        assert_eq!(parse_duration("12h"), Ok(TimeDelta::hours(12)));
        assert_eq!(parse_duration("10m"), Ok(TimeDelta::minutes(10)));
        assert_eq!(parse_duration("2s"), Ok(TimeDelta::seconds(2)));
        assert_eq!(parse_duration("45"), Ok(TimeDelta::seconds(45)));
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn the_defaults_are_the_products_promises() {
        let p = RetentionPolicy::default();
        assert_eq!(p.thread_inactivity_ttl, TimeDelta::days(90));
        assert_eq!(p.thread_max_age, TimeDelta::days(365));
        assert_eq!(p.deleted_grace, TimeDelta::days(30));
        assert_eq!(p.response_ttl, TimeDelta::hours(24));
        let custom: RetentionPolicy =
            serde_json::from_str(r#"{"thread_inactivity_ttl": "7d", "response_ttl": "2h"}"#)
                .unwrap();
        assert_eq!(custom.thread_inactivity_ttl, TimeDelta::days(7));
        assert_eq!(custom.thread_max_age, TimeDelta::days(365));
    }

    #[test]
    fn a_thread_expires_the_day_after_90_days_of_inactivity_not_the_day_before() {
        let p = RetentionPolicy::default();
        let t = thread_at(clock::now());
        assert_eq!(p.expiry(&t, t.updated_at + TimeDelta::days(89)), None);
        assert_eq!(
            p.expiry(&t, t.updated_at + TimeDelta::days(91)),
            Some(Expiry::Inactive)
        );
    }

    #[test]
    fn a_new_message_restarts_the_inactivity_period() {
        let p = RetentionPolicy::default();
        let mut t = thread_at(clock::now());
        t.last_message_at = Some(t.created_at + TimeDelta::days(60));
        assert_eq!(p.expiry(&t, t.created_at + TimeDelta::days(149)), None);
        assert_eq!(
            p.expiry(&t, t.created_at + TimeDelta::days(151)),
            Some(Expiry::Inactive)
        );
    }

    #[test]
    fn archived_threads_skip_inactivity_but_not_the_age_limit() {
        let p = RetentionPolicy::default();
        let mut t = thread_at(clock::now());
        t.state = ThreadState::Archived;
        assert_eq!(p.expiry(&t, t.created_at + TimeDelta::days(364)), None);
        assert_eq!(
            p.expiry(&t, t.created_at + TimeDelta::days(366)),
            Some(Expiry::TooOld)
        );
    }

    #[test]
    fn an_active_thread_still_expires_at_one_year() {
        let p = RetentionPolicy::default();
        let mut t = thread_at(clock::now());
        t.updated_at = t.created_at + TimeDelta::days(360);
        assert_eq!(p.expiry(&t, t.created_at + TimeDelta::days(364)), None);
        assert_eq!(
            p.expiry(&t, t.created_at + TimeDelta::days(366)),
            Some(Expiry::TooOld)
        );
    }

    #[test]
    fn the_clock_moves_forward_for_every_clone() {
        let c = Clock::system();
        let shared = c.clone();
        let before = c.now();
        shared.advance(TimeDelta::days(10));
        assert!(c.now() - before >= TimeDelta::days(10));
    }
}
