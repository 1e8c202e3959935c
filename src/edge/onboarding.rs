//! One-time onboarding packages: the download token, and the download itself.
//!
//! A package is created by a tenant admin (GraphQL `createOnboardingPackage`): a random
//! token is shown once; only its SHA-256 is stored, in the tenant's `onboarding_packages`
//! and in `public.onboarding_tokens` (token hash → tenant), so that `GET /onboarding/<token>`,
//! which carries no other credential, finds the tenant with one indexed read.
//!
//! The download runs in ONE tenant transaction: it locks the package, refuses it unless it
//! is `issued` and unexpired, issues a component certificate with a fresh key (never
//! stored), records the certificate in `edge_components`, marks the package `delivered`
//! and records the event. Refusals are recorded too (`failed`), and all the caller learns is
//! 404 (unknown) or 410 (used or expired).
//!
//! A component that keeps its key to itself posts a certificate signing request instead
//! (`POST /onboarding/<token>`): the request's signature is checked *before* the token is
//! spent, then the same transaction issues the certificate for the request's key; the
//! answer carries no key.
//!
//! When NATS is configured (`crate::nats`), the package also holds `nats.creds`: a user of
//! the tenant's NATS account limited to the tenant's subjects, valid as long as the
//! certificate, recorded (public key and JWT, never the seed) in `nats_credentials` with the
//! component, so that revoking the component revokes it. The seed is made here, so a
//! certificate signing request gets no NATS user.

use std::io::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ca::{self, ComponentKind, EdgeError};
use crate::app::App;
use crate::schema::tenant::{edge_components, nats_credentials, onboarding_events, onboarding_packages};
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::transaction::{Access, TxError};

/// How long a download token stays valid.
pub const TOKEN_HOURS: i64 = 24;

/// A new download token and its hash (what is stored).
pub fn new_token() -> Result<(String, String), EdgeError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| EdgeError::Random)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new component id for a package: `<kind>-<12 hex digits>`.
pub fn new_component_id(kind: ComponentKind) -> Result<String, EdgeError> {
    let mut bytes = [0u8; 6];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| EdgeError::Random)?;
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{kind}-{suffix}"))
}

