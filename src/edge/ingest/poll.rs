//! Poll jobs over the edge listener: the tenant's pollers lease the poll jobs its polling
//! schedules produce (`jobs::queue::produce`) and post their results back.
//!
//! - `GET /edge/v1/poll-jobs?limit=N` (1 to [`MAX_LEASE`], default [`DEFAULT_LEASE`])
//!   leases up to N queued poll jobs to the calling component, oldest first, with
//!   `FOR UPDATE SKIP LOCKED` (two pollers never get the same job), marking them `running`
//!   until `leasedUntil` (now + [`LEASE_SECONDS`]). It first returns the tenant's expired
//!   leases to `queued` ([`requeue_expired`]; the worker does the same on its visits).
//!   A lease also makes the tenant due in `public.job_due` when it runs out (the tenant
//!   migration `poll_lease_due`), so a worker visits the tenant then and an expired lease
//!   comes back even when nothing else of the tenant is due.
//! - `POST /edge/v1/poll-jobs/{id}/result` with `{"status": "succeeded"|"failed",
//!   "result": {…}?, "error": "…"?}` records the outcome of a job *this component* holds
//!   (status `running`, `leased_by` = its component id, even if its lease has run out
//!   while nobody else took the job). Anything else — an unknown id, another tenant's job
//!   (not even visible: the transaction only sees the caller's tenant), another
//!   component's job, a job already finished or returned to the queue — is refused with
//!   `409 NOT_LEASED` and changes nothing. `result` is a JSON object of at most
//!   [`MAX_RESULT_BYTES`] bytes; `error` at most 1,000 characters.
//!
//! **Which jobs a caller gets.** Only components of kind `poller` or `agent` lease poll
//! jobs (others: `403 FORBIDDEN`). A schedule assigned to an agent (`agent_id`) is leased
//! only by the component whose component id is that agent's `name`; an unassigned
//! schedule by any poller or agent of the tenant. The caller is identified by its
//! certificate's component id (stable across renewals), never by anything in the request.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Body, IngestError, in_tenant};
use crate::app::App;
use crate::edge::ca::ComponentKind;
use crate::edge::listener::EdgeIdentity;

/// How long a lease lasts.
pub const LEASE_SECONDS: i64 = 300;
/// Jobs leased by one request, by default and at most.
pub const DEFAULT_LEASE: i64 = 10;
pub const MAX_LEASE: i64 = 100;
/// Largest `result` object, serialized.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
/// Longest `error` text, in characters.
const MAX_ERROR_CHARS: usize = 1000;

/// Returns the poll jobs whose lease expired at `now` to the queue; returns how many.
/// (At most one poll job per schedule is outstanding, so this never doubles one.)
pub async fn requeue_expired(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> Result<usize, diesel::result::Error> {
    diesel::sql_query(
        "UPDATE poll_jobs SET status = 'queued', leased_by = NULL, locked_until = NULL \
         WHERE status = 'running' AND locked_until <= $1",
    )
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await
}

/// Takes the tenant's row of the due-index (`public.job_due`) for the rest of the
/// transaction. Writing poll jobs updates that row (the `poll_jobs_due` trigger: leasing
/// one makes the tenant due when the lease runs out), and a worker's visit holds the row
/// when it returns expired leases (`requeue_expired`, which waits for poll job rows that
/// another transaction holds); an endpoint transaction that took poll job rows first and
/// the row second could wait for a visit that waits for it. So the endpoint takes the row
/// first, through the trigger: a statement that changes no row still fires it (it
/// recomputes the row from the tenant's own tables, the one way a tenant transaction
/// reaches `public`).
async fn take_due_row(conn: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
    diesel::sql_query("UPDATE poll_jobs SET status = status WHERE false")
        .execute(conn)
        .await
        .map(|_| ())
}

/// `GET /edge/v1/poll-jobs` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseQuery {
    /// How many jobs at most.
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(QueryableByName)]
struct Leased {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    schedule_id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    target: String,
    #[diesel(sql_type = Integer)]
    interval_seconds: i32,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    locked_until: DateTime<Utc>,
}

const LEASE_SQL: &str = "\
WITH picked AS ( \
    SELECT p.id FROM poll_jobs p JOIN polling_schedules s ON s.id = p.schedule_id \
    WHERE p.status = 'queued' AND s.enabled \
      AND (s.agent_id IS NULL OR s.agent_id IN (SELECT a.id FROM agents a WHERE a.name = $3)) \
    ORDER BY p.created_at, p.id LIMIT $4 FOR UPDATE OF p SKIP LOCKED) \
UPDATE poll_jobs p SET status = 'running', started_at = $1, locked_until = $2, leased_by = $3, \
    attempts = p.attempts + 1 \
FROM picked, polling_schedules s WHERE p.id = picked.id AND s.id = p.schedule_id \
RETURNING p.id, p.schedule_id, s.name, s.target, s.interval_seconds, p.attempts, p.locked_until";

