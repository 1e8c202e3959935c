//! The benchmark's tenants: a fresh database, N provisioned and seeded tenants with a
//! viewer and a live session each (or those of an earlier run, reused), the raw-DDL
//! provisioning reference, and the fleet migrations (sequential versus concurrent, undone
//! afterwards).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use enclave::auth::Role;
use enclave::auth::keys::RootKeys;
use enclave::auth::token::{self, Claims, Credential};
use enclave::config::DatabaseConfig;
use enclave::db;
use enclave::demo::{self, DeviceIds};
use enclave::tenancy::Installation;
use enclave::tenancy::directory::TenantDirectory;
use enclave::tenancy::migrations::{Migration, MigrationSet, MigrationSets, runner};
use enclave::tenancy::provision::{self, NewTenant};
use enclave::tenancy::roles;
use uuid::Uuid;

/// The viewer every benchmark tenant has (same id in each tenant's own `users` table).
pub const VIEWER: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001);
/// Its session (same id in each tenant's own `tokens` table), so that pgbench can check it.
pub const SESSION: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_5e55_1000_0001);

/// The slug of benchmark tenant `i` (from 1).
pub fn slug(i: usize) -> String {
    format!("t{i}")
}

/// The id `demo::seed_sql` gives device `i` with [`DeviceIds::Numbered`].
pub fn device_id(i: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{i:012}")).unwrap_or_default()
}

/// Drops the benchmark database and every role it created, then creates and migrates it.
pub async fn recreate(config: &DatabaseConfig) -> anyhow::Result<Installation> {
    let name = db::database_name(&config.database_url)?;
    let admin_url = config.database_url.replace(&format!("/{name}"), "/postgres");
    db::drop_database(&mut db::connect(&admin_url).await?, &name).await?;
    enclave::prepare_database(config, MigrationSets::embedded()).await
}

/// The benchmark database of an earlier run when it holds exactly `tenants` seeded tenants
/// (`t1`..`tN`), migrated to the current migrations (pending ones are applied); `None`
/// when there is no such database and the fleet must be built.
pub async fn reusable(config: &DatabaseConfig, tenants: usize) -> anyhow::Result<Option<Installation>> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let Ok(mut conn) = db::connect(&config.database_url).await else {
        return Ok(None);
    };
    let fleet: Result<Count, _> = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT count(*) AS n FROM public.tenants WHERE slug ~ '^t[0-9]+$'"),
        &mut conn,
    )
    .await;
    if !matches!(fleet, Ok(Count { n }) if n == tenants as i64) {
        return Ok(None);
    }
    for i in [1, tenants] {
        let seeded: Result<Count, _> = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query(format!(
                "SELECT count(*) AS n FROM tenant_{}.tokens WHERE id = '{SESSION}'",
                slug(i)
            )),
            &mut conn,
        )
        .await;
        if !matches!(seeded, Ok(Count { n: 1 })) {
            return Ok(None);
        }
    }
    drop(conn);
    Ok(Some(
        enclave::prepare_database(config, MigrationSets::embedded()).await?,
    ))
}

/// What provisioning the fleet measured.
pub struct Provisioned {
    /// Wall time of each `create_tenant`, in order.
    pub each: Vec<Duration>,
    pub total: Duration,
}

/// Provisions tenants `t1`..`tN` one after another through Enclave.
pub async fn provision(installation: &Installation, tenants: usize) -> anyhow::Result<Provisioned> {
    let mut conn = db::connect(&installation.database_url).await?;
    let mut each = Vec::with_capacity(tenants);
    let started = Instant::now();
    for i in 1..=tenants {
        each.push(create(&mut conn, installation, &slug(i)).await?);
        if i % 100 == 0 {
            eprintln!("  provisioned {i}/{tenants} tenants");
        }
    }
    Ok(Provisioned {
        each,
        total: started.elapsed(),
    })
}

async fn create(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    slug: &str,
) -> anyhow::Result<Duration> {
    let new = NewTenant {
        slug: provision::parse_new_slug(slug)?,
        name: format!("Benchmark tenant {slug}"),
        domains: Vec::new(),
    };
    let started = Instant::now();
    provision::create_tenant(conn, installation, &new).await?;
    Ok(started.elapsed())
}

