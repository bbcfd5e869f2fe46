//! Assistant queries: create, get, keyset-paginated list, replace, delete.
//!
//! An assistant is private to its creator within its organization, exactly
//! like a thread: every query is confined to a [`Scope`], and someone else's
//! assistant reads as missing.

use crate::connection::write_transaction;
use crate::rows::{AssistantChangeset, AssistantRow};
use crate::schema::assistants;
use crate::{DbConnection, ListKind, Missing, Scope, StoreError};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use skein_domain::{Assistant, AssistantId, AssistantSpec};

type Db = <DbConnection as Connection>::Backend;

/// A list request, already validated.
#[derive(Debug, Clone, Default)]
pub struct AssistantQuery {
    /// Page size (1-100).
    pub limit: u32,
    /// The page after this assistant (newest first).
    pub after: Option<String>,
}

/// One page of assistants, newest first.
#[derive(Debug, Clone)]
pub struct AssistantPage {
    /// The assistants.
    pub assistants: Vec<Assistant>,
    /// More assistants exist after this page.
    pub has_more: bool,
}

fn owned_by(scope: &Scope) -> assistants::BoxedQuery<'_, Db> {
    assistants::table
        .filter(assistants::organization_id.eq(scope.organization_id.as_str()))
        .filter(assistants::created_by.eq(scope.user_id.as_str()))
        .into_boxed()
}

/// Stores a new assistant. A taken id gives `StoreError::Conflict`.
pub fn insert(conn: &mut DbConnection, assistant: &Assistant) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        diesel::insert_into(assistants::table)
            .values(AssistantRow::from(assistant))
            .execute(conn)?;
        Ok(())
    })
}

/// The scope's assistant with this id. Someone else's assistant, or one in
/// another organization, is `None`, exactly like a missing one. The model
/// response flow reads a bound assistant's settings through this.
pub fn find(
    conn: &mut DbConnection,
    scope: &Scope,
    id: impl AsRef<str>,
) -> Result<Option<Assistant>, StoreError> {
    owned_by(scope)
        .filter(assistants::id.eq(id.as_ref()))
        .select(AssistantRow::as_select())
        .first(conn)
        .optional()?
        .map(Assistant::try_from)
        .transpose()
}

/// The assistant whose settings a model turn applies: the one the request
/// names, which must be the scope's (`NotFound` otherwise), else the one
/// the thread is bound to, if it still exists (a bound assistant deleted
/// since only means no defaults).
pub fn for_turn(
    conn: &mut DbConnection,
    scope: &Scope,
    requested: Option<&AssistantId>,
    bound: Option<&AssistantId>,
) -> Result<Option<Assistant>, StoreError> {
    match (requested, bound) {
        (Some(a), _) => find(conn, scope, a)?
            .map(Some)
            .ok_or_else(|| StoreError::NotFound(Missing::Assistant(a.to_string()))),
        (None, Some(b)) => find(conn, scope, b),
        (None, None) => Ok(None),
    }
}

/// Whether the scope's user has an assistant with this id in the organization.
pub fn exists(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &AssistantId,
) -> Result<bool, StoreError> {
    let n: i64 = owned_by(scope)
        .filter(assistants::id.eq(id.as_str()))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

fn cursor(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
) -> Result<(NaiveDateTime, String), StoreError> {
    owned_by(scope)
        .filter(assistants::id.eq(id))
        .select((assistants::created_at, assistants::id))
        .first::<(NaiveDateTime, String)>(conn)
        .optional()?
        .ok_or_else(|| StoreError::InvalidCursor {
            list: ListKind::Assistants,
            id: id.to_string(),
        })
}

/// One page of the scope's assistants, newest first, by keyset pagination
/// on `(created_at, id)` over the index `(organization_id, created_by,
/// created_at, id)`: no duplicates or skips when walking with `after`, and
/// every page costs the same. A cursor that names none of the scope's
/// assistants is `StoreError::InvalidCursor`.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    query: &AssistantQuery,
) -> Result<AssistantPage, StoreError> {
    let after = query
        .after
        .as_deref()
        .map(|id| cursor(conn, scope, id))
        .transpose()?;
    let mut q = owned_by(scope);
    if let Some((at, id)) = after {
        q = q.filter(
            assistants::created_at
                .lt(at)
                .or(assistants::created_at.eq(at).and(assistants::id.lt(id))),
        );
    }
    let limit = i64::from(query.limit);
    let mut rows: Vec<AssistantRow> = q
        .order((assistants::created_at.desc(), assistants::id.desc()))
        .limit(limit + 1)
        .select(AssistantRow::as_select())
        .load(conn)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(query.limit as usize);
    Ok(AssistantPage {
        assistants: rows
            .into_iter()
            .map(Assistant::try_from)
            .collect::<Result<_, _>>()?,
        has_more,
    })
}

/// Reads the scope's assistant, writes what `change` makes of it and moves its
/// `updated_at` to `now`; returns the assistant as stored.
pub fn modify<F>(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    now: DateTime<Utc>,
    change: F,
) -> Result<Assistant, StoreError>
where
    F: FnOnce(&Assistant) -> AssistantSpec,
{
    write_transaction(conn, |conn| {
        let current = find(conn, scope, id)?
            .ok_or(StoreError::NotFound(Missing::Assistant(id.to_string())))?;
        let spec = change(&current);
        let next = current.replace(spec, now);
        // Confined to the scope again, so a delete that won the race reads
        // as missing instead of resurrecting anything.
        let n = diesel::update(
            assistants::table
                .filter(assistants::organization_id.eq(scope.organization_id.as_str()))
                .filter(assistants::created_by.eq(scope.user_id.as_str()))
                .filter(assistants::id.eq(id)),
        )
        .set(AssistantChangeset::from(&next))
        .execute(conn)?;
        if n == 0 {
            return Err(StoreError::NotFound(Missing::Assistant(id.to_string())));
        }
        Ok(next)
    })
}

/// Deletes the scope's assistant for good. Threads bound to it keep the id.
pub fn delete(conn: &mut DbConnection, scope: &Scope, id: &str) -> Result<(), StoreError> {
    let n = write_transaction(conn, |conn| {
        diesel::delete(
            assistants::table
                .filter(assistants::organization_id.eq(scope.organization_id.as_str()))
                .filter(assistants::created_by.eq(scope.user_id.as_str()))
                .filter(assistants::id.eq(id)),
        )
        .execute(conn)
        .map_err(StoreError::from)
    })?;
    if n == 0 {
        return Err(StoreError::NotFound(Missing::Assistant(id.to_string())));
    }
    Ok(())
}
