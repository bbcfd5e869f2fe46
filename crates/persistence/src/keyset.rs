//! Keyset pagination over an integer key (`threads.pk`, `messages.seq`):
//! the page after or before a cursor, in either order, without OFFSET, in
//! six statement shapes.

use crate::ListOrder;

/// One page request, with the cursors already resolved to keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyset {
    /// Key of the `after` cursor.
    pub(crate) after: Option<i64>,
    /// Key of the `before` cursor.
    pub(crate) before: Option<i64>,
    /// The order the caller asked for.
    pub(crate) order: ListOrder,
    /// Page size.
    pub(crate) limit: u32,
}

impl Keyset {
    /// Walking backwards (`before` alone) reads in the opposite order and
    /// flips the page afterwards.
    pub(crate) fn backwards(&self) -> bool {
        self.after.is_none() && self.before.is_some()
    }

    /// The order the query reads in.
    pub(crate) fn reads_ascending(&self) -> bool {
        (self.order == ListOrder::Asc) != self.backwards()
    }

    /// Rows to fetch: one more than the page, to know whether more exist.
    pub(crate) fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The page in the requested order, and whether more rows exist beyond it.
    pub(crate) fn finish<T>(&self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let has_more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        if self.backwards() {
            rows.reverse();
        }
        (rows, has_more)
    }
}

impl Keyset {
    /// The bound the page starts from: keys above it (`Above`) or below it
    /// (`Below`) in storage order, or no bound.
    pub(crate) fn bound(&self) -> Bound {
        match (self.order, self.after, self.before) {
            (ListOrder::Asc, Some(a), _) => Bound::Above(a),
            (ListOrder::Desc, Some(a), _) => Bound::Below(a),
            (ListOrder::Asc, None, Some(b)) => Bound::Below(b),
            (ListOrder::Desc, None, Some(b)) => Bound::Above(b),
            (_, None, None) => Bound::None,
        }
    }
}

/// diesel's `load` into a vector made for `rows` rows from the start: `load`
/// grows its vector from empty, four reallocations for a page of 21 thread
/// rows, each above jemalloc's per-thread cache and so taken under its one
/// arena's lock (a profile of the thread list put 2% of its CPU there).
pub(crate) fn load_rows<'q, Q, U, C>(
    query: Q,
    conn: &mut C,
    rows: i64,
) -> diesel::QueryResult<Vec<U>>
where
    C: diesel::connection::LoadConnection,
    Q: diesel::query_dsl::LoadQuery<'q, C, U, diesel::connection::DefaultLoadingMode>,
    U: 'static,
    Q: 'q,
{
    let mut out = Vec::with_capacity(usize::try_from(rows).unwrap_or(0).min(1_000));
    for row in
        diesel::RunQueryDsl::load_iter::<U, diesel::connection::DefaultLoadingMode>(query, conn)?
    {
        out.push(row?);
    }
    Ok(out)
}

/// One side of a page's key range (a page has at most one cursor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// The first page: no bound.
    None,
    /// Keys greater than this one.
    Above(i64),
    /// Keys less than this one.
    Below(i64),
}

/// Runs `$load` on `$query` limited to the [`Keyset`]'s page on the integer
/// key `$column`: its one bound, its reading order, one row more than the
/// page. `$load` is expanded once per shape (no bound, above, below, each
/// ascending or descending): six statements, each prepared once per
/// connection, and each a plain one-sided range, which PostgreSQL's generic
/// plans serve from the `(owner, key)` index (a two-sided range with
/// sentinel values made them scan the primary key instead).
macro_rules! with_keyset {
    ($query:expr, $column:expr, $keyset:expr, |$q:ident| $load:expr) => {{
        let ks: $crate::keyset::Keyset = $keyset;
        let fetch = ks.fetch();
        macro_rules! ordered {
            ($bounded:expr) => {
                if ks.reads_ascending() {
                    let $q = $bounded.order($column.asc()).limit(fetch);
                    $load
                } else {
                    let $q = $bounded.order($column.desc()).limit(fetch);
                    $load
                }
            };
        }
        match ks.bound() {
            $crate::keyset::Bound::None => ordered!($query),
            $crate::keyset::Bound::Above(key) => ordered!($query.filter($column.gt(key))),
            $crate::keyset::Bound::Below(key) => ordered!($query.filter($column.lt(key))),
        }
    }};
}
pub(crate) use with_keyset;

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(after: Option<i64>, before: Option<i64>, order: ListOrder) -> Keyset {
        Keyset {
            after,
            before,
            order,
            limit: 2,
        }
    }

    #[test]
    fn before_alone_reads_backwards_and_flips_the_page() {
        let k = ks(None, Some(10), ListOrder::Desc);
        assert!(k.backwards() && k.reads_ascending());
        assert_eq!(k.finish(vec![11, 12, 13]), (vec![12, 11], true));
    }

    #[test]
    fn a_cursor_becomes_one_bound_in_storage_order() {
        assert_eq!(ks(None, None, ListOrder::Desc).bound(), Bound::None);
        assert_eq!(ks(Some(10), None, ListOrder::Asc).bound(), Bound::Above(10));
        assert_eq!(
            ks(Some(10), None, ListOrder::Desc).bound(),
            Bound::Below(10)
        );
        assert_eq!(ks(None, Some(7), ListOrder::Asc).bound(), Bound::Below(7));
        assert_eq!(ks(None, Some(7), ListOrder::Desc).bound(), Bound::Above(7));
    }

    #[test]
    fn after_reads_forwards_in_the_requested_order() {
        let k = ks(Some(10), None, ListOrder::Asc);
        assert!(!k.backwards() && k.reads_ascending());
        assert_eq!(k.finish(vec![11, 12]), (vec![11, 12], false));
        assert!(!ks(Some(10), None, ListOrder::Desc).reads_ascending());
    }
}
