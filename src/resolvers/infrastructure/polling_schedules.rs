//! Polling schedules: the `PollingSchedule` object, the `pollingSchedules` list, and
//! creating, updating and deleting schedules; and their runs, the `PollJob` object and the
//! `pollJobs` list (the jobs themselves are produced by the job workers and leased by the
//! tenant's pollers over the edge listener, see `crate::edge::ingest`).

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::agents::Agent;
use super::{maybe_id, name_cursor, trimmed_name};
use crate::resolvers::context::{app, loaders, scope};
use crate::resolvers::enums::PollJobStatus;
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::models::{PollJobRow, PollingScheduleRow};
use crate::resolvers::monitoring::{cursor_time, time_cursor};
use crate::resolvers::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::schema::tenant::{poll_jobs, polling_schedules};

/// A polling schedule: collects data (SNMP, API) from a target periodically.
#[derive(Clone)]
pub struct PollingSchedule(pub PollingScheduleRow);

impl From<PollingScheduleRow> for PollingSchedule {
    fn from(row: PollingScheduleRow) -> Self {
        Self(row)
    }
}

/// A polling schedule: collects data (SNMP, API) from a target periodically.
#[Object]
impl PollingSchedule {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("PollingSchedule", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What is polled.
    async fn target(&self) -> &str {
        &self.0.target
    }
    /// Seconds between polls.
    async fn interval_seconds(&self) -> i32 {
        self.0.interval_seconds
    }
    /// Whether it runs.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// When it last ran.
    async fn last_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_run_at
    }
    /// When it runs next.
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_run_at
    }
    /// The agent that polls.
    async fn agent(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        match self.0.agent_id {
            Some(id) => Ok(loaders(ctx)?.agent(id).await?.map(Agent::from)),
            None => Ok(None),
        }
    }
}

/// One run of a polling schedule: queued by the job workers at the schedule's interval,
/// leased by a poller, finished with the result the poller posted.
#[derive(Clone)]
pub struct PollJob(pub PollJobRow);

impl From<PollJobRow> for PollJob {
    fn from(row: PollJobRow) -> Self {
        Self(row)
    }
}

/// One run of a polling schedule: queued by the job workers at the schedule's interval,
/// leased by a poller, finished with the result the poller posted.
#[Object]
impl PollJob {
    /// Opaque global id.
    async fn id(&self) -> ID {
        ids::encode("PollJob", self.0.id)
    }
    /// The schedule it runs (null once the schedule is deleted mid-request).
    async fn schedule(&self, ctx: &Context<'_>) -> ApiResult<Option<PollingSchedule>> {
        Ok(loaders(ctx)?
            .polling_schedule(self.0.schedule_id)
            .await?
            .map(PollingSchedule::from))
    }
    /// Where it stands.
    async fn status(&self) -> PollJobStatus {
        PollJobStatus::from_stored(&self.0.status)
    }
    /// How many times a poller has leased it (a lease that runs out queues it again).
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The edge component that holds or held its lease.
    async fn leased_by(&self) -> Option<&str> {
        self.0.leased_by.as_deref()
    }
    /// Until when the current lease holds (while running).
    async fn locked_until(&self) -> Option<DateTime<Utc>> {
        self.0.locked_until
    }
    /// When it was queued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When a poller last leased it.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    /// When the poller posted its outcome.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// What the poller collected (a JSON object), once succeeded.
    async fn result(&self) -> Option<Json<serde_json::Value>> {
        self.0.result.clone().map(Json)
    }
    /// Why it failed, as the poller reported it.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
}

/// Input of `createPollingSchedule`.
#[derive(InputObject)]
pub struct CreatePollingScheduleInput {
    /// Unique name.
    pub name: String,
    /// What is polled.
    pub target: String,
    /// The agent that polls.
    pub agent_id: Option<ID>,
    /// Seconds between polls (5 to 86400; 300 when absent).
    pub interval_seconds: Option<i32>,
}

/// A polling schedule after a mutation.
#[derive(SimpleObject)]
pub struct PollingSchedulePayload {
    /// The schedule as it is now.
    pub polling_schedule: PollingSchedule,
}

