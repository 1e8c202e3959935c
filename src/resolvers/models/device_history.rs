//! Device history rows: alias states and merge audits.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::tenant::{device_alias_states, merge_audits};

/// A row of `device_alias_states`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = device_alias_states, check_for_backend(Pg))]
pub struct AliasStateRow {
    pub id: Uuid,
    pub device_id: Uuid,
    pub alias_kind: String,
    pub alias_value: String,
    pub state: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A row of `merge_audits`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = merge_audits, check_for_backend(Pg))]
pub struct MergeAuditRow {
    pub id: Uuid,
    pub primary_device_id: Option<Uuid>,
    pub merged_device_id: Uuid,
    pub merged_snapshot: serde_json::Value,
    pub merged_by: Option<Uuid>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}
