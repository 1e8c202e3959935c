//! The tenant directory: every tenant's id, slug, status and vanity domains, in memory.
//!
//! Requests resolve the tenant named by a verified token (or, at login, the request's
//! Host) here without touching the database. The directory is loaded with one query and
//! reloaded whenever `public.tenants`, `public.tenant_domains` or
//! `public.tenant_quarantine` change: a trigger
//! notifies channel `enclave_tenants` and a listener task reloads, so a suspension takes
//! effect within a second. A periodic reload covers a lost listener connection.
//!
//! Only platform metadata is cached here; no tenant rows ever are.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::StreamExt as _;
use uuid::Uuid;

use super::Installation;
use super::registry::TenantStatus;
use super::slug::Slug;
use crate::db;

/// Channel the tenant triggers notify.
pub const CHANNEL: &str = "enclave_tenants";

/// Reload the whole directory at least this often, whatever the listener says.
const PERIODIC_RELOAD: Duration = Duration::from_secs(30);

/// A tenant as requests need it: where its data is and whether it may be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEntry {
    pub id: Uuid,
    pub slug: Slug,
    pub name: String,
    pub status: TenantStatus,
    /// `tenant_<slug>`.
    pub schema: String,
    /// The tenant's database role.
    pub role: String,
    /// Enclave took the tenant out of service (`tenancy::quarantine`): refused like a
    /// suspended tenant whatever its status.
    pub quarantined: bool,
}

impl TenantEntry {
    /// The entry of a tenant of `installation`.
    pub fn new(
        installation: &Installation,
        id: Uuid,
        slug: Slug,
        name: String,
        status: TenantStatus,
    ) -> Self {
        Self {
            id,
            schema: slug.schema_name(),
            role: installation.tenant_role(&slug),
            slug,
            name,
            status,
            quarantined: false,
        }
    }

    /// Whether the tenant's requests are served: active and not quarantined.
    pub fn is_active(&self) -> bool {
        self.status == TenantStatus::Active && !self.quarantined
    }
}

#[derive(Debug, Default)]
struct Snapshot {
    by_id: HashMap<Uuid, Arc<TenantEntry>>,
    by_slug: HashMap<String, Uuid>,
    by_domain: HashMap<String, Uuid>,
}

/// See the module doc.
#[derive(Debug)]
pub struct TenantDirectory {
    installation: Installation,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Bumped after every reload, for whoever follows tenant changes (NATS accounts).
    reloads: tokio::sync::watch::Sender<u64>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    slug: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Array<Text>)]
    domains: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    quarantined: bool,
}

impl TenantDirectory {
    /// Loads the directory once.
    pub async fn load(installation: &Installation) -> anyhow::Result<Arc<Self>> {
        let directory = Arc::new(Self {
            installation: installation.clone(),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            reloads: tokio::sync::watch::Sender::new(0),
        });
        let mut conn = db::connect(&installation.database_url).await?;
        directory.reload(&mut conn).await?;
        Ok(directory)
    }

    /// Tenants where `email` is a member (`public.tenant_memberships`, a login hint; the
    /// tenant's own `users` table is the truth).
    pub async fn tenants_of_member(
        &self,
        gateway: &super::gateway::Gateway,
        email: &str,
    ) -> Result<Vec<Arc<TenantEntry>>, super::transaction::TxError> {
        use crate::schema::public::tenant_memberships;
        use diesel::{ExpressionMethods as _, QueryDsl as _};
        let mut conn = gateway.platform_unchecked().await?;
        let ids: Vec<uuid::Uuid> = tenant_memberships::table
            .filter(tenant_memberships::email.eq(email))
            .select(tenant_memberships::tenant_id)
            .load(&mut *conn)
            .await?;
        Ok(ids.into_iter().filter_map(|id| self.by_id(id)).collect())
    }

    /// Records that `email` is a member of `tenant` with `role` (a login hint, committed on
    /// its own before the user row is written in the tenant's transaction: a hint without
    /// a user finds nobody at login).
    pub async fn record_member(
        &self,
        gateway: &super::gateway::Gateway,
        tenant: &TenantEntry,
        email: &str,
        role: crate::auth::Role,
    ) -> Result<(), super::transaction::TxError> {
        let mut conn = gateway.platform_unchecked().await?;
        crate::auth::users::record_membership(&mut conn, tenant, email, role).await?;
        Ok(())
    }

