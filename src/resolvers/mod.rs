//! The GraphQL API: one module per domain, each exporting its part of the roots, merged
//! here. The schema is buildable without a database (`enclave schema` prints it).

mod health;

use async_graphql::{EmptyMutation, EmptySubscription, MergedObject, SDLExportOptions, Schema};

/// The root query: every domain's queries merged.
#[derive(MergedObject, Default)]
pub struct Query(health::HealthQuery);

/// The executable schema.
pub type EnclaveSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the schema. Request-scoped data (the caller's scope, its tenant transaction)
/// is attached per request, never here.
pub fn build_schema() -> EnclaveSchema {
    Schema::build(Query::default(), EmptyMutation, EmptySubscription).finish()
}

/// The schema as SDL, with fields, arguments and enum values sorted so that the
/// committed `schema.graphql` only changes when the API does.
pub fn sdl() -> String {
    build_schema().sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
