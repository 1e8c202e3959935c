//! Tenant jobs through GraphQL: job schedules (cron expressions in a time zone) and the
//! tenant's job queue, with what a worker recorded (attempts, the last error's code, the
//! result). Everything runs in the request's tenant transaction, so the due-index trigger
//! updates `public.job_due` in the same transaction as the rows (see `crate::jobs`).
//! Reads are open to viewers; every mutation needs an admin (see `access`). Platform
//! admins also read the platform's own queue (`platformJobs`, in `public`).

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::context::{RequirePlatformAdmin, app, platform_admin, scope};
use super::enums::{JobKind, JobStatus};
use super::errors::{ApiError, ApiResult, Code};
use super::ids;
use super::monitoring::{cursor_time, time_cursor};
use super::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::jobs::cron::CronSchedule;
use crate::jobs::kinds::Kind;
use crate::schema::public::platform_jobs;
use crate::schema::tenant::{job_schedules, jobs};
use crate::tenancy::transaction::TxConn;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = job_schedules, check_for_backend(Pg))]
pub struct JobScheduleRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub cron: String,
    pub time_zone: String,
    pub payload: serde_json::Value,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A job schedule: runs a job of its kind at the times of its cron expression.
#[derive(Clone)]
pub struct JobSchedule(pub JobScheduleRow);

impl From<JobScheduleRow> for JobSchedule {
    fn from(row: JobScheduleRow) -> Self {
        Self(row)
    }
}

/// A job schedule: runs a job of its kind at the times of its cron expression.
#[Object]
impl JobSchedule {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("JobSchedule", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The kind of job it runs.
    async fn kind(&self) -> JobKind {
        JobKind::from_stored(&self.0.kind)
    }
    /// Cron expression (five fields: minute hour day-of-month month day-of-week; a sixth,
    /// leading field is seconds), read in `timeZone`.
    async fn cron(&self) -> &str {
        &self.0.cron
    }
    /// IANA time zone the cron expression is read in (`UTC`, `Europe/Paris`, …).
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    /// The payload each job gets (options of the kind, e.g. `{"batchSize": 500}` for
    /// retention).
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }
    /// Whether it fires (false: paused).
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// When it last fired.
    async fn last_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_run_at
    }
    /// When it fires next (none while paused). Runs missed while nothing ran are
    /// coalesced into one.
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        if self.0.enabled { self.0.next_run_at } else { None }
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = jobs, check_for_backend(Pg))]
pub struct JobRow {
    pub id: Uuid,
    pub schedule_id: Option<Uuid>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job of the tenant's queue.
#[derive(Clone)]
pub struct Job(pub JobRow);

impl From<JobRow> for Job {
    fn from(row: JobRow) -> Self {
        Self(row)
    }
}

/// A job of the tenant's queue.
#[Object]
impl Job {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Job", self.0.id)
    }
    /// The schedule that made it (none when it was queued otherwise or the schedule is
    /// gone).
    async fn schedule_id(&self) -> Option<ID> {
        self.0.schedule_id.map(|id| ids::encode("JobSchedule", id))
    }
    /// Its kind, as stored (`retention`, `onboarding_expiry`, …).
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Its payload.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }
    /// Where it stands.
    async fn status(&self) -> JobStatus {
        JobStatus::from_stored(&self.0.status)
    }
    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// Attempts allowed before it is dead-lettered (`FAILED`).
    async fn max_attempts(&self) -> i32 {
        self.0.max_attempts
    }
    /// When it may run (next).
    async fn run_after(&self) -> DateTime<Utc> {
        self.0.run_after
    }
    /// The code of the last failed attempt's error (e.g. `STATEMENT_TIMEOUT`,
    /// `LOCK_TIMEOUT`, `LEASE_EXPIRED`: its worker vanished; `UNKNOWN_KIND`).
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// What the job did (e.g. `{"deleted": {"events": 120}}`), once it succeeded.
    async fn result(&self) -> Option<Json<serde_json::Value>> {
        self.0.result.clone().map(Json)
    }
    /// When it was queued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it succeeded, failed for good or was cancelled.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = platform_jobs, check_for_backend(Pg))]
