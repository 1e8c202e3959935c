//! Platform operations, for platform admins acting in the platform tenant: list, create,
//! suspend and resume tenants, list the tenants Enclave quarantined, and impersonate one.
//!
//! These manage tenants as *objects* in `public`; they never run in another tenant's
//! context. Entering one is only possible through `impersonate`, which mints a token of
//! at most 15 minutes carrying the impersonator and records it in
//! `public.impersonation_logs`; the HTTP layer records every mutation made with it.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::context::{RequirePlatformAdmin, actor, app, current_user, platform_admin};
use super::errors::{ApiError, ApiResult};
use super::ids;
use super::pagination::{Cursor, Window, keyset, text_key};
use crate::auth::Role;
use crate::auth::token::{self, Claims, Credential};
use crate::schema::public::{impersonation_logs, tenant_quarantine, tenants};
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::impersonation::{self, NewImpersonation};
use crate::tenancy::provision::{self, NewTenant};
use crate::tenancy::quarantine::QuarantineReason;
use crate::tenancy::registry::{self, TenantRecord, TenantStatus};

/// Longest lifetime of an impersonation token.
pub const IMPERSONATION_TTL: chrono::Duration = chrono::Duration::minutes(15);

/// Whether a tenant is served.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum TenantStatusValue {
    /// Requests are served.
    Active,
    /// Requests are refused with TENANT_UNAVAILABLE; data is kept.
    Suspended,
}

impl From<TenantStatus> for TenantStatusValue {
    fn from(status: TenantStatus) -> Self {
        match status {
            TenantStatus::Active => Self::Active,
            TenantStatus::Suspended => Self::Suspended,
        }
    }
}

/// A tenant: one customer organisation with its own isolated data.
#[derive(SimpleObject, Clone)]
pub struct Tenant {
    /// Opaque global id.
    #[graphql(owned)]
    pub id: ID,
    /// Short unique name; the tenant's schema is `tenant_<slug>`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Whether the tenant is served.
    pub status: TenantStatusValue,
}

impl From<&TenantEntry> for Tenant {
    fn from(tenant: &TenantEntry) -> Self {
        Self {
            id: ids::encode("Tenant", tenant.id),
            slug: tenant.slug.to_string(),
            name: tenant.name.clone(),
            status: tenant.status.into(),
        }
    }
}

impl From<TenantRecord> for Tenant {
    fn from(record: TenantRecord) -> Self {
        let status = record.status();
        Self {
            id: ids::encode("Tenant", record.id),
            slug: record.slug,
            name: record.name,
            status: status.into(),
        }
    }
}

/// Why Enclave took a tenant out of service.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum QuarantineReasonValue {
    /// The tenant's schema differs from a freshly migrated one (DDL run by hand); the
    /// first check that finds it matching again (at startup, or `enclave tenant repair`)
    /// releases it.
    Drift,
    /// A fleet migration failed on the tenant (`enclave migrate --continue-on-error`); the
    /// run that migrates it releases it.
    MigrationFailed,
}

impl From<QuarantineReason> for QuarantineReasonValue {
    fn from(reason: QuarantineReason) -> Self {
        match reason {
            QuarantineReason::Drift => Self::Drift,
            QuarantineReason::MigrationFailed => Self::MigrationFailed,
        }
    }
}

/// A tenant Enclave refuses to serve (its requests get TENANT_UNAVAILABLE) until an
/// operator repairs it; `enclave migrate --status` and `enclave tenant repair <slug>` show
/// the details.
#[derive(SimpleObject, Clone)]
pub struct QuarantinedTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Why it is quarantined.
    pub reason: QuarantineReasonValue,
    /// How many schema objects differ from a freshly migrated schema (0 after a failed
    /// migration).
    pub differences: i32,
    /// When it was quarantined.
    pub quarantined_at: DateTime<Utc>,
    /// When a check or a migration last confirmed the quarantine.
    pub checked_at: DateTime<Utc>,
}

/// Input of `createTenant`.
#[derive(InputObject)]
pub struct CreateTenantInput {
    /// Lowercase letter first, then a-z, 0-9 or `_`; at most 40 characters.
    pub slug: String,
    /// Display name (1 to 200 characters).
    pub name: String,
    /// Vanity domains on which the tenant's users log in.
    #[graphql(default)]
    pub domains: Vec<String>,
}

/// A tenant after a platform operation.
#[derive(SimpleObject)]
pub struct TenantPayload {
    /// The tenant as it is now.
    pub tenant: Tenant,
}

