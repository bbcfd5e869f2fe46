//! Authentication: who is calling, in which organization.
//!
//! An API key comes in `X-API-Key`, `api-key` or `Authorization: Bearer sk_...`.
//! Any other bearer value is a user token (JWT), accepted when the server has
//! a token key configured; its user may belong to several organizations.
//!
//! The [`Caller`] extractor reads and checks the credential without the
//! database (a token's signature and expiry are checked there). The
//! database's part (the key's lookup, or the token user's memberships, and
//! the caller's rate budget) runs at the start of the handler's own trip to
//! the blocking pool ([`Caller::run`]), so an authenticated request costs
//! one trip, not two, and a revoked key or a removed membership takes
//! effect on the next request, on every replica. A request with an
//! `Idempotency-Key` claims its key in that same trip, right after the
//! caller is known ([`crate::idempotency`]).

use crate::error::ApiError;
use crate::idempotency::KeyClaim;
use crate::ratelimit::{self, RateLimiter};
use crate::state::AppState;
use crate::tokens::TokenError;
use actix_web::dev::Payload;
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};
use skein_domain::retention::Liveness;
use skein_domain::{ApiKeyId, OrganizationId, UserId};
use skein_persistence::keys::{self, KEY_PREFIX};
use skein_persistence::{tenancy, DbConnection, Scope};
use std::future::{ready, Ready};
use std::sync::{Arc, OnceLock};

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// An API key (acts as its owner in its organization).
    ApiKey(ApiKeyId),
    /// A user token (acts as the user in any of its organizations).
    Token,
}

/// Who is calling, as the database confirmed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
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

impl Identity {
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

    /// The organizations a listing covers: the one named, or (a user token
    /// without `organization_id`) every organization of the caller.
    pub fn listing(&self, requested: Option<&str>) -> Result<Vec<OrganizationId>, ApiError> {
        Ok(match requested {
            Some(org) => vec![self.organization(Some(org))?],
            None if self.organizations.is_empty() => vec![self.organization(None)?],
            None => self.organizations.clone(),
        })
    }

    /// The caller's own objects in the requested organization.
    pub fn scope(&self, requested: Option<&str>) -> Result<Scope, ApiError> {
        Ok(Scope {
            organization_id: self.organization(requested)?,
            user_id: self.user_id.clone(),
            live: Some(self.live),
        })
    }

    /// The scope of a thread named in a path. With an explicit
    /// organization, or a caller in one organization, no query is needed; a
    /// token user in several organizations has the thread looked up in all
    /// of them (404 when none has it, 400 `AMBIGUOUS_ORGANIZATION` when
    /// several do).
    pub fn thread_scope(
        &self,
        conn: &mut DbConnection,
        requested: Option<&str>,
        thread_id: &str,
    ) -> Result<Scope, ApiError> {
        if requested.is_some() || self.organizations.len() <= 1 {
            return self.scope(requested);
        }
        let holding = skein_persistence::threads::organizations_holding(
            conn,
            &self.user_id,
            &self.organizations,
            Some(self.live),
            thread_id,
        )?;
        match holding.as_slice() {
            [] => Err(ApiError::ThreadNotFound(thread_id.to_string())),
            [org] => Ok(Scope {
                organization_id: org.clone(),
                user_id: self.user_id.clone(),
                live: Some(self.live),
            }),
            _ => Err(ApiError::AmbiguousOrganization(format!(
                "thread '{thread_id}' exists in several of your organizations: pass organization_id"
            ))),
        }
    }
}

/// What the credential claims, checked so far as it can be without the
/// database.
#[derive(Debug, Clone)]
enum Claim {
    /// An API key, to look up.
    ApiKey(String),
    /// A user named by a valid token, whose memberships are to be read.
    User(UserId),
}

