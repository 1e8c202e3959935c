//! Infrastructure and integrations: gateways, agents and their checkers, service checks,
//! polling schedules, health events, integration sources and edge sites.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{ComplexObject, Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::context::{app, loaders, scope};
use super::enums::{
    CheckKind, CheckStatus, ComponentStatus, EdgeSiteStatus, HealthSourceKind, HealthStatus, IntegrationKind,
};
use super::errors::{ApiError, ApiResult};
use super::ids::{self, decode_optional};
use super::inventory::{Device, Partition};
use super::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::schema::tenant::{
    agents, checkers, edge_sites, gateways, health_events, integration_sources, polling_schedules,
    service_checks,
};

fn name_cursor(name: &str, id: Uuid) -> Cursor {
    Cursor {
        key: name.to_owned(),
        id,
    }
}

fn trimmed_name(name: &str) -> String {
    name.trim().to_owned()
}

// ---------------------------------------------------------------- gateways and agents

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = gateways, check_for_backend(Pg))]
pub struct GatewayRow {
    pub id: Uuid,
    pub name: String,
    pub partition_id: Option<Uuid>,
    pub address: String,
    pub version: String,
    pub status: String,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A gateway: relays agents' traffic from a site to the control plane.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Gateway {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// Address agents connect to (`host:port`).
    pub address: String,
    /// Software version.
    pub version: String,
    /// Connectivity.
    pub status: ComponentStatus,
    /// Last time it reported.
    pub last_seen: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub row: GatewayRow,
}

impl From<GatewayRow> for Gateway {
    fn from(row: GatewayRow) -> Self {
        Self {
            id: ids::encode("Gateway", row.id),
            name: row.name.clone(),
            address: row.address.clone(),
            version: row.version.clone(),
            status: ComponentStatus::from_stored(&row.status),
            last_seen: row.last_seen,
            row,
        }
    }
}

#[ComplexObject]
impl Gateway {
    /// Agents connected through this gateway, by name: a page of `first`.
    #[graphql(complexity = "super::limits::list_cost(first, None, child_complexity)")]
    async fn agents(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500); 50 when absent."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, Agent, EmptyFields>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let rows = loaders(ctx)?.agents_of_gateway(self.row.id, &window).await?;
        let rows = rows
            .into_iter()
            .map(|a| (name_cursor(&a.name, a.id), Agent::from(a)))
            .collect();
        Ok(window.connection(rows, EmptyFields))
    }
    /// The partition the gateway serves.
    async fn partition(&self, ctx: &Context<'_>) -> ApiResult<Option<Partition>> {
        match self.row.partition_id {
            Some(id) => Ok(loaders(ctx)?.partition(id).await?.map(Partition)),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = agents, check_for_backend(Pg))]
pub struct AgentRow {
    pub id: Uuid,
    pub name: String,
    pub gateway_id: Option<Uuid>,
    pub device_id: Option<Uuid>,
    pub version: String,
    pub status: String,
    pub capabilities: Vec<String>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// An agent: runs checks and collects data on or near devices.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Agent {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// Software version.
    pub version: String,
    /// Connectivity.
    pub status: ComponentStatus,
    /// What the agent can do (`snmp`, `icmp`, `otel`...).
    pub capabilities: Vec<String>,
    /// Last time it reported.
    pub last_seen: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub row: AgentRow,
}

impl From<AgentRow> for Agent {
    fn from(row: AgentRow) -> Self {
        Self {
            id: ids::encode("Agent", row.id),
            name: row.name.clone(),
            version: row.version.clone(),
            status: ComponentStatus::from_stored(&row.status),
            capabilities: row.capabilities.clone(),
            last_seen: row.last_seen,
            row,
        }
    }
}

