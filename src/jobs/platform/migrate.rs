//! `migrate_tenant`: brings one tenant schema to this build's tenant migrations, the way
//! the startup runner would (`runner::apply`: the pending migrations, the tenant role's
//! grants, the ledger), in ONE platform transaction that also completes the job and holds
//! the migration lock (`pg_advisory_xact_lock`, the key of fleet migrations and
//! provisioning): it never runs beside a fleet migration, and a failure leaves the schema
//! as it was. A schema with nothing pending is recorded as up to date (`{"applied": []}`).

use chrono::{DateTime, Utc};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use serde_json::json;

use super::tenant_slug;
use crate::jobs::error::JobError;
use crate::jobs::queue::{self, ClaimedJob};
use crate::tenancy::Installation;
use crate::tenancy::migrations::ledger;
use crate::tenancy::migrations::runner::{self, MIGRATION_LOCK_KEY, Target};

/// Runs the job (see the module doc); returns `{"schema", "applied": [versions]}`.
pub async fn run(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    job: &ClaimedJob,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, JobError> {
    conn.transaction(async |conn| {
        queue::hold(conn, job).await?;
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
            .execute(conn)
            .await?;
        let slug = tenant_slug(conn, job).await?;
        let schema = slug.schema_name();
        let role = installation.tenant_role(&slug);
        let set = &installation.migrations.tenant;
        let migration =
            |error: crate::tenancy::migrations::MigrationError| JobError::Migration(error.to_string());
        let applied = ledger::applied(conn, std::slice::from_ref(&schema))
            .await
            .map_err(migration)?;
        let done = applied.get(&schema).map(Vec::as_slice).unwrap_or_default();
        let pending = ledger::pending(set, &schema, done).map_err(migration)?;
        // Even with nothing pending: `apply` then records the schema as up to date (its
        // ledger state may be what was stale) and renews the role's grants.
        let target = Target::Tenant {
            schema: &schema,
            role: &role,
        };
        runner::apply(conn, &target, set, &pending, installation.migration_lock_timeout)
            .await
            .map_err(migration)?;
        tracing::info!(
            schema,
            applied = pending.len(),
            "tenant migrated by a platform job"
        );
        let versions: Vec<&str> = pending.iter().map(|m| m.version.as_str()).collect();
        let result = json!({ "schema": schema, "applied": versions });
        queue::complete(conn, job, now, &result).await?;
        Ok(result)
    })
    .await
}
