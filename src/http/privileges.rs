//! Establishing the caller's privileges, once a request's document is known to be valid
//! and before any resolver runs (an async-graphql extension around execution).
//!
//! The token's role is only a ceiling (checked with no database work by the HTTP
//! handler). Here the request's tenant transaction begins and reads what the credential
//! may do now — the user's current role, disabled, revoked (see `tenancy::transaction`) —
//! and every root field is checked again against that effective role. Mutations under
//! impersonation are recorded before they run. Documents refused by validation (limits,
//! unknown fields) never get here, so they cost no SQL; nor do operations made only of
//! fields anyone may call (`health`).

use std::sync::Arc;

use async_graphql::Response;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};

use super::graphql::{check_roles, server_error};
use super::operation::OperationShape;
use crate::app::App;
use crate::auth::token::{Credential, Operation};
use crate::resolvers::access;
use crate::resolvers::errors::ApiError;
use crate::tenancy::impersonation;
use crate::tenancy::scope::Scope;

/// See the module doc.
pub struct Establish;

impl ExtensionFactory for Establish {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(EstablishExtension)
    }
}

struct EstablishExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for EstablishExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Err(error) = establish(ctx).await {
            return Response::from_errors(vec![server_error(error)]);
        }
        next.run(ctx, operation_name).await
    }
}

async fn establish(ctx: &ExtensionContext<'_>) -> Result<(), ApiError> {
    // Only HTTP requests carry a shape; WebSocket operations pass `ws::Gate` instead.
    let (Ok(scope), Ok(shape)) = (ctx.data::<Arc<Scope>>(), ctx.data::<Arc<OperationShape>>()) else {
        return Ok(());
    };
    let Some(actor) = &scope.actor else { return Ok(()) };
    // Fields anyone may call (`health`, `__typename`) need no privileges: no SQL for them.
    if shape
        .root_fields
        .iter()
        .all(|field| access::required_role(shape.kind, field).is_none())
    {
        return Ok(());
    }
    let role = scope.establish().await?;
    check_roles(shape, role)?;
    if shape.kind == Operation::Mutation
        && let Credential::Impersonation(log_id) = actor.claims.credential
    {
        let app = ctx
            .data::<Arc<App>>()
            .map_err(|_| ApiError::internal("App missing from the schema data"))?;
        impersonation::record_mutation(&app.db, actor, log_id, &shape.root_fields).await?;
    }
    Ok(())
}
