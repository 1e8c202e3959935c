//! `retention`: deletes a tenant's data older than its policy says, per data kind, in
//! bounded batches.
//!
//! Policy: `retention_policies` (data kind → days kept), in the tenant's schema; a data
//! kind without a row keeps its default:
//!
//! | Data kind | Table (time column) | Default |
//! | --- | --- | --- |
//! | `events` | `events` (`occurred_at`) | 90 days |
//! | `logs` | `logs` (`ts`) | 30 days |
//! | `metrics` | `timeseries_metrics` (`ts`, the named metric series) | 30 days |
//! | `health_events` | `health_events` (`occurred_at`) | 90 days |
//! | `cpu_metrics` | `cpu_metrics` (`ts`) | 30 days |
//! | `memory_metrics` | `memory_metrics` (`ts`) | 30 days |
//! | `disk_metrics` | `disk_metrics` (`ts`) | 30 days |
//! | `process_metrics` | `process_metrics` (`ts`) | 7 days (a row per process per sample: the largest) |
//! | `otel_metrics` | `otel_metrics` (`ts`) | 30 days |
//! | `traces` | `otel_traces` (`start_time`, the spans) | 7 days (spans are many and mostly read while fresh) |
//! | `trace_summaries` | `otel_trace_summaries` (`start_time`) | 30 days (one small row per trace: trends outlive the spans) |
//!
//! Every data kind has a default, so a tenant without any policy row still has all of its
//! data deleted in time: no kind grows forever by omission. A kind added later gets its
//! default the same way (its policy row is optional).
//! It also deletes the job queue's own history: jobs and poll jobs finished more than 30
//! days ago (`jobs`, `poll_jobs`; not configurable).
//!
//! The cutoff of each kind is `now − days`, fixed when the attempt starts. Each batch (at
//! most `batchSize` rows, payload `{"batchSize": n}`, 1 to 10,000, default 1,000) is its
//! own transaction, which also renews the job's lease; so a large backlog never holds one
//! long transaction, and a crash loses at most the batch in flight. The result says how
//! many rows of each kind were deleted: `{"deleted": {"events": n, ...}}`.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use serde_json::json;

use super::JobContext;
use crate::jobs::error::JobError;
use crate::jobs::queue::{self, ClaimedJob};
use crate::jobs::tx;

/// A kind of data retention applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataKind {
    pub name: &'static str,
    table: &'static str,
    column: &'static str,
    pub default_days: i32,
}

/// Every data kind, with its table and default (see the module doc); the last two are
/// the queue's own history and have no policy row.
pub const DATA_KINDS: [DataKind; 13] = [
    DataKind {
        name: "events",
        table: "events",
        column: "occurred_at",
        default_days: 90,
    },
    DataKind {
        name: "logs",
        table: "logs",
        column: "ts",
        default_days: 30,
    },
    DataKind {
        name: "metrics",
        table: "timeseries_metrics",
        column: "ts",
        default_days: 30,
    },
    DataKind {
        name: "health_events",
        table: "health_events",
        column: "occurred_at",
        default_days: 90,
    },
    DataKind {
        name: "cpu_metrics",
        table: "cpu_metrics",
        column: "ts",
        default_days: 30,
    },
    DataKind {
        name: "memory_metrics",
        table: "memory_metrics",
        column: "ts",
        default_days: 30,
    },
    DataKind {
        name: "disk_metrics",
        table: "disk_metrics",
        column: "ts",
        default_days: 30,
    },
    DataKind {
        name: "process_metrics",
        table: "process_metrics",
        column: "ts",
        default_days: 7,
    },
    DataKind {
        name: "otel_metrics",
        table: "otel_metrics",
        column: "ts",
        default_days: 30,
    },
    DataKind {
        name: "traces",
        table: "otel_traces",
        column: "start_time",
        default_days: 7,
    },
    DataKind {
        name: "trace_summaries",
        table: "otel_trace_summaries",
        column: "start_time",
        default_days: 30,
    },
    DataKind {
        name: "jobs",
        table: "jobs",
        column: "finished_at",
        default_days: 30,
    },
    DataKind {
        name: "poll_jobs",
        table: "poll_jobs",
        column: "finished_at",
        default_days: 30,
    },
];

/// Default and bounds of `batchSize`.
pub const DEFAULT_BATCH: i64 = 1_000;
const MAX_BATCH: i64 = 10_000;

/// The payload's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub batch_size: i64,
}

impl Options {
    pub fn from_payload(payload: &serde_json::Value) -> Result<Self, JobError> {
        let batch_size = match payload.get("batchSize") {
            None | Some(serde_json::Value::Null) => DEFAULT_BATCH,
            Some(value) => value
                .as_i64()
                .filter(|n| (1..=MAX_BATCH).contains(n))
                .ok_or_else(|| {
                    JobError::BadPayload(format!("batchSize must be between 1 and {MAX_BATCH}"))
                })?,
        };
        Ok(Self { batch_size })
    }
}

#[derive(QueryableByName)]
struct Policy {
    #[diesel(sql_type = Text)]
    data_kind: String,
    #[diesel(sql_type = Integer)]
    keep_days: i32,
}

/// Days kept per data kind: the tenant's policy, else the defaults.
pub async fn policy(conn: &mut AsyncPgConnection) -> Result<Vec<(DataKind, i32)>, JobError> {
    let rows: Vec<Policy> = diesel::sql_query("SELECT data_kind, keep_days FROM retention_policies")
        .load(conn)
        .await?;
    Ok(DATA_KINDS
        .into_iter()
        .map(|kind| {
            let days = rows
                .iter()
                .find(|row| row.data_kind == kind.name)
                .map_or(kind.default_days, |row| row.keep_days);
            (kind, days)
        })
        .collect())
}

/// Deletes at most `limit` rows of `kind` older than `cutoff`; returns how many. The
/// table name is unqualified: the transaction's search_path (and role) make it the
/// tenant's own.
pub async fn delete_batch(
    conn: &mut AsyncPgConnection,
    kind: DataKind,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<i64, JobError> {
    let deleted = diesel::sql_query(format!(
        "DELETE FROM {table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {column} < $1 LIMIT $2))",
        table = kind.table,
        column = kind.column
    ))
    .bind::<Timestamptz, _>(cutoff)
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await?;
    Ok(i64::try_from(deleted).unwrap_or(i64::MAX))
}

/// Runs a retention job (see the module doc).
pub async fn run(ctx: &JobContext, job: &ClaimedJob) -> Result<serde_json::Value, JobError> {
    let options = Options::from_payload(&job.payload)?;
    let started = ctx.now();
    let policy = tx::in_tenant(&ctx.gateway, ctx.tenant.clone(), async |conn| {
        queue::heartbeat(conn, job, ctx.lease_until()).await?;
        policy(conn).await
    })
    .await?;
    let mut deleted = serde_json::Map::new();
    for (kind, days) in policy {
        let cutoff = started - chrono::Duration::days(i64::from(days));
        let mut total = 0i64;
        loop {
            let batch = tx::in_tenant(&ctx.gateway, ctx.tenant.clone(), async |conn| {
                queue::heartbeat(conn, job, ctx.lease_until()).await?;
                delete_batch(conn, kind, cutoff, options.batch_size).await
            })
            .await?;
            total += batch;
            if batch < options.batch_size {
                break;
            }
        }
        deleted.insert(kind.name.to_owned(), json!(total));
    }
    let result = json!({ "deleted": deleted });
    tx::in_tenant(&ctx.gateway, ctx.tenant.clone(), async |conn| {
        queue::complete(conn, job, ctx.now(), &result).await
    })
    .await?;
    Ok(result)
}
