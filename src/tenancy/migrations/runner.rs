//! The migration runner, shared by `enclave serve` and `enclave migrate`.
//!
//! 1. Fast path: one query over the ledger decides whether anything is pending anywhere;
//!    when nothing is, the runner returns without taking a lock.
//! 2. Otherwise it takes a session advisory lock on a dedicated connection (so that
//!    replicas starting together migrate exactly once; the others wait, re-check and find
//!    nothing to do), then, in order:
//!    - bootstraps the ledger and migrates `public`, in one transaction;
//!    - provisions the platform tenant if it is missing;
//!    - verifies every stale tenant schema's checksums (any mismatch stops the run before
//!      a single tenant is touched) and migrates each in its own transaction with a
//!      `lock_timeout`, several at once (`ENCLAVE_MIGRATION_CONCURRENCY`).
//!
//! A failed tenant is rolled back entirely, its error recorded in the ledger, and the run
//! ends with an error naming every failed schema and migration (startup fails fast).
//!
//! Fleet options ([`MigrateOptions`], `enclave migrate --canary N --continue-on-error`):
//!
//! - **Canaries**: the first N stale tenants (the platform tenant, then the oldest by
//!   creation) are migrated one after the other before any other; the first failure among
//!   them stops the run, whatever `--continue-on-error` says (a migration that fails on a
//!   canary is presumed broken; the rest of the fleet is untouched and still served by
//!   the previous version). Then the rest, several at once.
//! - **Continue on error**: a tenant that fails (outside the canaries) is quarantined
//!   (`tenancy::quarantine`, reason `migration_failed`) and reported, and the run goes on.
//!   `serve` and `worker` start without such tenants (`skip_quarantined`); `enclave
//!   migrate` retries them.
//! - **Resuming**: each tenant commits its migrations and its ledger state in one
//!   transaction, and a run's work is whatever the ledger says is stale, so a run that
//!   crashed or stopped is resumed by running it again: migrated tenants are not touched
//!   again, a tenant caught half-way was rolled back and is migrated from scratch.
//!
//! After the migrations, every run checks for drift (`drift`): `public` must match a
//! freshly migrated `public`, and every up-to-date tenant schema that does not match a
//! freshly migrated tenant schema is quarantined.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::future::join_all;

use super::drift::{self, DriftReport};
use super::ledger::{self, PUBLIC_SCHEMA};
use super::{Migration, MigrationError, MigrationSet};
use crate::db::{self, quote_ident};
use crate::tenancy::provision::{self, NewTenant};
use crate::tenancy::quarantine::{self, QuarantineReason};
use crate::tenancy::slug::{SCHEMA_PREFIX, Slug};
use crate::tenancy::{Installation, roles};

/// Key of the advisory lock that serialises migration runs (and that provisioning takes
/// in shared mode, so that no tenant is created half-way through a fleet migration).
pub const MIGRATION_LOCK_KEY: i64 = 0x656e_636c_6176_6531; // "enclave1"

impl From<diesel::result::Error> for MigrationError {
    fn from(error: diesel::result::Error) -> Self {
        Self::database("database error during migration", &error)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Nothing was pending: the run only read the ledger.
    pub was_up_to_date: bool,
    /// Migrations applied to `public`.
    pub public_applied: usize,
    /// Tenant schemas brought up to date.
    pub tenants_migrated: usize,
    /// Migrations applied across all tenant schemas.
    pub tenant_migrations_applied: usize,
    /// Whether this run provisioned the platform tenant.
    pub provisioned_platform: bool,
    /// Canary schemas migrated (in order) before the rest of the fleet.
    pub canaries: Vec<String>,
    /// Schemas that failed and were quarantined (`continue_on_error`): (schema, error).
    pub quarantined: Vec<(String, String)>,
    /// Stale schemas left alone because they are quarantined for a failed migration
    /// (`skip_quarantined`).
    pub skipped: Vec<String>,
    /// The drift check that followed the migrations.
    pub drift: DriftReport,
}

/// How a run treats the fleet; the default is startup's: fail fast, no canaries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateOptions {
    /// Provision `tenant_platform` when it is missing.
    pub ensure_platform_tenant: bool,
    /// Migrate this many stale tenants first, one at a time (the platform tenant, then
    /// the oldest), stopping at the first failure among them.
    pub canary: Option<usize>,
    /// Quarantine the tenants that fail (after the canaries) and go on.
    pub continue_on_error: bool,
    /// Leave tenants quarantined for a failed migration as they are (`serve`, `worker`);
    /// without it (`enclave migrate`) they are retried.
    pub skip_quarantined: bool,
}

