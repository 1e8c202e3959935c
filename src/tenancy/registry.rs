//! Tenant records in `public.tenants`: listing them and changing their status.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::provision::TenancyError;
use super::slug::Slug;
use crate::schema::public::tenants;

/// One row of `public.tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = tenants)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct TenantRecord {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Whether a tenant may be served. A suspended tenant's requests are refused with
/// TENANT_UNAVAILABLE; its data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantRecord {
    pub fn status(&self) -> TenantStatus {
        TenantStatus::from_stored(&self.status)
    }
}

impl TenantStatus {
    /// The status a stored value means; anything but `active` is not served.
    pub fn from_stored(stored: &str) -> Self {
        if stored == Self::Active.as_str() {
            Self::Active
        } else {
            Self::Suspended
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

/// One tenant by slug.
pub async fn find(conn: &mut AsyncPgConnection, slug: &Slug) -> Result<TenantRecord, TenancyError> {
    tenants::table
        .filter(tenants::slug.eq(slug.as_str()))
        .select(TenantRecord::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| TenancyError::NotFound(slug.to_string()))
}

/// Every tenant, by slug.
pub async fn list(conn: &mut AsyncPgConnection) -> Result<Vec<TenantRecord>, TenancyError> {
    Ok(tenants::table
        .order(tenants::slug)
        .select(TenantRecord::as_select())
        .load(conn)
        .await?)
}

/// Suspends or resumes a tenant. The platform tenant cannot be suspended: its admins
/// would lock themselves out.
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    slug: &Slug,
    status: TenantStatus,
) -> Result<TenantRecord, TenancyError> {
    if slug.is_platform() && status == TenantStatus::Suspended {
        return Err(TenancyError::PlatformProtected("suspended"));
    }
    diesel::update(tenants::table.filter(tenants::slug.eq(slug.as_str())))
        .set((
            tenants::status.eq(status.as_str()),
            tenants::updated_at.eq(diesel::dsl::now),
        ))
        .returning(TenantRecord::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| TenancyError::NotFound(slug.to_string()))
}