pub struct PlatformJobRow {
    pub id: Uuid,
    pub kind: String,
    pub tenant_id: Option<Uuid>,
    pub status: String,
    pub attempts: i32,
    pub run_after: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub result: Option<serde_json::Value>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job of the platform's own queue (`public`), about the fleet or one tenant.
#[derive(Clone)]
pub struct PlatformJob(pub PlatformJobRow);

impl From<PlatformJobRow> for PlatformJob {
    fn from(row: PlatformJobRow) -> Self {
        Self(row)
    }
}

/// A job of the platform's own queue (`public`), about the fleet or one tenant.
#[Object]
impl PlatformJob {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("PlatformJob", self.0.id)
    }
    /// Its kind, as stored.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// The tenant it is about (the tenant's global id), if any.
    async fn tenant_id(&self) -> Option<ID> {
        self.0.tenant_id.map(|id| ids::encode("Tenant", id))
    }
    /// Where it stands.
    async fn status(&self) -> JobStatus {
        JobStatus::from_stored(&self.0.status)
    }
    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// When it may run (next).
    async fn run_after(&self) -> DateTime<Utc> {
        self.0.run_after
    }
    /// The code of the last failed attempt's error.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When it was queued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// What it produced, once it succeeded (a `tenant_export`: the archive's `path`,
    /// `bytes` and `sha256`).
    async fn result(&self) -> Option<Json<serde_json::Value>> {
        self.0.result.clone().map(Json)
    }
    /// When it succeeded or failed for good.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

fn name_cursor(row: &JobScheduleRow) -> Cursor {
    Cursor {
        key: row.name.clone(),
        id: row.id,
    }
}

/// The tenant's job schedules and jobs.
#[derive(Default)]
pub struct JobsQuery;

#[Object]
impl JobsQuery {
    /// Job schedules, by name.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn job_schedules(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size, walking forward from `after`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500). Without first and last, pages have 50 items."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
        #[graphql(
            desc = "Page size, walking backward from `before`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500)."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends (from `pageInfo.startCursor`).")] before: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, JobSchedule, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = job_schedules::table
            .select(JobScheduleRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            job_schedules::name,
            job_schedules::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            name_cursor,
            JobSchedule::from,
            EmptyFields
        )
    }

    /// How long the tenant keeps each kind of data (what the `retention` job deletes).
    async fn retention_policy(&self, ctx: &Context<'_>) -> ApiResult<RetentionPolicy> {
        let mut conn = scope(ctx)?.conn().await?;
        retention_policy(&mut conn).await
    }

    /// The tenant's jobs, newest first; optionally of one status and kind.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only jobs in this status.")] status: Option<JobStatus>,
        #[graphql(desc = "Only jobs of this kind.")] kind: Option<JobKind>,
        #[graphql(
            desc = "Page size, walking forward from `after`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500). Without first and last, pages have 50 items."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
        #[graphql(
            desc = "Page size, walking backward from `before`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500)."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends (from `pageInfo.startCursor`).")] before: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, Job, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let mut query = jobs::table
            .select(JobRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(jobs::status.eq(status.as_str()));
        }
        if let Some(kind) = kind {
            query = query.filter(jobs::kind.eq(kind.as_str()));
        }
        let query = keyset!(
            query,
            &window,
            jobs::created_at,
            jobs::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &JobRow| time_cursor(r.created_at, r.id),
            Job::from,
            EmptyFields
        )
    }
}

/// The platform's own job queue (platform admins).
#[derive(Default)]
pub struct PlatformJobsQuery;

#[Object]
impl PlatformJobsQuery {
    /// The platform's jobs (in `public`, about the fleet or a tenant), newest first;
    /// optionally of one status (platform admins).
    #[graphql(
        guard = "RequirePlatformAdmin",
        complexity = "super::limits::list_cost(first, last, child_complexity)"
    )]
    async fn platform_jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only jobs in this status.")] status: Option<JobStatus>,
        #[graphql(
            desc = "Page size, walking forward from `after`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500). Without first and last, pages have 50 items."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
        #[graphql(
            desc = "Page size, walking backward from `before`: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500)."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor before which the page ends (from `pageInfo.startCursor`).")] before: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, PlatformJob, EmptyFields>> {
        let app = app(ctx)?;
        let window = Window::new(first, after, last, before, app.max_page_size)?;
        let mut query = platform_jobs::table
            .select(PlatformJobRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(platform_jobs::status.eq(status.as_str()));
        }
        let query = keyset!(
            query,
            &window,
            platform_jobs::created_at,
            platform_jobs::id,
            cursor_time,
            descending
        );
        let mut conn = app.db.platform(&platform_admin(ctx)?).await?;
        let rows: Vec<PlatformJobRow> = query.load(&mut conn).await?;
        let rows = rows
            .into_iter()
            .map(|row| (time_cursor(row.created_at, row.id), PlatformJob::from(row)))
            .collect();
        Ok(window.connection(rows, EmptyFields))
    }
}