/// Input of `impersonate`.
#[derive(InputObject)]
pub struct ImpersonateInput {
    /// Slug of the tenant to enter.
    pub tenant: String,
    /// Why; recorded in the audit log.
    pub reason: String,
}

/// The result of `impersonate`.
#[derive(SimpleObject)]
pub struct ImpersonatePayload {
    /// Token acting as an admin of the tenant, carrying the impersonator.
    pub token: String,
    /// When the token stops working (at most 15 minutes from now).
    pub expires_at: DateTime<Utc>,
    /// The tenant entered.
    pub tenant: Tenant,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = impersonation_logs, check_for_backend(diesel::pg::Pg))]
pub struct ImpersonationLogRow {
    pub id: uuid::Uuid,
    pub impersonator_user_id: uuid::Uuid,
    pub impersonator_email: String,
    pub target_tenant_id: Option<uuid::Uuid>,
    pub target_tenant_slug: String,
    pub token_id: uuid::Uuid,
    pub action: String,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One entry of the impersonation audit: an impersonation begun (`impersonate`) or a
/// mutation made under one (`mutation <fields>`).
#[derive(Clone)]
pub struct ImpersonationLogEntry(pub ImpersonationLogRow);

impl From<ImpersonationLogRow> for ImpersonationLogEntry {
    fn from(row: ImpersonationLogRow) -> Self {
        Self(row)
    }
}

/// One entry of the impersonation audit: an impersonation begun (`impersonate`) or a
/// mutation made under one (`mutation <fields>`).
#[Object]
impl ImpersonationLogEntry {
    /// Opaque id of the entry.
    pub async fn id(&self) -> ID {
        ids::encode("ImpersonationLogEntry", self.0.id)
    }
    /// Email of the platform admin who impersonated.
    async fn impersonator_email(&self) -> &str {
        &self.0.impersonator_email
    }
    /// Slug of the tenant entered (kept after the tenant is dropped).
    async fn target_tenant_slug(&self) -> &str {
        &self.0.target_tenant_slug
    }
    /// Global id of the tenant entered; none once it is dropped.
    async fn target_tenant_id(&self) -> Option<ID> {
        self.0.target_tenant_id.map(|id| ids::encode("Tenant", id))
    }
    /// Which impersonation (its token's credential id): the entries of one session share it.
    async fn impersonation_id(&self) -> ID {
        ids::encode("Impersonation", self.0.token_id)
    }
    /// `impersonate`, or `mutation <root fields>`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// The reason given.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// When the impersonation token expires (`impersonate` entries).
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// When it was ended with `endImpersonation`, if it was.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// When it was recorded.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Which impersonation audit entries to list.
#[derive(InputObject, Default)]
pub struct ImpersonationLogFilter {
    /// Only entries about this tenant (its slug; dropped tenants too).
    pub target_tenant_slug: Option<String>,
    /// Only entries of this platform admin (email).
    pub impersonator_email: Option<String>,
    /// Only `impersonate` entries (true) or only mutations (false).
    pub starts_only: Option<bool>,
    /// Only entries at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct PlatformQuery;

#[Object]
impl PlatformQuery {
    /// Every tenant, by slug (platform admins only).
    #[graphql(
        guard = "RequirePlatformAdmin",
        complexity = "super::limits::list_cost(first, last, child_complexity)"
    )]
    async fn tenants(
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
    ) -> ApiResult<Connection<Cursor, Tenant, EmptyFields>> {
        let app = app(ctx)?;
        let window = Window::new(first, after, last, before, app.max_page_size)?;
        let mut conn = app.db.platform(&platform_admin(ctx)?).await?;
        let query = tenants::table
            .select(TenantRecord::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(query, &window, tenants::slug, tenants::id, text_key, ascending);
        let rows: Vec<TenantRecord> = diesel_async::RunQueryDsl::load(query, &mut conn).await?;
        let rows = rows
            .into_iter()
            .map(|r| {
                (
                    Cursor {
                        key: r.slug.clone(),
                        id: r.id,
                    },
                    Tenant::from(r),
                )
            })
            .collect();
        Ok(window.connection(rows, EmptyFields))
    }

    /// The tenants Enclave refuses to serve because their schema drifted or a migration
    /// failed on them, by slug (platform admins only).
    #[graphql(
        guard = "RequirePlatformAdmin",
        complexity = "super::limits::list_cost(first, last, child_complexity)"
    )]
    async fn quarantined_tenants(
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
    ) -> ApiResult<Connection<Cursor, QuarantinedTenant, EmptyFields>> {
        type Row = (TenantRecord, String, i32, DateTime<Utc>, DateTime<Utc>);
        let app = app(ctx)?;
        let window = Window::new(first, after, last, before, app.max_page_size)?;
        let mut conn = app.db.platform(&platform_admin(ctx)?).await?;
        let query = tenant_quarantine::table
            .inner_join(tenants::table)
            .select((
                TenantRecord::as_select(),
                tenant_quarantine::reason,
                tenant_quarantine::differences,
                tenant_quarantine::quarantined_at,
                tenant_quarantine::checked_at,
            ))
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(query, &window, tenants::slug, tenants::id, text_key, ascending);
        let rows: Vec<Row> = diesel_async::RunQueryDsl::load(query, &mut conn).await?;
        let rows = rows
            .into_iter()
            .map(|(record, reason, differences, quarantined_at, checked_at)| {
                (
                    Cursor {
                        key: record.slug.clone(),
                        id: record.id,
                    },
                    QuarantinedTenant {
                        tenant: Tenant::from(record),
                        reason: QuarantineReason::from_stored(&reason).into(),
                        differences,
                        quarantined_at,
                        checked_at,
                    },
                )
            })
            .collect();
        Ok(window.connection(rows, EmptyFields))
    }

