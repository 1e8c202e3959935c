//! The request pool, whose connections retire after serving too many tenants.
//!
//! A PostgreSQL backend caches catalog entries (relations, indexes, types) for every table
//! it has touched and never gives them back. A pooled connection that serves every tenant
//! would end up caching the catalog of the whole fleet: with 1,000 tenants, hundreds of
//! megabytes per backend. So each pooled connection remembers which tenants it has served
//! and, once it has served `tenants_per_connection` distinct ones, is closed when it comes
//! back to the pool; a fresh one replaces it on demand. This bounds the memory of each
//! backend to about that many tenants' catalogs, at the price of one reconnect per
//! `tenants_per_connection` distinct tenants (BENCHMARKS.md measures both).

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};

use bb8::ManageConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolError};
use uuid::Uuid;

/// The request pool.
pub type Pool = bb8::Pool<TenantAwareManager>;

/// A pooled connection, borrowed from [`Pool`].
pub type Pooled = bb8::PooledConnection<'static, TenantAwareManager>;

/// Opens connections like diesel-async's manager and retires those that served too many
/// tenants (see the module doc).
pub struct TenantAwareManager {
    inner: AsyncDieselConnectionManager<AsyncPgConnection>,
    tenants_per_connection: Option<usize>,
}

impl TenantAwareManager {
    /// `tenants_per_connection: None` never retires a connection for the tenants it served.
    pub fn new(
        inner: AsyncDieselConnectionManager<AsyncPgConnection>,
        tenants_per_connection: Option<usize>,
    ) -> Self {
        Self {
            inner,
            tenants_per_connection,
        }
    }
}

/// A connection of the pool with the tenants it has served.
pub struct PoolConnection {
    conn: AsyncPgConnection,
    tenants_served: HashSet<Uuid>,
    limit: Option<usize>,
}

impl PoolConnection {
    /// Records that this connection now serves `tenant`. Once it has served its limit of
    /// distinct tenants it is marked to be closed when it goes back to the pool.
    pub fn serve_tenant(&mut self, tenant: Uuid) {
        if self.limit.is_some() {
            self.tenants_served.insert(tenant);
        }
    }

    /// Whether the pool will close this connection instead of reusing it.
    pub fn is_retiring(&self) -> bool {
        self.limit.is_some_and(|limit| self.tenants_served.len() >= limit)
    }
}

impl Deref for PoolConnection {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl DerefMut for PoolConnection {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

impl ManageConnection for TenantAwareManager {
    type Connection = PoolConnection;
    type Error = PoolError;

    async fn connect(&self) -> Result<PoolConnection, PoolError> {
        let conn = self.inner.connect().await?;
        Ok(PoolConnection {
            conn,
            tenants_served: HashSet::new(),
            limit: self.tenants_per_connection,
        })
    }

    async fn is_valid(&self, conn: &mut PoolConnection) -> Result<(), PoolError> {
        self.inner.is_valid(&mut conn.conn).await
    }

    fn has_broken(&self, conn: &mut PoolConnection) -> bool {
        conn.is_retiring() || self.inner.has_broken(&mut conn.conn)
    }
}
