//! Thread queries: create, get, keyset-paginated list, updates, pins, soft delete.

use crate::connection::{on_backend, write_transaction};
use crate::keyset::{with_keyset, Keyset};
use crate::prepared;
use crate::rows::{to_naive, NewThreadRow, ThreadChangeset, ThreadRow};
use crate::schema::{memberships, threads};
use crate::{DbConnection, ListKind, Missing, StoreError};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use skein_domain::retention::Liveness;
use skein_domain::{
    AssistantId, DomainError, Limits, OrganizationId, Thread, ThreadId, ThreadState, UserId,
};

type Db = <DbConnection as Connection>::Backend;

/// Whose threads an operation may see: one user in one organization, and
/// (for requests) only threads that have not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The organization.
    pub organization_id: OrganizationId,
    /// The user (threads are private to their creator).
    pub user_id: UserId,
    /// Expired threads are invisible when set: they answer 404 at once,
    /// before the sweeper purges them.
    pub live: Option<Liveness>,
}

impl Scope {
    /// A scope that sees expired threads too (tools, tests).
    pub fn new(organization_id: OrganizationId, user_id: UserId) -> Self {
        Self {
            organization_id,
            user_id,
            live: None,
        }
    }
}

/// Creation-time order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    /// Oldest first.
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

/// A list request, already validated.
#[derive(Debug, Clone, Default)]
pub struct ThreadQuery {
    /// Page size (1-100).
    pub limit: u32,
    /// Order by creation.
    pub order: ListOrder,
    /// The page after this thread, in `order`.
    pub after: Option<String>,
    /// The row id of the thread to continue after, instead of `after`
    /// (for walks that must go on when that thread is purged meanwhile,
    /// such as an export; never from a client).
    pub after_pk: Option<i64>,
    /// The page before this thread, in `order`.
    pub before: Option<String>,
    /// Only threads bound to this assistant.
    pub assistant_id: Option<String>,
    /// Only threads with this visibility.
    pub visible_in_ui: Option<bool>,
    /// Only pinned (true) or unpinned (false) threads.
    pub is_pinned: Option<bool>,
    /// Include soft-deleted threads.
    pub include_deleted: bool,
    /// Count all matching threads.
    pub include_total: bool,
    /// Only threads with this `workflow_id`.
    pub workflow_id: Option<String>,
    /// Only threads whose title contains this text (any case).
    pub search: Option<String>,
    /// Only threads whose metadata holds each of these keys with this
    /// string value (all of them).
    pub metadata: Vec<(String, String)>,
    /// Only threads in this lifecycle state.
    pub state: Option<ThreadState>,
    /// Only threads created after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only threads created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only threads updated after this time.
    pub updated_after: Option<DateTime<Utc>>,
}

/// One page of threads.
#[derive(Debug, Clone)]
pub struct ThreadPage {
    /// The threads, in the requested order.
    pub threads: Vec<Thread>,
    /// More threads exist beyond this page in the direction walked.
    pub has_more: bool,
    /// The number of matching threads, when asked for.
    pub total: Option<i64>,
}

/// The SQL form of [`Liveness::admits`] (the domain's rule): created after
/// the age cut-off, and archived or active after the inactivity cut-off.
/// The one place this condition is written in SQL.
macro_rules! admitted_by {
    ($live:expr) => {
        threads::created_at
            .gt(to_naive($live.created_after))
            .and(
                threads::state
                    .eq(ThreadState::Archived.as_str())
                    .or(threads::updated_at.gt(to_naive($live.active_after))),
            )
            .and(
                threads::expected_deletion_at
                    .is_null()
                    .or(threads::expected_deletion_at.gt(to_naive($live.now)))
                    .assume_not_null(),
            )
    };
}

fn visible_to<'a>(scope: &'a Scope, include_deleted: bool) -> threads::BoxedQuery<'a, Db> {
    owned_by(
        &scope.user_id,
        std::slice::from_ref(&scope.organization_id),
        scope.live,
        include_deleted,
    )
}

/// The user's threads in any of `orgs` (live ones only when `live` is set;
/// the same rule as [`Liveness::admits`], in SQL).
fn owned_by<'a>(
    user: &'a UserId,
    orgs: &'a [OrganizationId],
    live: Option<Liveness>,
    include_deleted: bool,
) -> threads::BoxedQuery<'a, Db> {
    let mut q = threads::table
        .filter(threads::user_id.eq(user.as_str()))
        .into_boxed();
    // One organization (every API key, most tokens) is a plain equality, so
    // PostgreSQL walks the (organization_id, user_id, pk) index in order;
    // with `= ANY(...)` it sorts the user's whole set for page one.
    q = match orgs {
        [one] => q.filter(threads::organization_id.eq(one.as_str())),
        many => q.filter(threads::organization_id.eq_any(many.iter().map(OrganizationId::as_str))),
    };
    if let Some(l) = live {
        q = q.filter(admitted_by!(l));
    }
    if !include_deleted {
        q = q.filter(threads::deleted_at.is_null());
    }
    // A thread whose first response has not been saved yet is not listed.
    q.filter(threads::provisional.eq(false))
}

