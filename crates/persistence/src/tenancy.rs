//! Organizations, users, memberships and the assistant lookups threads need.
//!
//! The `ensure_*` functions check, then insert: `ON CONFLICT DO NOTHING` is
//! not available through the multi-backend connection. They serve the CLI
//! and start-up, not concurrent traffic.

use crate::rows::{to_naive, AssistantRow};
use crate::schema::{assistants, memberships, organizations, users};
use crate::{DbConnection, StoreError};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use skein_domain::{AssistantId, OrganizationId, UserId};

/// Creates the organization unless it exists. Returns true when created.
pub fn ensure_organization(
    conn: &mut DbConnection,
    id: &OrganizationId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if organization_exists(conn, id)? {
        return Ok(false);
    }
    diesel::insert_into(organizations::table)
        .values((
            organizations::id.eq(id.as_str()),
            organizations::name.eq(name),
            organizations::created_at.eq(to_naive(now)),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Creates the user unless it exists. Returns true when created.
pub fn ensure_user(
    conn: &mut DbConnection,
    id: &UserId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if user_exists(conn, id)? {
        return Ok(false);
    }
    diesel::insert_into(users::table)
        .values((
            users::id.eq(id.as_str()),
            users::name.eq(name),
            users::created_at.eq(to_naive(now)),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Makes the user a member of the organization unless already one.
pub fn ensure_membership(
    conn: &mut DbConnection,
    org: &OrganizationId,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let exists: i64 = memberships::table
        .filter(memberships::organization_id.eq(org.as_str()))
        .filter(memberships::user_id.eq(user.as_str()))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Ok(false);
    }
    diesel::insert_into(memberships::table)
        .values((
            memberships::organization_id.eq(org.as_str()),
            memberships::user_id.eq(user.as_str()),
            memberships::created_at.eq(to_naive(now)),
        ))
        .execute(conn)?;
    Ok(true)
}

/// True when no organization exists yet (a fresh database).
pub fn is_empty(conn: &mut DbConnection) -> Result<bool, StoreError> {
    let n: i64 = organizations::table.count().get_result(conn)?;
    Ok(n == 0)
}

/// Whether an assistant with this id exists in the organization.
pub fn assistant_exists(
    conn: &mut DbConnection,
    org: &OrganizationId,
    id: &AssistantId,
) -> Result<bool, StoreError> {
    let n: i64 = assistants::table
        .filter(assistants::organization_id.eq(org.as_str()))
        .filter(assistants::id.eq(id.as_str()))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Stores an assistant row.
pub fn insert_assistant(conn: &mut DbConnection, row: &AssistantRow) -> Result<(), StoreError> {
    diesel::insert_into(assistants::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

/// The organizations `user` belongs to, or `None` when the user does not
/// exist. One query (a left join from the user to its memberships).
pub fn organizations_of(
    conn: &mut DbConnection,
    user: &str,
) -> Result<Option<Vec<OrganizationId>>, StoreError> {
    let rows: Vec<Option<String>> = users::table
        .left_join(memberships::table.on(memberships::user_id.eq(users::id)))
        .filter(users::id.eq(user))
        .select(memberships::organization_id.nullable())
        .order(memberships::organization_id.asc())
        .load(conn)?;
    if rows.is_empty() {
        return Ok(None);
    }
    rows.into_iter()
        .flatten()
        .map(|o| {
            OrganizationId::parse(o).map_err(|e| StoreError::Corrupt(format!("membership: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Removes the user from the organization. Returns true when it was a member.
pub fn remove_membership(
    conn: &mut DbConnection,
    org: &OrganizationId,
    user: &UserId,
) -> Result<bool, StoreError> {
    let n = diesel::delete(
        memberships::table
            .filter(memberships::organization_id.eq(org.as_str()))
            .filter(memberships::user_id.eq(user.as_str())),
    )
    .execute(conn)?;
    Ok(n > 0)
}

/// Whether the organization exists.
pub fn organization_exists(
    conn: &mut DbConnection,
    id: &OrganizationId,
) -> Result<bool, StoreError> {
    let n: i64 = organizations::table
        .filter(organizations::id.eq(id.as_str()))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Whether the user exists.
pub fn user_exists(conn: &mut DbConnection, id: &UserId) -> Result<bool, StoreError> {
    let n: i64 = users::table
        .filter(users::id.eq(id.as_str()))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
