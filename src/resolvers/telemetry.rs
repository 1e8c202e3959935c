//! Process samples and OpenTelemetry data: `processMetrics`, `otelMetrics`,
//! `traceSummaries` (Relay connections, newest first, filtered by their natural keys and
//! time) and `traceSpans` (the spans of one trace, bounded).
//!
//! Their cursors carry the row's time and a tie-breaker (`<RFC 3339>#<tail>`), see
//! [`time_tail_cursor`]; logs use the same.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::context::{app, scope};
use super::errors::{ApiError, ApiResult};
use super::ids;
use super::models::{OtelMetricRow, ProcessRow, SpanRow, TraceSummaryRow};
use super::pagination::{Cursor, Direction, Window, fetch_page};
use crate::schema::tenant::{otel_metrics, otel_trace_summaries, otel_traces, process_metrics};

/// Most spans `traceSpans` returns.
pub const MAX_SPANS: i32 = 1000;

/// A cursor for a list ordered by (time, tail) — the tail breaks ties (a numeric id, a
/// pid, a trace id).
pub fn time_tail_cursor(time: DateTime<Utc>, tail: impl std::fmt::Display) -> Cursor {
    Cursor {
        key: format!(
            "{}#{tail}",
            time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ),
        id: Uuid::nil(),
    }
}

/// The (time, tail) of a [`time_tail_cursor`].
pub fn time_tail_position<T: std::str::FromStr>(cursor: &Cursor) -> ApiResult<(DateTime<Utc>, T)> {
    let invalid = || ApiError::bad_input("invalid cursor");
    let (time, tail) = cursor.key.split_once('#').ok_or_else(invalid)?;
    let time = DateTime::parse_from_rfc3339(time)
        .map_err(|_| invalid())?
        .with_timezone(&Utc);
    Ok((time, tail.parse().map_err(|_| invalid())?))
}

/// Orders a boxed query newest first (or oldest first walking backward) by (time, tail),
/// after the window's cursor (logs use it too). The caller imports `Direction` and
/// `time_tail_position`.
macro_rules! newest_first {
    ($query:expr, $window:expr, $time:expr, $tail:expr, $tail_type:ty) => {{
        let mut query = $query;
        if let Some(cursor) = &$window.cursor {
            let (at, tail) = time_tail_position::<$tail_type>(cursor)?;
            query = match $window.direction {
                Direction::Forward => query.filter($time.lt(at).or($time.eq(at).and($tail.lt(tail)))),
                Direction::Backward => query.filter($time.gt(at).or($time.eq(at).and($tail.gt(tail)))),
            };
        }
        match $window.direction {
            Direction::Forward => query.order(($time.desc(), $tail.desc())),
            Direction::Backward => query.order(($time.asc(), $tail.asc())),
        }
    }};
}

pub(crate) use newest_first;

/// One sample of a process running on a device.
#[derive(Clone)]
pub struct ProcessSample(pub ProcessRow);

impl From<ProcessRow> for ProcessSample {
    fn from(row: ProcessRow) -> Self {
        Self(row)
    }
}

/// One sample of a process running on a device.
#[Object]
impl ProcessSample {
    /// Global id of the device.
    async fn device_id(&self) -> ID {
        ids::encode("Device", self.0.device_id)
    }
    /// When it was sampled.
    async fn time(&self) -> DateTime<Utc> {
        self.0.ts
    }
    /// Process id.
    async fn pid(&self) -> i32 {
        self.0.pid
    }
    /// Process name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// CPU use, percent of one core.
    async fn cpu_percent(&self) -> f64 {
        self.0.cpu_percent
    }
    /// Resident memory, bytes.
    async fn memory_bytes(&self) -> f64 {
        self.0.memory_bytes as f64
    }
}