/// Where a set of migrations is applied.
pub(crate) enum Target<'a> {
    Public,
    Tenant { schema: &'a str, role: &'a str },
}

impl Target<'_> {
    fn schema(&self) -> &str {
        match self {
            Target::Public => PUBLIC_SCHEMA,
            Target::Tenant { schema, .. } => schema,
        }
    }
}

/// Applies `pending` to one schema inside the caller's open transaction, then grants the
/// tenant role its privileges on the new objects and records the schema as up to date.
pub(crate) async fn apply(
    conn: &mut AsyncPgConnection,
    target: &Target<'_>,
    set: &MigrationSet,
    pending: &[&Migration],
    lock_timeout: Duration,
) -> Result<(), MigrationError> {
    let schema = target.schema();
    let started = Instant::now();
    diesel::sql_query("SELECT set_config('search_path', $1, true), set_config('lock_timeout', $2, true)")
        .bind::<Text, _>(quote_ident(schema))
        .bind::<Text, _>(format!("{}ms", lock_timeout.as_millis()))
        .execute(conn)
        .await
        .map_err(|e| MigrationError::database(format!("cannot prepare schema {schema}"), &e))?;
    for migration in pending {
        let step = Instant::now();
        conn.batch_execute(&migration.up)
            .await
            .map_err(|e| MigrationError::Failed {
                schema: schema.to_owned(),
                version: migration.version.clone(),
                message: super::describe_db_error(&e),
            })?;
        ledger::record_applied(conn, schema, migration, step.elapsed())
            .await
            .map_err(|e| {
                MigrationError::database(
                    format!("schema {schema}: cannot record {}", migration.version),
                    &e,
                )
            })?;
        tracing::info!(schema, version = %migration.version, took_ms = step.elapsed().as_millis() as u64, "applied migration");
    }
    if let Target::Tenant { schema, role } = target {
        conn.batch_execute(&roles::grant_on_objects_sql(schema, role))
            .await
            .map_err(|e| {
                MigrationError::database(format!("schema {schema}: cannot grant role {role}"), &e)
            })?;
    }
    ledger::record_up_to_date(conn, schema, set, started.elapsed())
        .await
        .map_err(|e| MigrationError::database(format!("schema {schema}: cannot update the ledger"), &e))?;
    Ok(())
}

/// Migrates `public` and every tenant schema, failing fast; see the module doc.
/// `ensure_platform_tenant` provisions `tenant_platform` when it is missing.
pub async fn migrate(
    installation: &Installation,
    ensure_platform_tenant: bool,
) -> Result<MigrationReport, MigrationError> {
    migrate_with(
        installation,
        &MigrateOptions {
            ensure_platform_tenant,
            ..MigrateOptions::default()
        },
    )
    .await
}

