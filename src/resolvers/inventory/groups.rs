//! Device groups: the `DeviceGroup` object and its devices, the `deviceGroups` list, and
//! creating, updating, deleting groups and putting devices in them.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::devices::Device;
use super::{DeletedPayload, new_name};
use crate::resolvers::context::{app, loaders, scope};
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids;
use crate::resolvers::models::GroupRow;
use crate::resolvers::pagination::{
    Cursor, NestedTotal, Window, connection_name, fetch_page, keyset, text_key, wants_total,
};
use crate::schema::tenant::{device_groups, devices};

/// A named set of devices, for views, permissions and bulk operations.
#[derive(Clone)]
pub struct DeviceGroup(pub GroupRow);

/// A named set of devices, for views, permissions and bulk operations.
#[Object]
impl DeviceGroup {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("DeviceGroup", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Free-text description.
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Devices of the group, by host name: a page of `first`.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, None, child_complexity)")]
    async fn devices(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500); 50 when absent."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, Device, NestedTotal, EmptyFields, GroupDeviceConnectionName>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let page = loaders(ctx)?
            .devices_in_group(self.0.id, &window, wants_total(ctx))
            .await?;
        let rows = page
            .rows
            .into_iter()
            .map(|d| {
                (
                    Cursor {
                        key: d.hostname.clone(),
                        id: d.id,
                    },
                    Device(d),
                )
            })
            .collect();
        Ok(window.connection(rows, NestedTotal(page.total)))
    }
}

connection_name!(
    /// Names the connection of `DeviceGroup.devices`, `GroupDeviceConnection`: its
    /// `totalCount` counts the group's devices (in the statement that reads the page),
    /// where `DeviceConnection`'s counts the devices matching the `devices` filter.
    GroupDeviceConnectionName,
    "GroupDeviceConnection"
);

/// Input of `createDeviceGroup`.
#[derive(InputObject)]
pub struct CreateDeviceGroupInput {
    /// Unique name (1 to 200 characters).
    pub name: String,
    /// Free-text description.
    #[graphql(default)]
    pub description: String,
}

/// Input of `assignDevicesToGroup`.
#[derive(InputObject)]
pub struct AssignDevicesToGroupInput {
    /// The group.
    pub group_id: ID,
    /// Devices to put in it (they leave their previous group).
    pub device_ids: Vec<ID>,
}

/// A device group after a mutation.
#[derive(SimpleObject)]
pub struct DeviceGroupPayload {
    /// The group as it is now.
    pub device_group: DeviceGroup,
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

#[derive(AsChangeset)]
#[diesel(table_name = device_groups)]
struct GroupChanges {
    name: Option<String>,
    description: Option<String>,
}

/// The root query fields of groups.
#[derive(Default)]
pub struct DeviceGroupQuery;

#[Object]
impl DeviceGroupQuery {
    /// Device groups, by name.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn device_groups(
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
    ) -> ApiResult<Connection<Cursor, DeviceGroup>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let mut query = device_groups::table
            .select(GroupRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        query = keyset!(
            query,
            &window,
            device_groups::name,
            device_groups::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |g: &GroupRow| Cursor {
                key: g.name.clone(),
                id: g.id,
            },
            DeviceGroup,
            async_graphql::connection::EmptyFields
        )
    }
}

/// The root mutation fields of groups.
#[derive(Default)]
pub struct DeviceGroupMutation;

#[Object]
impl DeviceGroupMutation {
    /// Creates a device group.
    async fn create_device_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateDeviceGroupInput,
    ) -> ApiResult<DeviceGroupPayload> {
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(device_groups::table)
            .values((
                device_groups::name.eq(input.name.trim().to_owned()),
                device_groups::description.eq(input.description),
            ))
            .returning(GroupRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(DeviceGroupPayload {
            device_group: DeviceGroup(row),
        })
    }

    /// Puts devices in a group. Every device must exist; otherwise nothing changes.
    async fn assign_devices_to_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: AssignDevicesToGroupInput,
    ) -> ApiResult<DeviceGroupPayload> {
        let group = ids::decode("DeviceGroup", &input.group_id)?;
        let devices_ids = input
            .device_ids
            .iter()
            .map(|d| ids::decode("Device", d))
            .collect::<ApiResult<Vec<_>>>()?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = device_groups::table
            .find(group)
            .select(GroupRow::as_select())
            .first(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found("no such device group"))?;
        let updated = diesel::update(devices::table.filter(devices::id.eq_any(&devices_ids)))
            .set((
                devices::group_id.eq(group),
                devices::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
        let distinct: std::collections::HashSet<_> = devices_ids.iter().collect();
        if updated != distinct.len() {
            return Err(ApiError::not_found("one of the devices does not exist"));
        }
        Ok(DeviceGroupPayload {
            device_group: DeviceGroup(row),
        })
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
}
