//! Monitoring: alerts (with acknowledge and resolve) and events, newest first.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::context::{actor, app, loaders, scope};
use super::enums::{AlertStatus, Severity};
use super::errors::{ApiError, ApiResult, Code};
use super::ids;
use super::inventory::Device;
use super::models::{AlertRow, EventRow};
use super::pagination::{Cursor, Window, fetch_page, keyset};
use crate::auth::token::Credential;
use crate::schema::tenant::{alerts, events};
use crate::tenancy::transaction::TxConn;

pub fn time_cursor(at: DateTime<Utc>, id: Uuid) -> Cursor {
    Cursor {
        key: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        id,
    }
}

pub fn cursor_time(cursor: &Cursor) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&cursor.key)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_input("invalid cursor"))
}

/// Something that went wrong and needs attention.
#[derive(Clone)]
pub struct Alert(pub AlertRow);

/// Something that went wrong and needs attention.
#[Object]
impl Alert {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Alert", self.0.id)
    }
    /// How bad it is.
    async fn severity(&self) -> Severity {
        Severity::from_stored(&self.0.severity)
    }
    /// Where it is in its life.
    async fn status(&self) -> AlertStatus {
        AlertStatus::from_stored(&self.0.status)
    }
    /// What raised it (a checker, an integration...).
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// One-line summary.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Details.
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// When it was raised.
    async fn triggered_at(&self) -> DateTime<Utc> {
        self.0.triggered_at
    }
    /// When someone took it.
    async fn acknowledged_at(&self) -> Option<DateTime<Utc>> {
        self.0.acknowledged_at
    }
    /// When it ended.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// The device concerned, if any.
    async fn device(&self, ctx: &Context<'_>) -> ApiResult<Option<Device>> {
        match self.0.device_id {
            Some(id) => Ok(loaders(ctx)?.device(id).await?.map(Device)),
            None => Ok(None),
        }
    }
}

/// Something that happened: a state change, a log-worthy occurrence.
#[derive(Clone)]
pub struct Event(pub EventRow);

/// Something that happened: a state change, a log-worthy occurrence.
#[Object]
impl Event {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Event", self.0.id)
    }
    /// What kind of event (`link_down`, `config_changed`...).
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// How bad it is.
    async fn severity(&self) -> Severity {
        Severity::from_stored(&self.0.severity)
    }
    /// What reported it.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// Human-readable description.
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// Structured details.
    async fn data(&self) -> Json<serde_json::Value> {
        Json(self.0.data.clone())
    }
    /// When it happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// The device concerned, if any.
    async fn device(&self, ctx: &Context<'_>) -> ApiResult<Option<Device>> {
        match self.0.device_id {
            Some(id) => Ok(loaders(ctx)?.device(id).await?.map(Device)),
            None => Ok(None),
        }
    }
}

/// Which alerts to list.
#[derive(InputObject, Default)]
pub struct AlertFilter {
    /// Only alerts in one of these states.
    pub status: Option<Vec<AlertStatus>>,
    /// Only alerts of one of these severities.
    pub severity: Option<Vec<Severity>>,
    /// Only alerts of this device.
    pub device_id: Option<ID>,
}

/// Which events to list.
#[derive(InputObject, Default)]
pub struct EventFilter {
    /// Only events at or after this time (RFC 3339, e.g. `2027-01-31T00:00:00Z`).
    pub from: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339, e.g. `2027-01-31T00:00:00Z`).
    pub to: Option<DateTime<Utc>>,
    /// Only events of one of these severities.
    pub severity: Option<Vec<Severity>>,
    /// Only events of this device.
    pub device_id: Option<ID>,
}

/// Input of `acknowledgeAlert` and `resolveAlert`.
#[derive(InputObject)]
pub struct AlertActionInput {
    /// The alert.
    pub id: ID,
}

/// An alert after a mutation.
#[derive(SimpleObject)]
pub struct AlertPayload {
    /// The alert as it is now.
    pub alert: Alert,
}

#[derive(Default)]
pub struct MonitoringQuery;

