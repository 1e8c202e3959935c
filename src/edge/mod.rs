//! The edge: where a tenant's components (agents, pollers, checkers, collectors) are
//! onboarded and report over mutual TLS, the tenant taken from the certificate.
//!
//! - `keys`: the edge key that seals certificate-authority keys at rest;
//! - `ca`: the platform root CA, each tenant's intermediate CA, component certificates;
//! - `onboarding`: one-time onboarding packages and their download;
//! - `listener`: the mutual-TLS listener, where the tenant is taken from the certificate;
//! - `ingest`: its JSON endpoints under `/edge/v1/`.

pub mod ca;
pub mod ingest;
pub mod keys;
pub mod listener;
pub mod onboarding;

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::AuthConfig;
use crate::db;
use crate::tenancy::Installation;
use ca::EdgeAuthority;

/// [`prepare`] when an edge key is configured (or in development mode); otherwise the
/// edge is off (no CAs, no onboarding), with a warning.
pub async fn prepare_if_configured(
    installation: &Installation,
    auth: &AuthConfig,
) -> anyhow::Result<Option<Arc<EdgeAuthority>>> {
    if auth.edge.edge_key.is_none() && auth.edge.edge_key_file.is_none() && !auth.dev {
        tracing::warn!("no edge key configured (ENCLAVE_EDGE_KEY): edge onboarding is off");
        return Ok(None);
    }
    prepare(installation, auth).await.map(Some)
}

/// Startup: loads (creating on first start) the root CA and gives every tenant without a
/// CA one. Runs after migrations, on an owner connection.
pub async fn prepare(installation: &Installation, auth: &AuthConfig) -> anyhow::Result<Arc<EdgeAuthority>> {
    let key = auth.edge_key().context("cannot load the edge key")?;
    let mut conn = db::connect(&installation.database_url)
        .await
        .context("cannot connect to prepare the edge CAs")?;
    let authority = EdgeAuthority::load_or_init(&mut conn, key, auth.edge.edge_domain.clone())
        .await
        .context("cannot load or create the edge root CA")?
        .with_endpoint(auth.edge.endpoint())
        .with_listen(auth.edge.edge_listen.clone());
    let created = authority
        .ensure_tenant_cas(&mut conn)
        .await
        .context("cannot create the tenants' edge CAs")?;
    if created > 0 {
        tracing::info!(created, "created edge CAs for existing tenants");
    }
    Ok(Arc::new(authority))
}
