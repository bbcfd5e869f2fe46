//! Authentication: who is calling, in which organization.
//!
//! An API key comes in `X-API-Key`, `api-key` or `Authorization: Bearer sk_...`.
//! Any other bearer value is a user token (JWT); this server does not accept
//! user tokens yet, so those get 401 `TOKEN_INVALID` saying so.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use skein_domain::{clock, ApiKeyId, OrganizationId, UserId};
use skein_persistence::keys::{self, KEY_PREFIX};
use skein_persistence::Scope;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// An API key (acts as its owner in its organization).
    ApiKey(ApiKeyId),
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user the request acts as.
    pub user_id: UserId,
    /// The organization the credentials belong to.
    pub organization_id: OrganizationId,
    /// How the caller authenticated.
    pub method: AuthMethod,
}

impl Caller {
    /// The organization a request works in: the one it names, which must be
    /// the caller's (403 otherwise), or the caller's only one.
    pub fn organization(&self, requested: Option<&str>) -> Result<OrganizationId, ApiError> {
        match requested {
            None => Ok(self.organization_id.clone()),
            Some(org) if org == self.organization_id.as_str() => Ok(self.organization_id.clone()),
            Some(org) => Err(ApiError::OrganizationAccessDenied(org.to_string())),
        }
    }

    /// The caller's own threads in the requested organization.
    pub fn scope(&self, requested: Option<&str>) -> Result<Scope, ApiError> {
        Ok(Scope {
            organization_id: self.organization(requested)?,
            user_id: self.user_id.clone(),
        })
    }

    /// Fields such as `visible_in_ui` need a user token, not an API key.
    pub fn require_user_token(&self, field: &'static str) -> Result<(), ApiError> {
        match self.method {
            AuthMethod::ApiKey(_) => Err(ApiError::BearerTokenRequired(field)),
        }
    }
}

/// The credential found in the headers.
#[derive(Debug, PartialEq, Eq)]
enum Credential {
    ApiKey(String),
    Token,
}

fn credential(headers: &HeaderMap) -> Option<Credential> {
    for name in ["x-api-key", "api-key"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            if !v.is_empty() {
                return Some(Credential::ApiKey(v.to_string()));
            }
        }
    }
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, value) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let value = value.trim();
    if value.starts_with(KEY_PREFIX) {
        Some(Credential::ApiKey(value.to_string()))
    } else if value.is_empty() {
        None
    } else {
        Some(Credential::Token)
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = credential(req.headers());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let key = match found {
                None => return Err(ApiError::AuthenticationRequired),
                Some(Credential::Token) => {
                    return Err(ApiError::TokenInvalid(
                        "user tokens (JWT) are not enabled on this server; use an API key".into(),
                    ))
                }
                Some(Credential::ApiKey(k)) => k,
            };
            let state = state.ok_or_else(|| {
                ApiError::Internal(skein_persistence::StoreError::Corrupt(
                    "application state missing".into(),
                ))
            })?;
            let identity = state
                .store
                .run(move |conn| keys::authenticate(conn, &key, clock::now()))
                .await?
                .ok_or(ApiError::InvalidApiKey)?;
            Ok(Caller {
                user_id: identity.user_id,
                organization_id: identity.organization_id,
                method: AuthMethod::ApiKey(identity.key_id),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn keys_are_read_from_all_three_headers() {
        let k = || Some(Credential::ApiKey("sk_abc".into()));
        assert_eq!(credential(&headers(&[("x-api-key", "sk_abc")])), k());
        assert_eq!(credential(&headers(&[("api-key", "sk_abc")])), k());
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer sk_abc")])),
            k()
        );
        assert_eq!(
            credential(&headers(&[("authorization", "bearer sk_abc")])),
            k()
        );
    }

    #[test]
    fn other_bearer_values_are_tokens_and_other_schemes_are_nothing() {
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer eyJhbGciOi")])),
            Some(Credential::Token)
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(credential(&headers(&[])), None);
    }
}