#[Object]
impl MonitoringQuery {
    /// Alerts, newest first.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which items to list; all when absent.")] filter: Option<AlertFilter>,
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
    ) -> ApiResult<Connection<Cursor, Alert, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let filter = filter.unwrap_or_default();
        let device = filter
            .device_id
            .as_ref()
            .map(|id| ids::decode("Device", id))
            .transpose()?;
        let mut query = alerts::table
            .select(AlertRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(status) = filter.status {
            query = query.filter(
                alerts::status.eq_any(status.into_iter().map(AlertStatus::as_str).collect::<Vec<_>>()),
            );
        }
        if let Some(severity) = filter.severity {
            query = query.filter(
                alerts::severity.eq_any(severity.into_iter().map(Severity::as_str).collect::<Vec<_>>()),
            );
        }
        if let Some(device) = device {
            query = query.filter(alerts::device_id.eq(device));
        }
        query = keyset!(
            query,
            &window,
            alerts::triggered_at,
            alerts::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |a: &AlertRow| time_cursor(a.triggered_at, a.id),
            Alert,
            EmptyFields
        )
    }

    /// Events, newest first, optionally within a time range.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which items to list; all when absent.")] filter: Option<EventFilter>,
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
    ) -> ApiResult<Connection<Cursor, Event, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let filter = filter.unwrap_or_default();
        let device = filter
            .device_id
            .as_ref()
            .map(|id| ids::decode("Device", id))
            .transpose()?;
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(ApiError::bad_input("from must not be after to"));
        }
        let mut query = events::table
            .select(EventRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(from) = filter.from {
            query = query.filter(events::occurred_at.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(events::occurred_at.lt(to));
        }
        if let Some(severity) = filter.severity {
            query = query.filter(
                events::severity.eq_any(severity.into_iter().map(Severity::as_str).collect::<Vec<_>>()),
            );
        }
        if let Some(device) = device {
            query = query.filter(events::device_id.eq(device));
        }
        query = keyset!(
            query,
            &window,
            events::occurred_at,
            events::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |e: &EventRow| time_cursor(e.occurred_at, e.id),
            Event,
            EmptyFields
        )
    }
}

#[derive(Default)]
pub struct MonitoringMutation;

#[Object]
impl MonitoringMutation {
    /// Takes an open alert: someone is on it.
    async fn acknowledge_alert(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: AlertActionInput,
    ) -> ApiResult<AlertPayload> {
        let id = ids::decode("Alert", &input.id)?;
        let actor = actor(ctx)?;
        // An impersonating platform admin is no user of this tenant.
        let by = match actor.claims.credential {
            Credential::Impersonation(_) => None,
            _ => Some(actor.claims.user_id),
        };
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::update(
            alerts::table
                .find(id)
                .filter(alerts::status.eq(AlertStatus::Open.as_str())),
        )
        .set((
            alerts::status.eq(AlertStatus::Acknowledged.as_str()),
            alerts::acknowledged_at.eq(diesel::dsl::now),
            alerts::acknowledged_by.eq(by),
            alerts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(AlertRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?;
        match row {
            Some(row) => Ok(AlertPayload { alert: Alert(row) }),
            None => Err(alert_not_in(&mut conn, id, "open").await),
        }
    }

    /// Ends an alert that is open or acknowledged.
    async fn resolve_alert(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: AlertActionInput,
    ) -> ApiResult<AlertPayload> {
        let id = ids::decode("Alert", &input.id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::update(
            alerts::table
                .find(id)
                .filter(alerts::status.ne(AlertStatus::Resolved.as_str())),
        )
        .set((
            alerts::status.eq(AlertStatus::Resolved.as_str()),
            alerts::resolved_at.eq(diesel::dsl::now),
            alerts::updated_at.eq(diesel::dsl::now),
        ))
        .returning(AlertRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?;
        match row {
            Some(row) => Ok(AlertPayload { alert: Alert(row) }),
            None => Err(alert_not_in(&mut conn, id, "open or acknowledged").await),
        }
    }
}

/// NOT_FOUND for a missing alert, CONFLICT for one in the wrong state.
async fn alert_not_in(conn: &mut TxConn<'_>, id: Uuid, wanted: &str) -> ApiError {
    let exists = alerts::table
        .find(id)
        .select(alerts::id)
        .first::<Uuid>(conn)
        .await
        .optional();
    match exists {
        Ok(Some(_)) => ApiError::new(Code::Conflict, format!("the alert is not {wanted}")),
        Ok(None) => ApiError::not_found("no such alert"),
        Err(error) => error.into(),
    }
}