/// The authenticating caller of a request (the extractor). Its database
/// part runs in the handler's first trip ([`Caller::run`]); later trips of
/// the same request reuse what it found.
#[derive(Clone)]
pub struct Caller {
    claim: Claim,
    state: web::Data<AppState>,
    now: DateTime<Utc>,
    known: Arc<OnceLock<Identity>>,
    /// The request's `Idempotency-Key`, claimed in its first trip.
    key_claim: Option<Arc<KeyClaim>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("Caller")
            .field("known", &self.known.get())
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// Runs `f` on one pooled connection, in one trip to the blocking pool:
    /// first the caller is authenticated (unless an earlier trip of this
    /// request did) and counted against its rate budget, then `f` gets the
    /// connection and the caller's [`Identity`].
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection, &Identity) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.state.store.run(self.within(f)).await
    }

    /// The caller's identity, in a trip of its own (for work that must not
    /// start before the caller is known, such as counting a large body).
    pub async fn identity(&self) -> Result<Identity, ApiError> {
        self.run(|_, who| Ok(who.clone())).await
    }

    /// Authenticates now, in a trip of its own, when `bytes` of text are
    /// about to be counted off the workers (more than
    /// [`skein_engine::cpu::INLINE_BYTES`]): counting a large body is work
    /// for known callers only. Shorter texts are counted in place and the
    /// caller is authenticated in the handler's one trip.
    pub async fn before_counting(&self, bytes: usize) -> Result<(), ApiError> {
        if bytes > skein_engine::cpu::INLINE_BYTES && self.known.get().is_none() {
            self.identity().await?;
        }
        Ok(())
    }

    /// [`Caller::run`]'s step, for a trip that someone else runs (the turn
    /// engine's): authenticates on the given connection, then calls `f`.
    pub fn within<T, F>(
        &self,
        f: F,
    ) -> impl FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static
    where
        F: FnOnce(&mut DbConnection, &Identity) -> Result<T, ApiError> + Send + 'static,
    {
        let claim = self.claim.clone();
        let now = self.now;
        let live = self.state.retention.liveness(now);
        let limiter = Arc::clone(&self.state.rate_limiter);
        let known = Arc::clone(&self.known);
        let key_claim = self.key_claim.clone();
        move |conn| {
            let who = match known.get() {
                Some(who) => who.clone(),
                None => {
                    let who = authenticate(conn, claim, now, live, &limiter)?;
                    known.get_or_init(|| who.clone());
                    who
                }
            };
            let Some(key_claim) = &key_claim else {
                return f(conn, &who);
            };
            let Some(deferred) = key_claim.start(conn, &who, now)? else {
                return f(conn, &who);
            };
            let done = f(conn, &who);
            // A key that turned out taken outranks what the step did (it
            // wrote nothing: its write transaction rolled back).
            key_claim.finish(conn, &who, &deferred)?;
            done
        }
    }

    /// This caller, whose first trip also claims `key_claim` (the
    /// `Idempotency-Key` middleware's).
    pub(crate) fn claiming(mut self, key_claim: Arc<KeyClaim>) -> Self {
        self.key_claim = Some(key_claim);
        self
    }

    /// The caller's organizations (comma-separated) once a trip has
    /// authenticated it, for the access log.
    pub fn organizations(&self) -> Option<String> {
        self.known.get().map(|who| {
            who.organizations
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Fields such as `visible_in_ui` need a user token, not an API key.
    pub fn require_user_token(&self, field: &'static str) -> Result<(), ApiError> {
        match self.claim {
            Claim::ApiKey(_) => Err(ApiError::BearerTokenRequired(field)),
            Claim::User(_) => Ok(()),
        }
    }
}

/// The database's part of authentication: the key looked up (prefix, then
/// a constant-time hash compare; a revoked key or a removed membership
/// fails), or the token user's memberships read; then the caller's budget
/// (on PostgreSQL one more statement on the same connection, in the same
/// trip).
fn authenticate(
    conn: &mut DbConnection,
    claim: Claim,
    now: DateTime<Utc>,
    live: Liveness,
    limiter: &RateLimiter,
) -> Result<Identity, ApiError> {
    let within_budget = |conn: &mut DbConnection, identity: &str| {
        limiter.check(conn, identity)?.map_err(|retry_after_secs| {
            // The budget's kind (`key` or `user`), never the identity.
            let limit = if identity.starts_with("key:") {
                "key"
            } else {
                "user"
            };
            metrics::counter!("skein_rate_limited_total", "limit" => limit).increment(1);
            ApiError::RateLimited { retry_after_secs }
        })
    };
    match claim {
        Claim::ApiKey(key) => {
            let found = keys::authenticate(conn, &key, now)?.ok_or(ApiError::InvalidApiKey)?;
            within_budget(conn, &ratelimit::key_identity(found.key_id.as_str()))?;
            Ok(Identity {
                user_id: found.user_id,
                organizations: vec![found.organization_id],
                method: AuthMethod::ApiKey(found.key_id),
                live,
            })
        }
        Claim::User(user_id) => {
            let organizations = tenancy::organizations_of(conn, user_id.as_str())?
                .ok_or_else(|| ApiError::TokenInvalid("unknown user".into()))?;
            within_budget(conn, &ratelimit::user_identity(user_id.as_str()))?;
            Ok(Identity {
                user_id,
                organizations,
                method: AuthMethod::Token,
                live,
            })
        }
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Authenticated already by a middleware (Idempotency-Key): the
        // handler's trips reuse it instead of authenticating again.
        if let Some(caller) = req.extensions().get::<Caller>() {
            return ready(Ok(caller.clone()));
        }
        let caller = claim_of(req);
        if let Ok(c) = &caller {
            // Later extractors reuse it, and the access log names the
            // caller's organization once it is known.
            req.extensions_mut().insert(c.clone());
        }
        ready(caller)
    }
}

/// The request's claim: its one credential, a token's signature and expiry
/// checked.
fn claim_of(req: &HttpRequest) -> Result<Caller, ApiError> {
    let found = credential(req.headers())?.ok_or(ApiError::AuthenticationRequired)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let claim = match found {
        Credential::ApiKey(key) => Claim::ApiKey(key),
        Credential::Token(token) => {
            let verifier = state.tokens.clone().ok_or_else(|| {
                ApiError::TokenInvalid(
                    "user tokens (JWT) are not enabled on this server; use an API key".into(),
                )
            })?;
            let subject = verifier.verify(&token).map_err(|e| match e {
                TokenError::Expired => ApiError::TokenExpired,
                TokenError::Invalid(why) => ApiError::TokenInvalid(why),
            })?;
            Claim::User(
                UserId::parse(subject)
                    .map_err(|_| ApiError::TokenInvalid("unknown user".into()))?,
            )
        }
    };
    Ok(Caller {
        claim,
        now: state.clock.now(),
        state,
        known: Arc::new(OnceLock::new()),
        key_claim: None,
    })
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
