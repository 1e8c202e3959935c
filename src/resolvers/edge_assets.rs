//! What a tenant's edge runs on, readable by its admins: its certificate authorities
//! (public certificates only; the sealed keys never leave the database), the collector
//! builds offered to its components, the NATS credentials issued to them and the NATS leaf
//! servers of its edge sites. Each list is a Relay connection, newest first.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::context::{app, scope};
use super::errors::ApiResult;
use super::ids;
use super::models::{CertificateAuthorityRow, CollectorPackageRow, NatsCredentialRow, NatsLeafServerRow};
use super::monitoring::{cursor_time, time_cursor};
use super::pagination::{Cursor, Window, fetch_page, keyset};
use crate::schema::tenant::{collector_packages, nats_credentials, nats_leaf_servers, tenant_cas};

/// A certificate authority of the tenant: the intermediate, signed by the platform root,
/// that issues its edge components' certificates. Only its public certificate is shown.
#[derive(Clone)]
pub struct CertificateAuthority(pub CertificateAuthorityRow);

impl From<CertificateAuthorityRow> for CertificateAuthority {
    fn from(row: CertificateAuthorityRow) -> Self {
        Self(row)
    }
}

/// A certificate authority of the tenant: the intermediate, signed by the platform root,
/// that issues its edge components' certificates. Only its public certificate is shown.
#[Object]
impl CertificateAuthority {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("CertificateAuthority", self.0.id)
    }
    /// Its name (the certificate's common name).
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The CA certificate, PEM: what a component's peer needs to verify its chain.
    async fn certificate_pem(&self) -> &str {
        &self.0.certificate_pem
    }
    /// Start of its validity.
    async fn not_before(&self) -> DateTime<Utc> {
        self.0.not_before
    }
    /// End of its validity.
    async fn not_after(&self) -> DateTime<Utc> {
        self.0.not_after
    }
    /// When it was revoked, if it was.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A collector build offered to the tenant's edge components.
#[derive(Clone)]
pub struct CollectorPackage(pub CollectorPackageRow);

impl From<CollectorPackageRow> for CollectorPackage {
    fn from(row: CollectorPackageRow) -> Self {
        Self(row)
    }
}

/// A collector build offered to the tenant's edge components.
#[Object]
impl CollectorPackage {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("CollectorPackage", self.0.id)
    }
    /// Package name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Version.
    async fn version(&self) -> &str {
        &self.0.version
    }
    /// Target platform (`linux-amd64`, `linux-arm64`, `windows-amd64`, `darwin-arm64`).
    async fn platform(&self) -> &str {
        &self.0.platform
    }
    /// SHA-256 of the artifact, hex.
    async fn sha256(&self) -> &str {
        &self.0.sha256
    }
    /// When it was added.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A NATS user credential issued to an edge component (the public key only; the seed went
/// to the component once, in its onboarding package).
#[derive(Clone)]
pub struct NatsCredential(pub NatsCredentialRow);

impl From<NatsCredentialRow> for NatsCredential {
    fn from(row: NatsCredentialRow) -> Self {
        Self(row)
    }
}

/// A NATS user credential issued to an edge component (the public key only; the seed went
/// to the component once, in its onboarding package).
#[Object]
impl NatsCredential {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("NatsCredential", self.0.id)
    }
    /// The edge site of the component.
    async fn edge_site_id(&self) -> ID {
        ids::encode("EdgeSite", self.0.edge_site_id)
    }
    /// The component it was issued to, when known.
    async fn edge_component_id(&self) -> Option<ID> {
        self.0
            .edge_component_id
            .map(|id| ids::encode("EdgeComponent", id))
    }
    /// The NATS user's public key (`U…`).
    async fn user_public_key(&self) -> &str {
        &self.0.user_public_key
    }
    /// When it stops working, if it expires.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// When it was revoked, if it was.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// When it was issued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A NATS leaf server at an edge site, relaying its components to the tenant's account.
#[derive(Clone)]
pub struct NatsLeafServer(pub NatsLeafServerRow);

impl From<NatsLeafServerRow> for NatsLeafServer {
    fn from(row: NatsLeafServerRow) -> Self {
        Self(row)
    }
}

