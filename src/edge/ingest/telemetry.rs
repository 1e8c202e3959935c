//! `POST /edge/v1/metrics` and `/logs`: telemetry, up to [`MAX_POINTS`] records per batch.
//!
//! Each kind of record is written with ONE statement, whatever the batch size: its columns
//! are bound as arrays and expanded by `unnest` (`INSERT … SELECT * FROM unnest($1, $2, …)`),
//! so a batch of 10,000 points costs a handful of binds and one plan instead of 10,000
//! rows of placeholders. Points whose key is already stored (`cpu`, `memory`, `disk`: a
//! device, a time and a core or mount) are skipped, so a component may resend a batch it
//! is unsure about; named series and logs have no natural key and are stored as sent.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use chrono::{DateTime, Utc};
use diesel::sql_types::{
    Array, BigInt, Double, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    Body, DeviceNames, IngestError, MAX_POINTS, check_batch, check_text, in_tenant, rfc3339,
    rfc3339_optional, source,
};
use crate::app::App;
use crate::edge::listener::EdgeIdentity;

/// CPU usage of one core (`core` -1: the whole device).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CpuPoint {
    pub device_hostname: String,
    #[serde(deserialize_with = "rfc3339")]
    pub ts: DateTime<Utc>,
    #[serde(default = "whole_device")]
    pub core: i32,
    /// 0 to 100.
    pub usage_percent: f64,
}

fn whole_device() -> i32 {
    -1
}

/// Memory use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemoryPoint {
    pub device_hostname: String,
    #[serde(deserialize_with = "rfc3339")]
    pub ts: DateTime<Utc>,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// Use of one mounted file system.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiskPoint {
    pub device_hostname: String,
    #[serde(deserialize_with = "rfc3339")]
    pub ts: DateTime<Utc>,
    pub mount: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// A point of a named series.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeriesPoint {
    pub device_hostname: String,
    /// 1 to 200 characters, e.g. `if_in_octets`.
    pub name: String,
    #[serde(deserialize_with = "rfc3339")]
    pub ts: DateTime<Utc>,
    pub value: f64,
    #[serde(default)]
    pub labels: serde_json::Map<String, serde_json::Value>,
}

/// `POST /edge/v1/metrics` body: any of the four lists, [`MAX_POINTS`] points in all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    #[serde(default)]
    pub cpu: Vec<CpuPoint>,
    #[serde(default)]
    pub memory: Vec<MemoryPoint>,
    #[serde(default)]
    pub disk: Vec<DiskPoint>,
    #[serde(default)]
    pub series: Vec<SeriesPoint>,
}

/// A byte count that fits PostgreSQL's `bigint`.
fn bytes(index: usize, value: u64) -> Result<i64, IngestError> {
    i64::try_from(value).map_err(|_| IngestError::bad(Some(index), "byte counts must be below 2^63"))
}

/// The device ids of a list, or the first record whose hostname names no device.
fn device_ids<'a>(
    devices: &DeviceNames,
    hostnames: impl Iterator<Item = &'a str>,
) -> Result<Vec<Uuid>, IngestError> {
    hostnames
        .enumerate()
        .map(|(index, hostname)| {
            devices
                .resolve(index, Some(hostname))
                .map(|id| id.unwrap_or_default())
        })
        .collect()
}

