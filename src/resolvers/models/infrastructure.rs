//! Infrastructure rows: gateways, agents, checkers, service checks, polling schedules and
//! their poll jobs, health events, integration sources and edge sites.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::tenant::{
    agents, checkers, edge_sites, gateways, health_events, integration_sources, poll_jobs, polling_schedules,
    service_checks,
};

/// A row of `gateways`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = gateways, check_for_backend(Pg))]
pub struct GatewayRow {
    pub id: Uuid,
    pub name: String,
    pub partition_id: Option<Uuid>,
    pub address: String,
    pub version: String,
    pub status: String,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A row of `agents`.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = agents, check_for_backend(Pg))]
pub struct AgentRow {
    pub id: Uuid,
    pub name: String,
    pub gateway_id: Option<Uuid>,
    pub device_id: Option<Uuid>,
    pub version: String,
    pub status: String,
    pub capabilities: Vec<String>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A row of `checkers`.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = checkers, check_for_backend(Pg))]
pub struct CheckerRow {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub name: String,
    pub kind: String,
    pub config: serde_json::Value,
    pub enabled: bool,
}

/// A row of `service_checks`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_checks, check_for_backend(Pg))]
pub struct ServiceCheckRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub target: String,
    pub agent_id: Option<Uuid>,
    pub device_id: Option<Uuid>,
    pub interval_seconds: i32,
    pub timeout_ms: i32,
    pub enabled: bool,
    pub last_status: String,
    pub last_checked_at: Option<DateTime<Utc>>,
}

/// A row of `polling_schedules`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = polling_schedules, check_for_backend(Pg))]
pub struct PollingScheduleRow {
    pub id: Uuid,
    pub name: String,
    pub target: String,
    pub agent_id: Option<Uuid>,
    pub interval_seconds: i32,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// A row of `poll_jobs`: one run of a polling schedule, leased by a poller over the edge
/// listener.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = poll_jobs, check_for_backend(Pg))]
pub struct PollJobRow {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub leased_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub attempts: i32,
}

/// A row of `health_events`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = health_events, check_for_backend(Pg))]
pub struct HealthEventRow {
    pub id: Uuid,
    pub source_kind: String,
    pub source_id: Uuid,
    pub status: String,
    pub message: String,
    pub occurred_at: DateTime<Utc>,
}

/// A row of `integration_sources`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = integration_sources, check_for_backend(Pg))]
pub struct IntegrationSourceRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub partition_id: Option<Uuid>,
    pub enabled: bool,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A row of `edge_sites`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = edge_sites, check_for_backend(Pg))]
pub struct EdgeSiteRow {
    pub id: Uuid,
    pub name: String,
    pub partition_id: Option<Uuid>,
    pub location: String,
    pub status: String,
}
