//! How resolvers reach the request: the shared [`App`], the request's [`Scope`] and
//! loaders, and the platform-admin guard and witness (roles themselves are checked in
//! `access`).

use std::sync::Arc;

use async_graphql::{Context, Guard};

use super::errors::{ApiError, ApiResult};
use super::loaders::Loaders;
use crate::app::App;
use crate::auth::users::{self, UserRecord};
use crate::tenancy::gateway::PlatformAdmin;
use crate::tenancy::scope::{Actor, Scope};

pub fn app<'a>(ctx: &Context<'a>) -> ApiResult<&'a Arc<App>> {
    ctx.data::<Arc<App>>()
        .map_err(|_| ApiError::internal("App missing from the schema data"))
}

pub fn scope<'a>(ctx: &Context<'a>) -> ApiResult<&'a Scope> {
    ctx.data::<Arc<Scope>>()
        .map(AsRef::as_ref)
        .map_err(|_| ApiError::unauthenticated("authentication required"))
}

pub fn loaders<'a>(ctx: &Context<'a>) -> ApiResult<&'a Loaders> {
    ctx.data::<Arc<Loaders>>()
        .map(AsRef::as_ref)
        .map_err(|_| ApiError::unauthenticated("authentication required"))
}

pub fn actor<'a>(ctx: &Context<'a>) -> ApiResult<&'a Actor> {
    Ok(scope(ctx)?.actor()?)
}

/// Allows platform admins acting in the platform tenant: the role the database reported
/// for the request's credential (established before execution), not the token's.
pub struct RequirePlatformAdmin;

impl Guard for RequirePlatformAdmin {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        platform_admin(ctx)?;
        Ok(())
    }
}

/// The witness that the caller is a platform admin now (see `Scope::platform_admin`).
pub fn platform_admin(ctx: &Context<'_>) -> ApiResult<PlatformAdmin> {
    scope(ctx)?
        .platform_admin()
        .ok_or_else(|| ApiError::forbidden("this needs a platform admin"))
}

/// The calling user's record, read in the request's tenant transaction.
pub async fn current_user(ctx: &Context<'_>) -> ApiResult<UserRecord> {
    let scope = scope(ctx)?;
    let actor = scope.actor()?;
    let mut conn = scope.conn().await?;
    users::find_by_id(conn.pg(), actor.claims.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::unauthenticated("the token's user no longer exists"))
}
