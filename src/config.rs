//! Typed configuration, read from environment variables (each one can also be given as a
//! command-line flag of the same name). This file is the reference for every variable;
//! the README repeats the list.
//!
//! | Variable | Default | Meaning |
//! | --- | --- | --- |
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/enclave` | PostgreSQL to use; `serve`, `migrate` and `demo` create the database when missing, other commands refuse it |
//! | `ENCLAVE_LISTEN` | `127.0.0.1:8080` | `host:port` the HTTP server binds (only after migrations succeeded); the host may be a name, resolved when binding |
//! | `ENCLAVE_DIRECT_DATABASE_URL` | `DATABASE_URL` | a direct (session) connection to the same database, for what needs a session: migrations (advisory lock), LISTEN (subscriptions, tenant directory), provisioning, platform work and the CLI. Set it when `DATABASE_URL` is a transaction-mode pooler (PgBouncer): request connections then go through `DATABASE_URL` without startup options (their settings are sent with `SET LOCAL` in each transaction) and without prepared-statement cache |
//! | `ENCLAVE_PREPARED_STATEMENTS` | on; off when `ENCLAVE_DIRECT_DATABASE_URL` differs from `DATABASE_URL` | request connections cache prepared statements (off for PgBouncer < 1.21 in transaction mode, which cannot route them) |
//! | `ENCLAVE_AUTHENTICATOR_URL` | `DATABASE_URL` with user `<role namespace>_authenticator`, no password | how request connections log in: as the *authenticator*, a role that owns nothing and can read nothing until a tenant transaction switches to the tenant's role (created by Enclave when not configured) |
//! | `ENCLAVE_LOCK_TIMEOUT_MS` | `5000` | `lock_timeout` of request connections |
//! | `ENCLAVE_IDLE_IN_TRANSACTION_TIMEOUT_MS` | `60000` | `idle_in_transaction_session_timeout` of request connections |
//! | `ENCLAVE_HEADER_READ_TIMEOUT_MS` | `10000` | longest time a client may take to send a request's headers before its connection is closed (also ends idle keep-alive connections) |
//! | `ENCLAVE_REQUEST_TIMEOUT_MS` | `30000` | longest time one HTTP request may take, body upload included (then 503 UNAVAILABLE) |
//! | `ENCLAVE_SHUTDOWN_GRACE_MS` | `10000` | on SIGTERM/SIGINT: `/readyz` 503 and no new connections at once, requests in flight get this long to finish, then the server exits |
//! | `ENCLAVE_METRICS_LISTEN` | — | address of a separate listener serving only `/metrics` (off by default) |
//! | `ENCLAVE_METRICS_TOKEN` | — | serves `/metrics` on the main listener too, to `Authorization: Bearer <token>` only; without it or `ENCLAVE_METRICS_LISTEN`, no `/metrics` |
//! | `ENCLAVE_POOL_SIZE` | `16` | connections in the request pool |
//! | `ENCLAVE_POOL_TIMEOUT_MS` | `5000` | longest wait for a pooled connection before a request fails |
//! | `ENCLAVE_POOL_TENANTS_PER_CONNECTION` | `100` | most distinct tenants a pooled connection serves before it is replaced; requests go to connections that have served their tenant (0: no bound) |
//! | `ENCLAVE_POOL_TENANT_SHARE` | `50` | most of the request pool (percent of its connections, at least one) one tenant holds at once; further requests of that tenant wait |
//! | `ENCLAVE_STATEMENT_TIMEOUT_MS` | `15000` | `statement_timeout` of every tenant transaction |
//! | `ENCLAVE_MIGRATION_CONCURRENCY` | `4` | tenant schemas migrated at once |
//! | `ENCLAVE_MIGRATION_LOCK_TIMEOUT_MS` | `10000` | `lock_timeout` of each migration transaction |
//! | `ENCLAVE_WORKERS` | number of CPUs | tenant job workers `serve` runs (0: none), each running one job at a time, with one platform job runner beside them |
//! | `ENCLAVE_EXPORT_DIR` | — | directory the `tenant_export` platform job writes archives into (created if missing); unset, export jobs fail with `NOT_CONFIGURED` |
//! | `ENCLAVE_WORKER_METRICS_ADDR` | — (off) | `host:port` where `enclave worker` serves `/metrics` (the job metrics `serve` shows: runs by outcome, queue depth and oldest due age by kind) |
//! | `ENCLAVE_ROOT_KEY` | — | root key set `<id>:private:<hex>[,<id>:public:<hex>…]` (see `auth::keys`) |
//! | `ENCLAVE_ROOT_KEY_FILE` | — | file holding the root key set |
//! | `ENCLAVE_DEV` | `false` | development mode: without a configured key, use (creating it if missing) the per-user dev key file; GraphQL errors suggest field names ("Did you mean …") |
//! | `ENCLAVE_DEV_KEY_FILE` | `$XDG_DATA_HOME/enclave/dev-root-key`, else `$HOME/.local/share/enclave/dev-root-key` | the development key file (one per user, read by every command in development mode) |
//! | `ENCLAVE_EDGE_KEY` | — | 64 hex digits: the key that encrypts the edge certificate authorities' private keys at rest (`serve` and `demo` refuse to start without it, except in development mode) |
//! | `ENCLAVE_EDGE_KEY_FILE` | — (dev mode: `dev-edge-key` next to the development key file) | file holding the edge key |
//! | `ENCLAVE_EDGE_DOMAIN` | `enclave` | last labels of component certificate CNs: `<component-id>.<tenant-slug>.<domain>` |
//! | `ENCLAVE_EDGE_LISTEN` | `127.0.0.1:8443` | `host:port` of the mutual-TLS listener where edge components report |
//! | `ENCLAVE_EDGE_ENDPOINT` | `https://<ENCLAVE_EDGE_LISTEN>` | the edge URL written into onboarding packages (`config.json`) |
//! | `ENCLAVE_NATS_URL` | — (NATS off) | NATS server Enclave connects to (e.g. `nats://127.0.0.1:4222`, operator mode: see `enclave nats config`): publishes `<slug>.alerts.changed`, `<slug>.events.created`, `<slug>.devices.changed` after commit, records heartbeats, puts `nats.creds` into onboarding packages |
//! | `ENCLAVE_NATS_PREFIX` | — | optional first subject token(s) of every tenant subject: `<prefix>.<slug>.…` (dot-separated letters, digits, `_`, `-`) |
//! | `ENCLAVE_SESSION_TTL_SECS` | `43200` | lifetime of a login session |
//! | `ENCLAVE_DEFAULT_TENANT` | — | tenant slug `login` uses when the host is no vanity domain |
//! | `ENCLAVE_ADMIN_PASSWORD` | — | password for `tenant create --admin-email` and `user add` (else stdin) |
//! | `ENCLAVE_MAX_DEPTH` | `15` | deepest nesting of selections |
//! | `ENCLAVE_MAX_COMPLEXITY` | `50000` | highest query complexity (lists cost page size × children) |
//! | `ENCLAVE_MAX_PAGE_SIZE` | `500` | largest `first`/`last` |
//! | `ENCLAVE_MAX_FIELDS` | `1000` | most field selections (aliases included) per document |
//! | `ENCLAVE_MAX_DIRECTIVES` | `50` | most directives per document |
//! | `ENCLAVE_MAX_BODY_BYTES` | `1048576` | largest request body |
//! | `ENCLAVE_LOG_FORMAT` | `text` | `json`: one JSON object per log line (read by the CLI before anything else); each GraphQL request logs a `graphql request` line with request id, tenant, operation, outcome, status, duration |
//! | `RUST_LOG` | `info` | log filter (`tracing-subscriber` syntax) |
//!
//! Boolean variables and flags (`ENCLAVE_DEV`) accept `1`/`0`, `true`/`false`, `yes`/`no`
//! and `on`/`off`, in any case; a refused value names the variable. Every flag is accepted
//! anywhere on the command line (`enclave tenant list --database-url …`); each command
//! takes only the groups of settings it uses.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Args, Command};

