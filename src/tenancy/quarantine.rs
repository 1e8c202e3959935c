//! Tenants Enclave took out of service itself, in `public.tenant_quarantine`.
//!
//! A quarantined tenant is refused like a suspended one (`TENANT_UNAVAILABLE`: the tenant
//! directory reads this table, and a trigger makes every server reload it), but the
//! decision is Enclave's, and so is the release:
//!
//! - `drift`: its schema no longer matches a freshly migrated one (see
//!   `migrations::drift`); the first check that finds it matching again releases it;
//! - `migration_failed`: `enclave migrate --continue-on-error` could not migrate it; the
//!   run that migrates it releases it. `serve` and `worker` leave such a tenant alone
//!   (they start without it); `enclave migrate` retries it.
//!
//! Operators read the summary with `enclave migrate --status`; platform admins see the
//! reason and counts with the `quarantinedTenants` query (never the summary, which names
//! schema objects).

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::slug::SCHEMA_PREFIX;

/// Why a tenant is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineReason {
    /// Its schema drifted from a freshly migrated one.
    Drift,
    /// A fleet migration failed on it (`--continue-on-error`).
    MigrationFailed,
}

impl QuarantineReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drift => "drift",
            Self::MigrationFailed => "migration_failed",
        }
    }

    /// The reason a stored value means.
    pub fn from_stored(stored: &str) -> Self {
        if stored == Self::MigrationFailed.as_str() {
            Self::MigrationFailed
        } else {
            Self::Drift
        }
    }
}

/// One quarantined tenant.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct QuarantineRecord {
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    #[diesel(sql_type = Text)]
    pub slug: String,
    #[diesel(sql_type = Text)]
    reason: String,
    /// For operators: the differences, or the migration error.
    #[diesel(sql_type = Text)]
    pub summary: String,
    /// Number of differing catalog objects (0 for a failed migration).
    #[diesel(sql_type = Integer)]
    pub differences: i32,
    #[diesel(sql_type = Timestamptz)]
    pub quarantined_at: DateTime<Utc>,
    /// When a check or a migration last confirmed it.
    #[diesel(sql_type = Timestamptz)]
    pub checked_at: DateTime<Utc>,
}

impl QuarantineRecord {
    pub fn reason(&self) -> QuarantineReason {
        QuarantineReason::from_stored(&self.reason)
    }
}

/// Every quarantined tenant, by slug.
pub async fn list(conn: &mut AsyncPgConnection) -> Result<Vec<QuarantineRecord>, diesel::result::Error> {
    diesel::sql_query(
        "SELECT q.tenant_id, t.slug, q.reason, q.summary, q.differences, q.quarantined_at, q.checked_at \
         FROM public.tenant_quarantine q JOIN public.tenants t ON t.id = q.tenant_id ORDER BY t.slug",
    )
    .load(conn)
    .await
}

/// Whether the quarantine table exists (it does once `public` is migrated).
pub async fn table_exists(conn: &mut AsyncPgConnection) -> Result<bool, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let row: Exists =
        diesel::sql_query("SELECT to_regclass('public.tenant_quarantine') IS NOT NULL AS exists")
            .get_result(conn)
            .await?;
    Ok(row.exists)
}

/// Schemas (`tenant_<slug>`) of the tenants quarantined for `reason`.
pub async fn schemas(
    conn: &mut AsyncPgConnection,
    reason: QuarantineReason,
) -> Result<Vec<String>, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Schema {
        #[diesel(sql_type = Text)]
        schema_name: String,
    }
    let rows: Vec<Schema> = diesel::sql_query(
        "SELECT $1 || t.slug AS schema_name FROM public.tenant_quarantine q \
         JOIN public.tenants t ON t.id = q.tenant_id WHERE q.reason = $2 ORDER BY 1",
    )
    .bind::<Text, _>(SCHEMA_PREFIX)
    .bind::<Text, _>(reason.as_str())
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.schema_name).collect())
}

/// Quarantines the tenant of `schema` (`tenant_<slug>`) for `reason`, or refreshes its
/// record: the summary and count are replaced, `quarantined_at` is kept while the reason
/// stays the same. A schema without a tenant row is ignored.
pub async fn enter(
    conn: &mut AsyncPgConnection,
    schema: &str,
    reason: QuarantineReason,
    summary: &str,
    differences: usize,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "INSERT INTO public.tenant_quarantine (tenant_id, reason, summary, differences) \
         SELECT t.id, $2, $3, $4 FROM public.tenants t WHERE $5 || t.slug = $1 \
         ON CONFLICT (tenant_id) DO UPDATE SET \
           quarantined_at = CASE WHEN tenant_quarantine.reason = EXCLUDED.reason \
                                 THEN tenant_quarantine.quarantined_at ELSE now() END, \
           reason = EXCLUDED.reason, summary = EXCLUDED.summary, \
           differences = EXCLUDED.differences, checked_at = now()",
    )
    .bind::<Text, _>(schema)
    .bind::<Text, _>(reason.as_str())
    .bind::<Text, _>(summary)
    .bind::<Integer, _>(i32::try_from(differences).unwrap_or(i32::MAX))
    .bind::<Text, _>(SCHEMA_PREFIX)
    .execute(conn)
    .await
    .map(drop)
}

/// Releases the tenants of `schemas` from quarantine (any reason); returns the schemas
/// that were quarantined.
pub async fn release(
    conn: &mut AsyncPgConnection,
    schemas: &[String],
) -> Result<Vec<String>, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Released {
        #[diesel(sql_type = Text)]
        schema_name: String,
    }
    if schemas.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Released> = diesel::sql_query(
        "DELETE FROM public.tenant_quarantine q USING public.tenants t \
         WHERE t.id = q.tenant_id AND $2 || t.slug = ANY($1) \
         RETURNING $2 || t.slug AS schema_name",
    )
    .bind::<Array<Text>, _>(schemas)
    .bind::<Text, _>(SCHEMA_PREFIX)
    .load(conn)
    .await?;
    let mut released: Vec<String> = rows.into_iter().map(|r| r.schema_name).collect();
    released.sort();
    Ok(released)
}
