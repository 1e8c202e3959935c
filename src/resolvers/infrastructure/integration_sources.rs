//! Integration sources: the `IntegrationSource` object, the `integrationSources` list,
//! and creating, updating and deleting sources.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::{config_object, maybe_id, name_cursor, trimmed_name};
use crate::resolvers::context::{app, scope};
use crate::resolvers::enums::IntegrationKind;
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::models::IntegrationSourceRow;
use crate::resolvers::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::schema::tenant::integration_sources;

/// A source of inventory: an external system devices are imported from.
#[derive(Clone)]
pub struct IntegrationSource(pub IntegrationSourceRow);

impl From<IntegrationSourceRow> for IntegrationSource {
    fn from(row: IntegrationSourceRow) -> Self {
        Self(row)
    }
}

/// A source of inventory: an external system devices are imported from.
#[Object]
impl IntegrationSource {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("IntegrationSource", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Kind of external system.
    async fn kind(&self) -> IntegrationKind {
        IntegrationKind::from_stored(&self.0.kind)
    }
    /// Whether it syncs.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Last successful sync.
    async fn last_sync_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_sync_at
    }
    /// Error of the last failed sync.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
}

/// Input of `createIntegrationSource`.
#[derive(InputObject)]
pub struct CreateIntegrationSourceInput {
    /// Unique name.
    pub name: String,
    /// Kind of external system.
    pub kind: IntegrationKind,
    /// Partition imported devices go to.
    pub partition_id: Option<ID>,
    /// Connection settings (never secrets: reference them).
    pub config: Option<Json<serde_json::Value>>,
}

/// An integration source after a mutation.
#[derive(SimpleObject)]
pub struct IntegrationSourcePayload {
    /// The source as it is now.
    pub integration_source: IntegrationSource,
}

/// Input of `updateIntegrationSource`: absent fields are left alone.
#[derive(InputObject)]
pub struct UpdateIntegrationSourceInput {
    /// The source to change.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New configuration (a JSON object; replaces the old one).
    pub config: Option<Json<serde_json::Value>>,
    /// Sync it or not.
    pub enabled: Option<bool>,
    /// New partition (`null` clears it).
    #[graphql(default)]
    pub partition_id: MaybeUndefined<ID>,
}

#[derive(AsChangeset)]
#[diesel(table_name = integration_sources)]
struct IntegrationSourceChanges {
    name: Option<String>,
    config: Option<serde_json::Value>,
    enabled: Option<bool>,
    partition_id: Option<Option<Uuid>>,
    updated_at: DateTime<Utc>,
}

delete_types!(
    DeleteIntegrationSourceInput,
    DeleteIntegrationSourcePayload,
    "IntegrationSource"
);

/// The root query fields of integration sources.
#[derive(Default)]
pub struct IntegrationSourceQuery;

#[Object]
impl IntegrationSourceQuery {
    /// Integration sources, by name.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn integration_sources(
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
    ) -> ApiResult<Connection<Cursor, IntegrationSource, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = integration_sources::table
            .select(IntegrationSourceRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            integration_sources::name,
            integration_sources::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &IntegrationSourceRow| name_cursor(&r.name, r.id),
            IntegrationSource::from,
            EmptyFields
        )
    }
}

/// The root mutation fields of integration sources.
#[derive(Default)]
pub struct IntegrationSourceMutation;

#[Object]
impl IntegrationSourceMutation {
    /// Creates an integration source.
    async fn create_integration_source(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateIntegrationSourceInput,
    ) -> ApiResult<IntegrationSourcePayload> {
        let partition = decode_optional("Partition", input.partition_id.as_ref())?;
        let config = input.config.map(|c| c.0).unwrap_or_else(|| serde_json::json!({}));
        if !config.is_object() {
            return Err(ApiError::bad_input("config must be a JSON object"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(integration_sources::table)
            .values((
                integration_sources::name.eq(trimmed_name(&input.name)),
                integration_sources::kind.eq(input.kind.as_str()),
                integration_sources::partition_id.eq(partition),
                integration_sources::config.eq(config),
            ))
            .returning(IntegrationSourceRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(IntegrationSourcePayload {
            integration_source: row.into(),
        })
    }

    /// Changes an integration source (rename, reconfigure, enable, disable, move).
    async fn update_integration_source(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateIntegrationSourceInput,
    ) -> ApiResult<IntegrationSourcePayload> {
        let changes = IntegrationSourceChanges {
            name: input.name.as_deref().map(trimmed_name),
            config: config_object(input.config)?,
            enabled: input.enabled,
            partition_id: maybe_id("Partition", input.partition_id)?,
            updated_at: Utc::now(),
        };
        let row = update_by_id!(
            ctx,
            input.id,
            "IntegrationSource",
            integration_sources,
            changes,
            IntegrationSourceRow
        );
        Ok(IntegrationSourcePayload {
            integration_source: row.into(),
        })
    }

    /// Deletes an integration source (devices it imported stay).
    async fn delete_integration_source(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteIntegrationSourceInput,
    ) -> ApiResult<DeleteIntegrationSourcePayload> {
        delete_by_id!(
            ctx,
            input,
            "IntegrationSource",
            integration_sources,
            DeleteIntegrationSourcePayload
        )
    }
}
