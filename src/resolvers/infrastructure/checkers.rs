//! Checkers: the `Checker` object, the `checkers` list, and creating, updating and
//! deleting checkers.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::agents::Agent;
use super::{config_object, name_cursor, trimmed_name};
use crate::resolvers::context::{app, loaders, scope};
use crate::resolvers::enums::CheckKind;
use crate::resolvers::errors::{ApiError, ApiResult};
use crate::resolvers::ids::{self, decode_optional};
use crate::resolvers::models::CheckerRow;
use crate::resolvers::pagination::{Cursor, Window, fetch_page, keyset, text_key};
use crate::schema::tenant::checkers;

/// A checker: a probe plug-in configured on an agent.
#[derive(Clone)]
pub struct Checker(pub CheckerRow);

impl From<CheckerRow> for Checker {
    fn from(row: CheckerRow) -> Self {
        Self(row)
    }
}

/// A checker: a probe plug-in configured on an agent.
#[Object]
impl Checker {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        ids::encode("Checker", self.0.id)
    }
    /// Name, unique per agent.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// How it probes.
    async fn kind(&self) -> CheckKind {
        CheckKind::from_stored(&self.0.kind)
    }
    /// Plug-in configuration.
    async fn config(&self) -> Json<serde_json::Value> {
        Json(self.0.config.clone())
    }
    /// Whether it runs.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// The agent the checker runs on.
    async fn agent(&self, ctx: &Context<'_>) -> ApiResult<Option<Agent>> {
        Ok(loaders(ctx)?.agent(self.0.agent_id).await?.map(Agent::from))
    }
}

/// Input of `createChecker`.
#[derive(InputObject)]
pub struct CreateCheckerInput {
    /// The agent the checker runs on.
    pub agent_id: ID,
    /// Name, unique per agent.
    pub name: String,
    /// How it probes.
    pub kind: CheckKind,
    /// Plug-in configuration.
    pub config: Option<Json<serde_json::Value>>,
}

/// A checker after a mutation.
#[derive(SimpleObject)]
pub struct CheckerPayload {
    /// The checker as it is now.
    pub checker: Checker,
}

/// Input of `updateChecker`: absent fields are left alone.
#[derive(InputObject)]
pub struct UpdateCheckerInput {
    /// The checker to change.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New plug-in configuration (a JSON object; replaces the old one).
    pub config: Option<Json<serde_json::Value>>,
    /// Run it or not.
    pub enabled: Option<bool>,
}

#[derive(AsChangeset)]
#[diesel(table_name = checkers)]
struct CheckerChanges {
    name: Option<String>,
    config: Option<serde_json::Value>,
    enabled: Option<bool>,
    updated_at: DateTime<Utc>,
}

delete_types!(DeleteCheckerInput, DeleteCheckerPayload, "Checker");

/// The root query fields of checkers.
#[derive(Default)]
pub struct CheckerQuery;

#[Object]
impl CheckerQuery {
    /// Checkers, by name; optionally of one agent.
    #[graphql(complexity = "crate::resolvers::limits::list_cost(first, last, child_complexity)")]
    async fn checkers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only checkers of this agent (global id).")] agent_id: Option<ID>,
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
    ) -> ApiResult<Connection<Cursor, Checker, EmptyFields>> {
        let window = Window::new(first, after, last, before, app(ctx)?.max_page_size)?;
        let agent = decode_optional("Agent", agent_id.as_ref())?;
        let mut query = checkers::table
            .select(CheckerRow::as_select())
            .limit(window.fetch_limit())
            .into_boxed();
        if let Some(agent) = agent {
            query = query.filter(checkers::agent_id.eq(agent));
        }
        let query = keyset!(query, &window, checkers::name, checkers::id, text_key, ascending);
        fetch_page!(
            window,
            scope(ctx)?,
            query,
            |r: &CheckerRow| name_cursor(&r.name, r.id),
            Checker::from,
            EmptyFields
        )
    }
}

/// The root mutation fields of checkers.
#[derive(Default)]
pub struct CheckerMutation;

#[Object]
impl CheckerMutation {
    /// Configures a checker on an agent.
    async fn create_checker(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: CreateCheckerInput,
    ) -> ApiResult<CheckerPayload> {
        let agent = ids::decode("Agent", &input.agent_id)?;
        let config = input.config.map(|c| c.0).unwrap_or_else(|| serde_json::json!({}));
        if !config.is_object() {
            return Err(ApiError::bad_input("config must be a JSON object"));
        }
        let mut conn = scope(ctx)?.conn().await?;
        let row = diesel::insert_into(checkers::table)
            .values((
                checkers::agent_id.eq(agent),
                checkers::name.eq(trimmed_name(&input.name)),
                checkers::kind.eq(input.kind.as_str()),
                checkers::config.eq(config),
            ))
            .returning(CheckerRow::as_returning())
            .get_result(&mut conn)
            .await?;
        Ok(CheckerPayload { checker: row.into() })
    }

    /// Changes a checker (rename, reconfigure, enable, disable).
    async fn update_checker(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: UpdateCheckerInput,
    ) -> ApiResult<CheckerPayload> {
        let changes = CheckerChanges {
            name: input.name.as_deref().map(trimmed_name),
            config: config_object(input.config)?,
            enabled: input.enabled,
            updated_at: Utc::now(),
        };
        let row = update_by_id!(ctx, input.id, "Checker", checkers, changes, CheckerRow);
        Ok(CheckerPayload { checker: row.into() })
    }

    /// Deletes a checker.
    async fn delete_checker(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The mutation's input.")] input: DeleteCheckerInput,
    ) -> ApiResult<DeleteCheckerPayload> {
        delete_by_id!(ctx, input, "Checker", checkers, DeleteCheckerPayload)
    }
}
