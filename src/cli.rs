//! The `enclave` command line: `serve`, `migrate`, `tenant …`, `user add`, `token mint`,
//! `keys generate`, `nats config`, `worker`, `schema`, `demo` and `uninstall`. Each command parses its arguments
//! (flags or environment variables, see `config`) and calls into the library; nothing here
//! holds logic of its own.
//!
//! Each command flattens only the groups of settings it uses, and hides the pool settings
//! when it opens no pool (so its `--help` lists only what it uses); they are `global`, so
//! they may follow a nested subcommand
//! (`enclave tenant list --database-url …`). Only `serve`, `migrate` and `demo` create a
//! missing database; the other commands refuse it by name.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::auth::keys::RootKeys;
use crate::auth::users::{self, NewUser};
use crate::auth::{Role, password, sessions};
use crate::config::{AuthConfig, DatabaseConfig, LimitsConfig, ServerConfig};
use crate::tenancy::Installation;
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::migrations::{self, MigrationSets, drift};
use crate::tenancy::provision::{self, NewTenant};
use crate::tenancy::quarantine;
use crate::tenancy::registry::{self, TenantStatus};
use crate::tenancy::transaction::Access;
use crate::{db, open_database, resolvers};

/// Enclave: multi-tenant GraphQL API server for network and infrastructure monitoring.
#[derive(Debug, Parser)]
#[command(name = "enclave", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database, then serve the API (the port opens only after migrations).
    Serve {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        auth: AuthConfig,
        #[command(flatten)]
        limits: LimitsConfig,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Run tenant job workers only (no HTTP): migrate first, like `serve`, then run jobs
    /// until SIGTERM/SIGINT (for deployments that run workers apart from the API).
    #[command(
        mut_arg("pool_tenants_per_connection", |a| a.hide(true))
    )]
    Worker {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        jobs: crate::config::JobsConfig,
    },
    /// Apply pending migrations to `public` and every tenant schema, or show them.
    #[command(
        mut_arg("pool_size", |a| a.hide(true)),
        mut_arg("pool_timeout_ms", |a| a.hide(true)),
        mut_arg("pool_tenants_per_connection", |a| a.hide(true)),
        mut_arg("statement_timeout_ms", |a| a.hide(true))
    )]
    Migrate {
        /// Print applied and pending migrations per schema and the quarantined tenants;
        /// change nothing.
        #[arg(long)]
        status: bool,
        /// Migrate this many tenants first, one at a time (the platform tenant, then the
        /// oldest), stopping at the first failure among them; then the rest. Re-running
        /// resumes where a run stopped.
        #[arg(long, value_name = "N", conflicts_with = "status")]
        canary: Option<usize>,
        /// Quarantine each tenant whose migration fails (its requests get
        /// TENANT_UNAVAILABLE; `serve` starts without it) and migrate the rest instead of
        /// stopping; the failures are listed at the end and by `--status`. Running
        /// `enclave migrate` again retries them.
        #[arg(long, conflicts_with = "status")]
        continue_on_error: bool,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Create, list, suspend, resume, drop, export, import or repair tenants.
    #[command(
        mut_arg("pool_size", |a| a.hide(true)),
        mut_arg("pool_timeout_ms", |a| a.hide(true)),
        mut_arg("pool_tenants_per_connection", |a| a.hide(true)),
        mut_arg("statement_timeout_ms", |a| a.hide(true)),
        mut_arg("root_key", |a| a.hide(true)),
        mut_arg("root_key_file", |a| a.hide(true)),
        mut_arg("dev", |a| a.hide(true)),
        mut_arg("dev_key_file", |a| a.hide(true)),
        mut_arg("session_ttl_secs", |a| a.hide(true)),
        mut_arg("default_tenant", |a| a.hide(true)),
        mut_arg("edge_listen", |a| a.hide(true)),
        mut_arg("edge_endpoint", |a| a.hide(true)),
        mut_arg("nats_url", |a| a.hide(true)),
        mut_arg("nats_prefix", |a| a.hide(true))
    )]
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
        #[command(flatten)]
        database: DatabaseConfig,
        /// With an edge key (ENCLAVE_EDGE_KEY), `create` also creates the tenant's edge CA.
        #[command(flatten)]
        auth: AuthConfig,
    },
    /// The edge's certificate authorities.
    #[command(
        mut_arg("pool_size", |a| a.hide(true)),
        mut_arg("pool_timeout_ms", |a| a.hide(true)),
        mut_arg("pool_tenants_per_connection", |a| a.hide(true)),
        mut_arg("statement_timeout_ms", |a| a.hide(true)),
        mut_arg("root_key", |a| a.hide(true)),
        mut_arg("root_key_file", |a| a.hide(true)),
        mut_arg("session_ttl_secs", |a| a.hide(true)),
        mut_arg("default_tenant", |a| a.hide(true)),
        mut_arg("edge_listen", |a| a.hide(true)),
        mut_arg("edge_endpoint", |a| a.hide(true)),
        mut_arg("nats_url", |a| a.hide(true)),
        mut_arg("nats_prefix", |a| a.hide(true))
    )]
    Edge {
        #[command(subcommand)]
        command: EdgeCommand,
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        auth: AuthConfig,
    },
    /// Add users to a tenant.
    #[command(
        mut_arg("pool_size", |a| a.hide(true)),
        mut_arg("pool_timeout_ms", |a| a.hide(true)),
        mut_arg("pool_tenants_per_connection", |a| a.hide(true)),
        mut_arg("statement_timeout_ms", |a| a.hide(true))
    )]
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Mint tokens (operator bootstrap).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        auth: AuthConfig,
    },
    /// Manage root keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// NATS: print the server configuration (operator, resolver, accounts).
    #[command(
        mut_arg("pool_size", |a| a.hide(true)),
        mut_arg("pool_timeout_ms", |a| a.hide(true)),
        mut_arg("pool_tenants_per_connection", |a| a.hide(true)),
        mut_arg("statement_timeout_ms", |a| a.hide(true)),
        mut_arg("root_key", |a| a.hide(true)),
        mut_arg("root_key_file", |a| a.hide(true)),
        mut_arg("session_ttl_secs", |a| a.hide(true)),
        mut_arg("default_tenant", |a| a.hide(true)),
        mut_arg("edge_domain", |a| a.hide(true)),
        mut_arg("edge_listen", |a| a.hide(true)),
        mut_arg("edge_endpoint", |a| a.hide(true)),
        mut_arg("nats_url", |a| a.hide(true))
    )]
    Nats {
        #[command(subcommand)]
        command: NatsCommand,
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        auth: AuthConfig,
    },
    /// Print the GraphQL schema (SDL), as committed in `schema.graphql`.
    Schema,
    /// Start a server with two sample tenants and data; print tokens and URLs.
    Demo {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        auth: AuthConfig,
        #[command(flatten)]
        limits: LimitsConfig,
        #[command(flatten)]
        server: ServerConfig,
        /// Seed the demo tenants even where a tenant of the same slug (acme, globex) exists
        /// and was not made by an earlier demo.
        #[arg(long)]
        force: bool,
    },
    /// Drop the database named by DATABASE_URL with every tenant role it created: removes
    /// the whole installation and all its data.
    #[command(
        mut_arg("pool_size", |a| a.hide(true)),
        mut_arg("pool_timeout_ms", |a| a.hide(true)),
        mut_arg("pool_tenants_per_connection", |a| a.hide(true)),
        mut_arg("statement_timeout_ms", |a| a.hide(true)),
        mut_arg("migration_concurrency", |a| a.hide(true)),
        mut_arg("migration_lock_timeout_ms", |a| a.hide(true))
    )]
    Uninstall {
        /// Repeat the database name (the last part of DATABASE_URL) to confirm.
        #[arg(long, value_name = "DATABASE")]
        confirm: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
enum EdgeCommand {
    /// Certificate authorities.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create the platform root CA (sealed with ENCLAVE_EDGE_KEY) unless it exists, and a CA
    /// for every tenant without one; print the root certificate (PEM) to stdout. `serve`
    /// does the same at startup; this lets an operator do it, and distribute the root,
    /// before the first start.
    Init,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from ENCLAVE_ADMIN_PASSWORD or the first line of stdin.
    Add {
        /// Slug of the tenant.
        #[arg(long)]
        tenant: String,
        /// Login email.
        #[arg(long)]
        email: String,
        /// viewer, operator, admin, or platform_admin (platform tenant only); any case.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a session token for an existing user.
    Mint {
        /// Slug of the tenant.
        #[arg(long)]
        tenant: String,
        /// Email of the user.
        #[arg(long)]
        email: String,
        /// Lifetime: seconds, or a number with s, m, h or d.
        #[arg(long, default_value = "12h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
    },
}

#[derive(Debug, Subcommand)]
enum NatsCommand {
    /// Print the nats-server configuration a deployment needs: the operator JWT, the system
    /// account, the resolver and every account JWT preloaded (creating the operator and the
    /// accounts on first use, their keys sealed with the edge key). Include it in the
    /// server's configuration file next to its `listen` settings; print it again and reload
    /// the server after adding tenants when using the MEMORY resolver.
    Config {
        /// Use the full (directory) resolver storing account JWTs in this directory, which
        /// also takes accounts Enclave creates or re-signs later; default: `resolver: MEMORY`.
        #[arg(long, value_name = "DIR")]
        resolver_dir: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a new root key line for ENCLAVE_ROOT_KEY (its public key goes to stderr).
    Generate {
        /// Key id, distinct from the ids of keys still verifying.
        #[arg(long, default_value_t = 1)]
        id: u32,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Provision a tenant: its row, schema `tenant_<slug>`, role and tables, atomically.
    Create {
        /// Lowercase letter first, then a-z, 0-9 or '_'; at most 40 characters.
        slug: String,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// Vanity domain on which the tenant's users log in (repeatable).
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Email of the tenant's first admin; the password is read from
        /// ENCLAVE_ADMIN_PASSWORD or the first line of stdin.
        #[arg(long)]
        admin_email: Option<String>,
    },
    /// List tenants.
    List,
    /// Refuse every request of a tenant (its data is kept).
    Suspend { slug: String },
    /// Serve a suspended tenant again.
    Resume { slug: String },
    /// Delete a tenant with its schema, role and all its data.
    Drop {
        slug: String,
        /// Repeat the slug to confirm.
        #[arg(long, value_name = "SLUG")]
        confirm: String,
    },
    /// Write a consistent snapshot of one tenant (its tables, migration state, tenant row,
    /// domains and memberships) to a tar.gz archive with a manifest.
    Export {
        slug: String,
        /// Archive to write (must not exist); default `tenant-<slug>-<UTC time>.tar.gz`.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Show how a tenant's schema differs from a freshly migrated one (DDL run by hand),
    /// after checking every tenant: one that matches again leaves quarantine. Changes no
    /// schema, and exits non-zero while the tenant differs. To repair it, undo each
    /// difference by hand (re-create what is `missing` from the definition printed, drop
    /// what is `extra`, restore what `changed` to the expected definition) or restore the
    /// tenant from an export (`enclave tenant import --replace`), then run this again.
    Repair { slug: String },
    /// Restore a tenant from an archive of `tenant export`: verified first, loaded into a
    /// staging schema, then swapped in atomically.
    Import {
        file: std::path::PathBuf,
        /// Import a copy as a new tenant with this slug (new id, fresh CA, no sessions).
        #[arg(long = "as", value_name = "SLUG")]
        as_slug: Option<String>,
        /// Replace the existing tenant of the archive's slug (its current data is dropped).
        #[arg(long)]
        replace: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: text, coloured only when stderr is a terminal (never in a log
/// file), or one JSON object per line with `ENCLAVE_LOG_FORMAT=json` (each GraphQL
/// request's line carries its span: request id, tenant, operation, outcome).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("ENCLAVE_LOG_FORMAT").as_deref() {
        Ok("json") => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        Ok("text") | Err(_) => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        Ok(other) => {
            builder.with_ansi(std::io::stderr().is_terminal()).init();
            tracing::warn!(
                value = other,
                "ENCLAVE_LOG_FORMAT must be text or json; using text"
            );
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let sets = MigrationSets::embedded();
    match cli.command {
        Command::Serve {
            database,
            auth,
            limits,
            server,
        } => crate::serve(&database, &auth, &limits, &server, sets, shutdown_signal()).await,
        Command::Migrate {
            status: true,
            database,
            ..
        } => {
            db::require_database(database.session_url()).await?;
            let installation = Installation::new(&database, sets)?;
            print_status(&installation).await
        }
        Command::Migrate {
            status: false,
            canary,
            continue_on_error,
            database,
        } => {
            db::ensure_database_exists(database.session_url()).await?;
            let options = migrations::MigrateOptions {
                ensure_platform_tenant: true,
                canary,
                continue_on_error,
                skip_quarantined: false,
            };
            let (_, report) = crate::migrate_database_with(&database, sets, &options).await?;
            print_migration_report(&database, &report);
            Ok(())
        }
        Command::Tenant {
            command,
            database,
            auth,
        } => {
            let mut installation = open_database(&database, sets).await?;
            if matches!(
                command,
                TenantCommand::Create { .. } | TenantCommand::Import { .. }
            ) {
                installation.edge = crate::edge::prepare_if_configured(&installation, &auth).await?;
            }
            tenant(command, &installation).await
        }
        Command::Nats {
            command: NatsCommand::Config { resolver_dir },
            database,
            auth,
        } => {
            let installation = open_database(&database, sets).await?;
            let config = crate::nats::server_config(&installation, &auth, resolver_dir.as_deref()).await?;
            print!("{config}");
            Ok(())
        }
        Command::Edge {
            command: EdgeCommand::Ca {
                command: CaCommand::Init,
            },
            database,
            auth,
        } => {
            let installation = open_database(&database, sets).await?;
            let authority = crate::edge::prepare(&installation, &auth).await?;
            let root = authority.root();
            eprintln!(
                "edge root CA {} (valid until {}); every tenant has a CA",
                root.key_identifier, root.not_after
            );
            print!("{}", authority.root_pem());
            Ok(())
        }
        Command::Uninstall { confirm, database } => {
            db::uninstall(database.session_url(), &confirm).await?;
            println!(
                "dropped database {} and its tenant roles",
                db::describe(database.session_url())
            );
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    tenant,
                    email,
                    role,
                    name,
                },
            database,
        } => {
            let role: Role = role.parse()?;
            let installation = open_database(&database, sets).await?;
            let password = read_password()?;
            let entry = tenant_entry(&installation, &tenant).await?;
            let mut conn = db::connect(&installation.database_url).await?;
            let new = NewUser {
                email,
                display_name: name,
                role,
                password,
            };
            let user = users::add_to_tenant(&mut conn, &entry, &new).await?;
            println!(
                "added {} ({}) to tenant {} as {}",
                user.email, user.id, entry.slug, role
            );
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Mint { tenant, email, ttl },
            database,
            auth,
        } => {
            let keys = auth.root_keys()?;
            let installation = open_database(&database, sets).await?;
            let app = App::new(&database, &auth, keys, installation, LimitsConfig::default()).await?;
            let entry = app
                .directory
                .by_slug(&tenant)
                .ok_or_else(|| anyhow::anyhow!("there is no tenant {tenant}"))?;
            let email = users::normalize_email(&email)?;
            let tx = app.tenant_tx(entry.clone(), Access::ReadOnly, None);
            let user = {
                let mut conn = tx.conn().await?;
                users::find_by_email(conn.pg(), &email).await?
            };
            tx.finish(true).await?;
            let user = user.ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no user {email}"))?;
            let (token, expires_at) = sessions::start(&app, &entry, &user, ttl).await?;
            eprintln!(
                "token for {email} in tenant {tenant}, role {}, expires {expires_at}",
                user.role()
            );
            println!("{token}");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Generate { id },
        } => {
            let (keys, spec) = RootKeys::generate(id);
            eprintln!("public key (for verifiers): {}", keys.public_spec());
            println!("{spec}");
            Ok(())
        }
        Command::Demo {
            database,
            mut auth,
            limits,
            server,
            force,
        } => {
            auth.dev = true;
            let app = crate::start(&database, &auth, &limits, sets).await?;
            let options = crate::demo::Options {
                force,
                admin_password: std::env::var("ENCLAVE_ADMIN_PASSWORD").ok(),
            };
            let tenants = crate::demo::prepare(&app, &options).await?;
            print_demo(&tenants, &server);
            crate::listen(app, &server, auth.dev, shutdown_signal()).await
        }
        Command::Worker { database, jobs } => run_workers(&database, &jobs, sets).await,
        Command::Schema => {
            print!("{}", resolvers::sdl());
            Ok(())
        }
    }
}

/// `enclave worker`: migrates (an existing database), then runs job workers until a
/// signal; at least one worker.
async fn run_workers(
    database: &DatabaseConfig,
    jobs: &crate::config::JobsConfig,
    sets: std::sync::Arc<MigrationSets>,
) -> anyhow::Result<()> {
    let installation = open_database(database, sets).await?;
    let gateway = crate::tenancy::gateway::Gateway::new(database, &installation)?;
    let directory = crate::tenancy::directory::TenantDirectory::load(&installation).await?;
    let refresher = directory.spawn_refresher();
    let metrics: std::sync::Arc<crate::jobs::metrics::JobMetrics> = std::sync::Arc::default();
    // Bound before any worker starts: a taken address stops the command at once.
    let metrics_listener = match jobs.worker_metrics_addr {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (ENCLAVE_WORKER_METRICS_ADDR)"))?,
        ),
        None => None,
    };
    let workers = crate::jobs::Workers::start(
        &gateway,
        &directory,
        &installation,
        jobs.worker_count().max(1),
        jobs.export_dir.clone(),
        &metrics,
    );
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = match metrics_listener {
        Some(listener) => {
            tracing::info!(address = ?jobs.worker_metrics_addr, "serving /metrics");
            Some(tokio::spawn(crate::jobs::metrics::serve_metrics(
                listener,
                metrics.clone(),
                async move {
                    let _ = metrics_stopped.await;
                },
            )))
        }
        None => None,
    };
    shutdown_signal().await;
    tracing::info!("stopping job workers after their current jobs");
    workers.stop().await;
    let _ = stop_metrics.send(());
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    refresher.abort();
    Ok(())
}

/// What `enclave migrate` did: the counts, the canaries, the tenants quarantined.
fn print_migration_report(database: &DatabaseConfig, report: &migrations::MigrationReport) {
    println!(
        "database {} is up to date: {} migrations applied to public, {} to {} tenant schemas",
        db::describe(database.session_url()),
        report.public_applied,
        report.tenant_migrations_applied,
        report.tenants_migrated
    );
    if !report.canaries.is_empty() {
        println!("canaries migrated first: {}", report.canaries.join(", "));
    }
    for (schema, error) in &report.quarantined {
        println!("QUARANTINED {schema}: migration failed: {error}");
    }
    for drift in &report.drift.drifted {
        println!(
            "QUARANTINED {}: {} difference(s) from a freshly migrated schema (enclave tenant repair {})",
            drift.schema,
            drift.diff.len(),
            drift
                .schema
                .trim_start_matches(crate::tenancy::slug::SCHEMA_PREFIX)
        );
    }
    for schema in &report.drift.released {
        println!("released from quarantine: {schema}");
    }
    println!(
        "checked {} tenant schemas for drift in {} ms ({} read again, the others unchanged since their last check)",
        report.drift.checked,
        report.drift.took.as_millis(),
        report.drift.fingerprinted
    );
}

async fn print_status(installation: &Installation) -> anyhow::Result<()> {
    let schemas = migrations::status(installation).await?;
    let quarantined = {
        let mut conn = db::connect(&installation.database_url).await?;
        if quarantine::table_exists(&mut conn).await? {
            quarantine::list(&mut conn).await?
        } else {
            Vec::new()
        }
    };
    for schema in schemas {
        let held = quarantined.iter().find(|q| {
            schema.schema.strip_prefix(crate::tenancy::slug::SCHEMA_PREFIX) == Some(q.slug.as_str())
        });
        println!(
            "{}: {} applied, {} pending{}{}",
            schema.schema,
            schema.applied.len(),
            schema.pending.len(),
            schema
                .last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default(),
            held.map(|q| format!(" QUARANTINED ({})", q.reason().as_str()))
                .unwrap_or_default()
        );
        for version in &schema.applied {
            println!("  [x] {version}");
        }
        for version in &schema.pending {
            println!("  [ ] {version}");
        }
    }
    if quarantined.is_empty() {
        println!("quarantined tenants: none");
    } else {
        println!("quarantined tenants: {}", quarantined.len());
    }
    for q in &quarantined {
        println!(
            "  {} ({}) since {}, checked {}:\n    {}",
            q.slug,
            q.reason().as_str(),
            q.quarantined_at.to_rfc3339(),
            q.checked_at.to_rfc3339(),
            q.summary.replace('\n', "\n    ")
        );
    }
    Ok(())
}

async fn tenant(command: TenantCommand, installation: &Installation) -> anyhow::Result<()> {
    let mut conn = db::connect(&installation.database_url)
        .await
        .context("cannot connect to the database")?;
    match command {
        TenantCommand::Create {
            slug,
            name,
            domains,
            admin_email,
        } => {
            let slug = provision::parse_new_slug(&slug)?;
            let name = name.unwrap_or_else(|| slug.to_string());
            // Validate the admin before provisioning, so a bad email or password creates nothing.
            let admin = match admin_email {
                Some(email) => {
                    let email = users::normalize_email(&email)?;
                    let password = read_password()?;
                    password::hash_new(&password)?;
                    Some(NewUser {
                        email,
                        display_name: String::new(),
                        role: Role::Admin,
                        password,
                    })
                }
                None => None,
            };
            let record =
                provision::create_tenant(&mut conn, installation, &NewTenant { slug, name, domains }).await?;
            println!(
                "created tenant {} ({}), schema tenant_{}",
                record.slug, record.id, record.slug
            );
            if let Some(admin) = admin {
                let entry = tenant_entry(installation, &record.slug).await?;
                let user = users::add_to_tenant(&mut conn, &entry, &admin).await?;
                println!("added admin {} ({})", user.email, user.id);
            }
        }
        TenantCommand::List => {
            println!("{:<40} {:<10} {:<36} NAME", "SLUG", "STATUS", "ID");
            for t in registry::list(&mut conn).await? {
                println!("{:<40} {:<10} {:<36} {}", t.slug, t.status, t.id, t.name);
            }
        }
        TenantCommand::Suspend { slug } => {
            let slug = provision::parse_slug(&slug)?;
            registry::set_status(&mut conn, &slug, TenantStatus::Suspended).await?;
            println!("suspended tenant {slug}");
        }
        TenantCommand::Resume { slug } => {
            let slug = provision::parse_slug(&slug)?;
            registry::set_status(&mut conn, &slug, TenantStatus::Active).await?;
            println!("resumed tenant {slug}");
        }
        TenantCommand::Drop { slug, confirm } => {
            anyhow::ensure!(
                slug == confirm,
                "refusing to drop tenant {slug}: --confirm must repeat the slug"
            );
            let slug = provision::parse_slug(&slug)?;
            provision::drop_tenant(&mut conn, installation, &slug).await?;
            println!("dropped tenant {slug} with its schema, role and data");
        }
        TenantCommand::Export { slug, out } => {
            let slug = provision::parse_slug(&slug)?;
            let out = out.unwrap_or_else(|| {
                format!(
                    "tenant-{slug}-{}.tar.gz",
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
                )
                .into()
            });
            let manifest = crate::backup::export_tenant(installation, &slug, &out).await?;
            let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
            println!(
                "exported tenant {slug} to {}: {} tables, {rows} rows",
                out.display(),
                manifest.tables.len()
            );
        }
        TenantCommand::Repair { slug } => {
            let slug = provision::parse_slug(&slug)?;
            registry::find(&mut conn, &slug).await?;
            let schema = slug.schema_name();
            match drift::tenant_diff(&mut conn, &installation.migrations, &schema).await? {
                None => anyhow::bail!(
                    "tenant {slug} has pending migrations (see `enclave migrate --status`); \
                     it is compared once `enclave migrate` has migrated it"
                ),
                Some(diff) if diff.is_empty() => {
                    println!(
                        "tenant {slug} matches a freshly migrated schema; it is not quarantined for drift"
                    );
                }
                Some(diff) => {
                    println!(
                        "tenant {slug} ({schema}) differs from a freshly migrated schema in {} object(s):",
                        diff.len()
                    );
                    for line in diff.lines() {
                        println!("  {line}");
                    }
                    anyhow::bail!(
                        "tenant {slug} drifted; it stays quarantined until it matches (undo the differences above, \
                         or restore it with `enclave tenant import --replace`, then run `enclave tenant repair {slug}` again)"
                    );
                }
            }
        }
        TenantCommand::Import {
            file,
            as_slug,
            replace,
        } => {
            let options = crate::backup::ImportOptions { as_slug, replace };
            let done = crate::backup::import_tenant(installation, &file, &options).await?;
            println!(
                "{} tenant {} ({}) from {}: {} tables, {} rows",
                if done.replaced { "restored" } else { "imported" },
                done.slug,
                done.tenant_id,
                file.display(),
                done.tables,
                done.rows
            );
        }
    }
    Ok(())
}

fn print_demo(tenants: &[crate::demo::DemoTenant], server: &ServerConfig) {
    let url = format!("http://{}/graphql", server.listen);
    println!("\nEnclave demo: {url}\n");
    for tenant in tenants {
        let password = match &tenant.admin_password {
            Some(password) => format!("password {password}"),
            None => "password unchanged from the run that created it".to_owned(),
        };
        println!(
            "tenant {} — admin {} ({password})\n  token: {}\n  GraphiQL: http://{}/graphiql#token={}\n",
            tenant.slug, tenant.admin_email, tenant.token, server.listen, tenant.token
        );
        if let Some(download) = &tenant.onboarding_token {
            println!(
                "  edge agent package (one download, 24 h): curl -sf -o {}-agent.tar.gz http://{}/onboarding/{download}\n",
                tenant.slug, server.listen
            );
        }
    }
    if let Some(first) = tenants.first() {
        println!("try:\n  curl --fail-with-body {url} -H 'content-type: application/json' \\");
        println!("    -H 'authorization: Bearer {}' \\", first.token);
        println!(
            "    -d '{{\"query\":\"{{ devices(first: 5, filter: {{status: [DOWN]}}) {{ totalCount edges {{ node {{ hostname ip interfaces {{ nodes {{ name operStatus }} }} openAlerts {{ nodes {{ severity title }} }} }} }} }} }}\"}}'\n"
        );
    }
}

/// The password for a new user: `ENCLAVE_ADMIN_PASSWORD`, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("ENCLAVE_ADMIN_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "no password given: set ENCLAVE_ADMIN_PASSWORD or pipe it on stdin"
    );
    Ok(password)
}

/// The directory entry of one tenant, read from the database.
async fn tenant_entry(installation: &Installation, slug: &str) -> anyhow::Result<TenantEntry> {
    let slug = provision::parse_slug(slug)?;
    let mut conn = db::connect(&installation.database_url).await?;
    let record = registry::find(&mut conn, &slug).await?;
    let status = record.status();
    Ok(TenantEntry::new(
        installation,
        record.id,
        slug,
        record.name,
        status,
    ))
}

/// Parses `90`, `90s`, `30m`, `12h` or `7d`.
fn parse_ttl(raw: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let number: u64 = number.parse().map_err(|_| format!("invalid duration {raw:?}"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid duration unit in {raw:?}: use s, m, h or d")),
    };
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("duration {raw:?} is too long"))
}

/// Resolves on Ctrl-C or SIGTERM, for a graceful shutdown.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
