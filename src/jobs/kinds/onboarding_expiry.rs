//! `onboarding_expiry`: onboarding packages issued but never downloaded whose download
//! window has passed become `expired` (their one-time token no longer works anyway; this
//! makes `onboardingPackages` say so). One transaction with the job's completion.

use chrono::{DateTime, Utc};
use diesel::sql_types::Timestamptz;
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use serde_json::json;

use crate::jobs::error::JobError;

/// Expires the packages whose window ended at `now`; returns `{"expired": n}`.
pub async fn expire(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> Result<serde_json::Value, JobError> {
    let expired = diesel::sql_query(
        "UPDATE onboarding_packages SET status = 'expired' WHERE status = 'issued' AND expires_at <= $1",
    )
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(json!({ "expired": expired }))
}