/// Which process samples to list.
#[derive(InputObject)]
pub struct ProcessFilter {
    /// The device (required: samples are read per device).
    pub device_id: ID,
    /// Only samples of processes with this name.
    pub name: Option<String>,
    /// Only samples at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only samples before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// One OpenTelemetry metric data point.
#[derive(Clone)]
pub struct OtelMetric(pub OtelMetricRow);

impl From<OtelMetricRow> for OtelMetric {
    fn from(row: OtelMetricRow) -> Self {
        Self(row)
    }
}

/// One OpenTelemetry metric data point.
#[Object]
impl OtelMetric {
    /// The service that emitted it.
    async fn service_name(&self) -> &str {
        &self.0.service_name
    }
    /// Metric name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// When it was measured.
    async fn time(&self) -> DateTime<Utc> {
        self.0.ts
    }
    /// Its value.
    async fn value(&self) -> f64 {
        self.0.value
    }
    /// Its attributes.
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
    }
    /// Global id of the device it came from.
    async fn device_id(&self) -> Option<ID> {
        self.0.device_id.map(|id| ids::encode("Device", id))
    }
}

/// Which OpenTelemetry data points to list.
#[derive(InputObject, Default)]
pub struct OtelMetricFilter {
    /// Only points of this service.
    pub service_name: Option<String>,
    /// Only points of this metric.
    pub name: Option<String>,
    /// Only points of this device.
    pub device_id: Option<ID>,
    /// Only points at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only points before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// One trace, summarised.
#[derive(Clone)]
pub struct TraceSummary(pub TraceSummaryRow);

impl From<TraceSummaryRow> for TraceSummary {
    fn from(row: TraceSummaryRow) -> Self {
        Self(row)
    }
}

/// One trace, summarised.
#[Object]
impl TraceSummary {
    /// Trace id (hex).
    async fn trace_id(&self) -> &str {
        &self.0.trace_id
    }
    /// Service of the root span.
    async fn root_service(&self) -> &str {
        &self.0.root_service
    }
    /// Name of the root span.
    async fn root_span_name(&self) -> &str {
        &self.0.root_span_name
    }
    /// When the trace started.
    async fn start_time(&self) -> DateTime<Utc> {
        self.0.start_time
    }
    /// How long it took, milliseconds.
    async fn duration_ms(&self) -> f64 {
        self.0.duration_ms
    }
    /// Spans in the trace.
    async fn span_count(&self) -> i32 {
        self.0.span_count
    }
    /// Spans that ended in error.
    async fn error_count(&self) -> i32 {
        self.0.error_count
    }
}

/// Which traces to list.
#[derive(InputObject, Default)]
pub struct TraceFilter {
    /// Only traces whose root span is of this service.
    pub root_service: Option<String>,
    /// Only traces with at least one error (true) or none (false).
    pub has_errors: Option<bool>,
    /// Only traces that started at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only traces that started before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// One span of a trace.
#[derive(Clone)]
pub struct Span(pub SpanRow);

impl From<SpanRow> for Span {
    fn from(row: SpanRow) -> Self {
        Self(row)
    }
}

/// One span of a trace.
#[Object]
impl Span {
    /// Trace id (hex).
    async fn trace_id(&self) -> &str {
        &self.0.trace_id
    }
    /// Span id (hex).
    async fn span_id(&self) -> &str {
        &self.0.span_id
    }
    /// Parent span id; none for the root.
    async fn parent_span_id(&self) -> Option<&str> {
        self.0.parent_span_id.as_deref()
    }
    /// Service that recorded it.
    async fn service_name(&self) -> &str {
        &self.0.service_name
    }
    /// Operation name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Start.
    async fn start_time(&self) -> DateTime<Utc> {
        self.0.start_time
    }
    /// End.
    async fn end_time(&self) -> DateTime<Utc> {
        self.0.end_time
    }
    /// `unset`, `ok` or `error`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Its attributes.
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
    }
}

#[derive(Default)]
pub struct TelemetryQuery;

#[Object]
impl TelemetryQuery {
    /// Samples of the processes of one device, newest first.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn process_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which samples to list.")] filter: ProcessFilter,
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
    ) -> ApiResult<Connection<Cursor, ProcessSample, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let device = ids::decode("Device", &filter.device_id)?;
        let mut query = process_metrics::table
            .filter(process_metrics::device_id.eq(device))
            .select(ProcessRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(name) = filter.name {
            query = query.filter(process_metrics::name.eq(name));
        }
        if let Some(from) = filter.from {
            query = query.filter(process_metrics::ts.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(process_metrics::ts.lt(to));
        }
        let query = newest_first!(query, window, process_metrics::ts, process_metrics::pid, i32);
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |row: &ProcessRow| time_tail_cursor(row.ts, row.pid),
            ProcessSample::from,
            EmptyFields
        )
    }

