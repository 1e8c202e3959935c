//! `App`: the state shared by every request — pool, tenant directory, keys, limits.
//! Built once by `serve` (and by tests), handed to the router and the GraphQL schema.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::keys::RootKeys;
use crate::auth::throttle::LoginThrottle;
use crate::auth::token::Credential;
use crate::config::{AuthConfig, DatabaseConfig, LimitsConfig};
use crate::db::{self, Pool};
use crate::tenancy::Installation;
use crate::tenancy::directory::{TenantDirectory, TenantEntry};
use crate::tenancy::transaction::{Access, TenantTx};

/// See the module doc.
pub struct App {
    pub pool: Pool,
    /// SQL statements sent by the pool's connections.
    pub statements: db::StatementCounter,
    /// Alert and event changes of every tenant, for subscriptions.
    pub changes: crate::changes::ChangeFeed,
    /// GraphQL requests by outcome.
    pub requests: crate::http::metrics::RequestMetrics,
    pub pool_timeout: Duration,
    pub statement_timeout: Duration,
    pub installation: Installation,
    pub directory: Arc<TenantDirectory>,
    pub keys: RootKeys,
    /// Claims of tokens verified before (see `auth::verified`).
    pub verified_tokens: crate::auth::verified::VerifiedTokens,
    pub throttle: LoginThrottle,
    pub session_ttl: Duration,
    pub default_tenant: Option<String>,
    pub limits: LimitsConfig,
    /// `limits.max_page_size`, for resolvers.
    pub max_page_size: usize,
}

impl App {
    /// Builds the state for a migrated database: pool (lazy), tenant directory (loaded).
    pub async fn new(
        database: &DatabaseConfig,
        auth: &AuthConfig,
        keys: RootKeys,
        installation: Installation,
        limits: LimitsConfig,
    ) -> anyhow::Result<Arc<Self>> {
        let directory = TenantDirectory::load(&installation).await?;
        let statements = db::StatementCounter::default();
        Ok(Arc::new(Self {
            pool: db::build_pool(database, &statements),
            statements,
            requests: Default::default(),
            changes: Default::default(),
            pool_timeout: database.pool_timeout(),
            statement_timeout: Duration::from_millis(database.statement_timeout_ms),
            installation,
            directory,
            keys,
            verified_tokens: Default::default(),
            throttle: LoginThrottle::default(),
            session_ttl: auth.session_ttl(),
            default_tenant: auth.default_tenant.clone(),
            max_page_size: limits.max_page_size,
            limits,
        }))
    }

    /// A tenant transaction on this app's pool.
    pub fn tenant_tx(
        &self,
        tenant: Arc<TenantEntry>,
        access: Access,
        credential: Option<Credential>,
    ) -> TenantTx {
        TenantTx::new(
            self.pool.clone(),
            self.pool_timeout,
            tenant,
            access,
            self.statement_timeout,
            credential,
        )
    }
}
