//! Drift: after every migration run (every `serve`, `worker`, `migrate` and CLI start),
//! each schema's catalog is compared with the catalog of a freshly migrated schema (see
//! `catalog` for the fingerprints and the references).
//!
//! - `public` must match its reference exactly: drift there stops startup with the
//!   differences printed (the platform's own tables are no place for hand-made DDL).
//! - Every *up-to-date* tenant schema (its ledger fingerprint is this build's) is
//!   compared, all of them in one catalog query. A tenant that differs is quarantined
//!   (`tenancy::quarantine`, reason `drift`): its requests get `TENANT_UNAVAILABLE` until
//!   a check finds it matching again, which releases it (from any quarantine: a tenant
//!   that failed a migration and is now migrated and matching is released too). Tenants
//!   with pending migrations are not compared (they differ by construction); the run
//!   that migrates them decides.
//!
//! Nothing here changes a tenant schema: `enclave tenant repair <slug>` prints the
//! difference, and the operator undoes it (or restores the tenant from an export).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::catalog::{self, CatalogDiff, ReferenceKind};
use super::ledger::PUBLIC_SCHEMA;
use super::{MigrationError, MigrationSets};
use crate::tenancy::quarantine::{self, QuarantineReason};
use crate::tenancy::slug::SCHEMA_PREFIX;

/// At most this many differences are kept in a quarantine summary (the count is exact;
/// `enclave tenant repair` prints them all).
const SUMMARY_LINES: usize = 20;

/// One drifted tenant schema and how it differs from a freshly migrated one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDrift {
    /// `tenant_<slug>`.
    pub schema: String,
    pub diff: CatalogDiff,
}

/// What a drift check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftReport {
    /// Tenant schemas compared (the up-to-date ones).
    pub checked: usize,
    /// Those that differ (all quarantined now), by schema name.
    pub drifted: Vec<TenantDrift>,
    /// Schemas released from quarantine by this check.
    pub released: Vec<String>,
    /// How long the check took (references read or built, one catalog query, and the
    /// quarantine updates).
    pub took: Duration,
}

/// Checks `public` (an error on drift) and every up-to-date tenant schema (drifted ones
/// are quarantined, matching ones released); see the module doc.
pub async fn check(
    conn: &mut AsyncPgConnection,
    sets: &MigrationSets,
) -> Result<DriftReport, MigrationError> {
    let started = Instant::now();
    check_public(conn, sets).await?;
    let reference = catalog::reference(conn, ReferenceKind::Tenant, &sets.tenant).await?;
    let schemas = up_to_date_tenant_schemas(conn, sets).await?;
    let digests = catalog::digests(conn, &schemas)
        .await
        .map_err(|e| MigrationError::database("cannot read the tenant schemas' catalog", &e))?;
    let suspects: Vec<String> = schemas
        .iter()
        .filter(|schema| digests.get(*schema) != Some(&reference.digest))
        .cloned()
        .collect();
    let mut drifted = Vec::new();
    if !suspects.is_empty() {
        let mut objects = catalog::objects(conn, &suspects)
            .await
            .map_err(|e| MigrationError::database("cannot read the tenant schemas' catalog", &e))?;
        for schema in suspects {
            let actual = objects.remove(&schema).unwrap_or_default();
            let mut diff = CatalogDiff::between(&reference.objects, &actual);
            if actual.is_empty() {
                // No schema at all (dropped by hand): one difference says so.
                diff = CatalogDiff {
                    missing: vec![(format!("schema {schema}"), "(the whole schema)".to_owned())],
                    ..CatalogDiff::default()
                };
            }
            if !diff.is_empty() {
                drifted.push(TenantDrift { schema, diff });
            }
        }
    }
    let released = record(conn, &schemas, &drifted).await?;
    for drift in &drifted {
        tracing::warn!(
            schema = %drift.schema,
            differences = drift.diff.len(),
            first = %drift.diff.lines().into_iter().next().unwrap_or_default(),
            "tenant schema drifted from a freshly migrated schema; quarantined (see `enclave tenant repair`)"
        );
    }
    for schema in &released {
        tracing::info!(%schema, "tenant schema matches a freshly migrated schema again; released from quarantine");
    }
    let report = DriftReport {
        checked: schemas.len(),
        drifted,
        released,
        took: started.elapsed(),
    };
    tracing::debug!(
        checked = report.checked,
        drifted = report.drifted.len(),
        took_ms = report.took.as_millis() as u64,
        "drift check"
    );
    Ok(report)
}

