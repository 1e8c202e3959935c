//! The tenant transaction: the only way a resolver reaches tenant data.
//!
//! Begun lazily on first use, on one pooled connection, with one round trip:
//! `BEGIN [READ ONLY]; SET LOCAL search_path TO <tenant schema>; SET LOCAL ROLE <tenant role>;
//! SET LOCAL statement_timeout = …` (behind a transaction-mode pooler, also the settings
//! other request connections get at startup, see `crate::db`), with one query pipelined
//! behind it in the same round trip that reads what the credential may do *now*:
//! a session's user's current role (nothing when the session is revoked or expired or the
//! user disabled), an API token's role capped by its creator's current role. An
//! impersonation credential is checked before `BEGIN`, in `public` on the owner's platform
//! pool: not ended, not expired, and its platform admin still enabled and still a platform
//! admin. So a revocation, a demotion or a disabled user takes effect on the next request;
//! the token's own role is only a ceiling (see `Scope::establish`). Held for the whole
//! operation, committed or rolled back when it ends.
//!
//! Cancellation safety: the transaction is opened through diesel's transaction manager,
//! which therefore knows it is open. If the request is dropped half-way (client gone,
//! timeout, panic), the connection goes back to the pool with an open transaction, the
//! pool sees it as broken and closes it (PostgreSQL rolls back); it is never reused. If
//! the `BEGIN …` batch itself fails part-way, the connection is marked broken the same way.
//! Waiting for a pooled connection is bounded by the pool's connection timeout.
//!
//! Database restarts: a connection whose backend is gone fails `BEGIN` with a lost
//! connection, and the transaction tries once more on a fresh one; a database that refuses
//! connections, or a connection lost later in the transaction, is [`TxError::Connect`]
//! (UNAVAILABLE for clients), for this use and every later one of the transaction.

use std::sync::Arc;
use std::time::Duration;

use bb8::RunError;
use diesel::connection::{TransactionDepthChange, TransactionManagerStatus};
use diesel::sql_types::{Bool, Uuid as SqlUuid};
use diesel::{QueryResult, QueryableByName};
use diesel_async::pooled_connection::PoolError;
use diesel_async::{
    AnsiTransactionManager, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection as _, TransactionManager,
};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::directory::TenantEntry;
use super::gateway::Gateway;
use super::slug::Slug;
use super::statements::{TenantConn, statement_tag, tagged};
use crate::auth::Role;
use crate::auth::token::Credential;
use crate::db::{connection_lost, quote_ident};
use crate::pool::Pooled;

/// A connection inside the tenant transaction, held for as long as the guard lives; its
/// statements are prepared per tenant (`super::statements`).
pub type TxConn<'a> = TenantConn<MappedMutexGuard<'a, AsyncPgConnection>>;

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
    #[error("no platform database connection became free in time")]
    PlatformPoolTimeout,
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
    /// Open, with the role the credential has now (`None` without a credential).
    Open(Box<Pooled>, Option<Role>),
    /// Could not begin; later uses get the same answer.
    Refused(TxRefusal),
    Finished,
}

#[derive(Clone, Copy)]
enum TxRefusal {
    CredentialRevoked,
    /// The database was unreachable or the connection was lost: UNAVAILABLE again.
    Unavailable,
    Failed,
}

/// The statements that put the current transaction in `tenant`'s schema and role: the
/// only copy of the tenant switch (the owner's provisioning work uses it too).
pub fn switch_sql(tenant: &TenantEntry) -> String {
    format!(
        "SET LOCAL search_path TO {}; SET LOCAL ROLE {}",
        quote_ident(&tenant.schema),
        quote_ident(&tenant.role)
    )
}

/// Why a pool gave no connection; `timed_out` is the error for a wait that ran out.
pub(in crate::tenancy) fn pool_error(error: RunError<PoolError>, timed_out: TxError) -> TxError {
    match error {
        RunError::TimedOut => timed_out,
        RunError::User(PoolError::ConnectionError(e)) => TxError::Connect(e.to_string()),
        RunError::User(PoolError::QueryError(e)) => TxError::Database(e),
    }
}

