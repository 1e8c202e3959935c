//! Inventory edits that complete `inventory`'s: a device's identifiers added and removed
//! one by one, device groups and partitions updated, and interfaces, device groups and
//! partitions deleted. Input is checked before any SQL runs; a refused
//! edit writes nothing.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::context::scope;
use super::enums::IdentifierKind;
use super::errors::{ApiError, ApiResult};
use super::ids;
use super::inventory::{
    DeviceGroup, DeviceGroupPayload, DeviceIdentifier, GroupRow, IdentifierRow, Partition, PartitionPayload,
    PartitionRow,
};
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