/// Fails with the differences when `public` differs from a freshly migrated `public`.
async fn check_public(conn: &mut AsyncPgConnection, sets: &MigrationSets) -> Result<(), MigrationError> {
    let reference = catalog::reference(conn, ReferenceKind::Public, &sets.public).await?;
    let names = [PUBLIC_SCHEMA.to_owned()];
    let digest = catalog::digests(conn, &names)
        .await
        .map_err(|e| MigrationError::database("cannot read the catalog of public", &e))?;
    if digest.get(PUBLIC_SCHEMA) == Some(&reference.digest) {
        return Ok(());
    }
    let actual = catalog::objects(conn, &names)
        .await
        .map_err(|e| MigrationError::database("cannot read the catalog of public", &e))?
        .remove(PUBLIC_SCHEMA)
        .unwrap_or_default();
    let diff = CatalogDiff::between(&reference.objects, &actual);
    if diff.is_empty() {
        return Ok(());
    }
    Err(MigrationError::PublicDrift {
        differences: diff.len(),
        diff: diff.to_string(),
    })
}

#[derive(QueryableByName)]
struct SchemaName {
    #[diesel(sql_type = Text)]
    schema_name: String,
}

/// Schemas of the tenants whose ledger says they are fully migrated by this build.
async fn up_to_date_tenant_schemas(
    conn: &mut AsyncPgConnection,
    sets: &MigrationSets,
) -> Result<Vec<String>, MigrationError> {
    let rows: Vec<SchemaName> = diesel::sql_query(
        "SELECT s.schema_name FROM public.tenants t \
         JOIN public.enclave_schema_state s ON s.schema_name = $2 || t.slug \
         WHERE s.fingerprint = $1 ORDER BY 1",
    )
    .bind::<Text, _>(sets.tenant.fingerprint())
    .bind::<Text, _>(SCHEMA_PREFIX)
    .load(conn)
    .await
    .map_err(|e| MigrationError::database("cannot read the migration ledger", &e))?;
    Ok(rows.into_iter().map(|r| r.schema_name).collect())
}

/// Quarantines the drifted schemas and releases the checked ones that match, in one
/// transaction; writes only what changes. Returns the released schemas.
async fn record(
    conn: &mut AsyncPgConnection,
    checked: &[String],
    drifted: &[TenantDrift],
) -> Result<Vec<String>, MigrationError> {
    let current = quarantine::list(conn)
        .await
        .map_err(|e| MigrationError::database("cannot read the tenant quarantine", &e))?;
    let quarantined: HashSet<String> = current
        .iter()
        .map(|q| format!("{SCHEMA_PREFIX}{}", q.slug))
        .collect();
    let drifted_names: HashSet<&str> = drifted.iter().map(|d| d.schema.as_str()).collect();
    let to_release: Vec<String> = checked
        .iter()
        .filter(|schema| quarantined.contains(*schema) && !drifted_names.contains(schema.as_str()))
        .cloned()
        .collect();
    if drifted.is_empty() && to_release.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(async |conn| {
        for drift in drifted {
            quarantine::enter(
                conn,
                &drift.schema,
                QuarantineReason::Drift,
                &summary(&drift.diff),
                drift.diff.len(),
            )
            .await?;
        }
        quarantine::release(conn, &to_release).await
    })
    .await
    .map_err(|e| MigrationError::database("cannot record the tenant quarantine", &e))
}

/// The stored summary of a drift: the count and the first differences.
fn summary(diff: &CatalogDiff) -> String {
    let lines = diff.lines();
    let mut text = format!(
        "{} difference(s) from a freshly migrated schema:\n  {}",
        lines.len(),
        lines
            .iter()
            .take(SUMMARY_LINES)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    if lines.len() > SUMMARY_LINES {
        text.push_str(&format!("\n  … and {} more", lines.len() - SUMMARY_LINES));
    }
    text
}

/// How one tenant schema differs from a freshly migrated one, for `enclave tenant repair`.
/// `None` when the tenant has pending migrations (it is compared once migrated).
pub async fn tenant_diff(
    conn: &mut AsyncPgConnection,
    sets: &MigrationSets,
    schema: &str,
) -> Result<Option<CatalogDiff>, MigrationError> {
    let up_to_date = up_to_date_tenant_schemas(conn, sets).await?;
    if !up_to_date.iter().any(|s| s == schema) {
        return Ok(None);
    }
    let reference = catalog::reference(conn, ReferenceKind::Tenant, &sets.tenant).await?;
    let names = [schema.to_owned()];
    let actual = catalog::objects(conn, &names)
        .await
        .map_err(|e| MigrationError::database(format!("cannot read the catalog of {schema}"), &e))?
        .remove(schema)
        .unwrap_or_default();
    if actual.is_empty() {
        return Ok(Some(CatalogDiff {
            missing: vec![(format!("schema {schema}"), "(the whole schema)".to_owned())],
            ..CatalogDiff::default()
        }));
    }
    Ok(Some(CatalogDiff::between(&reference.objects, &actual)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_keeps_the_count_and_the_first_differences() {
        let diff = CatalogDiff {
            extra: (0..25)
                .map(|i| (format!("column t.c{i}"), "text null".to_owned()))
                .collect(),
            ..CatalogDiff::default()
        };
        let text = summary(&diff);
        assert!(text.starts_with("25 difference(s)"), "{text}");
        assert!(text.contains("extra column t.c0: text null"), "{text}");
        assert!(text.ends_with("… and 5 more"), "{text}");
    }
}