#[ComplexObject]
impl Agent {
    /// The gateway the agent connects through.
    async fn gateway(&self, ctx: &Context<'_>) -> ApiResult<Option<Gateway>> {
        match self.row.gateway_id {
            Some(id) => Ok(loaders(ctx)?.gateway(id).await?.map(Gateway::from)),
            None => Ok(None),
        }
    }
    /// The device the agent runs on.
    async fn device(&self, ctx: &Context<'_>) -> ApiResult<Option<Device>> {
        match self.row.device_id {
            Some(id) => Ok(loaders(ctx)?.device(id).await?.map(Device)),
            None => Ok(None),
        }
    }
    /// The agent's checkers, by name: a page of `first`.
    #[graphql(complexity = "super::limits::list_cost(first, None, child_complexity)")]
    async fn checkers(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500); 50 when absent."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, Checker, EmptyFields>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let rows = loaders(ctx)?.checkers_of_agent(self.row.id, &window).await?;
        let rows = rows
            .into_iter()
            .map(|c| (name_cursor(&c.name, c.id), Checker::from(c)))
            .collect();
        Ok(window.connection(rows, EmptyFields))
    }
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = checkers, check_for_backend(Pg))]
pub struct CheckerRow {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub name: String,
    pub kind: String,
    pub config: serde_json::Value,
    pub enabled: bool,
}

/// A checker: a probe plug-in configured on an agent.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Checker {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Name, unique per agent.
    pub name: String,
    /// How it probes.
    pub kind: CheckKind,
    /// Plug-in configuration.
    pub config: Json<serde_json::Value>,
    /// Whether it runs.
    pub enabled: bool,
    #[graphql(skip)]
    pub row: CheckerRow,
}

impl From<CheckerRow> for Checker {
    fn from(row: CheckerRow) -> Self {
        Self {
            id: ids::encode("Checker", row.id),
            name: row.name.clone(),
            kind: CheckKind::from_stored(&row.kind),
            config: Json(row.config.clone()),
            enabled: row.enabled,
            row,
        }
    }
}

#[ComplexObject]
impl Checker {
    /// The agent the checker runs on.
    async fn agent(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        Ok(loaders(ctx)?.agent(self.row.agent_id).await?.map(Agent::from))
    }
}

// ---------------------------------------------------------------- checks and schedules

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_checks, check_for_backend(Pg))]
pub struct ServiceCheckRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub target: String,
    pub agent_id: Option<Uuid>,
    pub device_id: Option<Uuid>,
    pub interval_seconds: i32,
    pub timeout_ms: i32,
    pub enabled: bool,
    pub last_status: String,
    pub last_checked_at: Option<DateTime<Utc>>,
}

/// A service check: probes a target periodically from an agent.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ServiceCheck {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Name, unique per device.
    pub name: String,
    /// How it probes.
    pub kind: CheckKind,
    /// What it probes (`host:port`, URL...).
    pub target: String,
    /// Seconds between runs.
    pub interval_seconds: i32,
    /// Milliseconds before a run counts as failed.
    pub timeout_ms: i32,
    /// Whether it runs.
    pub enabled: bool,
    /// Result of the last run.
    pub last_status: CheckStatus,
    /// When it last ran.
    pub last_checked_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub row: ServiceCheckRow,
}

impl From<ServiceCheckRow> for ServiceCheck {
    fn from(row: ServiceCheckRow) -> Self {
        Self {
            id: ids::encode("ServiceCheck", row.id),
            name: row.name.clone(),
            kind: CheckKind::from_stored(&row.kind),
            target: row.target.clone(),
            interval_seconds: row.interval_seconds,
            timeout_ms: row.timeout_ms,
            enabled: row.enabled,
            last_status: CheckStatus::from_stored(&row.last_status),
            last_checked_at: row.last_checked_at,
            row,
        }
    }
}