pub(super) async fn metrics(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<Metrics>,
) -> Result<Json<serde_json::Value>, IngestError> {
    let points = batch.cpu.len() + batch.memory.len() + batch.disk.len() + batch.series.len();
    check_batch(points, MAX_POINTS)?;
    for (index, point) in batch.cpu.iter().enumerate() {
        if !(0.0..=100.0).contains(&point.usage_percent) || point.core < -1 {
            return Err(IngestError::bad(
                Some(index),
                "usagePercent must be between 0 and 100 and core at least -1",
            )
            .in_list("cpu"));
        }
    }
    let memory_bytes = batch
        .memory
        .iter()
        .enumerate()
        .map(|(i, p)| Ok((bytes(i, p.used_bytes)?, bytes(i, p.total_bytes)?)))
        .collect::<Result<Vec<_>, IngestError>>()
        .map_err(|e| e.in_list("memory"))?;
    let mut disk_bytes = Vec::with_capacity(batch.disk.len());
    for (index, point) in batch.disk.iter().enumerate() {
        check_text(index, "mount", &point.mount, 500).map_err(|e| e.in_list("disk"))?;
        disk_bytes.push((
            bytes(index, point.used_bytes).map_err(|e| e.in_list("disk"))?,
            bytes(index, point.total_bytes).map_err(|e| e.in_list("disk"))?,
        ));
    }
    for (index, point) in batch.series.iter().enumerate() {
        check_text(index, "name", &point.name, 200).map_err(|e| e.in_list("series"))?;
    }
    let written = in_tenant(&app, &identity, async |conn, _reporter| {
        let hostnames = batch
            .cpu
            .iter()
            .map(|p| p.device_hostname.as_str())
            .chain(batch.memory.iter().map(|p| p.device_hostname.as_str()))
            .chain(batch.disk.iter().map(|p| p.device_hostname.as_str()))
            .chain(batch.series.iter().map(|p| p.device_hostname.as_str()));
        let devices = DeviceNames::load(conn, hostnames.map(Some)).await?;
        let mut written = 0;
        if !batch.cpu.is_empty() {
            let ids = device_ids(&devices, batch.cpu.iter().map(|p| p.device_hostname.as_str()))
                .map_err(|e| e.in_list("cpu"))?;
            let query = diesel::sql_query(
                "INSERT INTO cpu_metrics (device_id, ts, core, usage_percent) \
                 SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int4[], $4::float8[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Timestamptz>, _>(batch.cpu.iter().map(|p| p.ts).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(batch.cpu.iter().map(|p| p.core).collect::<Vec<_>>())
            .bind::<Array<Double>, _>(batch.cpu.iter().map(|p| p.usage_percent).collect::<Vec<_>>());
            written += query.execute(conn).await?;
        }
        if !batch.memory.is_empty() {
            let ids = device_ids(&devices, batch.memory.iter().map(|p| p.device_hostname.as_str()))
                .map_err(|e| e.in_list("memory"))?;
            let query = diesel::sql_query(
                "INSERT INTO memory_metrics (device_id, ts, used_bytes, total_bytes) \
                 SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int8[], $4::int8[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Timestamptz>, _>(batch.memory.iter().map(|p| p.ts).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(memory_bytes.iter().map(|b| b.0).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(memory_bytes.iter().map(|b| b.1).collect::<Vec<_>>());
            written += query.execute(conn).await?;
        }
        if !batch.disk.is_empty() {
            let ids = device_ids(&devices, batch.disk.iter().map(|p| p.device_hostname.as_str()))
                .map_err(|e| e.in_list("disk"))?;
            let query = diesel::sql_query(
                "INSERT INTO disk_metrics (device_id, ts, mount, used_bytes, total_bytes) \
                 SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::int8[], $5::int8[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Timestamptz>, _>(batch.disk.iter().map(|p| p.ts).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(batch.disk.iter().map(|p| p.mount.trim()).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(disk_bytes.iter().map(|b| b.0).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(disk_bytes.iter().map(|b| b.1).collect::<Vec<_>>());
            written += query.execute(conn).await?;
        }
        if !batch.series.is_empty() {
            let ids = device_ids(&devices, batch.series.iter().map(|p| p.device_hostname.as_str()))
                .map_err(|e| e.in_list("series"))?;
            let query = diesel::sql_query(
                "INSERT INTO timeseries_metrics (device_id, name, ts, value, labels) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::float8[], $5::jsonb[])",
            )
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<Text>, _>(batch.series.iter().map(|p| p.name.trim()).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(batch.series.iter().map(|p| p.ts).collect::<Vec<_>>())
            .bind::<Array<Double>, _>(batch.series.iter().map(|p| p.value).collect::<Vec<_>>())
            .bind::<Array<Jsonb>, _>(
                batch
                    .series
                    .iter()
                    .map(|p| serde_json::Value::Object(p.labels.clone()))
                    .collect::<Vec<_>>(),
            );
            written += query.execute(conn).await?;
        }
        Ok(written)
    })
    .await?;
    Ok(Json(
        json!({ "ok": true, "received": points, "written": written }),
    ))
}

/// The severities of a log line.
const LOG_SEVERITIES: &[&str] = &["trace", "debug", "info", "warn", "error", "fatal"];

/// One log line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogRecord {
    /// 1 to 65,536 characters.
    pub message: String,
    /// `trace`, `debug`, `info` (default), `warn`, `error` or `fatal`.
    #[serde(default)]
    pub severity: Option<String>,
    /// Default: now.
    #[serde(default, deserialize_with = "rfc3339_optional")]
    pub ts: Option<DateTime<Utc>>,
    /// Where the line comes from (default: the reporting component).
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Hostname of the device the line is about.
    #[serde(default)]
    pub device_hostname: Option<String>,
}

/// `POST /edge/v1/logs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    pub logs: Vec<LogRecord>,
}

pub(super) async fn logs(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<Logs>,
) -> Result<Json<serde_json::Value>, IngestError> {
    check_batch(batch.logs.len(), MAX_POINTS)?;
    let default_source = source(&identity);
    let now = Utc::now();
    let mut severities = Vec::with_capacity(batch.logs.len());
    let mut sources = Vec::with_capacity(batch.logs.len());
    for (index, line) in batch.logs.iter().enumerate() {
        check_text(index, "message", &line.message, 65_536)?;
        let severity = line.severity.as_deref().unwrap_or("info");
        if !LOG_SEVERITIES.contains(&severity) {
            return Err(IngestError::bad(
                Some(index),
                "severity must be trace, debug, info, warn, error or fatal",
            ));
        }
        severities.push(severity);
        sources.push(match line.source.as_deref() {
            Some(source) => check_text(index, "source", source, 200)?,
            None => default_source.as_str(),
        });
    }
    let written = in_tenant(&app, &identity, async |conn, _reporter| {
        let devices = DeviceNames::load(conn, batch.logs.iter().map(|l| l.device_hostname.as_deref())).await?;
        let ids = batch
            .logs
            .iter()
            .enumerate()
            .map(|(index, line)| devices.resolve(index, line.device_hostname.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let query = diesel::sql_query(
            "INSERT INTO logs (device_id, ts, severity, source, message, attributes) \
             SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::jsonb[])",
        )
        .bind::<Array<Nullable<SqlUuid>>, _>(ids)
        .bind::<Array<Timestamptz>, _>(batch.logs.iter().map(|l| l.ts.unwrap_or(now)).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(&severities)
        .bind::<Array<Text>, _>(&sources)
        .bind::<Array<Text>, _>(batch.logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(
            batch
                .logs
                .iter()
                .map(|l| serde_json::Value::Object(l.attributes.clone()))
                .collect::<Vec<_>>(),
        );
        Ok(query.execute(conn).await?)
    })
    .await?;
    Ok(Json(json!({ "ok": true, "written": written })))
}
