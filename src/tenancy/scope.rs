//! `Scope`: who is asking and in which tenant, for one GraphQL operation. Built by the
//! HTTP layer from a verified token (never from client input) and put into the request
//! data; resolvers reach tenant data only through its tenant transaction.
//!
//! The token names a role, but that is only a ceiling: [`Scope::establish`] begins the
//! tenant transaction, which reads what the credential may do *now* (the user's current
//! role, disabled, revoked), and the scope's [`Scope::role`] is the lower of the two. The
//! HTTP layer establishes every authenticated scope before it checks a single field.

use std::sync::{Arc, OnceLock};

use uuid::Uuid;

use super::directory::TenantEntry;
use super::gateway::PlatformAdmin;
use super::transaction::{TenantTx, TxConn, TxError};
use crate::auth::Role;
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
    /// The effective role, once established.
    role: OnceLock<Role>,
    /// A subscriber's token, re-authorized before every delivery and every few seconds.
    subscription_token: Option<String>,
}

/// The scope refused a resolver.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("the caller's privileges were not established")]
    NotEstablished,
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
            role: OnceLock::new(),
            subscription_token: None,
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
            role: OnceLock::new(),
            subscription_token: None,
        }
    }

    /// A subscriber: authenticated by `token`. Its transaction `tx` (read-only, checking
    /// the token's credential) is begun afresh for every delivery ([`Scope::begin_delivery`])
    /// and ended after it ([`Scope::end_delivery`]), so that the fields of a delivered
    /// object (`alertChanges { device { hostname } }`) resolve inside it, and a subscription
    /// holds no connection between deliveries.
    pub fn subscriber(request_id: Uuid, actor: Actor, token: String, tx: TenantTx) -> Self {
        Self {
            request_id,
            actor: Some(actor),
            host_tenant: None,
            tx: Some(tx),
            role: OnceLock::new(),
            subscription_token: Some(token),
        }
    }

    /// Begins a subscriber's transaction for one delivery and returns what the credential
    /// may do now (see `TenantTx::begin`).
    pub async fn begin_delivery(&self) -> Result<Option<Role>, ScopeError> {
        let tx = self.tx.as_ref().ok_or(ScopeError::Unauthenticated)?;
        tx.restart().await?;
        Ok(tx.begin().await?)
    }

    /// Ends a subscriber's delivery transaction (no-op when none is open).
    pub async fn end_delivery(&self) -> Result<(), ScopeError> {
        if let Some(tx) = &self.tx {
            tx.restart().await?;
        }
        Ok(())
    }

    /// Gives up an open transaction without a round trip (see `TenantTx::abandon`).
    pub fn abandon(&self) {
        if let Some(tx) = &self.tx {
            tx.abandon();
        }
    }

    /// The token of a subscriber scope.
    pub fn subscription_token(&self) -> Option<&str> {
        self.subscription_token.as_deref()
    }

    pub fn actor(&self) -> Result<&Actor, ScopeError> {
        self.actor.as_ref().ok_or(ScopeError::Unauthenticated)
    }

    /// Begins the tenant transaction and records the effective role: the lower of the
    /// token's role and what the database says the credential may do now. Fails when the
    /// credential is revoked, expired or its user disabled. Idempotent.
    pub async fn establish(&self) -> Result<Role, ScopeError> {
        if let Some(role) = self.role.get() {
            return Ok(*role);
        }
        let actor = self.actor()?;
        let tx = self.tx.as_ref().ok_or(ScopeError::Unauthenticated)?;
        let current = tx.begin().await?;
        let role = actor.claims.role.capped_by(current);
        Ok(*self.role.get_or_init(|| role))
    }

    /// The effective role (see [`Scope::establish`]).
    pub fn role(&self) -> Result<Role, ScopeError> {
        self.actor()?;
        self.role.get().copied().ok_or(ScopeError::NotEstablished)
    }

    /// Proof that the caller is a platform admin now: the effective role (read from the
    /// database) is platform admin, in the platform tenant.
    pub fn platform_admin(&self) -> Option<PlatformAdmin> {
        let actor = self.actor.as_ref()?;
        (self.role().ok()? == Role::PlatformAdmin && actor.tenant.slug.is_platform())
            .then(|| PlatformAdmin::new(actor.claims.user_id))
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