    /// OpenTelemetry metric data points, newest first.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn otel_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which points to list; all when absent.")] filter: Option<OtelMetricFilter>,
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
    ) -> ApiResult<Connection<Cursor, OtelMetric, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let filter = filter.unwrap_or_default();
        let mut query = otel_metrics::table
            .select(OtelMetricRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(service) = filter.service_name {
            query = query.filter(otel_metrics::service_name.eq(service));
        }
        if let Some(name) = filter.name {
            query = query.filter(otel_metrics::name.eq(name));
        }
        if let Some(device) = &filter.device_id {
            query = query.filter(otel_metrics::device_id.eq(ids::decode("Device", device)?));
        }
        if let Some(from) = filter.from {
            query = query.filter(otel_metrics::ts.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(otel_metrics::ts.lt(to));
        }
        let query = newest_first!(query, window, otel_metrics::ts, otel_metrics::id, i64);
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |row: &OtelMetricRow| time_tail_cursor(row.ts, row.id),
            OtelMetric::from,
            EmptyFields
        )
    }

    /// Traces, summarised, newest first.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn trace_summaries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which traces to list; all when absent.")] filter: Option<TraceFilter>,
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
    ) -> ApiResult<Connection<Cursor, TraceSummary, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let filter = filter.unwrap_or_default();
        let mut query = otel_trace_summaries::table
            .select(TraceSummaryRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(service) = filter.root_service {
            query = query.filter(otel_trace_summaries::root_service.eq(service));
        }
        match filter.has_errors {
            Some(true) => query = query.filter(otel_trace_summaries::error_count.gt(0)),
            Some(false) => query = query.filter(otel_trace_summaries::error_count.eq(0)),
            None => {}
        }
        if let Some(from) = filter.from {
            query = query.filter(otel_trace_summaries::start_time.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(otel_trace_summaries::start_time.lt(to));
        }
        let query = newest_first!(
            query,
            window,
            otel_trace_summaries::start_time,
            otel_trace_summaries::trace_id,
            String
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |row: &TraceSummaryRow| time_tail_cursor(row.start_time, &row.trace_id),
            TraceSummary::from,
            EmptyFields
        )
    }

    /// The spans of one trace, in start order (at most 1,000).
    #[graphql(complexity = "first.unwrap_or(MAX_SPANS).clamp(0, MAX_SPANS) as usize * child_complexity")]
    async fn trace_spans(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Trace id (hex).")] trace_id: String,
        #[graphql(desc = "At most this many spans (0 to 1,000; default 1,000).")] first: Option<i32>,
    ) -> ApiResult<Vec<Span>> {
        let limit = first.unwrap_or(MAX_SPANS);
        if !(0..=MAX_SPANS).contains(&limit) {
            return Err(ApiError::bad_input(format!(
                "first must be between 0 and {MAX_SPANS}"
            )));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let rows = otel_traces::table
            .filter(otel_traces::trace_id.eq(trace_id))
            .select(SpanRow::as_select())
            .order((otel_traces::start_time, otel_traces::span_id))
            .limit(i64::from(limit))
            .load(&mut conn)
            .await?;
        Ok(rows.into_iter().map(Span::from).collect())
    }
}
