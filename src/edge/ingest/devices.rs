//! `POST /edge/v1/devices`: devices a component discovered, upserted with their
//! identifiers.
//!
//! A device's identity is its identifiers (serial, MAC, …): a record is matched to the
//! devices that own any of its identifiers; if it names none, to the device with its
//! hostname; if there is none, a device is created. When a record's identifiers belong to
//! several devices, they were duplicates: the others are merged into the oldest exactly as
//! `mergeDevices` does (`crate::device_merge`, audited in `merge_audits` with no user).
//! The record's hostname and the fields it carries then update that device, and its
//! identifiers are added to it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use diesel::prelude::*;
use diesel::sql_types::{Array, Inet, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{Body, IngestError, MAX_BATCH, check_batch, check_text, in_tenant, source};
use crate::app::App;
use crate::edge::listener::EdgeIdentity;
use crate::resolvers::enums::IdentifierKind;
use crate::schema::tenant::devices;

/// Most identifiers on one record.
const MAX_IDENTIFIERS: usize = 32;

/// One identifier of a discovered device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierRecord {
    /// `serial`, `mac`, `ip`, `hostname`, `agent_id`, `snmp_engine_id` or `cloud_id`.
    pub kind: String,
    /// 1 to 512 characters.
    pub value: String,
}

/// One discovered device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceRecord {
    pub hostname: String,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub identifiers: Vec<IdentifierRecord>,
}

/// `POST /edge/v1/devices` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    pub devices: Vec<DeviceRecord>,
}

/// A record, checked.
struct Discovered<'a> {
    hostname: &'a str,
    ip: Option<ipnet::IpNet>,
    record: &'a DeviceRecord,
    kinds: Vec<&'static str>,
    values: Vec<String>,
}

fn check(index: usize, record: &DeviceRecord) -> Result<Discovered<'_>, IngestError> {
    let hostname = check_text(index, "hostname", &record.hostname, 255)?;
    let ip = record
        .ip
        .as_deref()
        .map(|raw| {
            raw.parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| IngestError::bad(Some(index), "ip is not an IP address"))
        })
        .transpose()?;
    if record.identifiers.len() > MAX_IDENTIFIERS {
        return Err(IngestError::bad(
            Some(index),
            format!("at most {MAX_IDENTIFIERS} identifiers per device"),
        ));
    }
    let mut kinds = Vec::with_capacity(record.identifiers.len());
    let mut values = Vec::with_capacity(record.identifiers.len());
    for identifier in &record.identifiers {
        let kind = IdentifierKind::parse(&identifier.kind).ok_or_else(|| {
            IngestError::bad(
                Some(index),
                "identifier kind must be serial, mac, ip, hostname, agent_id, snmp_engine_id or cloud_id",
            )
        })?;
        let value = check_text(index, "identifier value", &identifier.value, 512)?;
        kinds.push(kind.as_str());
        values.push(value.to_owned());
    }
    Ok(Discovered {
        hostname,
        ip,
        record,
        kinds,
        values,
    })
}

/// The devices owning any of the given identifiers, oldest first.
const MATCH_SQL: &str = "
SELECT d.id, d.created_at FROM devices d
WHERE d.id IN (
  SELECT i.device_id FROM device_identifiers i
  JOIN unnest($1::text[], $2::text[]) AS wanted(kind, value)
    ON i.kind = wanted.kind AND i.value = wanted.value)
ORDER BY d.created_at, d.id
FOR UPDATE";

/// Refreshes a matched device: its hostname and the fields the record carries (absent
/// ones stay as they are).
const UPDATE_SQL: &str = "
UPDATE devices SET hostname = $2, last_seen = now(), updated_at = now(),
  ip = COALESCE($3, ip), vendor = COALESCE($4, vendor), model = COALESCE($5, model),
  os = COALESCE($6, os)
WHERE id = $1";

