//! `App`: the state shared by every request — the database gateway, tenant directory,
//! keys, limits.
//! Built once by `serve` (and by tests), handed to the router and the GraphQL schema.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::keys::RootKeys;
use crate::auth::throttle::LoginThrottle;
use crate::auth::token::Credential;
use crate::config::{AuthConfig, DatabaseConfig, LimitsConfig};
use crate::tenancy::Installation;
use crate::tenancy::directory::{TenantDirectory, TenantEntry};
use crate::tenancy::gateway::Gateway;
use crate::tenancy::transaction::{Access, TenantTx};

/// See the module doc.
pub struct App {
    /// The pools, reachable only through tenant transactions and platform witnesses.
    pub db: Gateway,
    /// Alert and event changes of every tenant, for subscriptions.
    pub changes: crate::changes::ChangeFeed,
    /// GraphQL requests by outcome.
    pub requests: crate::http::metrics::RequestMetrics,
    /// Job runs and queue samples (see `crate::jobs::metrics`).
    pub jobs: Arc<crate::jobs::metrics::JobMetrics>,
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
    /// `ENCLAVE_NATS_URL`: `listen` connects there (see `crate::nats`).
    pub nats_url: Option<String>,
    /// The NATS connections, once started (`crate::nats::start`).
    pub nats: std::sync::OnceLock<Arc<crate::nats::NatsLink>>,
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
        Ok(Arc::new(Self {
            db: Gateway::new(database, &installation)?,
            requests: Default::default(),
            jobs: Default::default(),
            changes: Default::default(),
            installation,
            directory,
            keys,
            verified_tokens: Default::default(),
            throttle: LoginThrottle::default(),
            session_ttl: auth.session_ttl(),
            default_tenant: auth.default_tenant.clone(),
            max_page_size: limits.max_page_size,
            limits,
            nats_url: auth.nats.nats_url.clone(),
            nats: std::sync::OnceLock::new(),
        }))
    }

    /// A tenant transaction (see [`Gateway::tenant_tx`]).
    pub fn tenant_tx(
        &self,
        tenant: Arc<TenantEntry>,
        access: Access,
        credential: Option<Credential>,
    ) -> TenantTx {
        self.db.tenant_tx(tenant, access, credential)
    }
}
