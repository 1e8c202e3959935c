//! What a tenant's edge runs on, readable by its admins: its certificate authorities
//! (public certificates only; the sealed keys never leave the database), the collector
//! builds offered to its components, the NATS credentials issued to them and the NATS leaf
//! servers of its edge sites. Each list is a Relay connection, newest first.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;

use super::context::{app, scope};
use super::errors::ApiResult;
use super::ids;
use super::monitoring::{cursor_time, time_cursor};
use super::pagination::{Cursor, Window, fetch_page, keyset};
use crate::schema::tenant::{collector_packages, nats_credentials, nats_leaf_servers, tenant_cas};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenant_cas, check_for_backend(Pg))]
pub struct CertificateAuthorityRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub certificate_pem: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A certificate authority of the tenant: the intermediate, signed by the platform root,
/// that issues its edge components' certificates. Only its public certificate is shown.
#[derive(SimpleObject, Clone)]
pub struct CertificateAuthority {
    /// Opaque global id.
    pub id: ID,
    /// Its name (the certificate's common name).
    pub name: String,
    /// The CA certificate, PEM: what a component's peer needs to verify its chain.
    pub certificate_pem: String,
    /// Start of its validity.
    pub not_before: DateTime<Utc>,
    /// End of its validity.
    pub not_after: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<CertificateAuthorityRow> for CertificateAuthority {
    fn from(row: CertificateAuthorityRow) -> Self {
        Self {
            id: ids::encode("CertificateAuthority", row.id),
            name: row.name,
            certificate_pem: row.certificate_pem,
            not_before: row.not_before,
            not_after: row.not_after,
            revoked_at: row.revoked_at,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = collector_packages, check_for_backend(Pg))]
pub struct CollectorPackageRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub version: String,
    pub platform: String,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// A collector build offered to the tenant's edge components.
#[derive(SimpleObject, Clone)]
pub struct CollectorPackage {
    /// Opaque global id.
    pub id: ID,
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Target platform (`linux-amd64`, `linux-arm64`, `windows-amd64`, `darwin-arm64`).
    pub platform: String,
    /// SHA-256 of the artifact, hex.
    pub sha256: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl From<CollectorPackageRow> for CollectorPackage {
    fn from(row: CollectorPackageRow) -> Self {
        Self {
            id: ids::encode("CollectorPackage", row.id),
            name: row.name,
            version: row.version,
            platform: row.platform,
            sha256: row.sha256,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = nats_credentials, check_for_backend(Pg))]
pub struct NatsCredentialRow {
    pub id: uuid::Uuid,
    pub edge_site_id: uuid::Uuid,
    pub edge_component_id: Option<uuid::Uuid>,
    pub user_public_key: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A NATS user credential issued to an edge component (the public key only; the seed went
/// to the component once, in its onboarding package).
#[derive(SimpleObject, Clone)]
pub struct NatsCredential {
    /// Opaque global id.
    pub id: ID,
    /// The edge site of the component.
    pub edge_site_id: ID,
    /// The component it was issued to, when known.
    pub edge_component_id: Option<ID>,
    /// The NATS user's public key (`U…`).
    pub user_public_key: String,
    /// When it stops working, if it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

impl From<NatsCredentialRow> for NatsCredential {
    fn from(row: NatsCredentialRow) -> Self {
        Self {
            id: ids::encode("NatsCredential", row.id),
            edge_site_id: ids::encode("EdgeSite", row.edge_site_id),
            edge_component_id: row.edge_component_id.map(|id| ids::encode("EdgeComponent", id)),
            user_public_key: row.user_public_key,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = nats_leaf_servers, check_for_backend(Pg))]
pub struct NatsLeafServerRow {
    pub id: uuid::Uuid,
    pub edge_site_id: uuid::Uuid,
    pub name: String,
    pub url: String,
    pub status: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A NATS leaf server at an edge site, relaying its components to the tenant's account.
#[derive(SimpleObject, Clone)]
pub struct NatsLeafServer {
    /// Opaque global id.
    pub id: ID,
    /// Its edge site.
    pub edge_site_id: ID,
    /// Name, unique within the site.
    pub name: String,
    /// Where it listens.
    pub url: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
    /// When it was last heard from.
    pub last_seen: Option<DateTime<Utc>>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl From<NatsLeafServerRow> for NatsLeafServer {
    fn from(row: NatsLeafServerRow) -> Self {
        Self {
            id: ids::encode("NatsLeafServer", row.id),
            edge_site_id: ids::encode("EdgeSite", row.edge_site_id),
            name: row.name,
            url: row.url,
            status: row.status,
            last_seen: row.last_seen,
            created_at: row.created_at,
        }
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
