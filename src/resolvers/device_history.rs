//! A device's history, read-only: the aliases (host names, addresses, MACs) it has been
//! seen under and their state, and the audit of device merges. Both are Relay
//! connections, newest first, filtered by their natural keys and time.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Json, Object};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::context::{app, loaders, scope};
use super::errors::ApiResult;
use super::ids::{self, decode_optional};
use super::inventory::Device;
use super::models::{AliasStateRow, MergeAuditRow};
use super::monitoring::{cursor_time, time_cursor};
use super::pagination::{Cursor, Window, fetch_page, keyset};
use crate::schema::tenant::{device_alias_states, merge_audits};

/// What kind of name or address an alias is.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AliasKind {
    /// A host name.
    Hostname,
    /// An IP address.
    Ip,
    /// A MAC address.
    Mac,
}

impl AliasKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hostname => "hostname",
            Self::Ip => "ip",
            Self::Mac => "mac",
        }
    }

    fn from_stored(stored: &str) -> Self {
        match stored {
            "ip" => Self::Ip,
            "mac" => Self::Mac,
            _ => Self::Hostname,
        }
    }
}

/// Whether an alias still names its device.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AliasState {
    /// Seen recently.
    Active,
    /// Not seen for a while.
    Stale,
    /// Kept for history only.
    Archived,
}

impl AliasState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Stale => "stale",
            Self::Archived => "archived",
        }
    }

    fn from_stored(stored: &str) -> Self {
        match stored {
            "stale" => Self::Stale,
            "archived" => Self::Archived,
            _ => Self::Active,
        }
    }
}

/// A name or address a device has been seen under, with when and whether it still holds.
#[derive(Clone)]
pub struct DeviceAliasState(pub AliasStateRow);

/// A name or address a device has been seen under, with when and whether it still holds.
#[Object]
impl DeviceAliasState {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("DeviceAliasState", self.0.id)
    }
    /// The device the alias names.
    async fn device(&self, ctx: &Context<'_>) -> ApiResult<Option<Device>> {
        Ok(loaders(ctx)?.device(self.0.device_id).await?.map(Device))
    }
    /// What kind of alias this is.
    async fn alias_kind(&self) -> AliasKind {
        AliasKind::from_stored(&self.0.alias_kind)
    }
    /// The alias itself (`core-sw-1`, `10.0.0.1`, `aa:bb:cc:dd:ee:ff`).
    async fn alias_value(&self) -> &str {
        &self.0.alias_value
    }
    /// Whether the alias still names the device.
    async fn state(&self) -> AliasState {
        AliasState::from_stored(&self.0.state)
    }
    /// First time the device was seen under this alias.
    async fn first_seen(&self) -> DateTime<Utc> {
        self.0.first_seen
    }
    /// Last time the device was seen under this alias.
    async fn last_seen(&self) -> DateTime<Utc> {
        self.0.last_seen
    }
}

/// The record of a device merged into another (`mergeDevices`).
#[derive(Clone)]
pub struct MergeAudit(pub MergeAuditRow);

/// The record of a device merged into another (`mergeDevices`).
#[Object]
impl MergeAudit {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("MergeAudit", self.0.id)
    }
    /// The device that absorbed the other; null once it was deleted.
    async fn primary_device(&self, ctx: &Context<'_>) -> ApiResult<Option<Device>> {
        match self.0.primary_device_id {
            Some(id) => Ok(loaders(ctx)?.device(id).await?.map(Device)),
            None => Ok(None),
        }
    }
    /// Global id the merged (and since deleted) device had.
    async fn merged_device_id(&self) -> ID {
        ids::encode("Device", self.0.merged_device_id)
    }
    /// The merged device as it was just before the merge.
    async fn merged_snapshot(&self) -> Json<serde_json::Value> {
        Json(self.0.merged_snapshot.clone())
    }
    /// Global id of the user who merged, if the user still exists.
    async fn merged_by_id(&self) -> Option<ID> {
        self.0.merged_by.map(|id| ids::encode("User", id))
    }
    /// Why the devices were merged.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// When the merge happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Which aliases `deviceAliasStates` lists.
#[derive(InputObject, Default)]
pub struct DeviceAliasStateFilter {
    /// Only the aliases of this device (global id).
    pub device_id: Option<ID>,
    /// Only aliases of these kinds.
    pub alias_kind: Option<Vec<AliasKind>>,
    /// Only this exact alias (e.g. an address, to find the devices it named).
    pub alias_value: Option<String>,
    /// Only aliases in these states.
    pub state: Option<Vec<AliasState>>,
    /// Only aliases last seen at or after this time.
    pub seen_since: Option<DateTime<Utc>>,
}

/// Which merges `mergeAudits` lists.
#[derive(InputObject, Default)]
pub struct MergeAuditFilter {
    /// Only merges into this device (global id).
    pub primary_device_id: Option<ID>,
    /// Only the merge of this (former) device (global id).
    pub merged_device_id: Option<ID>,
    /// Only merges at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only merges before this time.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct DeviceHistoryQuery;

#[Object]
impl DeviceHistoryQuery {
    /// Names and addresses devices have been seen under, most recently seen first.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn device_alias_states(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which aliases to list; all when absent.")] filter: Option<DeviceAliasStateFilter>,
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
    ) -> ApiResult<Connection<Cursor, DeviceAliasState, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let filter = filter.unwrap_or_default();
        let device = decode_optional("Device", filter.device_id.as_ref())?;
        let mut query = device_alias_states::table
            .select(AliasStateRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(device) = device {
            query = query.filter(device_alias_states::device_id.eq(device));
        }
        if let Some(kinds) = filter.alias_kind {
            let kinds: Vec<&str> = kinds.into_iter().map(AliasKind::as_str).collect();
            query = query.filter(device_alias_states::alias_kind.eq_any(kinds));
        }
        if let Some(value) = filter.alias_value {
            query = query.filter(device_alias_states::alias_value.eq(value));
        }
        if let Some(states) = filter.state {
            let states: Vec<&str> = states.into_iter().map(AliasState::as_str).collect();
            query = query.filter(device_alias_states::state.eq_any(states));
        }
        if let Some(since) = filter.seen_since {
            query = query.filter(device_alias_states::last_seen.ge(since));
        }
        let query = keyset!(
            query,
            &window,
            device_alias_states::last_seen,
            device_alias_states::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &AliasStateRow| time_cursor(r.last_seen, r.id),
            DeviceAliasState,
            EmptyFields
        )
    }

    /// Device merges, newest first.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn merge_audits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which merges to list; all when absent.")] filter: Option<MergeAuditFilter>,
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
    ) -> ApiResult<Connection<Cursor, MergeAudit, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let filter = filter.unwrap_or_default();
        let primary = decode_optional("Device", filter.primary_device_id.as_ref())?;
        let merged = decode_optional("Device", filter.merged_device_id.as_ref())?;
        let mut query = merge_audits::table
            .select(MergeAuditRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(primary) = primary {
            query = query.filter(merge_audits::primary_device_id.eq(primary));
        }
        if let Some(merged) = merged {
            query = query.filter(merge_audits::merged_device_id.eq(merged));
        }
        if let Some(since) = filter.since {
            query = query.filter(merge_audits::created_at.ge(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(merge_audits::created_at.lt(until));
        }
        let query = keyset!(
            query,
            &window,
            merge_audits::created_at,
            merge_audits::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &MergeAuditRow| time_cursor(r.created_at, r.id),
            MergeAudit,
            EmptyFields
        )
    }
}