/// Adds identifiers to a device; those it has already are skipped.
const ADD_IDENTIFIERS_SQL: &str = "
INSERT INTO device_identifiers (device_id, kind, value, source)
SELECT $1, kind, value, $4 FROM unnest($2::text[], $3::text[]) AS added(kind, value)
ON CONFLICT (kind, value) DO NOTHING";

#[derive(QueryableByName)]
struct Matched {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    #[allow(dead_code)]
    created_at: chrono::DateTime<chrono::Utc>,
}

/// How a batch changed the inventory.
#[derive(Default)]
struct Outcome {
    created: usize,
    updated: usize,
    merged: usize,
}

pub(super) async fn batch(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<Devices>,
) -> Result<Json<serde_json::Value>, IngestError> {
    check_batch(batch.devices.len(), MAX_BATCH)?;
    let discovered = batch
        .devices
        .iter()
        .enumerate()
        .map(|(index, record)| check(index, record))
        .collect::<Result<Vec<_>, _>>()?;
    let source = source(&identity);
    let outcome = in_tenant(&app, &identity, async |conn, _reporter| {
        let mut outcome = Outcome::default();
        for device in &discovered {
            upsert(conn, device, &source, &mut outcome).await?;
        }
        Ok(outcome)
    })
    .await?;
    Ok(Json(json!({
        "ok": true,
        "created": outcome.created,
        "updated": outcome.updated,
        "merged": outcome.merged,
    })))
}

/// Upserts one device (see the module doc).
async fn upsert(
    conn: &mut AsyncPgConnection,
    device: &Discovered<'_>,
    source: &str,
    outcome: &mut Outcome,
) -> Result<(), IngestError> {
    let matched: Vec<Matched> = if device.kinds.is_empty() {
        Vec::new()
    } else {
        diesel::sql_query(MATCH_SQL)
            .bind::<Array<Text>, _>(&device.kinds)
            .bind::<Array<Text>, _>(&device.values)
            .load(conn)
            .await?
    };
    let primary = match matched.split_first() {
        Some((primary, duplicates)) => {
            for duplicate in duplicates {
                crate::device_merge::merge(
                    conn,
                    primary.id,
                    duplicate.id,
                    None,
                    &format!("{source} reported identifiers of both devices"),
                )
                .await?;
                outcome.merged += 1;
            }
            Some(primary.id)
        }
        None => devices::table
            .filter(devices::hostname.eq(device.hostname))
            .select(devices::id)
            .order(devices::id)
            .for_update()
            .first::<Uuid>(conn)
            .await
            .optional()?,
    };
    let record = device.record;
    let id = match primary {
        Some(id) => {
            diesel::sql_query(UPDATE_SQL)
                .bind::<SqlUuid, _>(id)
                .bind::<Text, _>(device.hostname)
                .bind::<Nullable<Inet>, _>(device.ip)
                .bind::<Nullable<Text>, _>(&record.vendor)
                .bind::<Nullable<Text>, _>(&record.model)
                .bind::<Nullable<Text>, _>(&record.os)
                .execute(conn)
                .await?;
            outcome.updated += 1;
            id
        }
        None => {
            outcome.created += 1;
            diesel::insert_into(devices::table)
                .values((
                    devices::hostname.eq(device.hostname),
                    devices::ip.eq(device.ip),
                    devices::vendor.eq(&record.vendor),
                    devices::model.eq(&record.model),
                    devices::os.eq(&record.os),
                    devices::status.eq("up"),
                    devices::first_seen.eq(diesel::dsl::now),
                    devices::last_seen.eq(diesel::dsl::now),
                ))
                .returning(devices::id)
                .get_result(conn)
                .await?
        }
    };
    if !device.kinds.is_empty() {
        diesel::sql_query(ADD_IDENTIFIERS_SQL)
            .bind::<SqlUuid, _>(id)
            .bind::<Array<Text>, _>(&device.kinds)
            .bind::<Array<Text>, _>(&device.values)
            .bind::<Text, _>(source)
            .execute(conn)
            .await?;
    }
    Ok(())
}
