//! Platform jobs: `public.platform_jobs`, run by one [`PlatformRunner`] per worker process
//! in platform transactions (the owner role's own connection, like the dispatcher's; a
//! platform job is about tenants, it never runs inside one).
//!
//! The queue is the tenant queue's code (`queue::claim_in` and friends with
//! `Queue::Platform`): `FOR UPDATE SKIP LOCKED` with a lease, an expired lease claimed
//! again, retries after `backoff`, dead-lettered after `max_attempts` with a coded
//! `last_error`. Platform admins see the jobs through GraphQL (`platformJobs`).
//!
//! | Kind | Transactions | After a crash |
//! | --- | --- | --- |
//! | `migrate_tenant` (`migrate`) | one: the migration lock, the tenant's pending migrations and the job's completion | nothing of the attempt is committed; the retry does it all |
//! | `tenant_export` (`export`) | the export's own snapshot transaction (lease renewed meanwhile), then the completion | the archive is written to a temporary name and renamed when complete; a retry writes it again under the same name (the job's id), so a result always names a complete archive |
//!
//! **Tenants added while running.** Every [`STALE_CHECK_EVERY`], the runner reads the
//! migration ledger (one query, `ledger::stale_schemas`) and enqueues a `migrate_tenant`
//! job for each tenant schema that is not at this build's migrations (a tenant created
//! or restored by an older build since this one started) — at most one outstanding per
//! tenant (unique index), none for a tenant whose migration failed for good within the
//! last hour, none at all while `public` itself is at other migrations than this build's.

pub mod export;
pub mod migrate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Text, Timestamptz};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::backoff;
use super::clock::Clock;
use super::error::JobError;
use super::metrics::{JobMetrics, Outcome};
use super::queue::{self, Claim, ClaimedJob, Queue};
use super::worker::{RunOutcome, WorkerOptions};
use crate::tenancy::Installation;
use crate::tenancy::migrations::ledger;

/// How often the runner looks for tenant schemas to migrate.
pub const STALE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// The kinds of platform jobs.
pub const MIGRATE_TENANT: &str = "migrate_tenant";
pub const TENANT_EXPORT: &str = "tenant_export";

/// What one round of the runner did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformTick {
    /// No platform job was due.
    Idle,
    /// A job whose last lease expired was dead-lettered.
    DeadLettered(Uuid),
    /// A job ran; `outcome` says how it ended.
    Ran { job: Uuid, outcome: RunOutcome },
}

/// See the module doc.
pub struct PlatformRunner {
    installation: Installation,
    clock: Arc<dyn Clock>,
    options: WorkerOptions,
    metrics: Arc<JobMetrics>,
    export_dir: Option<PathBuf>,
    conn: Mutex<Option<AsyncPgConnection>>,
    last_stale_check: Mutex<Option<DateTime<Utc>>>,
}