#[ComplexObject]
impl ServiceCheck {
    /// The agent that runs the check.
    async fn agent(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        match self.row.agent_id {
            Some(id) => Ok(loaders(ctx)?.agent(id).await?.map(Agent::from)),
            None => Ok(None),
        }
    }
    /// The device the check is about.
    async fn device(&self, ctx: &Context<'_>) -> ApiResult<Option<Device>> {
        match self.row.device_id {
            Some(id) => Ok(loaders(ctx)?.device(id).await?.map(Device)),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = polling_schedules, check_for_backend(Pg))]
pub struct PollingScheduleRow {
    pub id: Uuid,
    pub name: String,
    pub target: String,
    pub agent_id: Option<Uuid>,
    pub interval_seconds: i32,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// A polling schedule: collects data (SNMP, API) from a target periodically.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct PollingSchedule {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// What is polled.
    pub target: String,
    /// Seconds between polls.
    pub interval_seconds: i32,
    /// Whether it runs.
    pub enabled: bool,
    /// When it last ran.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When it runs next.
    pub next_run_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub row: PollingScheduleRow,
}

impl From<PollingScheduleRow> for PollingSchedule {
    fn from(row: PollingScheduleRow) -> Self {
        Self {
            id: ids::encode("PollingSchedule", row.id),
            name: row.name.clone(),
            target: row.target.clone(),
            interval_seconds: row.interval_seconds,
            enabled: row.enabled,
            last_run_at: row.last_run_at,
            next_run_at: row.next_run_at,
            row,
        }
    }
}

#[ComplexObject]
impl PollingSchedule {
    /// The agent that polls.
    async fn agent(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        match self.row.agent_id {
            Some(id) => Ok(loaders(ctx)?.agent(id).await?.map(Agent::from)),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------------- health, integrations, edge

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = health_events, check_for_backend(Pg))]
pub struct HealthEventRow {
    pub id: Uuid,
    pub source_kind: String,
    pub source_id: Uuid,
    pub status: String,
    pub message: String,
    pub occurred_at: DateTime<Utc>,
}

/// A health report of an agent, gateway, checker, device or edge component.
#[derive(SimpleObject, Clone)]
pub struct HealthEvent {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Kind of component reporting.
    pub source_kind: HealthSourceKind,
    /// Global id of the component reporting.
    pub source_id: ID,
    /// Reported health.
    pub status: HealthStatus,
    /// Details.
    pub message: String,
    /// When it was reported.
    pub occurred_at: DateTime<Utc>,
}

impl From<HealthEventRow> for HealthEvent {
    fn from(row: HealthEventRow) -> Self {
        let kind = HealthSourceKind::from_stored(&row.source_kind);
        let type_name = match kind {
            HealthSourceKind::Agent => "Agent",
            HealthSourceKind::Gateway => "Gateway",
            HealthSourceKind::Checker => "Checker",
            HealthSourceKind::Device => "Device",
            HealthSourceKind::EdgeComponent => "EdgeComponent",
        };
        Self {
            id: ids::encode("HealthEvent", row.id),
            source_kind: kind,
            source_id: ids::encode(type_name, row.source_id),
            status: HealthStatus::from_stored(&row.status),
            message: row.message,
            occurred_at: row.occurred_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = integration_sources, check_for_backend(Pg))]
pub struct IntegrationSourceRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub partition_id: Option<Uuid>,
    pub enabled: bool,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A source of inventory: an external system devices are imported from.
#[derive(SimpleObject, Clone)]
pub struct IntegrationSource {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// Kind of external system.
    pub kind: IntegrationKind,
    /// Whether it syncs.
    pub enabled: bool,
    /// Last successful sync.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Error of the last failed sync.
    pub last_error: Option<String>,
}

impl From<IntegrationSourceRow> for IntegrationSource {
    fn from(row: IntegrationSourceRow) -> Self {
        Self {
            id: ids::encode("IntegrationSource", row.id),
            name: row.name,
            kind: IntegrationKind::from_stored(&row.kind),
            enabled: row.enabled,
            last_sync_at: row.last_sync_at,
            last_error: row.last_error,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = edge_sites, check_for_backend(Pg))]
pub struct EdgeSiteRow {
    pub id: Uuid,
    pub name: String,
    pub partition_id: Option<Uuid>,
    pub location: String,
    pub status: String,
}

/// An edge site: a remote location onboarded with its own collectors.
#[derive(SimpleObject, Clone)]
pub struct EdgeSite {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Unique name.
    pub name: String,
    /// Where it is.
    pub location: String,
    /// Connectivity.
    pub status: EdgeSiteStatus,
}

impl From<EdgeSiteRow> for EdgeSite {
    fn from(row: EdgeSiteRow) -> Self {
        Self {
            id: ids::encode("EdgeSite", row.id),
            name: row.name,
            location: row.location,
            status: EdgeSiteStatus::from_stored(&row.status),
        }
    }
}

// ---------------------------------------------------------------- inputs and payloads

/// Input of `createGateway`.
#[derive(InputObject)]
pub struct CreateGatewayInput {
    /// Unique name (1 to 200 characters).
    pub name: String,
    /// Address agents connect to.
    #[graphql(default)]
    pub address: String,
    /// Partition the gateway serves.
    pub partition_id: Option<ID>,
}

/// A gateway after a mutation.
#[derive(SimpleObject)]
pub struct GatewayPayload {
    /// The gateway as it is now.
    pub gateway: Gateway,
}

/// Input of `createAgent`.
#[derive(InputObject)]
pub struct CreateAgentInput {
    /// Unique name (1 to 200 characters).
    pub name: String,
    /// Gateway the agent connects through.
    pub gateway_id: Option<ID>,
    /// Device the agent runs on.
    pub device_id: Option<ID>,
    /// What the agent can do.
    #[graphql(default)]
    pub capabilities: Vec<String>,
}

/// An agent after a mutation.
#[derive(SimpleObject)]
pub struct AgentPayload {
    /// The agent as it is now.
    pub agent: Agent,
}

/// Input of `createChecker`.
#[derive(InputObject)]
pub struct CreateCheckerInput {
    /// The agent the checker runs on.
    pub agent_id: ID,
    /// Name, unique per agent.
    pub name: String,
    /// How it probes.
    pub kind: CheckKind,
    /// Plug-in configuration.
    pub config: Option<Json<serde_json::Value>>,
}

/// A checker after a mutation.
#[derive(SimpleObject)]
pub struct CheckerPayload {
    /// The checker as it is now.
    pub checker: Checker,
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

/// Input of `createIntegrationSource`.
#[derive(InputObject)]
pub struct CreateIntegrationSourceInput {
    /// Unique name.
    pub name: String,
    /// Kind of external system.
    pub kind: IntegrationKind,
    /// Partition imported devices go to.
    pub partition_id: Option<ID>,
    /// Connection settings (never secrets: reference them).
    pub config: Option<Json<serde_json::Value>>,
}

/// An integration source after a mutation.
#[derive(SimpleObject)]
pub struct IntegrationSourcePayload {
    /// The source as it is now.
    pub integration_source: IntegrationSource,
}

/// Input of `createEdgeSite`.
#[derive(InputObject)]
pub struct CreateEdgeSiteInput {
    /// Unique name.
    pub name: String,
    /// Where it is.
    #[graphql(default)]
    pub location: String,
    /// Partition of the site's devices.
    pub partition_id: Option<ID>,
}

/// An edge site after a mutation.
#[derive(SimpleObject)]
pub struct EdgeSitePayload {
    /// The site as it is now.
    pub edge_site: EdgeSite,
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

/// Input of `updateAgent`: absent fields are left alone.
#[derive(InputObject)]
pub struct UpdateAgentInput {
    /// The agent to change.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New gateway (`null` detaches it).
    #[graphql(default)]
    pub gateway_id: MaybeUndefined<ID>,
    /// New capabilities.
    pub capabilities: Option<Vec<String>>,
}

#[derive(AsChangeset)]
#[diesel(table_name = agents)]
struct AgentChanges {
    name: Option<String>,
    gateway_id: Option<Option<Uuid>>,
    capabilities: Option<Vec<String>>,
    updated_at: DateTime<Utc>,
}

/// Input of `updateGateway`: absent fields are left alone.
#[derive(InputObject)]
pub struct UpdateGatewayInput {
    /// The gateway to change.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New address agents connect to.
    pub address: Option<String>,
    /// New partition (`null` clears it).
    #[graphql(default)]
    pub partition_id: MaybeUndefined<ID>,
}

#[derive(AsChangeset)]
#[diesel(table_name = gateways)]
struct GatewayChanges {
    name: Option<String>,
    address: Option<String>,
    partition_id: Option<Option<Uuid>>,
    updated_at: DateTime<Utc>,
}

fn maybe_id(kind: &str, value: MaybeUndefined<ID>) -> ApiResult<Option<Option<Uuid>>> {
    Ok(match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(id) => Some(Some(ids::decode(kind, &id)?)),
    })
}

/// Updates one row by global id with a changeset; NOT_FOUND if absent.
macro_rules! update_by_id {
    ($ctx:expr, $id:expr, $kind:literal, $table:ident, $changes:expr, $row:ty) => {{
        let id = ids::decode($kind, &$id)?;
        let mut conn = scope($ctx)?.conn().await?;
        diesel::update($table::table.find(id))
            .set($changes)
            .returning(<$row>::as_returning())
            .get_result::<$row>(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found(concat!("no such ", $kind)))?
    }};
}

#[derive(Default)]
pub struct InfrastructureUpdates;

#[Object]
impl InfrastructureUpdates {
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

