//! Enclave: a multi-tenant GraphQL API server for a network and infrastructure
//! monitoring control plane. Every tenant's data lives in its own PostgreSQL schema and is
//! reached only through a transaction bound to that tenant's schema and role.
//!
//! Where to look:
//! - `config`: every setting, read from the environment;
//! - `db`: connections, the pool, creating and hardening the database;
//! - `tenancy`: slugs, tenant roles, migrations, provisioning — where a tenant is chosen;
//! - `schema`: Diesel table definitions;
//! - `resolvers`: the GraphQL API;
//! - `auth`: keys, tokens, passwords, users;
//! - `backup`: per-tenant export and import (`enclave tenant export|import`);
//! - `app`: the state shared by all requests;
//! - `http`: the axum router and the GraphQL endpoint;
//! - `edge`: certificate authorities, onboarding and the mTLS endpoint of edge components;
//! - `jobs`: tenant job schedules and queues, and the workers that run them;
//! - `nats`: NATS subjects, one account per tenant, publishing after commit, heartbeats;
//! - `cli`: the `enclave` command.
//!
//! Error policy: `anyhow` at the edges (startup, CLI), typed errors (`thiserror`) inside
//! the library, so callers can tell a refused request from a broken database.

pub mod app;
pub mod auth;
pub mod backup;
pub mod changes;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod device_merge;
pub mod edge;
pub mod http;
pub mod jobs;
pub mod nats;
pub mod pool;
pub mod prepared;
pub mod resolvers;
pub mod schema;
pub mod tenancy;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;

use app::App;
use config::{AuthConfig, DatabaseConfig, LimitsConfig, ServerConfig};
use tenancy::Installation;
use tenancy::migrations::{self, MigrationSets};

/// Creates the database when missing, then runs every pending migration (public, the
/// platform tenant, every tenant schema) and makes sure the authenticator role of request
/// connections exists and holds every tenant role. Returns only when the whole fleet is up
/// to date. Only `serve`, `migrate` and `demo` may create a database; other commands use
/// [`open_database`].
pub async fn prepare_database(
    config: &DatabaseConfig,
    migration_sets: Arc<MigrationSets>,
) -> anyhow::Result<Installation> {
    db::ensure_database_exists(config.session_url()).await?;
    migrate_database(config, migration_sets)
        .await
        .map(|(installation, _)| installation)
}

/// Like [`prepare_database`] for a database that must exist already: a missing one is
/// refused with its name (a mistyped `DATABASE_URL` must not become a new installation).
pub async fn open_database(
    config: &DatabaseConfig,
    migration_sets: Arc<MigrationSets>,
) -> anyhow::Result<Installation> {
    db::require_database(config.session_url()).await?;
    migrate_database(config, migration_sets)
        .await
        .map(|(installation, _)| installation)
}

/// Runs every pending migration of an existing database (as startup does: failing fast,
/// leaving tenants quarantined after a failed migration alone), checks every schema for
/// drift, and says what it did.
pub async fn migrate_database(
    config: &DatabaseConfig,
    migration_sets: Arc<MigrationSets>,
) -> anyhow::Result<(Installation, migrations::MigrationReport)> {
    let options = migrations::MigrateOptions {
        ensure_platform_tenant: true,
        skip_quarantined: true,
        ..migrations::MigrateOptions::default()
    };
    migrate_database_with(config, migration_sets, &options).await
}

/// Drops the staging schemas of imports that crashed (never one a running import claims,
/// see `backup::staging`). A failure only warns: the next start or import tries again.
async fn sweep_import_leftovers(installation: &Installation) {
    let swept = async {
        let mut conn = db::connect(&installation.database_url)
            .await
            .map_err(|e| backup::BackupError::Database(e.to_string()))?;
        backup::staging::sweep(&mut conn).await
    }
    .await;
    if let Err(error) = swept {
        tracing::warn!(%error, "cannot drop the staging schemas of crashed imports; the next start or import tries again");
    }
}

