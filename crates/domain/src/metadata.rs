//! Thread metadata: a small JSON object of user-defined key-value pairs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Default maximum number of keys.
pub const MAX_METADATA_KEYS: usize = 16;
/// Default maximum length of a key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 64;
/// Default maximum length of a value, in characters (non-strings: serialized).
pub const MAX_METADATA_VALUE_CHARS: usize = 512;
/// Default maximum size of the whole object, serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// The size rules metadata must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataLimits {
    /// Maximum number of keys.
    pub max_keys: usize,
    /// Maximum key length in characters.
    pub max_key_chars: usize,
    /// Maximum value length in characters (non-string values: serialized).
    pub max_value_chars: usize,
    /// Maximum serialized size of the whole object in bytes.
    pub max_total_bytes: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        Self {
            max_keys: MAX_METADATA_KEYS,
            max_key_chars: MAX_METADATA_KEY_CHARS,
            max_value_chars: MAX_METADATA_VALUE_CHARS,
            max_total_bytes: MAX_METADATA_BYTES,
        }
    }
}

/// Why metadata was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// More keys than allowed.
    #[error("metadata may have at most {max} keys, got {got}")]
    TooManyKeys {
        /// The limit.
        max: usize,
        /// The number of keys given.
        got: usize,
    },
    /// A key is empty or too long.
    #[error("metadata keys must be 1 to {max} characters long")]
    KeyLength {
        /// The offending key.
        key: String,
        /// The limit.
        max: usize,
    },
    /// A value is too long.
    #[error("metadata value of '{key}' exceeds {max} characters")]
    ValueTooLong {
        /// The key whose value is too long.
        key: String,
        /// The limit.
        max: usize,
    },
    /// The whole object is too large.
    #[error("metadata exceeds {max} bytes serialized")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The value is not a JSON object.
    #[error("metadata must be a JSON object")]
    NotAnObject,
}