    /// Records which tenant an onboarding download token (its SHA-256, hex) belongs to:
    /// committed on its own before the package is written in the tenant's transaction (a
    /// tenant role cannot write `public`); an index row without a package finds nothing.
    pub async fn record_onboarding_token(
        &self,
        gateway: &super::gateway::Gateway,
        tenant: &TenantEntry,
        token_hash: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), super::transaction::TxError> {
        use crate::schema::public::onboarding_tokens;
        use diesel::ExpressionMethods as _;
        let mut conn = gateway.platform_unchecked().await?;
        diesel::insert_into(onboarding_tokens::table)
            .values((
                onboarding_tokens::token_hash.eq(token_hash),
                onboarding_tokens::tenant_id.eq(tenant.id),
                onboarding_tokens::expires_at.eq(expires_at),
            ))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// The tenant an onboarding download token (its SHA-256, hex) belongs to, if any; one
    /// indexed read of `public`, no tenant schema searched.
    pub async fn onboarding_token_tenant(
        &self,
        gateway: &super::gateway::Gateway,
        token_hash: &str,
    ) -> Result<Option<Arc<TenantEntry>>, super::transaction::TxError> {
        use crate::schema::public::onboarding_tokens;
        use diesel::{ExpressionMethods as _, OptionalExtension as _, QueryDsl as _};
        let mut conn = gateway.platform_unchecked().await?;
        let tenant: Option<Uuid> = onboarding_tokens::table
            .filter(onboarding_tokens::token_hash.eq(token_hash))
            .select(onboarding_tokens::tenant_id)
            .first(&mut conn)
            .await
            .optional()?;
        Ok(tenant.and_then(|id| self.by_id(id)))
    }

    /// Every tenant's active edge CA: (tenant id, subject key identifier, certificate PEM).
    /// One read per tenant schema, on the platform pool: for the edge listener's trust map,
    /// refreshed in the background, never per request.
    pub async fn edge_cas(
        &self,
        gateway: &super::gateway::Gateway,
    ) -> Result<Vec<(Uuid, String, String)>, super::transaction::TxError> {
        #[derive(QueryableByName)]
        struct CaRow {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            tenant_id: Uuid,
            #[diesel(sql_type = Text)]
            key_identifier: String,
            #[diesel(sql_type = Text)]
            certificate_pem: String,
        }
        let tenants = self.all();
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for the whole fleet (ids are uuids, schemas quoted identifiers).
        let sql = tenants
            .iter()
            .map(|tenant| {
                format!(
                    "SELECT '{}'::uuid AS tenant_id, key_identifier, certificate_pem FROM {}.tenant_cas \
                     WHERE revoked_at IS NULL AND key_identifier IS NOT NULL AND not_after > now()",
                    tenant.id,
                    db::quote_ident(&tenant.slug.schema_name())
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut conn = gateway.platform_unchecked().await?;
        let rows: Vec<CaRow> = diesel::sql_query(sql).load(&mut conn).await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.tenant_id, row.key_identifier, row.certificate_pem))
            .collect())
    }

    /// Which of the given (tenant id, certificate serial) pairs are revoked or no longer
    /// known components of their tenant: one statement for the tenants named, on the
    /// platform pool; for the edge listener, which closes those connections.
    pub async fn revoked_edge_serials(
        &self,
        gateway: &super::gateway::Gateway,
        open: &[(Uuid, String)],
    ) -> Result<Vec<(Uuid, String)>, super::transaction::TxError> {
        #[derive(QueryableByName)]
        struct Live {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            tenant_id: Uuid,
            #[diesel(sql_type = Text)]
            serial: String,
        }
        let mut tenants: Vec<Uuid> = open.iter().map(|(tenant, _)| *tenant).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let known: Vec<_> = tenants.iter().filter_map(|id| self.by_id(*id)).collect();
        if known.is_empty() {
            return Ok(open.to_vec());
        }
        // The live certificates among those open, per tenant schema (serials are hex,
        // checked by the table's constraint; they are bound, never spliced).
        let serials: Vec<&str> = open.iter().map(|(_, serial)| serial.as_str()).collect();
        let sql = known
            .iter()
            .map(|tenant| {
                format!(
                    "SELECT '{}'::uuid AS tenant_id, serial FROM {}.edge_components \
                     WHERE revoked_at IS NULL AND serial = ANY($1)",
                    tenant.id,
                    db::quote_ident(&tenant.slug.schema_name())
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut conn = gateway.platform_unchecked().await?;
        let live: Vec<Live> = diesel::sql_query(sql)
            .bind::<diesel::sql_types::Array<Text>, _>(serials)
            .load(&mut conn)
            .await?;
        let live: std::collections::HashSet<(Uuid, String)> =
            live.into_iter().map(|row| (row.tenant_id, row.serial)).collect();
        Ok(open
            .iter()
            .filter(|pair| !live.contains(*pair))
            .cloned()
            .collect())
    }

    /// Re-reads every tenant and domain (one query) and swaps the snapshot.
    pub async fn reload(&self, conn: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT t.id, t.slug, t.name, t.status, \
               coalesce(array_agg(d.domain) FILTER (WHERE d.domain IS NOT NULL), '{}') AS domains, \
               EXISTS (SELECT 1 FROM public.tenant_quarantine q WHERE q.tenant_id = t.id) AS quarantined \
             FROM public.tenants t LEFT JOIN public.tenant_domains d ON d.tenant_id = t.id \
             GROUP BY t.id",
        )
        .load(conn)
        .await?;
        let mut snapshot = Snapshot::default();
        for row in rows {
            let Ok(slug) = Slug::parse(&row.slug) else {
                tracing::error!(slug = row.slug, "tenant with an invalid slug ignored");
                continue;
            };
            let status = TenantStatus::from_stored(&row.status);
            let mut entry = TenantEntry::new(&self.installation, row.id, slug, row.name, status);
            entry.quarantined = row.quarantined;
            snapshot.by_slug.insert(entry.slug.to_string(), entry.id);
            for domain in row.domains {
                snapshot.by_domain.insert(domain, entry.id);
            }
            snapshot.by_id.insert(entry.id, Arc::new(entry));
        }
        if let Ok(mut current) = self.snapshot.write() {
            *current = Arc::new(snapshot);
        }
        self.reloads.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Wakes up after each reload (the directory may have changed).
    pub fn reloaded(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn by_id(&self, id: Uuid) -> Option<Arc<TenantEntry>> {
        self.snapshot().by_id.get(&id).cloned()
    }

    pub fn by_slug(&self, slug: &str) -> Option<Arc<TenantEntry>> {
        let snapshot = self.snapshot();
        snapshot
            .by_slug
            .get(slug)
            .and_then(|id| snapshot.by_id.get(id))
            .cloned()
    }

    /// The tenant whose vanity domain is `host` (already normalised).
    pub fn by_domain(&self, host: &str) -> Option<Arc<TenantEntry>> {
        let snapshot = self.snapshot();
        snapshot
            .by_domain
            .get(host)
            .and_then(|id| snapshot.by_id.get(id))
            .cloned()
    }

    /// Every tenant.
    pub fn all(&self) -> Vec<Arc<TenantEntry>> {
        self.snapshot().by_id.values().cloned().collect()
    }

    /// Every tenant but the platform tenant.
    pub fn customer_tenants(&self) -> Vec<Arc<TenantEntry>> {
        self.snapshot()
            .by_id
            .values()
            .filter(|t| !t.slug.is_platform())
            .cloned()
            .collect()
    }

    /// Keeps the directory fresh until the returned task is aborted: LISTEN on the
    /// channel, reload on every notification (coalescing bursts), reload periodically,
    /// and reconnect with a back-off when the connection drops.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let directory = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match directory.listen_once().await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(error) => {
                        tracing::warn!(%error, "tenant directory listener failed; reconnecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
    }

    async fn listen_once(&self) -> anyhow::Result<()> {
        let mut conn = db::connect(&self.installation.database_url).await?;
        conn.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // Reload after LISTEN so that no change between the two is missed.
        self.reload(&mut conn).await?;
        let mut reload_conn = db::connect(&self.installation.database_url).await?;
        let mut notifications = std::pin::pin!(conn.notifications_stream());
        loop {
            let next = tokio::time::timeout(PERIODIC_RELOAD, notifications.next()).await;
            match next {
                Ok(Some(Ok(_))) | Err(_) => {
                    // Coalesce a burst of notifications into one reload.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    while let Ok(Some(Ok(_))) =
                        tokio::time::timeout(Duration::ZERO, notifications.next()).await
                    {}
                    self.reload(&mut reload_conn).await?;
                }
                Ok(Some(Err(error))) => return Err(error.into()),
                Ok(None) => anyhow::bail!("the notification stream ended"),
            }
        }
    }
}