/// Migrates `public` and every tenant schema as `options` say, then checks for drift;
/// see the module doc.
pub async fn migrate_with(
    installation: &Installation,
    options: &MigrateOptions,
) -> Result<MigrationReport, MigrationError> {
    let mut conn = connect(installation).await?;
    let sets = &installation.migrations;
    let mut report = match ledger::stale_schemas(&mut conn, sets).await? {
        Some(mut staleness) => {
            let skipped = if staleness.public {
                Vec::new()
            } else {
                skip_quarantined(&mut conn, &mut staleness, options).await?
            };
            if staleness.is_up_to_date(options.ensure_platform_tenant) {
                Some(MigrationReport {
                    was_up_to_date: true,
                    skipped,
                    ..MigrationReport::default()
                })
            } else {
                None
            }
        }
        None => None,
    };
    if report.is_none() {
        lock(&mut conn, "pg_advisory_lock").await?;
        let result = migrate_locked(&mut conn, installation, options).await;
        // Closing the connection would release the lock too; unlocking keeps it explicit.
        if let Err(error) = lock(&mut conn, "pg_advisory_unlock").await {
            tracing::warn!(%error, "could not release the migration lock; it is released when the connection closes");
        }
        report = Some(result?);
    }
    let mut report = report.unwrap_or_default();
    report.drift = drift::check(&mut conn, sets).await?;
    Ok(report)
}

/// Drops from `staleness` the tenants quarantined for a failed migration when `options`
/// say to leave them alone; returns them.
async fn skip_quarantined(
    conn: &mut AsyncPgConnection,
    staleness: &mut ledger::Staleness,
    options: &MigrateOptions,
) -> Result<Vec<String>, MigrationError> {
    if !options.skip_quarantined || staleness.tenant_schemas.is_empty() {
        return Ok(Vec::new());
    }
    let read = async {
        if !quarantine::table_exists(conn).await? {
            return Ok(Vec::new());
        }
        quarantine::schemas(conn, QuarantineReason::MigrationFailed).await
    };
    let quarantined = read
        .await
        .map_err(|e| MigrationError::database("cannot read the tenant quarantine", &e))?;
    let (skipped, kept) = staleness
        .tenant_schemas
        .drain(..)
        .partition(|schema| quarantined.contains(schema));
    staleness.tenant_schemas = kept;
    let skipped: Vec<String> = skipped;
    for schema in &skipped {
        tracing::warn!(%schema, "tenant is quarantined after a failed migration; not migrating it (run `enclave migrate` to retry)");
    }
    Ok(skipped)
}

async fn lock(conn: &mut AsyncPgConnection, function: &str) -> Result<(), MigrationError> {
    diesel::sql_query(format!("SELECT {function}($1)"))
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| MigrationError::database("cannot take the migration lock", &e))
}

async fn connect(installation: &Installation) -> Result<AsyncPgConnection, MigrationError> {
    db::connect(&installation.database_url)
        .await
        .map_err(|e| MigrationError::Database {
            context: format!("cannot connect to {}", db::describe(&installation.database_url)),
            message: e.to_string(),
        })
}

