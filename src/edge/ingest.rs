//! The JSON endpoints of the edge listener, under `/edge/v1/`: `heartbeat`, `devices`,
//! `alerts`, `events`. The caller is the [`EdgeIdentity`] of its verified certificate (see
//! `edge::listener`); its tenant comes from there and nowhere else.
//!
//! Each request is ONE tenant transaction: it first checks that the certificate is a known,
//! unrevoked component of the tenant (and records that it was seen), then writes the
//! whole batch or nothing. Errors are JSON `{"error": {"code", "message", "index"?}}` with
//! `code` ∈ `BAD_REQUEST` (with the failing record's `index`), `PAYLOAD_TOO_LARGE`,
//! `REVOKED` (which also closes the connection), `TENANT_UNAVAILABLE` (suspended),
//! `UNAVAILABLE`, `INTERNAL`; messages never
//! carry SQL. Refusals are counted in `/metrics` (`enclave_edge_refusals_total`).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::listener::EdgeIdentity;
use super::onboarding::record_event;
use crate::app::App;
use crate::schema::tenant::{alerts, devices, edge_components, events, onboarding_packages};
use crate::tenancy::transaction::{Access, TxError};

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most records in one batch.
pub const MAX_BATCH: usize = 1000;

/// The edge router (state: the app; each connection adds its `EdgeIdentity`).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/edge/v1/heartbeat", post(heartbeat))
        .route("/edge/v1/devices", post(devices_batch))
        .route("/edge/v1/alerts", post(alerts_batch))
        .route("/edge/v1/events", post(events_batch))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// A refused or failed edge request.
#[derive(Debug)]
pub struct EdgeError {
    status: StatusCode,
    code: &'static str,
    message: String,
    index: Option<usize>,
}

impl EdgeError {
    fn bad(index: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_REQUEST",
            message: message.into(),
            index,
        }
    }
}

impl From<TxError> for EdgeError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::PoolTimeout(_) | TxError::PlatformPoolTimeout => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "UNAVAILABLE",
                message: "the server is busy; retry later".to_owned(),
                index: None,
            },
            other => {
                let request_id = Uuid::new_v4();
                tracing::error!(%request_id, error = %other, "edge request failed");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "INTERNAL",
                    message: format!("internal error (request id {request_id})"),
                    index: None,
                }
            }
        }
    }
}

impl From<diesel::result::Error> for EdgeError {
    fn from(error: diesel::result::Error) -> Self {
        TxError::from(error).into()
    }
}

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(index) = self.index {
            error["index"] = json!(index);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.code == "REVOKED" {
            // A revoked certificate's open (keep-alive) connection ends with this answer.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// A JSON body, with a coded error instead of axum's plain-text rejection.
pub struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = EdgeError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(EdgeError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "PAYLOAD_TOO_LARGE",
                message: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                index: None,
            }),
            Err(rejection) => Err(EdgeError::bad(None, rejection.body_text())),
        }
    }
}