    /// Changes an agent.
    async fn update_agent(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateAgentInput,
    ) -> ApiResult<AgentPayload> {
        let changes = AgentChanges {
            name: input.name.as_deref().map(trimmed_name),
            gateway_id: maybe_id("Gateway", input.gateway_id)?,
            capabilities: input.capabilities,
            updated_at: Utc::now(),
        };
        let row = update_by_id!(ctx, input.id, "Agent", agents, changes, AgentRow);
        Ok(AgentPayload { agent: row.into() })
    }

    /// Changes a gateway.
    async fn update_gateway(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateGatewayInput,
    ) -> ApiResult<GatewayPayload> {
        let changes = GatewayChanges {
            name: input.name.as_deref().map(trimmed_name),
            address: input.address,
            partition_id: maybe_id("Partition", input.partition_id)?,
            updated_at: Utc::now(),
        };
        let row = update_by_id!(ctx, input.id, "Gateway", gateways, changes, GatewayRow);
        Ok(GatewayPayload { gateway: row.into() })
    }
}

// ---------------------------------------------------------------- roots

#[derive(Default)]
pub struct InfrastructureQuery;

#[Object]
impl InfrastructureQuery {
    /// Gateways, by name.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn gateways(
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
    ) -> ApiResult<Connection<Cursor, Gateway, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = gateways::table
            .select(GatewayRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(query, &window, gateways::name, gateways::id, text_key, ascending);
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &GatewayRow| name_cursor(&r.name, r.id),
            Gateway::from,
            EmptyFields
        )
    }

