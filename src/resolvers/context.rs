//! How resolvers reach the request: the shared [`App`], the request's [`Scope`] and
//! loaders, and the platform-admin guard (roles themselves are checked in `access`).

use std::sync::Arc;

use async_graphql::{Context, Guard};

use super::errors::{ApiError, ApiResult};
use super::loaders::Loaders;
use crate::app::App;
use crate::auth::Role;
use crate::auth::users::{self, UserRecord};
use crate::tenancy::scope::{Actor, Scope};
use crate::tenancy::transaction::Access;

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

/// Allows platform admins acting in the platform tenant whose credential is still live.
/// Platform operations work on `public`, outside the request's tenant transaction, so the
/// revocation check that transaction would make is made here, on a short-lived one.
pub struct RequirePlatformAdmin;

impl Guard for RequirePlatformAdmin {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let actor = actor(ctx)?;
        if actor.claims.role != Role::PlatformAdmin || !actor.tenant.slug.is_platform() {
            return Err(ApiError::forbidden("this needs a platform admin").into());
        }
        platform_user(ctx).await?;
        Ok(())
    }
}

/// The calling platform admin's user record, read in a short-lived transaction of the
/// platform tenant that also checks the credential is not revoked.
pub async fn platform_user(ctx: &Context<'_>) -> ApiResult<UserRecord> {
    let app = app(ctx)?;
    let actor = actor(ctx)?;
    let tx = app.tenant_tx(
        actor.tenant.clone(),
        Access::ReadOnly,
        Some(actor.claims.credential),
    );
    let user = {
        let mut conn = tx.conn().await?;
        users::find_by_id(&mut conn, actor.claims.user_id).await?
    };
    tx.finish(true).await?;
    user.filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::forbidden("this needs a platform admin"))
}
