//! Login sessions: a row in the tenant's `tokens` table (so that `logout` can revoke it)
//! and the Biscuit token naming it. Used by `login`, `selectTenant` and `enclave token mint`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::token::{self, Claims, Credential};
use super::users::UserRecord;
use crate::app::App;
use crate::schema::tenant::{tokens, users};
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::transaction::{Access, TxError};

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error("the session lifetime is too long")]
    TtlTooLong,
    #[error("cannot sign the token: {0}")]
    Signing(#[from] biscuit_auth::error::Token),
}

impl From<diesel::result::Error> for SessionError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Tx(TxError::Database(error))
    }
}

/// Records a session for `user` in `tenant`, valid for `ttl`, and returns its token and
/// expiry. Its own tenant transaction, committed before the token is returned.
pub async fn start(
    app: &App,
    tenant: &Arc<TenantEntry>,
    user: &UserRecord,
    ttl: std::time::Duration,
) -> Result<(String, DateTime<Utc>), SessionError> {
    let expires_at = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| Utc::now().checked_add_signed(ttl))
        .ok_or(SessionError::TtlTooLong)?;
    let tx = app.tenant_tx(tenant.clone(), Access::ReadWrite, None);
    let session: Uuid = {
        let mut conn = tx.conn().await?;
        diesel::update(users::table.find(user.id))
            .set(users::last_login_at.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await?;
        diesel::insert_into(tokens::table)
            .values((tokens::user_id.eq(user.id), tokens::expires_at.eq(expires_at)))
            .returning(tokens::id)
            .get_result(&mut conn)
            .await?
    };
    tx.finish(true).await?;
    let token = token::mint(
        &app.keys,
        &Claims {
            user_id: user.id,
            tenant_id: tenant.id,
            role: user.role(),
            credential: Credential::Session(session),
            impersonator: None,
            expires_at,
        },
    )?;
    Ok((token, expires_at))
}
