//! The job runtime's figures for `/metrics`: runs by outcome (counters kept by the
//! workers) and, per job kind, the number of queued jobs due now and the age of the
//! oldest (sampled every [`SAMPLE_EVERY`] by [`sample`]). No per-tenant labels.
//!
//! The sample reads only the tenants the due-index says have work due now (one statement
//! over their schemas, as the owner), never every tenant schema.
//!
//! `serve` shows these figures on its `/metrics`; `enclave worker` on a small listener of
//! its own when `ENCLAVE_WORKER_METRICS_ADDR` is set ([`serve_metrics`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::AsyncPgConnection;

use crate::db;
use crate::tenancy::directory::TenantDirectory;

/// How often the queue is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Failed; queued again after a backoff.
    Retried,
    /// Failed for good (dead letter), including jobs whose last lease expired.
    Failed,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct JobMetrics {
    succeeded: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    queue: Mutex<BTreeMap<String, QueueSample>>,
}

/// Queued jobs of one kind due now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSample {
    pub depth: u64,
    pub oldest_due_seconds: f64,
}

impl JobMetrics {
    pub fn record(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Succeeded => &self.succeeded,
            Outcome::Retried => &self.retried,
            Outcome::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs by outcome: (succeeded, retried, failed).
    pub fn runs(&self) -> (u64, u64, u64) {
        (
            self.succeeded.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// The last queue sample, by kind.
    pub fn queue(&self) -> BTreeMap<String, QueueSample> {
        self.queue.lock().map(|q| q.clone()).unwrap_or_default()
    }

    fn set_queue(&self, sample: BTreeMap<String, QueueSample>) {
        if let Ok(mut queue) = self.queue.lock() {
            *queue = sample;
        }
    }

    /// Appends the job metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let (succeeded, retried, failed) = self.runs();
        let _ = writeln!(
            out,
            "# HELP enclave_job_runs_total Job attempts by outcome.\n# TYPE enclave_job_runs_total counter\n\
             enclave_job_runs_total{{outcome=\"succeeded\"}} {succeeded}\n\
             enclave_job_runs_total{{outcome=\"retried\"}} {retried}\n\
             enclave_job_runs_total{{outcome=\"failed\"}} {failed}"
        );
        let queue = self.queue();
        let _ = writeln!(
            out,
            "# HELP enclave_job_queue_depth Queued jobs due now, by kind (all tenants).\n# TYPE enclave_job_queue_depth gauge"
        );
        for (kind, sample) in &queue {
            let _ = writeln!(out, "enclave_job_queue_depth{{kind=\"{kind}\"}} {}", sample.depth);
        }
        let _ = writeln!(
            out,
            "# HELP enclave_job_oldest_due_seconds Age of the oldest queued job due now, by kind.\n# TYPE enclave_job_oldest_due_seconds gauge"
        );
        for (kind, sample) in &queue {
            let _ = writeln!(
                out,
                "enclave_job_oldest_due_seconds{{kind=\"{kind}\"}} {:.3}",
                sample.oldest_due_seconds
            );
        }
    }
}

#[derive(QueryableByName)]
struct DueTenant {
    #[diesel(sql_type = SqlUuid)]
    tenant_id: uuid::Uuid,
}

#[derive(QueryableByName)]
struct KindRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    depth: i64,
    #[diesel(sql_type = Timestamptz)]
    oldest: DateTime<Utc>,
}

/// Samples the queue (see the module doc) on `conn`, an owner connection.
pub async fn sample(
    conn: &mut AsyncPgConnection,
    directory: &TenantDirectory,
    metrics: &JobMetrics,
    now: DateTime<Utc>,
) -> Result<(), diesel::result::Error> {
    // Imported here: in scope module-wide, its `load` would shadow the atomics' own.
    use diesel_async::RunQueryDsl as _;
    let due: Vec<DueTenant> = diesel::sql_query("SELECT tenant_id FROM public.job_due WHERE due_at <= $1")
        .bind::<Timestamptz, _>(now)
        .load(conn)
        .await?;
    let schemas: Vec<String> = due
        .iter()
        .filter_map(|row| directory.by_id(row.tenant_id))
        .map(|tenant| tenant.schema.clone())
        .collect();
    let mut sample: BTreeMap<String, QueueSample> = BTreeMap::new();
    if !schemas.is_empty() {
        let union = schemas
            .iter()
            .map(|schema| {
                format!(
                    "SELECT kind, run_after FROM {}.jobs WHERE status = 'queued' AND run_after <= $1",
                    db::quote_ident(schema)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows: Vec<KindRow> = diesel::sql_query(format!(
            "SELECT kind, count(*) AS depth, min(run_after) AS oldest FROM ({union}) q GROUP BY kind"
        ))
        .bind::<Timestamptz, _>(now)
        .load(conn)
        .await?;
        for row in rows {
            let age = (now - row.oldest).num_milliseconds().max(0) as f64 / 1000.0;
            // Only known kinds become labels (a label's value is never arbitrary text).
            let kind = super::kinds::Kind::parse(&row.kind).map_or("other", |kind| kind.as_str());
            let entry = sample.entry(kind.to_owned()).or_insert(QueueSample {
                depth: 0,
                oldest_due_seconds: 0.0,
            });
            entry.depth += u64::try_from(row.depth).unwrap_or(0);
            entry.oldest_due_seconds = entry.oldest_due_seconds.max(age);
        }
    }
    metrics.set_queue(sample);
    Ok(())
}

/// Serves `GET /metrics` (these figures only, Prometheus text format) on `listener` until
/// `shutdown` resolves: the metrics of `enclave worker`, which has no HTTP server.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<JobMetrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(async move || {
            let mut out = String::new();
            metrics.render(&mut out);
            (
                [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                out,
            )
        }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
