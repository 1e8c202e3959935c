//! Creating and dropping a tenant, each in ONE transaction: the tenant row, its domains,
//! its schema `tenant_<slug>`, its role and grants, every tenant migration and the ledger
//! entries commit together or not at all. A failure leaves no row, schema or role behind.
//!
//! Both take the migration advisory lock in shared mode, so they wait while a fleet
//! migration runs (and never create a tenant at a version the runner has moved past).

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::domain::{self, DomainError};
use super::migrations::ledger;
use super::migrations::runner::{MIGRATION_LOCK_KEY, Target, apply};
use super::migrations::{Migration, MigrationError, describe_db_error};
use super::registry::TenantRecord;
use super::slug::{Slug, SlugError};
use super::{Installation, roles};
use crate::db::quote_ident;
use crate::schema::public::{tenant_domains, tenants};

/// What a new tenant is made of.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: Slug,
    pub name: String,
    pub domains: Vec<String>,
}

impl NewTenant {
    /// The platform tenant, provisioned automatically on first start.
    pub fn platform() -> Self {
        Self {
            slug: Slug::platform(),
            name: "Platform".to_owned(),
            domains: Vec::new(),
        }
    }
}

/// Why a tenant operation was refused or failed. Messages are for operators and
/// platform admins; none carries SQL.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("invalid tenant slug {slug:?}: {reason}")]
    InvalidSlug { slug: String, reason: SlugError },
    #[error("invalid domain {domain:?}: {reason}")]
    InvalidDomain { domain: String, reason: DomainError },
    #[error("invalid tenant name: it must have 1 to 200 characters")]
    InvalidName,
    #[error("tenant {0} already exists")]
    AlreadyExists(String),
    #[error("domain {0} already belongs to a tenant")]
    DomainTaken(String),
    #[error(
        "database role {0} already exists, left over from an earlier database of the same name; \
         drop it (DROP ROLE) if nothing uses it"
    )]
    RoleExists(String),
    #[error("there is no tenant {0}")]
    NotFound(String),
    #[error("the platform tenant cannot be {0}")]
    PlatformProtected(&'static str),
    #[error("{0}")]
    Migration(#[from] MigrationError),
    #[error("database error: {0}")]
    Database(String),
    #[error("cannot create the tenant's edge certificate authority: {0}")]
    Edge(String),
}

impl From<DieselError> for TenancyError {
    fn from(error: DieselError) -> Self {
        Self::Database(describe_db_error(&error))
    }
}

/// Validates a slug for a new tenant, with the error the API and CLI report.
pub fn parse_new_slug(raw: &str) -> Result<Slug, TenancyError> {
    Slug::new_tenant(raw).map_err(|reason| TenancyError::InvalidSlug {
        slug: raw.to_owned(),
        reason,
    })
}

/// Validates a slug naming an existing tenant.
pub fn parse_slug(raw: &str) -> Result<Slug, TenancyError> {
    Slug::parse(raw).map_err(|reason| TenancyError::InvalidSlug {
        slug: raw.to_owned(),
        reason,
    })
}

async fn role_exists(conn: &mut AsyncPgConnection, role: &str) -> Result<bool, DieselError> {
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(role)
            .get_result(conn)
            .await?;
    Ok(found.exists)
}

async fn take_shared_migration_lock(conn: &mut AsyncPgConnection) -> Result<(), DieselError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)
        .await
        .map(drop)
}

/// Provisions a tenant; see the module doc.
pub async fn create_tenant(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    new: &NewTenant,
) -> Result<TenantRecord, TenancyError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(TenancyError::InvalidName);
    }
    let domains = new
        .domains
        .iter()
        .map(|raw| {
            domain::normalize(raw).map_err(|reason| TenancyError::InvalidDomain {
                domain: raw.clone(),
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schema = new.slug.schema_name();
    let role = installation.tenant_role(&new.slug);
    let set = &installation.migrations.tenant;
    let all: Vec<&Migration> = set.migrations().iter().collect();
    let lock_timeout = installation.migration_lock_timeout;

    let record = conn
        .transaction(async |conn| {
            take_shared_migration_lock(conn).await?;
            let record: TenantRecord = diesel::insert_into(tenants::table)
                .values((tenants::slug.eq(new.slug.as_str()), tenants::name.eq(name)))
                .returning(TenantRecord::as_returning())
                .get_result(conn)
                .await
                .map_err(|e| unique_violation(e, new.slug.as_str(), &domains))?;
            for domain in &domains {
                diesel::insert_into(tenant_domains::table)
                    .values((
                        tenant_domains::domain.eq(domain),
                        tenant_domains::tenant_id.eq(record.id),
                    ))
                    .execute(conn)
                    .await
                    .map_err(|e| unique_violation(e, new.slug.as_str(), std::slice::from_ref(domain)))?;
            }
            conn.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(&schema)))
                .await?;
            if role_exists(conn, &role).await? {
                return Err(TenancyError::RoleExists(role.clone()));
            }
            conn.batch_execute(&roles::create_sql(&schema, &role, &installation.authenticator))
                .await?;
            let target = Target::Tenant {
                schema: &schema,
                role: &role,
            };
            apply(conn, &target, set, &all, lock_timeout).await?;
            if let Some(edge) = &installation.edge {
                edge.insert_tenant_ca(conn, &new.slug)
                    .await
                    .map_err(|e| TenancyError::Edge(e.to_string()))?;
            }
            Ok::<_, TenancyError>(record)
        })
        .await?;
    tracing::info!(tenant = %new.slug, schema, role, "provisioned tenant");
    Ok(record)
}

fn unique_violation(error: DieselError, slug: &str, domains: &[String]) -> TenancyError {
    if let DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = &error {
        match info.constraint_name() {
            Some("tenants_slug_key") => return TenancyError::AlreadyExists(slug.to_owned()),
            Some("tenant_domains_pkey") => {
                let taken = domains.first().cloned().unwrap_or_default();
                return TenancyError::DomainTaken(taken);
            }
            _ => {}
        }
    }
    error.into()
}

/// Drops a tenant: its row (with domains and memberships), its schema with all data, its
/// role and its ledger entries, in one transaction. The platform tenant is refused.
pub async fn drop_tenant(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    slug: &Slug,
) -> Result<(), TenancyError> {
    if slug.is_platform() {
        return Err(TenancyError::PlatformProtected("dropped"));
    }
    let schema = slug.schema_name();
    let role = installation.tenant_role(slug);
    conn.transaction(async |conn| {
        take_shared_migration_lock(conn).await?;
        let deleted = diesel::delete(tenants::table.filter(tenants::slug.eq(slug.as_str())))
            .execute(conn)
            .await?;
        if deleted == 0 {
            return Err(TenancyError::NotFound(slug.to_string()));
        }
        conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&schema)))
            .await?;
        conn.batch_execute(&roles::drop_sql(&role)).await?;
        ledger::forget(conn, &schema).await?;
        Ok(())
    })
    .await?;
    tracing::info!(tenant = %slug, "dropped tenant");
    Ok(())
}
