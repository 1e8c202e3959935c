//! Per-tenant prepared statements: the connection a request gets inside its tenant
//! transaction ([`TenantConn`]).
//!
//! PostgreSQL plans a prepared statement under the `search_path` it was prepared with, and
//! re-analyses and re-plans it whenever it runs under another one (`plancache.c`,
//! `RevalidateCachedQuery`). diesel prepares each statement once per connection, and a
//! pooled connection serves many tenants, each with its own `search_path`: a request for a
//! tenant other than its connection's previous one re-planned every statement it sent.
//! That was most of the cost of tenant rotation: device by id spread over 10 tenants ran at
//! 54% of one tenant's throughput, over 1,000 at 46% (BENCHMARKS.md of 2026-12-01, section
//! 2s), with PostgreSQL's catalog caches warm in both.
//!
//! So every statement sent through a [`TenantConn`] starts with a comment naming the
//! tenant's schema (`/* tenant_acme */ SELECT …`). diesel then keys its statement cache by
//! the SQL text instead of the query's type, so each tenant gets its own prepared
//! statements on each connection, planned once under its own `search_path`; a connection
//! that switches between tenants keeps every tenant's plans. The comment also shows whose
//! statement it is in `pg_stat_activity` and in logs.
//!
//! The cost is backend memory: a connection keeps one set of prepared statements per
//! tenant it served. The request pool already bounds the tenants one connection serves
//! (`ENCLAVE_POOL_TENANTS_PER_CONNECTION`, see `crate::pool`) and replaces a full
//! connection, closing its prepared statements with it, so the bound that caps the catalog
//! caches caps these too; BENCHMARKS.md, section 6, measures both together.
//!
//! Statements diesel never caches (`sql_query`, `IN` lists) are sent as before, comment
//! included. Code shared with work outside requests (jobs, edge ingest) takes a plain
//! `&mut AsyncPgConnection`: [`TenantConn::pg`] lends it, and statements sent through it
//! are prepared once per connection for every tenant, as before.

use std::ops::DerefMut;
use std::sync::Arc;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AsQuery, AstPass, Query, QueryFragment, QueryId};
use diesel_async::{AsyncConnectionCore, AsyncPgConnection, SimpleAsyncConnection};

/// A connection inside a tenant transaction (`C` holds it: the transaction's guard); see
/// the module doc.
pub struct TenantConn<C> {
    conn: C,
    tag: Arc<str>,
}

impl<C: DerefMut<Target = AsyncPgConnection>> TenantConn<C> {
    pub(super) fn new(conn: C, tag: Arc<str>) -> Self {
        Self { conn, tag }
    }

    /// The plain connection, for code shared with work outside requests. Statements sent
    /// through it are prepared once per connection for all tenants (re-planned whenever
    /// the connection changes tenant); prefer the `TenantConn` itself.
    pub fn pg(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

/// The comment that starts every statement of a request of the tenant whose schema is
/// `schema`.
pub fn statement_tag(schema: &str) -> Arc<str> {
    // A schema name is `tenant_` and a slug (lowercase letters, digits, `_`): nothing in it
    // can end the comment. Anything else is left out rather than trusted.
    let safe: String = schema
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect();
    Arc::from(format!("/* {safe} */ "))
}

impl<C: DerefMut<Target = AsyncPgConnection> + Send> SimpleAsyncConnection for TenantConn<C> {
    async fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        self.conn.batch_execute(query).await
    }
}

impl<C: DerefMut<Target = AsyncPgConnection> + Send> AsyncConnectionCore for TenantConn<C> {
    type ExecuteFuture<'conn, 'query> =
        <AsyncPgConnection as AsyncConnectionCore>::ExecuteFuture<'conn, 'query>;
    type LoadFuture<'conn, 'query> = <AsyncPgConnection as AsyncConnectionCore>::LoadFuture<'conn, 'query>;
    type Stream<'conn, 'query> = <AsyncPgConnection as AsyncConnectionCore>::Stream<'conn, 'query>;
    type Row<'conn, 'query> = <AsyncPgConnection as AsyncConnectionCore>::Row<'conn, 'query>;
    type Backend = Pg;

    fn load<'conn, 'query, T>(&'conn mut self, source: T) -> Self::LoadFuture<'conn, 'query>
    where
        T: AsQuery + 'query,
        T::Query: QueryFragment<Pg> + QueryId + 'query,
    {
        let tagged = Tagged {
            tag: Arc::clone(&self.tag),
            query: source.as_query(),
        };
        AsyncConnectionCore::load(&mut *self.conn, tagged)
    }

    fn execute_returning_count<'conn, 'query, T>(
        &'conn mut self,
        source: T,
    ) -> Self::ExecuteFuture<'conn, 'query>
    where
        T: QueryFragment<Pg> + QueryId + 'query,
    {
        let tagged = Tagged {
            tag: Arc::clone(&self.tag),
            query: source,
        };
        AsyncConnectionCore::execute_returning_count(&mut *self.conn, tagged)
    }
}

/// `query` as a statement of the tenant whose [`statement_tag`] is `tag`, for a query sent
/// on a shared `&AsyncPgConnection` (pipelined) rather than through a [`TenantConn`].
pub(super) fn tagged<Q>(tag: &Arc<str>, query: Q) -> Tagged<Q> {
    Tagged {
        tag: Arc::clone(tag),
        query,
    }
}

/// A statement preceded by its tenant's comment. It has no static query id, so diesel
/// caches its prepared statement by SQL text, comment included.
pub(super) struct Tagged<Q> {
    tag: Arc<str>,
    query: Q,
}

impl<Q: Query> Query for Tagged<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for Tagged<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Tagged<Q> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        pass.push_sql(&self.tag);
        self.query.walk_ast(pass.reborrow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_a_comment_naming_the_schema() {
        assert_eq!(&*statement_tag("tenant_acme_2"), "/* tenant_acme_2 */ ");
    }

    #[test]
    fn nothing_in_a_schema_name_can_end_the_comment() {
        assert_eq!(&*statement_tag("tenant_a*/; DROP"), "/* tenant_a */ ");
    }

    #[test]
    fn tagged_statements_are_cached_by_their_text() {
        let query = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"));
        let tagged = Tagged {
            tag: statement_tag("tenant_acme"),
            query,
        };
        assert_eq!(
            diesel::debug_query::<Pg, _>(&tagged).to_string(),
            "/* tenant_acme */ SELECT 1 -- binds: []"
        );
        assert_eq!(query_id_of(&tagged), None, "cached by text, not by type");
    }

    fn query_id_of<T: QueryId>(_: &T) -> Option<std::any::TypeId> {
        T::query_id()
    }
}