async fn migrate_locked(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    options: &MigrateOptions,
) -> Result<MigrationReport, MigrationError> {
    let sets = &installation.migrations;
    let lock_timeout = installation.migration_lock_timeout;
    let public_applied = conn
        .transaction(async |conn| {
            conn.batch_execute(ledger::BOOTSTRAP_SQL).await?;
            let applied = ledger::applied(conn, &[PUBLIC_SCHEMA.to_owned()]).await?;
            let applied = applied.get(PUBLIC_SCHEMA).map(Vec::as_slice).unwrap_or_default();
            let pending = ledger::pending(&sets.public, PUBLIC_SCHEMA, applied)?;
            apply(conn, &Target::Public, &sets.public, &pending, lock_timeout).await?;
            Ok::<_, MigrationError>(pending.len())
        })
        .await?;
    let mut report = MigrationReport {
        public_applied,
        ..MigrationReport::default()
    };

    let mut staleness = ledger::stale_schemas(conn, sets)
        .await?
        .ok_or_else(|| MigrationError::Database {
            context: "the migration ledger is missing after bootstrap".into(),
            message: "public.enclave_schema_state does not exist".into(),
        })?;
    report.skipped = skip_quarantined(conn, &mut staleness, options).await?;
    if options.ensure_platform_tenant && staleness.platform_missing {
        // This connection holds the migration lock, which provisioning also takes.
        provision::create_tenant(conn, installation, &NewTenant::platform())
            .await
            .map_err(|error| match error {
                provision::TenancyError::Migration(error) => error,
                other => MigrationError::Database {
                    context: "cannot provision the platform tenant".into(),
                    message: other.to_string(),
                },
            })?;
        report.provisioned_platform = true;
    }

    let applied = ledger::applied(conn, &staleness.tenant_schemas).await?;
    let mut plans = VecDeque::new();
    let mut refused = Vec::new();
    for schema in &staleness.tenant_schemas {
        let done = applied.get(schema).map(Vec::as_slice).unwrap_or_default();
        match ledger::pending(&sets.tenant, schema, done) {
            Ok(pending) => plans.push_back((schema.as_str(), pending)),
            Err(error) => refused.push(error),
        }
    }
    if !refused.is_empty() {
        return Err(several(refused));
    }

    if let Some(canaries) = options.canary.filter(|n| *n > 0 && !plans.is_empty()) {
        let order = fleet_order(conn).await?;
        let rank = |schema: &str| order.iter().position(|s| s == schema).unwrap_or(usize::MAX);
        plans.make_contiguous().sort_by_key(|(schema, _)| rank(schema));
        for _ in 0..canaries {
            let Some((schema, pending)) = plans.pop_front() else {
                break;
            };
            tracing::info!(schema, "migrating canary tenant");
            migrate_tenant(conn, installation, schema, &pending)
                .await
                .map_err(|error| MigrationError::Canary {
                    schema: schema.to_owned(),
                    error: Box::new(error),
                })?;
            report.canaries.push(schema.to_owned());
            report.tenants_migrated += 1;
            report.tenant_migrations_applied += pending.len();
        }
    }

    let queue = Mutex::new(plans);
    let failures = Mutex::new(Vec::new());
    let workers = (installation.migration_concurrency).min(queue_len(&queue)).max(1);
    let outcomes = join_all((0..workers).map(|_| tenant_worker(installation, &queue, &failures))).await;
    for outcome in outcomes {
        let (tenants, migrations) = outcome?;
        report.tenants_migrated += tenants;
        report.tenant_migrations_applied += migrations;
    }
    let mut failures = failures
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if failures.is_empty() {
        return Ok(report);
    }
    if !options.continue_on_error {
        failures.sort_by_key(|(schema, _)| schema.clone());
        return Err(several(failures.into_iter().map(|(_, error)| error).collect()));
    }
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    for (schema, error) in failures {
        let message = error.to_string();
        quarantine::enter(conn, &schema, QuarantineReason::MigrationFailed, &message, 0)
            .await
            .map_err(|e| MigrationError::database(format!("schema {schema}: cannot quarantine it"), &e))?;
        tracing::error!(%schema, error = %message, "tenant migration failed; tenant quarantined, continuing");
        report.quarantined.push((schema, message));
    }
    Ok(report)
}

/// Every tenant schema in canary order: the platform tenant, then the oldest.
async fn fleet_order(conn: &mut AsyncPgConnection) -> Result<Vec<String>, MigrationError> {
    #[derive(diesel::QueryableByName)]
    struct SchemaName {
        #[diesel(sql_type = Text)]
        schema_name: String,
    }
    let rows: Vec<SchemaName> = diesel::sql_query(
        "SELECT $1 || slug AS schema_name FROM public.tenants          ORDER BY slug <> 'platform', created_at, slug",
    )
    .bind::<Text, _>(SCHEMA_PREFIX)
    .load(conn)
    .await
    .map_err(|e| MigrationError::database("cannot list the tenants", &e))?;
    Ok(rows.into_iter().map(|r| r.schema_name).collect())
}

fn queue_len<T>(queue: &Mutex<VecDeque<T>>) -> usize {
    queue.lock().map(|q| q.len()).unwrap_or(0)
}

fn several(mut errors: Vec<MigrationError>) -> MigrationError {
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        MigrationError::Several(errors)
    }
}

