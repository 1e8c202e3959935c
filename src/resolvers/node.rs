//! `node(id)`: any object by its global id (Relay's object identification).

use async_graphql::{Context, ID, Interface, Object};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::context::{loaders, scope};
use super::errors::ApiResult;
use super::ids;
use super::infrastructure::{Agent, Gateway};
use super::inventory::{Device, DeviceGroup, Interface as NetworkInterface, Partition};
use super::monitoring::{Alert, AlertRow, Event, EventRow};
use crate::schema::tenant::{alerts, events, interfaces};

/// An object with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
    Device(Device),
    Interface(NetworkInterface),
    DeviceGroup(DeviceGroup),
    Partition(Partition),
    Alert(Alert),
    Event(Event),
    Gateway(Gateway),
    Agent(Agent),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object of the caller's tenant by its global id; null if there is none.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the object.")] id: ID,
    ) -> ApiResult<Option<Node>> {
        let Some((kind, key)) = ids::decode_any(&id) else {
            return Ok(None);
        };
        let loaders = loaders(ctx)?;
        Ok(match kind.as_str() {
            "Device" => loaders.device(key).await?.map(|r| Node::Device(Device(r))),
            "DeviceGroup" => loaders
                .group(key)
                .await?
                .map(|r| Node::DeviceGroup(DeviceGroup(r))),
            "Partition" => loaders
                .partition(key)
                .await?
                .map(|r| Node::Partition(Partition(r))),
            "Interface" => {
                let mut conn = scope(ctx)?.conn().await?;
                interfaces::table
                    .find(key)
                    .select(super::inventory::InterfaceRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()?
                    .map(|r| Node::Interface(NetworkInterface(r)))
            }
            "Alert" => {
                let mut conn = scope(ctx)?.conn().await?;
                alerts::table
                    .find(key)
                    .select(AlertRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()?
                    .map(|r| Node::Alert(Alert(r)))
            }
            "Event" => {
                let mut conn = scope(ctx)?.conn().await?;
                events::table
                    .find(key)
                    .select(EventRow::as_select())
                    .first(&mut conn)
                    .await
                    .optional()?
                    .map(|r| Node::Event(Event(r)))
            }
            "Gateway" => loaders.gateway(key).await?.map(|r| Node::Gateway(r.into())),
            "Agent" => loaders.agent(key).await?.map(|r| Node::Agent(r.into())),
            _ => None,
        })
    }
}