/// Parses a boolean flag or variable: `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`
/// (any case). Its errors name the environment variable as well as the flag, because a
/// refused value usually comes from the environment.
#[derive(Debug, Clone, Copy)]
pub struct Boolish {
    /// The environment variable of the flag, for the error message.
    pub var: &'static str,
}

/// Interprets one boolean spelling; `None` for anything else.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Some(true),
        "0" | "false" | "no" | "off" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

impl TypedValueParser for Boolish {
    type Value = bool;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<bool, clap::Error> {
        if let Some(parsed) = value.to_str().and_then(parse_bool) {
            return Ok(parsed);
        }
        let flag = arg
            .and_then(Arg::get_long)
            .map(|long| format!("--{long}"))
            .unwrap_or_default();
        let message = format!(
            "invalid value '{}' for {} ({flag}): expected 1/0, true/false, yes/no or on/off\n",
            value.to_string_lossy(),
            self.var
        );
        Err(clap::Error::raw(ErrorKind::ValueValidation, message).with_cmd(cmd))
    }
}

/// Where the database is and how hard to lean on it. Shared by every command that connects.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL. `serve`, `migrate` and `demo` create the database when it
    /// does not exist; every other command refuses a missing database.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/enclave"
    )]
    pub database_url: String,

    /// How request connections log in: a role that owns nothing, is no superuser, is
    /// NOINHERIT and is granted every tenant role (see README, "Security"). Unset: Enclave
    /// creates `<role namespace>_authenticator` and logs in as it without a password on the
    /// same server and database as `DATABASE_URL`.
    #[arg(
        long,
        global = true,
        env = "ENCLAVE_AUTHENTICATOR_URL",
        hide_env_values = true
    )]
    pub authenticator_url: Option<String>,

    /// A direct (session) connection to the same database as `DATABASE_URL`, for what
    /// needs a session: migrations under their advisory lock, LISTEN, provisioning, platform
    /// work, the CLI. Set it when `DATABASE_URL` is a transaction-mode pooler (PgBouncer);
    /// request connections then go through `DATABASE_URL`. Unset: `DATABASE_URL`.
    #[arg(
        long,
        global = true,
        env = "ENCLAVE_DIRECT_DATABASE_URL",
        hide_env_values = true
    )]
    pub direct_database_url: Option<String>,

    /// Whether request connections cache prepared statements. Default: on, off when
    /// `ENCLAVE_DIRECT_DATABASE_URL` differs from `DATABASE_URL` (a transaction-mode
    /// pooler before PgBouncer 1.21 cannot route prepared statements).
    #[arg(long, global = true, env = "ENCLAVE_PREPARED_STATEMENTS",
          value_parser = Boolish { var: "ENCLAVE_PREPARED_STATEMENTS" })]
    pub prepared_statements: Option<bool>,

    /// `lock_timeout` of request connections, in milliseconds.
    #[arg(long, global = true, env = "ENCLAVE_LOCK_TIMEOUT_MS", default_value_t = 5000)]
    pub lock_timeout_ms: u64,

    /// `idle_in_transaction_session_timeout` of request connections, in milliseconds: a
    /// backend whose request went quiet inside a transaction closes.
    #[arg(
        long,
        global = true,
        env = "ENCLAVE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub idle_in_transaction_timeout_ms: u64,

    /// Number of connections in the request pool.
    #[arg(long, global = true, env = "ENCLAVE_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pool_size: u32,

    /// Longest wait for a pooled connection, in milliseconds, before the request fails.
    #[arg(long, global = true, env = "ENCLAVE_POOL_TIMEOUT_MS", default_value_t = 5000)]
    pub pool_timeout_ms: u64,

    /// Most distinct tenants a pooled connection serves: requests go to a connection that
    /// has served their tenant, and one that would exceed this is closed and replaced, which
    /// bounds the catalog cache each PostgreSQL backend keeps; 0: no bound.
    #[arg(
        long,
        global = true,
        env = "ENCLAVE_POOL_TENANTS_PER_CONNECTION",
        default_value_t = 100
    )]
    pub pool_tenants_per_connection: u32,

    /// Most of the request pool one tenant holds at once, in percent of its connections
    /// (at least one connection): further requests of that tenant wait for one of its own
    /// connections (at most the pool timeout) instead of taking the last free ones.
    #[arg(long, global = true, env = "ENCLAVE_POOL_TENANT_SHARE", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub pool_tenant_share: u32,

    /// `statement_timeout` of every tenant transaction, in milliseconds.
    #[arg(
        long,
        global = true,
        env = "ENCLAVE_STATEMENT_TIMEOUT_MS",
        default_value_t = 15000
    )]
    pub statement_timeout_ms: u64,

    /// Tenant schemas migrated concurrently at startup.
    #[arg(long, global = true, env = "ENCLAVE_MIGRATION_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub migration_concurrency: u32,

    /// `lock_timeout` of each migration transaction, in milliseconds: a migration that
    /// waits longer for a lock fails instead of stalling the fleet.
    #[arg(
        long,
        global = true,
        env = "ENCLAVE_MIGRATION_LOCK_TIMEOUT_MS",
        default_value_t = 10000
    )]
    pub migration_lock_timeout_ms: u64,
}

