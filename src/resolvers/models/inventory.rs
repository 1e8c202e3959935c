//! Inventory rows: devices, interfaces, identifiers, device groups and partitions.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use ipnet::IpNet;
use uuid::Uuid;

use crate::schema::tenant::{device_groups, device_identifiers, devices, interfaces, partitions};

/// A row of `devices`.
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

/// A row of `interfaces`.
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

/// A row of `device_groups`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = device_groups, check_for_backend(Pg))]
pub struct GroupRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// A row of `partitions`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partitions, check_for_backend(Pg))]
pub struct PartitionRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub cidrs: Vec<IpNet>,
    pub created_at: DateTime<Utc>,
}

/// A row of `device_identifiers`.
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
