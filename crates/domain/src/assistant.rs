//! The assistant entity: a named, reusable configuration (instructions,
//! model, temperature) that threads bind to and model responses apply.

use crate::{AssistantId, Metadata, OrganizationId, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The longest assistant name, in characters.
pub const MAX_ASSISTANT_NAME_CHARS: usize = 256;
/// The longest instructions, in characters.
pub const MAX_INSTRUCTIONS_CHARS: usize = 256_000;
/// The lowest sampling temperature.
pub const MIN_TEMPERATURE: f64 = 0.0;
/// The highest sampling temperature.
pub const MAX_TEMPERATURE: f64 = 2.0;

/// Why an assistant field was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssistantError {
    /// The name is empty or longer than allowed.
    #[error("name must be 1 to {max} characters long")]
    NameLength {
        /// The limit.
        max: usize,
    },
    /// The instructions are longer than allowed.
    #[error("instructions must be at most {max} characters")]
    InstructionsTooLong {
        /// The limit.
        max: usize,
    },
    /// The temperature is outside [`MIN_TEMPERATURE`]..=[`MAX_TEMPERATURE`]
    /// (or not a number).
    #[error(
        "temperature must be between {} and {}",
        MIN_TEMPERATURE,
        MAX_TEMPERATURE
    )]
    TemperatureOutOfRange,
}

impl AssistantError {
    /// The name of the field the error is about: `name`, `instructions` or
    /// `temperature`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::NameLength { .. } => "name",
            Self::InstructionsTooLong { .. } => "instructions",
            Self::TemperatureOutOfRange => "temperature",
        }
    }
}

/// A name of 1 to [`MAX_ASSISTANT_NAME_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AssistantName(String);

impl AssistantName {
    /// Checks a name.
    pub fn parse(s: impl Into<String>) -> Result<Self, AssistantError> {
        let s = s.into();
        let chars = s.chars().count();
        if chars == 0 || chars > MAX_ASSISTANT_NAME_CHARS {
            return Err(AssistantError::NameLength {
                max: MAX_ASSISTANT_NAME_CHARS,
            });
        }
        Ok(Self(s))
    }

    /// Rebuilds a name read back from storage, where it was checked on write.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// System instructions of at most [`MAX_INSTRUCTIONS_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Instructions(String);

impl Instructions {
    /// Checks instructions.
    pub fn parse(s: impl Into<String>) -> Result<Self, AssistantError> {
        let s = s.into();
        if s.chars().count() > MAX_INSTRUCTIONS_CHARS {
            return Err(AssistantError::InstructionsTooLong {
                max: MAX_INSTRUCTIONS_CHARS,
            });
        }
        Ok(Self(s))
    }

    /// Rebuilds instructions read back from storage.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sampling temperature between [`MIN_TEMPERATURE`] and [`MAX_TEMPERATURE`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Temperature(f64);

impl Temperature {
    /// Checks a temperature; NaN is out of range.
    pub fn parse(t: f64) -> Result<Self, AssistantError> {
        if (MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&t) {
            Ok(Self(t))
        } else {
            Err(AssistantError::TemperatureOutOfRange)
        }
    }

    /// Rebuilds a temperature read back from storage.
    pub fn from_stored(t: f64) -> Self {
        Self(t)
    }

    /// The value.
    pub fn value(self) -> f64 {
        self.0
    }
}

/// Everything about an assistant that its owner sets, already parsed. A
/// create uses it whole, and so does a replacement (`PUT`).
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantSpec {
    /// Display name.
    pub name: AssistantName,
    /// System instructions applied to every response in bound threads.
    pub instructions: Option<Instructions>,
    /// Default model.
    pub model: Option<String>,
    /// Default sampling temperature.
    pub temperature: Option<Temperature>,
    /// User-defined key-value pairs.
    pub metadata: Metadata,
}

/// An assistant, private to its creator within its organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Assistant {
    /// `asst_` and 24 base62 characters.
    pub id: AssistantId,
    /// The owning organization.
    pub organization_id: OrganizationId,
    /// The creator; the only user who can see it.
    pub created_by: UserId,
    /// Display name.
    pub name: AssistantName,
    /// System instructions.
    pub instructions: Option<Instructions>,
    /// Default model.
    pub model: Option<String>,
    /// Default sampling temperature.
    pub temperature: Option<Temperature>,
    /// User-defined key-value pairs.
    pub metadata: Metadata,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Assistant {
    /// A new assistant `id` (the caller makes it, e.g. with
    /// [`AssistantId::generate`]), created at `now` by `created_by`.
    pub fn new(
        id: AssistantId,
        organization_id: OrganizationId,
        created_by: UserId,
        spec: AssistantSpec,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            organization_id,
            created_by,
            name: spec.name,
            instructions: spec.instructions,
            model: spec.model,
            temperature: spec.temperature,
            metadata: spec.metadata,
            created_at: now,
            updated_at: now,
        }
    }

