//! Edge onboarding in the API (tenant admins): one-time onboarding packages and their
//! events. The download itself is `GET /onboarding/<token>` (see `crate::edge::onboarding`).

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::context::{actor, app, scope};
use super::enums::{EdgeComponentKind, OnboardingEventKind, OnboardingPackageStatus};
use super::errors::{ApiError, ApiResult, Code};
use super::ids;
use super::models::{EdgeComponentRow, OnboardingEventRow, OnboardingPackageRow};
use super::monitoring::{cursor_time, time_cursor};
use super::pagination::{Window, fetch_page, keyset};
use crate::edge::ca::ComponentKind;
use crate::edge::onboarding;
use crate::schema::tenant::{
    edge_components, edge_sites, nats_credentials, onboarding_events, onboarding_packages,
};

impl EdgeComponentKind {
    fn component(self) -> ComponentKind {
        match self {
            Self::Agent => ComponentKind::Agent,
            Self::Poller => ComponentKind::Poller,
            Self::Checker => ComponentKind::Checker,
            Self::Collector => ComponentKind::Collector,
        }
    }
}

/// A one-time package that onboards one edge component.
#[derive(Clone)]
pub struct OnboardingPackage(pub OnboardingPackageRow);

impl From<OnboardingPackageRow> for OnboardingPackage {
    fn from(row: OnboardingPackageRow) -> Self {
        Self(row)
    }
}

/// A one-time package that onboards one edge component.
#[Object]
impl OnboardingPackage {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("OnboardingPackage", self.0.id)
    }
    /// What the component is.
    async fn kind(&self) -> EdgeComponentKind {
        EdgeComponentKind::from_stored(self.0.kind.as_deref().unwrap_or("agent"))
    }
    /// Name given at creation.
    async fn name(&self) -> &str {
        self.0.name.as_deref().unwrap_or_default()
    }
    /// The component id its certificate names (`<componentId>.<tenant>.<edge domain>`).
    async fn component_id(&self) -> &str {
        self.0.component_id.as_deref().unwrap_or_default()
    }
    /// Where it is in its life.
    async fn status(&self) -> OnboardingPackageStatus {
        OnboardingPackageStatus::from_stored(&self.0.status)
    }
    /// When its download token stops working.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The edge site it belongs to.
    async fn edge_site_id(&self) -> ID {
        ids::encode("EdgeSite", self.0.edge_site_id)
    }
}

/// One step of an onboarding package's life.
#[derive(Clone)]
pub struct OnboardingEvent(pub OnboardingEventRow);

impl From<OnboardingEventRow> for OnboardingEvent {
    fn from(row: OnboardingEventRow) -> Self {
        Self(row)
    }
}

/// One step of an onboarding package's life.
#[Object]
impl OnboardingEvent {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("OnboardingEvent", self.0.id)
    }
    /// The package.
    async fn package_id(&self) -> ID {
        ids::encode("OnboardingPackage", self.0.onboarding_package_id)
    }
    /// What happened.
    async fn event(&self) -> OnboardingEventKind {
        OnboardingEventKind::from_stored(&self.0.event)
    }
    /// Details for people.
    async fn detail(&self) -> &str {
        &self.0.detail
    }
    /// When.
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
}

/// An onboarded edge component: one issued certificate.
#[derive(Clone)]
pub struct EdgeComponent(pub EdgeComponentRow);

impl From<EdgeComponentRow> for EdgeComponent {
    fn from(row: EdgeComponentRow) -> Self {
        Self(row)
    }
}

/// An onboarded edge component: one issued certificate.
#[Object]
impl EdgeComponent {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("EdgeComponent", self.0.id)
    }
    /// What the component is.
    async fn kind(&self) -> EdgeComponentKind {
        EdgeComponentKind::from_stored(&self.0.kind)
    }
    /// Its id in its certificate's CN.
    async fn component_id(&self) -> &str {
        &self.0.component_id
    }
    /// Name given to its onboarding package.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Its certificate's CN.
    async fn common_name(&self) -> &str {
        &self.0.common_name
    }
    /// Its certificate's serial number (hex).
    async fn serial(&self) -> &str {
        &self.0.serial
    }
    /// When its certificate expires (renew by onboarding again).
    async fn not_after(&self) -> DateTime<Utc> {
        self.0.not_after
    }
    /// When it was revoked; its certificate is refused from then on.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// Its last request to the edge endpoint.
    async fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.0.last_seen
    }
    /// When its certificate was issued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Input of `revokeEdgeComponent`.
