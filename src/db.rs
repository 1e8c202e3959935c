//! The PostgreSQL connection layer: how Enclave connects, the request pool, and the
//! creation and hardening of its database.
//!
//! Every connection Enclave opens starts with an empty `search_path` (a startup parameter,
//! not a `SET`): a query that runs outside a tenant transaction finds no relation at all
//! instead of silently reading some schema. Tenant transactions set their own
//! `search_path` with `SET LOCAL` (see `tenancy`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::InstrumentationEvent;
use diesel_async::AsyncConnection as _;

use anyhow::{Context as _, bail};
use diesel::sql_types::Text;
use diesel::{ConnectionError, ConnectionResult, QueryableByName};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt as _;
use sha2::{Digest, Sha256};

use crate::config::DatabaseConfig;

pub use crate::pool::Pool;

/// `application_name` of every connection Enclave opens, so operators can find them in
/// `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "enclave";

/// Quotes a PostgreSQL identifier (schema, role or database name).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Parses a `postgres://` URL.
pub fn parse_url(url: &str) -> anyhow::Result<tokio_postgres::Config> {
    url.parse::<tokio_postgres::Config>()
        .context("DATABASE_URL is not a valid PostgreSQL connection URL")
}

/// The database name a URL points at (PostgreSQL's default: the user name).
pub fn database_name(url: &str) -> anyhow::Result<String> {
    let config = parse_url(url)?;
    match config.get_dbname().or(config.get_user()) {
        Some(name) => Ok(name.to_owned()),
        None => bail!("DATABASE_URL names neither a database nor a user"),
    }
}

/// Opens one connection with Enclave's startup parameters (empty `search_path`,
/// `application_name`). Used for the pool and for the dedicated connections of the
/// migration runner.
pub async fn connect(url: &str) -> ConnectionResult<AsyncPgConnection> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| ConnectionError::InvalidConnectionUrl(format!("{e}")))?;
    let options = match config.get_options() {
        Some(existing) => format!("{existing} -c search_path="),
        None => "-c search_path=".to_owned(),
    };
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// Connects to the maintenance database `postgres` of the same server.
async fn connect_maintenance(url: &str) -> anyhow::Result<AsyncPgConnection> {
    let mut config = parse_url(url)?;
    config.dbname("postgres");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", describe(url)))?;
    Ok(AsyncPgConnection::try_from_client_and_connection(client, connection).await?)
}

/// `host:port/db` of a URL, without credentials, for messages.
pub fn describe(url: &str) -> String {
    let Ok(config) = parse_url(url) else {
        return "<invalid URL>".to_owned();
    };
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("?"))
}

#[derive(QueryableByName)]
struct DatabaseRow {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    datname: String,
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> anyhow::Result<bool> {
    let rows: Vec<DatabaseRow> = diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .load(conn)
        .await?;
    Ok(!rows.is_empty())
}

/// Creates the database of `url` when it does not exist. Safe to run from several
/// processes at once: losing the race to create it is success.
pub async fn ensure_database_exists(url: &str) -> anyhow::Result<()> {
    let name = database_name(url)?;
    let mut conn = connect_maintenance(url).await?;
    if database_exists(&mut conn, &name).await? {
        return Ok(());
    }
    let created = conn
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
        .await;
    match created {
        Ok(()) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        Err(_) if database_exists(&mut conn, &name).await? => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create database {name}")),
    }
}

/// Prefix of the database roles of this database's tenants. Roles are cluster-wide, so
/// they are namespaced by a digest of the database name: several Enclave databases can
/// share one PostgreSQL cluster without sharing a role.
pub fn role_namespace(database_name: &str) -> String {
    let digest = Sha256::digest(database_name.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("enclave_{hex}_")
}

/// Drops database `name` (closing its connections) and every tenant role it created
/// (those of its [`role_namespace`]). `admin` is a connection to another database.
pub async fn drop_database(admin: &mut AsyncPgConnection, name: &str) -> diesel::QueryResult<()> {
    #[derive(QueryableByName)]
    struct RoleName {
        #[diesel(sql_type = Text)]
        name: String,
    }
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await?;
    let roles: Vec<RoleName> =
        diesel::sql_query("SELECT rolname::text AS name FROM pg_roles WHERE starts_with(rolname, $1)")
            .bind::<Text, _>(role_namespace(name))
            .load(admin)
            .await?;
    for role in roles {
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&role.name)))
            .await?;
    }
    Ok(())
}

/// Counts the SQL statements the pool's connections send (for `/metrics` and for tests
/// that prove a query costs one statement per level, not per row).
#[derive(Debug, Clone, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        AtomicU64::load(&self.0, Ordering::Relaxed)
    }
}

/// Builds the request pool. Connections are opened lazily, so building it does not
/// touch the database; waiting for a connection is bounded by `pool_timeout`.
pub fn build_pool(config: &DatabaseConfig, statements: &StatementCounter) -> Pool {
    let mut manager_config = ManagerConfig::default();
    let counter = statements.0.clone();
    manager_config.custom_setup = Box::new(move |url| {
        let counter = counter.clone();
        async move {
            let mut conn = connect(url).await?;
            conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event {
                    counter.fetch_add(1, Ordering::Relaxed);
                    tracing::trace!(target: "enclave::sql", "{query}");
                }
            });
            Ok(conn)
        }
        .boxed()
    });
    manager_config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.database_url.clone(),
        manager_config,
    );
    let tenants_per_connection = usize::try_from(config.pool_tenants_per_connection)
        .ok()
        .filter(|limit| *limit > 0);
    Pool::new(
        manager,
        config.pool_size,
        tenants_per_connection,
        config.pool_tenant_share,
        config.pool_timeout(),
        Duration::from_secs(300),
    )
}
