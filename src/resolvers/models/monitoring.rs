//! Monitoring rows: alerts and events.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::tenant::{alerts, events};

/// A row of `alerts`.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = alerts, check_for_backend(Pg))]
pub struct AlertRow {
    pub id: Uuid,
    pub device_id: Option<Uuid>,
    pub severity: String,
    pub status: String,
    pub source: String,
    pub title: String,
    pub message: String,
    pub triggered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A row of `events`.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = events, check_for_backend(Pg))]
pub struct EventRow {
    pub id: Uuid,
    pub device_id: Option<Uuid>,
    pub kind: String,
    pub severity: String,
    pub source: String,
    pub message: String,
    pub data: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}
