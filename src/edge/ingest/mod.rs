//! The JSON endpoints of the edge listener, under `/edge/v1/`. The caller is the
//! [`EdgeIdentity`] of its verified certificate (see `edge::listener`); its tenant comes
//! from there and nowhere else.
//!
//! - `heartbeat` (here), `renew` (`renew`): the component itself;
//! - `devices` (`devices`): discovered devices, merged per identifier;
//! - `alerts`, `events`, `health-events` (`signals`): at most [`MAX_BATCH`] records;
//! - `metrics`, `logs` (`telemetry`): at most [`MAX_POINTS`] records, a few statements;
//! - `poll-jobs` (`poll`): pollers lease the tenant's poll jobs and post their results.
//!
//! Each request is ONE tenant transaction: it first checks that the certificate is a known,
//! unrevoked component of the tenant (and records that it was seen), then writes the
//! whole batch or nothing. Records name devices by hostname; a batch resolves all its
//! hostnames in one statement. Errors are JSON `{"error": {"code", "message", "list"?,
//! "index"?}}` with `code` ∈ `BAD_REQUEST` (with the failing record's `index`, and for
//! metrics its `list`), `PAYLOAD_TOO_LARGE`, `REVOKED` (which also closes the connection),
//! `TENANT_UNAVAILABLE` (suspended), `FORBIDDEN` (a component kind that may not call the
//! endpoint), `NOT_LEASED` (a poll result for a job the caller does not hold),
//! `UNAVAILABLE`, `INTERNAL`; messages never carry SQL.
//! Refusals are counted in `/metrics` (`enclave_edge_refusals_total`).

mod devices;
pub mod poll;
mod renew;
mod signals;
mod telemetry;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
use crate::schema::tenant::{devices as device_table, edge_components, onboarding_packages};
use crate::tenancy::transaction::{Access, TxError};

/// Largest request body, except for telemetry.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest body of `metrics` and `logs`.
pub const MAX_TELEMETRY_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Most records in one batch, except for telemetry.
pub const MAX_BATCH: usize = 1000;
/// Most metric points or log lines in one batch.
pub const MAX_POINTS: usize = 10_000;

/// The edge router (state: the app; each connection adds its `EdgeIdentity`).
pub fn router(app: Arc<App>) -> Router {
    let telemetry = Router::new()
        .route("/edge/v1/metrics", post(telemetry::metrics))
        .route("/edge/v1/logs", post(telemetry::logs))
        .layer(DefaultBodyLimit::max(MAX_TELEMETRY_BODY_BYTES));
    Router::new()
        .route("/edge/v1/heartbeat", post(heartbeat))
        .route("/edge/v1/renew", post(renew::renew))
        .route("/edge/v1/devices", post(devices::batch))
        .route("/edge/v1/alerts", post(signals::alerts))
        .route("/edge/v1/events", post(signals::events))
        .route("/edge/v1/health-events", post(signals::health_events))
        .route("/edge/v1/poll-jobs", get(poll::lease))
        .route("/edge/v1/poll-jobs/{id}/result", post(poll::result))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(telemetry)
        .with_state(app)
}

/// A refused or failed edge request.
#[derive(Debug)]
pub struct IngestError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The list of the body the failing record is in, when the body has several.
    list: Option<&'static str>,
    index: Option<usize>,
}

impl IngestError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            list: None,
            index: None,
        }
    }

    /// A bad request, about record `index` when given.
    fn bad(index: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            index,
            ..Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
        }
    }

    /// An error on our side: logged with a request id, which is all the caller sees.
    fn internal(error: impl std::fmt::Display) -> Self {
        let request_id = Uuid::new_v4();
        tracing::error!(%request_id, %error, "edge request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("internal error (request id {request_id})"),
        )
    }

    /// The same error, about a record of the body's list `list`.
    fn in_list(self, list: &'static str) -> Self {
        Self {
            list: Some(list),
            ..self
        }
    }
}

impl From<TxError> for IngestError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::PoolTimeout(_) | TxError::PlatformPoolTimeout | TxError::Connect(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the server is busy; retry later",
            ),
            other => Self::internal(other),
        }
    }
}

impl From<crate::edge::ca::EdgeError> for IngestError {
    fn from(error: crate::edge::ca::EdgeError) -> Self {
        use crate::edge::ca::EdgeError;
        match error {
            EdgeError::InvalidCsr => Self::bad(None, error.to_string()),
            EdgeError::Database(error) => error.into(),
            other => Self::internal(other),
        }
    }
}

impl From<diesel::result::Error> for IngestError {
    fn from(error: diesel::result::Error) -> Self {
        TxError::from(error).into()
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(list) = self.list {
            error["list"] = json!(list);
        }
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
    type Rejection = IngestError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(IngestError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!(
                    "the body is too large (at most {MAX_BODY_BYTES} bytes, \
                     {MAX_TELEMETRY_BODY_BYTES} for metrics and logs)"
                ),
            )),
            Err(rejection) => Err(IngestError::bad(None, rejection.body_text())),
        }
    }
}