/// A rarest trigram held by more titles than this is not worth looking up:
/// the search walks the caller's threads newest first instead, where a text
/// that common fills a page at once.
const GRAM_CANDIDATES_MAX: f64 = 20_000.0;

/// How a title search runs: always a `LIKE` on the folded title (what
/// decides), and when it pays, only over the threads that hold the rarest
/// trigram of the text (`title_grams`, kept by triggers).
#[derive(Debug, Clone)]
struct TitleSearch {
    /// `%text%`, with `%`, `_` and `\` escaped.
    pattern: String,
    /// The trigram whose threads are the candidates.
    gram: Option<String>,
}

impl TitleSearch {
    /// Chooses the plan for `text`: the trigram of its folded form held by
    /// the fewest titles (SQLite: exact counts in `title_gram_counts`;
    /// PostgreSQL: the column's statistics, where a trigram that is not
    /// among the most common values is rare), unless even that one is
    /// common or the text is shorter than a trigram.
    fn plan(conn: &mut DbConnection, text: &str) -> Result<Self, StoreError> {
        let folded = skein_domain::fold_case(text);
        let mut pattern = String::with_capacity(folded.len() + 2);
        pattern.push('%');
        for c in folded.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        let chars: Vec<char> = folded.chars().collect();
        let mut grams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
        grams.sort();
        grams.dedup();
        if grams.is_empty() {
            return Ok(Self {
                pattern,
                gram: None,
            });
        }
        let estimate = gram_estimates(conn, &grams)?;
        let rarest = grams
            .into_iter()
            .map(|g| (estimate(&g), g))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Self {
            pattern,
            gram: rarest
                .filter(|(n, _)| *n <= GRAM_CANDIDATES_MAX)
                .map(|(_, g)| g),
        })
    }
}

/// Candidate threads read per step of a title search.
const CANDIDATE_BATCH: i64 = 256;

/// A page of a title search driven by its rarest trigram: the threads that
/// hold `gram`, in the page's reading order from its bound, a batch at a
/// time, each batch checked by `matching` (the caller's filters and the
/// `LIKE`), until the page (plus one) is full or the candidates run out.
/// Neither backend's planner has to guess how rare the text is: the cost
/// follows the candidates read, at most [`GRAM_CANDIDATES_MAX`].
fn candidates_page<F>(
    conn: &mut DbConnection,
    gram: &str,
    keyset: Keyset,
    mut matching: F,
) -> Result<Vec<ThreadRow>, StoreError>
where
    F: FnMut(&mut DbConnection, &[i64]) -> Result<Vec<ThreadRow>, StoreError>,
{
    use crate::keyset::Bound;
    use crate::schema::title_grams;
    let ascending = keyset.reads_ascending();
    let fetch = usize::try_from(keyset.fetch()).unwrap_or(usize::MAX);
    let mut bound = keyset.bound();
    let mut rows: Vec<ThreadRow> = Vec::new();
    loop {
        let mut q = title_grams::table
            .filter(title_grams::gram.eq(gram))
            .select(title_grams::thread_pk)
            .into_boxed();
        q = match bound {
            Bound::None => q,
            Bound::Above(k) => q.filter(title_grams::thread_pk.gt(k)),
            Bound::Below(k) => q.filter(title_grams::thread_pk.lt(k)),
        };
        q = if ascending {
            q.order(title_grams::thread_pk.asc())
        } else {
            q.order(title_grams::thread_pk.desc())
        };
        let batch: Vec<i64> = q.limit(CANDIDATE_BATCH).load(conn)?;
        let Some(&last) = batch.last() else { break };
        let mut found = matching(conn, &batch)?;
        found.sort_by_key(|r| if ascending { r.pk } else { -r.pk });
        rows.extend(found);
        if rows.len() >= fetch || i64::try_from(batch.len()).unwrap_or(0) < CANDIDATE_BATCH {
            break;
        }
        bound = if ascending {
            Bound::Above(last)
        } else {
            Bound::Below(last)
        };
    }
    rows.truncate(fetch);
    Ok(rows)
}

/// How many titles hold each of `grams` (estimates on PostgreSQL).
fn gram_estimates(
    conn: &mut DbConnection,
    grams: &[String],
) -> Result<impl Fn(&str) -> f64, StoreError> {
    use crate::schema::title_gram_counts;
    type Counts = std::collections::HashMap<String, f64>;
    // The counts known, and the estimate for any other trigram.
    let (counts, others): (Counts, f64) = match conn {
        DbConnection::Sqlite(_) => (
            title_gram_counts::table
                .filter(title_gram_counts::gram.eq_any(grams))
                .select((title_gram_counts::gram, title_gram_counts::n))
                .load::<(String, i64)>(conn)?
                .into_iter()
                // Counts are hints for the plan (the LIKE decides), far
                // below f64's exact range.
                .map(|(g, n)| (g, n as f64))
                .collect(),
            // Exact: a trigram without a count is in no title.
            0.0,
        ),
        DbConnection::Postgresql(c) => match common_grams(c)? {
            Some(common) => common,
            None => (counted_grams(c, grams)?, 0.0),
        },
    };
    Ok(move |g: &str| counts.get(g).copied().unwrap_or(others))
}