/// The platform's job mutations (platform admins).
#[derive(Default)]
pub struct PlatformJobsMutation;

/// A platform job after a mutation.
#[derive(SimpleObject)]
pub struct PlatformJobPayload {
    /// The job as queued.
    pub platform_job: PlatformJob,
}

#[Object]
impl PlatformJobsMutation {
    /// Queues an export of a tenant (a `tenant_export` platform job): a worker writes the
    /// tenant's archive into the server's export directory and records its path and
    /// SHA-256 digest in the job's `result` (platform admins).
    #[graphql(guard = "RequirePlatformAdmin")]
    async fn export_tenant(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Slug of the tenant to export.")] slug: String,
    ) -> ApiResult<PlatformJobPayload> {
        let app = app(ctx)?;
        let slug = crate::tenancy::provision::parse_slug(&slug)?;
        let mut conn = app.db.platform(&platform_admin(ctx)?).await?;
        let tenant: Option<Uuid> = crate::schema::public::tenants::table
            .filter(crate::schema::public::tenants::slug.eq(slug.as_str()))
            .select(crate::schema::public::tenants::id)
            .first(&mut conn)
            .await
            .optional()?;
        let tenant = tenant.ok_or_else(|| ApiError::not_found("there is no such tenant"))?;
        let row: PlatformJobRow = diesel::insert_into(platform_jobs::table)
            .values((
                platform_jobs::kind.eq(crate::jobs::platform::TENANT_EXPORT),
                platform_jobs::tenant_id.eq(tenant),
            ))
            .returning(PlatformJobRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(PlatformJobPayload {
            platform_job: row.into(),
        })
    }
}

/// How long the tenant keeps each kind of data, in days: its own setting, else the
/// default. The `retention` job deletes older rows.
#[derive(SimpleObject, Clone, Copy)]
pub struct RetentionPolicy {
    /// Events (default 90).
    pub events_days: i32,
    /// Log lines (default 30).
    pub logs_days: i32,
    /// Named metric series (`timeseriesMetrics`; default 30).
    pub metrics_days: i32,
    /// Health events (default 90).
    pub health_events_days: i32,
    /// CPU usage samples (default 30).
    pub cpu_metrics_days: i32,
    /// Memory usage samples (default 30).
    pub memory_metrics_days: i32,
    /// Disk usage samples (default 30).
    pub disk_metrics_days: i32,
    /// Process samples (default 7).
    pub process_metrics_days: i32,
    /// OpenTelemetry metric points (default 30).
    pub otel_metrics_days: i32,
    /// OpenTelemetry spans (default 7).
    pub traces_days: i32,
    /// Trace summaries (default 30).
    pub trace_summaries_days: i32,
}

/// Input of `setRetentionPolicy`: days to keep, 1 to 3650; absent kinds keep their value.
#[derive(InputObject)]
pub struct SetRetentionPolicyInput {
    /// Days to keep events.
    pub events_days: Option<i32>,
    /// Days to keep log lines.
    pub logs_days: Option<i32>,
    /// Days to keep named metric series.
    pub metrics_days: Option<i32>,
    /// Days to keep health events.
    pub health_events_days: Option<i32>,
    /// Days to keep CPU usage samples.
    pub cpu_metrics_days: Option<i32>,
    /// Days to keep memory usage samples.
    pub memory_metrics_days: Option<i32>,
    /// Days to keep disk usage samples.
    pub disk_metrics_days: Option<i32>,
    /// Days to keep process samples.
    pub process_metrics_days: Option<i32>,
    /// Days to keep OpenTelemetry metric points.
    pub otel_metrics_days: Option<i32>,
    /// Days to keep OpenTelemetry spans.
    pub traces_days: Option<i32>,
    /// Days to keep trace summaries.
    pub trace_summaries_days: Option<i32>,
}

/// The retention policy after a mutation.
#[derive(SimpleObject)]
pub struct RetentionPolicyPayload {
    /// The policy as it is now.
    pub retention_policy: RetentionPolicy,
}

#[derive(diesel::QueryableByName)]
struct PolicyRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    data_kind: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    keep_days: i32,
}