/// A lost connection is reported as such (UNAVAILABLE), other errors as they are.
fn connection_error(error: diesel::result::Error) -> TxError {
    if connection_lost(&error) {
        TxError::Connect(error.to_string())
    } else {
        TxError::Database(error)
    }
}

/// How a transaction that could not begin answers later uses.
fn refusal_for(error: &TxError) -> TxRefusal {
    match error {
        TxError::CredentialRevoked => TxRefusal::CredentialRevoked,
        TxError::Connect(_) | TxError::PoolTimeout(_) | TxError::PlatformPoolTimeout => {
            TxRefusal::Unavailable
        }
        _ => TxRefusal::Failed,
    }
}

/// See the module doc.
pub struct TenantTx {
    gateway: Gateway,
    tenant: Arc<TenantEntry>,
    access: Access,
    credential: Option<Credential>,
    /// The comment that makes this tenant's prepared statements its own.
    tag: Arc<str>,
    state: Mutex<State>,
}

#[derive(QueryableByName)]
struct Live {
    #[diesel(sql_type = Bool)]
    live: bool,
}

/// The current role of a credential's user (and, for API tokens, the cap of its creator).
struct CurrentRole {
    role: String,
    cap: Option<String>,
}

impl CurrentRole {
    /// The lower of the two; an unreadable role counts as the lowest.
    fn effective(&self) -> Role {
        let parse = |role: &str| role.parse().unwrap_or(Role::Viewer);
        let role = parse(&self.role);
        self.cap.as_deref().map_or(role, |cap| role.min(parse(cap)))
    }
}

impl TenantTx {
    /// A transaction for `tenant`, not begun yet. `credential` is checked when it begins
    /// (see the module doc); `None` is for Enclave's own work (login, sessions).
    pub(in crate::tenancy) fn new(
        gateway: Gateway,
        tenant: Arc<TenantEntry>,
        access: Access,
        credential: Option<Credential>,
    ) -> Self {
        Self {
            tag: statement_tag(&tenant.schema),
            gateway,
            tenant,
            access,
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
            "{mode}; {}; SET LOCAL statement_timeout = {}{}",
            switch_sql(&self.tenant),
            self.gateway.statement_timeout().as_millis(),
            self.gateway.transaction_settings()
        )
    }

    /// Begins the transaction when it has not begun, and returns the role the credential
    /// has now (`None` without a credential). Fails when the credential is no longer live.
    pub async fn begin(&self) -> Result<Option<Role>, TxError> {
        drop(self.conn().await?);
        match &*self.state.lock().await {
            State::Open(_, role) => Ok(*role),
            _ => Err(TxError::Finished),
        }
    }