/// Titles per common trigram, and the estimate for every other trigram.
type CommonGrams = (std::collections::HashMap<String, f64>, f64);

/// PostgreSQL: the most common trigrams of `title_grams` with about how
/// many titles hold each (the column's statistics times the table's rows),
/// and the average for every other trigram (PostgreSQL's own estimate),
/// read at most once a minute per process; `None` while the table has no
/// statistics yet (before its first `ANALYZE`).
fn common_grams(conn: &mut diesel::pg::PgConnection) -> Result<Option<CommonGrams>, StoreError> {
    use diesel::sql_types::{Array, Double, Float4, Nullable, Text};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    type Common = CommonGrams;
    static CACHE: Mutex<Option<(Instant, Option<Common>)>> = Mutex::new(None);
    if let Ok(guard) = CACHE.lock() {
        if let Some((at, common)) = guard.as_ref() {
            if at.elapsed() < Duration::from_secs(60) {
                return Ok(common.clone());
            }
        }
    }
    #[derive(QueryableByName)]
    struct Stats {
        #[diesel(sql_type = Nullable<Array<Text>>)]
        vals: Option<Vec<String>>,
        #[diesel(sql_type = Nullable<Array<Float4>>)]
        freqs: Option<Vec<f32>>,
        #[diesel(sql_type = Nullable<Double>)]
        distinct: Option<f64>,
        #[diesel(sql_type = Double)]
        rows: f64,
    }
    let stats: Option<Stats> = diesel::sql_query(
        "SELECT s.most_common_vals::text::text[] AS vals, s.most_common_freqs AS freqs, \
         s.n_distinct::float8 AS distinct, greatest(c.reltuples, 0)::float8 AS rows \
         FROM pg_class c LEFT JOIN pg_stats s ON s.tablename = 'title_grams' \
         AND s.attname = 'gram' AND s.schemaname = current_schema() \
         WHERE c.oid = 'title_grams'::regclass",
    )
    .get_result(conn)
    .optional()?;
    let common = stats.and_then(|s| match (s.vals, s.freqs, s.distinct) {
        (Some(vals), Some(freqs), Some(distinct)) => {
            let listed: f64 = freqs.iter().map(|f| f64::from(*f)).sum();
            // A negative n_distinct is a fraction of the rows.
            let distinct = if distinct < 0.0 {
                -distinct * s.rows
            } else {
                distinct
            };
            let rest = (distinct - vals.len() as f64).max(1.0);
            let others = (1.0 - listed).max(0.0) * s.rows / rest;
            let map = vals
                .into_iter()
                .zip(freqs)
                .map(|(g, f)| (g, f64::from(f) * s.rows))
                .collect();
            Some((map, others))
        }
        _ => None,
    });
    if let Ok(mut guard) = CACHE.lock() {
        *guard = Some((Instant::now(), common.clone()));
    }
    Ok(common)
}

/// PostgreSQL without statistics: how many titles hold each of `grams`,
/// counted up to just past [`GRAM_CANDIDATES_MAX`] (what the plan needs to
/// know), in one statement.
fn counted_grams(
    conn: &mut diesel::pg::PgConnection,
    grams: &[String],
) -> Result<std::collections::HashMap<String, f64>, StoreError> {
    use diesel::sql_types::{Array, Double, Text};
    #[derive(QueryableByName)]
    struct Counted {
        #[diesel(sql_type = Text)]
        gram: String,
        #[diesel(sql_type = Double)]
        n: f64,
    }
    let rows: Vec<Counted> = diesel::sql_query(
        "SELECT g.gram, (SELECT count(*) FROM (SELECT 1 FROM title_grams t \
         WHERE t.gram = g.gram LIMIT 20001) AS held)::float8 AS n \
         FROM unnest($1::text[]) AS g(gram)",
    )
    .bind::<Array<Text>, _>(grams)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.gram, r.n)).collect())
}

/// Only threads whose `metadata[key]` is the string `value`, in the
/// backend's JSON functions (the column is JSON text on both).
fn holding_metadata<'a>(
    q: threads::BoxedQuery<'a, Db>,
    backend: crate::Backend,
    key: &str,
    value: &str,
) -> threads::BoxedQuery<'a, Db> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Text};
    let (head, middle, tail) = match backend {
        crate::Backend::Sqlite => (
            "EXISTS (SELECT 1 FROM json_each(threads.metadata) AS m WHERE m.key = ",
            " AND m.type = 'text' AND m.value = ",
            ")",
        ),
        crate::Backend::Postgres => (
            "(CAST(threads.metadata AS jsonb) -> ",
            ") = to_jsonb(CAST(",
            " AS text))",
        ),
    };
    q.filter(
        sql::<Bool>(head)
            .bind::<Text, _>(key.to_string())
            .sql(middle)
            .bind::<Text, _>(value.to_string())
            .sql(tail),
    )
}

