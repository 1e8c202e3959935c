//! Agents: the `Agent` object and its checkers, the `agents` list, and creating, updating
//! and deleting agents.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::checkers::Checker;
use super::gateways::Gateway;
use super::{maybe_id, name_cursor, trimmed_name};
use crate::resolvers::context::{app, loaders, scope};
use crate::resolvers::enums::ComponentStatus;
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::inventory::Device;
use crate::resolvers::models::AgentRow;
use crate::resolvers::pagination::{
    Cursor, NestedTotal, Window, connection_name, fetch_page, keyset, text_key, wants_total,
};
use crate::schema::tenant::agents;

/// An agent: runs checks and collects data on or near devices.
#[derive(Clone)]
pub struct Agent(pub AgentRow);

impl From<AgentRow> for Agent {
    fn from(row: AgentRow) -> Self {
        Self(row)
    }
}

/// An agent: runs checks and collects data on or near devices.
#[Object]
impl Agent {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Agent", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Software version.
    async fn version(&self) -> &str {
        &self.0.version
    }
    /// Connectivity.
    async fn status(&self) -> ComponentStatus {
        ComponentStatus::from_stored(&self.0.status)
    }
    /// What the agent can do (`snmp`, `icmp`, `otel`...).
    async fn capabilities(&self) -> &[String] {
        &self.0.capabilities
    }
    /// Last time it reported.
    async fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.0.last_seen
    }
    /// The gateway the agent connects through.
    async fn gateway(&self, ctx: &Context<'_>) -> ApiResult<Option<Gateway>> {
        match self.0.gateway_id {
            Some(id) => Ok(loaders(ctx)?.gateway(id).await?.map(Gateway::from)),
            None => Ok(None),
        }
    }
    /// The device the agent runs on.
    async fn device(&self, ctx: &Context<'_>) -> ApiResult<Option<Device>> {
        match self.0.device_id {
            Some(id) => Ok(loaders(ctx)?.device(id).await?.map(Device)),
            None => Ok(None),
        }
    }
    /// The agent's checkers, by name: a page of `first`.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, None, child_complexity)")]
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
    ) -> ApiResult<Connection<Cursor, Checker, NestedTotal, EmptyFields, AgentCheckerConnectionName>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let page = loaders(ctx)?
            .checkers_of_agent(self.0.id, &window, wants_total(ctx))
            .await?;
        let rows = page
            .rows
            .into_iter()
            .map(|c| (name_cursor(&c.name, c.id), Checker::from(c)))
            .collect();
        Ok(window.connection(rows, NestedTotal(page.total)))
    }
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

delete_types!(DeleteAgentInput, DeleteAgentPayload, "Agent");

/// The root query fields of agents.
#[derive(Default)]
pub struct AgentQuery;

#[Object]
impl AgentQuery {
    /// Agents, by name; optionally of one gateway.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
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
}

/// The root mutation fields of agents.
#[derive(Default)]
pub struct AgentMutation;

#[Object]
impl AgentMutation {
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

    /// Deletes an agent with its checkers; its checks and schedules stay, unassigned.
    async fn delete_agent(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteAgentInput,
    ) -> ApiResult<DeleteAgentPayload> {
        delete_by_id!(ctx, input, "Agent", agents, DeleteAgentPayload)
    }
}

connection_name!(
    /// Names the connection of `Agent.checkers`: an agent's checkers, with their `totalCount`.
    AgentCheckerConnectionName,
    "AgentCheckerConnection"
);
