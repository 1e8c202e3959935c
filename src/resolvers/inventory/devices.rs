//! Devices: the `Device` object, the `devices` list (filters, `totalCount`), `device`,
//! and creating, updating, deleting and merging devices.

use std::sync::Arc;

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::expression::BoxableExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use ipnet::IpNet;
use uuid::Uuid;

use super::groups::DeviceGroup;
use super::identifiers::DeviceIdentifier;
use super::interfaces::Interface;
use super::partitions::Partition;
use super::{format_ip, format_mac, maybe, parse_ip, parse_mac};
use crate::resolvers::context::{app, loaders, scope};
use crate::resolvers::enums::DeviceStatus;
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::models::DeviceRow;
use crate::resolvers::monitoring::{Alert, Event, time_cursor};
use crate::resolvers::pagination::{
    Cursor, NestedTotal, Window, connection_name, fetch_page, keyset, text_key, wants_total,
};
use crate::schema::tenant::devices;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// A monitored device: router, switch, server, appliance.
#[derive(Clone)]
pub struct Device(pub DeviceRow);

/// A monitored device: router, switch, server, appliance.
#[Object]
impl Device {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Device", self.0.id)
    }
    /// Host name.
    async fn hostname(&self) -> &str {
        &self.0.hostname
    }
    /// Management IP address.
    async fn ip(&self) -> Option<String> {
        self.0.ip.as_ref().map(format_ip)
    }
    /// MAC address, `aa:bb:cc:dd:ee:ff`.
    async fn mac(&self) -> Option<String> {
        self.0.mac.map(format_mac)
    }
    /// Hardware vendor.
    async fn vendor(&self) -> Option<&str> {
        self.0.vendor.as_deref()
    }
    /// Hardware model.
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    /// Operating system.
    async fn os(&self) -> Option<&str> {
        self.0.os.as_deref()
    }
    /// Reachability.
    async fn status(&self) -> DeviceStatus {
        DeviceStatus::from_stored(&self.0.status)
    }
    /// First time discovery saw the device.
    async fn first_seen(&self) -> Option<DateTime<Utc>> {
        self.0.first_seen
    }
    /// Last time the device answered.
    async fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.0.last_seen
    }
    /// When the record was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the record last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The device's interfaces, by name: a page of `first` (one statement for the pages of
    /// every device of the response).
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, None, child_complexity)")]
    async fn interfaces(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500); 50 when absent."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, Interface, NestedTotal, EmptyFields, DeviceInterfaceConnectionName>>
    {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let page = loaders(ctx)?
            .interfaces_of(self.0.id, &window, wants_total(ctx))
            .await?;
        let rows = page
            .rows
            .into_iter()
            .map(|i| {
                (
                    Cursor {
                        key: i.name.clone(),
                        id: i.id,
                    },
                    Interface(i),
                )
            })
            .collect();
        Ok(window.connection(rows, NestedTotal(page.total)))
    }
    /// Stable identities (serial, MAC, agent id...) that recognise the device.
    #[graphql(complexity = "crate::resolvers::limits::RELATION_LIST_COST * child_complexity")]
    async fn identifiers(&self, ctx: &Context<'_>) -> ApiResult<Vec<DeviceIdentifier>> {
        Ok(loaders(ctx)?
            .identifiers_of(self.0.id)
            .await?
            .into_iter()
            .map(DeviceIdentifier)
            .collect())
    }
    /// The group the device belongs to.
    async fn group(&self, ctx: &Context<'_>) -> ApiResult<Option<DeviceGroup>> {
        match self.0.group_id {
            Some(id) => Ok(loaders(ctx)?.group(id).await?.map(DeviceGroup)),
            None => Ok(None),
        }
    }
    /// The network partition the device is in.
    async fn partition(&self, ctx: &Context<'_>) -> ApiResult<Option<Partition>> {
        match self.0.partition_id {
            Some(id) => Ok(loaders(ctx)?.partition(id).await?.map(Partition)),
            None => Ok(None),
        }
    }
    /// Alerts of the device that are not resolved, newest first: a page of `first`.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, None, child_complexity)")]
    async fn open_alerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500); 50 when absent."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, Alert, NestedTotal, EmptyFields, DeviceAlertConnectionName>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let page = loaders(ctx)?
            .open_alerts_of(self.0.id, &window, wants_total(ctx))
            .await?;
        let rows = page
            .rows
            .into_iter()
            .map(|a| (time_cursor(a.triggered_at, a.id), Alert(a)))
            .collect();
        Ok(window.connection(rows, NestedTotal(page.total)))
    }
    /// The device's events, newest first: a page of `first`.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, None, child_complexity)")]
    async fn recent_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size: 0 to the server's ENCLAVE_MAX_PAGE_SIZE (default 500); 50 when absent."
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts (from `pageInfo.endCursor`).")] after: Option<
            String,
        >,
    ) -> ApiResult<Connection<Cursor, Event, NestedTotal, EmptyFields, DeviceEventConnectionName>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let page = loaders(ctx)?
            .recent_events_of(self.0.id, &window, wants_total(ctx))
            .await?;
        let rows = page
            .rows
            .into_iter()
            .map(|e| (time_cursor(e.occurred_at, e.id), Event(e)))
            .collect();
        Ok(window.connection(rows, NestedTotal(page.total)))
    }
}

