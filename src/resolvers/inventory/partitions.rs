//! Partitions: the `Partition` object, the `partitions` list, and creating, updating and
//! deleting partitions.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ipnet::IpNet;

use super::{DeletedPayload, new_name};
use crate::resolvers::context::{app, scope};
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids;
use crate::resolvers::models::PartitionRow;
use crate::resolvers::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::schema::tenant::partitions;

/// A network partition: a routing domain whose addresses may overlap other partitions'.
#[derive(Clone)]
pub struct Partition(pub PartitionRow);

/// A network partition: a routing domain whose addresses may overlap other partitions'.
#[Object]
impl Partition {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Partition", self.0.id)
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Free-text description.
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Networks of the partition.
    async fn cidrs(&self) -> Vec<String> {
        self.0.cidrs.iter().map(ToString::to_string).collect()
    }
}

/// Input of `createPartition`.
#[derive(InputObject)]
pub struct CreatePartitionInput {
    /// Unique name (1 to 200 characters).
    pub name: String,
    /// Free-text description.
    #[graphql(default)]
    pub description: String,
    /// Networks of the partition, in CIDR notation.
    #[graphql(default)]
    pub cidrs: Vec<String>,
}

/// A partition after a mutation.
#[derive(SimpleObject)]
pub struct PartitionPayload {
    /// The partition as it is now.
    pub partition: Partition,
}

/// Input of `updatePartition`: absent fields keep their value.
#[derive(InputObject)]
pub struct UpdatePartitionInput {
    /// Global id of the partition.
    pub id: ID,
    /// New unique name (not blank).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New networks (CIDR notation), replacing the old ones.
    pub cidrs: Option<Vec<String>>,
}

#[derive(AsChangeset)]
#[diesel(table_name = partitions)]
struct PartitionChanges {
    name: Option<String>,
    description: Option<String>,
    cidrs: Option<Vec<ipnet::IpNet>>,
}

/// The root query fields of partitions.
#[derive(Default)]
pub struct PartitionQuery;

#[Object]
impl PartitionQuery {
    /// Partitions, by name.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn partitions(
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
    ) -> ApiResult<Connection<Cursor, Partition>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let mut query = partitions::table
            .select(PartitionRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        query = keyset!(
            query,
            &window,
            partitions::name,
            partitions::id,
            text_key,
            ascending
        );
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |p: &PartitionRow| Cursor {
                key: p.name.clone(),
                id: p.id,
            },
            Partition,
            async_graphql::connection::EmptyFields
        )
    }
}

/// The root mutation fields of partitions.
#[derive(Default)]
pub struct PartitionMutation;

#[Object]
impl PartitionMutation {
    /// Creates a partition.
    async fn create_partition(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreatePartitionInput,
    ) -> ApiResult<PartitionPayload> {
        let cidrs = input
            .cidrs
            .iter()
            .map(|c| {
                c.trim()
                    .parse::<IpNet>()
                    .map(|n| n.trunc())
                    .map_err(|_| ApiError::bad_input(format!("{c:?} is not a network in CIDR notation")))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(partitions::table)
            .values((
                partitions::name.eq(input.name.trim().to_owned()),
                partitions::description.eq(input.description),
                partitions::cidrs.eq(cidrs),
            ))
            .returning(PartitionRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(PartitionPayload {
            partition: Partition(row),
        })
    }

    /// Renames, redescribes or re-addresses a partition (admins).
    async fn update_partition(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdatePartitionInput,
    ) -> ApiResult<PartitionPayload> {
        let key = ids::decode("Partition", &input.id)?;
        let cidrs = input
            .cidrs
            .map(|cidrs| {
                cidrs
                    .iter()
                    .map(|c| {
                        c.trim().parse::<ipnet::IpNet>().map(|n| n.trunc()).map_err(|_| {
                            ApiError::bad_input(format!("{c:?} is not a network in CIDR notation"))
                        })
                    })
                    .collect::<ApiResult<Vec<_>>>()
            })
            .transpose()?;
        let changes = PartitionChanges {
            name: new_name(input.name)?,
            description: input.description,
            cidrs,
        };
        if changes.name.is_none() && changes.description.is_none() && changes.cidrs.is_none() {
            return Err(ApiError::bad_input("give at least one field to change"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::update(partitions::table.find(key))
            .set(changes)
            .returning(PartitionRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?
            .ok_or_else(|| ApiError::not_found("no such partition"))?;
        Ok(PartitionPayload {
            partition: Partition(row),
        })
    }

    /// Deletes a partition (admins); its devices, gateways, integration sources and edge
    /// sites stay, in no partition.
    async fn delete_partition(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global id of the partition.")] id: ID,
    ) -> ApiResult<DeletedPayload> {
        let key = ids::decode("Partition", &id)?;
        let mut conn = scope(ctx)?.conn().await?;
        let deleted = diesel::delete(partitions::table.find(key))
            .execute(&mut conn)
            .await?;
        if deleted == 0 {
            return Err(ApiError::not_found("no such partition"));
        }
        Ok(DeletedPayload { deleted_id: id })
    }
}