/// The tenant's retention policy, defaults filled in.
async fn retention_policy(conn: &mut TxConn<'_>) -> ApiResult<RetentionPolicy> {
    let rows: Vec<PolicyRow> = diesel::sql_query("SELECT data_kind, keep_days FROM retention_policies")
        .load(conn)
        .await?;
    let days = |name: &str| {
        rows.iter().find(|row| row.data_kind == name).map_or_else(
            || {
                crate::jobs::kinds::retention::DATA_KINDS
                    .iter()
                    .find(|kind| kind.name == name)
                    .map_or(30, |kind| kind.default_days)
            },
            |row| row.keep_days,
        )
    };
    Ok(RetentionPolicy {
        events_days: days("events"),
        logs_days: days("logs"),
        metrics_days: days("metrics"),
        health_events_days: days("health_events"),
        cpu_metrics_days: days("cpu_metrics"),
        memory_metrics_days: days("memory_metrics"),
        disk_metrics_days: days("disk_metrics"),
        process_metrics_days: days("process_metrics"),
        otel_metrics_days: days("otel_metrics"),
        traces_days: days("traces"),
        trace_summaries_days: days("trace_summaries"),
    })
}

/// Input of `createJobSchedule`.
#[derive(InputObject)]
pub struct CreateJobScheduleInput {
    /// Unique name (1 to 200 characters).
    pub name: String,
    /// The kind of job it runs.
    pub kind: JobKind,
    /// Cron expression (see `JobSchedule.cron`).
    pub cron: String,
    /// IANA time zone the expression is read in; `UTC` when absent.
    pub time_zone: Option<String>,
    /// Payload of its jobs (a JSON object; `{}` when absent).
    pub payload: Option<Json<serde_json::Value>>,
    /// Whether it fires (true when absent).
    pub enabled: Option<bool>,
}

/// Input of `updateJobSchedule`: absent fields keep their value.
#[derive(InputObject)]
pub struct UpdateJobScheduleInput {
    /// The schedule.
    pub id: ID,
    /// New unique name.
    pub name: Option<String>,
    /// New cron expression.
    pub cron: Option<String>,
    /// New time zone.
    pub time_zone: Option<String>,
    /// New payload (a JSON object).
    pub payload: Option<Json<serde_json::Value>>,
    /// Fires (true) or is paused (false).
    pub enabled: Option<bool>,
}

/// A job schedule after a mutation.
#[derive(SimpleObject)]
pub struct JobSchedulePayload {
    /// The schedule as it is now.
    pub job_schedule: JobSchedule,
}

/// A job after a mutation.
#[derive(SimpleObject)]
pub struct JobPayload {
    /// The job as it is now.
    pub job: Job,
}

/// The checked fields of a schedule and its next run (after now, when enabled).
struct Checked {
    name: String,
    payload: serde_json::Value,
    next_run_at: Option<DateTime<Utc>>,
}

fn check(
    name: &str,
    kind: JobKind,
    cron: &str,
    time_zone: &str,
    payload: serde_json::Value,
    enabled: bool,
) -> ApiResult<Checked> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_input("name must have 1 to 200 characters"));
    }
    let next = CronSchedule::validate(cron, time_zone, Utc::now())
        .map_err(|e| ApiError::bad_input(e.to_string()))?;
    if !payload.is_object() {
        return Err(ApiError::bad_input("payload must be a JSON object"));
    }
    let stored = Kind::parse(kind.as_str()).ok_or_else(|| ApiError::bad_input("unknown job kind"))?;
    stored
        .check_payload(&payload)
        .map_err(|e| ApiError::bad_input(e.to_string()))?;
    Ok(Checked {
        name,
        payload,
        next_run_at: enabled.then_some(next),
    })
}

async fn schedule_row(conn: &mut TxConn<'_>, id: Uuid) -> ApiResult<JobScheduleRow> {
    job_schedules::table
        .find(id)
        .select(JobScheduleRow::as_select())
        .for_update()
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("no such job schedule"))
}

