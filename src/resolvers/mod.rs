//! The GraphQL API: one module per domain, each exporting its part of the roots, merged
//! here. The schema is buildable without a database (`enclave schema` prints it); the
//! request's scope and the shared `App` are attached per request / at startup.
//!
//! Layout: a domain with several resources is a folder with one file per resource
//! (`inventory/devices.rs`, `infrastructure/agents.rs`...), each holding its object, its
//! inputs and payloads and its root fields, merged in the folder's `mod.rs`. The row types
//! the loaders read live in `models`, which both `loaders` and the resolvers import.
//!
//! One object style: an object over a table row never copies the row. It is a newtype
//! over the model row with `#[Object]` getters (`Device(DeviceRow)`, converting stored
//! text to enums and keys to global ids on the way out), or, where every field is the
//! stored value, `SimpleObject` derived on the row itself (`ApiToken`, `Session`).
//! `SimpleObject` structs filled field by field are for payloads and computed values
//! (metric buckets, `Viewer`, `Tenant` from the registry), not for rows.

pub mod access;
pub mod context;
pub mod device_history;
pub mod edge;
pub mod edge_assets;
pub mod enums;
pub mod errors;
mod health;
pub mod identity;
pub mod ids;
pub mod infrastructure;
pub mod inventory;
pub mod jobs;
pub mod limits;
pub mod loaders;
pub mod models;
pub mod monitoring;
mod node;
pub mod observability;
pub mod pagination;
pub mod platform;
pub mod root;
pub mod scalars;
pub mod subscriptions;
pub mod telemetry;

use std::sync::Arc;

use async_graphql::{MergedObject, SDLExportOptions, Schema};

use crate::app::App;
use root::Gated;

/// The root query: every domain's queries merged.
#[derive(MergedObject, Default)]
pub struct Query(
    health::HealthQuery,
    identity::IdentityQuery,
    platform::PlatformQuery,
    inventory::InventoryQuery,
    device_history::DeviceHistoryQuery,
    infrastructure::InfrastructureQuery,
    monitoring::MonitoringQuery,
    observability::ObservabilityQuery,
    telemetry::TelemetryQuery,
    node::NodeQuery,
    edge::EdgeQuery,
    edge_assets::EdgeAssetsQuery,
    jobs::JobsQuery,
    jobs::PlatformJobsQuery,
);

/// The root mutation: every domain's mutations merged.
#[derive(MergedObject, Default)]
pub struct Mutation(
    identity::IdentityMutation,
    platform::PlatformMutation,
    platform::ImpersonationMutation,
    inventory::InventoryMutation,
    infrastructure::InfrastructureMutation,
    monitoring::MonitoringMutation,
    edge::EdgeMutation,
    jobs::JobsMutation,
    jobs::PlatformJobsMutation,
);

/// The executable schema.
pub type EnclaveSchema = Schema<Gated<Query>, Gated<Mutation>, subscriptions::SubscriptionRoot>;

/// A builder of [`EnclaveSchema`].
pub type EnclaveSchemaBuilder =
    async_graphql::SchemaBuilder<Gated<Query>, Gated<Mutation>, subscriptions::SubscriptionRoot>;

fn builder() -> EnclaveSchemaBuilder {
    Schema::build(
        Gated(Query::default()),
        Gated(Mutation::default()),
        subscriptions::SubscriptionRoot,
    )
}

/// Builds the schema around the shared application state, with its request limits.
pub fn build_schema(app: Arc<App>) -> EnclaveSchema {
    schema_builder(app).finish()
}

/// The schema builder with the application state and limits, for the HTTP layer to add
/// its extensions to.
pub fn schema_builder(app: Arc<App>) -> EnclaveSchemaBuilder {
    let limits = &app.limits;
    builder()
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_directives(limits.max_directives)
        .data(app.clone())
}

/// The schema as SDL, with fields, arguments and enum values sorted so that the
/// committed `schema.graphql` only changes when the API does.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
