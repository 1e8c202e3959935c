//! Observability: metric series over a time range, bucketed in SQL (`date_bin`), and logs,
//! newest first. Also the tenant's users (admins only, see `access`).

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Double, Integer, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use super::context::{app, scope};
use super::errors::{ApiError, ApiResult};
use super::identity::User;
use super::ids;
use super::models::LogRow;
use super::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::auth::users::UserRecord;
use crate::schema::tenant::{logs, users};

/// Most points a metric query may return.
const MAX_POINTS: i64 = 10_000;

/// Width of the buckets a metric series is averaged into.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum MetricBucket {
    /// One minute.
    Minute,
    /// Five minutes.
    FiveMinutes,
    /// Fifteen minutes.
    FifteenMinutes,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl MetricBucket {
    pub(crate) fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::FiveMinutes => 300,
            Self::FifteenMinutes => 900,
            Self::Hour => 3600,
            Self::Day => 86400,
        }
    }
}

/// One bucket of a metric series.
#[derive(SimpleObject, QueryableByName, Debug, Clone)]
pub struct MetricPoint {
    /// Start of the bucket.
    #[diesel(sql_type = Timestamptz)]
    pub time: DateTime<Utc>,
    /// Mean of the samples in the bucket.
    #[diesel(sql_type = Double)]
    pub avg: f64,
    /// Smallest sample.
    #[diesel(sql_type = Double)]
    pub min: f64,
    /// Largest sample.
    #[diesel(sql_type = Double)]
    pub max: f64,
    /// Number of samples.
    #[diesel(sql_type = Integer)]
    pub samples: i32,
}

/// The value column each series aggregates.
enum Series {
    Cpu,
    Memory,
    /// Used bytes of one mount point.
    Disk,
    /// A named metric of `timeseries_metrics`.
    Named,
}

impl Series {
    fn sql(&self) -> &'static str {
        match self {
            // Averaged over every sample in the bucket (all cores, or the total row, as stored).
            Self::Cpu => {
                "SELECT date_bin($1::interval, ts, TIMESTAMPTZ '2000-01-01') AS time, avg(usage_percent) AS avg, \
                 min(usage_percent) AS min, max(usage_percent) AS max, count(*)::int4 AS samples \
                 FROM cpu_metrics WHERE device_id = $2 AND ts >= $3 AND ts < $4 GROUP BY 1 ORDER BY 1"
            }
            Self::Memory => {
                "SELECT date_bin($1::interval, ts, TIMESTAMPTZ '2000-01-01') AS time, avg(used_bytes)::float8 AS avg, \
                 min(used_bytes)::float8 AS min, max(used_bytes)::float8 AS max, count(*)::int4 AS samples \
                 FROM memory_metrics WHERE device_id = $2 AND ts >= $3 AND ts < $4 GROUP BY 1 ORDER BY 1"
            }
            Self::Disk => {
                "SELECT date_bin($1::interval, ts, TIMESTAMPTZ '2000-01-01') AS time, avg(used_bytes)::float8 AS avg, \
                 min(used_bytes)::float8 AS min, max(used_bytes)::float8 AS max, count(*)::int4 AS samples \
                 FROM disk_metrics WHERE device_id = $2 AND ts >= $3 AND ts < $4 AND mount = $5 GROUP BY 1 ORDER BY 1"
            }
            Self::Named => {
                "SELECT date_bin($1::interval, ts, TIMESTAMPTZ '2000-01-01') AS time, avg(value) AS avg, \
                 min(value) AS min, max(value) AS max, count(*)::int4 AS samples \
                 FROM timeseries_metrics WHERE device_id = $2 AND ts >= $3 AND ts < $4 AND name = $5 GROUP BY 1 ORDER BY 1"
            }
        }
    }
}

async fn series(
    ctx: &Context<'_>,
    series: Series,
    device_id: &ID,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: MetricBucket,
    selector: Option<&str>,
) -> ApiResult<Vec<MetricPoint>> {
    let device = ids::decode("Device", device_id)?;
    if from >= to {
        return Err(ApiError::bad_input("from must be before to"));
    }
    let points = (to - from).num_seconds() / bucket.seconds();
    if points > MAX_POINTS {
        return Err(ApiError::bad_input(format!(
            "the range holds {points} buckets; at most {MAX_POINTS}: use a wider bucket or a shorter range"
        )));
    }
    let query = diesel::sql_query(series.sql())
        .bind::<Text, _>(format!("{} seconds", bucket.seconds()))
        .bind::<diesel::sql_types::Uuid, _>(device)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to);
    let mut conn = scope(ctx)?.conn().await?;
    Ok(match selector {
        Some(selector) => query.bind::<Text, _>(selector).load(&mut conn).await?,
        None => query.load(&mut conn).await?,
    })
}

/// A log line.
#[derive(Clone)]
pub struct LogEntry(pub LogRow);

impl From<LogRow> for LogEntry {
    fn from(row: LogRow) -> Self {
        Self(row)
    }
}

/// A log line.
#[Object]
impl LogEntry {
    /// When it was logged.
    async fn time(&self) -> DateTime<Utc> {
        self.0.ts
    }
    /// Severity (`trace` to `fatal`).
    async fn severity(&self) -> &str {
        &self.0.severity
    }
    /// What logged it.
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// The line.
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// Structured attributes.
    async fn attributes(&self) -> Json<serde_json::Value> {
        Json(self.0.attributes.clone())
    }
    /// Global id of the device it came from.
    async fn device_id(&self) -> Option<ID> {
        self.0.device_id.map(|id| ids::encode("Device", id))
    }
}

