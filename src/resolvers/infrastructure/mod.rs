//! Infrastructure and integrations: gateways, agents and their checkers, service checks,
//! polling schedules, health events, integration sources and edge sites, one file per
//! resource (its object, inputs, payloads and root fields), merged here with the helpers
//! they share.

use async_graphql::{ID, Json, MaybeUndefined, MergedObject};
use uuid::Uuid;

use super::errors::{ApiError, ApiResult};
use super::ids;
use super::pagination::Cursor;

fn name_cursor(name: &str, id: Uuid) -> Cursor {
    Cursor {
        key: name.to_owned(),
        id,
    }
}

fn trimmed_name(name: &str) -> String {
    name.trim().to_owned()
}

/// A configuration given as input: a JSON object, or a bad-input error.
fn config_object(config: Option<Json<serde_json::Value>>) -> ApiResult<Option<serde_json::Value>> {
    match config.map(|c| c.0) {
        Some(config) if !config.is_object() => Err(ApiError::bad_input("config must be a JSON object")),
        config => Ok(config),
    }
}

fn maybe_id(kind: &str, value: MaybeUndefined<ID>) -> ApiResult<Option<Option<Uuid>>> {
    Ok(match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(id) => Some(Some(ids::decode(kind, &id)?)),
    })
}

/// Updates one row by global id with a changeset; NOT_FOUND if absent.
macro_rules! update_by_id {
    ($ctx:expr, $id:expr, $kind:literal, $table:ident, $changes:expr, $row:ty) => {{
        let id = ids::decode($kind, &$id)?;
        let mut conn = scope($ctx)?.conn().await?;
        diesel::update($table::table.find(id))
            .set($changes)
            .returning(<$row>::as_returning())
            .get_result::<$row>(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found(concat!("no such ", $kind)))?
    }};
}

/// Declares `Delete<Type>Input` and `Delete<Type>Payload` for a resource.
macro_rules! delete_types {
    ($input:ident, $payload:ident, $what:literal) => {
        #[doc = concat!("Input of `delete", $what, "`.")]
        #[derive(InputObject)]
        pub struct $input {
            #[doc = concat!("The ", $what, " to delete.")]
            pub id: ID,
        }

        #[doc = concat!("The result of `delete", $what, "`.")]
        #[derive(SimpleObject)]
        pub struct $payload {
            /// Id of the deleted object.
            pub deleted_id: ID,
        }
    };
}

/// Deletes one row by global id in the request's tenant transaction; NOT_FOUND if absent.
macro_rules! delete_by_id {
    ($ctx:expr, $input:expr, $kind:literal, $table:ident, $payload:ident) => {{
        let id = ids::decode($kind, &$input.id)?;
        let mut conn = scope($ctx)?.conn().await?;
        let deleted = diesel::delete($table::table.find(id)).execute(&mut conn).await?;
        if deleted == 0 {
            return Err(ApiError::not_found(concat!("no such ", $kind)));
        }
        Ok($payload {
            deleted_id: $input.id,
        })
    }};
}

mod agents;
mod checkers;
mod edge_sites;
mod gateways;
mod health_events;
mod integration_sources;
mod polling_schedules;
mod service_checks;

pub use agents::Agent;
pub use checkers::Checker;
pub use edge_sites::EdgeSite;
pub use gateways::Gateway;
pub use health_events::HealthEvent;
pub use integration_sources::IntegrationSource;
pub use polling_schedules::{PollJob, PollingSchedule};
pub use service_checks::ServiceCheck;

/// Infrastructure's root query fields.
#[derive(MergedObject, Default)]
pub struct InfrastructureQuery(
    gateways::GatewayQuery,
    agents::AgentQuery,
    checkers::CheckerQuery,
    service_checks::ServiceCheckQuery,
    polling_schedules::PollingScheduleQuery,
    polling_schedules::PollJobQuery,
    health_events::HealthEventQuery,
    integration_sources::IntegrationSourceQuery,
    edge_sites::EdgeSiteQuery,
);

/// Infrastructure's root mutation fields.
#[derive(MergedObject, Default)]
pub struct InfrastructureMutation(
    gateways::GatewayMutation,
    agents::AgentMutation,
    checkers::CheckerMutation,
    service_checks::ServiceCheckMutation,
    polling_schedules::PollingScheduleMutation,
    integration_sources::IntegrationSourceMutation,
    edge_sites::EdgeSiteMutation,
);
