//! The tenant's job queue, in the tenant's own schema (`jobs`, `job_schedules`,
//! `poll_jobs`, `polling_schedules`); every function here runs inside a job transaction
//! (`tx::in_tenant`) and takes `now` from the runtime's clock.
//!
//! - [`produce`] turns due schedules into work: a job per due job schedule (unless one of
//!   the schedule's jobs is still queued) and a poll job per due polling schedule (unless
//!   one is still queued for it); each schedule's next run is computed from *now*, so runs
//!   missed while nothing ran are coalesced into one.
//! - [`claim`] takes one job with `FOR UPDATE SKIP LOCKED`: first a running job whose
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

/// A job this worker holds the lease of.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedJob {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    /// This attempt's number (1 for the first).
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    #[diesel(sql_type = SqlUuid)]
    pub lease_id: Uuid,
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
             WHERE NOT EXISTS (SELECT 1 FROM poll_jobs p WHERE p.schedule_id = due.id AND p.status = 'queued') \
             RETURNING 1) \
         SELECT count(*) AS n FROM made",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<diesel::sql_types::BigInt, _>(SCHEDULES_PER_VISIT * 10)
    .get_result(conn)
    .await?;
    produced.poll_jobs = usize::try_from(polls.n).unwrap_or(0);
    Ok(produced)
}

const CLAIM_EXPIRED: &str = "\
UPDATE jobs SET attempts = attempts + 1, locked_at = $1, locked_until = $2, lease_id = $3, updated_at = $1 \
WHERE id = (SELECT id FROM jobs WHERE status = 'running' AND locked_until <= $1 \
            ORDER BY locked_until LIMIT 1 FOR UPDATE SKIP LOCKED) \
RETURNING id, kind, payload, attempts, max_attempts, lease_id";

const CLAIM_QUEUED: &str = "\
UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_at = $1, locked_until = $2, \
    lease_id = $3, updated_at = $1 \
WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= $1 \
            ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED) \
RETURNING id, kind, payload, attempts, max_attempts, lease_id";

/// Claims one job (see the module doc) with a lease until `locked_until`.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
    lease_id: Uuid,
) -> Result<Option<Claim>, JobError> {
    for sql in [CLAIM_EXPIRED, CLAIM_QUEUED] {
        let job: Option<ClaimedJob> = diesel::OptionalExtension::optional(
            diesel::sql_query(sql)
                .bind::<Timestamptz, _>(now)
                .bind::<Timestamptz, _>(locked_until)
                .bind::<SqlUuid, _>(lease_id)
                .get_result(conn)
                .await,
        )?;
        let Some(job) = job else { continue };
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
    let held = diesel::sql_query(
        "SELECT id FROM jobs WHERE id = $1 AND lease_id = $2 AND status = 'running' FOR UPDATE",
    )
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
    let renewed = diesel::sql_query(
        "UPDATE jobs SET locked_until = $3 WHERE id = $1 AND lease_id = $2 AND status = 'running'",
    )
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
    let done = diesel::sql_query(
        "UPDATE jobs SET status = 'succeeded', result = $3, last_error = NULL, finished_at = $4, \
         locked_until = NULL, lease_id = NULL, updated_at = $4 \
         WHERE id = $1 AND lease_id = $2 AND status = 'running'",
    )
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
        diesel::sql_query(
            "UPDATE jobs SET \
                 status = CASE WHEN $4 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
                 run_after = CASE WHEN $4 OR attempts >= max_attempts THEN run_after ELSE $5 END, \
                 finished_at = CASE WHEN $4 OR attempts >= max_attempts THEN $6 END, \
                 last_error = $3, locked_until = NULL, lease_id = NULL, updated_at = $6 \
             WHERE id = $1 AND lease_id = $2 AND status = 'running' RETURNING status",
        )
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
