//! Authentication: who is calling, in which organization.
//!
//! An API key comes in `X-API-Key`, `api-key` or `Authorization: Bearer sk_...`.
//! Any other bearer value is a user token (JWT), accepted when the server has
//! a token key configured; its user may belong to several organizations.

use crate::error::ApiError;
use crate::ratelimit;
use crate::state::AppState;
use crate::tokens::TokenError;
use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use skein_domain::retention::Liveness;
use skein_domain::{ApiKeyId, OrganizationId, UserId};
use skein_persistence::keys::{self, KEY_PREFIX};
use skein_persistence::tenancy;
use skein_persistence::Scope;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// An API key (acts as its owner in its organization).
    ApiKey(ApiKeyId),
    /// A user token (acts as the user in any of its organizations).
    Token,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user the request acts as.
    pub user_id: UserId,
    /// The organizations the request may work in: the key's one, or every
    /// organization the token's user is a member of.
    pub organizations: Vec<OrganizationId>,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// The expiry cut-offs at the time of the request: expired threads are
    /// invisible to it.
    pub live: Liveness,
}

impl Caller {
    /// The organization a request works in: the one it names, which must be
    /// one of the caller's (403 otherwise), or the caller's only one (400
    /// `AMBIGUOUS_ORGANIZATION` when there are several).
    pub fn organization(&self, requested: Option<&str>) -> Result<OrganizationId, ApiError> {
        match requested {
            Some(org) => self
                .organizations
                .iter()
                .find(|o| o.as_str() == org)
                .cloned()
                .ok_or_else(|| ApiError::OrganizationAccessDenied(org.to_string())),
            None => match self.organizations.as_slice() {
                [only] => Ok(only.clone()),
                [] => Err(ApiError::OrganizationAccessDenied(
                    "the user is not a member of any organization".into(),
                )),
                _ => Err(ApiError::AmbiguousOrganization(
                    "the caller belongs to several organizations: pass organization_id".into(),
                )),
            },
        }
    }

    /// The caller's own objects in the requested organization.
    pub fn scope(&self, requested: Option<&str>) -> Result<Scope, ApiError> {
        Ok(Scope {
            organization_id: self.organization(requested)?,
            user_id: self.user_id.clone(),
            live: Some(self.live),
        })
    }

    /// Fields such as `visible_in_ui` need a user token, not an API key.
    pub fn require_user_token(&self, field: &'static str) -> Result<(), ApiError> {
        match self.method {
            AuthMethod::ApiKey(_) => Err(ApiError::BearerTokenRequired(field)),
            AuthMethod::Token => Ok(()),
        }
    }
}

/// The scope of a thread named in a path. With an explicit organization, or
/// a caller in one organization, no query is needed; a token user in
/// several organizations has the thread looked up in all of them (404 when
/// none has it, 400 `AMBIGUOUS_ORGANIZATION` when several do).
pub async fn thread_scope(
    state: &AppState,
    caller: &Caller,
    requested: Option<&str>,
    thread_id: &str,
) -> Result<Scope, ApiError> {
    if requested.is_some() || caller.organizations.len() <= 1 {
        return caller.scope(requested);
    }
    let (user, orgs, id, live) = (
        caller.user_id.clone(),
        caller.organizations.clone(),
        thread_id.to_string(),
        caller.live,
    );
    let holding = state
        .store
        .run(move |conn| {
            skein_persistence::threads::organizations_holding(conn, &user, &orgs, Some(live), &id)
        })
        .await?;
    match holding.as_slice() {
        [] => Err(ApiError::ThreadNotFound(thread_id.to_string())),
        [org] => Ok(Scope {
            organization_id: org.clone(),
            user_id: caller.user_id.clone(),
            live: Some(caller.live),
        }),
        _ => Err(ApiError::AmbiguousOrganization(format!(
            "thread '{thread_id}' exists in several of your organizations: pass organization_id"
        ))),
    }
}

/// The credential found in the headers.
#[derive(Debug, PartialEq, Eq)]
enum Credential {
    ApiKey(String),
    Token(String),
}

/// Every credential in the headers, in the order `X-API-Key`, `api-key`,
/// `Authorization` (each header may be repeated). Empty values and
/// `Authorization` schemes other than `Bearer` count as none.
fn credentials(headers: &HeaderMap) -> impl Iterator<Item = Credential> + '_ {
    let keys = ["x-api-key", "api-key"]
        .into_iter()
        .flat_map(|name| headers.get_all(name))
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| Credential::ApiKey(v.to_string()));
    let bearers = headers
        .get_all(AUTHORIZATION)
        .filter_map(|v| v.to_str().ok())
        .filter_map(|auth| {
            let (scheme, value) = auth.trim().split_once(' ')?;
            let value = value.trim();
            if !scheme.eq_ignore_ascii_case("bearer") || value.is_empty() {
                None
            } else if value.starts_with(KEY_PREFIX) {
                Some(Credential::ApiKey(value.to_string()))
            } else {
                Some(Credential::Token(value.to_string()))
            }
        });
    keys.chain(bearers)
}

