//! A worker: one loop of rounds. Each [`Worker::tick`] asks the dispatcher for the tenant
//! due earliest (see `dispatch`), then in that tenant's transaction produces the jobs of
//! its due schedules and claims one job (lease: `locked_until` = now + lease), commits,
//! and runs the job (see `kinds` for the transactions of each kind) under a time limit:
//! one lease for a kind that runs in one transaction, an hour for one that renews its
//! lease batch by batch. A failed attempt is queued again after a backoff with jitter, or
//! dead-lettered after its last allowed attempt, with its error code.
//!
//! A worker that dies mid-job (process killed, connection dropped) leaves its job
//! `running` with a lease that expires: the next worker to visit the tenant after
//! `locked_until` claims it again (one more attempt). Effects committed with the job's
//! completion are never run twice; the per-kind table in `kinds` says what a kind that
//! commits in several transactions does about it.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::backoff;
use super::clock::Clock;
use super::dispatch::{DispatchError, Dispatcher};
use super::error::JobError;
use super::kinds::{self, JobContext};
use super::metrics::{JobMetrics, Outcome};
use super::queue::{self, Claim};
use super::tx;
use crate::tenancy::directory::TenantDirectory;
use crate::tenancy::gateway::Gateway;

/// Pause after a round that found a due tenant with nothing to run.
const NOTHING_WAIT: Duration = Duration::from_millis(50);

/// Longest attempt of a kind that renews its lease as it goes (then TIMED_OUT, retried
/// after a backoff: such kinds keep what they committed).
pub(crate) const RENEWING_ATTEMPT_LIMIT: Duration = Duration::from_secs(3600);

/// Settings of the workers.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// How long a claim (or a renewal) holds a job; also the time limit of an attempt.
    pub lease: Duration,
    /// How long an idle worker waits before looking again.
    pub idle_wait: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(300),
            idle_wait: Duration::from_secs(1),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// No tenant had work due.
    Idle,
    /// A tenant was due but had nothing to run (its schedules may have produced work).
    Nothing { tenant: Uuid },
    /// A job whose last lease expired was dead-lettered.
    DeadLettered { tenant: Uuid, job: Uuid },
    /// A job ran; `outcome` says how it ended.
    Ran {
        tenant: Uuid,
        job: Uuid,
        outcome: RunOutcome,
    },
}