impl PlatformRunner {
    pub fn new(
        installation: Installation,
        clock: Arc<dyn Clock>,
        options: WorkerOptions,
        metrics: Arc<JobMetrics>,
        export_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            installation,
            clock,
            options,
            metrics,
            export_dir,
            conn: Mutex::new(None),
            last_stale_check: Mutex::new(None),
        }
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.options.lease).unwrap_or(chrono::Duration::MAX)
    }

    /// Enqueues a `migrate_tenant` job for every tenant schema not at this build's
    /// migrations (see the module doc); returns how many were enqueued.
    pub async fn enqueue_stale_migrations(
        &self,
        conn: &mut AsyncPgConnection,
        now: DateTime<Utc>,
    ) -> Result<usize, JobError> {
        let staleness = ledger::stale_schemas(conn, &self.installation.migrations)
            .await
            .map_err(|error| JobError::Migration(error.to_string()))?;
        let Some(staleness) = staleness else { return Ok(0) };
        if staleness.public || staleness.tenant_schemas.is_empty() {
            return Ok(0);
        }
        let enqueued = diesel::sql_query(
            "INSERT INTO public.platform_jobs (kind, tenant_id, run_after, created_at, updated_at) \
             SELECT $3, t.id, $2, $2, $2 FROM public.tenants t \
             WHERE 'tenant_' || t.slug = ANY($1) \
               AND NOT EXISTS (SELECT 1 FROM public.platform_jobs j WHERE j.kind = $3 AND j.tenant_id = t.id \
                               AND j.status = 'failed' AND j.finished_at > $2 - interval '1 hour') \
             ON CONFLICT (tenant_id) WHERE kind = 'migrate_tenant' AND status IN ('queued', 'running') DO NOTHING",
        )
        .bind::<Array<Text>, _>(&staleness.tenant_schemas)
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(MIGRATE_TENANT)
        .execute(conn)
        .await?;
        if enqueued > 0 {
            tracing::info!(enqueued, "tenant schemas behind this build: migrations enqueued");
        }
        Ok(enqueued)
    }

    /// One round: looks for stale tenants when it is time, claims one due platform job
    /// and runs it.
    pub async fn tick(&self) -> Result<PlatformTick, JobError> {
        let mut guard = self.conn.lock().await;
        let conn = match guard.as_mut() {
            Some(conn) => conn,
            None => guard.insert(
                crate::db::connect(&self.installation.database_url)
                    .await
                    .map_err(|error| {
                        JobError::Tx(crate::tenancy::transaction::TxError::Connect(error.to_string()))
                    })?,
            ),
        };
        let outcome = self.tick_on(conn).await;
        if outcome
            .as_ref()
            .is_err_and(|error| matches!(error.code(), "CONNECTION_LOST" | "TIMED_OUT" | "DATABASE_ERROR"))
        {
            // Reconnect next time: the connection may be gone or left mid-transaction.
            *guard = None;
        }
        outcome
    }

    async fn tick_on(&self, conn: &mut AsyncPgConnection) -> Result<PlatformTick, JobError> {
        let now = self.clock.now();
        {
            let mut last = self.last_stale_check.lock().await;
            let every = chrono::Duration::from_std(STALE_CHECK_EVERY).unwrap_or(chrono::Duration::MAX);
            if last.is_none_or(|last| last + every <= now) {
                *last = Some(now);
                self.enqueue_stale_migrations(conn, now).await?;
            }
        }
        let lease_id = Uuid::new_v4();
        let locked_until = now + self.lease();
        let claim = conn
            .transaction(async |conn| {
                queue::claim_in(conn, Queue::Platform, now, locked_until, lease_id).await
            })
            .await?;
        let job = match claim {
            None => return Ok(PlatformTick::Idle),
            Some(Claim::DeadLettered(job)) => {
                tracing::warn!(%job, "platform job dead-lettered: its last lease expired");
                self.metrics.record(Outcome::Failed);
                return Ok(PlatformTick::DeadLettered(job));
            }
            Some(Claim::Run(job)) => job,
        };
        let attempt = tokio::time::timeout(
            super::worker::RENEWING_ATTEMPT_LIMIT.max(self.options.lease),
            self.run(conn, &job),
        )
        .await;
        let error = match attempt {
            Ok(Ok(_)) => {
                self.metrics.record(Outcome::Succeeded);
                return Ok(PlatformTick::Ran {
                    job: job.id,
                    outcome: RunOutcome::Succeeded,
                });
            }
            Ok(Err(error)) => error,
            Err(_) => JobError::TimedOut,
        };
        let code = error.code();
        tracing::warn!(job = %job.id, kind = job.kind, attempt = job.attempts, code, %error, "platform job attempt failed");
        if matches!(error, JobError::TimedOut) {
            // The connection was left mid-statement: record the failure on a fresh one.
            *conn = crate::db::connect(&self.installation.database_url)
                .await
                .map_err(|error| {
                    JobError::Tx(crate::tenancy::transaction::TxError::Connect(error.to_string()))
                })?;
        }
        let now = self.clock.now();
        let wait = backoff::delay(job.attempts, backoff::jitter());
        let retry_at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        let recorded = conn
            .transaction(async |conn| {
                queue::fail(conn, &job, now, code, error.is_permanent(), retry_at).await
            })
            .await;
        let outcome = match recorded {
            Ok(Some(status)) if status == "queued" => {
                self.metrics.record(Outcome::Retried);
                RunOutcome::Retried(code)
            }
            Ok(Some(_)) => {
                self.metrics.record(Outcome::Failed);
                RunOutcome::Failed(code)
            }
            Ok(None) => RunOutcome::Unrecorded(code),
            Err(record_error) => {
                tracing::warn!(job = %job.id, error = %record_error, "cannot record a failed platform job attempt; its lease will expire");
                RunOutcome::Unrecorded(code)
            }
        };
        Ok(PlatformTick::Ran { job: job.id, outcome })
    }

    async fn run(
        &self,
        conn: &mut AsyncPgConnection,
        job: &ClaimedJob,
    ) -> Result<serde_json::Value, JobError> {
        match job.kind.as_str() {
            MIGRATE_TENANT => migrate::run(conn, &self.installation, job, self.clock.now()).await,
            TENANT_EXPORT => {
                export::run(
                    conn,
                    &self.installation,
                    self.export_dir.as_deref(),
                    job,
                    self.clock.as_ref(),
                    self.options.lease,
                )
                .await
            }
            other => Err(JobError::UnknownKind(other.to_owned())),
        }
    }

    /// Runs rounds until `stop` turns true (a job in flight finishes first).
    pub async fn run_until(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut failures = 0u32;
        while !*stop.borrow() {
            let wait = match self.tick().await {
                Ok(PlatformTick::Idle) => {
                    failures = 0;
                    Some(self.options.idle_wait)
                }
                Ok(_) => {
                    failures = 0;
                    None
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "platform job round failed");
                    Some(self.options.idle_wait.saturating_mul(failures.min(30)))
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// The slug of a platform job's tenant.
async fn tenant_slug(
    conn: &mut AsyncPgConnection,
    job: &ClaimedJob,
) -> Result<crate::tenancy::slug::Slug, JobError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        slug: String,
    }
    let tenant = job.tenant_id.ok_or(JobError::NoTenant)?;
    let row: Option<Row> = diesel::OptionalExtension::optional(
        diesel::sql_query("SELECT slug FROM public.tenants WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(tenant)
            .get_result(conn)
            .await,
    )?;
    let row = row.ok_or(JobError::NoTenant)?;
    crate::tenancy::slug::Slug::parse(&row.slug).map_err(|_| JobError::NoTenant)
}