/// [`migrate_database`] with the fleet options of `enclave migrate` (canaries, continue on
/// error, retrying quarantined tenants).
pub async fn migrate_database_with(
    config: &DatabaseConfig,
    migration_sets: Arc<MigrationSets>,
    options: &migrations::MigrateOptions,
) -> anyhow::Result<(Installation, migrations::MigrationReport)> {
    let installation = Installation::new(config, migration_sets)?;
    let started = std::time::Instant::now();
    let report = migrations::migrate_with(&installation, options)
        .await
        .context("migrations failed; not starting")?;
    sweep_import_leftovers(&installation).await;
    tenancy::authenticator::ensure(&installation)
        .await
        .context("the authenticator role is not usable; not starting")?;
    tracing::debug!(
        up_to_date = report.was_up_to_date,
        public_applied = report.public_applied,
        tenants_migrated = report.tenants_migrated,
        tenant_migrations_applied = report.tenant_migrations_applied,
        tenants_checked = report.drift.checked,
        tenants_read_again = report.drift.fingerprinted,
        tenants_drifted = report.drift.drifted.len(),
        drift_check_ms = report.drift.took.as_millis() as u64,
        took_ms = started.elapsed().as_millis() as u64,
        "database ready"
    );
    Ok((installation, report))
}

/// The application router with the default options (no `/metrics`, no field
/// suggestions in errors).
pub fn build_app(app: Arc<App>, ready: Arc<AtomicBool>) -> axum::Router {
    build_app_with(app, ready, &http::HttpOptions::default())
}

/// The application router (what `listen` serves).
pub fn build_app_with(app: Arc<App>, ready: Arc<AtomicBool>, options: &http::HttpOptions) -> axum::Router {
    // Never stopping: the sender is dropped, which WebSockets read as "no shutdown".
    let (_, never) = tokio::sync::watch::channel(false);
    http::router(app_state(app, ready, never, options), options)
}

fn app_state(
    app: Arc<App>,
    ready: Arc<AtomicBool>,
    stopping: tokio::sync::watch::Receiver<bool>,
    options: &http::HttpOptions,
) -> http::AppState {
    let builder = || {
        let schema = resolvers::schema_builder(app.clone());
        if options.suggestions {
            schema
        } else {
            schema.disable_suggestions()
        }
    };
    http::AppState {
        schema: builder().finish(),
        ws_schema: builder().extension(http::ws::Gate).finish(),
        app,
        ready,
        stopping,
    }
}

/// Loads the keys (refusing to start without one), migrates, starts the job workers
/// (`ENCLAVE_WORKERS`), then listens until `shutdown` resolves. The port is bound only
/// after every migration succeeded: a failed migration returns an error and nothing ever
/// listens.
pub async fn serve(
    database: &DatabaseConfig,
    auth: &AuthConfig,
    limits: &LimitsConfig,
    server: &ServerConfig,
    migration_sets: Arc<MigrationSets>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = start(database, auth, limits, migration_sets).await?;
    // Job workers start after migrations (in `start`) and stop after the listener.
    let workers = jobs::Workers::start(
        &app.db,
        &app.directory,
        &app.installation,
        server.jobs.worker_count(),
        server.jobs.export_dir.clone(),
        &app.jobs,
    );
    let served = listen(app, server, auth.dev, shutdown).await;
    workers.stop().await;
    served
}

