//! Inventory edits that complete `inventory`'s: a device's identifiers added and removed
//! one by one, interfaces, device groups and partitions updated, and interfaces, device
//! groups and partitions deleted. Input is checked before any SQL runs; a refused
//! edit writes nothing.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::context::scope;
use super::enums::{AdminStatus, IdentifierKind, OperStatus};
use super::errors::{ApiError, ApiResult};
use super::ids;
use super::inventory::{
    DeviceGroup, DeviceGroupPayload, DeviceIdentifier, GroupRow, IdentifierRow, Interface, InterfacePayload,
    InterfaceRow, Partition, PartitionPayload, PartitionRow, parse_ip, parse_mac,
};
use super::scalars::BigInt;
use crate::schema::tenant::{device_groups, device_identifiers, interfaces, partitions};

/// Longest identifier value accepted.
const MAX_IDENTIFIER_LEN: usize = 512;

/// Input of `addDeviceIdentifier`.
#[derive(InputObject)]
pub struct AddDeviceIdentifierInput {
    /// Global id of the device.
    pub device_id: ID,
    /// What kind of identity this is.
    pub kind: IdentifierKind,
    /// The identity's value (1 to 512 characters, unique per kind in the tenant).
    pub value: String,
    /// Where it was learnt; `manual` when absent.
    pub source: Option<String>,
}

/// The result of `addDeviceIdentifier`.
#[derive(SimpleObject)]
pub struct DeviceIdentifierPayload {
    /// The identifier added.
    pub device_identifier: DeviceIdentifier,
}

/// The result of `removeDeviceIdentifier`.
#[derive(SimpleObject)]
pub struct RemoveDeviceIdentifierPayload {
    /// Global id of the identifier removed.
    pub removed_id: ID,
}

/// The result of `deleteInterface`.
#[derive(SimpleObject)]
pub struct DeleteInterfacePayload {
    /// Global id of the interface deleted.
    pub deleted_id: ID,
}

/// The result of `deleteDeviceGroup` and `deletePartition`.
#[derive(SimpleObject)]
pub struct DeletedPayload {
    /// Global id of the object deleted.
    pub deleted_id: ID,
}

/// Input of `updateDeviceGroup`: absent fields keep their value.
#[derive(InputObject)]
pub struct UpdateDeviceGroupInput {
    /// Global id of the device group.
    pub id: ID,
    /// New unique name (not blank).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

/// Input of `updatePartition`: absent fields keep their value.
#[derive(InputObject)]
pub struct UpdatePartitionInput {
    /// Global id of the partition.
    pub id: ID,
    /// New unique name (not blank).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New networks (CIDR notation), replacing the old ones.
    pub cidrs: Option<Vec<String>>,
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

/// A field that may be absent (unchanged), null (cleared) or a value, converted.
fn maybe<T, U>(
    value: MaybeUndefined<T>,
    convert: impl FnOnce(T) -> ApiResult<U>,
) -> ApiResult<Option<Option<U>>> {
    Ok(match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(convert(value)?)),
    })
}

#[derive(AsChangeset)]
#[diesel(table_name = device_groups)]
struct GroupChanges {
    name: Option<String>,
    description: Option<String>,
}

#[derive(AsChangeset)]
#[diesel(table_name = partitions)]
struct PartitionChanges {
    name: Option<String>,
    description: Option<String>,
    cidrs: Option<Vec<ipnet::IpNet>>,
}

/// A new name, trimmed; a blank one is refused.
fn new_name(name: Option<String>) -> ApiResult<Option<String>> {
    match name.map(|n| n.trim().to_owned()) {
        Some(n) if n.is_empty() => Err(ApiError::bad_input("name must not be blank")),
        other => Ok(other),
    }
}

#[derive(Default)]
pub struct InventoryEdits;