/// Migrates one tenant schema in its own transaction; on failure the transaction is
/// rolled back and the error recorded in the ledger.
async fn migrate_tenant(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    schema: &str,
    pending: &[&Migration],
) -> Result<(), MigrationError> {
    let slug = schema
        .strip_prefix(SCHEMA_PREFIX)
        .and_then(|raw| Slug::parse(raw).ok())
        .ok_or_else(|| MigrationError::Database {
            context: format!("schema {schema}"),
            message: "is not a valid tenant schema name".into(),
        })?;
    let role = installation.tenant_role(&slug);
    let target = Target::Tenant { schema, role: &role };
    let set = &installation.migrations.tenant;
    let lock_timeout = installation.migration_lock_timeout;
    let outcome = conn
        .transaction(async |conn| apply(conn, &target, set, pending, lock_timeout).await)
        .await;
    if let Err(error) = &outcome {
        tracing::error!(schema, %error, "tenant migration failed; its transaction was rolled back");
        if let Err(e) = ledger::record_failure(conn, schema, &error.to_string()).await {
            tracing::warn!(schema, error = %e, "could not record the failure in the ledger");
        }
    }
    outcome
}

/// Takes tenant schemas off the queue and migrates each in its own transaction on one
/// dedicated connection. Returns (tenants migrated, migrations applied); failures go to
/// `failures` with their schema.
async fn tenant_worker(
    installation: &Installation,
    queue: &Mutex<VecDeque<(&str, Vec<&Migration>)>>,
    failures: &Mutex<Vec<(String, MigrationError)>>,
) -> Result<(usize, usize), MigrationError> {
    let mut conn = connect(installation).await?;
    let (mut tenants, mut migrations) = (0, 0);
    loop {
        let next = queue.lock().ok().and_then(|mut q| q.pop_front());
        let Some((schema, pending)) = next else {
            return Ok((tenants, migrations));
        };
        match migrate_tenant(&mut conn, installation, schema, &pending).await {
            Ok(()) => {
                tenants += 1;
                migrations += pending.len();
            }
            Err(error) => {
                if let Ok(mut all) = failures.lock() {
                    all.push((schema.to_owned(), error));
                }
            }
        }
    }
}

/// Applied and pending migrations of one schema, for `enclave migrate --status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    pub schema: String,
    pub applied: Vec<String>,
    pub pending: Vec<String>,
    pub migrated_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
}

/// Applied and pending migrations of `public` and of every tenant schema. On a database
/// that was never migrated, everything of `public` is pending.
pub async fn status(installation: &Installation) -> Result<Vec<SchemaStatus>, MigrationError> {
    let mut conn = connect(installation).await?;
    let sets = &installation.migrations;
    if ledger::stale_schemas(&mut conn, sets).await?.is_none() {
        return Ok(vec![SchemaStatus {
            schema: PUBLIC_SCHEMA.to_owned(),
            applied: Vec::new(),
            pending: sets
                .public
                .migrations()
                .iter()
                .map(|m| m.version.clone())
                .collect(),
            migrated_at: None,
            last_error: None,
        }]);
    }
    let states = ledger::states(&mut conn).await?;
    let schemas: Vec<String> = states.iter().map(|s| s.schema_name.clone()).collect();
    let mut applied = ledger::applied(&mut conn, &schemas).await?;
    Ok(states
        .into_iter()
        .map(|state| {
            let set = if state.schema_name == PUBLIC_SCHEMA {
                &sets.public
            } else {
                &sets.tenant
            };
            let done: Vec<String> = applied
                .remove(&state.schema_name)
                .unwrap_or_default()
                .into_iter()
                .map(|(version, _)| version)
                .collect();
            let pending = set
                .migrations()
                .iter()
                .filter(|m| !done.contains(&m.version))
                .map(|m| m.version.clone())
                .collect();
            SchemaStatus {
                schema: state.schema_name,
                applied: done,
                pending,
                migrated_at: state.migrated_at,
                last_error: state.last_error,
            }
        })
        .collect())
}