/// Which devices to list.
#[derive(InputObject, Default, Clone)]
pub struct DeviceFilter {
    /// Only devices in one of these states.
    pub status: Option<Vec<DeviceStatus>>,
    /// Only devices of this partition.
    pub partition_id: Option<ID>,
    /// Only devices of this group.
    pub group_id: Option<ID>,
    /// Host name prefix (case-insensitive), or an exact IP address.
    pub search: Option<String>,
}

/// A [`DeviceFilter`] with its ids decoded and its search parsed.
#[derive(Debug, Clone, Default)]
struct DeviceCriteria {
    status: Option<Vec<&'static str>>,
    partition: Option<Uuid>,
    group: Option<Uuid>,
    ip: Option<IpNet>,
    hostname_prefix: Option<String>,
}

impl DeviceCriteria {
    fn new(filter: DeviceFilter) -> ApiResult<Self> {
        let search = filter
            .search
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let ip = search.as_deref().and_then(|s| parse_ip(s).ok());
        Ok(Self {
            status: filter
                .status
                .map(|s| s.into_iter().map(DeviceStatus::as_str).collect()),
            partition: decode_optional("Partition", filter.partition_id.as_ref())?,
            group: decode_optional("DeviceGroup", filter.group_id.as_ref())?,
            hostname_prefix: search.filter(|_| ip.is_none()).map(|s| {
                let escaped = s
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                format!("{escaped}%")
            }),
            ip,
        })
    }

    fn predicate(&self) -> Box<dyn BoxableExpression<devices::table, Pg, SqlType = Bool>> {
        let mut predicate: Box<dyn BoxableExpression<devices::table, Pg, SqlType = Bool>> =
            Box::new(diesel::dsl::sql::<Bool>("TRUE"));
        if let Some(status) = self.status.clone() {
            predicate = Box::new(predicate.and(devices::status.eq_any(status)));
        }
        if let Some(partition) = self.partition {
            predicate = Box::new(predicate.and(devices::partition_id.assume_not_null().eq(partition)));
        }
        if let Some(group) = self.group {
            predicate = Box::new(predicate.and(devices::group_id.assume_not_null().eq(group)));
        }
        if let Some(ip) = self.ip {
            predicate = Box::new(predicate.and(devices::ip.assume_not_null().eq(ip)));
        }
        if let Some(prefix) = self.hostname_prefix.clone() {
            predicate = Box::new(predicate.and(lower(devices::hostname).like(prefix)));
        }
        predicate
    }
}

/// Extra fields of the device list.
pub struct DeviceListInfo(Arc<DeviceCriteria>);

#[Object]
impl DeviceListInfo {
    /// Number of devices matching the filter (one extra query, only when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        let mut conn = scope(ctx)?.conn().await?;
        let count: i64 = devices::table
            .filter(self.0.predicate())
            .select(count_star())
            .get_result(&mut conn)
            .await?;
        // GraphQL's Int has 32 bits; a tenant with more devices than that is not a real case.
        i32::try_from(count).map_err(ApiError::internal)
    }
}