    /// The impersonation audit, newest first: impersonations begun and the mutations made
    /// under them (platform admins only).
    #[graphql(
        guard = "RequirePlatformAdmin",
        complexity = "super::limits::list_cost(first, last, child_complexity)"
    )]
    async fn impersonation_logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which entries to list; all when absent.")] filter: Option<ImpersonationLogFilter>,
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
    ) -> ApiResult<Connection<Cursor, ImpersonationLogEntry, EmptyFields>> {
        use super::monitoring::{cursor_time, time_cursor};
        let app = app(ctx)?;
        let window = Window::new(first, after, last, before, app.max_page_size)?;
        let filter = filter.unwrap_or_default();
        let mut query = impersonation_logs::table
            .select(ImpersonationLogRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(slug) = filter.target_tenant_slug {
            query = query.filter(impersonation_logs::target_tenant_slug.eq(slug));
        }
        if let Some(email) = filter.impersonator_email {
            query = query.filter(impersonation_logs::impersonator_email.eq(email));
        }
        match filter.starts_only {
            Some(true) => query = query.filter(impersonation_logs::action.eq("impersonate")),
            Some(false) => query = query.filter(impersonation_logs::action.ne("impersonate")),
            None => {}
        }
        if let Some(from) = filter.from {
            query = query.filter(impersonation_logs::created_at.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(impersonation_logs::created_at.lt(to));
        }
        let query = keyset!(
            query,
            &window,
            impersonation_logs::created_at,
            impersonation_logs::id,
            cursor_time,
            descending
        );
        let mut conn = app.db.platform(&platform_admin(ctx)?).await?;
        let rows: Vec<ImpersonationLogRow> = diesel_async::RunQueryDsl::load(query, &mut conn).await?;
        let rows = rows
            .into_iter()
            .map(|row| {
                (
                    time_cursor(row.created_at, row.id),
                    ImpersonationLogEntry::from(row),
                )
            })
            .collect();
        Ok(window.connection(rows, EmptyFields))
    }
}

#[derive(Default)]
pub struct PlatformMutation;

#[Object]
impl PlatformMutation {
    /// Provisions a tenant: its schema, role and tables, atomically.
    #[graphql(guard = "RequirePlatformAdmin")]
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateTenantInput,
    ) -> ApiResult<TenantPayload> {
        let app = app(ctx)?;
        let new = NewTenant {
            slug: provision::parse_new_slug(&input.slug)?,
            name: input.name,
            domains: input.domains,
        };
        let mut conn = app.db.platform(&platform_admin(ctx)?).await?;
        let record = provision::create_tenant(&mut conn, &app.installation, &new).await?;
        Ok(TenantPayload {
            tenant: record.into(),
        })
    }

    /// Refuses every request of a tenant from now on (its data is kept); its NATS account
    /// is disabled (every user revoked).
    #[graphql(guard = "RequirePlatformAdmin")]
    async fn suspend_tenant(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Slug of the tenant.")] slug: String,
    ) -> ApiResult<TenantPayload> {
        set_status(ctx, &slug, TenantStatus::Suspended).await
    }

    /// Serves a suspended tenant again.
    #[graphql(guard = "RequirePlatformAdmin")]
    async fn resume_tenant(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Slug of the tenant.")] slug: String,
    ) -> ApiResult<TenantPayload> {
        set_status(ctx, &slug, TenantStatus::Active).await
    }

    /// Returns a token to act as an admin of another tenant for at most 15 minutes,
    /// recorded in the audit log with the reason.
    #[graphql(guard = "RequirePlatformAdmin")]
    async fn impersonate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: ImpersonateInput,
    ) -> ApiResult<ImpersonatePayload> {
        let app = app(ctx)?;
        let actor = actor(ctx)?;
        let reason = input.reason.trim();
        if reason.is_empty() {
            return Err(ApiError::bad_input("a reason is required"));
        }
        let target = app
            .directory
            .by_slug(&input.tenant)
            .ok_or_else(|| ApiError::not_found(format!("there is no tenant {}", input.tenant)))?;
        if target.slug.is_platform() {
            return Err(ApiError::bad_input("the platform tenant cannot be impersonated"));
        }
        let admin = platform_admin(ctx)?;
        let impersonator = current_user(ctx).await?;
        let expires_at = Utc::now() + IMPERSONATION_TTL;
        let log_id = impersonation::start(
            &app.db,
            &admin,
            NewImpersonation {
                admin_tenant: &actor.tenant,
                admin_email: &impersonator.email,
                target: &target,
                reason,
                expires_at,
            },
        )
        .await?;
        let token = token::mint(
            &app.keys,
            &Claims {
                user_id: impersonator.id,
                tenant_id: target.id,
                role: Role::Admin,
                credential: Credential::Impersonation(log_id),
                impersonator: Some(impersonator.email.clone()),
                expires_at,
            },
        )
        .map_err(ApiError::internal)?;
        Ok(ImpersonatePayload {
            token,
            expires_at,
            tenant: Tenant::from(target.as_ref()),
        })
    }
}