impl DatabaseConfig {
    /// Configuration for `database_url` with every other setting at its default.
    pub fn for_url(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            authenticator_url: None,
            direct_database_url: None,
            prepared_statements: None,
            lock_timeout_ms: 5000,
            idle_in_transaction_timeout_ms: 60_000,
            pool_size: 16,
            pool_timeout_ms: 5000,
            pool_tenants_per_connection: 100,
            pool_tenant_share: 50,
            statement_timeout_ms: 15000,
            migration_concurrency: 4,
            migration_lock_timeout_ms: 10000,
        }
    }

    pub fn pool_timeout(&self) -> Duration {
        Duration::from_millis(self.pool_timeout_ms)
    }

    /// The URL of session connections (owner work, migrations, LISTEN):
    /// `ENCLAVE_DIRECT_DATABASE_URL`, else `DATABASE_URL`.
    pub fn session_url(&self) -> &str {
        self.direct_database_url.as_deref().unwrap_or(&self.database_url)
    }

    /// Whether `DATABASE_URL` is a transaction-mode pooler: a direct URL is configured and
    /// differs from it. Request connections then send no startup options and set their
    /// settings in each transaction.
    pub fn behind_pooler(&self) -> bool {
        self.direct_database_url
            .as_deref()
            .is_some_and(|direct| direct != self.database_url)
    }

    /// Whether request connections cache prepared statements (see
    /// `ENCLAVE_PREPARED_STATEMENTS`).
    pub fn prepared_statements(&self) -> bool {
        self.prepared_statements.unwrap_or(!self.behind_pooler())
    }

    pub fn migration_lock_timeout(&self) -> Duration {
        Duration::from_millis(self.migration_lock_timeout_ms)
    }
}