    /// Agents, by name; optionally of one gateway.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn agents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only agents of this gateway (global id).")] gateway_id: Option<ID>,
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
    ) -> ApiResult<Connection<Cursor, Agent, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let gateway = decode_optional("Gateway", gateway_id.as_ref())?;
        let mut query = agents::table
            .select(AgentRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(gateway) = gateway {
            query = query.filter(agents::gateway_id.eq(gateway));
        }
        let query = keyset!(query, &window, agents::name, agents::id, text_key, ascending);
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &AgentRow| name_cursor(&r.name, r.id),
            Agent::from,
            EmptyFields
        )
    }

    /// Checkers, by name; optionally of one agent.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn checkers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only checkers of this agent (global id).")] agent_id: Option<ID>,
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
    ) -> ApiResult<Connection<Cursor, Checker, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let agent = decode_optional("Agent", agent_id.as_ref())?;
        let mut query = checkers::table
            .select(CheckerRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(agent) = agent {
            query = query.filter(checkers::agent_id.eq(agent));
        }
        let query = keyset!(query, &window, checkers::name, checkers::id, text_key, ascending);
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &CheckerRow| name_cursor(&r.name, r.id),
            Checker::from,
            EmptyFields
        )
    }

    /// Service checks, by name; optionally of one device.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
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

    /// Polling schedules, by name.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
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

    /// Health events, newest first; optionally of one kind of component.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn health_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only health events of this kind of component.")] source_kind: Option<
            HealthSourceKind,
        >,
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
    ) -> ApiResult<Connection<Cursor, HealthEvent, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let mut query = health_events::table
            .select(HealthEventRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(kind) = source_kind {
            query = query.filter(health_events::source_kind.eq(kind.as_str()));
        }
        let query = keyset!(
            query,
            &window,
            health_events::occurred_at,
            health_events::id,
            super::monitoring::cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &HealthEventRow| super::monitoring::time_cursor(r.occurred_at, r.id),
            HealthEvent::from,
            EmptyFields
        )
    }

    /// Integration sources, by name.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn integration_sources(
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
    ) -> ApiResult<Connection<Cursor, IntegrationSource, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = integration_sources::table
            .select(IntegrationSourceRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            integration_sources::name,
            integration_sources::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &IntegrationSourceRow| name_cursor(&r.name, r.id),
            IntegrationSource::from,
            EmptyFields
        )
    }

    /// Edge sites, by name.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn edge_sites(
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
    ) -> ApiResult<Connection<Cursor, EdgeSite, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = edge_sites::table
            .select(EdgeSiteRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            edge_sites::name,
            edge_sites::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &EdgeSiteRow| name_cursor(&r.name, r.id),
            EdgeSite::from,
            EmptyFields
        )
    }
}