    /// Replaces every owner-set field; id, owner and creation time stay, and
    /// `updated_at` moves to `now`.
    pub fn replace(&self, spec: AssistantSpec, now: DateTime<Utc>) -> Self {
        Self {
            name: spec.name,
            instructions: spec.instructions,
            model: spec.model,
            temperature: spec.temperature,
            metadata: spec.metadata,
            updated_at: now,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use chrono::TimeDelta;
    use serde_json::{json, Map};

    fn spec(name: &str) -> AssistantSpec {
        AssistantSpec {
            name: AssistantName::parse(name).unwrap(),
            instructions: None,
            model: None,
            temperature: None,
            metadata: Metadata::empty(),
        }
    }

    #[test]
    fn a_name_of_1_to_256_characters_is_accepted() {
        assert!(AssistantName::parse("a").is_ok());
        assert!(AssistantName::parse("x".repeat(256)).is_ok());
    }

    #[test]
    fn an_empty_name_or_one_of_257_characters_is_rejected() {
        let err = Err(AssistantError::NameLength { max: 256 });
        assert_eq!(AssistantName::parse(""), err);
        assert_eq!(AssistantName::parse("x".repeat(257)), err);
    }

    #[test]
    fn name_length_counts_characters_not_bytes() {
        assert!(AssistantName::parse("é".repeat(256)).is_ok());
    }

    #[test]
    fn instructions_of_256000_characters_pass_and_one_more_fails() {
        assert!(Instructions::parse("x".repeat(MAX_INSTRUCTIONS_CHARS)).is_ok());
        assert!(Instructions::parse("").is_ok());
        assert_eq!(
            Instructions::parse("x".repeat(MAX_INSTRUCTIONS_CHARS + 1)),
            Err(AssistantError::InstructionsTooLong { max: 256_000 })
        );
    }

    #[test]
    fn temperatures_from_0_to_2_inclusive_are_accepted() {
        for t in [0.0, 0.7, 1.0, 2.0] {
            assert_eq!(Temperature::parse(t).map(Temperature::value), Ok(t));
        }
    }

    #[test]
    fn temperatures_outside_0_to_2_and_nan_are_rejected() {
        for t in [-0.1, 2.01, 2.5, f64::NAN, f64::INFINITY] {
            assert_eq!(
                Temperature::parse(t),
                Err(AssistantError::TemperatureOutOfRange),
                "{t}"
            );
        }
    }

    #[test]
    fn each_error_names_its_field() {
        assert_eq!(AssistantError::NameLength { max: 1 }.field(), "name");
        assert_eq!(
            AssistantError::InstructionsTooLong { max: 1 }.field(),
            "instructions"
        );
        assert_eq!(AssistantError::TemperatureOutOfRange.field(), "temperature");
        assert_eq!(
            AssistantError::TemperatureOutOfRange.to_string(),
            "temperature must be between 0 and 2"
        );
    }

    #[test]
    fn a_new_assistant_gets_an_asst_id_and_equal_timestamps() {
        let now = clock::now();
        let a = Assistant::new(
            AssistantId::generate(),
            OrganizationId::generate(),
            UserId::generate(),
            spec("Helper"),
            now,
        );
        let rest = a.id.as_str().strip_prefix("asst_").unwrap();
        assert_eq!(rest.len(), 24);
        assert_eq!(a.created_at, now);
        assert_eq!(a.updated_at, now);
        assert_eq!(a.name.as_str(), "Helper");
    }

    #[test]
    fn replace_changes_every_owner_field_and_moves_only_updated_at() {
        let then = clock::now();
        let mut first = spec("Old");
        first.instructions = Some(Instructions::parse("be brief").unwrap());
        first.model = Some("gpt-4o".into());
        first.temperature = Some(Temperature::parse(0.3).unwrap());
        let mut map = Map::new();
        map.insert("k".into(), json!("v"));
        first.metadata = Metadata::from_stored(map);
        let a = Assistant::new(
            AssistantId::generate(),
            OrganizationId::generate(),
            UserId::generate(),
            first,
            then,
        );
        let later = then + TimeDelta::seconds(5);
        let b = a.replace(spec("New"), later);
        assert_eq!(b.id, a.id);
        assert_eq!(b.organization_id, a.organization_id);
        assert_eq!(b.created_by, a.created_by);
        assert_eq!(b.created_at, then);
        assert_eq!(b.updated_at, later);
        assert_eq!(b.name.as_str(), "New");
        assert!(b.instructions.is_none() && b.model.is_none() && b.temperature.is_none());
        assert!(b.metadata.is_empty());
    }
}