#[derive(InputObject)]
pub struct RevokeEdgeComponentInput {
    /// The component to revoke.
    pub id: ID,
}

/// A component after `revokeEdgeComponent`.
#[derive(SimpleObject)]
pub struct RevokeEdgeComponentPayload {
    /// The component as it is now.
    pub edge_component: EdgeComponent,
}

/// Input of `createOnboardingPackage`.
#[derive(InputObject)]
pub struct CreateOnboardingPackageInput {
    /// What the component is.
    pub kind: EdgeComponentKind,
    /// A name for people (1 to 200 characters).
    pub name: String,
    /// The edge site the component belongs to.
    pub edge_site_id: ID,
}

/// A new onboarding package and its download token.
#[derive(SimpleObject)]
pub struct CreateOnboardingPackagePayload {
    /// The package.
    pub package: OnboardingPackage,
    /// Download it once at `GET /onboarding/<downloadToken>` within 24 hours. Shown only
    /// here: the server keeps only its hash.
    pub download_token: String,
}

/// Edge onboarding queries.
#[derive(Default)]
pub struct EdgeQuery;

#[Object]
impl EdgeQuery {
    /// Onboarding packages, newest first (tenant admins).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn onboarding_packages(
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
    ) -> ApiResult<Connection<super::pagination::Cursor, OnboardingPackage, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = onboarding_packages::table
            .select(OnboardingPackageRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            onboarding_packages::created_at,
            onboarding_packages::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &OnboardingPackageRow| time_cursor(r.created_at, r.id),
            OnboardingPackage::from,
            EmptyFields
        )
    }

    /// Onboarded edge components (issued certificates), newest first (tenant admins).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn edge_components(
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
    ) -> ApiResult<Connection<super::pagination::Cursor, EdgeComponent, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = edge_components::table
            .select(EdgeComponentRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            edge_components::created_at,
            edge_components::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &EdgeComponentRow| time_cursor(r.created_at, r.id),
            EdgeComponent::from,
            EmptyFields
        )
    }

    /// Onboarding events, newest first, optionally of one package (tenant admins).
    #[graphql(complexity = "super::limits::list_cost(first, last, child_complexity)")]
    async fn onboarding_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this package's events; all when absent.")] package_id: Option<ID>,
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
    ) -> ApiResult<Connection<super::pagination::Cursor, OnboardingEvent, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let package = ids::decode_optional("OnboardingPackage", package_id.as_ref())?;
        let mut query = onboarding_events::table
            .select(OnboardingEventRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(package) = package {
            query = query.filter(onboarding_events::onboarding_package_id.eq(package));
        }
        let query = keyset!(
            query,
            &window,
            onboarding_events::occurred_at,
            onboarding_events::id,
            cursor_time,
            descending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &OnboardingEventRow| time_cursor(r.occurred_at, r.id),
            OnboardingEvent::from,
            EmptyFields
        )
    }
}

/// Edge onboarding mutations.
#[derive(Default)]
pub struct EdgeMutation;

