//! `POST /edge/v1/alerts`, `/events` and `/health-events`: what a component observed, at
//! most [`MAX_BATCH`] records, written with one multi-row insert per batch. Alerts and
//! events fire the tenant's `alertChanges` / `eventChanges` subscriptions (their tables'
//! triggers notify at commit). A health event is about a device (by hostname) or, when it
//! names none, about the reporting component itself (`source_kind = 'edge_component'`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use chrono::{DateTime, Utc};
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::json;

use super::{
    Body, DeviceNames, IngestError, MAX_BATCH, check_batch, check_severity, check_text, in_tenant, source,
};
use crate::app::App;
use crate::edge::listener::EdgeIdentity;
use crate::resolvers::enums::{HealthSourceKind, HealthStatus};
use crate::schema::tenant::{alerts, events, health_events};

/// One alert.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertRecord {
    /// 1 to 500 characters.
    pub title: String,
    /// `info`, `warning`, `minor`, `major` or `critical`.
    pub severity: String,
    #[serde(default)]
    pub message: String,
    /// Hostname of a device of the tenant the alert is about.
    #[serde(default)]
    pub device_hostname: Option<String>,
}

/// `POST /edge/v1/alerts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    pub alerts: Vec<AlertRecord>,
}

pub(super) async fn alerts(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<Alerts>,
) -> Result<Json<serde_json::Value>, IngestError> {
    check_batch(batch.alerts.len(), MAX_BATCH)?;
    let mut titles = Vec::with_capacity(batch.alerts.len());
    for (index, alert) in batch.alerts.iter().enumerate() {
        titles.push(check_text(index, "title", &alert.title, 500)?);
        check_severity(index, &alert.severity)?;
    }
    let source = source(&identity);
    let created = in_tenant(&app, &identity, async |conn, _reporter| {
        let devices =
            DeviceNames::load(conn, batch.alerts.iter().map(|a| a.device_hostname.as_deref())).await?;
        let mut rows = Vec::with_capacity(batch.alerts.len());
        for (index, alert) in batch.alerts.iter().enumerate() {
            use diesel::ExpressionMethods as _;
            rows.push((
                alerts::title.eq(titles[index]),
                alerts::severity.eq(alert.severity.as_str()),
                alerts::message.eq(alert.message.as_str()),
                alerts::source.eq(source.as_str()),
                alerts::device_id.eq(devices.resolve(index, alert.device_hostname.as_deref())?),
            ));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(diesel::insert_into(alerts::table)
            .values(rows)
            .execute(conn)
            .await?)
    })
    .await?;
    Ok(Json(json!({ "ok": true, "created": created })))
}

/// One event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventRecord {
    /// What happened (1 to 200 characters), e.g. `link.down`.
    pub kind: String,
    /// `info` (default), `warning`, `minor`, `major` or `critical`.
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub message: String,
    /// Structured details.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// When it happened, RFC 3339 (default: when received).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// Hostname of a device of the tenant the event is about.
    #[serde(default)]
    pub device_hostname: Option<String>,
}

/// `POST /edge/v1/events` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    pub events: Vec<EventRecord>,
}

/// An optional RFC 3339 time of record `index`, defaulting to now.
fn occurred_at(index: usize, raw: Option<&str>) -> Result<DateTime<Utc>, IngestError> {
    match raw {
        None => Ok(Utc::now()),
        Some(raw) => DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| IngestError::bad(Some(index), "occurredAt is not an RFC 3339 time")),
    }
}

pub(super) async fn events(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<Events>,
) -> Result<Json<serde_json::Value>, IngestError> {
    check_batch(batch.events.len(), MAX_BATCH)?;
    let mut checked = Vec::with_capacity(batch.events.len());
    for (index, event) in batch.events.iter().enumerate() {
        let kind = check_text(index, "kind", &event.kind, 200)?;
        let severity = event.severity.as_deref().unwrap_or("info");
        check_severity(index, severity)?;
        checked.push((kind, severity, occurred_at(index, event.occurred_at.as_deref())?));
    }
    let source = source(&identity);
    let created = in_tenant(&app, &identity, async |conn, _reporter| {
        let devices =
            DeviceNames::load(conn, batch.events.iter().map(|e| e.device_hostname.as_deref())).await?;
        let mut rows = Vec::with_capacity(batch.events.len());
        for (index, (event, (kind, severity, at))) in batch.events.iter().zip(&checked).enumerate() {
            use diesel::ExpressionMethods as _;
            rows.push((
                events::kind.eq(*kind),
                events::severity.eq(*severity),
                events::message.eq(event.message.as_str()),
                events::source.eq(source.as_str()),
                events::data.eq(event.data.clone().unwrap_or_else(|| json!({}))),
                events::occurred_at.eq(*at),
                events::device_id.eq(devices.resolve(index, event.device_hostname.as_deref())?),
            ));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(diesel::insert_into(events::table)
            .values(rows)
            .execute(conn)
            .await?)
    })
    .await?;
    Ok(Json(json!({ "ok": true, "created": created })))
}

/// One health report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthRecord {
    /// `healthy`, `degraded`, `unhealthy` or `unknown`.
    pub status: String,
    #[serde(default)]
    pub message: String,
    /// When it was observed, RFC 3339 (default: when received).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// Hostname of the device the report is about; absent: the reporting component.
    #[serde(default)]
    pub device_hostname: Option<String>,
}

/// `POST /edge/v1/health-events` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthEvents {
    pub health_events: Vec<HealthRecord>,
}

pub(super) async fn health_events(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<HealthEvents>,
) -> Result<Json<serde_json::Value>, IngestError> {
    check_batch(batch.health_events.len(), MAX_BATCH)?;
    let mut checked = Vec::with_capacity(batch.health_events.len());
    for (index, report) in batch.health_events.iter().enumerate() {
        let status = HealthStatus::parse(&report.status).ok_or_else(|| {
            IngestError::bad(
                Some(index),
                "status must be healthy, degraded, unhealthy or unknown",
            )
        })?;
        checked.push((status, occurred_at(index, report.occurred_at.as_deref())?));
    }
    let created = in_tenant(&app, &identity, async |conn, reporter| {
        let devices = DeviceNames::load(
            conn,
            batch.health_events.iter().map(|h| h.device_hostname.as_deref()),
        )
        .await?;
        let mut rows = Vec::with_capacity(batch.health_events.len());
        for (index, (report, (status, at))) in batch.health_events.iter().zip(&checked).enumerate() {
            use diesel::ExpressionMethods as _;
            let (kind, id) = match devices.resolve(index, report.device_hostname.as_deref())? {
                Some(device) => (HealthSourceKind::Device, device),
                None => (HealthSourceKind::EdgeComponent, reporter.id),
            };
            rows.push((
                health_events::source_kind.eq(kind.as_str()),
                health_events::source_id.eq(id),
                health_events::status.eq(status.as_str()),
                health_events::message.eq(report.message.as_str()),
                health_events::occurred_at.eq(*at),
            ));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(diesel::insert_into(health_events::table)
            .values(rows)
            .execute(conn)
            .await?)
    })
    .await?;
    Ok(Json(json!({ "ok": true, "created": created })))
}