/// The one credential of the request: none, or 400
/// `AMBIGUOUS_CREDENTIALS` when it carries two different ones (two API
/// keys, or a key and a user token). The same key sent twice is one.
fn credential(headers: &HeaderMap) -> Result<Option<Credential>, ApiError> {
    let mut found = credentials(headers);
    let Some(first) = found.next() else {
        return Ok(None);
    };
    match found.find(|other| *other != first) {
        None => Ok(Some(first)),
        Some(other) => Err(ApiError::AmbiguousCredentials(format!(
            "the request carries {} and a different {}: send exactly one credential",
            first.kind(),
            other.kind()
        ))),
    }
}

impl Credential {
    fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey(_) => "an API key",
            Self::Token(_) => "a user token",
        }
    }
}

/// Counts an authenticated request against its caller's budget: 429
/// `RATE_LIMITED` once it is spent. Failed authentications never get here.
fn within_budget(state: &AppState, identity: &str) -> Result<(), ApiError> {
    state
        .rate_limiter
        .check_now(identity)
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = credential(req.headers());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let found = found?.ok_or(ApiError::AuthenticationRequired)?;
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".into()))?;
            let now = state.clock.now();
            let live = state.retention.liveness(now);
            match found {
                Credential::ApiKey(key) => {
                    let identity = state
                        .store
                        .run(move |conn| keys::authenticate(conn, &key, now))
                        .await?
                        .ok_or(ApiError::InvalidApiKey)?;
                    within_budget(&state, &ratelimit::key_identity(identity.key_id.as_str()))?;
                    Ok(Caller {
                        user_id: identity.user_id,
                        organizations: vec![identity.organization_id],
                        method: AuthMethod::ApiKey(identity.key_id),
                        live,
                    })
                }
                Credential::Token(token) => {
                    let verifier = state.tokens.clone().ok_or_else(|| {
                        ApiError::TokenInvalid(
                            "user tokens (JWT) are not enabled on this server; use an API key"
                                .into(),
                        )
                    })?;
                    let subject = verifier.verify(&token).map_err(|e| match e {
                        TokenError::Expired => ApiError::TokenExpired,
                        TokenError::Invalid(why) => ApiError::TokenInvalid(why),
                    })?;
                    let user_id = UserId::parse(subject)
                        .map_err(|_| ApiError::TokenInvalid("unknown user".into()))?;
                    let lookup = user_id.to_string();
                    let organizations = state
                        .store
                        .run(move |conn| tenancy::organizations_of(conn, &lookup))
                        .await?
                        .ok_or_else(|| ApiError::TokenInvalid("unknown user".into()))?;
                    within_budget(&state, &ratelimit::user_identity(user_id.as_str()))?;
                    Ok(Caller {
                        user_id,
                        organizations,
                        method: AuthMethod::Token,
                        live,
                    })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn keys_are_read_from_all_three_headers() {
        let k = || Some(Credential::ApiKey("sk_abc".into()));
        assert_eq!(
            credential(&headers(&[("x-api-key", "sk_abc")])).unwrap(),
            k()
        );
        assert_eq!(credential(&headers(&[("api-key", "sk_abc")])).unwrap(), k());
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer sk_abc")])).unwrap(),
            k()
        );
        assert_eq!(
            credential(&headers(&[("authorization", "bearer sk_abc")])).unwrap(),
            k()
        );
    }

    #[test]
    fn other_bearer_values_are_tokens_and_other_schemes_are_nothing() {
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer eyJhbGciOi")])).unwrap(),
            Some(Credential::Token("eyJhbGciOi".into()))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Basic abc")])).unwrap(),
            None
        );
        assert_eq!(credential(&headers(&[])).unwrap(), None);
    }

    #[test]
    fn two_different_credentials_are_ambiguous_and_one_sent_twice_is_not() {
        let ambiguous = |pairs: &[(&'static str, &str)]| {
            credential(&headers(pairs)).map_err(|e| e.code()) == Err("AMBIGUOUS_CREDENTIALS")
        };
        assert!(ambiguous(&[("x-api-key", "sk_a"), ("api-key", "sk_b")]));
        assert!(ambiguous(&[
            ("x-api-key", "sk_a"),
            ("authorization", "Bearer sk_b")
        ]));
        assert!(ambiguous(&[
            ("api-key", "sk_a"),
            ("authorization", "Bearer eyJhbGciOi")
        ]));
        assert!(ambiguous(&[("x-api-key", "sk_a"), ("x-api-key", "sk_b")]));
        assert_eq!(
            credential(&headers(&[
                ("x-api-key", "sk_a"),
                ("api-key", " sk_a "),
                ("authorization", "Bearer sk_a"),
                ("authorization", "Basic other"),
            ]))
            .unwrap(),
            Some(Credential::ApiKey("sk_a".into()))
        );
    }
}