/// Settings of the HTTP server (`enclave serve`).
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Address and port to listen on: `host:port`, where host is an IP address or a name
    /// resolved when the server binds (`localhost:8080`, `[::1]:8080`, `0.0.0.0:8080`).
    #[arg(long, env = "ENCLAVE_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: String,

    /// Longest time a client may take to send a request's headers, in milliseconds; the
    /// connection is closed after it (against clients that trickle their headers). An
    /// idle keep-alive connection is closed after as long.
    #[arg(long, env = "ENCLAVE_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_ms: u64,

    /// Longest time one HTTP request may take, body upload and execution included, in
    /// milliseconds; a request that takes longer is answered 503 UNAVAILABLE (its
    /// transaction is rolled back).
    #[arg(long, env = "ENCLAVE_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,

    /// Address of a separate listener that serves only `/metrics` (bind it to a private
    /// interface). Off by default.
    #[arg(long, env = "ENCLAVE_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// On SIGTERM/SIGINT, how long requests in flight may take to finish, in milliseconds;
    /// `/readyz` answers 503 and no connection is accepted from the signal on, and the
    /// server exits after this even if some are still running (their transactions roll
    /// back).
    #[arg(long, env = "ENCLAVE_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Bearer token that unlocks `/metrics` on the main listener. Without it (or
    /// `ENCLAVE_METRICS_LISTEN`) `/metrics` is not served at all.
    #[arg(long, env = "ENCLAVE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// The job workers `serve` runs.
    #[command(flatten)]
    pub jobs: JobsConfig,
}

