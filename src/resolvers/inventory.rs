//! Inventory: devices, their interfaces and identifiers, device groups and partitions.
//! Lists are Relay connections with keyset cursors; relations go through the request's
//! loaders (one statement per level, not per row).

use std::sync::Arc;

use async_graphql::connection::{Connection, ConnectionNameType, EmptyFields};
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, OutputType, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::expression::BoxableExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use ipnet::IpNet;
use uuid::Uuid;

use super::context::{app, loaders, scope};
use super::enums::{AdminStatus, DeviceStatus, IdentifierKind, OperStatus};
use super::errors::{ApiError, ApiResult};
use super::ids::{self, decode_optional};
use super::monitoring::{Alert, Event, time_cursor};
use super::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use super::scalars::BigInt;
use crate::schema::tenant::{device_groups, device_identifiers, devices, interfaces, partitions};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

// ---------------------------------------------------------------- rows

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = devices, check_for_backend(Pg))]
pub struct DeviceRow {
    pub id: Uuid,
    pub hostname: String,
    pub ip: Option<IpNet>,
    pub mac: Option<[u8; 6]>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub os: Option<String>,
    pub status: String,
    pub group_id: Option<Uuid>,
    pub partition_id: Option<Uuid>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = interfaces, check_for_backend(Pg))]
pub struct InterfaceRow {
    pub id: Uuid,
    pub device_id: Uuid,
    pub name: String,
    pub if_index: Option<i32>,
    pub mac: Option<[u8; 6]>,
    pub addresses: Vec<IpNet>,
    pub speed_bps: Option<i64>,
    pub admin_status: String,
    pub oper_status: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = device_groups, check_for_backend(Pg))]
pub struct GroupRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partitions, check_for_backend(Pg))]
pub struct PartitionRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub cidrs: Vec<IpNet>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = device_identifiers, check_for_backend(Pg))]
pub struct IdentifierRow {
    pub id: Uuid,
    pub device_id: Uuid,
    pub kind: String,
    pub value: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- formatting helpers

fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_mac(raw: &str) -> ApiResult<[u8; 6]> {
    let parts: Vec<&str> = raw.trim().split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(ApiError::bad_input(format!("{raw:?} is not a MAC address")));
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16)
            .map_err(|_| ApiError::bad_input(format!("{raw:?} is not a MAC address")))?;
    }
    Ok(mac)
}

/// An address (`10.0.0.1`) or a network (`10.0.0.0/24`).
fn parse_ip(raw: &str) -> ApiResult<IpNet> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| ApiError::bad_input(format!("{raw:?} is not an IP address")))
}

fn format_ip(ip: &IpNet) -> String {
    if ip.prefix_len() == ip.max_prefix_len() {
        ip.addr().to_string()
    } else {
        ip.to_string()
    }
}

fn maybe<T, U>(
    value: MaybeUndefined<T>,
    convert: impl FnOnce(T) -> ApiResult<U>,
) -> ApiResult<Option<Option<U>>> {
    Ok(match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(convert(v)?)),
    })
}

// ---------------------------------------------------------------- objects

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
    #[graphql(complexity = "super::limits::list_cost(first, None, child_complexity)")]
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
    ) -> ApiResult<Connection<Cursor, Interface>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let rows = loaders(ctx)?.interfaces_of(self.0.id, &window).await?;
        let rows = rows
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
        Ok(window.connection(rows, EmptyFields))
    }
    /// Stable identities (serial, MAC, agent id...) that recognise the device.
    #[graphql(complexity = "super::limits::RELATION_LIST_COST * child_complexity")]
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
    #[graphql(complexity = "super::limits::list_cost(first, None, child_complexity)")]
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
    ) -> ApiResult<Connection<Cursor, Alert>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let rows = loaders(ctx)?.open_alerts_of(self.0.id, &window).await?;
        let rows = rows
            .into_iter()
            .map(|a| (time_cursor(a.triggered_at, a.id), Alert(a)))
            .collect();
        Ok(window.connection(rows, EmptyFields))
    }
    /// The device's events, newest first: a page of `first`.
    #[graphql(complexity = "super::limits::list_cost(first, None, child_complexity)")]
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
    ) -> ApiResult<Connection<Cursor, Event>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let rows = loaders(ctx)?.recent_events_of(self.0.id, &window).await?;
        let rows = rows
            .into_iter()
            .map(|e| (time_cursor(e.occurred_at, e.id), Event(e)))
            .collect();
        Ok(window.connection(rows, EmptyFields))
    }
}

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

/// A stable identity of a device.
#[derive(Clone)]
pub struct DeviceIdentifier(pub IdentifierRow);

