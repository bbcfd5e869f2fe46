//! Typed identifiers.
//!
//! Ids are opaque strings. Server-made ids are a prefix (`thread_`, `org_`,
//! ...) followed by 24 random base62 characters. Ids named by a client (thread
//! ids, organization and user ids given to the CLI) must be 1 to
//! [`MAX_ID_CHARS`] characters of `[A-Za-z0-9_.:-]`.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest id a client may choose.
pub const MAX_ID_CHARS: usize = 128;
/// Random characters after the prefix in a server-made id.
pub const GENERATED_ID_RANDOM_CHARS: usize = 24;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is empty.
    #[error("id must not be empty")]
    Empty,
    /// The id is longer than [`MAX_ID_CHARS`].
    #[error("id must be at most {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The id holds a character outside `[A-Za-z0-9_.:-]`.
    #[error("id may contain only letters, digits and _ . : -")]
    InvalidCharacter,
}

/// `n` random base62 characters from the thread-local CSPRNG.
pub fn random_base62(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect()
}

fn check(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    // Characters are never more than bytes: only a long text is counted.
    if s.len() > MAX_ID_CHARS && s.chars().count() > MAX_ID_CHARS {
        return Err(IdError::TooLong { max: MAX_ID_CHARS });
    }
    // Every allowed character is ASCII, so bytes are checked one by one.
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        return Err(IdError::InvalidCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix of server-made ids of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id: the prefix and 24 base62 characters.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_base62(GENERATED_ID_RANDOM_CHARS)))
            }

            /// Checks a client-given id: 1-128 characters of `[A-Za-z0-9_.:-]`.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check(&s)?;
                Ok(Self(s))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A thread id, unique within its organization.
    ThreadId,
    "thread_"
);
id_type!(
    /// An organization id.
    OrganizationId,
    "org_"
);
id_type!(
    /// A user id.
    UserId,
    "usr_"
);
id_type!(
    /// An assistant id.
    AssistantId,
    "asst_"
);
id_type!(
    /// A message id.
    MessageId,
    "msg_"
);
id_type!(
    /// A model response id.
    ResponseId,
    "resp_"
);
id_type!(
    /// The public id of an API key (not its secret).
    ApiKeyId,
    "key_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_prefix_and_24_base62_characters() {
        let id = ThreadId::generate();
        let rest = id.as_str().strip_prefix("thread_").unwrap();
        assert_eq!(rest.len(), 24);
        assert!(rest.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(ThreadId::generate(), ThreadId::generate());
        assert!(OrganizationId::generate().as_str().starts_with("org_"));
        assert!(UserId::generate().as_str().starts_with("usr_"));
    }

    #[test]
    fn a_client_named_id_of_128_allowed_characters_is_accepted() {
        let id = format!("support_user.1:a-{}", "x".repeat(128 - 17));
        assert_eq!(id.len(), 128);
        assert!(ThreadId::parse(id).is_ok());
    }

    #[test]
    fn an_id_of_129_characters_is_rejected() {
        assert_eq!(
            ThreadId::parse("x".repeat(129)),
            Err(IdError::TooLong { max: 128 })
        );
    }

    #[test]
    fn an_empty_id_is_rejected() {
        assert_eq!(ThreadId::parse(""), Err(IdError::Empty));
    }

    #[test]
    fn ids_with_spaces_slashes_or_unicode_are_rejected() {
        for bad in ["a b", "a/b", "a?b", "thréad", "a\nb"] {
            assert_eq!(
                ThreadId::parse(bad),
                Err(IdError::InvalidCharacter),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_deserialize_through_the_same_rules() {
        assert!(serde_json::from_str::<ThreadId>("\"ok_id\"").is_ok());
        assert!(serde_json::from_str::<ThreadId>("\"not ok\"").is_err());
    }
}