/// Settings of the job workers.
#[derive(Debug, Clone, Default, Args)]
pub struct JobsConfig {
    /// Job workers to run (each runs one job at a time); default: the number of CPUs; 0
    /// runs none (another process runs `enclave worker`).
    #[arg(long, env = "ENCLAVE_WORKERS")]
    pub workers: Option<usize>,
    /// Directory the `tenant_export` platform job writes archives to (created if
    /// missing); unset: export jobs fail with `NOT_CONFIGURED`.
    #[arg(long, env = "ENCLAVE_EXPORT_DIR")]
    pub export_dir: Option<std::path::PathBuf>,
    /// Address where `enclave worker` serves its job metrics (`/metrics` only); unset:
    /// none (`serve` shows them on its own `/metrics`).
    #[arg(long, env = "ENCLAVE_WORKER_METRICS_ADDR")]
    pub worker_metrics_addr: Option<std::net::SocketAddr>,
}

impl JobsConfig {
    /// The number of workers to start.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
    }
}

/// Checks the shape `host:port` (the host is resolved only when binding).
fn parse_listen(raw: &str) -> Result<String, String> {
    let (host, port) = raw
        .rsplit_once(':')
        .ok_or_else(|| format!("{raw:?} is not host:port (e.g. 127.0.0.1:8080 or localhost:8080)"))?;
    if host.is_empty() {
        return Err(format!(
            "{raw:?} has no host (e.g. 127.0.0.1:8080 or localhost:8080)"
        ));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{raw:?}: the port must be a number between 0 and 65535"))?;
    Ok(raw.to_owned())
}

impl ServerConfig {
    /// Listens on `listen` (`host:port`) with every other setting at its default.
    pub fn on(listen: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            metrics_listen: None,
            metrics_token: None,
            shutdown_grace_ms: 10_000,
            jobs: JobsConfig::default(),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Keys, sessions and login settings.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// Root key set (`<id>:private:<hex>[,<id>:public:<hex>…]`; `enclave keys generate`
    /// prints one). The first key signs; every listed key verifies.
    #[arg(long, global = true, env = "ENCLAVE_ROOT_KEY", hide_env_values = true)]
    pub root_key: Option<String>,

    /// File holding the root key set, instead of `ENCLAVE_ROOT_KEY`.
    #[arg(long, global = true, env = "ENCLAVE_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,

    /// Development mode: without a configured key, use the per-user development key file
    /// (`--dev-key-file`), creating it when missing. Never in production. Accepts 1/0,
    /// true/false, yes/no, on/off. Also makes GraphQL errors suggest field names
    /// ("Did you mean …", off otherwise: they help explore the schema without a token).
    #[arg(long, global = true, env = "ENCLAVE_DEV", action = clap::ArgAction::SetTrue,
          value_parser = Boolish { var: "ENCLAVE_DEV" })]
    pub dev: bool,

    /// Development key file, shared by every command run in development mode by this user
    /// [default: $XDG_DATA_HOME/enclave/dev-root-key, else
    /// $HOME/.local/share/enclave/dev-root-key].
    #[arg(long, global = true, env = "ENCLAVE_DEV_KEY_FILE")]
    pub dev_key_file: Option<PathBuf>,

    /// Lifetime of a login session, in seconds.
    #[arg(long, global = true, env = "ENCLAVE_SESSION_TTL_SECS", default_value_t = 12 * 3600,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub session_ttl_secs: u64,

    /// Tenant (slug) that `login` uses when the request's host is no vanity domain.
    #[arg(long, global = true, env = "ENCLAVE_DEFAULT_TENANT")]
    pub default_tenant: Option<String>,

    /// Edge certificate authorities and their key.
    #[command(flatten)]
    pub edge: EdgeConfig,

    /// NATS (its keys are sealed with the edge key).
    #[command(flatten)]
    pub nats: NatsConfig,
}

/// NATS: where Enclave connects and how subjects are named (see `nats`).
#[derive(Debug, Clone, Default, Args)]
pub struct NatsConfig {
    /// NATS server URL (`nats://host:4222`), running in operator mode with the configuration
    /// `enclave nats config` prints. Unset: NATS is off (no publishing, no `nats.creds`).
    #[arg(long, global = true, env = "ENCLAVE_NATS_URL")]
    pub nats_url: Option<String>,