/// Sets a schedule's `enabled` (and its next run from now).
async fn set_enabled(ctx: &Context<'_>, id: &ID, enabled: bool) -> ApiResult<JobSchedulePayload> {
    let id = ids::decode("JobSchedule", id)?;
    let mut conn = scope(ctx)?.conn().await?;
    let row = schedule_row(&mut conn, id).await?;
    let next = if enabled {
        Some(
            CronSchedule::validate(&row.cron, &row.time_zone, Utc::now())
                .map_err(|e| ApiError::bad_input(e.to_string()))?,
        )
    } else {
        None
    };
    let row = diesel::update(job_schedules::table.find(id))
        .set((
            job_schedules::enabled.eq(enabled),
            job_schedules::next_run_at.eq(next),
            job_schedules::updated_at.eq(diesel::dsl::now),
        ))
        .returning(JobScheduleRow::as_returning())
        .get_result(&mut conn)
        .await?;
    Ok(JobSchedulePayload {
        job_schedule: row.into(),
    })
}

/// Changes a job whose status is one of `from`; CONFLICT otherwise.
async fn change_job(
    ctx: &Context<'_>,
    id: &ID,
    from: &[&str],
    to_queued: bool,
    refusal: &str,
) -> ApiResult<JobPayload> {
    let id = ids::decode("Job", id)?;
    let mut conn = scope(ctx)?.conn().await?;
    let current: String = jobs::table
        .find(id)
        .select(jobs::status)
        .get_result(&mut conn)
        .await
        .optional()?
        .ok_or_else(|| ApiError::not_found("no such job"))?;
    if !from.contains(&current.as_str()) {
        return Err(ApiError::new(Code::Conflict, refusal));
    }
    let target = jobs::table.find(id).filter(jobs::status.eq_any(from.to_vec()));
    let row = if to_queued {
        diesel::update(target)
            .set((
                jobs::status.eq("queued"),
                jobs::attempts.eq(0),
                jobs::run_after.eq(diesel::dsl::now),
                jobs::finished_at.eq(None::<DateTime<Utc>>),
                jobs::updated_at.eq(diesel::dsl::now),
            ))
            .returning(JobRow::as_returning())
            .get_result(&mut conn)
            .await
    } else {
        diesel::update(target)
            .set((
                jobs::status.eq("cancelled"),
                jobs::finished_at.eq(diesel::dsl::now),
                jobs::updated_at.eq(diesel::dsl::now),
            ))
            .returning(JobRow::as_returning())
            .get_result(&mut conn)
            .await
    }
    .optional()?
    .ok_or_else(|| ApiError::new(Code::Conflict, refusal))?;
    Ok(JobPayload { job: row.into() })
}

/// Job schedule and job mutations (admins).
#[derive(Default)]
pub struct JobsMutation;

