//! Edge sites: the `EdgeSite` object, the `edgeSites` list, and creating, updating and
//! deleting sites.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::{maybe_id, name_cursor, trimmed_name};
use crate::resolvers::context::{app, scope};
use crate::resolvers::enums::EdgeSiteStatus;
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::models::EdgeSiteRow;
use crate::resolvers::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::schema::tenant::edge_sites;

/// An edge site: a remote location onboarded with its own collectors.
#[derive(Clone)]
pub struct EdgeSite(pub EdgeSiteRow);

impl From<EdgeSiteRow> for EdgeSite {
    fn from(row: EdgeSiteRow) -> Self {
        Self(row)
    }
}

/// An edge site: a remote location onboarded with its own collectors.
#[Object]
impl EdgeSite {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("EdgeSite", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Where it is.
    async fn location(&self) -> &str {
        &self.0.location
    }
    /// Connectivity.
    async fn status(&self) -> EdgeSiteStatus {
        EdgeSiteStatus::from_stored(&self.0.status)
    }
}

/// Input of `createEdgeSite`.
#[derive(InputObject)]
pub struct CreateEdgeSiteInput {
    /// Unique name.
    pub name: String,
    /// Where it is.
    #[graphql(default)]
    pub location: String,
    /// Partition of the site's devices.
    pub partition_id: Option<ID>,
}

/// An edge site after a mutation.
#[derive(SimpleObject)]
pub struct EdgeSitePayload {
    /// The site as it is now.
    pub edge_site: EdgeSite,
}

/// Input of `updateEdgeSite`: absent fields are left alone.
#[derive(InputObject)]
pub struct UpdateEdgeSiteInput {
    /// The site to change.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New location.
    pub location: Option<String>,
    /// New status.
    pub status: Option<EdgeSiteStatus>,
    /// New partition (`null` clears it).
    #[graphql(default)]
    pub partition_id: MaybeUndefined<ID>,
}

#[derive(AsChangeset)]
#[diesel(table_name = edge_sites)]
struct EdgeSiteChanges {
    name: Option<String>,
    location: Option<String>,
    status: Option<&'static str>,
    partition_id: Option<Option<Uuid>>,
    updated_at: DateTime<Utc>,
}

delete_types!(DeleteEdgeSiteInput, DeleteEdgeSitePayload, "EdgeSite");

/// The root query fields of edge sites.
#[derive(Default)]
pub struct EdgeSiteQuery;

#[Object]
impl EdgeSiteQuery {
    /// Edge sites, by name.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn edge_sites(
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
    ) -> ApiResult<Connection<Cursor, EdgeSite, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let query = edge_sites::table
            .select(EdgeSiteRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        let query = keyset!(
            query,
            &window,
            edge_sites::name,
            edge_sites::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &EdgeSiteRow| name_cursor(&r.name, r.id),
            EdgeSite::from,
            EmptyFields
        )
    }
}

/// The root mutation fields of edge sites.
#[derive(Default)]
pub struct EdgeSiteMutation;

#[Object]
impl EdgeSiteMutation {
    /// Creates an edge site.
    async fn create_edge_site(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateEdgeSiteInput,
    ) -> ApiResult<EdgeSitePayload> {
        let partition = decode_optional("Partition", input.partition_id.as_ref())?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(edge_sites::table)
            .values((
                edge_sites::name.eq(trimmed_name(&input.name)),
                edge_sites::location.eq(input.location),
                edge_sites::partition_id.eq(partition),
            ))
            .returning(EdgeSiteRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(EdgeSitePayload {
            edge_site: row.into(),
        })
    }

    /// Changes an edge site (rename, relocate, set its status, move).
    async fn update_edge_site(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateEdgeSiteInput,
    ) -> ApiResult<EdgeSitePayload> {
        let changes = EdgeSiteChanges {
            name: input.name.as_deref().map(trimmed_name),
            location: input.location,
            status: input.status.map(EdgeSiteStatus::as_str),
            partition_id: maybe_id("Partition", input.partition_id)?,
            updated_at: Utc::now(),
        };
        let row = update_by_id!(ctx, input.id, "EdgeSite", edge_sites, changes, EdgeSiteRow);
        Ok(EdgeSitePayload {
            edge_site: row.into(),
        })
    }

    /// Deletes an edge site with its onboarding records and credentials.
    async fn delete_edge_site(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteEdgeSiteInput,
    ) -> ApiResult<DeleteEdgeSitePayload> {
        delete_by_id!(ctx, input, "EdgeSite", edge_sites, DeleteEdgeSitePayload)
    }
}
