//! The PostgreSQL connection layer: how Enclave connects, the request pool, and the
//! creation and hardening of its database.
//!
//! Every connection Enclave opens starts with an empty `search_path` (a startup parameter,
//! not a `SET`): a query that runs outside a tenant transaction finds no relation at all
//! instead of silently reading some schema. Tenant transactions set their own
//! `search_path` with `SET LOCAL` (see `tenancy`).
//!
//! Behind a transaction-mode pooler (`ENCLAVE_DIRECT_DATABASE_URL` set, see
//! [`DatabaseConfig::behind_pooler`]) request connections cannot carry startup options:
//! PgBouncer refuses the `options` parameter (or, listed in `ignore_startup_parameters`,
//! drops it silently), and a server connection serves many clients anyway. They then open
//! without options, and the settings of [`request_settings`] travel with `SET LOCAL` in
//! the `BEGIN` batch of every tenant transaction (see `tenancy::transaction`), which is the
//! only way request connections run SQL. With PgBouncer before 1.21 they also keep no
//! prepared statements (`ENCLAVE_PREPARED_STATEMENTS`): each statement is prepared and run
//! inside its transaction, so it never outlives the server connection it was prepared on.
//! Owner work (migrations, LISTEN, provisioning, the platform pool) always connects to the
//! session URL ([`DatabaseConfig::session_url`]).
//!
//! Lost connections (database restarted, backends terminated): [`connection_lost`] tells
//! them from statement errors; the pools drop closed connections when they are checked out
//! (see `crate::pool`) and report a database that refuses connections as such.

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

/// Opens one connection from `config` with `application_name` and no startup options:
/// for request connections through a transaction-mode pooler (see the module doc).
pub async fn connect_without_options(
    mut config: tokio_postgres::Config,
) -> ConnectionResult<AsyncPgConnection> {
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| ConnectionError::BadConnection(pg_error_message(&e)))?;
    // diesel-async sets the time zone and encoding with two prepared statements as soon
    // as it wraps a client. Outside a transaction a transaction-mode pooler may run a
    // statement's Parse on one server connection and its Execute on another ("prepared
    // statement … does not exist"), so they run inside one transaction, which keeps one
    // server connection; the pooler tracks both settings for the client from then on.
    // The connection is driven here for that; a lost socket still shows as a closed
    // client (`is_broken`) and as errors of the statements sent on it.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "a request connection ended");
        }
    });
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| ConnectionError::BadConnection(pg_error_message(&e)))?;
    let mut conn = AsyncPgConnection::try_from(client).await?;
    conn.batch_execute("COMMIT")
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Whether `error` says the connection itself is gone (closed socket, no SQLSTATE; or the
/// server's "terminating connection" / "the database system is shutting down" answers),
/// as opposed to an error of the statement: the database restarted or the backend was
/// terminated, and the same work may succeed on a new connection.
pub fn connection_lost(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        Error::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
            _,
        ) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("terminating connection")
                || message.contains("the database system is")
                || message.contains("connection closed")
                || message.contains("server closed the connection")
        }
        _ => false,
    }
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

/// How a pool's connections are opened.
struct Opening {
    /// Startup settings (`name=value`, sent as options with the empty `search_path`);
    /// `None`: no startup options at all (behind a transaction-mode pooler).
    settings: Option<Vec<String>>,
    /// Keep diesel's per-connection prepared-statement cache.
    prepared_statements: bool,
    /// Run a query on checkout (for the small platform pool, whose users are not retried).
    verify_on_checkout: bool,
}

/// A connection manager whose connections are opened from `connect` as `opening` says,
/// counting their statements in `statements` when given.
fn manager(
    connect: tokio_postgres::Config,
    opening: Opening,
    statements: Option<&StatementCounter>,
) -> AsyncDieselConnectionManager<AsyncPgConnection> {
    let mut manager_config = ManagerConfig::default();
    let counter = statements.map(|s| s.0.clone());
    let settings = Arc::new(opening.settings);
    let prepared_statements = opening.prepared_statements;
    manager_config.custom_setup = Box::new(move |_url| {
        let counter = counter.clone();
        let connect = connect.clone();
        let settings = settings.clone();
        async move {
            let mut conn = match settings.as_deref() {
                Some(settings) => connect_with(connect, settings).await?,
                None => connect_without_options(connect).await?,
            };
            if !prepared_statements {
                conn.set_prepared_statement_cache_size(diesel::connection::CacheSize::Disabled);
            }
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
    manager_config.recycling_method = if opening.verify_on_checkout {
        RecyclingMethod::Verified
    } else {
        RecyclingMethod::Fast
    };
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
        manager(
            connect,
            Opening {
                settings: (!config.behind_pooler()).then(|| request_settings(config)),
                prepared_statements: config.prepared_statements(),
                verify_on_checkout: false,
            },
            Some(statements),
        ),
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

/// When a pool last failed to open or verify a connection: a wait for a connection that
/// runs out soon after is the database being unreachable, not a busy pool.
#[derive(Debug, Clone, Default)]
pub struct ConnectFailures(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl ConnectFailures {
    /// Whether a failure happened within `window`.
    pub fn recent(&self, window: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() <= window)
    }
}

impl bb8::ErrorSink<diesel_async::pooled_connection::PoolError> for ConnectFailures {
    fn sink(&self, error: diesel_async::pooled_connection::PoolError) {
        tracing::warn!(%error, "cannot open a platform connection");
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::time::Instant::now());
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<diesel_async::pooled_connection::PoolError>> {
        Box::new(self.clone())
    }
}

/// Builds the platform pool on the owner's session URL, recording its connection failures
/// in `failures`. Each checkout runs `SELECT 1` first, so that a connection lost to a
/// database restart is replaced instead of failing the platform work that takes it (a few
/// connections, little traffic).
pub fn build_platform_pool(
    config: &DatabaseConfig,
    failures: &ConnectFailures,
) -> anyhow::Result<PlatformPool> {
    let opening = Opening {
        settings: Some(Vec::new()),
        prepared_statements: true,
        verify_on_checkout: true,
    };
    Ok(bb8::Pool::builder()
        .max_size(PLATFORM_POOL_SIZE)
        .connection_timeout(config.pool_timeout())
        .idle_timeout(Some(Duration::from_secs(300)))
        .error_sink(Box::new(failures.clone()))
        .build_unchecked(manager(parse_url(config.session_url())?, opening, None)))
}
