//! Interfaces: the `Interface` object, the `interfaces` list, and creating, updating and
//! deleting interfaces.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::devices::Device;
use super::{format_ip, format_mac, maybe, new_name, parse_ip, parse_mac};
use crate::resolvers::context::{app, loaders, scope};
use crate::resolvers::enums::{AdminStatus, OperStatus};
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::models::InterfaceRow;
use crate::resolvers::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::resolvers::scalars::BigInt;
use crate::schema::tenant::interfaces;

/// A network interface of a device.
#[derive(Clone)]
pub struct Interface(pub InterfaceRow);

/// A network interface of a device.
#[Object]
impl Interface {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Interface", self.0.id)
    }
    /// Interface name (`eth0`, `Gi0/1`).
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// SNMP ifIndex.
    async fn if_index(&self) -> Option<i32> {
        self.0.if_index
    }
    /// MAC address.
    async fn mac(&self) -> Option<String> {
        self.0.mac.map(format_mac)
    }
    /// Addresses configured on the interface (CIDR notation when not a host address).
    async fn addresses(&self) -> Vec<String> {
        self.0.addresses.iter().map(format_ip).collect()
    }
    /// Speed in bits per second (a 64-bit integer, as a string).
    async fn speed_bps(&self) -> Option<BigInt> {
        self.0.speed_bps.map(BigInt)
    }
    /// Administrative state.
    async fn admin_status(&self) -> AdminStatus {
        AdminStatus::from_stored(&self.0.admin_status)
    }
    /// Operational state.
    async fn oper_status(&self) -> OperStatus {
        OperStatus::from_stored(&self.0.oper_status)
    }
    /// Free-text description.
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// The device the interface belongs to.
    async fn device(&self, ctx: &Context<'_>) -> ApiResult<Device> {
        loaders(ctx)?
            .device(self.0.device_id)
            .await?
            .map(Device)
            .ok_or_else(|| ApiError::internal("interface without its device"))
    }
}

/// Input of `createInterface`.
#[derive(InputObject)]
pub struct CreateInterfaceInput {
    /// The device the interface belongs to.
    pub device_id: ID,
    /// Interface name, unique per device.
    pub name: String,
    /// SNMP ifIndex.
    pub if_index: Option<i32>,
    /// MAC address.
    pub mac: Option<String>,
    /// Addresses configured on the interface.
    #[graphql(default)]
    pub addresses: Vec<String>,
    /// Speed in bits per second (a 64-bit integer: a string such as "10000000000", or a
    /// number).
    pub speed_bps: Option<BigInt>,
    /// Administrative state; UP when absent.
    pub admin_status: Option<AdminStatus>,
    /// Operational state; UNKNOWN when absent.
    pub oper_status: Option<OperStatus>,
    /// Free-text description.
    #[graphql(default)]
    pub description: String,
}

/// An interface after a mutation.
#[derive(SimpleObject)]
pub struct InterfacePayload {
    /// The interface as it is now.
    pub interface: Interface,
}

/// Input of `updateInterface`: absent fields keep their value.
#[derive(InputObject)]
pub struct UpdateInterfaceInput {
    /// Global id of the interface.
    pub id: ID,
    /// New name, unique per device (not blank).
    pub name: Option<String>,
    /// New SNMP ifIndex (`null` clears it).
    #[graphql(default)]
    pub if_index: MaybeUndefined<i32>,
    /// New MAC address (`null` clears it).
    #[graphql(default)]
    pub mac: MaybeUndefined<String>,
    /// New addresses, replacing the old ones.
    pub addresses: Option<Vec<String>>,
    /// New speed in bits per second (`null` clears it).
    #[graphql(default)]
    pub speed_bps: MaybeUndefined<BigInt>,
    /// New administrative state.
    pub admin_status: Option<AdminStatus>,
    /// New operational state.
    pub oper_status: Option<OperStatus>,
    /// New description.
    pub description: Option<String>,
}

