//! Tenancy: everything that decides *which tenant* and *which schema*.
//!
//! - `slug`: the rules for tenant slugs and the schema name derived from one;
//! - `roles`: each tenant's own database role and its privileges;
//! - `domain`: vanity domains;
//! - `migrations`: the migration sets, ledger and runner for `public` and every tenant;
//! - `provision`: creating and dropping a tenant atomically;
//! - `registry`: reading and changing tenant records (list, suspend, resume).

pub mod directory;
pub mod domain;
pub mod migrations;
pub mod provision;
pub mod registry;
pub mod roles;
pub mod scope;
pub mod slug;
pub mod transaction;

use std::sync::Arc;
use std::time::Duration;

use crate::config::DatabaseConfig;
use crate::db;
use migrations::MigrationSets;
use slug::Slug;

/// One Enclave database as tenancy sees it: where it is, the namespace of its tenant
/// roles, the migrations it runs and how.
#[derive(Debug, Clone)]
pub struct Installation {
    pub database_url: String,
    /// Prefix of every tenant role of this database (see [`db::role_namespace`]).
    pub role_namespace: String,
    pub migrations: Arc<MigrationSets>,
    pub migration_concurrency: usize,
    pub migration_lock_timeout: Duration,
}

impl Installation {
    pub fn new(config: &DatabaseConfig, migrations: Arc<MigrationSets>) -> anyhow::Result<Self> {
        let database = db::database_name(&config.database_url)?;
        Ok(Self {
            database_url: config.database_url.clone(),
            role_namespace: db::role_namespace(&database),
            migrations,
            migration_concurrency: usize::try_from(config.migration_concurrency).unwrap_or(1),
            migration_lock_timeout: config.migration_lock_timeout(),
        })
    }

    /// The database role of a tenant: `SET LOCAL ROLE` target of its transactions.
    pub fn tenant_role(&self, slug: &Slug) -> String {
        roles::role_name(&self.role_namespace, slug)
    }
}
