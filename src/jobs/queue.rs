//! The tenant's job queue, in the tenant's own schema (`jobs`, `job_schedules`,
//! `poll_jobs`, `polling_schedules`); every function here runs inside a job transaction
//! (`tx::in_tenant`) and takes `now` from the runtime's clock.
//!
//! - [`produce`] turns due schedules into work: a job per due job schedule (unless one of
//!   the schedule's jobs is still queued) and a poll job per due polling schedule (unless
//!   one is still queued or running for it: the unique index `poll_jobs_outstanding`);
//!   each schedule's next run is computed from *now*, so runs missed while nothing ran are
//!   coalesced into one. It also returns poll jobs whose lease expired to the queue (the
//!   pollers lease them over the edge listener, see `edge::ingest::poll`; a lease makes
//!   the tenant due in `public.job_due` when it runs out, so a worker comes for it).
//! - [`claim`] (tenant jobs) and [`claim_in`] (either queue, see [`Queue`]: the platform
//!   runner shares these functions) take one job with `FOR UPDATE SKIP LOCKED`: first a running job whose
//!   lease expired (its worker died), else the queued job due earliest. The claim commits
//!   on its own with `attempts + 1`, a lease id and `locked_until`, so that a job that
//!   kills its worker still counts its attempts and is dead-lettered after `max_attempts`.
//! - [`hold`] / [`heartbeat`] / [`complete`] / [`fail`] act only while the caller's lease
//!   is the job's lease (`lease_id`): a job cancelled or taken over meanwhile is left alone.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use uuid::Uuid;

use super::cron::CronSchedule;
use super::error::JobError;

/// Which queue a job is in. Both have the queue's columns (`status`, `attempts`,
/// `max_attempts`, `run_after`, `locked_at`, `locked_until`, `lease_id`, `last_error`,
/// `result`, `finished_at`) and follow the same rules; only the table differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The tenant's `jobs`, in a tenant transaction (its search_path names the schema).
    Tenant,
    /// `public.platform_jobs`, in a platform transaction (see `jobs::platform`).
    Platform,
}

impl Queue {
    fn table(self) -> &'static str {
        match self {
            Self::Tenant => "jobs",
            Self::Platform => "public.platform_jobs",
        }
    }

    /// The claimed job's tenant: platform jobs may name one, tenant jobs are their tenant's.
    fn tenant_column(self) -> &'static str {
        match self {
            Self::Tenant => "NULL::uuid",
            Self::Platform => "tenant_id",
        }
    }
}

/// A job this worker holds the lease of.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub queue: Queue,
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_id: Uuid,
    /// The tenant a platform job is about (`None` for tenant jobs).
    pub tenant_id: Option<Uuid>,
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Integer)]
    max_attempts: i32,
    #[diesel(sql_type = SqlUuid)]
    lease_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    tenant_id: Option<Uuid>,
}

/// What [`claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// Run it.
    Run(ClaimedJob),
    /// A job whose lease expired after its last allowed attempt: dead-lettered
    /// (`LEASE_EXPIRED`) instead of run again.
    DeadLettered(Uuid),
}

/// What [`produce`] made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub jobs: usize,
    pub poll_jobs: usize,
}

