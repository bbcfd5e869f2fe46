//! Time helpers shared by every layer.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The current UTC time cut to whole milliseconds, the precision Skein stores
/// and shows, so that a value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// Cuts a timestamp to whole milliseconds.
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    #[test]
    fn now_has_whole_milliseconds() {
        assert_eq!(now().nanosecond() % 1_000_000, 0);
    }
}
