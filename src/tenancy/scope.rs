//! `Scope`: who is asking and in which tenant, for one GraphQL operation. Built by the
//! HTTP layer from a verified token (never from client input) and put into the request
//! data; resolvers reach tenant data only through its tenant transaction.

use std::sync::Arc;

use uuid::Uuid;

use super::directory::TenantEntry;
use super::transaction::{TenantTx, TxConn, TxError};
use crate::auth::token::Claims;

/// An authenticated caller: the token's claims and the tenant they name.
#[derive(Debug, Clone)]
pub struct Actor {
    pub claims: Claims,
    pub tenant: Arc<TenantEntry>,
    /// The token carries appended blocks (client-side restrictions).
    pub attenuated: bool,
}

/// The caller of one operation.
pub struct Scope {
    /// Identifies the request in logs and in INTERNAL errors.
    pub request_id: Uuid,
    /// `None` for an anonymous caller (only `login`, `selectTenant` and `health` work).
    pub actor: Option<Actor>,
    /// The tenant whose vanity domain the request arrived on, if any (used by `login`).
    pub host_tenant: Option<Arc<TenantEntry>>,
    /// The actor's tenant transaction (lazily begun); `None` when anonymous.
    tx: Option<TenantTx>,
}

/// The scope refused a resolver.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("authentication required")]
    Unauthenticated,
    #[error(transparent)]
    Tx(#[from] TxError),
}

impl Scope {
    pub fn anonymous(request_id: Uuid, host_tenant: Option<Arc<TenantEntry>>) -> Self {
        Self {
            request_id,
            actor: None,
            host_tenant,
            tx: None,
        }
    }

    pub fn authenticated(
        request_id: Uuid,
        actor: Actor,
        host_tenant: Option<Arc<TenantEntry>>,
        tx: TenantTx,
    ) -> Self {
        Self {
            request_id,
            actor: Some(actor),
            host_tenant,
            tx: Some(tx),
        }
    }

    /// A subscriber: authenticated, but without a request transaction (a subscription
    /// reads each change in a short transaction of its own).
    pub fn subscriber(request_id: Uuid, actor: Actor) -> Self {
        Self {
            request_id,
            actor: Some(actor),
            host_tenant: None,
            tx: None,
        }
    }

    pub fn actor(&self) -> Result<&Actor, ScopeError> {
        self.actor.as_ref().ok_or(ScopeError::Unauthenticated)
    }

    /// The connection inside the actor's tenant transaction.
    pub async fn conn(&self) -> Result<TxConn<'_>, ScopeError> {
        let tx = self.tx.as_ref().ok_or(ScopeError::Unauthenticated)?;
        Ok(tx.conn().await?)
    }

    /// Commits (or rolls back) the tenant transaction, if one was begun.
    pub async fn finish(&self, commit: bool) -> Result<(), TxError> {
        match &self.tx {
            Some(tx) => tx.finish(commit).await,
            None => Ok(()),
        }
    }
}
