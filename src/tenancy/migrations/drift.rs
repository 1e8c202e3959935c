//! Drift: after every migration run (every `serve`, `worker`, `migrate` and CLI start),
//! each schema's catalog is compared with the catalog of a freshly migrated schema (see
//! `catalog` for the fingerprints and the references).
//!
//! - `public` must match its reference exactly: drift there stops startup with the
//!   differences printed (the platform's own tables are no place for hand-made DDL). It
//!   goes through the same change test as the tenant schemas (its own reference key), in
//!   the same query: a start re-reads it only when its catalog can have changed. (Read at
//!   every start, its digest alone cost as much as the change test of 1,000 tenants: the
//!   digest query scans whole catalogs, whatever the number of schemas it reads.)
//! - Every *up-to-date* tenant schema (its ledger fingerprint is this build's) is
//!   compared: one cheap query first tells which schemas can have changed since a check
//!   found them matching (`verified`), then one catalog query digests those *suspects*
//!   (and every quarantined one), whatever their number. A tenant that differs is quarantined
//!   (`tenancy::quarantine`, reason `drift`): its requests get `TENANT_UNAVAILABLE` until
//!   a check finds it matching again, which releases it (from any quarantine: a tenant
//!   that failed a migration and is now migrated and matching is released too). Tenants
//!   with pending migrations are not compared (they differ by construction); the run
//!   that migrates them decides.
//!
//! Nothing here changes a tenant schema: `enclave tenant repair <slug>` prints the
//! difference, and the operator undoes it (or restores the tenant from an export).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::catalog::{self, CatalogDiff, Reference, ReferenceKind};
use super::ledger::PUBLIC_SCHEMA;
use super::verified;
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
    /// Those whose catalog was read again (fingerprinted): the others were proven
    /// unchanged since a check found them matching (see `verified`).
    pub fingerprinted: usize,
    /// Those that differ (all quarantined now), by schema name.
    pub drifted: Vec<TenantDrift>,
    /// Schemas released from quarantine by this check.
    pub released: Vec<String>,
    /// How long the check took (references read or built, the change test, the digest of
    /// the suspects, and the quarantine updates).
    pub took: Duration,
}

/// Checks `public` (an error on drift) and every up-to-date tenant schema (drifted ones
/// are quarantined, matching ones released); see the module doc.
pub async fn check(
    conn: &mut AsyncPgConnection,
    sets: &MigrationSets,
) -> Result<DriftReport, MigrationError> {
    let started = Instant::now();
    let public = catalog::reference(conn, ReferenceKind::Public, &sets.public).await?;
    let reference = catalog::reference(conn, ReferenceKind::Tenant, &sets.tenant).await?;
    // One snapshot for the change test and the digests (see `verified`).
    let found = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| compare(conn, sets, &public, &reference).await)
        .await?;
    let released = record(conn, &found, &public.key, &reference.key).await?;
    for drift in &found.drifted {
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
        checked: found.schemas.len(),
        fingerprinted: found.suspects,
        drifted: found.drifted,
        released,
        took: started.elapsed(),
    };
    tracing::debug!(
        checked = report.checked,
        fingerprinted = report.fingerprinted,
        drifted = report.drifted.len(),
        took_ms = report.took.as_millis() as u64,
        "drift check"
    );
    Ok(report)
}

/// What one snapshot of the tenant schemas showed.
struct Found {
    /// The up-to-date tenant schemas.
    schemas: Vec<String>,
    /// Quarantined tenants' schemas, before this check.
    quarantined: HashSet<String>,
    /// How many of `schemas` were fingerprinted (the rest were proven unchanged).
    suspects: usize,
    drifted: Vec<TenantDrift>,
    tested: verified::Tested,
}