/// How a job attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    /// Failed with this code and was queued again.
    Retried(&'static str),
    /// Failed with this code for good.
    Failed(&'static str),
    /// Failed with this code and the failure could not be recorded (its lease will expire).
    Unrecorded(&'static str),
}

/// Why a round could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error("claiming a job failed: {0}")]
    Claim(#[from] JobError),
}

/// See the module doc.
pub struct Worker {
    gateway: Gateway,
    directory: Arc<TenantDirectory>,
    dispatcher: Arc<Dispatcher>,
    clock: Arc<dyn Clock>,
    options: WorkerOptions,
    metrics: Arc<JobMetrics>,
}

impl Worker {
    /// A worker with a dispatcher (and its connection) of its own.
    pub fn new(
        gateway: Gateway,
        directory: Arc<TenantDirectory>,
        database_url: &str,
        clock: Arc<dyn Clock>,
        options: WorkerOptions,
        metrics: Arc<JobMetrics>,
    ) -> Self {
        let dispatcher = Arc::new(Dispatcher::new(database_url));
        Self::sharing(gateway, directory, dispatcher, clock, options, metrics)
    }

    /// A worker that picks its tenants through `dispatcher`, shared with other workers
    /// (see `dispatch`: one connection for all the workers of a process).
    pub fn sharing(
        gateway: Gateway,
        directory: Arc<TenantDirectory>,
        dispatcher: Arc<Dispatcher>,
        clock: Arc<dyn Clock>,
        options: WorkerOptions,
        metrics: Arc<JobMetrics>,
    ) -> Self {
        Self {
            gateway,
            directory,
            dispatcher,
            clock,
            options,
            metrics,
        }
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.options.lease).unwrap_or(chrono::Duration::MAX)
    }

    /// One round (see the module doc).
    pub async fn tick(&self) -> Result<Tick, WorkerError> {
        let now = self.clock.now();
        let Some(tenant_id) = self.dispatcher.next_tenant(now).await? else {
            return Ok(Tick::Idle);
        };
        // The dispatcher reads the tenants' status too; the directory may lag a second.
        let Some(tenant) = self.directory.by_id(tenant_id).filter(|t| t.is_active()) else {
            return Ok(Tick::Nothing { tenant: tenant_id });
        };
        let lease_id = Uuid::new_v4();
        let locked_until = now + self.lease();
        let claim = tx::in_tenant(&self.gateway, tenant.clone(), async |conn| {
            let produced = queue::produce(conn, now).await?;
            if produced != queue::Produced::default() {
                tracing::debug!(tenant = %tenant.slug, jobs = produced.jobs, poll_jobs = produced.poll_jobs, "schedules fired");
            }
            queue::claim(conn, now, locked_until, lease_id).await
        })
        .await?;
        let job = match claim {
            None => return Ok(Tick::Nothing { tenant: tenant_id }),
            Some(Claim::DeadLettered(job)) => {
                tracing::warn!(tenant = %tenant.slug, %job, "job dead-lettered: its last lease expired");
                self.metrics.record(Outcome::Failed);
                return Ok(Tick::DeadLettered {
                    tenant: tenant_id,
                    job,
                });
            }
            Some(Claim::Run(job)) => job,
        };
        let ctx = JobContext {
            gateway: self.gateway.clone(),
            tenant: tenant.clone(),
            clock: self.clock.clone(),
            lease: self.options.lease,
        };
        // A single-transaction attempt must end within its lease (after it, another worker
        // may claim the job); one that renews its lease batch by batch gets longer.
        let limit = match kinds::Kind::parse(&job.kind) {
            Some(kind) if kind.renews_lease() => RENEWING_ATTEMPT_LIMIT.max(self.options.lease),
            _ => self.options.lease,
        };
        let attempt = tokio::time::timeout(limit, kinds::run(&ctx, &job)).await;
        let error = match attempt {
            Ok(Ok(_)) => {
                self.metrics.record(Outcome::Succeeded);
                return Ok(Tick::Ran {
                    tenant: tenant_id,
                    job: job.id,
                    outcome: RunOutcome::Succeeded,
                });
            }
            Ok(Err(error)) => error,
            Err(_) => JobError::TimedOut,
        };
        let code = error.code();
        tracing::warn!(tenant = %tenant.slug, job = %job.id, kind = job.kind, attempt = job.attempts, code, %error, "job attempt failed");
        let now = self.clock.now();
        let wait = backoff::delay(job.attempts, backoff::jitter());
        let retry_at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        let recorded = tx::in_tenant(&self.gateway, tenant.clone(), async |conn| {
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
                tracing::warn!(tenant = %tenant.slug, job = %job.id, error = %record_error, "cannot record a failed attempt; its lease will expire");
                RunOutcome::Unrecorded(code)
            }
        };
        Ok(Tick::Ran {
            tenant: tenant_id,
            job: job.id,
            outcome,
        })
    }

    /// Runs rounds until `stop` turns true (a job in flight finishes first).
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut failures = 0u32;
        while !*stop.borrow() {
            let wait = match self.tick().await {
                Ok(Tick::Idle) => {
                    failures = 0;
                    Some(self.options.idle_wait)
                }
                // Other tenants may be due: look again soon, without spinning.
                Ok(Tick::Nothing { .. }) => {
                    failures = 0;
                    Some(NOTHING_WAIT.min(self.options.idle_wait))
                }
                Ok(_) => {
                    failures = 0;
                    None
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "job worker round failed");
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
