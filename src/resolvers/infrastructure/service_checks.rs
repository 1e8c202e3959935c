//! Service checks: the `ServiceCheck` object, the `serviceChecks` list, and creating,
//! updating and deleting checks.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::agents::Agent;
use super::{maybe_id, name_cursor, trimmed_name};
use crate::resolvers::context::{app, loaders, scope};
use crate::resolvers::enums::{CheckKind, CheckStatus};
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::inventory::Device;
use crate::resolvers::models::ServiceCheckRow;
use crate::resolvers::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::schema::tenant::service_checks;

/// A service check: probes a target periodically from an agent.
#[derive(Clone)]
pub struct ServiceCheck(pub ServiceCheckRow);

impl From<ServiceCheckRow> for ServiceCheck {
    fn from(row: ServiceCheckRow) -> Self {
        Self(row)
    }
}

/// A service check: probes a target periodically from an agent.
#[Object]
impl ServiceCheck {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("ServiceCheck", self.0.id)
    }
    /// Name, unique per device.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// How it probes.
    async fn kind(&self) -> CheckKind {
        CheckKind::from_stored(&self.0.kind)
    }
    /// What it probes (`host:port`, URL...).
    async fn target(&self) -> &str {
        &self.0.target
    }
    /// Seconds between runs.
    async fn interval_seconds(&self) -> i32 {
        self.0.interval_seconds
    }
    /// Milliseconds before a run counts as failed.
    async fn timeout_ms(&self) -> i32 {
        self.0.timeout_ms
    }
    /// Whether it runs.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Result of the last run.
    async fn last_status(&self) -> CheckStatus {
        CheckStatus::from_stored(&self.0.last_status)
    }
    /// When it last ran.
    async fn last_checked_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_checked_at
    }
    /// The agent that runs the check.
    async fn agent(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        match self.0.agent_id {
            Some(id) => Ok(loaders(ctx)?.agent(id).await?.map(Agent::from)),
            None => Ok(None),
        }
    }
    /// The device the check is about.
    async fn device(&self, ctx: &Context<'_>) -> ApiResult<Option<Device>> {
        match self.0.device_id {
            Some(id) => Ok(loaders(ctx)?.device(id).await?.map(Device)),
            None => Ok(None),
        }
    }
}

/// Input of `createServiceCheck`.
#[derive(InputObject)]
pub struct CreateServiceCheckInput {
    /// Name, unique per device.
    pub name: String,
    /// How it probes.
    pub kind: CheckKind,
    /// What it probes.
    pub target: String,
    /// The agent that runs it.
    pub agent_id: Option<ID>,
    /// The device it is about.
    pub device_id: Option<ID>,
    /// Seconds between runs (5 to 86400; 60 when absent).
    pub interval_seconds: Option<i32>,
    /// Milliseconds before a run counts as failed (100 to 600000; 5000 when absent).
    pub timeout_ms: Option<i32>,
}

/// A service check after a mutation.
#[derive(SimpleObject)]
pub struct ServiceCheckPayload {
    /// The check as it is now.
    pub service_check: ServiceCheck,
}

/// Input of `updateServiceCheck`: absent fields are left alone.
#[derive(InputObject)]
pub struct UpdateServiceCheckInput {
    /// The check to change.
    pub id: ID,
    /// New target.
    pub target: Option<String>,
    /// Run it or not.
    pub enabled: Option<bool>,
    /// New interval in seconds (5 to 86400).
    pub interval_seconds: Option<i32>,
    /// New timeout in milliseconds (100 to 600000).
    pub timeout_ms: Option<i32>,
    /// New agent (`null` unassigns it).
    #[graphql(default)]
    pub agent_id: MaybeUndefined<ID>,
}

#[derive(AsChangeset)]
#[diesel(table_name = service_checks)]
struct ServiceCheckChanges {
    target: Option<String>,
    enabled: Option<bool>,
    interval_seconds: Option<i32>,
    timeout_ms: Option<i32>,
    agent_id: Option<Option<Uuid>>,
    updated_at: DateTime<Utc>,
}

delete_types!(DeleteServiceCheckInput, DeleteServiceCheckPayload, "ServiceCheck");

/// The root query fields of service checks.
#[derive(Default)]
pub struct ServiceCheckQuery;

#[Object]
impl ServiceCheckQuery {
    /// Service checks, by name; optionally of one device.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn service_checks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the device.")] device_id: Option<ID>,
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
    ) -> ApiResult<Connection<Cursor, ServiceCheck, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let device = decode_optional("Device", device_id.as_ref())?;
        let mut query = service_checks::table
            .select(ServiceCheckRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(device) = device {
            query = query.filter(service_checks::device_id.eq(device));
        }
        let query = keyset!(
            query,
            &window,
            service_checks::name,
            service_checks::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &ServiceCheckRow| name_cursor(&r.name, r.id),
            ServiceCheck::from,
            EmptyFields
        )
    }
}

/// The root mutation fields of service checks.
#[derive(Default)]
pub struct ServiceCheckMutation;

#[Object]
impl ServiceCheckMutation {
    /// Creates a service check.
    async fn create_service_check(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateServiceCheckInput,
    ) -> ApiResult<ServiceCheckPayload> {
        let agent = decode_optional("Agent", input.agent_id.as_ref())?;
        let device = decode_optional("Device", input.device_id.as_ref())?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(service_checks::table)
            .values((
                service_checks::name.eq(trimmed_name(&input.name)),
                service_checks::kind.eq(input.kind.as_str()),
                service_checks::target.eq(input.target.trim().to_owned()),
                service_checks::agent_id.eq(agent),
                service_checks::device_id.eq(device),
                service_checks::interval_seconds.eq(input.interval_seconds.unwrap_or(60)),
                service_checks::timeout_ms.eq(input.timeout_ms.unwrap_or(5000)),
            ))
            .returning(ServiceCheckRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(ServiceCheckPayload {
            service_check: row.into(),
        })
    }

    /// Changes a service check (enable, disable, retarget, reschedule).
    async fn update_service_check(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateServiceCheckInput,
    ) -> ApiResult<ServiceCheckPayload> {
        let changes = ServiceCheckChanges {
            target: input.target.map(|t| t.trim().to_owned()),
            enabled: input.enabled,
            interval_seconds: input.interval_seconds,
            timeout_ms: input.timeout_ms,
            agent_id: maybe_id("Agent", input.agent_id)?,
            updated_at: Utc::now(),
        };
        let row = update_by_id!(
            ctx,
            input.id,
            "ServiceCheck",
            service_checks,
            changes,
            ServiceCheckRow
        );
        Ok(ServiceCheckPayload {
            service_check: row.into(),
        })
    }

    /// Deletes a service check.
    async fn delete_service_check(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteServiceCheckInput,
    ) -> ApiResult<DeleteServiceCheckPayload> {
        delete_by_id!(
            ctx,
            input,
            "ServiceCheck",
            service_checks,
            DeleteServiceCheckPayload
        )
    }
}