#[Object]
impl JobsMutation {
    /// Creates a job schedule; it first fires at the next time its cron expression names.
    async fn create_job_schedule(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateJobScheduleInput,
    ) -> ApiResult<JobSchedulePayload> {
        let time_zone = input.time_zone.as_deref().unwrap_or("UTC").trim().to_owned();
        let enabled = input.enabled.unwrap_or(true);
        let payload = input.payload.map_or_else(|| serde_json::json!({}), |p| p.0);
        let checked = check(&input.name, input.kind, &input.cron, &time_zone, payload, enabled)?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(job_schedules::table)
            .values((
                job_schedules::name.eq(checked.name),
                job_schedules::kind.eq(input.kind.as_str()),
                job_schedules::cron.eq(input.cron.trim()),
                job_schedules::time_zone.eq(time_zone),
                job_schedules::payload.eq(checked.payload),
                job_schedules::enabled.eq(enabled),
                job_schedules::next_run_at.eq(checked.next_run_at),
            ))
            .returning(JobScheduleRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(JobSchedulePayload {
            job_schedule: row.into(),
        })
    }

    /// Changes a job schedule (absent fields keep their value); its next run is
    /// computed again from now.
    async fn update_job_schedule(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateJobScheduleInput,
    ) -> ApiResult<JobSchedulePayload> {
        let id = ids::decode("JobSchedule", &input.id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let current = schedule_row(&mut conn, id).await?;
        let name = input.name.unwrap_or(current.name);
        let cron = input.cron.map_or(current.cron, |c| c.trim().to_owned());
        let time_zone = input.time_zone.map_or(current.time_zone, |z| z.trim().to_owned());
        let payload = input.payload.map_or(current.payload, |p| p.0);
        let enabled = input.enabled.unwrap_or(current.enabled);
        let kind = JobKind::from_stored(&current.kind);
        let checked = check(&name, kind, &cron, &time_zone, payload, enabled)?;
        let row = diesel::update(job_schedules::table.find(id))
            .set((
                job_schedules::name.eq(checked.name),
                job_schedules::cron.eq(cron),
                job_schedules::time_zone.eq(time_zone),
                job_schedules::payload.eq(checked.payload),
                job_schedules::enabled.eq(enabled),
                job_schedules::next_run_at.eq(checked.next_run_at),
                job_schedules::updated_at.eq(diesel::dsl::now),
            ))
            .returning(JobScheduleRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(JobSchedulePayload {
            job_schedule: row.into(),
        })
    }

    /// Pauses a job schedule: it fires no more until resumed.
    async fn pause_job_schedule(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The schedule.")] id: ID,
    ) -> ApiResult<JobSchedulePayload> {
        set_enabled(ctx, &id, false).await
    }

    /// Resumes a paused job schedule: it fires next at the next time its expression names
    /// (runs missed while paused are not made up).
    async fn resume_job_schedule(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The schedule.")] id: ID,
    ) -> ApiResult<JobSchedulePayload> {
        set_enabled(ctx, &id, true).await
    }

    /// Queues a job of the schedule now, outside its times (its next run is unchanged).
    async fn run_job_schedule_now(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The schedule.")] id: ID,
    ) -> ApiResult<JobPayload> {
        let id = ids::decode("JobSchedule", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let schedule = schedule_row(&mut conn, id).await?;
        let row = diesel::insert_into(jobs::table)
            .values((
                jobs::schedule_id.eq(schedule.id),
                jobs::kind.eq(schedule.kind),
                jobs::payload.eq(schedule.payload),
            ))
            .returning(JobRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(JobPayload { job: row.into() })
    }

    /// Queues a failed or cancelled job again, now, with its attempts reset.
    async fn retry_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job.")] id: ID,
    ) -> ApiResult<JobPayload> {
        change_job(
            ctx,
            &id,
            &["failed", "cancelled"],
            true,
            "only a failed or cancelled job can be retried",
        )
        .await
    }

    /// Sets how long the tenant keeps each kind of data (the next `retention` job deletes
    /// what is older).
    async fn set_retention_policy(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: SetRetentionPolicyInput,
    ) -> ApiResult<RetentionPolicyPayload> {
        let changes = [
            ("events", input.events_days),
            ("logs", input.logs_days),
            ("metrics", input.metrics_days),
            ("health_events", input.health_events_days),
            ("cpu_metrics", input.cpu_metrics_days),
            ("memory_metrics", input.memory_metrics_days),
            ("disk_metrics", input.disk_metrics_days),
            ("process_metrics", input.process_metrics_days),
            ("otel_metrics", input.otel_metrics_days),
            ("traces", input.traces_days),
            ("trace_summaries", input.trace_summaries_days),
        ];
        if changes
            .iter()
            .any(|(_, days)| days.is_some_and(|days| !(1..=3650).contains(&days)))
        {
            return Err(ApiError::bad_input("days must be between 1 and 3650"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        for (kind, days) in changes {
            let Some(days) = days else { continue };
            diesel::sql_query(
                "INSERT INTO retention_policies (data_kind, keep_days) VALUES ($1, $2) \
                 ON CONFLICT (data_kind) DO UPDATE SET keep_days = EXCLUDED.keep_days, updated_at = now()",
            )
            .bind::<diesel::sql_types::Text, _>(kind)
            .bind::<diesel::sql_types::Integer, _>(days)
            .execute(&mut conn)
            .await?;
        }
        Ok(RetentionPolicyPayload {
            retention_policy: retention_policy(&mut conn).await?,
        })
    }

    /// Cancels a queued job (a running job cannot be cancelled).
    async fn cancel_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job.")] id: ID,
    ) -> ApiResult<JobPayload> {
        change_job(ctx, &id, &["queued"], false, "only a queued job can be cancelled").await
    }
}
