//! Keyset pagination over an integer key (`threads.pk`, `messages.seq`):
//! the page after or before a cursor, in either order, without OFFSET.

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

/// Applies a [`Keyset`] to a boxed query on an integer key column: the
/// cursor bounds, the reading order and the row limit.
macro_rules! apply_keyset {
    ($query:expr, $column:expr, $keyset:expr) => {{
        let ks: $crate::keyset::Keyset = $keyset;
        let mut q = $query;
        if let Some(a) = ks.after {
            q = match ks.order {
                $crate::ListOrder::Asc => q.filter($column.gt(a)),
                $crate::ListOrder::Desc => q.filter($column.lt(a)),
            };
        }
        if let Some(b) = ks.before {
            q = match ks.order {
                $crate::ListOrder::Asc => q.filter($column.lt(b)),
                $crate::ListOrder::Desc => q.filter($column.gt(b)),
            };
        }
        q = if ks.reads_ascending() {
            q.order($column.asc())
        } else {
            q.order($column.desc())
        };
        q.limit(ks.fetch())
    }};
}
pub(crate) use apply_keyset;

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
    fn after_reads_forwards_in_the_requested_order() {
        let k = ks(Some(10), None, ListOrder::Asc);
        assert!(!k.backwards() && k.reads_ascending());
        assert_eq!(k.finish(vec![11, 12]), (vec![11, 12], false));
        assert!(!ks(Some(10), None, ListOrder::Desc).reads_ascending());
    }
}