/// Which log lines to list.
#[derive(InputObject, Default)]
pub struct LogFilter {
    /// Only lines at or after this time (RFC 3339, e.g. `2027-01-31T00:00:00Z`).
    pub from: Option<DateTime<Utc>>,
    /// Only lines before this time (RFC 3339, e.g. `2027-01-31T00:00:00Z`).
    pub to: Option<DateTime<Utc>>,
    /// Only lines of this device.
    pub device_id: Option<ID>,
    /// Only lines of these severities (`info`, `error`...).
    pub severity: Option<Vec<String>>,
}

#[derive(Default)]
pub struct ObservabilityQuery;

#[Object]
impl ObservabilityQuery {
    /// CPU usage of a device (percent, all cores) over `[from, to)`, averaged per bucket.
    #[graphql(complexity = "super::limits::series_cost(from, to, bucket)")]
    async fn cpu_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the device.")] device_id: ID,
        #[graphql(desc = "Start of the range (inclusive; RFC 3339, e.g. `2027-01-31T00:00:00Z`).")]
        from: DateTime<Utc>,
        #[graphql(desc = "End of the range (exclusive; RFC 3339, e.g. `2027-02-01T00:00:00Z`).")]
        to: DateTime<Utc>,
        #[graphql(
            desc = "Width of the buckets the samples are averaged into.",
            default_with = "MetricBucket::FiveMinutes"
        )]
        bucket: MetricBucket,
    ) -> ApiResult<Vec<MetricPoint>> {
        series(ctx, Series::Cpu, &device_id, from, to, bucket, None).await
    }

    /// Memory used by a device (bytes) over `[from, to)`, averaged per bucket.
    #[graphql(complexity = "super::limits::series_cost(from, to, bucket)")]
    async fn memory_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the device.")] device_id: ID,
        #[graphql(desc = "Start of the range (inclusive; RFC 3339, e.g. `2027-01-31T00:00:00Z`).")]
        from: DateTime<Utc>,
        #[graphql(desc = "End of the range (exclusive; RFC 3339, e.g. `2027-02-01T00:00:00Z`).")]
        to: DateTime<Utc>,
        #[graphql(
            desc = "Width of the buckets the samples are averaged into.",
            default_with = "MetricBucket::FiveMinutes"
        )]
        bucket: MetricBucket,
    ) -> ApiResult<Vec<MetricPoint>> {
        series(ctx, Series::Memory, &device_id, from, to, bucket, None).await
    }

    /// Used bytes of one mount point of a device over `[from, to)`, averaged per bucket.
    #[graphql(complexity = "super::limits::series_cost(from, to, bucket)")]
    async fn disk_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the device.")] device_id: ID,
        #[graphql(desc = "Mount point (`/`, `/var`...).")] mount: String,
        #[graphql(desc = "Start of the range (inclusive; RFC 3339, e.g. `2027-01-31T00:00:00Z`).")]
        from: DateTime<Utc>,
        #[graphql(desc = "End of the range (exclusive; RFC 3339, e.g. `2027-02-01T00:00:00Z`).")]
        to: DateTime<Utc>,
        #[graphql(
            desc = "Width of the buckets the samples are averaged into.",
            default_with = "MetricBucket::FiveMinutes"
        )]
        bucket: MetricBucket,
    ) -> ApiResult<Vec<MetricPoint>> {
        series(ctx, Series::Disk, &device_id, from, to, bucket, Some(&mount)).await
    }

    /// A named metric of a device (interface counters, temperatures...) over `[from, to)`,
    /// averaged per bucket.
    #[graphql(complexity = "super::limits::series_cost(from, to, bucket)")]
    async fn timeseries_metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the device.")] device_id: ID,
        #[graphql(desc = "Name of the metric.")] name: String,
        #[graphql(desc = "Start of the range (inclusive; RFC 3339, e.g. `2027-01-31T00:00:00Z`).")]
        from: DateTime<Utc>,
        #[graphql(desc = "End of the range (exclusive; RFC 3339, e.g. `2027-02-01T00:00:00Z`).")]
        to: DateTime<Utc>,
        #[graphql(
            desc = "Width of the buckets the samples are averaged into.",
            default_with = "MetricBucket::FiveMinutes"
        )]
        bucket: MetricBucket,
    ) -> ApiResult<Vec<MetricPoint>> {
        series(ctx, Series::Named, &device_id, from, to, bucket, Some(&name)).await
    }

    /// Log lines, newest first.
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which items to list; all when absent.")] filter: Option<LogFilter>,
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
    ) -> ApiResult<Connection<Cursor, LogEntry, EmptyFields>> {
        use super::pagination::Direction;
        use super::telemetry::{newest_first, time_tail_position};
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let filter = filter.unwrap_or_default();
        let device = filter
            .device_id
            .as_ref()
            .map(|id| ids::decode("Device", id))
            .transpose()?;
        let mut query = logs::table
            .select(LogRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(from) = filter.from {
            query = query.filter(logs::ts.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(logs::ts.lt(to));
        }
        if let Some(device) = device {
            query = query.filter(logs::device_id.eq(device));
        }
        if let Some(severity) = filter.severity {
            query = query.filter(logs::severity.eq_any(severity));
        }
        let query = newest_first!(query, window, logs::ts, logs::id, i64);
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |row: &LogRow| super::telemetry::time_tail_cursor(row.ts, row.id),
            LogEntry::from,
            EmptyFields
        )
    }

    /// Users of the tenant, by email (admins only).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
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
    ) -> ApiResult<Connection<Cursor, User, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = users::table
            .select(UserRecord::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(query, &window, users::email, users::id, text_key, ascending);
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |u: &UserRecord| Cursor {
                key: u.email.clone(),
                id: u.id
            },
            User::from,
            EmptyFields
        )
    }
}