fn filtered<'a>(
    user: &'a UserId,
    orgs: &'a [OrganizationId],
    live: Option<Liveness>,
    query: &'a ThreadQuery,
    search: Option<TitleSearch>,
    backend: crate::Backend,
) -> threads::BoxedQuery<'a, Db> {
    let mut q = owned_by(user, orgs, live, query.include_deleted);
    if let Some(w) = &query.workflow_id {
        q = q.filter(threads::workflow_id.eq(w.as_str()));
    }
    for (key, value) in &query.metadata {
        q = holding_metadata(q, backend, key, value);
    }
    if let Some(search) = search {
        if let Some(gram) = search.gram {
            q = q.filter(
                threads::pk.eq_any(
                    crate::schema::title_grams::table
                        .filter(crate::schema::title_grams::gram.eq(gram))
                        .select(crate::schema::title_grams::thread_pk),
                ),
            );
        }
        q = q.filter(threads::title_folded.like(search.pattern).escape('\\'));
    }
    if let Some(a) = &query.assistant_id {
        q = q.filter(threads::assistant_id.eq(a.as_str()));
    }
    if let Some(state) = query.state {
        q = q.filter(threads::state.eq(state.as_str()));
    }
    if let Some(t) = query.created_after {
        q = q.filter(threads::created_at.gt(to_naive(t)));
    }
    if let Some(t) = query.created_before {
        q = q.filter(threads::created_at.lt(to_naive(t)));
    }
    if let Some(t) = query.updated_after {
        q = q.filter(threads::updated_at.gt(to_naive(t)));
    }
    if let Some(v) = query.visible_in_ui {
        q = q.filter(threads::visible_in_ui.eq(v));
    }
    match query.is_pinned {
        Some(true) => q = q.filter(threads::pinned_at.is_not_null()),
        Some(false) => q = q.filter(threads::pinned_at.is_null()),
        None => {}
    }
    q
}

/// Stores a new thread. A taken id gives `StoreError::Conflict`.
pub fn insert(conn: &mut DbConnection, thread: &Thread) -> Result<(), StoreError> {
    write_transaction(conn, |conn| insert_row(conn, thread))
}

/// [`insert`] inside the caller's write transaction.
pub(crate) fn insert_row(conn: &mut DbConnection, thread: &Thread) -> Result<(), StoreError> {
    diesel::insert_into(threads::table)
        .values(NewThreadRow::from(thread))
        .execute(conn)?;
    Ok(())
}

