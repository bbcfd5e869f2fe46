//! API keys: generation, hashed storage, constant-time verification.
//!
//! A key is `sk_` followed by 48 random base62 characters (about 285 bits).
//! The first 12 random characters are stored in clear as a lookup prefix;
//! the whole key is stored only as its SHA-256 (a fast hash is right for a
//! high-entropy secret: there is nothing to brute-force). Verification looks
//! the prefix up on a unique index and compares hashes in constant time.

use crate::connection::on_backend;
use crate::rows::{to_naive, ApiKeyRow};
use crate::schema::{api_keys, memberships};
use crate::{DbConnection, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use skein_domain::ids::random_base62;
use skein_domain::{ApiKeyId, OrganizationId, UserId};
use subtle::ConstantTimeEq;

/// Every API key starts with this.
pub const KEY_PREFIX: &str = "sk_";
const RANDOM_CHARS: usize = 48;
const LOOKUP_CHARS: usize = 12;
/// `last_used_at` is written at most this often per key.
pub const LAST_USED_RESOLUTION: TimeDelta = TimeDelta::seconds(60);

/// A key as created: the plain secret is only ever available here.
#[derive(Debug)]
pub struct CreatedKey {
    /// Public id.
    pub id: ApiKeyId,
    /// The secret, shown to the operator once.
    pub secret: String,
    /// The stored row.
    pub row: ApiKeyRow,
}

/// The identity an authenticated key carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    /// Public key id.
    pub key_id: ApiKeyId,
    /// The key's organization.
    pub organization_id: OrganizationId,
    /// The key's owner.
    pub user_id: UserId,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The lookup prefix of a well-formed key, or `None` when it cannot be one.
fn lookup_prefix(secret: &str) -> Option<&str> {
    let random = secret.strip_prefix(KEY_PREFIX)?;
    if random.len() != RANDOM_CHARS || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    random.get(..LOOKUP_CHARS)
}

/// Creates and stores a new key for the user in the organization.
pub fn create(
    conn: &mut DbConnection,
    org: &OrganizationId,
    user: &UserId,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CreatedKey, StoreError> {
    let id = ApiKeyId::generate();
    let secret = format!("{KEY_PREFIX}{}", random_base62(RANDOM_CHARS));
    let prefix = lookup_prefix(&secret)
        .ok_or_else(|| StoreError::Corrupt("generated key is malformed".into()))?
        .to_string();
    let row = ApiKeyRow {
        id: id.to_string(),
        prefix,
        secret_hash: hash(&secret),
        organization_id: org.to_string(),
        user_id: user.to_string(),
        name: name.map(str::to_string),
        created_at: to_naive(now),
        last_used_at: None,
        revoked_at: None,
    };
    diesel::insert_into(api_keys::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(CreatedKey { id, secret, row })
}

/// Verifies a presented key. `Ok(None)` for an unknown, malformed or revoked
/// key, or one whose owner has left its organization. Records the use (at most once per [`LAST_USED_RESOLUTION`]).
pub fn authenticate(
    conn: &mut DbConnection,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<Option<KeyIdentity>, StoreError> {
    let Some(prefix) = lookup_prefix(presented) else {
        return Ok(None);
    };
    // A key works only while its owner is a member of its organization.
    let member = memberships::table
        .filter(memberships::organization_id.eq(api_keys::organization_id))
        .filter(memberships::user_id.eq(api_keys::user_id));
    let by_prefix = api_keys::table
        .filter(api_keys::prefix.eq(prefix))
        .filter(api_keys::revoked_at.is_null())
        .filter(diesel::dsl::exists(member));
    // On the backend's own connection: every request's first query (see
    // `on_backend`).
    let row: Option<ApiKeyRow> = on_backend!(conn, c => by_prefix
        .select(ApiKeyRow::as_select())
        .first(c)
        .optional()?);
    let Some(row) = row else {
        return Ok(None);
    };
    let matches: bool = hash(presented)
        .as_bytes()
        .ct_eq(row.secret_hash.as_bytes())
        .into();
    if !matches {
        return Ok(None);
    }
    let now_naive = to_naive(now);
    let stale = row
        .last_used_at
        .is_none_or(|t| now_naive - t >= LAST_USED_RESOLUTION);
    if stale {
        crate::connection::write_transaction(conn, |conn| {
            crate::prepared::update(
                api_keys::table,
                api_keys::id.eq(&row.id),
                api_keys::last_used_at.eq(now_naive),
            )
            .execute(conn)
            .map_err(StoreError::from)
        })?;
    }
    let corrupt = |e: skein_domain::IdError| StoreError::Corrupt(format!("api key row: {e}"));
    Ok(Some(KeyIdentity {
        key_id: ApiKeyId::parse(row.id).map_err(corrupt)?,
        organization_id: OrganizationId::parse(row.organization_id).map_err(corrupt)?,
        user_id: UserId::parse(row.user_id).map_err(corrupt)?,
    }))
}

/// Every key, newest first (never the secret: only the hash is stored).
pub fn list(conn: &mut DbConnection) -> Result<Vec<ApiKeyRow>, StoreError> {
    Ok(api_keys::table
        .order(api_keys::created_at.desc())
        .select(ApiKeyRow::as_select())
        .load(conn)?)
}

/// Revokes a key; it fails authentication from the next request on.
pub fn revoke(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let n = diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(to_naive(now)))
    .execute(conn)?;
    if n == 0 {
        return Err(StoreError::NotFound(crate::Missing::ApiKey(id.to_string())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_have_a_lookup_prefix() {
        let good = format!("sk_{}", "a".repeat(48));
        assert_eq!(lookup_prefix(&good), Some("aaaaaaaaaaaa"));
        assert_eq!(lookup_prefix("sk_short"), None);
        assert_eq!(lookup_prefix(&format!("pk_{}", "a".repeat(48))), None);
        assert_eq!(lookup_prefix(&format!("sk_{}!", "a".repeat(47))), None);
        assert_eq!(lookup_prefix(&format!("sk_{}", "é".repeat(24))), None);
    }
}