/// The result of `endImpersonation`.
#[derive(SimpleObject)]
pub struct EndImpersonationPayload {
    /// Whether the impersonation was still running (false: it had already ended).
    pub ended: bool,
}

/// Mutations for the holder of an impersonation token.
#[derive(Default)]
pub struct ImpersonationMutation;

#[Object]
impl ImpersonationMutation {
    /// Ends the impersonation whose token makes this request: the token stops working at
    /// once (before its 15 minutes are up).
    async fn end_impersonation(&self, ctx: &Context<'_>) -> ApiResult<EndImpersonationPayload> {
        let actor = actor(ctx)?;
        let Credential::Impersonation(log_id) = actor.claims.credential else {
            return Err(ApiError::bad_input(
                "endImpersonation needs an impersonation token; sessions end with logout",
            ));
        };
        let ended = impersonation::end(&app(ctx)?.db, log_id).await?;
        Ok(EndImpersonationPayload { ended })
    }
}

async fn set_status(ctx: &Context<'_>, slug: &str, status: TenantStatus) -> ApiResult<TenantPayload> {
    let app = app(ctx)?;
    let slug = provision::parse_slug(slug)?;
    let mut conn = app.db.platform(&platform_admin(ctx)?).await?;
    let record = registry::set_status(&mut conn, &slug, status).await?;
    drop(conn);
    // A suspended tenant's NATS account revokes every user; resuming re-enables them. The
    // status has changed whatever NATS says: a failure here is logged, and the account is
    // re-signed and handed to NATS again at the next start.
    if let Err(error) = crate::nats::tenant_status_changed(app, record.id).await {
        tracing::error!(tenant = %slug, error = %format!("{error:#}"), "cannot update the tenant's NATS account");
    }
    Ok(TenantPayload {
        tenant: record.into(),
    })
}

/// A tenant by id for `node(id:)`: the caller's own, or any to a platform admin.
pub(super) async fn tenant_node(ctx: &Context<'_>, id: uuid::Uuid) -> ApiResult<Option<Tenant>> {
    let actor = actor(ctx)?;
    if actor.tenant.id == id {
        return Ok(Some(Tenant::from(actor.tenant.as_ref())));
    }
    let Some(witness) = super::context::scope(ctx)?.platform_admin() else {
        return Ok(None);
    };
    let mut conn = app(ctx)?.db.platform(&witness).await?;
    let record = diesel_async::RunQueryDsl::first::<TenantRecord>(
        tenants::table.find(id).select(TenantRecord::as_select()),
        &mut conn,
    )
    .await
    .optional()?;
    Ok(record.map(Tenant::from))
}