#[derive(Default)]
pub struct InfrastructureMutation;

#[Object]
impl InfrastructureMutation {
    /// Registers a gateway.
    async fn create_gateway(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateGatewayInput,
    ) -> ApiResult<GatewayPayload> {
        let partition = decode_optional("Partition", input.partition_id.as_ref())?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(gateways::table)
            .values((
                gateways::name.eq(trimmed_name(&input.name)),
                gateways::address.eq(input.address),
                gateways::partition_id.eq(partition),
            ))
            .returning(GatewayRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(GatewayPayload { gateway: row.into() })
    }

    /// Registers an agent.
    async fn create_agent(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateAgentInput,
    ) -> ApiResult<AgentPayload> {
        let gateway = decode_optional("Gateway", input.gateway_id.as_ref())?;
        let device = decode_optional("Device", input.device_id.as_ref())?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(agents::table)
            .values((
                agents::name.eq(trimmed_name(&input.name)),
                agents::gateway_id.eq(gateway),
                agents::device_id.eq(device),
                agents::capabilities.eq(input.capabilities),
            ))
            .returning(AgentRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(AgentPayload { agent: row.into() })
    }

    /// Configures a checker on an agent.
    async fn create_checker(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateCheckerInput,
    ) -> ApiResult<CheckerPayload> {
        let agent = ids::decode("Agent", &input.agent_id)?;
        let config = input.config.map(|c| c.0).unwrap_or_else(|| serde_json::json!({}));
        if !config.is_object() {
            return Err(ApiError::bad_input("config must be a JSON object"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(checkers::table)
            .values((
                checkers::agent_id.eq(agent),
                checkers::name.eq(trimmed_name(&input.name)),
                checkers::kind.eq(input.kind.as_str()),
                checkers::config.eq(config),
            ))
            .returning(CheckerRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(CheckerPayload { checker: row.into() })
    }

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

    /// Creates an integration source.
    async fn create_integration_source(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateIntegrationSourceInput,
    ) -> ApiResult<IntegrationSourcePayload> {
        let partition = decode_optional("Partition", input.partition_id.as_ref())?;
        let config = input.config.map(|c| c.0).unwrap_or_else(|| serde_json::json!({}));
        if !config.is_object() {
            return Err(ApiError::bad_input("config must be a JSON object"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(integration_sources::table)
            .values((
                integration_sources::name.eq(trimmed_name(&input.name)),
                integration_sources::kind.eq(input.kind.as_str()),
                integration_sources::partition_id.eq(partition),
                integration_sources::config.eq(config),
            ))
            .returning(IntegrationSourceRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(IntegrationSourcePayload {
            integration_source: row.into(),
        })
    }

    /// Creates an edge site.
    async fn create_edge_site(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateEdgeSiteInput,
    ) -> ApiResult<EdgeSitePayload> {
        let partition = decode_optional("Partition", input.partition_id.as_ref())?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(edge_sites::table)
            .values((
                edge_sites::name.eq(trimmed_name(&input.name)),
                edge_sites::location.eq(input.location),
                edge_sites::partition_id.eq(partition),
            ))
            .returning(EdgeSiteRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(EdgeSitePayload {
            edge_site: row.into(),
        })
    }
}

/// Declares `Delete<Type>Input` and `Delete<Type>Payload` for a resource.
macro_rules! delete_types {
    ($input:ident, $payload:ident, $what:literal) => {
        #[doc = concat!("Input of `delete", $what, "`.")]
        #[derive(InputObject)]
        pub struct $input {
            #[doc = concat!("The ", $what, " to delete.")]
            pub id: ID,
        }

        #[doc = concat!("The result of `delete", $what, "`.")]
        #[derive(SimpleObject)]
        pub struct $payload {
            /// Id of the deleted object.
            pub deleted_id: ID,
        }
    };
}

/// Deletes one row by global id in the request's tenant transaction; NOT_FOUND if absent.
macro_rules! delete_by_id {
    ($ctx:expr, $input:expr, $kind:literal, $table:ident, $payload:ident) => {{
        let id = ids::decode($kind, &$input.id)?;
        let mut conn = scope($ctx)?.conn().await?;
        let deleted = diesel::delete($table::table.find(id)).execute(&mut conn).await?;
        if deleted == 0 {
            return Err(ApiError::not_found(concat!("no such ", $kind)));
        }
        Ok($payload {
            deleted_id: $input.id,
        })
    }};
}

delete_types!(DeleteGatewayInput, DeleteGatewayPayload, "Gateway");
delete_types!(DeleteAgentInput, DeleteAgentPayload, "Agent");
delete_types!(DeleteCheckerInput, DeleteCheckerPayload, "Checker");
delete_types!(DeleteServiceCheckInput, DeleteServiceCheckPayload, "ServiceCheck");
delete_types!(
    DeletePollingScheduleInput,
    DeletePollingSchedulePayload,
    "PollingSchedule"
);
delete_types!(
    DeleteIntegrationSourceInput,
    DeleteIntegrationSourcePayload,
    "IntegrationSource"
);
delete_types!(DeleteEdgeSiteInput, DeleteEdgeSitePayload, "EdgeSite");

#[derive(Default)]
pub struct InfrastructureDeletions;

#[Object]
impl InfrastructureDeletions {
    /// Deletes a gateway; its agents stay, without a gateway.
    async fn delete_gateway(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteGatewayInput,
    ) -> ApiResult<DeleteGatewayPayload> {
        delete_by_id!(ctx, input, "Gateway", gateways, DeleteGatewayPayload)
    }
    /// Deletes an agent with its checkers; its checks and schedules stay, unassigned.
    async fn delete_agent(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteAgentInput,
    ) -> ApiResult<DeleteAgentPayload> {
        delete_by_id!(ctx, input, "Agent", agents, DeleteAgentPayload)
    }
    /// Deletes a checker.
    async fn delete_checker(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteCheckerInput,
    ) -> ApiResult<DeleteCheckerPayload> {
        delete_by_id!(ctx, input, "Checker", checkers, DeleteCheckerPayload)
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
    /// Deletes an integration source (devices it imported stay).
    async fn delete_integration_source(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteIntegrationSourceInput,
    ) -> ApiResult<DeleteIntegrationSourcePayload> {
        delete_by_id!(
            ctx,
            input,
            "IntegrationSource",
            integration_sources,
            DeleteIntegrationSourcePayload
        )
    }
    /// Deletes an edge site with its onboarding records and credentials.
    async fn delete_edge_site(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteEdgeSiteInput,
    ) -> ApiResult<DeleteEdgeSitePayload> {
        delete_by_id!(ctx, input, "EdgeSite", edge_sites, DeleteEdgeSitePayload)
    }
}
