//! The migration ledger in `public`: which migrations each schema has, with checksums,
//! timings and the last error, and the one query that tells whether anything is pending.
//!
//! `enclave_schema_migrations` holds one row per applied migration per schema;
//! `enclave_schema_state` one row per schema with its latest version, fingerprint, timing
//! and last error. The ledger belongs to the runner, not to a migration: it is created by
//! [`BOOTSTRAP_SQL`] before the first `public` migration, in the same transaction.

use std::collections::HashMap;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{Migration, MigrationError, MigrationSet, MigrationSets, fingerprint};

/// Creates the ledger and hardens the database: nobody but the owner may create objects
/// in `public` or use it (tenant roles never need `public`).
pub const BOOTSTRAP_SQL: &str = r#"
REVOKE CREATE, USAGE ON SCHEMA public FROM PUBLIC;
CREATE TABLE IF NOT EXISTS public.enclave_schema_migrations (
    schema_name  text NOT NULL,
    version      text NOT NULL,
    checksum     text NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    duration_ms  bigint NOT NULL,
    PRIMARY KEY (schema_name, version)
);
CREATE TABLE IF NOT EXISTS public.enclave_schema_state (
    schema_name    text PRIMARY KEY,
    version        text,
    fingerprint    text,
    migrated_at    timestamptz,
    duration_ms    bigint,
    last_error     text,
    last_error_at  timestamptz
);
"#;

/// Name of the `public` schema in the ledger.
pub const PUBLIC_SCHEMA: &str = "public";

#[derive(QueryableByName)]
struct LedgerExists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

/// What the ledger says is out of date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staleness {
    /// `public` has pending migrations.
    pub public: bool,
    /// Tenant schemas whose fingerprint is not the current one (or that have no state).
    pub tenant_schemas: Vec<String>,
    /// There is no platform tenant.
    pub platform_missing: bool,
}

impl Staleness {
    pub fn is_up_to_date(&self, require_platform_tenant: bool) -> bool {
        !self.public && self.tenant_schemas.is_empty() && !(require_platform_tenant && self.platform_missing)
    }
}

#[derive(QueryableByName)]
struct StaleRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    schema_name: String,
}

/// Compares every schema's ledger fingerprint with the embedded sets. `None` when the
/// ledger itself does not exist yet (a new database).
///
/// Two statements whatever the number of tenants: whether the ledger exists, and one
/// comparison query over it that returns only the rows that are out of date.
pub async fn stale_schemas(
    conn: &mut AsyncPgConnection,
    sets: &MigrationSets,
) -> Result<Option<Staleness>, MigrationError> {
    let exists: LedgerExists = diesel::sql_query(
        "SELECT to_regclass('public.enclave_schema_state') IS NOT NULL \
         AND to_regclass('public.tenants') IS NOT NULL AS exists",
    )
    .get_result(conn)
    .await
    .map_err(|e| MigrationError::database("cannot read the migration ledger", &e))?;
    if !exists.exists {
        return Ok(None);
    }
    let rows: Vec<StaleRow> = diesel::sql_query(
        "SELECT 'public' AS kind, 'public' AS schema_name \
           WHERE NOT EXISTS (SELECT 1 FROM public.enclave_schema_state \
                             WHERE schema_name = 'public' AND fingerprint = $1) \
         UNION ALL \
         SELECT 'platform', 'tenant_platform' \
           WHERE NOT EXISTS (SELECT 1 FROM public.tenants WHERE slug = 'platform') \
         UNION ALL \
         (SELECT 'tenant', 'tenant_' || t.slug FROM public.tenants t \
           LEFT JOIN public.enclave_schema_state s ON s.schema_name = 'tenant_' || t.slug \
           WHERE s.fingerprint IS DISTINCT FROM $2 \
           ORDER BY t.slug)",
    )
    .bind::<Text, _>(sets.public.fingerprint())
    .bind::<Text, _>(sets.tenant.fingerprint())
    .load(conn)
    .await
    .map_err(|e| MigrationError::database("cannot read the migration ledger", &e))?;
    let mut staleness = Staleness {
        public: false,
        tenant_schemas: Vec::new(),
        platform_missing: false,
    };
    for row in rows {
        match row.kind.as_str() {
            "public" => staleness.public = true,
            "platform" => staleness.platform_missing = true,
            _ => staleness.tenant_schemas.push(row.schema_name),
        }
    }
    Ok(Some(staleness))
}

#[derive(QueryableByName)]
struct AppliedRow {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Text)]
    checksum: String,
}

/// Applied `(version, checksum)` per schema, for the given schemas, in one query.
pub async fn applied(
    conn: &mut AsyncPgConnection,
    schemas: &[String],
) -> Result<HashMap<String, Vec<(String, String)>>, MigrationError> {
    let rows: Vec<AppliedRow> = diesel::sql_query(
        "SELECT schema_name, version, checksum FROM public.enclave_schema_migrations \
         WHERE schema_name = ANY($1) ORDER BY schema_name, version",
    )
    .bind::<Array<Text>, _>(schemas)
    .load(conn)
    .await
    .map_err(|e| MigrationError::database("cannot read the migration ledger", &e))?;
    let mut by_schema: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for row in rows {
        by_schema
            .entry(row.schema_name)
            .or_default()
            .push((row.version, row.checksum));
    }
    Ok(by_schema)
}

