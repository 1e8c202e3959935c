//! The tenant transaction: the only way a resolver reaches tenant data.
//!
//! Begun lazily on first use, on one pooled connection, with one round trip:
//! `BEGIN [READ ONLY]; SET LOCAL search_path TO <tenant schema>; SET LOCAL ROLE <tenant role>;
//! SET LOCAL statement_timeout = …`. Then, for session and API tokens, one query checks that
//! the credential is still live (not revoked or expired), so a revocation takes effect on
//! the next request. Held for the whole operation, committed or rolled back when it ends.
//!
//! Cancellation safety: the transaction is opened through diesel's transaction manager,
//! which therefore knows it is open. If the request is dropped half-way (client gone,
//! timeout, panic), the connection goes back to the pool with an open transaction, the
//! pool sees it as broken and closes it (PostgreSQL rolls back); it is never reused. If
//! the `BEGIN …` batch itself fails part-way, the connection is marked broken the same way.
//! Waiting for a pooled connection is bounded by the pool's connection timeout.

use std::sync::Arc;
use std::time::Duration;

use bb8::RunError;
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Uuid as SqlUuid};
use diesel_async::pooled_connection::PoolError;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, TransactionManager};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::directory::TenantEntry;
use crate::auth::token::Credential;
use crate::db::quote_ident;
use crate::pool::{Pool, Pooled};

/// A connection inside the tenant transaction, held for as long as the guard lives.
pub type TxConn<'a> = MappedMutexGuard<'a, AsyncPgConnection>;

/// Whether the transaction may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// Why the tenant transaction could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error("no database connection became free within {0:?}")]
    PoolTimeout(Duration),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("the credential has been revoked or has expired")]
    CredentialRevoked,
    #[error("the transaction has already ended")]
    Finished,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

enum State {
    NotBegun,
    Open(Box<Pooled>),
    /// Could not begin; later uses get the same answer.
    Refused(TxRefusal),
    Finished,
}

#[derive(Clone, Copy)]
enum TxRefusal {
    CredentialRevoked,
    Failed,
}

/// See the module doc.
pub struct TenantTx {
    pool: Pool,
    tenant: Arc<TenantEntry>,
    access: Access,
    statement_timeout: Duration,
    pool_timeout: Duration,
    credential: Option<Credential>,
    state: Mutex<State>,
}

#[derive(QueryableByName)]
struct Live {
    #[diesel(sql_type = Bool)]
    live: bool,
}

impl TenantTx {
    /// A transaction for `tenant`, not begun yet. `credential` is checked for revocation
    /// right after `BEGIN` (impersonation credentials are short-lived and not checked).
    pub fn new(
        pool: Pool,
        pool_timeout: Duration,
        tenant: Arc<TenantEntry>,
        access: Access,
        statement_timeout: Duration,
        credential: Option<Credential>,
    ) -> Self {
        Self {
            pool_timeout,
            pool,
            tenant,
            access,
            statement_timeout,
            credential,
            state: Mutex::new(State::NotBegun),
        }
    }

    pub fn tenant(&self) -> &Arc<TenantEntry> {
        &self.tenant
    }

    /// The `BEGIN …` batch sent as one round trip.
    fn begin_sql(&self) -> String {
        let mode = match self.access {
            Access::ReadOnly => "BEGIN READ ONLY",
            Access::ReadWrite => "BEGIN READ WRITE",
        };
        format!(
            "{mode}; SET LOCAL search_path TO {}; SET LOCAL ROLE {}; SET LOCAL statement_timeout = {}",
            quote_ident(&self.tenant.schema),
            quote_ident(&self.tenant.role),
            self.statement_timeout.as_millis()
        )
    }

    /// The connection inside the transaction, beginning it on first use. Concurrent
    /// resolvers of one operation take turns on it.
    pub async fn conn(&self) -> Result<TxConn<'_>, TxError> {
        let mut state = self.state.lock().await;
        if matches!(*state, State::NotBegun) {
            let mut conn = self
                .pool
                .get_for(Some(self.tenant.id))
                .await
                .map_err(|error| match error {
                    RunError::TimedOut => TxError::PoolTimeout(self.pool_timeout),
                    RunError::User(PoolError::ConnectionError(e)) => TxError::Connect(e.to_string()),
                    RunError::User(PoolError::QueryError(e)) => TxError::Database(e),
                })?;
            if let Err(error) =
                AnsiTransactionManager::begin_transaction_sql(&mut *conn, &self.begin_sql()).await
            {
                // The batch may have failed after BEGIN (say, at SET LOCAL ROLE): the
                // server-side transaction is then open and aborted, though diesel does not
                // count it. Mark the connection broken so the pool closes it.
                AnsiTransactionManager::transaction_manager_status_mut(&mut *conn).set_in_error();
                *state = State::Refused(TxRefusal::Failed);
                return Err(error.into());
            }
            if !self.credential_is_live(&mut conn).await? {
                AnsiTransactionManager::rollback_transaction(&mut *conn).await?;
                *state = State::Refused(TxRefusal::CredentialRevoked);
                return Err(TxError::CredentialRevoked);
            }
            *state = State::Open(Box::new(conn));
        }
        match *state {
            State::Refused(TxRefusal::CredentialRevoked) => return Err(TxError::CredentialRevoked),
            State::Refused(TxRefusal::Failed) => return Err(TxError::Finished),
            _ => {}
        }
        MutexGuard::try_map(state, |state| match state {
            State::Open(conn) => Some(&mut ***conn),
            _ => None,
        })
        .map_err(|_| TxError::Finished)
    }

    async fn credential_is_live(&self, conn: &mut AsyncPgConnection) -> Result<bool, TxError> {
        let query = match self.credential {
            Some(Credential::Session(id)) => diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.id = $1 AND t.revoked_at IS NULL AND t.expires_at > now() AND NOT u.disabled) AS live",
            )
            .bind::<SqlUuid, _>(id),
            Some(Credential::ApiToken(id)) => diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by \
                 WHERE t.id = $1 AND t.revoked_at IS NULL AND t.expires_at > now() \
                 AND NOT coalesce(u.disabled, false)) AS live",
            )
            .bind::<SqlUuid, _>(id),
            Some(Credential::Impersonation(_)) | None => return Ok(true),
        };
        Ok(query.get_result::<Live>(conn).await?.live)
    }

    /// Ends the transaction: commits when `commit` is true, rolls back otherwise. A
    /// transaction that was never begun costs nothing. Idempotent.
    pub async fn finish(&self, commit: bool) -> Result<(), TxError> {
        let mut state = self.state.lock().await;
        let previous = std::mem::replace(&mut *state, State::Finished);
        if let State::Open(mut conn) = previous {
            if commit {
                AnsiTransactionManager::commit_transaction(&mut **conn).await?;
            } else {
                AnsiTransactionManager::rollback_transaction(&mut **conn).await?;
            }
        }
        Ok(())
    }
}