/// One indexed lookup: the thread if it exists, is not deleted, belongs to
/// the scope's user and (for requests) has not expired. Someone else's
/// thread is `None`, exactly like a missing one.
pub fn find(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
) -> Result<Option<Thread>, StoreError> {
    match load_live(conn, scope, id, false) {
        Ok((_, thread)) => Ok(Some(thread)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where a thread lives in storage: its row id and its message sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThreadKey {
    pub(crate) pk: i64,
    pub(crate) last_seq: i64,
    /// Created by a first response whose turn is not saved yet.
    pub(crate) provisional: bool,
    /// The highest sequence number it shows from other threads' rows (a
    /// fork), if any: see [`crate::forks`].
    pub(crate) inherited_upto: Option<i64>,
}

/// The one lookup of "the caller's live thread `id`" behind every
/// single-thread read and write: one indexed read by `(organization_id,
/// id)`, then the owner and the domain's liveness rule
/// ([`Liveness::admits`]; lists apply the same rule in SQL, in
/// [`owned_by`]). With `lock`, inside a write transaction, the row is
/// locked on PostgreSQL (SQLite already holds the write lock from `BEGIN
/// IMMEDIATE`). Anything else is `NotFound` with the id.
fn load_live(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    lock: bool,
) -> Result<(ThreadKey, Thread), StoreError> {
    // The row (the selection names its backend: written once per use).
    macro_rules! by_id {
        () => {
            threads::table
                .filter(threads::organization_id.eq(scope.organization_id.as_str()))
                .filter(threads::id.eq(id))
                .filter(threads::deleted_at.is_null())
                .select(ThreadRow::as_select())
        };
    }
    // On the backend's own connection (this read is on almost every
    // request's path, see `on_backend`).
    let row = match conn {
        DbConnection::Postgresql(c) if lock => by_id!().for_update().first(c).optional()?,
        other => on_backend!(other, c => by_id!().first(c).optional()?),
    };
    let missing = || StoreError::NotFound(Missing::Thread(id.to_string()));
    let row = row
        .filter(|r| r.user_id == scope.user_id.as_str())
        .ok_or_else(missing)?;
    let key = ThreadKey {
        pk: row.pk,
        last_seq: row.last_seq,
        provisional: row.provisional,
        inherited_upto: row.inherited_upto,
    };
    let thread = Thread::try_from(row)?;
    if scope.live.is_none_or(|l| l.admits(&thread)) {
        Ok((key, thread))
    } else {
        Err(missing())
    }
}

/// Loads the caller's live thread for a read (no lock).
pub(crate) fn load_live_for_read(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
) -> Result<(ThreadKey, Thread), StoreError> {
    load_live(conn, scope, id, false)
}

/// Loads the caller's thread inside a write transaction, locking its row.
pub(crate) fn load_locked(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
) -> Result<(ThreadKey, Thread), StoreError> {
    load_live(conn, scope, id, true)
}

/// Stores a thread unless its id is taken in its organization (by anyone,
/// live or deleted); returns whether it was stored. A concurrent insert of
/// the same id makes this wait for that transaction (PostgreSQL) and then
/// store nothing, instead of failing: the caller then reads the winner's row.
pub(crate) fn insert_if_absent(
    conn: &mut DbConnection,
    thread: &Thread,
) -> Result<bool, StoreError> {
    let row = NewThreadRow::from(thread);
    let n = on_backend!(conn, c => diesel::insert_into(threads::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c)?);
    Ok(n == 1)
}

pub(crate) fn save(conn: &mut DbConnection, pk: i64, thread: &Thread) -> Result<(), StoreError> {
    prepared::update(
        threads::table,
        threads::pk.eq(pk),
        ThreadChangeset::from(thread),
    )
    .execute(conn)?;
    Ok(())
}

/// Reads, changes and writes one thread atomically. `change` sees the current
/// thread and returns the new one or a rule error (then nothing is written).
pub fn update<F>(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    change: F,
) -> Result<Thread, StoreError>
where
    F: FnOnce(&Thread) -> Result<Thread, DomainError>,
{
    write_transaction(conn, |conn| {
        let (key, current) = load_locked(conn, scope, id)?;
        let next = change(&current)?;
        save(conn, key.pk, &next)?;
        Ok(next)
    })
}

/// Pins a thread, enforcing the per-user pin limit atomically: on
/// PostgreSQL the user's membership row is locked first so that two
/// concurrent pins cannot both see room for one more.
pub fn pin(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Thread, StoreError> {
    write_transaction(conn, |conn| {
        if let DbConnection::Postgresql(c) = conn {
            memberships::table
                .filter(memberships::organization_id.eq(scope.organization_id.as_str()))
                .filter(memberships::user_id.eq(scope.user_id.as_str()))
                .select(memberships::user_id)
                .for_update()
                .first::<String>(c)
                .optional()?;
        }
        let (key, current) = load_locked(conn, scope, id)?;
        if current.is_pinned() {
            return Ok(current);
        }
        let pinned: i64 = visible_to(scope, false)
            .filter(threads::pinned_at.is_not_null())
            .count()
            .get_result(conn)?;
        let next = current.pin(u32::try_from(pinned).unwrap_or(u32::MAX), limits, now)?;
        save(conn, key.pk, &next)?;
        Ok(next)
    })
}

/// Removes a thread row that has no messages (a first turn that failed).
pub(crate) fn remove_empty(conn: &mut DbConnection, pk: i64) -> Result<(), StoreError> {
    diesel::delete(
        threads::table
            .filter(threads::pk.eq(pk))
            .filter(threads::message_count.eq(0)),
    )
    .execute(conn)?;
    Ok(())
}

/// Soft-deletes one thread: it disappears from every read at once.
pub fn soft_delete(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    soft_delete_if(conn, scope, id, now, |_| Ok(()))
}

/// [`soft_delete`] if `check` accepts the thread as it is (read in the
/// same transaction: a conditional delete).
pub fn soft_delete_if<C>(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    now: DateTime<Utc>,
    check: C,
) -> Result<(), StoreError>
where
    C: FnOnce(&Thread) -> Result<(), DomainError>,
{
    write_transaction(conn, |conn| {
        let (key, current) = load_locked(conn, scope, id)?;
        check(&current)?;
        prepared::update(
            threads::table,
            threads::pk.eq(key.pk),
            threads::deleted_at.eq(to_naive(now)),
        )
        .execute(conn)?;
        Ok(())
    })
}

/// Runs `write` on the row id of the caller's live thread `id`, in a write
/// transaction that holds the row.
fn on_locked_row<F>(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    write: F,
) -> Result<(), StoreError>
where
    F: FnOnce(&mut DbConnection, i64) -> Result<usize, diesel::result::Error>,
{
    write_transaction(conn, |conn| {
        let (key, _) = load_locked(conn, scope, id)?;
        write(conn, key.pk)?;
        Ok(())
    })
}

/// Soft-deletes every live thread of the scope's user in one set-based
/// statement (no id list is bound, however many threads there are); returns
/// how many.
pub fn soft_delete_all(
    conn: &mut DbConnection,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let owned = threads::table
        .filter(threads::user_id.eq(scope.user_id.as_str()))
        .filter(threads::organization_id.eq(scope.organization_id.as_str()))
        .filter(threads::deleted_at.is_null());
    let deleted_at = threads::deleted_at.eq(to_naive(now));
    // Only the threads the caller can see (expired ones are already gone).
    write_transaction(conn, |conn| {
        Ok(match scope.live {
            Some(l) => diesel::update(owned.filter(admitted_by!(l)))
                .set(deleted_at)
                .execute(conn)?,
            None => diesel::update(owned).set(deleted_at).execute(conn)?,
        })
    })
}

/// The organizations among `orgs` where `user` has a live thread `id`
/// (thread ids are unique per organization, so there may be several).
pub fn organizations_holding(
    conn: &mut DbConnection,
    user: &UserId,
    orgs: &[OrganizationId],
    live: Option<Liveness>,
    id: &str,
) -> Result<Vec<OrganizationId>, StoreError> {
    owned_by(user, orgs, live, false)
        .filter(threads::id.eq(id))
        .select(threads::organization_id)
        .load::<String>(conn)?
        .into_iter()
        .map(|o| OrganizationId::parse(o).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

/// Where the caller's live thread is stored, for reads of its messages.
pub(crate) fn visible_key(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
) -> Result<ThreadKey, StoreError> {
    Ok(load_live(conn, scope, id, false)?.0)
}

fn cursor_pk(
    conn: &mut DbConnection,
    user: &UserId,
    orgs: &[OrganizationId],
    id: &str,
) -> Result<i64, StoreError> {
    // Deleted (and expired) threads stay valid cursors so that a walk
    // survives deletes.
    let found = match orgs {
        [org] => threads::table
            .filter(threads::organization_id.eq(org.as_str()))
            .filter(threads::id.eq(id))
            .filter(threads::user_id.eq(user.as_str()))
            .select(threads::pk)
            .first::<i64>(conn)
            .optional()?,
        _ => owned_by(user, orgs, None, true)
            .filter(threads::id.eq(id))
            .select(threads::pk)
            .first::<i64>(conn)
            .optional()?,
    };
    found.ok_or_else(|| StoreError::InvalidCursor {
        list: ListKind::Threads,
        id: id.to_string(),
    })
}

/// One page of the scope's threads in creation order, by keyset pagination
/// on `(organization_id, user_id, pk)`: page 1,000 costs what page 1 costs,
/// and no COUNT runs unless `include_total` asks for it.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    query: &ThreadQuery,
) -> Result<ThreadPage, StoreError> {
    list_across(
        conn,
        &scope.user_id,
        std::slice::from_ref(&scope.organization_id),
        scope.live,
        query,
    )
}

/// Like [`list`] over several organizations at once (a user token without
/// `organization_id` lists the user's threads in all its organizations).
pub fn list_across(
    conn: &mut DbConnection,
    user: &UserId,
    orgs: &[OrganizationId],
    live: Option<Liveness>,
    query: &ThreadQuery,
) -> Result<ThreadPage, StoreError> {
    let after = match query.after_pk {
        Some(pk) => Some(pk),
        None => query
            .after
            .as_deref()
            .map(|id| cursor_pk(conn, user, orgs, id))
            .transpose()?,
    };
    let before = query
        .before
        .as_deref()
        .map(|id| cursor_pk(conn, user, orgs, id))
        .transpose()?;
    let keyset = Keyset {
        after,
        before,
        order: query.order,
        limit: query.limit,
    };
    let plain = query.assistant_id.is_none()
        && query.visible_in_ui.is_none()
        && query.is_pinned.is_none()
        && query.workflow_id.is_none()
        && query.search.is_none()
        && query.metadata.is_empty()
        && query.state.is_none()
        && query.created_after.is_none()
        && query.created_before.is_none()
        && query.updated_after.is_none()
        && !query.include_deleted;
    let backend = match conn {
        DbConnection::Sqlite(_) => crate::Backend::Sqlite,
        DbConnection::Postgresql(_) => crate::Backend::Postgres,
    };
    let search = query
        .search
        .as_deref()
        .map(|text| TitleSearch::plan(conn, text))
        .transpose()?;
    let rows: Vec<ThreadRow> = match (orgs, live) {
        // The usual page (one organization, live threads, no filter): a
        // statement of one shape per order, prepared once per connection
        // and run on the backend's own one (see `on_backend`).
        ([org], Some(l)) if plain => with_keyset!(
            threads::table
                .filter(threads::organization_id.eq(org.as_str()))
                .filter(threads::user_id.eq(user.as_str()))
                .filter(threads::deleted_at.is_null())
                .filter(threads::provisional.eq(false))
                .filter(admitted_by!(l)),
            threads::pk,
            keyset,
            |q| on_backend!(conn, c => crate::keyset::load_rows(q.select(ThreadRow::as_select()), c, keyset.fetch())?)
        ),
        _ => match search.as_ref().and_then(|s| s.gram.clone()) {
            Some(gram) => {
                let recheck = search.clone().map(|s| TitleSearch { gram: None, ..s });
                let matching =
                    |conn: &mut DbConnection, pks: &[i64]| -> Result<Vec<ThreadRow>, StoreError> {
                        Ok(filtered(user, orgs, live, query, recheck.clone(), backend)
                            .filter(threads::pk.eq_any(pks))
                            .select(ThreadRow::as_select())
                            .load(conn)?)
                    };
                candidates_page(conn, &gram, keyset, matching)?
            }
            None => with_keyset!(
                filtered(user, orgs, live, query, search.clone(), backend),
                threads::pk,
                keyset,
                |q| q.select(ThreadRow::as_select()).load(conn)?
            ),
        },
    };
    let (rows, has_more) = keyset.finish(rows);
    let total = if query.include_total {
        Some(
            filtered(user, orgs, live, query, search, backend)
                .count()
                .get_result::<i64>(conn)?,
        )
    } else {
        None
    };
    Ok(ThreadPage {
        threads: rows
            .into_iter()
            .map(Thread::try_from)
            .collect::<Result<_, _>>()?,
        has_more,
        total,
    })
}

/// Checks that the assistant exists and is the scope's: created by its user
/// in its organization (assistants are as private as threads).
pub fn check_assistant(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &AssistantId,
) -> Result<(), StoreError> {
    if crate::assistants::exists(conn, scope, id)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(Missing::Assistant(id.to_string())))
    }
}

/// Lookup used by tests and tools: the thread by id regardless of owner.
pub fn find_any(
    conn: &mut DbConnection,
    org: &OrganizationId,
    id: &ThreadId,
) -> Result<Option<Thread>, StoreError> {
    threads::table
        .filter(threads::organization_id.eq(org.as_str()))
        .filter(threads::id.eq(id.as_str()))
        .select(ThreadRow::as_select())
        .first(conn)
        .optional()?
        .map(Thread::try_from)
        .transpose()
}

/// The caller's settings for one of its threads (contract 9.4): a JSON
/// object, empty when nothing was set.
pub fn user_state(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    let (key, _) = load_live(conn, scope, id, false)?;
    stored_user_state(conn, key.pk)
}

fn stored_user_state(
    conn: &mut DbConnection,
    pk: i64,
) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    let raw: Option<String> = threads::table
        .filter(threads::pk.eq(pk))
        .select(threads::user_state)
        .first(conn)?;
    match raw {
        None => Ok(serde_json::Map::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("thread user state: {e}"))),
    }
}

/// Merges the patch that `make_patch` builds from the stored settings into
/// them, under the thread's row lock (two patches never lose each other's
/// keys): a key set to `null` is removed, any other value replaces the
/// stored one, keys not in the patch stay. Returns the settings as saved.
/// The thread's `updated_at` does not move (settings are not content).
pub fn patch_user_state<E, F>(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    make_patch: F,
) -> Result<serde_json::Map<String, serde_json::Value>, E>
where
    E: From<StoreError>,
    F: FnOnce(
        &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, E>,
{
    write_transaction(conn, |conn| {
        let (key, _) = load_locked(conn, scope, id)?;
        let mut state = stored_user_state(conn, key.pk)?;
        let patch = make_patch(&state)?;
        for (k, v) in patch {
            if v.is_null() {
                state.remove(&k);
            } else {
                state.insert(k, v);
            }
        }
        let text =
            (!state.is_empty()).then(|| serde_json::Value::Object(state.clone()).to_string());
        diesel::update(threads::table.filter(threads::pk.eq(key.pk)))
            .set(threads::user_state.eq(text))
            .execute(conn)
            .map_err(StoreError::from)?;
        Ok(state)
    })
}

/// The caller's live threads with an unread assistant message (contract
/// 9.3), newest first: one read on the partial index `threads_unread`.
pub fn unread_ids(
    conn: &mut DbConnection,
    user: &UserId,
    orgs: &[OrganizationId],
    live: Option<Liveness>,
) -> Result<Vec<String>, StoreError> {
    Ok(owned_by(user, orgs, live, false)
        .filter(threads::unread)
        .order(threads::pk.desc())
        .select(threads::id)
        .load(conn)?)
}

/// Records that the owner read the thread now: `has_unread` turns false
/// until the next assistant message.
pub fn mark_read(
    conn: &mut DbConnection,
    scope: &Scope,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_locked_row(conn, scope, id, |conn, pk| {
        prepared::update(
            threads::table,
            threads::pk.eq(pk),
            (
                threads::unread.eq(false),
                threads::last_read_at.eq(to_naive(now)),
            ),
        )
        .execute(conn)
    })
}

/// Whether a thread holds an assistant message newer than its owner's last
/// read (after a message was removed, the flag is worked out again).
pub(crate) fn recompute_unread(conn: &mut DbConnection, pk: i64) -> Result<(), StoreError> {
    use crate::schema::messages;
    let last_read: Option<chrono::NaiveDateTime> = threads::table
        .filter(threads::pk.eq(pk))
        .select(threads::last_read_at)
        .first(conn)?;
    let mut newer = messages::table
        .filter(messages::thread_pk.eq(pk))
        .filter(messages::role.eq(skein_domain::MessageRole::Assistant.as_str()))
        .filter(messages::kind.eq(crate::rows::MESSAGE_KIND))
        .into_boxed();
    if let Some(at) = last_read {
        newer = newer.filter(messages::created_at.gt(at));
    }
    let unread = newer
        .select(messages::pk)
        .first::<i64>(conn)
        .optional()?
        .is_some();
    diesel::update(threads::table.filter(threads::pk.eq(pk)))
        .set(threads::unread.eq(unread))
        .execute(conn)?;
    Ok(())
}

/// One page of the change feed (contract 9.3).
#[derive(Debug, Clone)]
pub struct ChangePage {
    /// The changed threads (deleted ones carry `deleted_at`), oldest change
    /// first.
    pub threads: Vec<Thread>,
    /// Where the next page starts (microseconds since the epoch).
    pub next_since_us: i64,
    /// More changes were already there beyond this page.
    pub has_more: bool,
}

/// The feed's horizon for `user`: an instant such that every write of the
/// user's threads stamped before it has committed, and every write not yet
/// committed will be stamped at or after it. PostgreSQL: the user's lock,
/// taken exclusively for an instant (writers hold it shared from their
/// stamp to their commit; `skein_feed_horizon` in migration 000009, which
/// waits at most 250 ms), then the database's clock.
/// SQLite: a write turn (writers are serial), then the next stamp a write
/// would get. `None` when
/// the writers in flight did not finish within 250 ms.
fn horizon(conn: &mut DbConnection, user: &UserId) -> Result<Option<i64>, StoreError> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Now {
        #[diesel(sql_type = BigInt)]
        us: i64,
    }
    #[derive(QueryableByName)]
    struct Horizon {
        #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
        us: Option<i64>,
    }
    match conn {
        DbConnection::Postgresql(_) => {
            let horizon = write_transaction(conn, |conn| -> Result<Horizon, StoreError> {
                Ok(diesel::sql_query("SELECT skein_feed_horizon($1) AS us")
                    .bind::<Text, _>(user.as_str())
                    .get_result(conn)?)
            })?;
            Ok(horizon.us)
        }
        // The next stamp the user's threads can get (see the triggers): the
        // clock, or one more than their newest stamp, whichever is later.
        DbConnection::Sqlite(_) => write_transaction(conn, |conn| {
            let now: Now = diesel::sql_query(
                "SELECT max(CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER), \
                 coalesce((SELECT max(changed_us) FROM threads WHERE user_id = ?), 0) + 1) AS us",
            )
            .bind::<Text, _>(user.as_str())
            .get_result(conn)?;
            Ok(Some(now.us))
        }),
    }
}

/// The user's threads (in `orgs`) created, updated or deleted at or after
/// `since_us`, oldest change first, at most `limit` (more only to finish a
/// group of changes stamped in the same microsecond). Walking with
/// `since_us = next_since_us` sees every change once, also under
/// concurrent writers: only changes before the [`horizon`] are read, and
/// no write can still land before it.
pub fn changes(
    conn: &mut DbConnection,
    user: &UserId,
    orgs: &[OrganizationId],
    live: Option<Liveness>,
    since_us: i64,
    limit: u32,
) -> Result<ChangePage, StoreError> {
    let Some(horizon) = horizon(conn, user)? else {
        return Ok(ChangePage {
            threads: Vec::new(),
            next_since_us: since_us,
            has_more: false,
        });
    };
    let changed = |from: i64| {
        owned_by(user, orgs, live, true)
            .filter(threads::changed_us.ge(from))
            .filter(threads::changed_us.lt(horizon))
    };
    let limit = usize::try_from(limit.max(1)).unwrap_or(100);
    let mut rows: Vec<(ThreadRow, i64)> = changed(since_us)
        .order((threads::changed_us.asc(), threads::pk.asc()))
        .limit(i64::try_from(limit).unwrap_or(100) + 1)
        .select((ThreadRow::as_select(), threads::changed_us))
        .load(conn)?;
    let has_more = rows.len() > limit;
    let next_since_us = if has_more {
        let next = rows[limit].1;
        rows.truncate(limit);
        let (last_pk, last_us) = rows
            .last()
            .map(|(r, us)| (r.pk, *us))
            .unwrap_or((0, since_us));
        if next == last_us {
            // The page ends inside a group of changes stamped in the same
            // microsecond: finish the group, so the next page can start
            // after it.
            let rest: Vec<(ThreadRow, i64)> = changed(last_us)
                .filter(threads::changed_us.eq(last_us))
                .filter(threads::pk.gt(last_pk))
                .order(threads::pk.asc())
                .select((ThreadRow::as_select(), threads::changed_us))
                .load(conn)?;
            rows.extend(rest);
        }
        last_us + 1
    } else {
        horizon.max(since_us)
    };
    Ok(ChangePage {
        threads: rows
            .into_iter()
            .map(|(row, _)| Thread::try_from(row))
            .collect::<Result<_, _>>()?,
        next_since_us,
        has_more,
    })
}