/// Metadata that satisfies the [`MetadataLimits`] it was checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Empty metadata.
    pub fn empty() -> Self {
        Self(Map::new())
    }

    /// Checks a JSON object against the limits.
    pub fn parse(map: Map<String, Value>, limits: &MetadataLimits) -> Result<Self, MetadataError> {
        if map.len() > limits.max_keys {
            return Err(MetadataError::TooManyKeys {
                max: limits.max_keys,
                got: map.len(),
            });
        }
        for (key, value) in &map {
            let key_chars = key.chars().count();
            if key_chars == 0 || key_chars > limits.max_key_chars {
                return Err(MetadataError::KeyLength {
                    key: key.clone(),
                    max: limits.max_key_chars,
                });
            }
            let value_chars = match value {
                Value::String(s) => s.chars().count(),
                other => other.to_string().chars().count(),
            };
            if value_chars > limits.max_value_chars {
                return Err(MetadataError::ValueTooLong {
                    key: key.clone(),
                    max: limits.max_value_chars,
                });
            }
        }
        if Value::Object(map.clone()).to_string().len() > limits.max_total_bytes {
            return Err(MetadataError::TooLarge {
                max: limits.max_total_bytes,
            });
        }
        Ok(Self(map))
    }

    /// Checks any JSON value: it must be an object.
    pub fn parse_value(value: Value, limits: &MetadataLimits) -> Result<Self, MetadataError> {
        match value {
            Value::Object(map) => Self::parse(map, limits),
            _ => Err(MetadataError::NotAnObject),
        }
    }

    /// Merges a patch into this metadata: keys set to `null` are removed,
    /// others are inserted or replaced. The result must satisfy the limits.
    pub fn merge(
        &self,
        patch: Map<String, Value>,
        limits: &MetadataLimits,
    ) -> Result<Self, MetadataError> {
        let mut merged = self.0.clone();
        for (key, value) in patch {
            if value.is_null() {
                merged.remove(&key);
            } else {
                merged.insert(key, value);
            }
        }
        Self::parse(merged, limits)
    }

    /// Rebuilds metadata read back from storage, where it was checked on write.
    pub fn from_stored(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// The key-value pairs.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The metadata as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> MetadataLimits {
        MetadataLimits::default()
    }

    fn map_with_keys(n: usize) -> Map<String, Value> {
        (0..n).map(|i| (format!("k{i}"), json!("v"))).collect()
    }

    #[test]
    fn exactly_16_keys_pass() {
        assert_eq!(
            Metadata::parse(map_with_keys(16), &limits()).unwrap().len(),
            16
        );
    }

    #[test]
    fn seventeen_keys_fail() {
        assert_eq!(
            Metadata::parse(map_with_keys(17), &limits()),
            Err(MetadataError::TooManyKeys { max: 16, got: 17 })
        );
    }

    #[test]
    fn a_64_character_key_passes_and_65_fails() {
        let ok: Map<_, _> = [("k".repeat(64), json!(1))].into_iter().collect();
        assert!(Metadata::parse(ok, &limits()).is_ok());
        let bad: Map<_, _> = [("k".repeat(65), json!(1))].into_iter().collect();
        assert!(matches!(
            Metadata::parse(bad, &limits()),
            Err(MetadataError::KeyLength { max: 64, .. })
        ));
    }

    #[test]
    fn an_empty_key_fails() {
        let bad: Map<_, _> = [(String::new(), json!(1))].into_iter().collect();
        assert!(matches!(
            Metadata::parse(bad, &limits()),
            Err(MetadataError::KeyLength { .. })
        ));
    }

    #[test]
    fn key_length_counts_characters_not_bytes() {
        let ok: Map<_, _> = [("é".repeat(64), json!(1))].into_iter().collect();
        assert!(Metadata::parse(ok, &limits()).is_ok());
    }

    #[test]
    fn a_512_character_string_value_passes_and_513_fails() {
        let ok: Map<_, _> = [("k".to_string(), json!("v".repeat(512)))]
            .into_iter()
            .collect();
        assert!(Metadata::parse(ok, &limits()).is_ok());
        let bad: Map<_, _> = [("k".to_string(), json!("v".repeat(513)))]
            .into_iter()
            .collect();
        assert_eq!(
            Metadata::parse(bad, &limits()),
            Err(MetadataError::ValueTooLong {
                key: "k".into(),
                max: 512
            })
        );
    }

    #[test]
    fn non_string_values_are_measured_serialized() {
        // ["aaa…"] serializes to the string plus 4 characters of brackets and quotes.
        let ok: Map<_, _> = [("k".to_string(), json!(["a".repeat(508)]))]
            .into_iter()
            .collect();
        assert!(Metadata::parse(ok, &limits()).is_ok());
        let bad: Map<_, _> = [("k".to_string(), json!(["a".repeat(509)]))]
            .into_iter()
            .collect();
        assert!(matches!(
            Metadata::parse(bad, &limits()),
            Err(MetadataError::ValueTooLong { .. })
        ));
    }

    #[test]
    fn the_whole_object_is_capped_at_16_kib() {
        let small = MetadataLimits {
            max_total_bytes: 20,
            ..limits()
        };
        let ok: Map<_, _> = [("k".to_string(), json!("0123456789"))]
            .into_iter()
            .collect();
        // {"k":"0123456789"} is 18 bytes.
        assert!(Metadata::parse(ok, &small).is_ok());
        let bad: Map<_, _> = [("k".to_string(), json!("0123456789abc"))]
            .into_iter()
            .collect();
        assert_eq!(
            Metadata::parse(bad, &small),
            Err(MetadataError::TooLarge { max: 20 })
        );
        // With the defaults, 16 keys of 512 multibyte characters exceed 16 KiB.
        let big: Map<_, _> = (0..16)
            .map(|i| (format!("k{i}"), json!("é".repeat(512))))
            .collect();
        assert_eq!(
            Metadata::parse(big, &limits()),
            Err(MetadataError::TooLarge { max: 16384 })
        );
    }

    #[test]
    fn merge_adds_replaces_and_removes_null_keys() {
        let base = Metadata::parse(
            json!({"a": 1, "b": 2, "c": 3}).as_object().unwrap().clone(),
            &limits(),
        )
        .unwrap();
        let patch = json!({"a": 10, "b": null, "d": "new"})
            .as_object()
            .unwrap()
            .clone();
        let merged = base.merge(patch, &limits()).unwrap();
        assert_eq!(merged.to_value(), json!({"a": 10, "c": 3, "d": "new"}));
    }

    #[test]
    fn merge_that_would_exceed_16_keys_fails() {
        let base = Metadata::parse(map_with_keys(16), &limits()).unwrap();
        let patch: Map<_, _> = [("extra".to_string(), json!(1))].into_iter().collect();
        assert!(matches!(
            base.merge(patch, &limits()),
            Err(MetadataError::TooManyKeys { got: 17, .. })
        ));
    }

    #[test]
    fn merge_can_replace_a_key_when_at_16_keys() {
        let base = Metadata::parse(map_with_keys(16), &limits()).unwrap();
        let patch = json!({"k0": null, "new": 1}).as_object().unwrap().clone();
        assert_eq!(base.merge(patch, &limits()).unwrap().len(), 16);
    }

    #[test]
    fn a_non_object_is_rejected() {
        assert_eq!(
            Metadata::parse_value(json!([1, 2]), &limits()),
            Err(MetadataError::NotAnObject)
        );
    }
}
