//! The kinds of tenant jobs and how each one runs. Per kind, what a crash can do:
//!
//! | Kind | Transactions | After a crash |
//! | --- | --- | --- |
//! | `retention` | one per batch (at most `batchSize` rows of one data kind), each renewing the lease (the heartbeat), then one that completes the job | committed batches stay deleted; the retry deletes what is left. Idempotent: deleting what is older than the cutoff twice deletes nothing twice |
//! | `onboarding_expiry` | one: effects and completion together | nothing of the attempt is committed; the retry does it all |
//! | `certificate_reminder` | one: effects and completion together | the same |
//!
//! Schedules (`job_schedules`) and polling schedules (`polling_schedules`) are not jobs:
//! each visit of a tenant turns the due ones into jobs and poll jobs (`queue::produce`),
//! in the claim's transaction.

pub mod certificate_reminder;
pub mod onboarding_expiry;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::clock::Clock;
use super::error::JobError;
use super::queue::{self, ClaimedJob};
use super::tx;
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::gateway::Gateway;

/// The kinds this version runs (`jobs.kind`, `job_schedules.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Retention,
    OnboardingExpiry,
    CertificateReminder,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Retention, Kind::OnboardingExpiry, Kind::CertificateReminder];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retention => "retention",
            Self::OnboardingExpiry => "onboarding_expiry",
            Self::CertificateReminder => "certificate_reminder",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == stored)
    }

    /// Whether the kind runs in several transactions that renew the lease as they go
    /// (its attempt may outlast one lease; see `worker`).
    pub fn renews_lease(self) -> bool {
        matches!(self, Self::Retention)
    }

    /// Checks a payload for this kind (when a schedule or job is written).
    pub fn check_payload(self, payload: &serde_json::Value) -> Result<(), JobError> {
        match self {
            Self::Retention => retention::Options::from_payload(payload).map(|_| ()),
            Self::OnboardingExpiry | Self::CertificateReminder => Ok(()),
        }
    }
}

/// What a running job may use.
pub struct JobContext {
    pub gateway: Gateway,
    pub tenant: Arc<TenantEntry>,
    pub clock: Arc<dyn Clock>,
    /// How long each lease (and each renewal) lasts.
    pub lease: Duration,
}

impl JobContext {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Until when a lease taken or renewed now lasts.
    pub fn lease_until(&self) -> DateTime<Utc> {
        self.now() + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX)
    }
}

/// Runs `job` to completion (its completion is committed by the kind, see the module
/// doc) and returns its result.
pub async fn run(ctx: &JobContext, job: &ClaimedJob) -> Result<serde_json::Value, JobError> {
    let Some(kind) = Kind::parse(&job.kind) else {
        return Err(JobError::UnknownKind(job.kind.clone()));
    };
    match kind {
        Kind::Retention => retention::run(ctx, job).await,
        Kind::OnboardingExpiry | Kind::CertificateReminder => {
            let now = ctx.now();
            tx::in_tenant(&ctx.gateway, ctx.tenant.clone(), async |conn| {
                queue::hold(conn, job).await?;
                let result = match kind {
                    Kind::CertificateReminder => certificate_reminder::remind(conn, now).await?,
                    _ => onboarding_expiry::expire(conn, now).await?,
                };
                queue::complete(conn, job, now, &result).await?;
                Ok(result)
            })
            .await
        }
    }
}
