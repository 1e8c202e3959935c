//! Edge rows: onboarding packages and events, edge components, the tenant's CAs,
//! collector packages, NATS credentials and leaf servers.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::tenant::{
    collector_packages, edge_components, nats_credentials, nats_leaf_servers, onboarding_events,
    onboarding_packages, tenant_cas,
};

/// A row of `onboarding_packages`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = onboarding_packages, check_for_backend(Pg))]
pub struct OnboardingPackageRow {
    pub id: Uuid,
    pub edge_site_id: Uuid,
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub component_id: Option<String>,
}

/// A row of `onboarding_events`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = onboarding_events, check_for_backend(Pg))]
pub struct OnboardingEventRow {
    pub id: Uuid,
    pub onboarding_package_id: Uuid,
    pub event: String,
    pub detail: String,
    pub occurred_at: DateTime<Utc>,
}

/// A row of `edge_components`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = edge_components, check_for_backend(Pg))]
pub struct EdgeComponentRow {
    pub id: Uuid,
    pub onboarding_package_id: Option<Uuid>,
    pub kind: String,
    pub component_id: String,
    pub name: String,
    pub common_name: String,
    pub serial: String,
    pub not_after: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A row of `tenant_cas`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenant_cas, check_for_backend(Pg))]
pub struct CertificateAuthorityRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub certificate_pem: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A row of `collector_packages`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = collector_packages, check_for_backend(Pg))]
pub struct CollectorPackageRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub version: String,
    pub platform: String,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// A row of `nats_credentials`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = nats_credentials, check_for_backend(Pg))]
pub struct NatsCredentialRow {
    pub id: uuid::Uuid,
    pub edge_site_id: uuid::Uuid,
    pub edge_component_id: Option<uuid::Uuid>,
    pub user_public_key: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A row of `nats_leaf_servers`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = nats_leaf_servers, check_for_backend(Pg))]
pub struct NatsLeafServerRow {
    pub id: uuid::Uuid,
    pub edge_site_id: uuid::Uuid,
    pub name: String,
    pub url: String,
    pub status: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}