/// Input of `updatePollingSchedule`: absent fields are left alone.
#[derive(InputObject)]
pub struct UpdatePollingScheduleInput {
    /// The schedule to change.
    pub id: ID,
    /// New target.
    pub target: Option<String>,
    /// Run it or not.
    pub enabled: Option<bool>,
    /// New interval in seconds (5 to 86400).
    pub interval_seconds: Option<i32>,
    /// New agent (`null` unassigns it).
    #[graphql(default)]
    pub agent_id: MaybeUndefined<ID>,
}

#[derive(AsChangeset)]
#[diesel(table_name = polling_schedules)]
struct PollingScheduleChanges {
    target: Option<String>,
    enabled: Option<bool>,
    interval_seconds: Option<i32>,
    agent_id: Option<Option<Uuid>>,
    updated_at: DateTime<Utc>,
}

delete_types!(
    DeletePollingScheduleInput,
    DeletePollingSchedulePayload,
    "PollingSchedule"
);

/// The root query fields of polling schedules.
#[derive(Default)]
pub struct PollingScheduleQuery;

/// The root query field of poll jobs.
#[derive(Default)]
pub struct PollJobQuery;

#[Object]
impl PollingScheduleQuery {
    /// Polling schedules, by name.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn polling_schedules(
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
    ) -> ApiResult<Connection<Cursor, PollingSchedule, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = polling_schedules::table
            .select(PollingScheduleRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            polling_schedules::name,
            polling_schedules::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &PollingScheduleRow| name_cursor(&r.name, r.id),
            PollingSchedule::from,
            EmptyFields
        )
    }
}

#[Object]
impl PollJobQuery {
    /// Poll jobs, newest first; optionally of one schedule and in one status.
    #[allow(clippy::too_many_arguments)] // the Relay arguments plus two filters
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn poll_jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only the runs of this polling schedule.")] schedule_id: Option<ID>,
        #[graphql(desc = "Only jobs in this status.")] status: Option<PollJobStatus>,
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
    ) -> ApiResult<Connection<Cursor, PollJob, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let mut query = poll_jobs::table
            .select(PollJobRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(schedule) = decode_optional("PollingSchedule", schedule_id.as_ref())? {
            query = query.filter(poll_jobs::schedule_id.eq(schedule));
        }
        if let Some(status) = status {
            query = query.filter(poll_jobs::status.eq(status.as_str()));
        }
        let query = keyset!(
            query,
            &window,
            poll_jobs::created_at,
            poll_jobs::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &PollJobRow| time_cursor(r.created_at, r.id),
            PollJob::from,
            EmptyFields
        )
    }
}

/// The root mutation fields of polling schedules.
#[derive(Default)]
pub struct PollingScheduleMutation;

#[Object]
impl PollingScheduleMutation {
    /// Creates a polling schedule.
    async fn create_polling_schedule(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreatePollingScheduleInput,
    ) -> ApiResult<PollingSchedulePayload> {
        let agent = decode_optional("Agent", input.agent_id.as_ref())?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(polling_schedules::table)
            .values((
                polling_schedules::name.eq(trimmed_name(&input.name)),
                polling_schedules::target.eq(input.target.trim().to_owned()),
                polling_schedules::agent_id.eq(agent),
                polling_schedules::interval_seconds.eq(input.interval_seconds.unwrap_or(300)),
            ))
            .returning(PollingScheduleRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(PollingSchedulePayload {
            polling_schedule: row.into(),
        })
    }

    /// Changes a polling schedule (enable, disable, retarget, reschedule).
    async fn update_polling_schedule(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdatePollingScheduleInput,
    ) -> ApiResult<PollingSchedulePayload> {
        let changes = PollingScheduleChanges {
            target: input.target.map(|t| t.trim().to_owned()),
            enabled: input.enabled,
            interval_seconds: input.interval_seconds,
            agent_id: maybe_id("Agent", input.agent_id)?,
            updated_at: Utc::now(),
        };
        let row = update_by_id!(
            ctx,
            input.id,
            "PollingSchedule",
            polling_schedules,
            changes,
            PollingScheduleRow
        );
        Ok(PollingSchedulePayload {
            polling_schedule: row.into(),
        })
    }

    /// Deletes a polling schedule with its job history.
    async fn delete_polling_schedule(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeletePollingScheduleInput,
    ) -> ApiResult<DeletePollingSchedulePayload> {
        delete_by_id!(
            ctx,
            input,
            "PollingSchedule",
            polling_schedules,
            DeletePollingSchedulePayload
        )
    }
}
