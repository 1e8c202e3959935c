//! Tenant jobs: schedules and queues inside each tenant's schema, run by workers that are
//! fair across tenants and lose nothing (issue 15).
//!
//! - `clock`: the time the runtime goes by (a manual clock in tests);
//! - `cron`: cron expressions with a time zone, and their next run;
//! - `dispatch`: which tenant is served next, from the due-index `public.job_due`;
//! - `queue`: the tenant's queue: producing jobs from schedules, claiming with a lease,
//!   completing, failing;
//! - `tx`: a job's transaction, the same tenant transaction as a request's;
//! - `kinds`: what each kind of job does, and in which transactions;
//! - `backoff`, `error`: retries and the error codes recorded on failed jobs;
//! - `worker`: the loop of rounds; `metrics`: what `/metrics` shows;
//! - `platform`: the runner of platform jobs (`public.platform_jobs`: tenant migrations,
//!   tenant exports), on the same queue code.
//!
//! Workers run inside `enclave serve` (`ENCLAVE_WORKERS`, default the number of CPUs, 0
//! for none) or as `enclave worker`; both start them only after migrations, with one
//! platform runner beside them (none when there are no workers).

pub mod backoff;
pub mod clock;
pub mod cron;
pub mod dispatch;
pub mod error;
pub mod kinds;
pub mod metrics;
pub mod platform;
pub mod queue;
pub mod tx;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use clock::{Clock, SystemClock};
use metrics::JobMetrics;
use worker::{Worker, WorkerOptions};

pub use crate::config::JobsConfig;
use crate::tenancy::Installation;
use crate::tenancy::directory::TenantDirectory;
use crate::tenancy::gateway::Gateway;

/// Running workers (and the queue sampler of `/metrics`); [`Workers::stop`] ends them.
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    sampler: Option<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers and a platform runner on the system clock (none when
    /// `count` is 0); `export_dir` is where tenant exports are written.
    pub fn start(
        gateway: &Gateway,
        directory: &Arc<TenantDirectory>,
        installation: &Installation,
        count: usize,
        export_dir: Option<PathBuf>,
        metrics: &Arc<JobMetrics>,
    ) -> Self {
        let database_url = installation.database_url.as_str();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // One dispatcher connection for all the workers (see `dispatch`).
        let dispatcher = Arc::new(dispatch::Dispatcher::new(database_url));
        let mut tasks = (0..count)
            .map(|_| {
                let worker = Arc::new(Worker::sharing(
                    gateway.clone(),
                    directory.clone(),
                    dispatcher.clone(),
                    clock.clone(),
                    WorkerOptions::default(),
                    metrics.clone(),
                ));
                tokio::spawn(worker.run(stopped.clone()))
            })
            .collect::<Vec<_>>();
        if count > 0 {
            let runner = Arc::new(platform::PlatformRunner::new(
                installation.clone(),
                clock.clone(),
                WorkerOptions::default(),
                metrics.clone(),
                export_dir,
            ));
            tasks.push(tokio::spawn(runner.run_until(stopped.clone())));
        }
        let sampler = (count > 0).then(|| {
            tokio::spawn(sample_queue(
                database_url.to_owned(),
                directory.clone(),
                metrics.clone(),
                stopped.clone(),
            ))
        });
        if count > 0 {
            tracing::info!(workers = count, "job workers started");
        }
        Self { stop, tasks, sampler }
    }

    /// Asks every worker to stop after its current job and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(sampler) = self.sampler {
            sampler.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Samples the queue for `/metrics` every `metrics::SAMPLE_EVERY` until stopped.
async fn sample_queue(
    database_url: String,
    directory: Arc<TenantDirectory>,
    metrics: Arc<JobMetrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut conn = None;
    while !*stop.borrow() {
        if conn.is_none() {
            conn = crate::db::connect(&database_url).await.ok();
        }
        if let Some(open) = conn.as_mut()
            && let Err(error) = metrics::sample(open, &directory, &metrics, chrono::Utc::now()).await
        {
            tracing::debug!(%error, "job queue sample failed");
            conn = None;
        }
        tokio::select! {
            () = tokio::time::sleep(metrics::SAMPLE_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}