/// Input of `createDevice`.
#[derive(InputObject)]
pub struct CreateDeviceInput {
    /// Host name (1 to 255 characters).
    pub hostname: String,
    /// Management IP address.
    pub ip: Option<String>,
    /// MAC address.
    pub mac: Option<String>,
    /// Hardware vendor.
    pub vendor: Option<String>,
    /// Hardware model.
    pub model: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// Reachability; UNKNOWN when absent.
    pub status: Option<DeviceStatus>,
    /// Group to put the device in.
    pub group_id: Option<ID>,
    /// Partition the device is in.
    pub partition_id: Option<ID>,
}

/// Input of `updateDevice`: absent fields are left alone, `null` clears a field.
#[derive(InputObject)]
pub struct UpdateDeviceInput {
    /// The device to change.
    pub id: ID,
    /// New host name.
    pub hostname: Option<String>,
    /// New management IP address.
    #[graphql(default)]
    pub ip: MaybeUndefined<String>,
    /// New MAC address.
    #[graphql(default)]
    pub mac: MaybeUndefined<String>,
    /// New vendor.
    #[graphql(default)]
    pub vendor: MaybeUndefined<String>,
    /// New model.
    #[graphql(default)]
    pub model: MaybeUndefined<String>,
    /// New operating system.
    #[graphql(default)]
    pub os: MaybeUndefined<String>,
    /// New reachability.
    pub status: Option<DeviceStatus>,
    /// New group.
    #[graphql(default)]
    pub group_id: MaybeUndefined<ID>,
    /// New partition.
    #[graphql(default)]
    pub partition_id: MaybeUndefined<ID>,
}

#[derive(AsChangeset)]
#[diesel(table_name = devices)]
struct DeviceChanges {
    hostname: Option<String>,
    ip: Option<Option<IpNet>>,
    mac: Option<Option<[u8; 6]>>,
    vendor: Option<Option<String>>,
    model: Option<Option<String>>,
    os: Option<Option<String>>,
    status: Option<&'static str>,
    group_id: Option<Option<Uuid>>,
    partition_id: Option<Option<Uuid>>,
    updated_at: DateTime<Utc>,
}

/// Input of `deleteDevice`.
#[derive(InputObject)]
pub struct DeleteDeviceInput {
    /// The device to delete, with its interfaces and identifiers.
    pub id: ID,
}

/// A device after a mutation.
#[derive(SimpleObject)]
pub struct DevicePayload {
    /// The device as it is now.
    pub device: Device,
}

/// The result of `deleteDevice`.
#[derive(SimpleObject)]
pub struct DeleteDevicePayload {
    /// Id of the deleted device.
    pub deleted_id: ID,
}

/// Input of `mergeDevices`.
#[derive(InputObject)]
pub struct MergeDevicesInput {
    /// The device that stays.
    pub primary_id: ID,
    /// The duplicate that is merged into it and deleted.
    pub merged_id: ID,
    /// Why (kept in the audit).
    #[graphql(default)]
    pub reason: String,
}

/// The result of `mergeDevices`.
#[derive(SimpleObject)]
pub struct MergeDevicesPayload {
    /// The remaining device, with everything of the merged one.
    pub device: Device,
    /// Id of the deleted duplicate.
    pub merged_id: ID,
}

/// The root query fields of devices.
#[derive(Default)]
pub struct DeviceQuery;

#[Object]
impl DeviceQuery {
    /// Devices, by host name.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn devices(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which items to list; all when absent.")] filter: Option<DeviceFilter>,
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
    ) -> ApiResult<Connection<Cursor, Device, DeviceListInfo>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let criteria = Arc::new(DeviceCriteria::new(filter.unwrap_or_default())?);
        let mut query = devices::table
            .filter(criteria.predicate())
            .select(DeviceRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        query = keyset!(
            query,
            &window,
            devices::hostname,
            devices::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |d: &DeviceRow| Cursor {
                key: d.hostname.clone(),
                id: d.id,
            },
            Device,
            DeviceListInfo(criteria)
        )
    }

    /// One device by id.
    async fn device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the object.")] id: ID,
    ) -> ApiResult<Option<Device>> {
        let id = ids::decode("Device", &id)?;
        Ok(loaders(ctx)?.device(id).await?.map(Device))
    }
}

/// The root mutation fields of devices.
#[derive(Default)]
pub struct DeviceMutation;

