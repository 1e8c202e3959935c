//! Health events: the `HealthEvent` object and the `healthEvents` list (read only).

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::resolvers::context::{app, scope};
use crate::resolvers::enums::{HealthSourceKind, HealthStatus};
use crate::resolvers::errors::ApiResult;
use crate::resolvers::ids;
use crate::resolvers::models::HealthEventRow;
use crate::resolvers::pagination::{Cursor, Window, fetch_page, keyset};
use crate::schema::tenant::health_events;

/// A health report of an agent, gateway, checker, device or edge component.
#[derive(Clone)]
pub struct HealthEvent(pub HealthEventRow);

impl From<HealthEventRow> for HealthEvent {
    fn from(row: HealthEventRow) -> Self {
        Self(row)
    }
}

/// A health report of an agent, gateway, checker, device or edge component.
#[Object]
impl HealthEvent {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("HealthEvent", self.0.id)
    }
    /// Kind of component reporting.
    async fn source_kind(&self) -> HealthSourceKind {
        HealthSourceKind::from_stored(&self.0.source_kind)
    }
    /// Global id of the component reporting.
    async fn source_id(&self) -> ID {
        let type_name = match HealthSourceKind::from_stored(&self.0.source_kind) {
            HealthSourceKind::Agent => "Agent",
            HealthSourceKind::Gateway => "Gateway",
            HealthSourceKind::Checker => "Checker",
            HealthSourceKind::Device => "Device",
            HealthSourceKind::EdgeComponent => "EdgeComponent",
        };
        ids::encode(type_name, self.0.source_id)
    }
    /// Reported health.
    async fn status(&self) -> HealthStatus {
        HealthStatus::from_stored(&self.0.status)
    }
    /// Details.
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// When it was reported.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
}

/// The root query fields of health events.
#[derive(Default)]
pub struct HealthEventQuery;

#[Object]
impl HealthEventQuery {
    /// Health events, newest first; optionally of one kind of component.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn health_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only health events of this kind of component.")] source_kind: Option<
            HealthSourceKind,
        >,
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
    ) -> ApiResult<Connection<Cursor, HealthEvent, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let mut query = health_events::table
            .select(HealthEventRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(kind) = source_kind {
            query = query.filter(health_events::source_kind.eq(kind.as_str()));
        }
        let query = keyset!(
            query,
            &window,
            health_events::occurred_at,
            health_events::id,
            crate::resolvers::monitoring::cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &HealthEventRow| crate::resolvers::monitoring::time_cursor(r.occurred_at, r.id),
            HealthEvent::from,
            EmptyFields
        )
    }
}
