//! Telemetry rows: process samples, OpenTelemetry metrics, traces and trace summaries,
//! and logs.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::tenant::{logs, otel_metrics, otel_trace_summaries, otel_traces, process_metrics};

/// A row of `process_metrics`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = process_metrics, check_for_backend(Pg))]
pub struct ProcessRow {
    pub device_id: Uuid,
    pub ts: DateTime<Utc>,
    pub pid: i32,
    pub name: String,
    pub cpu_percent: f64,
    pub memory_bytes: i64,
}

/// A row of `otel_metrics`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = otel_metrics, check_for_backend(Pg))]
pub struct OtelMetricRow {
    pub id: i64,
    pub device_id: Option<Uuid>,
    pub service_name: String,
    pub name: String,
    pub ts: DateTime<Utc>,
    pub value: f64,
    pub attributes: serde_json::Value,
}

/// A row of `otel_trace_summaries`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = otel_trace_summaries, check_for_backend(Pg))]
pub struct TraceSummaryRow {
    pub trace_id: String,
    pub root_service: String,
    pub root_span_name: String,
    pub start_time: DateTime<Utc>,
    pub duration_ms: f64,
    pub span_count: i32,
    pub error_count: i32,
}

/// A row of `otel_traces`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = otel_traces, check_for_backend(Pg))]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service_name: String,
    pub name: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub status: String,
    pub attributes: serde_json::Value,
}

/// A row of `logs`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = logs, check_for_backend(Pg))]
pub struct LogRow {
    pub id: i64,
    pub device_id: Option<Uuid>,
    pub ts: DateTime<Utc>,
    pub severity: String,
    pub source: String,
    pub message: String,
    pub attributes: serde_json::Value,
}
