//! The gateway: the only door from request-time code to the database.
//!
//! It owns both pools and hands out no raw connection:
//!
//! - **request pool** (tenant-routed, see `crate::pool`): connections log in as the
//!   authenticator; the only way to use one is a [`TenantTx`] for a tenant, begun by
//!   [`Gateway::tenant_tx`] — the one function that begins tenant transactions;
//! - **platform pool**: a few connections of the owner role for platform data in `public`;
//!   [`Gateway::platform`] hands one out only against a [`PlatformAdmin`] witness, which
//!   only a scope whose *database* role is platform admin can produce
//!   (`Scope::platform_admin`). Enclave's own platform reads and audit writes (login's
//!   membership lookup, impersonation records) live in `tenancy` and use
//!   `platform_unchecked`, which is private to `tenancy`.
//!
//! Resolvers therefore reach tenant data only through their scope, and `public` only as
//! platform admins. Tests reach the raw request pool through [`Gateway::raw_request_pool`],
//! which `clippy.toml` forbids everywhere else.

use std::sync::Arc;
use std::time::Duration;

use bb8::{PooledConnection, RunError};
use diesel_async::AsyncPgConnection;
use diesel_async::SimpleAsyncConnection as _;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use uuid::Uuid;

use super::Installation;
use super::directory::TenantEntry;
use super::transaction::{Access, TenantTx, TxError, pool_error};
use crate::auth::token::Credential;
use crate::config::DatabaseConfig;
use crate::db::{self, ConnectFailures, PlatformPool, StatementCounter};
use crate::pool::{Pool, PoolState};

/// A connection of the owner role, for platform data (returned to the pool when dropped).
pub type PlatformConn = PooledConnection<'static, AsyncDieselConnectionManager<AsyncPgConnection>>;

/// Proof that the caller is a platform admin *now*: made only by `Scope::platform_admin`
/// from the role the database reported for the request's credential.
#[derive(Debug, Clone, Copy)]
pub struct PlatformAdmin {
    user_id: Uuid,
}

impl PlatformAdmin {
    pub(in crate::tenancy) fn new(user_id: Uuid) -> Self {
        Self { user_id }
    }

    /// The platform admin's user id (in the platform tenant).
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }
}

/// See the module doc. Cheap to clone; clones share the pools.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

struct Inner {
    requests: Pool,
    platform: PlatformPool,
    platform_failures: ConnectFailures,
    statements: StatementCounter,
    pool_timeout: Duration,
    statement_timeout: Duration,
    /// `; SET LOCAL …` of the request settings, behind a transaction-mode pooler (else
    /// empty: the connections got them at startup).
    transaction_settings: String,
}

impl Gateway {
    /// Builds both pools (lazily: nothing connects yet).
    pub fn new(config: &DatabaseConfig, installation: &Installation) -> anyhow::Result<Self> {
        let statements = StatementCounter::default();
        let platform_failures = ConnectFailures::default();
        Ok(Self(Arc::new(Inner {
            requests: db::build_request_pool(config, installation.authenticator_connect.clone(), &statements),
            platform: db::build_platform_pool(config, &platform_failures)?,
            platform_failures,
            statements,
            pool_timeout: config.pool_timeout(),
            statement_timeout: Duration::from_millis(config.statement_timeout_ms),
            transaction_settings: if config.behind_pooler() {
                db::request_settings(config)
                    .iter()
                    .filter_map(|setting| setting.split_once('='))
                    .map(|(name, value)| format!("; SET LOCAL {name} = {value}"))
                    .collect()
            } else {
                String::new()
            },
        })))
    }

    /// A tenant transaction (not begun yet) for `tenant`; `credential` is checked when it
    /// begins (see `transaction`). `None` only for Enclave's own work (login, sessions).
    pub fn tenant_tx(
        &self,
        tenant: Arc<TenantEntry>,
        access: Access,
        credential: Option<Credential>,
    ) -> TenantTx {
        TenantTx::new(self.clone(), tenant, access, credential)
    }

    /// An owner connection for platform data, for a platform admin.
    pub async fn platform(&self, _admin: &PlatformAdmin) -> Result<PlatformConn, TxError> {
        self.platform_unchecked().await
    }

    /// An owner connection for Enclave's own platform work; private to `tenancy`.
    pub(in crate::tenancy) async fn platform_unchecked(&self) -> Result<PlatformConn, TxError> {
        self.0.platform.get_owned().await.map_err(|error| {
            // Connections failed while waiting: the database is unreachable.
            let unreachable = self.0.platform_failures.recent(self.0.pool_timeout * 2);
            match error {
                RunError::TimedOut if unreachable => {
                    TxError::Connect("no platform connection could be opened".to_owned())
                }
                error => pool_error(error, TxError::PlatformPoolTimeout),
            }
        })
    }

    pub(in crate::tenancy) fn requests(&self) -> &Pool {
        &self.0.requests
    }

    pub(in crate::tenancy) fn pool_timeout(&self) -> Duration {
        self.0.pool_timeout
    }

    pub(in crate::tenancy) fn statement_timeout(&self) -> Duration {
        self.0.statement_timeout
    }

    pub(in crate::tenancy) fn transaction_settings(&self) -> &str {
        &self.0.transaction_settings
    }

    /// Whether a request connection can be had and answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        match self.0.requests.get().await {
            Ok(mut conn) => conn.batch_execute("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    /// The request pool's connections and their use (for `/metrics`).
    pub fn request_pool_state(&self) -> PoolState {
        self.0.requests.state()
    }

    /// SQL statements sent by request connections.
    pub fn statements(&self) -> u64 {
        self.0.statements.get()
    }

    /// The raw request pool, for tests that inspect connections. Forbidden elsewhere by
    /// `clippy.toml`: request-time code uses [`Gateway::tenant_tx`].
    #[doc(hidden)]
    pub fn raw_request_pool(&self) -> &Pool {
        &self.0.requests
    }
}
