//! User tokens: JWTs signed HS256 with a shared secret, or RS256/ES256 with
//! a public key. `sub` names the user, `exp` is required; `iss` and `aud`
//! are checked when configured; a small leeway absorbs clock skew.

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// How tokens are checked (from configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// HS256 shared secret (`SKEIN_JWT_SECRET`).
    pub secret: Option<String>,
    /// PEM public key for RS256 or ES256 (contents of
    /// `SKEIN_JWT_PUBLIC_KEY_FILE`).
    pub public_key_pem: Option<String>,
    /// Required `iss`, if set (`SKEIN_JWT_ISSUER`).
    pub issuer: Option<String>,
    /// Required `aud`, if set (`SKEIN_JWT_AUDIENCE`).
    pub audience: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past `exp` (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// Anything else: signature, algorithm, claims, format.
    #[error("{0}")]
    Invalid(String),
}

/// The token configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenConfigError {
    /// Both a secret and a public key were given.
    #[error("set either a JWT secret (HS256) or a public key (RS256/ES256), not both")]
    Both,
    /// The secret is empty or too short.
    #[error("the JWT secret must be at least 32 bytes")]
    WeakSecret,
    /// The PEM is neither an RSA nor an EC public key.
    #[error("the JWT public key is neither an RSA nor an EC (P-256) public key in PEM form")]
    BadKey,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

/// A configured verifier.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for the settings, or `None` when tokens are not enabled.
    pub fn from_settings(s: &JwtSettings) -> Result<Option<Self>, TokenConfigError> {
        let (key, algorithm) = match (&s.secret, &s.public_key_pem) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => return Err(TokenConfigError::Both),
            (Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(TokenConfigError::WeakSecret);
                }
                (
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            (None, Some(pem)) => match DecodingKey::from_rsa_pem(pem.as_bytes()) {
                Ok(k) => (k, Algorithm::RS256),
                Err(_) => (
                    DecodingKey::from_ec_pem(pem.as_bytes())
                        .map_err(|_| TokenConfigError::BadKey)?,
                    Algorithm::ES256,
                ),
            },
        };
        // Exactly one algorithm: `none` and algorithm confusion are refused.
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &s.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &s.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Some(Self { key, validation }))
    }

    /// The user id (`sub`) of a valid token.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) if !data.claims.sub.is_empty() => Ok(data.claims.sub),
            Ok(_) => Err(TokenError::Invalid("the token has an empty subject".into())),
            Err(e) => match e.kind() {
                ErrorKind::ExpiredSignature => Err(TokenError::Expired),
                ErrorKind::ImmatureSignature => {
                    Err(TokenError::Invalid("the token is not valid yet".into()))
                }
                ErrorKind::InvalidSignature => {
                    Err(TokenError::Invalid("bad token signature".into()))
                }
                ErrorKind::InvalidAlgorithm => {
                    Err(TokenError::Invalid("token algorithm not accepted".into()))
                }
                ErrorKind::InvalidAudience => {
                    Err(TokenError::Invalid("token audience not accepted".into()))
                }
                ErrorKind::InvalidIssuer => {
                    Err(TokenError::Invalid("token issuer not accepted".into()))
                }
                ErrorKind::MissingRequiredClaim(c) => Err(TokenError::Invalid(format!(
                    "the token lacks the '{c}' claim"
                ))),
                _ => Err(TokenError::Invalid("malformed token".into())),
            },
        }
    }
}