#[Object]
impl InventoryEdits {
    /// Adds a stable identity to a device (operators). A value already naming a device
    /// of the tenant is a CONFLICT.
    async fn add_device_identifier(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: AddDeviceIdentifierInput,
    ) -> ApiResult<DeviceIdentifierPayload> {
        let device = ids::decode("Device", &input.device_id)?;
        let value = input.value.trim().to_owned();
        if value.is_empty() || value.chars().count() > MAX_IDENTIFIER_LEN {
            return Err(ApiError::bad_input(format!(
                "value must have 1 to {MAX_IDENTIFIER_LEN} characters"
            )));
        }
        let source = input
            .source
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "manual".to_owned());
        if source.is_empty() || source.chars().count() > 200 {
            return Err(ApiError::bad_input("source must have 1 to 200 characters"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(device_identifiers::table)
            .values((
                device_identifiers::device_id.eq(device),
                device_identifiers::kind.eq(input.kind.as_str()),
                device_identifiers::value.eq(value),
                device_identifiers::source.eq(source),
            ))
            .returning(IdentifierRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(DeviceIdentifierPayload {
            device_identifier: DeviceIdentifier(row),
        })
    }

    /// Removes an identity from its device (operators).
    async fn remove_device_identifier(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the identifier.")] id: ID,
    ) -> ApiResult<RemoveDeviceIdentifierPayload> {
        let key = ids::decode("DeviceIdentifier", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let removed = diesel::delete(device_identifiers::table.find(key))
            .execute(&mut conn)
            .await?;
        if removed == 0 {
            return Err(ApiError::not_found("no such device identifier"));
        }
        Ok(RemoveDeviceIdentifierPayload { removed_id: id })
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

    /// Deletes a device group (admins); its devices stay, in no group.
    async fn delete_device_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the device group.")] id: ID,
    ) -> ApiResult<DeletedPayload> {
        let key = ids::decode("DeviceGroup", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let deleted = diesel::delete(device_groups::table.find(key))
            .execute(&mut conn)
            .await?;
        if deleted == 0 {
            return Err(ApiError::not_found("no such device group"));
        }
        Ok(DeletedPayload { deleted_id: id })
    }

    /// Deletes a partition (admins); its devices, gateways, integration sources and edge
    /// sites stay, in no partition.
    async fn delete_partition(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the partition.")] id: ID,
    ) -> ApiResult<DeletedPayload> {
        let key = ids::decode("Partition", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let deleted = diesel::delete(partitions::table.find(key))
            .execute(&mut conn)
            .await?;
        if deleted == 0 {
            return Err(ApiError::not_found("no such partition"));
        }
        Ok(DeletedPayload { deleted_id: id })
    }

    /// Renames or redescribes a device group (admins).
    async fn update_device_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateDeviceGroupInput,
    ) -> ApiResult<DeviceGroupPayload> {
        let key = ids::decode("DeviceGroup", &input.id)?;
        let changes = GroupChanges {
            name: new_name(input.name)?,
            description: input.description,
        };
        if changes.name.is_none() && changes.description.is_none() {
            return Err(ApiError::bad_input("give at least one field to change"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::update(device_groups::table.find(key))
            .set(changes)
            .returning(GroupRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found("no such device group"))?;
        Ok(DeviceGroupPayload {
            device_group: DeviceGroup(row),
        })
    }

    /// Renames, redescribes or re-addresses a partition (admins).
    async fn update_partition(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdatePartitionInput,
    ) -> ApiResult<PartitionPayload> {
        let key = ids::decode("Partition", &input.id)?;
        let cidrs = input
            .cidrs
            .map(|cidrs| {
                cidrs
                    .iter()
                    .map(|c| {
                        c.trim().parse::<ipnet::IpNet>().map(|n| n.trunc()).map_err(|_| {
                            ApiError::bad_input(format!("{c:?} is not a network in CIDR notation"))
                        })
                    })
                    .collect::<ApiResult<Vec<_>>>()
            })
            .transpose()?;
        let changes = PartitionChanges {
            name: new_name(input.name)?,
            description: input.description,
            cidrs,
        };
        if changes.name.is_none() && changes.description.is_none() && changes.cidrs.is_none() {
            return Err(ApiError::bad_input("give at least one field to change"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::update(partitions::table.find(key))
            .set(changes)
            .returning(PartitionRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found("no such partition"))?;
        Ok(PartitionPayload {
            partition: Partition(row),
        })
    }
}
