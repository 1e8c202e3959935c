//! Tenancy: everything that decides *which tenant* and *which schema*.
//!
//! - `slug`: the rules for tenant slugs and the schema name derived from one;
//! - `roles`: each tenant's own database role and its privileges;
//! - `authenticator`: the role request connections log in as;
//! - `gateway`: the pools, and the only ways request-time code reaches the database;
//! - `impersonation`: records of platform admins entering a tenant;
//! - `domain`: vanity domains;
//! - `migrations`: the migration sets, ledger and runner for `public` and every tenant;
//! - `provision`: creating and dropping a tenant atomically;
//! - `registry`: reading and changing tenant records (list, suspend, resume);
//! - `quarantine`: tenants Enclave took out of service (schema drift, a failed migration);
//! - `transaction`: the tenant transaction every request runs in;
//! - `statements`: its connection, whose prepared statements are the tenant's own.

pub mod authenticator;
pub mod directory;
pub mod domain;
pub mod gateway;
pub mod impersonation;
pub mod migrations;
pub mod provision;
pub mod quarantine;
pub mod registry;
pub mod roles;
pub mod scope;
pub mod slug;
pub mod statements;
pub mod transaction;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::DatabaseConfig;
use crate::db;
use migrations::MigrationSets;
use slug::Slug;

/// One Enclave database as tenancy sees it: where it is, the namespace of its tenant
/// roles, the migrations it runs and how.
#[derive(Debug, Clone)]
pub struct Installation {
    /// The owner's session URL (`ENCLAVE_DIRECT_DATABASE_URL`, else `DATABASE_URL`):
    /// migrations, LISTEN, provisioning and platform work connect here, never through a
    /// transaction-mode pooler.
    pub database_url: String,
    /// Prefix of every tenant role of this database (see [`db::role_namespace`]).
    pub role_namespace: String,
    pub migrations: Arc<MigrationSets>,
    pub migration_concurrency: usize,
    pub migration_lock_timeout: Duration,
    /// The role request connections log in as (see [`authenticator`]).
    pub authenticator: String,
    /// How request connections connect, as the authenticator.
    pub authenticator_connect: tokio_postgres::Config,
    /// The authenticator was configured (`ENCLAVE_AUTHENTICATOR_URL`), not derived: Enclave
    /// then never creates it.
    pub authenticator_configured: bool,
    /// The edge certificate authorities, when an edge key is configured: provisioning
    /// then creates the tenant's CA in the same transaction (see `crate::edge`).
    pub edge: Option<Arc<crate::edge::ca::EdgeAuthority>>,
    /// The NATS operator and accounts, when NATS is configured (see `crate::nats`).
    pub nats: Option<Arc<crate::nats::NatsAuthority>>,
}

impl Installation {
    pub fn new(config: &DatabaseConfig, migrations: Arc<MigrationSets>) -> anyhow::Result<Self> {
        let database = db::database_name(config.session_url())?;
        let role_namespace = db::role_namespace(&database);
        let (authenticator, authenticator_connect) = match &config.authenticator_url {
            Some(url) => {
                let connect = db::parse_url(url).context("ENCLAVE_AUTHENTICATOR_URL")?;
                let user = connect
                    .get_user()
                    .context("ENCLAVE_AUTHENTICATOR_URL names no user")?
                    .to_owned();
                (user, connect)
            }
            None => {
                let user = authenticator::default_name(&role_namespace);
                let connect = db::with_user(&config.database_url, &user)?;
                (user, connect)
            }
        };
        Ok(Self {
            database_url: config.session_url().to_owned(),
            role_namespace,
            authenticator,
            authenticator_connect,
            authenticator_configured: config.authenticator_url.is_some(),
            migrations,
            migration_concurrency: usize::try_from(config.migration_concurrency).unwrap_or(1),
            migration_lock_timeout: config.migration_lock_timeout(),
            edge: None,
            nats: None,
        })
    }

    /// The database role of a tenant: `SET LOCAL ROLE` target of its transactions.
    pub fn tenant_role(&self, slug: &Slug) -> String {
        roles::role_name(&self.role_namespace, slug)
    }
}
