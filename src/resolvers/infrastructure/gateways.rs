//! Gateways: the `Gateway` object and its agents, the `gateways` list, and creating,
//! updating and deleting gateways.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::agents::Agent;
use super::{maybe_id, name_cursor, trimmed_name};
use crate::resolvers::context::{app, loaders, scope};
use crate::resolvers::enums::ComponentStatus;
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::inventory::Partition;
use crate::resolvers::models::GatewayRow;
use crate::resolvers::pagination::{
    Cursor, NestedTotal, Window, connection_name, fetch_page, keyset, text_key, wants_total,
};
use crate::schema::tenant::gateways;

/// A gateway: relays agents' traffic from a site to the control plane.
#[derive(Clone)]
pub struct Gateway(pub GatewayRow);

impl From<GatewayRow> for Gateway {
    fn from(row: GatewayRow) -> Self {
        Self(row)
    }
}

/// A gateway: relays agents' traffic from a site to the control plane.
#[Object]
impl Gateway {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Gateway", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Address agents connect to (`host:port`).
    async fn address(&self) -> &str {
        &self.0.address
    }
    /// Software version.
    async fn version(&self) -> &str {
        &self.0.version
    }
    /// Connectivity.
    async fn status(&self) -> ComponentStatus {
        ComponentStatus::from_stored(&self.0.status)
    }
    /// Last time it reported.
    async fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.0.last_seen
    }
    /// Agents connected through this gateway, by name: a page of `first`.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, None, child_complexity)")]
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
    ) -> ApiResult<Connection<Cursor, Agent, NestedTotal, EmptyFields, GatewayAgentConnectionName>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let page = loaders(ctx)?
            .agents_of_gateway(self.0.id, &window, wants_total(ctx))
            .await?;
        let rows = page
            .rows
            .into_iter()
            .map(|a| (name_cursor(&a.name, a.id), Agent::from(a)))
            .collect();
        Ok(window.connection(rows, NestedTotal(page.total)))
    }
    /// The partition the gateway serves.
    async fn partition(&self, ctx: &Context<'_>) -> ApiResult<Option<Partition>> {
        match self.0.partition_id {
            Some(id) => Ok(loaders(ctx)?.partition(id).await?.map(Partition)),
            None => Ok(None),
        }
    }
}

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

delete_types!(DeleteGatewayInput, DeleteGatewayPayload, "Gateway");

/// The root query fields of gateways.
#[derive(Default)]
pub struct GatewayQuery;

#[Object]
impl GatewayQuery {
    /// Gateways, by name.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
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
}

/// The root mutation fields of gateways.
#[derive(Default)]
pub struct GatewayMutation;

#[Object]
impl GatewayMutation {
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

    /// Deletes a gateway; its agents stay, without a gateway.
    async fn delete_gateway(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteGatewayInput,
    ) -> ApiResult<DeleteGatewayPayload> {
        delete_by_id!(ctx, input, "Gateway", gateways, DeleteGatewayPayload)
    }
}

connection_name!(
    /// Names the connection of `Gateway.agents`: a gateway's agents, with their `totalCount`.
    GatewayAgentConnectionName,
    "GatewayAgentConnection"
);