    /// First subject token(s) of every tenant subject: `<prefix>.<slug>.alerts.changed`.
    #[arg(long, global = true, env = "ENCLAVE_NATS_PREFIX", value_parser = crate::nats::parse_prefix)]
    pub nats_prefix: Option<String>,
}

/// The edge: certificate authorities, component certificates (see `edge`).
#[derive(Debug, Clone, Args)]
pub struct EdgeConfig {
    /// Key that encrypts the certificate authorities' private keys at rest: 64 hex digits.
    #[arg(long, global = true, env = "ENCLAVE_EDGE_KEY", hide_env_values = true)]
    pub edge_key: Option<String>,

    /// File holding the edge key, instead of `ENCLAVE_EDGE_KEY`.
    #[arg(long, global = true, env = "ENCLAVE_EDGE_KEY_FILE")]
    pub edge_key_file: Option<PathBuf>,

    /// Last labels of every component certificate's CN: `<component>.<tenant>.<domain>`.
    #[arg(long, global = true, env = "ENCLAVE_EDGE_DOMAIN", default_value = "enclave")]
    pub edge_domain: String,

    /// Address and port of the mutual-TLS edge listener (`enclave serve`).
    #[arg(long, global = true, env = "ENCLAVE_EDGE_LISTEN", default_value = "127.0.0.1:8443", value_parser = parse_listen)]
    pub edge_listen: String,

    /// URL components are told to report to (`edgeEndpoint` of their package)
    /// [default: https://<ENCLAVE_EDGE_LISTEN>].
    #[arg(long, global = true, env = "ENCLAVE_EDGE_ENDPOINT")]
    pub edge_endpoint: Option<String>,
}

impl EdgeConfig {
    /// The given key, default domain.
    pub fn with_key(edge_key: String) -> Self {
        Self {
            edge_key: Some(edge_key),
            edge_key_file: None,
            edge_domain: "enclave".to_owned(),
            edge_listen: "127.0.0.1:8443".to_owned(),
            edge_endpoint: None,
        }
    }

    /// `ENCLAVE_EDGE_ENDPOINT`, else `https://<ENCLAVE_EDGE_LISTEN>`.
    pub fn endpoint(&self) -> String {
        self.edge_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}", self.edge_listen))
    }
}

