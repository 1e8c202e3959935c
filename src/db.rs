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
/// `application_name`) as the user of `url`: the owner. Used for migrations,
/// provisioning, platform work and the CLI.
pub async fn connect(url: &str) -> ConnectionResult<AsyncPgConnection> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| ConnectionError::InvalidConnectionUrl(format!("{e}")))?;
    connect_with(config, &[]).await
}

/// Opens one connection from `config` with Enclave's startup parameters (empty
/// `search_path`, `application_name`) plus `settings` (`name=value` pairs sent as startup
/// options, never as a `SET`).
pub async fn connect_with(
    mut config: tokio_postgres::Config,
    settings: &[String],
) -> ConnectionResult<AsyncPgConnection> {
    let mut options = config.get_options().map(str::to_owned).unwrap_or_default();
    for setting in std::iter::once(&"search_path=".to_owned()).chain(settings) {
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str("-c ");
        options.push_str(setting);
    }
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| ConnectionError::BadConnection(pg_error_message(&e)))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// The connection settings of `url` with another user and no password: how request
/// connections reach the same server and database as the authenticator when
/// `ENCLAVE_AUTHENTICATOR_URL` is not set (for servers that trust local connections).
pub fn with_user(url: &str, user: &str) -> anyhow::Result<tokio_postgres::Config> {
    let owner = parse_url(url)?;
    let mut config = tokio_postgres::Config::new();
    config.user(user);
    for host in owner.get_hosts() {
        match host {
            tokio_postgres::config::Host::Tcp(host) => config.host(host),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => config.host_path(path),
        };
    }
    for port in owner.get_ports() {
        config.port(*port);
    }
    if let Some(dbname) = owner.get_dbname() {
        config.dbname(dbname);
    }
    if let Some(options) = owner.get_options() {
        config.options(options);
    }
    if let Some(name) = owner.get_application_name() {
        config.application_name(name);
    }
    if let Some(timeout) = owner.get_connect_timeout() {
        config.connect_timeout(*timeout);
    }
    config.ssl_mode(owner.get_ssl_mode());
    Ok(config)
}

/// The whole story of a `tokio_postgres` error: its own text ("db error", "error
/// connecting to server") is rarely enough, so the server's message (or the underlying
/// I/O error) is appended.
pub fn pg_error_message(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut message = format!("{error}: {}", db.message());
        if let Some(detail) = db.detail() {
            message.push_str(&format!(" ({detail})"));
        }
        return message;
    }
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Connects to the maintenance database `postgres` of the same server.
async fn connect_maintenance(url: &str) -> anyhow::Result<AsyncPgConnection> {
    let mut config = parse_url(url)?;
    config.dbname("postgres");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to PostgreSQL at {}: {}",
            describe(url),
            pg_error_message(&e)
        )
    })?;
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

/// Refuses a database that does not exist, naming it: for the commands that must not
/// create one (everything but `serve`, `migrate` and `demo`), so that a mistyped name is
/// reported instead of becoming a new, empty installation.
pub async fn require_database(url: &str) -> anyhow::Result<()> {
    let name = database_name(url)?;
    let mut conn = connect_maintenance(url).await?;
    if database_exists(&mut conn, &name).await? {
        return Ok(());
    }
    bail!(
        "database {name} does not exist on {}: check DATABASE_URL (`enclave migrate`, `serve` or `demo` create it)",
        describe(url)
    )
}

/// `enclave uninstall`: drops the database of `url` and every tenant role it created.
/// Refuses unless `confirm` repeats the database's name.
pub async fn uninstall(url: &str, confirm: &str) -> anyhow::Result<()> {
    let name = database_name(url)?;
    anyhow::ensure!(
        confirm == name,
        "refusing to uninstall: --confirm must repeat the database name {name} (from DATABASE_URL)"
    );
    anyhow::ensure!(
        !["postgres", "template0", "template1"].contains(&name.as_str()),
        "refusing to uninstall: {name} is a PostgreSQL system database; point DATABASE_URL at Enclave's database"
    );
    let mut conn = connect_maintenance(url).await?;
    let existed = database_exists(&mut conn, &name).await?;
    drop_database(&mut conn, &name)
        .await
        .with_context(|| format!("cannot drop database {name}"))?;
    if existed {
        tracing::info!(database = %name, "dropped database and its roles");
    } else {
        tracing::info!(database = %name, "database did not exist; dropped its leftover roles");
    }
    Ok(())
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

/// Startup settings of request connections: what a request may hold, and for how long,
/// whatever happens to its client.
///
/// - `lock_timeout`: a request waiting for a row lock fails instead of queueing;
/// - `idle_in_transaction_session_timeout`: a backend whose request stopped talking
///   (abandoned, stuck) ends its transaction and closes;
/// - `client_connection_check_interval`: a backend running a statement notices that its
///   client (a connection Enclave discarded) is gone and stops, instead of running to the
///   statement timeout.
pub fn request_settings(config: &DatabaseConfig) -> Vec<String> {
    vec![
        format!("lock_timeout={}", config.lock_timeout_ms),
        format!(
            "idle_in_transaction_session_timeout={}",
            config.idle_in_transaction_timeout_ms
        ),
        "client_connection_check_interval=1000".to_owned(),
    ]
}

/// A connection manager whose connections are opened from `connect` with `settings`,
/// counting their statements in `statements` when given.
fn manager(
    connect: tokio_postgres::Config,
    settings: Vec<String>,
    statements: Option<&StatementCounter>,
) -> AsyncDieselConnectionManager<AsyncPgConnection> {
    let mut manager_config = ManagerConfig::default();
    let counter = statements.map(|s| s.0.clone());
    let settings = Arc::new(settings);
    manager_config.custom_setup = Box::new(move |_url| {
        let counter = counter.clone();
        let connect = connect.clone();
        let settings = settings.clone();
        async move {
            let mut conn = connect_with(connect, &settings).await?;
            if let Some(counter) = counter {
                conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
                    if let InstrumentationEvent::StartQuery { query, .. } = event {
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::trace!(target: "enclave::sql", "{query}");
                    }
                });
            }
            Ok(conn)
        }
        .boxed()
    });
    manager_config.recycling_method = RecyclingMethod::Fast;
    // The URL is unused: `custom_setup` connects from `connect`.
    AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config("", manager_config)
}

/// Builds the request pool: connections log in as the authenticator (`connect`), open
/// lazily (building the pool does not touch the database), and waiting for one is bounded
/// by the pool timeout.
pub fn build_request_pool(
    config: &DatabaseConfig,
    connect: tokio_postgres::Config,
    statements: &StatementCounter,
) -> Pool {
    let tenants_per_connection = usize::try_from(config.pool_tenants_per_connection)
        .ok()
        .filter(|limit| *limit > 0);
    Pool::new(
        manager(connect, request_settings(config), Some(statements)),
        config.pool_size,
        tenants_per_connection,
        config.pool_tenant_share,
        config.pool_timeout(),
        Duration::from_secs(300),
    )
}

/// Connections of the owner role for platform work (`public`): a few, opened lazily.
pub type PlatformPool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

/// Connections in the platform pool.
const PLATFORM_POOL_SIZE: u32 = 4;

/// Builds the platform pool on the owner's URL.
pub fn build_platform_pool(config: &DatabaseConfig) -> anyhow::Result<PlatformPool> {
    Ok(bb8::Pool::builder()
        .max_size(PLATFORM_POOL_SIZE)
        .connection_timeout(config.pool_timeout())
        .idle_timeout(Some(Duration::from_secs(300)))
        .build_unchecked(manager(parse_url(&config.database_url)?, Vec::new(), None)))
}