/// Compares `public` with `public_reference` and the up-to-date tenant schemas with
/// `reference`: the cheap change test first (one query for all of them), then the digest
/// of the suspects (one query), then object by object those whose digest differs. Fails
/// with the differences when `public` differs.
async fn compare(
    conn: &mut AsyncPgConnection,
    sets: &MigrationSets,
    public_reference: &Reference,
    reference: &Reference,
) -> Result<Found, MigrationError> {
    let read =
        |e: diesel::result::Error| MigrationError::database("cannot read the tenant schemas' catalog", &e);
    let schemas = up_to_date_tenant_schemas(conn, sets).await?;
    let quarantined: HashSet<String> = quarantine::list(conn)
        .await
        .map_err(|e| MigrationError::database("cannot read the tenant quarantine", &e))?
        .iter()
        .map(|q| format!("{SCHEMA_PREFIX}{}", q.slug))
        .collect();
    let mut tested_names = vec![PUBLIC_SCHEMA.to_owned()];
    tested_names.extend(schemas.iter().cloned());
    let mut keys = vec![public_reference.key.as_str()];
    keys.extend(schemas.iter().map(|_| reference.key.as_str()));
    let tested = verified::test(conn, &tested_names, &keys).await.map_err(read)?;
    // A quarantined tenant is re-read at every check: only the full comparison releases it.
    let mut suspects = tested.suspects(&tested_names);
    suspects.extend(
        schemas
            .iter()
            .filter(|s| quarantined.contains(*s) && !suspects.contains(s))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let digests = if suspects.is_empty() {
        HashMap::new()
    } else {
        catalog::digests(conn, &suspects).await.map_err(read)?
    };
    let public_suspect = suspects.iter().any(|s| s == PUBLIC_SCHEMA);
    if public_suspect && digests.get(PUBLIC_SCHEMA) != Some(&public_reference.digest) {
        check_public(conn, public_reference).await?;
    }
    suspects.retain(|s| s != PUBLIC_SCHEMA);
    let differing: Vec<String> = suspects
        .iter()
        .filter(|schema| digests.get(*schema) != Some(&reference.digest))
        .cloned()
        .collect();
    let mut drifted = Vec::new();
    if !differing.is_empty() {
        let mut objects = catalog::objects(conn, &differing).await.map_err(read)?;
        for schema in differing {
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
    Ok(Found {
        suspects: suspects.len(),
        schemas,
        quarantined,
        drifted,
        tested,
    })
}

/// Fails with the differences when `public`, whose digest differs from `reference`'s,
/// differs from a freshly migrated `public` object by object (a digest can differ for
/// equal objects, see `catalog::digests`).
async fn check_public(conn: &mut AsyncPgConnection, reference: &Reference) -> Result<(), MigrationError> {
    let names = [PUBLIC_SCHEMA.to_owned()];
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

/// Quarantines the drifted schemas, releases the checked ones that match and records
/// the matching ones as verified (`verified`), in one transaction; touches the quarantine
/// only where it changes. Returns the released schemas.
async fn record(
    conn: &mut AsyncPgConnection,
    found: &Found,
    public_key: &str,
    reference_key: &str,
) -> Result<Vec<String>, MigrationError> {
    let drifted_names: HashSet<&str> = found.drifted.iter().map(|d| d.schema.as_str()).collect();
    let to_release: Vec<String> = found
        .schemas
        .iter()
        .filter(|schema| found.quarantined.contains(*schema) && !drifted_names.contains(schema.as_str()))
        .cloned()
        .collect();
    // `compare` failed, recording nothing, had `public` differed.
    let mut matching: HashMap<String, &str> = found
        .schemas
        .iter()
        .filter(|schema| !drifted_names.contains(schema.as_str()))
        .map(|schema| (schema.clone(), reference_key))
        .collect();
    matching.insert(PUBLIC_SCHEMA.to_owned(), public_key);
    let forget: Vec<String> = drifted_names.iter().map(|s| (*s).to_owned()).collect();
    conn.transaction(async |conn| {
        for drift in &found.drifted {
            quarantine::enter(
                conn,
                &drift.schema,
                QuarantineReason::Drift,
                &summary(&drift.diff),
                drift.diff.len(),
            )
            .await?;
        }
        let released = if to_release.is_empty() {
            Vec::new()
        } else {
            quarantine::release(conn, &to_release).await?
        };
        verified::record(conn, &found.tested, &matching, &forget).await?;
        Ok(released)
    })
    .await
    .map_err(|e: diesel::result::Error| MigrationError::database("cannot record the tenant quarantine", &e))
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