/// A stable identity of a device.
#[Object]
impl DeviceIdentifier {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("DeviceIdentifier", self.0.id)
    }
    /// What kind of identity this is.
    async fn kind(&self) -> IdentifierKind {
        IdentifierKind::from_stored(&self.0.kind)
    }
    /// The identity's value.
    async fn value(&self) -> &str {
        &self.0.value
    }
    /// Where it was learnt (`manual`, an integration...).
    async fn source(&self) -> &str {
        &self.0.source
    }
}

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
    #[graphql(complexity = "super::limits::list_cost(first, None, child_complexity)")]
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
    ) -> ApiResult<Connection<Cursor, Device, EmptyFields, EmptyFields, GroupDeviceConnectionName>> {
        let window = Window::forward(first, after, app(ctx)?.max_page_size)?;
        let rows = loaders(ctx)?.devices_in_group(self.0.id, &window).await?;
        let rows = rows
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
        Ok(window.connection(rows, EmptyFields))
    }
}

/// Names the connection of `DeviceGroup.devices`, `GroupDeviceConnection`: it has no
/// `totalCount`, unlike the `DeviceConnection` of `devices`.
pub struct GroupDeviceConnectionName;

impl ConnectionNameType for GroupDeviceConnectionName {
    fn type_name<T: OutputType>() -> String {
        "GroupDeviceConnection".to_owned()
    }
}

/// A network partition: a routing domain whose addresses may overlap other partitions'.
#[derive(Clone)]
pub struct Partition(pub PartitionRow);

/// A network partition: a routing domain whose addresses may overlap other partitions'.
#[Object]
impl Partition {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Partition", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Free-text description.
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Networks of the partition.
    async fn cidrs(&self) -> Vec<String> {
        self.0.cidrs.iter().map(ToString::to_string).collect()
    }
}

// ---------------------------------------------------------------- device lists

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

// ---------------------------------------------------------------- inputs and payloads

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

/// Input of `createPartition`.
#[derive(InputObject)]
pub struct CreatePartitionInput {
    /// Unique name (1 to 200 characters).
    pub name: String,
    /// Free-text description.
    #[graphql(default)]
    pub description: String,
    /// Networks of the partition, in CIDR notation.
    #[graphql(default)]
    pub cidrs: Vec<String>,
}

/// A partition after a mutation.
#[derive(SimpleObject)]
pub struct PartitionPayload {
    /// The partition as it is now.
    pub partition: Partition,
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

// ---------------------------------------------------------------- roots

#[derive(Default)]
pub struct InventoryQuery;

#[Object]
impl InventoryQuery {
    /// Devices, by host name.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
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

    /// Interfaces, by name; optionally of one device.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
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

    /// Device groups, by name.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
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

    /// Partitions, by name.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn partitions(
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
    ) -> ApiResult<Connection<Cursor, Partition>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let mut query = partitions::table
            .select(PartitionRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        query = keyset!(
            query,
            &window,
            partitions::name,
            partitions::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |p: &PartitionRow| Cursor {
                key: p.name.clone(),
                id: p.id,
            },
            Partition,
            async_graphql::connection::EmptyFields
        )
    }
}

#[derive(Default)]
pub struct InventoryMutation;

#[Object]
impl InventoryMutation {
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
        let actor = super::context::actor(ctx)?;
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
        crate::device_merge::merge(&mut conn, primary, merged, by, input.reason.trim()).await?;
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

    /// Creates a partition.
    async fn create_partition(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreatePartitionInput,
    ) -> ApiResult<PartitionPayload> {
        let cidrs = input
            .cidrs
            .iter()
            .map(|c| {
                c.trim()
                    .parse::<IpNet>()
                    .map(|n| n.trunc())
                    .map_err(|_| ApiError::bad_input(format!("{c:?} is not a network in CIDR notation")))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(partitions::table)
            .values((
                partitions::name.eq(input.name.trim().to_owned()),
                partitions::description.eq(input.description),
                partitions::cidrs.eq(cidrs),
            ))
            .returning(PartitionRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(PartitionPayload {
            partition: Partition(row),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_ips_parse_and_format() {
        assert_eq!(
            parse_mac("AA-bb-cc-00-11-22").map(format_mac).ok().as_deref(),
            Some("aa:bb:cc:00:11:22")
        );
        assert!(parse_mac("aa:bb").is_err() && parse_mac("zz:bb:cc:00:11:22").is_err());
        assert_eq!(
            parse_ip("10.0.0.1").map(|ip| format_ip(&ip)).ok().as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            parse_ip("10.0.0.0/24").map(|ip| format_ip(&ip)).ok().as_deref(),
            Some("10.0.0.0/24")
        );
        assert!(parse_ip("10.0.0.300").is_err());
    }
}
