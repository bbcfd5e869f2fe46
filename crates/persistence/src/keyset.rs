//! Keyset pagination over an integer key (`threads.pk`, `messages.seq`):
//! the page after or before a cursor, in either order, without OFFSET, as a
//! range of keys with two statement shapes.

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
    /// The open range of keys the page reads from: `(low, high)`, both
    /// exclusive. Always a range (the whole key space without a cursor), so
    /// that every page of a list has one of two statement shapes (ascending,
    /// descending), prepared once per connection whatever the cursors.
    pub(crate) fn bounds(&self) -> (i64, i64) {
        let (low, high) = match self.order {
            ListOrder::Asc => (self.after, self.before),
            ListOrder::Desc => (self.before, self.after),
        };
        (low.unwrap_or(i64::MIN), high.unwrap_or(i64::MAX))
    }
}

/// Runs `$load` on `$query` bounded to the [`Keyset`]'s key range on the
/// integer key `$column`, in its reading order, limited to one row more than
/// the page. `$load` is expanded once per order (two statement shapes, no
/// boxed query), with the query bound to `$q`.
macro_rules! with_keyset {
    ($query:expr, $column:expr, $keyset:expr, |$q:ident| $load:expr) => {{
        let ks: $crate::keyset::Keyset = $keyset;
        let (low, high) = ks.bounds();
        let bounded = $query
            .filter($column.gt(low))
            .filter($column.lt(high))
            .limit(ks.fetch());
        if ks.reads_ascending() {
            let $q = bounded.order($column.asc());
            $load
        } else {
            let $q = bounded.order($column.desc());
            $load
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
    fn cursors_become_an_open_range_of_keys() {
        assert_eq!(
            ks(None, None, ListOrder::Desc).bounds(),
            (i64::MIN, i64::MAX)
        );
        assert_eq!(ks(Some(10), None, ListOrder::Asc).bounds(), (10, i64::MAX));
        assert_eq!(ks(Some(10), None, ListOrder::Desc).bounds(), (i64::MIN, 10));
        assert_eq!(ks(None, Some(7), ListOrder::Asc).bounds(), (i64::MIN, 7));
        assert_eq!(ks(None, Some(7), ListOrder::Desc).bounds(), (7, i64::MAX));
    }

    #[test]
    fn after_reads_forwards_in_the_requested_order() {
        let k = ks(Some(10), None, ListOrder::Asc);
        assert!(!k.backwards() && k.reads_ascending());
        assert_eq!(k.finish(vec![11, 12]), (vec![11, 12], false));
        assert!(!ks(Some(10), None, ListOrder::Desc).reads_ascending());
    }
}