/// Records an onboarding event (in the caller's tenant transaction).
pub async fn record_event(
    conn: &mut diesel_async::AsyncPgConnection,
    package: Uuid,
    event: &str,
    detail: &str,
) -> QueryResult<()> {
    diesel::insert_into(onboarding_events::table)
        .values((
            onboarding_events::onboarding_package_id.eq(package),
            onboarding_events::event.eq(event),
            onboarding_events::detail.eq(detail),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// A package just created, with its download token (shown once).
pub struct NewPackage {
    pub id: Uuid,
    pub component_id: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a package could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    Tx(#[from] TxError),
    #[error("{0}")]
    Edge(#[from] EdgeError),
}

impl From<diesel::result::Error> for CreateError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Tx(error.into())
    }
}

/// Creates a package on `conn` (a transaction of `tenant`): first the token's index row in
/// `public` (committed on its own, see the module doc), then the package and its `issued`
/// event in the caller's transaction.
pub async fn create_package(
    app: &App,
    tenant: &TenantEntry,
    conn: &mut diesel_async::AsyncPgConnection,
    edge_site: Uuid,
    kind: ComponentKind,
    name: &str,
    created_by: Option<Uuid>,
) -> Result<NewPackage, CreateError> {
    let component_id = new_component_id(kind)?;
    let (token, hash) = new_token()?;
    let expires_at = Utc::now() + chrono::Duration::hours(TOKEN_HOURS);
    app.directory
        .record_onboarding_token(&app.db, tenant, &hash, expires_at)
        .await?;
    let id: Uuid = diesel::insert_into(onboarding_packages::table)
        .values((
            onboarding_packages::edge_site_id.eq(edge_site),
            onboarding_packages::token_hash.eq(&hash),
            onboarding_packages::expires_at.eq(expires_at),
            onboarding_packages::created_by.eq(created_by),
            onboarding_packages::kind.eq(kind.as_str()),
            onboarding_packages::name.eq(name),
            onboarding_packages::component_id.eq(&component_id),
        ))
        .returning(onboarding_packages::id)
        .get_result(conn)
        .await?;
    record_event(conn, id, "issued", &format!("package for {kind} {component_id}")).await?;
    Ok(NewPackage {
        id,
        component_id,
        token,
        expires_at,
    })
}

/// The outcome of a download, as the HTTP layer answers it.
#[derive(Debug)]
pub enum Download {
    /// The package's files, as a gzip-compressed tar.
    Package(Vec<u8>),
    /// For a certificate signing request: the component certificate, the tenant CA and the
    /// root, PEM, and the package's `config.json`.
    Chain { chain_pem: String, config_json: String },
    /// No such token (404).
    Unknown,
    /// Used already, expired or revoked (410).
    Gone,
}

/// Why a download failed on our side (500; logged, never shown).
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0}")]
    Tx(#[from] TxError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("{0}")]
    Edge(#[from] EdgeError),
    #[error("cannot build the archive: {0}")]
    Archive(#[from] std::io::Error),
    #[error("the edge is not configured")]
    NotConfigured,
    #[error("cannot issue NATS credentials: {0:#}")]
    Nats(anyhow::Error),
}

#[derive(Queryable)]
struct PackageRow {
    id: Uuid,
    edge_site_id: Uuid,
    status: String,
    expires_at: DateTime<Utc>,
    kind: Option<String>,
    name: Option<String>,
    component_id: Option<String>,
}

/// What a successful download hands out.
struct Files {
    chain_pem: String,
    certificate_pem: String,
    /// None when the component sent a certificate signing request.
    key_pem: Option<String>,
    config_json: String,
    /// `nats.creds`, when NATS is configured.
    nats_creds: Option<String>,
}

/// Serves one download (see the module doc): a package with a fresh key, or, given the
/// verified key of a certificate signing request, the certificate for that key.
pub async fn download(
    app: &Arc<App>,
    token: &str,
    csr_key: Option<&ca::CsrKey>,
) -> Result<Download, DownloadError> {
    let Some(authority) = app.installation.edge.clone() else {
        return Err(DownloadError::NotConfigured);
    };
    if token.is_empty() || token.len() > 100 {
        return Ok(Download::Unknown);
    }
    let hash = token_hash(token);
    let Some(tenant) = app.directory.onboarding_token_tenant(&app.db, &hash).await? else {
        return Ok(Download::Unknown);
    };
    if !tenant.is_active() {
        return Ok(Download::Unknown);
    }
    let tx = app.tenant_tx(tenant.clone(), Access::ReadWrite, None);
    let outcome = async {
        let mut conn = tx.conn().await?;
        let package: Option<PackageRow> = onboarding_packages::table
            .filter(onboarding_packages::token_hash.eq(&hash))
            .select((
                onboarding_packages::id,
                onboarding_packages::edge_site_id,
                onboarding_packages::status,
                onboarding_packages::expires_at,
                onboarding_packages::kind,
                onboarding_packages::name,
                onboarding_packages::component_id,
            ))
            .for_update()
            .first(&mut conn)
            .await
            .optional()?;
        let Some(package) = package else {
            return Ok::<_, DownloadError>((Download::Unknown, None));
        };
        if package.status != "issued" {
            record_event(
                conn.pg(),
                package.id,
                "failed",
                "download refused: already downloaded or closed",
            )
            .await?;
            return Ok((Download::Gone, None));
        }
        if package.expires_at <= Utc::now() {
            diesel::update(onboarding_packages::table.find(package.id))
                .set(onboarding_packages::status.eq("expired"))
                .execute(&mut conn)
                .await?;
            record_event(
                conn.pg(),
                package.id,
                "failed",
                "download refused: the package expired",
            )
            .await?;
            return Ok((Download::Gone, None));
        }
        let (Some(kind), Some(name), Some(component_id)) = (
            package.kind.as_deref().and_then(ComponentKind::parse),
            package.name.clone(),
            package.component_id.clone(),
        ) else {
            // A package made before components were named (no kind): nothing to issue.
            return Ok((Download::Gone, None));
        };
        let tenant_ca = ca::load_tenant_ca(&authority, conn.pg(), &tenant.slug).await?;
        let issued = match csr_key {
            Some(key) => tenant_ca.issue_component_for_key(kind, &component_id, key)?,
            None => tenant_ca.issue_component(kind, &component_id)?,
        };
        let edge_component: Uuid = diesel::insert_into(edge_components::table)
            .values((
                edge_components::onboarding_package_id.eq(package.id),
                edge_components::kind.eq(kind.as_str()),
                edge_components::component_id.eq(&component_id),
                edge_components::name.eq(&name),
                edge_components::common_name.eq(&issued.common_name),
                edge_components::serial.eq(&issued.serial),
                edge_components::not_after.eq(issued.not_after),
            ))
            .returning(edge_components::id)
            .get_result(&mut conn)
            .await?;
        // A NATS user's seed is made here, so a component that keeps its keys to itself
        // (certificate signing request) gets none.
        let nats_user = match csr_key {
            Some(_) => None,
            None => crate::nats::issue_component_user(
                app,
                tenant.id,
                tenant.slug.as_str(),
                &component_id,
                Some(issued.not_after.timestamp()),
            )
            .await
            .map_err(DownloadError::Nats)?,
        };
        if let Some(user) = &nats_user {
            diesel::insert_into(nats_credentials::table)
                .values((
                    nats_credentials::edge_site_id.eq(package.edge_site_id),
                    nats_credentials::edge_component_id.eq(edge_component),
                    nats_credentials::user_public_key.eq(&user.public_key),
                    nats_credentials::jwt_ref.eq(&user.jwt),
                    nats_credentials::expires_at.eq(issued.not_after),
                ))
                .execute(&mut conn)
                .await?;
        }
        diesel::update(onboarding_packages::table.find(package.id))
            .set(onboarding_packages::status.eq("delivered"))
            .execute(&mut conn)
            .await?;
        record_event(
            conn.pg(),
            package.id,
            "downloaded",
            &format!("certificate {} issued to {}", issued.serial, issued.common_name),
        )
        .await?;
        let config = serde_json::json!({
            "tenant": tenant.slug.as_str(),
            "componentId": component_id,
            "kind": kind.as_str(),
            "name": name,
            "commonName": issued.common_name,
            "edgeEndpoint": authority.endpoint(),
            "natsPrefix": app
                .installation
                .nats
                .as_ref()
                .map_or_else(|| tenant.slug.to_string(), |nats| nats.subjects().tenant_root(tenant.slug.as_str())),
        });
        let files = Files {
            chain_pem: tenant_ca.chain_pem(),
            certificate_pem: issued.certificate_pem,
            key_pem: issued.key_pem,
            config_json: format!("{config:#}\n"),
            nats_creds: nats_user.map(|user| user.creds),
        };
        Ok((Download::Package(Vec::new()), Some(files)))
    }
    .await;
    match outcome {
        Ok((outcome, files)) => {
            // Refusals commit too: their `failed` event is the audit trail.
            tx.finish(true).await?;
            match files {
                Some(files) if files.key_pem.is_none() => Ok(Download::Chain {
                    chain_pem: format!("{}{}", files.certificate_pem, files.chain_pem),
                    config_json: files.config_json,
                }),
                Some(files) => Ok(Download::Package(archive(&files)?)),
                None => Ok(outcome),
            }
        }
        Err(error) => {
            let _ = tx.finish(false).await;
            Err(error)
        }
    }
}

/// The package as a gzip-compressed tar holding exactly the four files, and `nats.creds`
/// when NATS is configured.
fn archive(files: &Files) -> std::io::Result<Vec<u8>> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let key_pem = files.key_pem.as_deref().unwrap_or_default();
    for (name, contents, mode) in [
        ("ca-chain.pem", files.chain_pem.as_str(), 0o644),
        ("component.pem", files.certificate_pem.as_str(), 0o644),
        ("component-key.pem", key_pem, 0o600),
        ("config.json", files.config_json.as_str(), 0o644),
    ]
    .into_iter()
    .chain(
        files
            .nats_creds
            .as_deref()
            .map(|creds| ("nats.creds", creds, 0o600)),
    ) {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_mtime(now);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, contents.as_bytes())?;
    }
    let mut encoder = builder.into_inner()?;
    encoder.flush()?;
    encoder.finish()
}
