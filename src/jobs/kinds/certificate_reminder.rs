//! `certificate_reminder`: raises a `warning` alert (source `certificate_renewal`) for
//! each edge component whose newest unrevoked certificate expires within
//! [`REMIND_BEFORE_DAYS`] days (or has expired) and has no open reminder yet, so that
//! admins renew it before the component is locked out; the alert reaches subscriptions
//! and NATS like any other. One transaction with the job's completion; a second run
//! raises nothing new while the first reminder is open.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Integer, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use serde_json::json;

use crate::jobs::error::JobError;

/// How long before expiry a component is reminded of.
pub const REMIND_BEFORE_DAYS: i32 = 14;

/// Raises the reminders due at `now`; returns `{"reminded": n}`.
pub async fn remind(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> Result<serde_json::Value, JobError> {
    let reminded = diesel::sql_query(
        "WITH latest AS ( \
             SELECT DISTINCT ON (component_id) component_id, name, not_after FROM edge_components \
             WHERE revoked_at IS NULL ORDER BY component_id, not_after DESC) \
         INSERT INTO alerts (severity, source, title, message, triggered_at) \
         SELECT 'warning', 'certificate_renewal', \
                'Certificate of edge component ' || l.component_id || ' expires soon', \
                'The certificate of ' || l.name || ' expires at ' || \
                    to_char(l.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC; renew it (POST /edge/v1/renew).', \
                $1 \
         FROM latest l \
         WHERE l.not_after <= $1 + make_interval(days => $2) \
           AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.source = 'certificate_renewal' AND a.status <> 'resolved' \
                           AND a.title = 'Certificate of edge component ' || l.component_id || ' expires soon')",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Integer, _>(REMIND_BEFORE_DAYS)
    .execute(conn)
    .await?;
    Ok(json!({ "reminded": reminded }))
}