/// The development key file when `ENCLAVE_DEV_KEY_FILE` is not set: one per user, at a
/// fixed place, so that every command run in development mode (from any directory) signs
/// and verifies with the same key. `None` when neither `XDG_DATA_HOME` nor `HOME` is set.
pub fn default_dev_key_file() -> Option<PathBuf> {
    let non_empty = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let data_home = non_empty("XDG_DATA_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| non_empty("HOME").map(|home| home.join(".local").join("share")))?;
    Some(data_home.join("enclave").join("dev-root-key"))
}

impl AuthConfig {
    /// Configuration with a given key and defaults elsewhere (tests, tools).
    pub fn with_key(root_key: String) -> Self {
        Self {
            root_key: Some(root_key),
            root_key_file: None,
            dev: false,
            dev_key_file: None,
            session_ttl_secs: 12 * 3600,
            default_tenant: None,
            edge: EdgeConfig {
                edge_key: None,
                ..EdgeConfig::with_key(String::new())
            },
            nats: NatsConfig::default(),
        }
    }

    /// The development key file: `ENCLAVE_DEV_KEY_FILE`, else [`default_dev_key_file`].
    pub fn dev_key_path(&self) -> Option<PathBuf> {
        self.dev_key_file.clone().or_else(default_dev_key_file)
    }

    /// Loads the root key set: `ENCLAVE_ROOT_KEY`, else `ENCLAVE_ROOT_KEY_FILE`, else (in
    /// development mode only) the per-user development key file, created when missing.
    /// Refuses to go on without a key.
    pub fn root_keys(&self) -> Result<crate::auth::keys::RootKeys, crate::auth::keys::KeyError> {
        use crate::auth::keys::{KeyError, RootKeys};
        if let Some(spec) = &self.root_key {
            return RootKeys::parse(spec);
        }
        match (&self.root_key_file, self.dev) {
            (Some(path), dev) => RootKeys::from_file(path, dev),
            (None, true) => match self.dev_key_path() {
                Some(path) => RootKeys::from_file(&path, true),
                None => Err(KeyError::NoDevKeyPath),
            },
            (None, false) => Err(KeyError::Missing),
        }
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    /// Loads the edge key: `ENCLAVE_EDGE_KEY`, else `ENCLAVE_EDGE_KEY_FILE`, else (in
    /// development mode only) `dev-edge-key` next to the development root key file, created
    /// when missing.
    pub fn edge_key(&self) -> Result<crate::edge::keys::EdgeKey, crate::edge::keys::EdgeKeyError> {
        use crate::edge::keys::{EdgeKey, EdgeKeyError};
        if let Some(spec) = &self.edge.edge_key {
            return EdgeKey::parse(spec);
        }
        match (&self.edge.edge_key_file, self.dev) {
            (Some(path), dev) => EdgeKey::from_file(path, dev),
            (None, true) => match self.dev_key_path() {
                Some(root) => EdgeKey::from_file(&root.with_file_name("dev-edge-key"), true),
                None => Err(EdgeKeyError::Missing),
            },
            (None, false) => Err(EdgeKeyError::Missing),
        }
    }
}

/// Limits on what one request may ask; every one is checked before any SQL runs.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// Deepest nesting of selections.
    #[arg(long, env = "ENCLAVE_MAX_DEPTH", default_value_t = 15)]
    pub max_depth: usize,

    /// Highest query complexity; a list field costs its page size times its children.
    #[arg(long, env = "ENCLAVE_MAX_COMPLEXITY", default_value_t = 50_000)]
    pub max_complexity: usize,

    /// Largest page (`first`/`last`) of a list.
    #[arg(long, env = "ENCLAVE_MAX_PAGE_SIZE", default_value_t = 500)]
    pub max_page_size: usize,

    /// Most field selections (aliases included) in one document.
    #[arg(long, env = "ENCLAVE_MAX_FIELDS", default_value_t = 1_000)]
    pub max_fields: usize,

    /// Most directives in one document.
    #[arg(long, env = "ENCLAVE_MAX_DIRECTIVES", default_value_t = 50)]
    pub max_directives: usize,

    /// Largest request body, in bytes.
    #[arg(long, env = "ENCLAVE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_complexity: 50_000,
            max_page_size: 500,
            max_fields: 1_000,
            max_directives: 50,
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_url_that_differs_means_a_pooler_and_no_prepared_statements_by_default() {
        let mut config = DatabaseConfig::for_url("postgres://u@127.0.0.1:6432/db");
        assert_eq!(config.session_url(), "postgres://u@127.0.0.1:6432/db");
        assert!(!config.behind_pooler());
        assert!(config.prepared_statements());
        config.direct_database_url = Some(config.database_url.clone());
        assert!(!config.behind_pooler(), "the same URL is no pooler");
        config.direct_database_url = Some("postgres://u@127.0.0.1:5432/db".to_owned());
        assert_eq!(config.session_url(), "postgres://u@127.0.0.1:5432/db");
        assert!(config.behind_pooler());
        assert!(!config.prepared_statements());
        config.prepared_statements = Some(true);
        assert!(config.prepared_statements(), "PgBouncer >= 1.21 may turn them on");
    }

    #[test]
    fn booleans_take_the_usual_spellings_in_any_case() {
        for yes in ["1", "true", "TRUE", "yes", "Yes", "on", "ON", "y", "t"] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["0", "false", "False", "no", "NO", "off", "Off", "n", "f"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        assert_eq!(parse_bool("maybe"), None);
        let command = Command::new("enclave");
        let error = Boolish { var: "ENCLAVE_DEV" }
            .parse_ref(&command, None, OsStr::new("maybe"))
            .expect_err("refused");
        assert!(error.to_string().contains("ENCLAVE_DEV"), "{error}");
    }

    #[test]
    fn listen_addresses_are_host_and_port_with_names_allowed() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "0.0.0.0:0",
            "api.example.com:443",
        ] {
            assert_eq!(parse_listen(ok).as_deref(), Ok(ok));
        }
        for bad in ["localhost", ":8080", "localhost:http", "localhost:70000"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}