    /// The connection inside the transaction, beginning it on first use. Concurrent
    /// resolvers of one operation take turns on it.
    pub async fn conn(&self) -> Result<TxConn<'_>, TxError> {
        let mut state = self.state.lock().await;
        if matches!(*state, State::NotBegun) {
            if let Some(Credential::Impersonation(log_id)) = self.credential
                && !self.impersonation_is_live(log_id).await?
            {
                *state = State::Refused(TxRefusal::CredentialRevoked);
                return Err(TxError::CredentialRevoked);
            }
            let mut attempt = 0;
            let (mut conn, current) = loop {
                attempt += 1;
                let conn = self
                    .gateway
                    .requests()
                    .get_for(Some(self.tenant.id))
                    .await
                    .map_err(|error| pool_error(error, TxError::PoolTimeout(self.gateway.pool_timeout())));
                let mut conn = match conn {
                    Ok(conn) => conn,
                    Err(error) => {
                        *state = State::Refused(refusal_for(&error));
                        return Err(error);
                    }
                };
                match self.begin_checked(&mut conn).await {
                    Ok(current) => break (conn, current),
                    Err(error) => {
                        // The batch may have failed after BEGIN (say, at SET LOCAL ROLE), or
                        // the credential query after it: the server-side transaction is then
                        // open (and maybe aborted), though diesel does not count it. Mark the
                        // connection broken so the pool closes it.
                        AnsiTransactionManager::transaction_manager_status_mut(&mut *conn).set_in_error();
                        // A pooled connection whose backend is gone (database restarted,
                        // backend terminated) ran nothing: try once more on a fresh one.
                        if attempt == 1 && connection_lost(&error) {
                            tracing::warn!(%error, "a pooled connection was lost; retrying on a new one");
                            continue;
                        }
                        let error = connection_error(error);
                        *state = State::Refused(refusal_for(&error));
                        return Err(error);
                    }
                }
            };
            let Some(role) = current else {
                AnsiTransactionManager::rollback_transaction(&mut *conn).await?;
                *state = State::Refused(TxRefusal::CredentialRevoked);
                return Err(TxError::CredentialRevoked);
            };
            *state = State::Open(Box::new(conn), role);
        }
        match *state {
            State::Refused(TxRefusal::CredentialRevoked) => return Err(TxError::CredentialRevoked),
            State::Refused(TxRefusal::Unavailable) => {
                return Err(TxError::Connect("the database connection was lost".to_owned()));
            }
            State::Refused(TxRefusal::Failed) => return Err(TxError::Finished),
            _ => {}
        }
        MutexGuard::try_map(state, |state| match state {
            State::Open(conn, _) => Some(&mut ***conn),
            _ => None,
        })
        .map(|conn| TenantConn::new(conn, Arc::clone(&self.tag)))
        .map_err(|_| TxError::Finished)
    }

    /// Begins the transaction on `conn` and reads what the credential may do now (see
    /// [`Self::credential_role`]) in one round trip: the credential query is pipelined
    /// behind the `BEGIN …` batch. PostgreSQL runs a connection's messages in order, so the
    /// query runs (and, the first time, is prepared) inside the transaction, under the
    /// tenant's `search_path` and role. Were it ever sent first, it would run with the
    /// connection's empty `search_path` and fail, never read another schema.
    ///
    /// diesel's transaction manager cannot count a `BEGIN` sent alongside another query,
    /// so this counts it itself: the connection is marked broken until both answers are
    /// in (a request dropped half-way leaves a connection the pool closes, never one
    /// inside an unknown transaction), then as inside one transaction. On an error it
    /// stays broken.
    async fn begin_checked(&self, conn: &mut AsyncPgConnection) -> QueryResult<Option<Option<Role>>> {
        let status = AnsiTransactionManager::transaction_manager_status_mut(conn);
        if status.transaction_depth()?.is_some() {
            return Err(diesel::result::Error::AlreadyInTransaction);
        }
        status.set_in_error();
        let begin_sql = self.begin_sql();
        let shared: &AsyncPgConnection = conn;
        let begin = async {
            let mut shared = shared;
            shared.batch_execute(&begin_sql).await
        };
        let (begun, current) = futures_util::future::join(begin, self.credential_role(shared)).await;
        begun?;
        let current = current?;
        let status = AnsiTransactionManager::transaction_manager_status_mut(conn);
        *status = TransactionManagerStatus::default();
        status
            .transaction_state()?
            .change_transaction_depth(TransactionDepthChange::IncreaseDepth)?;
        Ok(current)
    }

    /// What the credential may do now: `Some(None)` without a credential, `Some(Some(role))`
    /// for a live one, `None` for one that is revoked, expired or whose user is disabled.
    /// Built with diesel's query builder and tagged with the tenant, so that each
    /// connection prepares it once per tenant (see `super::statements`).
    async fn credential_role(&self, conn: &AsyncPgConnection) -> QueryResult<Option<Option<Role>>> {
        use diesel::dsl::now;
        use diesel::{ExpressionMethods as _, JoinOnDsl as _, NullableExpressionMethods as _};
        use diesel::{OptionalExtension as _, PgExpressionMethods as _, QueryDsl as _};

        use crate::schema::tenant::{api_tokens, tokens, users};

        let mut conn = conn;
        let current = match self.credential {
            Some(Credential::Session(id)) => tagged(
                &self.tag,
                tokens::table
                    .inner_join(users::table.on(users::id.eq(tokens::user_id)))
                    .filter(tokens::id.eq(id))
                    .filter(tokens::revoked_at.is_null())
                    .filter(tokens::expires_at.gt(now))
                    .filter(diesel::dsl::not(users::disabled))
                    .select(users::role),
            )
            .get_result::<String>(&mut conn)
            .await
            .optional()?
            .map(|role| CurrentRole { role, cap: None }),
            Some(Credential::ApiToken(id)) => tagged(
                &self.tag,
                api_tokens::table
                    .left_join(users::table)
                    .filter(api_tokens::id.eq(id))
                    .filter(api_tokens::revoked_at.is_null())
                    .filter(api_tokens::expires_at.gt(now))
                    // No creator (deleted) counts as enabled, as before.
                    .filter(users::disabled.nullable().is_distinct_from(true))
                    .select((api_tokens::role, users::role.nullable())),
            )
            .get_result::<(String, Option<String>)>(&mut conn)
            .await
            .optional()?
            .map(|(role, cap)| CurrentRole { role, cap }),
            // Checked before BEGIN; an impersonation acts as an admin of the tenant.
            Some(Credential::Impersonation(_)) => return Ok(Some(Some(Role::Admin))),
            None => return Ok(Some(None)),
        };
        Ok(current.map(|current| Some(current.effective())))
    }

    /// Whether impersonation `log_id` is live: not ended, not expired, and its platform
    /// admin still enabled and still a platform admin. Read as the owner, in `public` and
    /// the platform tenant's `users`.
    async fn impersonation_is_live(&self, log_id: uuid::Uuid) -> Result<bool, TxError> {
        let mut conn = self.gateway.platform_unchecked().await?;
        let live: Live = diesel::sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM public.impersonation_logs l \
             JOIN {}.users u ON u.id = l.impersonator_user_id \
             WHERE l.id = $1 AND l.action = 'impersonate' AND l.ended_at IS NULL \
             AND l.expires_at > now() AND NOT u.disabled AND u.role = 'platform_admin') AS live",
            quote_ident(&Slug::platform().schema_name())
        ))
        .bind::<SqlUuid, _>(log_id)
        .get_result(&mut *conn)
        .await?;
        Ok(live.live)
    }

    /// Ends the transaction: commits when `commit` is true, rolls back otherwise. A
    /// transaction that was never begun costs nothing. Idempotent.
    pub async fn finish(&self, commit: bool) -> Result<(), TxError> {
        let mut state = self.state.lock().await;
        let previous = std::mem::replace(&mut *state, State::Finished);
        if let State::Open(mut conn, _) = previous {
            if commit {
                AnsiTransactionManager::commit_transaction(&mut **conn).await?;
            } else {
                AnsiTransactionManager::rollback_transaction(&mut **conn).await?;
            }
        }
        Ok(())
    }

    /// Ends the transaction (commits; a subscriber's transactions are read-only) and lets
    /// the next use begin a fresh one, with a fresh credential check. For subscriptions,
    /// which run one short transaction per delivery.
    pub async fn restart(&self) -> Result<(), TxError> {
        let finished = self.finish(true).await;
        // Even when the commit failed (a lost connection), the next use begins afresh.
        *self.state.lock().await = State::NotBegun;
        finished.map_err(|error| match error {
            TxError::Database(error) => connection_error(error),
            other => other,
        })
    }

    /// Gives up an open transaction without a round trip (when its owner is dropped
    /// mid-way): the connection goes back to the pool inside the transaction, which the
    /// pool sees as broken and closes, so PostgreSQL rolls it back.
    pub fn abandon(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            *state = State::Finished;
        }
    }
}