#[Object]
impl DeviceMutation {
    /// Adds a device.
    async fn create_device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateDeviceInput,
    ) -> ApiResult<DevicePayload> {
        let hostname = input.hostname.trim().to_owned();
        let values = (
            devices::hostname.eq(hostname),
            devices::ip.eq(input.ip.as_deref().map(parse_ip).transpose()?),
            devices::mac.eq(input.mac.as_deref().map(parse_mac).transpose()?),
            devices::vendor.eq(input.vendor),
            devices::model.eq(input.model),
            devices::os.eq(input.os),
            devices::status.eq(input.status.unwrap_or(DeviceStatus::Unknown).as_str()),
            devices::group_id.eq(decode_optional("DeviceGroup", input.group_id.as_ref())?),
            devices::partition_id.eq(decode_optional("Partition", input.partition_id.as_ref())?),
        );
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(devices::table)
            .values(values)
            .returning(DeviceRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(DevicePayload { device: Device(row) })
    }

    /// Changes a device; absent fields are left alone.
    async fn update_device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateDeviceInput,
    ) -> ApiResult<DevicePayload> {
        let id = ids::decode("Device", &input.id)?;
        let changes = DeviceChanges {
            hostname: input.hostname.map(|h| h.trim().to_owned()),
            ip: maybe(input.ip, |ip| parse_ip(&ip))?,
            mac: maybe(input.mac, |mac| parse_mac(&mac))?,
            vendor: maybe(input.vendor, Ok)?,
            model: maybe(input.model, Ok)?,
            os: maybe(input.os, Ok)?,
            status: input.status.map(DeviceStatus::as_str),
            group_id: maybe(input.group_id, |g| ids::decode("DeviceGroup", &g))?,
            partition_id: maybe(input.partition_id, |p| ids::decode("Partition", &p))?,
            updated_at: Utc::now(),
        };
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::update(devices::table.find(id))
            .set(changes)
            .returning(DeviceRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found("no such device"))?;
        Ok(DevicePayload { device: Device(row) })
    }

    /// Deletes a device with its interfaces, identifiers, service checks and metrics; its
    /// alerts, events and logs stay, without a device.
    async fn delete_device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteDeviceInput,
    ) -> ApiResult<DeleteDevicePayload> {
        let id = ids::decode("Device", &input.id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let deleted = diesel::delete(devices::table.find(id)).execute(&mut conn).await?;
        if deleted == 0 {
            return Err(ApiError::not_found("no such device"));
        }
        Ok(DeleteDevicePayload { deleted_id: input.id })
    }

    /// Merges a duplicate device into another and records it (admins).
    async fn merge_devices(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: MergeDevicesInput,
    ) -> ApiResult<MergeDevicesPayload> {
        let primary = ids::decode("Device", &input.primary_id)?;
        let merged = ids::decode("Device", &input.merged_id)?;
        if primary == merged {
            return Err(ApiError::bad_input("a device cannot be merged into itself"));
        }
        let actor = crate::resolvers::context::actor(ctx)?;
        let by = match actor.claims.credential {
            crate::auth::token::Credential::Impersonation(_) => None,
            _ => Some(actor.claims.user_id),
        };
        let mut conn = scope(ctx)?.conn().await?;
        let found: i64 = devices::table
            .filter(devices::id.eq_any([primary, merged]))
            .count()
            .get_result(&mut conn)
            .await?;
        if found != 2 {
            return Err(ApiError::not_found("no such device"));
        }
        crate::device_merge::merge(conn.pg(), primary, merged, by, input.reason.trim()).await?;
        let row = devices::table
            .find(primary)
            .select(DeviceRow::as_select())
            .first(&mut conn)
            .await?;
        Ok(MergeDevicesPayload {
            device: Device(row),
            merged_id: input.merged_id,
        })
    }
}

connection_name!(
    /// Names the connection of `Device.interfaces`: a device's interfaces, with their `totalCount`.
    DeviceInterfaceConnectionName,
    "DeviceInterfaceConnection"
);

connection_name!(
    /// Names the connection of `Device.openAlerts`: a device's open alerts, with their `totalCount`.
    DeviceAlertConnectionName,
    "DeviceAlertConnection"
);

connection_name!(
    /// Names the connection of `Device.recentEvents`: a device's events, with their `totalCount`.
    DeviceEventConnectionName,
    "DeviceEventConnection"
);