#[derive(QueryableByName)]
struct DueSchedule {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    cron: String,
    #[diesel(sql_type = Text)]
    time_zone: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Schedules handled per visit of a tenant (the rest on the next visit).
const SCHEDULES_PER_VISIT: i64 = 100;

/// Turns due schedules into jobs and poll jobs (see the module doc).
pub async fn produce(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> Result<Produced, JobError> {
    let mut produced = Produced::default();
    let due: Vec<DueSchedule> = diesel::sql_query(
        "SELECT id, cron, time_zone FROM job_schedules WHERE enabled AND next_run_at <= $1 \
         ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<diesel::sql_types::BigInt, _>(SCHEDULES_PER_VISIT)
    .load(conn)
    .await?;
    for schedule in due {
        // A schedule whose expression no longer parses (it was checked when written) is
        // left without a next run rather than retried every tick.
        let next = CronSchedule::parse(&schedule.cron, &schedule.time_zone)
            .and_then(|parsed| parsed.next_after(now))
            .ok();
        if next.is_none() {
            tracing::warn!(schedule = %schedule.id, "a job schedule never fires again; it stays idle");
        }
        produced.jobs += diesel::sql_query(
            "INSERT INTO jobs (schedule_id, kind, payload, run_after, created_at, updated_at) \
             SELECT s.id, s.kind, s.payload, $2, $2, $2 FROM job_schedules s WHERE s.id = $1 \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.schedule_id = s.id AND j.status = 'queued')",
        )
        .bind::<SqlUuid, _>(schedule.id)
        .bind::<Timestamptz, _>(now)
        .execute(conn)
        .await?;
        diesel::sql_query(
            "UPDATE job_schedules SET last_run_at = $2, next_run_at = $3, updated_at = $2 WHERE id = $1",
        )
        .bind::<SqlUuid, _>(schedule.id)
        .bind::<Timestamptz, _>(now)
        .bind::<Nullable<Timestamptz>, _>(next)
        .execute(conn)
        .await?;
    }
    let polls: Count = diesel::sql_query(
        "WITH due AS ( \
             UPDATE polling_schedules s SET last_run_at = $1, updated_at = $1, \
                 next_run_at = $1 + make_interval(secs => s.interval_seconds) \
             WHERE s.id IN (SELECT id FROM polling_schedules WHERE enabled AND next_run_at <= $1 \
                            ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING s.id), \
         made AS ( \
             INSERT INTO poll_jobs (schedule_id, created_at) SELECT due.id, $1 FROM due \
             ON CONFLICT (schedule_id) WHERE status IN ('queued', 'running') DO NOTHING \
             RETURNING 1) \
         SELECT count(*) AS n FROM made",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<diesel::sql_types::BigInt, _>(SCHEDULES_PER_VISIT * 10)
    .get_result(conn)
    .await?;
    produced.poll_jobs = usize::try_from(polls.n).unwrap_or(0);
    crate::edge::ingest::poll::requeue_expired(conn, now).await?;
    Ok(produced)
}

/// The claim of a running job whose lease expired (its worker died), then of the queued
/// job due earliest.
fn claim_sql(queue: Queue) -> [String; 2] {
    let (table, tenant) = (queue.table(), queue.tenant_column());
    [
        format!(
            "UPDATE {table} SET attempts = attempts + 1, locked_at = $1, locked_until = $2, lease_id = $3, \
                 updated_at = $1 \
             WHERE id = (SELECT id FROM {table} WHERE status = 'running' AND locked_until <= $1 \
                         ORDER BY locked_until LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, payload, attempts, max_attempts, lease_id, {tenant} AS tenant_id"
        ),
        format!(
            "UPDATE {table} SET status = 'running', attempts = attempts + 1, locked_at = $1, \
                 locked_until = $2, lease_id = $3, updated_at = $1 \
             WHERE id = (SELECT id FROM {table} WHERE status = 'queued' AND run_after <= $1 \
                         ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, payload, attempts, max_attempts, lease_id, {tenant} AS tenant_id"
        ),
    ]
}

/// Claims one job of `queue` (see the module doc) with a lease until `locked_until`.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
    lease_id: Uuid,
) -> Result<Option<Claim>, JobError> {
    claim_in(conn, Queue::Tenant, now, locked_until, lease_id).await
}

/// [`claim`] in the given queue.
pub async fn claim_in(
    conn: &mut AsyncPgConnection,
    queue: Queue,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
    lease_id: Uuid,
) -> Result<Option<Claim>, JobError> {
    for sql in claim_sql(queue) {
        let row: Option<ClaimedRow> = diesel::OptionalExtension::optional(
            diesel::sql_query(sql)
                .bind::<Timestamptz, _>(now)
                .bind::<Timestamptz, _>(locked_until)
                .bind::<SqlUuid, _>(lease_id)
                .get_result(conn)
                .await,
        )?;
        let Some(row) = row else { continue };
        let job = ClaimedJob {
            queue,
            id: row.id,
            kind: row.kind,
            payload: row.payload,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            lease_id: row.lease_id,
            tenant_id: row.tenant_id,
        };
        if job.attempts > job.max_attempts {
            fail(conn, &job, now, "LEASE_EXPIRED", true, now).await?;
            return Ok(Some(Claim::DeadLettered(job.id)));
        }
        return Ok(Some(Claim::Run(job)));
    }
    Ok(None)
}

/// Locks the job row for the rest of the transaction, if the lease is still ours.
pub async fn hold(conn: &mut AsyncPgConnection, job: &ClaimedJob) -> Result<(), JobError> {
    let held = diesel::sql_query(format!(
        "SELECT id FROM {} WHERE id = $1 AND lease_id = $2 AND status = 'running' FOR UPDATE",
        job.queue.table()
    ))
    .bind::<SqlUuid, _>(job.id)
    .bind::<SqlUuid, _>(job.lease_id)
    .execute(conn)
    .await?;
    if held == 1 {
        Ok(())
    } else {
        Err(JobError::LeaseLost)
    }
}

/// Extends the lease to `locked_until` (the heartbeat of jobs that run in several
/// transactions), if it is still ours.
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    job: &ClaimedJob,
    locked_until: DateTime<Utc>,
) -> Result<(), JobError> {
    let renewed = diesel::sql_query(format!(
        "UPDATE {} SET locked_until = $3 WHERE id = $1 AND lease_id = $2 AND status = 'running'",
        job.queue.table()
    ))
    .bind::<SqlUuid, _>(job.id)
    .bind::<SqlUuid, _>(job.lease_id)
    .bind::<Timestamptz, _>(locked_until)
    .execute(conn)
    .await?;
    if renewed == 1 {
        Ok(())
    } else {
        Err(JobError::LeaseLost)
    }
}

/// Marks the job succeeded with its result, if the lease is still ours.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    job: &ClaimedJob,
    now: DateTime<Utc>,
    result: &serde_json::Value,
) -> Result<(), JobError> {
    let done = diesel::sql_query(format!(
        "UPDATE {} SET status = 'succeeded', result = $3, last_error = NULL, finished_at = $4, \
         locked_until = NULL, lease_id = NULL, updated_at = $4 \
         WHERE id = $1 AND lease_id = $2 AND status = 'running'",
        job.queue.table()
    ))
    .bind::<SqlUuid, _>(job.id)
    .bind::<SqlUuid, _>(job.lease_id)
    .bind::<Jsonb, _>(result)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    if done == 1 {
        Ok(())
    } else {
        Err(JobError::LeaseLost)
    }
}

#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = Text)]
    status: String,
}

