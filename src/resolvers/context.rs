//! How resolvers reach the request: the shared [`App`], the request's [`Scope`], and the
//! role guards — the one place where roles are enforced.

use std::sync::Arc;

use async_graphql::{Context, Guard};

use super::errors::{ApiError, ApiResult};
use crate::app::App;
use crate::auth::Role;
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

pub fn actor<'a>(ctx: &Context<'a>) -> ApiResult<&'a Actor> {
    Ok(scope(ctx)?.actor()?)
}

/// Allows callers whose role is at least the given one.
pub struct RequireRole(pub Role);

impl Guard for RequireRole {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let actor = actor(ctx)?;
        if actor.claims.role >= self.0 {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this needs the {} role", self.0)).into())
        }
    }
}

/// Allows platform admins acting in the platform tenant.
pub struct RequirePlatformAdmin;

impl Guard for RequirePlatformAdmin {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let actor = actor(ctx)?;
        if actor.claims.role == Role::PlatformAdmin && actor.tenant.slug.is_platform() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs a platform admin").into())
        }
    }
}