#[Object]
impl EdgeMutation {
    /// Creates a one-time onboarding package for an edge component (tenant admins). Its
    /// download token is in the payload only.
    async fn create_onboarding_package(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateOnboardingPackageInput,
    ) -> ApiResult<CreateOnboardingPackagePayload> {
        let app = app(ctx)?;
        if app.installation.edge.is_none() {
            return Err(ApiError::new(
                Code::Unavailable,
                "edge onboarding is not configured on this server (ENCLAVE_EDGE_KEY)",
            ));
        }
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::bad_input("name must have 1 to 200 characters"));
        }
        let site = ids::decode("EdgeSite", &input.edge_site_id)?;
        let actor = actor(ctx)?;
        let scope = scope(ctx)?;
        {
            let mut conn = scope.conn().await?;
            let found: i64 = edge_sites::table
                .filter(edge_sites::id.eq(site))
                .count()
                .get_result(&mut conn)
                .await?;
            if found == 0 {
                return Err(ApiError::not_found("no such edge site"));
            }
        }
        let kind = input.kind.component();
        // An impersonating platform admin is no user of this tenant.
        let created_by = actor
            .claims
            .impersonator
            .is_none()
            .then_some(actor.claims.user_id);
        let mut conn = scope.conn().await?;
        let created =
            onboarding::create_package(app, &actor.tenant, conn.pg(), site, kind, &name, created_by)
                .await
                .map_err(|error| match error {
                    onboarding::CreateError::Tx(e) => ApiError::from(e),
                    onboarding::CreateError::Edge(e) => ApiError::internal(e),
                })?;
        let row: OnboardingPackageRow = onboarding_packages::table
            .find(created.id)
            .select(OnboardingPackageRow::as_select())
            .first(&mut conn)
            .await?;
        let token = created.token;
        Ok(CreateOnboardingPackagePayload {
            package: row.into(),
            download_token: token,
        })
    }

    /// Revokes an edge component: every certificate it holds (renewals included) is refused
    /// on its next request to the edge endpoint, and its NATS users are revoked (their
    /// account is re-signed and handed to the NATS resolver, which closes their
    /// connections) (tenant admins). Revoking again changes nothing.
    async fn revoke_edge_component(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: RevokeEdgeComponentInput,
    ) -> ApiResult<RevokeEdgeComponentPayload> {
        let id = ids::decode("EdgeComponent", &input.id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let row: Option<EdgeComponentRow> = edge_components::table
            .find(id)
            .select(EdgeComponentRow::as_select())
            .for_update()
            .first(&mut conn)
            .await
            .optional()?;
        let row = row.ok_or_else(|| ApiError::not_found("no such edge component"))?;
        if row.revoked_at.is_some() {
            return Ok(RevokeEdgeComponentPayload {
                edge_component: row.into(),
            });
        }
        // Every certificate of the component (renewals included) goes at once.
        diesel::update(
            edge_components::table
                .filter(edge_components::component_id.eq(&row.component_id))
                .filter(edge_components::revoked_at.is_null()),
        )
        .set(edge_components::revoked_at.eq(diesel::dsl::now))
        .execute(&mut conn)
        .await?;
        let row = edge_components::table
            .find(id)
            .select(EdgeComponentRow::as_select())
            .first(&mut conn)
            .await?;
        if let Some(package) = row.onboarding_package_id {
            diesel::update(onboarding_packages::table.find(package))
                .set(onboarding_packages::status.eq("revoked"))
                .execute(&mut conn)
                .await?;
            onboarding::record_event(
                conn.pg(),
                package,
                "revoked",
                &format!("certificate {} revoked", row.serial),
            )
            .await?;
        }
        // And every NATS user issued to it (with any of its certificates).
        let certificates: Vec<Uuid> = edge_components::table
            .filter(edge_components::component_id.eq(&row.component_id))
            .select(edge_components::id)
            .load(&mut conn)
            .await?;
        let nats_users: Vec<String> = diesel::update(
            nats_credentials::table
                .filter(nats_credentials::edge_component_id.eq_any(certificates))
                .filter(nats_credentials::revoked_at.is_null()),
        )
        .set(nats_credentials::revoked_at.eq(diesel::dsl::now))
        .returning(nats_credentials::user_public_key)
        .get_results(&mut conn)
        .await?;
        if !nats_users.is_empty() {
            // Committed on its own before this transaction: should the mutation still roll
            // back, the users stay revoked in NATS (the safe side).
            crate::nats::revoke_users(app(ctx)?, actor(ctx)?.tenant.id, &nats_users)
                .await
                .map_err(ApiError::internal)?;
        }
        Ok(RevokeEdgeComponentPayload {
            edge_component: row.into(),
        })
    }
}
