//! Statements that diesel would compile on every execution, written so that
//! each connection keeps them prepared.
//!
//! Diesel keeps a statement prepared only if walking it never says
//! otherwise, and its `UPDATE` always says otherwise (as do multi-row
//! inserts and `sql_query`), whatever its text. On SQLite such a statement
//! is compiled on every execution together with the triggers it fires: in
//! a profile of the gateway benchmark, compiling a turn's two thread
//! updates was a fifth of the server's CPU. [`update`] builds the same
//! `UPDATE` from diesel's own pieces (the table, a changeset, a filter),
//! none of which forbids caching, and the statement cache keys it by its
//! SQL text, so a changeset whose text varies (an `Option` left out) is
//! still cached correctly, once per text.

use diesel::backend::Backend;
use diesel::expression::AppearsOnTable;
use diesel::query_builder::{AsChangeset, AstPass, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl, Table};

/// `UPDATE table SET values WHERE filter`, kept prepared per connection.
#[derive(Debug)]
pub(crate) struct Update<F, W, V> {
    from: F,
    filter: W,
    values: V,
}

/// `UPDATE table SET values WHERE filter` (see the module's doc).
pub(crate) fn update<T, W, V>(
    table: T,
    filter: W,
    values: V,
) -> Update<T::FromClause, W, V::Changeset>
where
    T: Table,
    W: AppearsOnTable<T>,
    V: AsChangeset<Target = T>,
{
    Update {
        from: table.from_clause(),
        filter,
        values: values.as_changeset(),
    }
}

impl<F, W, V, DB> QueryFragment<DB> for Update<F, W, V>
where
    DB: Backend,
    F: QueryFragment<DB>,
    W: QueryFragment<DB>,
    V: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.values.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

impl<F, W, V> QueryId for Update<F, W, V> {
    // Cached by its SQL text (which the cache builds), never by type.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, W, V, Conn> RunQueryDsl<Conn> for Update<F, W, V> {}