/// Seeds every tenant with the demo's sample data (numbered device ids), a viewer and its
/// session, two tenants at a time.
pub async fn seed(installation: &Installation, tenants: usize, devices: u32) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (next, url) = (next.clone(), installation.database_url.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = db::connect(&url).await?;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i > tenants {
                    return Ok::<_, anyhow::Error>(());
                }
                let slug = slug(i);
                conn.batch_execute(&format!(
                    "BEGIN; SET LOCAL search_path TO tenant_{slug}; {data}
                     INSERT INTO users (id, email, display_name, role) VALUES ('{VIEWER}', 'viewer@{slug}.example', 'Viewer', 'viewer');
                     INSERT INTO tokens (id, user_id, expires_at) VALUES ('{SESSION}', '{VIEWER}', now() + interval '7 days');
                     ANALYZE devices, interfaces, users, tokens; COMMIT;",
                    data = demo::seed_sql(&slug, devices, DeviceIds::Numbered),
                ))
                .await
                .with_context(|| format!("seeding {slug}"))?;
                if i % 100 == 0 {
                    eprintln!("  seeded {i}/{tenants} tenants");
                }
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

/// One viewer session token per tenant, index 0 for `t1`.
pub async fn tokens(
    installation: &Installation,
    keys: &RootKeys,
    tenants: usize,
) -> anyhow::Result<Vec<String>> {
    let directory = TenantDirectory::load(installation).await?;
    let expires_at = Utc::now() + chrono::Duration::days(7);
    (1..=tenants)
        .map(|i| {
            let tenant = directory
                .by_slug(&slug(i))
                .with_context(|| format!("tenant {} is missing", slug(i)))?;
            let claims = Claims {
                user_id: VIEWER,
                tenant_id: tenant.id,
                role: Role::Viewer,
                credential: Credential::Session(SESSION),
                impersonator: None,
                expires_at,
            };
            Ok(token::mint(keys, &claims)?)
        })
        .collect()
}

/// One tenant provisioned through Enclave and the same DDL run raw, alternately.
pub struct ProvisioningReference {
    pub enclave: Vec<Duration>,
    /// The same DDL as one batch in one transaction on the same warm connection.
    pub raw: Vec<Duration>,
}

/// Runs `rounds` alternations of: one tenant through Enclave; the same DDL (schema, role,
/// every tenant migration, the grants once at the end, as Enclave grants once per
/// provisioning) sent as one batch in one transaction on the same warm connection. Drops
/// what it created afterwards.
pub async fn provisioning_reference(
    installation: &Installation,
    rounds: usize,
) -> anyhow::Result<ProvisioningReference> {
    let mut conn = db::connect(&installation.database_url).await?;
    let mut result = ProvisioningReference {
        enclave: Vec::new(),
        raw: Vec::new(),
    };
    for round in 0..rounds {
        let enclave_slug = format!("prov{round}");
        result
            .enclave
            .push(create(&mut conn, installation, &enclave_slug).await?);

        let schema = format!("raw_{round}");
        let role = format!("{}raw_{round}", installation.role_namespace);
        let ddl = format!("BEGIN;\n{}COMMIT;", raw_ddl(installation, &schema, &role));
        let started = Instant::now();
        conn.batch_execute(&ddl)
            .await
            .context("the raw provisioning DDL")?;
        result.raw.push(started.elapsed());

        let slug = provision::parse_slug(&enclave_slug)?;
        provision::drop_tenant(&mut conn, installation, &slug).await?;
        conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE; DROP ROLE {role};"))
            .await?;
    }
    Ok(result)
}

/// The tenant DDL Enclave runs when provisioning, as one script.
fn raw_ddl(installation: &Installation, schema: &str, role: &str) -> String {
    let mut sql = format!(
        "CREATE SCHEMA {schema};\n{}\nSET LOCAL search_path TO {schema};\n",
        roles::create_sql(schema, role, &installation.authenticator)
    );
    for migration in installation.migrations.tenant.migrations() {
        sql.push_str(&migration.up);
        sql.push_str(";\n");
    }
    sql.push_str(&roles::grant_on_objects_sql(schema, role));
    sql.push('\n');
    sql
}

/// Adds one column to every tenant through a new tenant migration, with the given
/// concurrency; returns the wall time of the whole fleet migration.
pub async fn migrate_fleet(
    config: &DatabaseConfig,
    concurrency: u32,
    version: &str,
    column: &str,
) -> anyhow::Result<(Duration, usize)> {
    let embedded = MigrationSets::embedded();
    let mut tenant: Vec<Migration> = embedded.tenant.migrations().to_vec();
    // Earlier extra migrations of this run are applied already; keep them in the set.
    for (earlier_version, earlier_column) in EXTRA_MIGRATIONS {
        if *earlier_version < version {
            tenant.push(add_column(earlier_version, earlier_column));
        }
    }
    tenant.push(add_column(version, column));
    let sets = Arc::new(MigrationSets {
        public: embedded.public.clone(),
        tenant: MigrationSet::new(tenant),
    });
    let mut config = config.clone();
    config.migration_concurrency = concurrency;
    let installation = Installation::new(&config, sets)?;
    let started = Instant::now();
    let report = runner::migrate(&installation, false).await?;
    Ok((started.elapsed(), report.tenants_migrated))
}

/// Undoes [`migrate_fleet`]'s extra migrations (their columns and ledger rows), so that the
/// database serves the current build again and a later run can reuse the fleet.
pub async fn revert_fleet_migrations(config: &DatabaseConfig) -> anyhow::Result<()> {
    let embedded = MigrationSets::embedded();
    let drops: Vec<String> = EXTRA_MIGRATIONS
        .iter()
        .map(|(_, column)| format!("DROP COLUMN IF EXISTS {column}"))
        .collect();
    let versions: Vec<String> = EXTRA_MIGRATIONS.iter().map(|(v, _)| format!("'{v}'")).collect();
    let mut conn = db::connect(&config.database_url).await?;
    conn.batch_execute(&format!(
        "BEGIN;
         DO $$ DECLARE s text; BEGIN
           FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' LOOP
             EXECUTE format('ALTER TABLE %I.devices {drops}', s);
           END LOOP;
         END $$;
         DELETE FROM public.enclave_schema_migrations WHERE version IN ({versions});
         UPDATE public.enclave_schema_state SET version = '{latest}', fingerprint = '{fingerprint}'
          WHERE schema_name LIKE 'tenant\\_%';
         COMMIT;",
        drops = drops.join(", "),
        versions = versions.join(", "),
        latest = embedded.tenant.latest_version().unwrap_or_default(),
        fingerprint = embedded.tenant.fingerprint(),
    ))
    .await
    .context("reverting the fleet migrations")?;
    Ok(())
}

/// The fleet migrations [`migrate_fleet`] applies, in order.
pub const EXTRA_MIGRATIONS: &[(&str, &str)] = &[
    ("2099-01-01-000001_bench_sequential", "bench_sequential"),
    ("2099-01-01-000002_bench_concurrent", "bench_concurrent"),
];

fn add_column(version: &str, column: &str) -> Migration {
    Migration::new(
        version.to_owned(),
        format!("ALTER TABLE devices ADD COLUMN {column} text"),
        format!("ALTER TABLE devices DROP COLUMN {column}"),
    )
}