#[derive(AsChangeset)]
#[diesel(table_name = interfaces)]
struct InterfaceChanges {
    name: Option<String>,
    if_index: Option<Option<i32>>,
    mac: Option<Option<[u8; 6]>>,
    addresses: Option<Vec<ipnet::IpNet>>,
    speed_bps: Option<Option<i64>>,
    admin_status: Option<&'static str>,
    oper_status: Option<&'static str>,
    description: Option<String>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// The result of `deleteInterface`.
#[derive(SimpleObject)]
pub struct DeleteInterfacePayload {
    /// Global id of the interface deleted.
    pub deleted_id: ID,
}

/// The root query fields of interfaces.
#[derive(Default)]
pub struct InterfaceQuery;

#[Object]
impl InterfaceQuery {
    /// Interfaces, by name; optionally of one device.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn interfaces(
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
    ) -> ApiResult<Connection<Cursor, Interface>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let device = decode_optional("Device", device_id.as_ref())?;
        let mut query = interfaces::table
            .select(InterfaceRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(device) = device {
            query = query.filter(interfaces::device_id.eq(device));
        }
        query = keyset!(
            query,
            &window,
            interfaces::name,
            interfaces::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |i: &InterfaceRow| Cursor {
                key: i.name.clone(),
                id: i.id,
            },
            Interface,
            async_graphql::connection::EmptyFields
        )
    }
}

/// The root mutation fields of interfaces.
#[derive(Default)]
pub struct InterfaceMutation;

#[Object]
impl InterfaceMutation {
    /// Adds an interface to a device.
    async fn create_interface(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateInterfaceInput,
    ) -> ApiResult<InterfacePayload> {
        let device = ids::decode("Device", &input.device_id)?;
        let addresses = input
            .addresses
            .iter()
            .map(|a| parse_ip(a))
            .collect::<ApiResult<Vec<_>>>()?;
        let values = (
            interfaces::device_id.eq(device),
            interfaces::name.eq(input.name.trim().to_owned()),
            interfaces::if_index.eq(input.if_index),
            interfaces::mac.eq(input.mac.as_deref().map(parse_mac).transpose()?),
            interfaces::addresses.eq(addresses),
            interfaces::speed_bps.eq(input.speed_bps.map(|s| s.0)),
            interfaces::admin_status.eq(input.admin_status.unwrap_or(AdminStatus::Up).as_str()),
            interfaces::oper_status.eq(input.oper_status.unwrap_or(OperStatus::Unknown).as_str()),
            interfaces::description.eq(input.description),
        );
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(interfaces::table)
            .values(values)
            .returning(InterfaceRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(InterfacePayload {
            interface: Interface(row),
        })
    }

    /// Changes an interface (admins): absent fields keep their value; a refused change
    /// writes nothing.
    async fn update_interface(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateInterfaceInput,
    ) -> ApiResult<InterfacePayload> {
        let key = ids::decode("Interface", &input.id)?;
        let changes = InterfaceChanges {
            name: new_name(input.name)?,
            if_index: maybe(input.if_index, Ok)?,
            mac: maybe(input.mac, |mac| parse_mac(&mac))?,
            addresses: input
                .addresses
                .map(|addresses| {
                    addresses
                        .iter()
                        .map(|a| parse_ip(a))
                        .collect::<ApiResult<Vec<_>>>()
                })
                .transpose()?,
            speed_bps: maybe(input.speed_bps, |speed| {
                if speed.0 < 0 {
                    Err(ApiError::bad_input("speedBps must not be negative"))
                } else {
                    Ok(speed.0)
                }
            })?,
            admin_status: input.admin_status.map(AdminStatus::as_str),
            oper_status: input.oper_status.map(OperStatus::as_str),
            description: input.description,
            updated_at: chrono::Utc::now(),
        };
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::update(interfaces::table.find(key))
            .set(changes)
            .returning(InterfaceRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found("no such interface"))?;
        Ok(InterfacePayload {
            interface: Interface(row),
        })
    }

    /// Deletes an interface (admins).
    async fn delete_interface(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the interface.")] id: ID,
    ) -> ApiResult<DeleteInterfacePayload> {
        let key = ids::decode("Interface", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let deleted = diesel::delete(interfaces::table.find(key))
            .execute(&mut conn)
            .await?;
        if deleted == 0 {
            return Err(ApiError::not_found("no such interface"));
        }
        Ok(DeleteInterfacePayload { deleted_id: id })
    }
}