/// Runs `work` in one tenant transaction of the caller's tenant, after checking its
/// certificate is an unrevoked component; commits only when `work` succeeds.
async fn in_tenant<T>(
    app: &App,
    identity: &EdgeIdentity,
    work: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, EdgeError>,
) -> Result<T, EdgeError> {
    // The tenant as it is now (suspended since the connection was opened: refused).
    let tenant = app
        .directory
        .by_id(identity.tenant.id)
        .filter(|tenant| tenant.is_active())
        .ok_or_else(|| EdgeError {
            status: StatusCode::FORBIDDEN,
            code: "TENANT_UNAVAILABLE",
            message: "this tenant is unavailable".to_owned(),
            index: None,
        })?;
    let tx = app.tenant_tx(tenant, Access::ReadWrite, None);
    let outcome = async {
        let mut conn = tx.conn().await?;
        let component: Option<(Uuid, Option<chrono::DateTime<Utc>>, Option<Uuid>)> = edge_components::table
            .filter(edge_components::serial.eq(&identity.serial))
            .select((
                edge_components::id,
                edge_components::revoked_at,
                edge_components::onboarding_package_id,
            ))
            .for_update()
            .first(&mut conn)
            .await
            .optional()?;
        let Some((component, None, package)) = component else {
            app.requests
                .edge_revoked_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                tenant = %identity.tenant.slug,
                component = identity.component_id,
                reason = "revoked or unknown certificate",
                "edge request refused"
            );
            return Err(EdgeError {
                status: StatusCode::FORBIDDEN,
                code: "REVOKED",
                message: "this certificate is revoked or unknown".to_owned(),
                index: None,
            });
        };
        diesel::update(edge_components::table.find(component))
            .set(edge_components::last_seen.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await?;
        if let Some(package) = package {
            let activated = diesel::update(
                onboarding_packages::table
                    .find(package)
                    .filter(onboarding_packages::status.eq("delivered")),
            )
            .set((
                onboarding_packages::status.eq("activated"),
                onboarding_packages::activated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
            if activated > 0 {
                record_event(&mut conn, package, "activated", "first connection").await?;
            }
        }
        work(&mut conn).await
    }
    .await;
    match outcome {
        Ok(value) => {
            tx.finish(true).await?;
            Ok(value)
        }
        Err(error) => {
            let _ = tx.finish(false).await;
            Err(error)
        }
    }
}

fn check_batch<T>(items: &[T]) -> Result<(), EdgeError> {
    if items.len() > MAX_BATCH {
        return Err(EdgeError::bad(
            None,
            format!("at most {MAX_BATCH} records per batch"),
        ));
    }
    Ok(())
}

/// `POST /edge/v1/heartbeat` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Heartbeat {
    /// Free-form status of the component.
    #[serde(default)]
    pub status: Option<String>,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
}

async fn heartbeat(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(_beat): Body<Heartbeat>,
) -> Result<Json<serde_json::Value>, EdgeError> {
    in_tenant(&app, &identity, async |_conn| Ok(())).await?;
    Ok(Json(json!({
        "ok": true,
        "tenant": identity.tenant.slug.as_str(),
        "componentId": identity.component_id,
        "kind": identity.kind.as_str(),
    })))
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
}

/// `POST /edge/v1/devices` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    pub devices: Vec<DeviceRecord>,
}