/// The component whose certificate is calling, as `in_tenant` found it.
#[derive(Debug, Clone, Copy)]
struct Reporter {
    /// `edge_components.id` of the calling certificate.
    id: Uuid,
    /// Its onboarding package, if it still exists.
    package: Option<Uuid>,
}

/// Runs `work` in one tenant transaction of the caller's tenant, after checking its
/// certificate is an unrevoked component; commits only when `work` succeeds.
async fn in_tenant<T>(
    app: &App,
    identity: &EdgeIdentity,
    work: impl AsyncFnOnce(&mut AsyncPgConnection, Reporter) -> Result<T, IngestError>,
) -> Result<T, IngestError> {
    // The tenant as it is now (suspended since the connection was opened: refused).
    let tenant = app
        .directory
        .by_id(identity.tenant.id)
        .filter(|tenant| tenant.is_active())
        .ok_or_else(|| {
            IngestError::new(
                StatusCode::FORBIDDEN,
                "TENANT_UNAVAILABLE",
                "this tenant is unavailable",
            )
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
            return Err(IngestError::new(
                StatusCode::FORBIDDEN,
                "REVOKED",
                "this certificate is revoked or unknown",
            ));
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
                record_event(conn.pg(), package, "activated", "first connection").await?;
            }
        }
        work(
            conn.pg(),
            Reporter {
                id: component,
                package,
            },
        )
        .await
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

/// Refuses a batch of more than `max` records.
fn check_batch(records: usize, max: usize) -> Result<(), IngestError> {
    if records > max {
        return Err(IngestError::bad(None, format!("at most {max} records per batch")));
    }
    Ok(())
}

/// Where the records of a batch come from, for their `source` column:
/// `edge:<kind>/<component-id>`.
fn source(identity: &EdgeIdentity) -> String {
    format!("edge:{}/{}", identity.kind, identity.component_id)
}

/// The devices a batch names, by hostname, read in one statement.
struct DeviceNames(HashMap<String, Uuid>);

impl DeviceNames {
    /// Reads the ids of the tenant's devices with these hostnames (the lowest id when
    /// several devices share one).
    async fn load<'a>(
        conn: &mut AsyncPgConnection,
        hostnames: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<Self, IngestError> {
        let mut wanted: Vec<&str> = hostnames.into_iter().flatten().collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(Self(HashMap::new()));
        }
        let rows: Vec<(String, Uuid)> = device_table::table
            .filter(device_table::hostname.eq_any(&wanted))
            .select((device_table::hostname, device_table::id))
            .order((device_table::hostname, device_table::id.desc()))
            .load(conn)
            .await?;
        // Ordered by id descending per hostname: the last insert keeps the lowest id.
        Ok(Self(rows.into_iter().collect()))
    }

    /// The device of record `index`, or a bad request when its hostname names none.
    fn resolve(&self, index: usize, hostname: Option<&str>) -> Result<Option<Uuid>, IngestError> {
        hostname
            .map(|hostname| {
                self.0.get(hostname).copied().ok_or_else(|| {
                    IngestError::bad(Some(index), format!("no device has the hostname {hostname:?}"))
                })
            })
            .transpose()
    }
}

/// Deserializes an RFC 3339 time (`2026-11-30T12:00:00Z`).
fn rfc3339<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<chrono::DateTime<Utc>, D::Error> {
    let raw = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(deserializer)?;
    chrono::DateTime::parse_from_rfc3339(&raw)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| serde::de::Error::custom("not an RFC 3339 time"))
}

/// [`rfc3339`] for an optional field.
fn rfc3339_optional<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<chrono::DateTime<Utc>>, D::Error> {
    rfc3339(deserializer).map(Some)
}

/// A severity of an alert or event, checked.
fn check_severity(index: usize, severity: &str) -> Result<(), IngestError> {
    if crate::resolvers::enums::Severity::parse(severity).is_some() {
        Ok(())
    } else {
        Err(IngestError::bad(
            Some(index),
            "severity must be info, warning, minor, major or critical",
        ))
    }
}

/// Text of 1 to `max` characters (after trimming), or a bad request naming `field`.
fn check_text<'a>(index: usize, field: &str, value: &'a str, max: usize) -> Result<&'a str, IngestError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(IngestError::bad(
            Some(index),
            format!("{field} must have 1 to {max} characters"),
        ));
    }
    Ok(value)
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
) -> Result<Json<serde_json::Value>, IngestError> {
    in_tenant(&app, &identity, async |_conn, _reporter| Ok(())).await?;
    Ok(Json(json!({
        "ok": true,
        "tenant": identity.tenant.slug.as_str(),
        "componentId": identity.component_id,
        "kind": identity.kind.as_str(),
    })))
}
