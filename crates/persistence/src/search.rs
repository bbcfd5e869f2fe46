//! Full-text search over the caller's live messages (contract 11.1): SQLite
//! FTS5 (`messages_fts`, kept by triggers) or PostgreSQL's `tsvector` column
//! `messages.search` with its GIN index (migration 000012). Best match
//! first; the page after a hit continues from that hit's score.

use crate::rows::to_naive;
use crate::threads::Scope;
use crate::{DbConnection, ListKind, StoreError};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamp};
use skein_domain::search::{snippet, SearchQuery};

/// A search request, already validated.
#[derive(Debug, Clone)]
pub struct MessageSearch {
    /// What to find.
    pub query: SearchQuery,
    /// Only in this thread.
    pub thread_id: Option<String>,
    /// Only messages of this role (`user` or `assistant`).
    pub role: Option<String>,
    /// Page size (1-100).
    pub limit: u32,
    /// The page after this message (a hit of the same search).
    pub after: Option<String>,
}

/// One hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The thread.
    pub thread_id: String,
    /// The message.
    pub message_id: String,
    /// Its role.
    pub role: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// An excerpt around the first matching word, matches in `**`.
    pub snippet: String,
    /// Relevance: higher is better (BM25 on SQLite, `ts_rank` on
    /// PostgreSQL; comparable within one search only).
    pub score: f64,
}

/// One page of hits.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Best first.
    pub hits: Vec<SearchHit>,
    /// More hits follow.
    pub has_more: bool,
}

#[derive(Debug, QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    pk: i64,
    #[diesel(sql_type = Text)]
    message_id: String,
    #[diesel(sql_type = Text)]
    thread_id: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = Text)]
    content: String,
    #[diesel(sql_type = Double)]
    score: f64,
}

/// The owner's live threads, as in `threads::owned_by` (the same rule as
/// `Liveness::admits`), written once per dialect with numbered binds:
/// 2 org, 3 user, 4 created after, 5 active after, 6 now, 7 thread id or
/// NULL, 8 role or NULL.
const SCOPE_SQL: &str = "t.organization_id = {2} AND t.user_id = {3} \
     AND t.deleted_at IS NULL AND t.provisional = {false} \
     AND t.created_at > {4} AND (t.state = 'archived' OR t.updated_at > {5}) \
     AND (t.expected_deletion_at IS NULL OR t.expected_deletion_at > {6}) \
     AND ({7} IS NULL OR t.id = {7}) AND ({8} IS NULL OR m.role = {8})";

fn sqlite_sql() -> String {
    let scope = bind(SCOPE_SQL, |n| format!("?{n}"), "0");
    // bm25 is lower for better matches: the score is its negation.
    format!(
        "SELECT * FROM (SELECT m.pk AS pk, m.id AS message_id, t.id AS thread_id, \
         m.role AS role, m.created_at AS created_at, m.content AS content, \
         -bm25(messages_fts) AS score \
         FROM messages_fts JOIN messages m ON m.pk = messages_fts.rowid \
         JOIN threads t ON t.pk = m.thread_pk \
         WHERE messages_fts MATCH ?1 AND {scope}) s \
         WHERE (?9 IS NULL OR s.score < ?9 OR (s.score = ?9 AND s.pk > ?10)) \
         AND (?11 IS NULL OR s.message_id = ?11) \
         ORDER BY s.score DESC, s.pk LIMIT ?12"
    )
}

fn postgres_sql() -> String {
    let scope = bind(SCOPE_SQL, |n| format!("${n}"), "false");
    format!(
        "SELECT * FROM (SELECT m.pk AS pk, m.id AS message_id, t.id AS thread_id, \
         m.role AS role, m.created_at AS created_at, m.content AS content, \
         ts_rank(m.search, q)::float8 AS score \
         FROM messages m JOIN threads t ON t.pk = m.thread_pk, \
         to_tsquery('simple'::regconfig, skein_search_text($1)) q \
         WHERE m.search @@ q AND {scope}) s \
         WHERE ($9::float8 IS NULL OR s.score < $9 OR (s.score = $9 AND s.pk > $10)) \
         AND ($11::text IS NULL OR s.message_id = $11) \
         ORDER BY s.score DESC, s.pk LIMIT $12"
    )
    .replace("$7 IS NULL", "$7::text IS NULL")
    .replace("$8 IS NULL", "$8::text IS NULL")
}

/// `template` with `{n}` replaced by the dialect's bind `n` and `{false}`
/// by its false.
fn bind(template: &str, placeholder: impl Fn(u8) -> String, falsy: &str) -> String {
    let mut out = template.replace("{false}", falsy);
    for n in (2..=8).rev() {
        out = out.replace(&format!("{{{n}}}"), &placeholder(n));
    }
    out
}

/// The earliest time the scope's cut-offs can be (no liveness: everything).
fn epoch() -> NaiveDateTime {
    DateTime::<Utc>::UNIX_EPOCH.naive_utc()
}

/// One page of the caller's messages that hold every word and phrase of
/// the query, best match first.
pub fn search(
    conn: &mut DbConnection,
    scope: &Scope,
    request: &MessageSearch,
) -> Result<SearchPage, StoreError> {
    let cursor = match &request.after {
        Some(id) => {
            let found = run(conn, scope, request, None, Some(id), 1)?;
            let row = found
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::InvalidCursor {
                    list: ListKind::Messages,
                    id: id.clone(),
                })?;
            Some((row.score, row.pk))
        }
        None => None,
    };
    let limit = request.limit.max(1);
    let mut rows = run(conn, scope, request, cursor, None, i64::from(limit) + 1)?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok(SearchPage {
        hits: rows
            .into_iter()
            .map(|r| SearchHit {
                snippet: snippet(&r.content, &request.query),
                thread_id: r.thread_id,
                message_id: r.message_id,
                role: r.role,
                created_at: r.created_at.and_utc(),
                score: r.score,
            })
            .collect(),
        has_more,
    })
}

fn run(
    conn: &mut DbConnection,
    scope: &Scope,
    request: &MessageSearch,
    cursor: Option<(f64, i64)>,
    only: Option<&String>,
    limit: i64,
) -> Result<Vec<Row>, StoreError> {
    let (created_after, active_after, now) = match scope.live {
        Some(l) => (
            to_naive(l.created_after),
            to_naive(l.active_after),
            to_naive(l.now),
        ),
        None => (epoch(), epoch(), epoch()),
    };
    macro_rules! query {
        ($sql:expr, $text:expr) => {
            diesel::sql_query($sql)
                .bind::<Text, _>($text)
                .bind::<Text, _>(scope.organization_id.as_str())
                .bind::<Text, _>(scope.user_id.as_str())
                .bind::<Timestamp, _>(created_after)
                .bind::<Timestamp, _>(active_after)
                .bind::<Timestamp, _>(now)
                .bind::<Nullable<Text>, _>(request.thread_id.as_deref())
                .bind::<Nullable<Text>, _>(request.role.as_deref())
                .bind::<Nullable<Double>, _>(cursor.map(|c| c.0))
                .bind::<Nullable<BigInt>, _>(cursor.map(|c| c.1))
                .bind::<Nullable<Text>, _>(only.map(String::as_str))
                .bind::<BigInt, _>(limit)
        };
    }
    Ok(match conn {
        DbConnection::Sqlite(c) => query!(sqlite_sql(), request.query.fts5()).load::<Row>(c)?,
        DbConnection::Postgresql(c) => {
            query!(postgres_sql(), request.query.tsquery()).load::<Row>(c)?
        }
    })
}
