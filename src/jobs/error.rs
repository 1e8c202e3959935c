//! Why a job attempt failed, as a code. A job's `last_error` stores only the code (what
//! `Job.lastError` shows through GraphQL): never SQL text, relation or constraint names.
//! The full error goes to the log, with the tenant and job id.

use crate::tenancy::transaction::TxError;

/// A failed attempt.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job's kind is not one this version runs.
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    /// The payload does not fit the kind.
    #[error("bad payload: {0}")]
    BadPayload(String),
    /// The job was cancelled, or its lease taken over, while it ran.
    #[error("the job's lease was lost")]
    LeaseLost,
    /// The attempt took longer than its lease.
    #[error("the job ran longer than its lease")]
    TimedOut,
    /// A platform job names no tenant, or one that no longer exists.
    #[error("the job's tenant does not exist")]
    NoTenant,
    /// Something the job needs is not configured (the variable's name).
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// Migrating a tenant schema failed (the message is logged, never stored).
    #[error("migration failed: {0}")]
    Migration(String),
    /// Writing a tenant export failed (the message is logged, never stored).
    #[error("export failed: {0}")]
    Export(String),
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl JobError {
    /// The code recorded in `last_error`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownKind(_) => "UNKNOWN_KIND",
            Self::BadPayload(_) => "BAD_PAYLOAD",
            Self::LeaseLost => "LEASE_LOST",
            Self::TimedOut => "TIMED_OUT",
            Self::NoTenant => "NO_TENANT",
            Self::NotConfigured(_) => "NOT_CONFIGURED",
            Self::Migration(_) => "MIGRATION_FAILED",
            Self::Export(_) => "EXPORT_FAILED",
            Self::Tx(TxError::PoolTimeout(_) | TxError::PlatformPoolTimeout) => "POOL_TIMEOUT",
            Self::Tx(TxError::Connect(_)) => "CONNECTION_LOST",
            Self::Tx(TxError::Database(error)) | Self::Database(error) => database_code(error),
            Self::Tx(TxError::CredentialRevoked | TxError::Finished) => "TRANSACTION_ENDED",
        }
    }

    /// Whether another attempt cannot help (the job is dead-lettered at once).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::UnknownKind(_) | Self::BadPayload(_) | Self::NoTenant | Self::NotConfigured(_)
        )
    }
}

/// The code of a database error, from its kind or PostgreSQL's message prefix.
fn database_code(error: &diesel::result::Error) -> &'static str {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
            _,
        ) => "CONNECTION_LOST",
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => "SERIALIZATION_FAILURE",
        Error::DatabaseError(_, info) => {
            let message = info.message();
            if message.starts_with("permission denied") {
                "PERMISSION_DENIED"
            } else if message.contains("statement timeout") {
                "STATEMENT_TIMEOUT"
            } else if message.contains("lock timeout") {
                "LOCK_TIMEOUT"
            } else if message.contains("does not exist") {
                "UNDEFINED_OBJECT"
            } else if message.contains("terminating connection") {
                "CONNECTION_LOST"
            } else {
                "DATABASE_ERROR"
            }
        }
        _ => "DATABASE_ERROR",
    }
}