/// The migrations of `set` still to apply to `schema`, given what it has applied.
/// Refuses a schema with an edited migration (checksum mismatch) or with a migration this
/// build does not know.
pub fn pending<'a>(
    set: &'a MigrationSet,
    schema: &str,
    applied: &[(String, String)],
) -> Result<Vec<&'a Migration>, MigrationError> {
    let mut applied_versions = HashMap::with_capacity(applied.len());
    for (version, checksum) in applied {
        let Some(known) = set.get(version) else {
            return Err(MigrationError::UnknownVersion {
                schema: schema.to_owned(),
                version: version.clone(),
            });
        };
        if &known.checksum != checksum {
            return Err(MigrationError::ChecksumMismatch {
                schema: schema.to_owned(),
                version: version.clone(),
                recorded: checksum.clone(),
                embedded: known.checksum.clone(),
            });
        }
        applied_versions.insert(version.as_str(), ());
    }
    Ok(set
        .migrations()
        .iter()
        .filter(|m| !applied_versions.contains_key(m.version.as_str()))
        .collect())
}

/// Records that `migration` was applied to `schema` (inside the migrating transaction).
pub async fn record_applied(
    conn: &mut AsyncPgConnection,
    schema: &str,
    migration: &Migration,
    took: Duration,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "INSERT INTO public.enclave_schema_migrations (schema_name, version, checksum, duration_ms) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind::<Text, _>(schema)
    .bind::<Text, _>(&migration.version)
    .bind::<Text, _>(&migration.checksum)
    .bind::<BigInt, _>(millis(took))
    .execute(conn)
    .await
    .map(drop)
}

/// Records the state of a schema that is now fully migrated (inside the migrating
/// transaction): latest version, fingerprint, duration, and no error.
pub async fn record_up_to_date(
    conn: &mut AsyncPgConnection,
    schema: &str,
    set: &MigrationSet,
    took: Duration,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "INSERT INTO public.enclave_schema_state \
           (schema_name, version, fingerprint, migrated_at, duration_ms, last_error, last_error_at) \
         VALUES ($1, $2, $3, now(), $4, NULL, NULL) \
         ON CONFLICT (schema_name) DO UPDATE SET version = EXCLUDED.version, \
           fingerprint = EXCLUDED.fingerprint, migrated_at = EXCLUDED.migrated_at, \
           duration_ms = EXCLUDED.duration_ms, last_error = NULL, last_error_at = NULL",
    )
    .bind::<Text, _>(schema)
    .bind::<Nullable<Text>, _>(set.latest_version())
    .bind::<Text, _>(fingerprint(set.migrations().iter()))
    .bind::<BigInt, _>(millis(took))
    .execute(conn)
    .await
    .map(drop)
}

/// Records a failed attempt (after the migrating transaction rolled back).
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    schema: &str,
    error: &str,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "INSERT INTO public.enclave_schema_state (schema_name, last_error, last_error_at) \
         VALUES ($1, $2, now()) \
         ON CONFLICT (schema_name) DO UPDATE SET last_error = EXCLUDED.last_error, \
           last_error_at = EXCLUDED.last_error_at",
    )
    .bind::<Text, _>(schema)
    .bind::<Text, _>(error)
    .execute(conn)
    .await
    .map(drop)
}

/// Removes a schema from the ledger (when its tenant is dropped).
pub async fn forget(conn: &mut AsyncPgConnection, schema: &str) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "WITH gone AS (DELETE FROM public.enclave_schema_migrations WHERE schema_name = $1) \
         DELETE FROM public.enclave_schema_state WHERE schema_name = $1",
    )
    .bind::<Text, _>(schema)
    .execute(conn)
    .await
    .map(drop)
}

/// One schema's ledger state, for `enclave migrate --status`.
#[derive(Debug, QueryableByName)]
pub struct SchemaState {
    #[diesel(sql_type = Text)]
    pub schema_name: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub migrated_at: Option<chrono::DateTime<chrono::Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

/// Every schema Enclave knows (public and each tenant), with its ledger state.
pub async fn states(conn: &mut AsyncPgConnection) -> Result<Vec<SchemaState>, MigrationError> {
    diesel::sql_query(
        "SELECT n.schema_name, s.migrated_at, s.last_error \
         FROM (SELECT 'public' AS schema_name \
               UNION ALL SELECT 'tenant_' || slug FROM public.tenants) n \
         LEFT JOIN public.enclave_schema_state s USING (schema_name) \
         ORDER BY n.schema_name <> 'public', n.schema_name",
    )
    .load(conn)
    .await
    .map_err(|e| MigrationError::database("cannot read the migration ledger", &e))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
