//! Configurable limits with the contract's defaults.

use crate::metadata::MetadataLimits;
use serde::{Deserialize, Serialize};

/// Default maximum title length, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Default maximum number of pinned threads per user and organization.
pub const MAX_PINNED_THREADS: u32 = 20;
/// Default maximum number of messages in one thread.
pub const MAX_MESSAGES_PER_THREAD: u32 = 10_000;
/// Smallest page a list may ask for.
pub const MIN_PAGE_SIZE: u32 = 1;
/// Largest page a list may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when a list does not ask for one.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// Every limit the domain enforces. `Limits::default()` holds the contract's
/// values; a deployment may override each of them in its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum title length in characters.
    pub max_title_chars: usize,
    /// Metadata size rules.
    pub metadata: MetadataLimits,
    /// Maximum pinned threads per user and organization.
    pub max_pinned_threads: u32,
    /// Maximum messages in one thread.
    pub max_messages_per_thread: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_title_chars: MAX_TITLE_CHARS,
            metadata: MetadataLimits::default(),
            max_pinned_threads: MAX_PINNED_THREADS,
            max_messages_per_thread: MAX_MESSAGES_PER_THREAD,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts_values() {
        let l = Limits::default();
        assert_eq!(l.max_title_chars, 200);
        assert_eq!(l.max_pinned_threads, 20);
        assert_eq!(l.max_messages_per_thread, 10_000);
        assert_eq!(l.metadata.max_keys, 16);
        assert_eq!(l.metadata.max_key_chars, 64);
        assert_eq!(l.metadata.max_value_chars, 512);
        assert_eq!(l.metadata.max_total_bytes, 16 * 1024);
    }

    #[test]
    fn a_partial_override_keeps_the_other_defaults() {
        let l: Limits = serde_json::from_str(r#"{"max_pinned_threads": 3}"#).unwrap();
        assert_eq!(l.max_pinned_threads, 3);
        assert_eq!(l.max_title_chars, 200);
    }

    #[test]
    fn an_unknown_limit_name_is_an_error() {
        assert!(serde_json::from_str::<Limits>(r#"{"max_pins": 3}"#).is_err());
    }
}
