//! Establishing the caller's privileges, once a request's document is known to be valid
//! and before any resolver runs: the [`PrivilegeCheck`] is the request's
//! [`RootGate`], passed by the first root field (see `resolvers::root`).
//!
//! The token's role is only a ceiling (checked with no database work by the HTTP
//! handler). Here the request's tenant transaction begins and reads what the credential
//! may do now — the user's current role, disabled, revoked (see `tenancy::transaction`) —
//! and every root field is checked again against that effective role. Mutations under
//! impersonation are recorded before they run. Documents refused by validation (limits,
//! unknown fields) never get here, so they cost no SQL; nor do operations made only of
//! fields anyone may call (`health`), which get no check at all.

use std::sync::Arc;

use async_graphql::ServerError;
use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;

use super::graphql::{check_roles, server_error};
use super::operation::OperationShape;
use crate::app::App;
use crate::auth::token::{Credential, Operation};
use crate::resolvers::access;
use crate::resolvers::errors::ApiError;
use crate::resolvers::root::RootGate;
use crate::tenancy::impersonation;
use crate::tenancy::scope::Scope;

/// One request's privilege check (see the module doc); its outcome is kept, so that the
/// handler can answer a refusal as a request error rather than one error per root field.
pub struct PrivilegeCheck {
    app: Arc<App>,
    scope: Arc<Scope>,
    shape: Arc<OperationShape>,
    outcome: OnceCell<Result<(), ServerError>>,
}

impl PrivilegeCheck {
    /// The check for an authenticated caller's operation, or `None` when there is nothing
    /// to establish (anonymous, or only fields anyone may call).
    pub fn needed(app: &Arc<App>, scope: &Arc<Scope>, shape: &Arc<OperationShape>) -> Option<Self> {
        scope.actor.as_ref()?;
        let public_only = shape
            .root_fields
            .iter()
            .all(|field| access::required_role(shape.kind, field).is_none());
        (!public_only).then(|| Self {
            app: app.clone(),
            scope: scope.clone(),
            shape: shape.clone(),
            outcome: OnceCell::new(),
        })
    }

    /// The error that refused the operation, if the check ran and failed.
    pub fn refusal(&self) -> Option<ServerError> {
        self.outcome.get().and_then(|outcome| outcome.clone().err())
    }

    async fn establish(&self) -> Result<(), ApiError> {
        let Some(actor) = &self.scope.actor else {
            return Ok(());
        };
        let role = self.scope.establish().await?;
        check_roles(&self.shape, role)?;
        if self.shape.kind == Operation::Mutation
            && let Credential::Impersonation(log_id) = actor.claims.credential
        {
            impersonation::record_mutation(&self.app.db, actor, log_id, &self.shape.root_fields).await?;
        }
        Ok(())
    }
}

impl RootGate for PrivilegeCheck {
    fn pass(&self) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(async move {
            self.outcome
                .get_or_init(|| async { self.establish().await.map_err(server_error) })
                .await
                .clone()
        })
    }
}