/// Records a failed attempt with its error code: queued again at `retry_at`, or
/// dead-lettered (`failed`) when `permanent` or after the job's last allowed attempt.
/// Returns the job's new status (`None` when the lease was no longer ours).
pub async fn fail(
    conn: &mut AsyncPgConnection,
    job: &ClaimedJob,
    now: DateTime<Utc>,
    code: &str,
    permanent: bool,
    retry_at: DateTime<Utc>,
) -> Result<Option<String>, JobError> {
    let status: Option<Status> = diesel::OptionalExtension::optional(
        diesel::sql_query(format!(
            "UPDATE {} SET \
                 status = CASE WHEN $4 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
                 run_after = CASE WHEN $4 OR attempts >= max_attempts THEN run_after ELSE $5 END, \
                 finished_at = CASE WHEN $4 OR attempts >= max_attempts THEN $6 END, \
                 last_error = $3, locked_until = NULL, lease_id = NULL, updated_at = $6 \
             WHERE id = $1 AND lease_id = $2 AND status = 'running' RETURNING status",
            job.queue.table()
        ))
        .bind::<SqlUuid, _>(job.id)
        .bind::<SqlUuid, _>(job.lease_id)
        .bind::<Text, _>(code)
        .bind::<Bool, _>(permanent)
        .bind::<Timestamptz, _>(retry_at)
        .bind::<Timestamptz, _>(now)
        .get_result(conn)
        .await,
    )?;
    Ok(status.map(|s| s.status))
}
