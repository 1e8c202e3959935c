//! The `enclave` command line: `serve`, `migrate`, `tenant …` and `schema`. Each command
//! parses its arguments (flags or environment variables, see `config`) and calls into
//! the library; nothing here holds logic of its own.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{DatabaseConfig, ServerConfig};
use crate::tenancy::Installation;
use crate::tenancy::migrations::{self, MigrationSets};
use crate::tenancy::provision::{self, NewTenant};
use crate::tenancy::registry::{self, TenantStatus};
use crate::{db, prepare_database, resolvers};

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
        server: ServerConfig,
    },
    /// Apply pending migrations to `public` and every tenant schema, or show them.
    Migrate {
        /// Print applied and pending migrations per schema; change nothing.
        #[arg(long)]
        status: bool,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Create, list, suspend, resume or drop tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Print the GraphQL schema (SDL), as committed in `schema.graphql`.
    Schema,
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let sets = MigrationSets::embedded();
    match cli.command {
        Command::Serve { database, server } => {
            crate::serve(&database, &server, sets, shutdown_signal()).await
        }
        Command::Migrate {
            status: true,
            database,
        } => {
            let installation = Installation::new(&database, sets)?;
            print_status(&installation).await
        }
        Command::Migrate {
            status: false,
            database,
        } => prepare_database(&database, sets).await.map(drop),
        Command::Tenant { command, database } => {
            let installation = prepare_database(&database, sets).await?;
            tenant(command, &installation).await
        }
        Command::Schema => {
            print!("{}", resolvers::sdl());
            Ok(())
        }
    }
}

async fn print_status(installation: &Installation) -> anyhow::Result<()> {
    let schemas = migrations::status(installation).await?;
    for schema in schemas {
        println!(
            "{}: {} applied, {} pending{}",
            schema.schema,
            schema.applied.len(),
            schema.pending.len(),
            schema
                .last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
        for version in &schema.applied {
            println!("  [x] {version}");
        }
        for version in &schema.pending {
            println!("  [ ] {version}");
        }
    }
    Ok(())
}

async fn tenant(command: TenantCommand, installation: &Installation) -> anyhow::Result<()> {
    let mut conn = db::connect(&installation.database_url)
        .await
        .context("cannot connect to the database")?;
    match command {
        TenantCommand::Create { slug, name, domains } => {
            let slug = provision::parse_new_slug(&slug)?;
            let name = name.unwrap_or_else(|| slug.to_string());
            let record =
                provision::create_tenant(&mut conn, installation, &NewTenant { slug, name, domains }).await?;
            println!(
                "created tenant {} ({}), schema tenant_{}",
                record.slug, record.id, record.slug
            );
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
    }
    Ok(())
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