/// Everything before listening: keys, migrations, the shared state.
pub async fn start(
    database: &DatabaseConfig,
    auth: &AuthConfig,
    limits: &LimitsConfig,
    migration_sets: Arc<MigrationSets>,
) -> anyhow::Result<Arc<App>> {
    let keys = auth.root_keys().context("cannot load the root key")?;
    db::ensure_database_exists(database.session_url()).await?;
    let started = std::time::Instant::now();
    let (mut installation, report) = migrate_database(database, migration_sets).await?;
    installation.edge = edge::prepare_if_configured(&installation, auth).await?;
    installation.nats = nats::prepare_if_configured(&installation, auth).await?;
    tracing::info!(
        database = %db::describe(database.session_url()),
        up_to_date = report.was_up_to_date,
        public_applied = report.public_applied,
        tenants_migrated = report.tenants_migrated,
        tenant_migrations_applied = report.tenant_migrations_applied,
        took_ms = started.elapsed().as_millis() as u64,
        "database ready"
    );
    App::new(database, auth, keys, installation, limits.clone()).await
}

/// Serves `app` on `server.listen` (and `/metrics` on `server.metrics_listen`, if set)
/// until `shutdown` resolves, keeping the tenant directory fresh meanwhile. `dev`
/// (`ENCLAVE_DEV`) turns on field suggestions in GraphQL errors.
pub async fn listen(
    app: Arc<App>,
    server: &ServerConfig,
    dev: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let options = http::HttpOptions::from_config(server, dev);
    let ready = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let state = app_state(app.clone(), ready.clone(), stopped.clone(), &options);
    let router = http::router(state.clone(), &options);
    // `listen` may be a host name: bind resolves it (trying each address in turn).
    let listener = tokio::net::TcpListener::bind(server.listen.as_str())
        .await
        .with_context(|| format!("cannot listen on {} (ENCLAVE_LISTEN)", server.listen))?;
    let metrics_listener = match server.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for /metrics"))?,
        ),
        None => None,
    };
    // The edge listener (mutual TLS), when the edge is configured; bound after migrations
    // like the main listener, stopped with it.
    let edge_server = match app.installation.edge.clone() {
        Some(authority) => {
            let edge_listener = tokio::net::TcpListener::bind(authority.listen())
                .await
                .with_context(|| format!("cannot listen on {} (ENCLAVE_EDGE_LISTEN)", authority.listen()))?;
            Some(edge::listener::start(app.clone(), edge_listener, authority.listen()).await?)
        }
        None => None,
    };
    let refresher = app.directory.spawn_refresher();
    let change_listener = app.changes.spawn_listener(app.installation.database_url.clone());
    let nats_link = match app.nats_url.clone() {
        Some(url) => Some(nats::start(app.clone(), &url).await?),
        None => None,
    };
    let unready = ready.clone();
    let signal = tokio::spawn(async move {
        shutdown.await;
        // Load balancers see the instance leave at once.
        unready.store(false, Ordering::Release);
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    ready.store(true, Ordering::Release);
    let address = listener
        .local_addr()
        .map_or_else(|_| server.listen.clone(), |a| a.to_string());
    tracing::info!(%address, listen = %server.listen, "listening");
    let header_timeout = server.header_read_timeout();
    let main = http::serve::serve(listener, router, header_timeout, until_stopped(stopped.clone()));
    let metrics = async {
        let Some(listener) = metrics_listener else {
            return Ok(());
        };
        tracing::info!(address = ?server.metrics_listen, "serving /metrics");
        let router = http::metrics_router(state, &options);
        http::serve::serve(listener, router, header_timeout, until_stopped(stopped.clone())).await
    };
    let grace = server.shutdown_grace();
    let mut grace_stopped = stopped.clone();
    let (served, metrics_served) = tokio::select! {
        results = async { tokio::join!(main, metrics) } => results,
        () = async {
            let _ = grace_stopped.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "requests still running after the shutdown grace period; exiting");
            (Ok(()), Ok(()))
        }
    };
    signal.abort();
    refresher.abort();
    if let Some(edge_server) = edge_server {
        edge_server.stop();
    }
    change_listener.abort();
    if let Some(link) = nats_link {
        link.stop();
    }
    served.context("HTTP server failed")?;
    metrics_served.context("metrics server failed")
}
