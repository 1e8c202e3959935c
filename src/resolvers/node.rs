//! `node(id)`: any object by its global id (Relay's object identification).

use async_graphql::{Context, ID, Interface, Object};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::context::{loaders, scope};
use super::device_history::{DeviceAliasState, MergeAudit};
use super::edge::{EdgeComponent, OnboardingEvent, OnboardingPackage};
use super::errors::ApiResult;
use super::identity::{ApiToken, Session, User};
use super::ids;
use super::infrastructure::{
    Agent, Checker, EdgeSite, Gateway, HealthEvent, IntegrationSource, PollingSchedule, ServiceCheck,
};
use super::inventory::{Device, DeviceGroup, DeviceIdentifier, Interface as NetworkInterface, Partition};
use super::jobs::{Job, JobRow, JobSchedule, JobScheduleRow};
use super::models::{
    AlertRow, AliasStateRow, CheckerRow, EdgeComponentRow, EdgeSiteRow, EventRow, HealthEventRow,
    IdentifierRow, IntegrationSourceRow, InterfaceRow, MergeAuditRow, OnboardingEventRow,
    OnboardingPackageRow, PollingScheduleRow, ServiceCheckRow,
};
use super::monitoring::{Alert, Event};
use super::platform::Tenant;
use crate::auth::users::UserRecord;
use crate::schema::tenant::{
    alerts, api_tokens, checkers, device_alias_states, device_identifiers, edge_components, edge_sites,
    events, health_events, integration_sources, interfaces, job_schedules, jobs, merge_audits,
    onboarding_events, onboarding_packages, polling_schedules, service_checks, tokens, users,
};

/// An object with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque global id."))]
pub enum Node {
    Device(Device),
    Interface(NetworkInterface),
    DeviceGroup(DeviceGroup),
    Partition(Partition),
    Alert(Alert),
    Event(Event),
    Gateway(Gateway),
    Agent(Agent),
    Checker(Checker),
    ServiceCheck(ServiceCheck),
    PollingSchedule(PollingSchedule),
    HealthEvent(HealthEvent),
    IntegrationSource(IntegrationSource),
    EdgeSite(EdgeSite),
    User(User),
    ApiToken(ApiToken),
    DeviceIdentifier(DeviceIdentifier),
    Tenant(Tenant),
    OnboardingPackage(OnboardingPackage),
    OnboardingEvent(OnboardingEvent),
    EdgeComponent(EdgeComponent),
    DeviceAliasState(DeviceAliasState),
    MergeAudit(MergeAudit),
    Session(Session),
    JobSchedule(JobSchedule),
    Job(Job),
}

/// Reads one row by primary key in the request's tenant transaction.
macro_rules! find {
    ($ctx:expr, $table:ident, $row:ty, $key:expr) => {{
        let mut conn = scope($ctx)?.conn().await?;
        $table::table
            .find($key)
            .select(<$row>::as_select())
            .first::<$row>(&mut conn)
            .await
            .optional()?
    }};
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object of the caller's tenant by its global id; null if there is none.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the object.")] id: ID,
    ) -> ApiResult<Option<Node>> {
        let Some((kind, key)) = ids::decode_any(&id) else {
            return Ok(None);
        };
        let loaders = loaders(ctx)?;
        Ok(match kind.as_str() {
            "Device" => loaders.device(key).await?.map(|r| Node::Device(Device(r))),
            "DeviceGroup" => loaders
                .group(key)
                .await?
                .map(|r| Node::DeviceGroup(DeviceGroup(r))),
            "Partition" => loaders
                .partition(key)
                .await?
                .map(|r| Node::Partition(Partition(r))),
            "Interface" => {
                find!(ctx, interfaces, InterfaceRow, key).map(|r| Node::Interface(NetworkInterface(r)))
            }
            "Alert" => find!(ctx, alerts, AlertRow, key).map(|r| Node::Alert(Alert(r))),
            "Event" => find!(ctx, events, EventRow, key).map(|r| Node::Event(Event(r))),
            "Gateway" => loaders.gateway(key).await?.map(|r| Node::Gateway(r.into())),
            "Agent" => loaders.agent(key).await?.map(|r| Node::Agent(r.into())),
            "Checker" => find!(ctx, checkers, CheckerRow, key).map(|r| Node::Checker(r.into())),
            "ServiceCheck" => {
                find!(ctx, service_checks, ServiceCheckRow, key).map(|r| Node::ServiceCheck(r.into()))
            }
            "PollingSchedule" => find!(ctx, polling_schedules, PollingScheduleRow, key)
                .map(|r| Node::PollingSchedule(r.into())),
            "JobSchedule" => {
                find!(ctx, job_schedules, JobScheduleRow, key).map(|r| Node::JobSchedule(r.into()))
            }
            "Job" => find!(ctx, jobs, JobRow, key).map(|r| Node::Job(r.into())),
            "HealthEvent" => {
                find!(ctx, health_events, HealthEventRow, key).map(|r| Node::HealthEvent(r.into()))
            }
            "IntegrationSource" => find!(ctx, integration_sources, IntegrationSourceRow, key)
                .map(|r| Node::IntegrationSource(r.into())),
            "EdgeSite" => find!(ctx, edge_sites, EdgeSiteRow, key).map(|r| Node::EdgeSite(r.into())),
            "DeviceIdentifier" => find!(ctx, device_identifiers, IdentifierRow, key)
                .map(|r| Node::DeviceIdentifier(DeviceIdentifier(r))),
            // Users and API tokens are listed to admins only (see `access`); the same holds here.
            "User" if super::context::scope(ctx)?.role()? >= crate::auth::Role::Admin => {
                find!(ctx, users, UserRecord, key).map(|r| Node::User(r.into()))
            }
            "ApiToken" if super::context::scope(ctx)?.role()? >= crate::auth::Role::Admin => {
                find!(ctx, api_tokens, ApiToken, key).map(Node::ApiToken)
            }
            "Tenant" => super::platform::tenant_node(ctx, key).await?.map(Node::Tenant),
            "DeviceAliasState" => find!(ctx, device_alias_states, AliasStateRow, key)
                .map(|r| Node::DeviceAliasState(DeviceAliasState(r))),
            "MergeAudit" => {
                find!(ctx, merge_audits, MergeAuditRow, key).map(|r| Node::MergeAudit(MergeAudit(r)))
            }
            // Sessions are listed to admins only (see `access`); the same holds here.
            "Session" if super::context::scope(ctx)?.role()? >= crate::auth::Role::Admin => {
                find!(ctx, tokens, Session, key).map(Node::Session)
            }
            // The edge's onboarding is listed to admins only, and so it is here.
            "OnboardingPackage" if super::context::scope(ctx)?.role()? >= crate::auth::Role::Admin => {
                find!(ctx, onboarding_packages, OnboardingPackageRow, key)
                    .map(|r| Node::OnboardingPackage(r.into()))
            }
            "OnboardingEvent" if super::context::scope(ctx)?.role()? >= crate::auth::Role::Admin => {
                find!(ctx, onboarding_events, OnboardingEventRow, key)
                    .map(|r| Node::OnboardingEvent(r.into()))
            }
            "EdgeComponent" if super::context::scope(ctx)?.role()? >= crate::auth::Role::Admin => {
                find!(ctx, edge_components, EdgeComponentRow, key).map(|r| Node::EdgeComponent(r.into()))
            }
            _ => None,
        })
    }
}