fn check_kind(identity: &EdgeIdentity) -> Result<(), IngestError> {
    if matches!(identity.kind, ComponentKind::Poller | ComponentKind::Agent) {
        Ok(())
    } else {
        Err(IngestError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "only pollers and agents lease poll jobs",
        ))
    }
}

pub(super) async fn lease(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    query: Result<Query<LeaseQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, IngestError> {
    check_kind(&identity)?;
    let Query(query) = query.map_err(|rejection| IngestError::bad(None, rejection.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LEASE);
    if !(1..=MAX_LEASE).contains(&limit) {
        return Err(IngestError::bad(
            None,
            format!("limit must be between 1 and {MAX_LEASE}"),
        ));
    }
    let now = Utc::now();
    let until = now + chrono::Duration::seconds(LEASE_SECONDS);
    let leased: Vec<Leased> = in_tenant(&app, &identity, async |conn, _reporter| {
        take_due_row(conn).await?;
        requeue_expired(conn, now).await?;
        Ok(diesel::sql_query(LEASE_SQL)
            .bind::<Timestamptz, _>(now)
            .bind::<Timestamptz, _>(until)
            .bind::<Text, _>(&identity.component_id)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await?)
    })
    .await?;
    let jobs: Vec<serde_json::Value> = leased
        .into_iter()
        .map(|job| {
            json!({
                "id": job.id,
                "scheduleId": job.schedule_id,
                "name": job.name,
                "target": job.target,
                "intervalSeconds": job.interval_seconds,
                "attempt": job.attempts,
                "leasedUntil": job.locked_until.to_rfc3339(),
            })
        })
        .collect();
    Ok(Json(json!({ "jobs": jobs, "leaseSeconds": LEASE_SECONDS })))
}

/// `POST /edge/v1/poll-jobs/{id}/result` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollResult {
    /// `succeeded` or `failed`.
    pub status: String,
    /// What the poll found: a JSON object.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    /// Why it failed (free text, at most 1,000 characters).
    #[serde(default)]
    pub error: Option<String>,
}

impl PollResult {
    fn check(&self) -> Result<(), IngestError> {
        if !matches!(self.status.as_str(), "succeeded" | "failed") {
            return Err(IngestError::bad(None, "status must be succeeded or failed"));
        }
        if let Some(result) = &self.result {
            if !result.is_object() {
                return Err(IngestError::bad(None, "result must be a JSON object"));
            }
            if result.to_string().len() > MAX_RESULT_BYTES {
                return Err(IngestError::bad(
                    None,
                    format!("result must be at most {MAX_RESULT_BYTES} bytes"),
                ));
            }
        }
        if self
            .error
            .as_deref()
            .is_some_and(|error| error.chars().count() > MAX_ERROR_CHARS)
        {
            return Err(IngestError::bad(
                None,
                format!("error must be at most {MAX_ERROR_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

pub(super) async fn result(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Path(id): Path<String>,
    Body(posted): Body<PollResult>,
) -> Result<Json<serde_json::Value>, IngestError> {
    check_kind(&identity)?;
    let id = Uuid::parse_str(&id).map_err(|_| IngestError::bad(None, "the poll job id is not a UUID"))?;
    posted.check()?;
    let now = Utc::now();
    let recorded = in_tenant(&app, &identity, async |conn, _reporter| {
        take_due_row(conn).await?;
        Ok(diesel::sql_query(
            "UPDATE poll_jobs SET status = $2, result = $3, error = $4, finished_at = $5, \
             locked_until = NULL WHERE id = $1 AND status = 'running' AND leased_by = $6",
        )
        .bind::<SqlUuid, _>(id)
        .bind::<Text, _>(&posted.status)
        .bind::<Nullable<Jsonb>, _>(posted.result.as_ref())
        .bind::<Nullable<Text>, _>(posted.error.as_deref())
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(&identity.component_id)
        .execute(conn)
        .await?)
    })
    .await?;
    if recorded != 1 {
        tracing::info!(
            tenant = %identity.tenant.slug,
            component = identity.component_id,
            poll_job = %id,
            "poll job result refused: not leased by the caller"
        );
        return Err(IngestError::new(
            StatusCode::CONFLICT,
            "NOT_LEASED",
            "no poll job with this id is leased by this component",
        ));
    }
    Ok(Json(json!({ "ok": true, "id": id, "status": posted.status })))
}
