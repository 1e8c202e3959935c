//! Impersonation records in `public.impersonation_logs`: a platform admin entering a
//! tenant (one row with action `impersonate`, whose id is the token's credential), every
//! mutation made under it (rows pointing at it through `token_id`), and its end.
//!
//! An impersonation stops working when its row is ended (`endImpersonation`), when it
//! expires, or when its platform admin is disabled or no longer a platform admin: the
//! tenant transaction checks all of these on every request (see `transaction`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::directory::TenantEntry;
use super::gateway::{Gateway, PlatformAdmin};
use super::scope::Actor;
use super::transaction::TxError;
use crate::schema::public::impersonation_logs;

/// An impersonation about to start.
pub struct NewImpersonation<'a> {
    pub admin_tenant: &'a TenantEntry,
    pub admin_email: &'a str,
    pub target: &'a TenantEntry,
    pub reason: &'a str,
    pub expires_at: DateTime<Utc>,
}

/// Records an impersonation started by `admin`; returns its id (the token's credential).
pub async fn start(
    gateway: &Gateway,
    admin: &PlatformAdmin,
    new: NewImpersonation<'_>,
) -> Result<Uuid, TxError> {
    let log_id = Uuid::new_v4();
    let mut conn = gateway.platform(admin).await?;
    diesel::insert_into(impersonation_logs::table)
        .values((
            impersonation_logs::id.eq(log_id),
            impersonation_logs::impersonator_tenant_id.eq(new.admin_tenant.id),
            impersonation_logs::impersonator_user_id.eq(admin.user_id()),
            impersonation_logs::impersonator_email.eq(new.admin_email),
            impersonation_logs::target_tenant_id.eq(new.target.id),
            impersonation_logs::target_tenant_slug.eq(new.target.slug.as_str()),
            impersonation_logs::token_id.eq(log_id),
            impersonation_logs::action.eq("impersonate"),
            impersonation_logs::reason.eq(new.reason),
            impersonation_logs::expires_at.eq(new.expires_at),
        ))
        .execute(&mut *conn)
        .await?;
    Ok(log_id)
}

/// Records a mutation made under impersonation `log_id`, before it runs; if the record
/// cannot be written the mutation must be refused.
pub async fn record_mutation(
    gateway: &Gateway,
    actor: &Actor,
    log_id: Uuid,
    root_fields: &[String],
) -> Result<(), TxError> {
    let mut conn = gateway.platform_unchecked().await?;
    diesel::insert_into(impersonation_logs::table)
        .values((
            impersonation_logs::impersonator_user_id.eq(actor.claims.user_id),
            impersonation_logs::impersonator_email.eq(actor.claims.impersonator.clone().unwrap_or_default()),
            impersonation_logs::target_tenant_id.eq(actor.tenant.id),
            impersonation_logs::target_tenant_slug.eq(actor.tenant.slug.as_str()),
            impersonation_logs::token_id.eq(log_id),
            impersonation_logs::action.eq(format!("mutation {}", root_fields.join(", "))),
            impersonation_logs::reason.eq(format!("under impersonation {log_id}")),
            impersonation_logs::expires_at.eq(actor.claims.expires_at),
        ))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Ends impersonation `log_id` now (the caller holds its token). Returns whether it was
/// still running.
pub async fn end(gateway: &Gateway, log_id: Uuid) -> Result<bool, TxError> {
    let mut conn = gateway.platform_unchecked().await?;
    let ended = diesel::update(
        impersonation_logs::table
            .filter(impersonation_logs::id.eq(log_id))
            .filter(impersonation_logs::action.eq("impersonate"))
            .filter(impersonation_logs::ended_at.is_null()),
    )
    .set(impersonation_logs::ended_at.eq(diesel::dsl::now))
    .execute(&mut *conn)
    .await?;
    Ok(ended == 1)
}