/// A NATS leaf server at an edge site, relaying its components to the tenant's account.
#[Object]
impl NatsLeafServer {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("NatsLeafServer", self.0.id)
    }
    /// Its edge site.
    async fn edge_site_id(&self) -> ID {
        ids::encode("EdgeSite", self.0.edge_site_id)
    }
    /// Name, unique within the site.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Where it listens.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// `online`, `offline` or `unknown`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// When it was last heard from.
    async fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.0.last_seen
    }
    /// When it was added.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Reads of the tenant's edge assets (tenant admins).
#[derive(Default)]
pub struct EdgeAssetsQuery;

/// One newest-first page of `$table` (rows `$row`, nodes `$node`), optionally narrowed.
macro_rules! newest_page {
    ($ctx:expr, $table:ident, $row:ty, $node:ty, ($first:expr, $after:expr, $last:expr, $before:expr), |$q:ident| $narrow:expr) => {{
        let window = Window::new($first, $after, $last, $before, app($ctx)?.max_page_size)?;
        let $q = $table::table
            .select(<$row>::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = $narrow;
        let query = keyset!(
            query,
            &window,
            $table::created_at,
            $table::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope($ctx)?,
            query,
            |r: &$row| time_cursor(r.created_at, r.id),
            <$node>::from,
            EmptyFields
        )
    }};
}

#[Object]
impl EdgeAssetsQuery {
    /// The tenant's certificate authorities (public certificates), newest first (tenant admins).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn certificate_authorities(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, walking forward from `after` (50 when absent).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
        #[graphql(desc = "Page size, walking backward from `before`.")] last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends.")] before: Option<String>,
    ) -> ApiResult<Connection<Cursor, CertificateAuthority, EmptyFields>> {
        newest_page!(
            ctx,
            tenant_cas,
            CertificateAuthorityRow,
            CertificateAuthority,
            (first, after, last, before),
            |q| q
        )
    }

    /// Collector builds offered to the tenant's edge components, newest first (tenant admins).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn collector_packages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this platform (`linux-amd64`...).")] platform: Option<String>,
        #[graphql(desc = "Page size, walking forward from `after` (50 when absent).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
        #[graphql(desc = "Page size, walking backward from `before`.")] last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends.")] before: Option<String>,
    ) -> ApiResult<Connection<Cursor, CollectorPackage, EmptyFields>> {
        newest_page!(
            ctx,
            collector_packages,
            CollectorPackageRow,
            CollectorPackage,
            (first, after, last, before),
            |q| {
                match platform {
                    Some(platform) => q.filter(collector_packages::platform.eq(platform)),
                    None => q,
                }
            }
        )
    }

    /// NATS credentials issued to the tenant's edge components, newest first (tenant admins).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn nats_credentials(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only those of this edge site.")] edge_site_id: Option<ID>,
        #[graphql(desc = "Page size, walking forward from `after` (50 when absent).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
        #[graphql(desc = "Page size, walking backward from `before`.")] last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends.")] before: Option<String>,
    ) -> ApiResult<Connection<Cursor, NatsCredential, EmptyFields>> {
        let site = ids::decode_optional("EdgeSite", edge_site_id.as_ref())?;
        newest_page!(
            ctx,
            nats_credentials,
            NatsCredentialRow,
            NatsCredential,
            (first, after, last, before),
            |q| {
                match site {
                    Some(site) => q.filter(nats_credentials::edge_site_id.eq(site)),
                    None => q,
                }
            }
        )
    }

    /// NATS leaf servers of the tenant's edge sites, newest first (tenant admins).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn nats_leaf_servers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only those of this edge site.")] edge_site_id: Option<ID>,
        #[graphql(desc = "Page size, walking forward from `after` (50 when absent).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
        #[graphql(desc = "Page size, walking backward from `before`.")] last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends.")] before: Option<String>,
    ) -> ApiResult<Connection<Cursor, NatsLeafServer, EmptyFields>> {
        let site = ids::decode_optional("EdgeSite", edge_site_id.as_ref())?;
        newest_page!(
            ctx,
            nats_leaf_servers,
            NatsLeafServerRow,
            NatsLeafServer,
            (first, after, last, before),
            |q| {
                match site {
                    Some(site) => q.filter(nats_leaf_servers::edge_site_id.eq(site)),
                    None => q,
                }
            }
        )
    }
}