async fn devices_batch(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<Devices>,
) -> Result<Json<serde_json::Value>, EdgeError> {
    check_batch(&batch.devices)?;
    let mut parsed = Vec::with_capacity(batch.devices.len());
    for (index, device) in batch.devices.iter().enumerate() {
        let hostname = device.hostname.trim();
        if hostname.is_empty() || hostname.len() > 255 {
            return Err(EdgeError::bad(
                Some(index),
                "hostname must have 1 to 255 characters",
            ));
        }
        let ip = match device.ip.as_deref() {
            None => None,
            Some(raw) => Some(
                raw.parse::<std::net::IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| EdgeError::bad(Some(index), "ip is not an IP address"))?,
            ),
        };
        parsed.push((hostname.to_owned(), ip, device));
    }
    let (created, updated) = in_tenant(&app, &identity, async |conn| {
        let (mut created, mut updated) = (0usize, 0usize);
        for (hostname, ip, device) in &parsed {
            let existing: Option<Uuid> = devices::table
                .filter(devices::hostname.eq(hostname))
                .select(devices::id)
                .order(devices::id)
                .for_update()
                .first(conn)
                .await
                .optional()?;
            match existing {
                Some(id) => {
                    diesel::update(devices::table.find(id))
                        .set((
                            devices::last_seen.eq(diesel::dsl::now),
                            devices::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(conn)
                        .await?;
                    if let Some(ip) = ip {
                        diesel::update(devices::table.find(id))
                            .set(devices::ip.eq(ip))
                            .execute(conn)
                            .await?;
                    }
                    updated += 1;
                }
                None => {
                    diesel::insert_into(devices::table)
                        .values((
                            devices::hostname.eq(hostname),
                            devices::ip.eq(ip),
                            devices::vendor.eq(&device.vendor),
                            devices::model.eq(&device.model),
                            devices::os.eq(&device.os),
                            devices::status.eq("up"),
                            devices::first_seen.eq(diesel::dsl::now),
                            devices::last_seen.eq(diesel::dsl::now),
                        ))
                        .execute(conn)
                        .await?;
                    created += 1;
                }
            }
        }
        Ok((created, updated))
    })
    .await?;
    Ok(Json(
        json!({ "ok": true, "created": created, "updated": updated }),
    ))
}

/// One alert.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertRecord {
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

const SEVERITIES: &[&str] = &["info", "warning", "minor", "major", "critical"];

async fn alerts_batch(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<Alerts>,
) -> Result<Json<serde_json::Value>, EdgeError> {
    check_batch(&batch.alerts)?;
    for (index, alert) in batch.alerts.iter().enumerate() {
        let title = alert.title.trim();
        if title.is_empty() || title.chars().count() > 500 {
            return Err(EdgeError::bad(Some(index), "title must have 1 to 500 characters"));
        }
        if !SEVERITIES.contains(&alert.severity.as_str()) {
            return Err(EdgeError::bad(
                Some(index),
                "severity must be info, warning, minor, major or critical",
            ));
        }
    }
    let source = format!("edge:{}/{}", identity.kind, identity.component_id);
    let created = in_tenant(&app, &identity, async |conn| {
        for (index, alert) in batch.alerts.iter().enumerate() {
            let device = match alert.device_hostname.as_deref() {
                None => None,
                Some(hostname) => Some(
                    devices::table
                        .filter(devices::hostname.eq(hostname))
                        .select(devices::id)
                        .order(devices::id)
                        .first::<Uuid>(conn)
                        .await
                        .optional()?
                        .ok_or_else(|| EdgeError::bad(Some(index), "no device has this hostname"))?,
                ),
            };
            diesel::insert_into(alerts::table)
                .values((
                    alerts::title.eq(alert.title.trim()),
                    alerts::severity.eq(&alert.severity),
                    alerts::message.eq(&alert.message),
                    alerts::source.eq(&source),
                    alerts::device_id.eq(device),
                ))
                .execute(conn)
                .await?;
        }
        Ok(batch.alerts.len())
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

async fn events_batch(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(batch): Body<Events>,
) -> Result<Json<serde_json::Value>, EdgeError> {
    check_batch(&batch.events)?;
    let mut times = Vec::with_capacity(batch.events.len());
    for (index, event) in batch.events.iter().enumerate() {
        times.push(match event.occurred_at.as_deref() {
            None => Utc::now(),
            Some(raw) => chrono::DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| EdgeError::bad(Some(index), "occurredAt is not an RFC 3339 time"))?,
        });
        let kind = event.kind.trim();
        if kind.is_empty() || kind.chars().count() > 200 {
            return Err(EdgeError::bad(Some(index), "kind must have 1 to 200 characters"));
        }
        if event
            .severity
            .as_deref()
            .is_some_and(|severity| !SEVERITIES.contains(&severity))
        {
            return Err(EdgeError::bad(
                Some(index),
                "severity must be info, warning, minor, major or critical",
            ));
        }
    }
    let source = format!("edge:{}/{}", identity.kind, identity.component_id);
    let created = in_tenant(&app, &identity, async |conn| {
        for (index, event) in batch.events.iter().enumerate() {
            let device = match event.device_hostname.as_deref() {
                None => None,
                Some(hostname) => Some(
                    devices::table
                        .filter(devices::hostname.eq(hostname))
                        .select(devices::id)
                        .order(devices::id)
                        .first::<Uuid>(conn)
                        .await
                        .optional()?
                        .ok_or_else(|| EdgeError::bad(Some(index), "no device has this hostname"))?,
                ),
            };
            diesel::insert_into(events::table)
                .values((
                    events::kind.eq(event.kind.trim()),
                    events::severity.eq(event.severity.as_deref().unwrap_or("info")),
                    events::message.eq(&event.message),
                    events::source.eq(&source),
                    events::data.eq(event.data.clone().unwrap_or_else(|| json!({}))),
                    events::occurred_at.eq(times[index]),
                    events::device_id.eq(device),
                ))
                .execute(conn)
                .await?;
        }
        Ok(batch.events.len())
    })
    .await?;
    Ok(Json(json!({ "ok": true, "created": created })))
}
