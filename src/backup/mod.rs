//! Per-tenant backup and restore: `enclave tenant export` and `enclave tenant import`.
//!
//! - `archive`: the file format (tar.gz, manifest, digests) and its verification;
//! - `export`: a consistent snapshot of one tenant into an archive;
//! - `import`: restoring an archive into a staging schema and swapping it in;
//! - `staging`: the staging schemas' names, the claim an import holds on its own, and the
//!   sweep of those a crashed import left behind.
//!
//! **Why `COPY` and not `pg_dump`.** The export runs every statement in one
//! `REPEATABLE READ READ ONLY` transaction on one connection: the `public` rows (tenant,
//! domains, memberships, migration ledger) and every table's `COPY … TO STDOUT` see the
//! same snapshot, with no second process to coordinate through `--snapshot`. `pg_dump`
//! would also dump DDL, owners and grants naming the source's roles, which a restore has to
//! strip again; it is an external binary whose major version must match the server's and
//! that need not be installed where Enclave runs. With `COPY` the archive holds data only:
//! the schema itself always comes from this build's tenant migrations (the same code that
//! provisions a tenant), so a restore needs no superuser, names no source role, and
//! creates exactly the tables, indexes, triggers and grants a fresh tenant gets. The price:
//! an archive can only be restored by a build with the same tenant migrations (checked
//! from the manifest, refused otherwise), and this module must know the data's shape —
//! which the catalog tells it.
//!
//! Archives are held in memory while they are written (one table at a time) and read
//! (the whole archive), which suits tenants of up to a few GB.

pub mod archive;
pub mod export;
pub mod import;
pub mod staging;

pub use export::export_tenant;
pub use import::{ImportOptions, ImportSummary, import_tenant};

use crate::db;
use crate::tenancy::provision::TenancyError;

/// Why an export or import failed. For operators (the CLI): messages may name tables, and
/// never reach a GraphQL client.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(String),
    /// The archive is damaged: nothing was changed.
    #[error("corrupted archive, nothing was changed: {0}")]
    Corrupt(String),
    /// The archive is intact but this build cannot restore it: nothing was changed.
    #[error("cannot restore this archive, nothing was changed: {0}")]
    Unsupported(String),
    /// The request contradicts the database (an existing tenant, a bad slug...).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Tenancy(#[from] TenancyError),
    #[error("database error: {0}")]
    Database(String),
}

impl From<diesel::result::Error> for BackupError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Database(crate::tenancy::migrations::describe_db_error(&error))
    }
}

impl From<tokio_postgres::Error> for BackupError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(db::pg_error_message(&error))
    }
}

impl From<crate::tenancy::migrations::MigrationError> for BackupError {
    fn from(error: crate::tenancy::migrations::MigrationError) -> Self {
        Self::Tenancy(error.into())
    }
}

/// A plain `tokio_postgres` connection as the owner, with Enclave's startup parameters
/// (empty `search_path`, `application_name`): what `COPY` needs, which diesel does not
/// expose. Dropping the client closes the connection, rolling back an open transaction.
pub(crate) async fn connect_copy(url: &str) -> Result<tokio_postgres::Client, BackupError> {
    let mut config = db::parse_url(url).map_err(|e| BackupError::Database(format!("{e:#}")))?;
    let mut options = config.get_options().map(str::to_owned).unwrap_or_default();
    if !options.is_empty() {
        options.push(' ');
    }
    options.push_str("-c search_path=");
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name(db::APPLICATION_NAME);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "backup connection closed");
        }
    });
    Ok(client)
}
