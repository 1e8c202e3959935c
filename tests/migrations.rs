//! Startup migrations: first start, no-op restart, concurrent replicas, edited migrations
//! and a tenant migration failing half-way.

mod common;

use std::process::Command;

use common::{TestDb, sets_with_extra_tenant_migration};
use diesel_async::SimpleAsyncConnection;
use enclave::tenancy::migrations::{self, Migration, MigrationSet, MigrationSets};
use enclave::tenancy::provision::{self, NewTenant};
use std::sync::Arc;

const PUBLIC_TABLES: &[&str] = &[
    "edge_root_cas",
    "enclave_catalog_checks",
    "enclave_catalog_references",
    "enclave_schema_migrations",
    "enclave_schema_state",
    "impersonation_logs",
    "job_due",
    "nats_accounts",
    "nats_operators",
    "nats_platform_tokens",
    "onboarding_tokens",
    "platform_jobs",
    "tenant_domains",
    "tenant_memberships",
    "tenant_quarantine",
    "tenants",
];

async fn tables_of(db: &TestDb, schema: &str) -> Vec<String> {
    db.names(&format!(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = '{schema}' ORDER BY 1"
    ))
    .await
}

async fn create(db: &TestDb, installation: &enclave::tenancy::Installation, slug: &str) {
    let new = NewTenant {
        slug: provision::parse_new_slug(slug).expect("valid slug"),
        name: slug.to_owned(),
        domains: Vec::new(),
    };
    provision::create_tenant(&mut db.conn().await, installation, &new)
        .await
        .expect("provision tenant");
}

#[tokio::test]
async fn fresh_start_creates_public_tables_and_platform_tenant_then_restart_is_a_no_op() {
    let db = TestDb::empty().await;
    let installation = db.installation();

    let first = migrations::migrate(&installation, true)
        .await
        .expect("first start");
    assert!(!first.was_up_to_date);
    assert!(first.provisioned_platform);
    assert_eq!(tables_of(&db, "public").await, PUBLIC_TABLES);
    let platform_tables = tables_of(&db, "tenant_platform").await;
    for table in [
        "users",
        "api_tokens",
        "tokens",
        "devices",
        "device_groups",
        "device_identifiers",
        "interfaces",
    ] {
        assert!(
            platform_tables.contains(&table.to_owned()),
            "tenant_platform lacks {table}"
        );
    }
    assert_eq!(
        db.names("SELECT slug AS name FROM public.tenants").await,
        ["platform"]
    );
    let ledger_rows = db
        .count("SELECT count(*) AS n FROM public.enclave_schema_migrations")
        .await;
    let expected = (MigrationSets::embedded().public.migrations().len()
        + MigrationSets::embedded().tenant.migrations().len()) as i64;
    assert_eq!(ledger_rows, expected);
    let applied_at = db
        .names("SELECT string_agg(applied_at::text, ',' ORDER BY schema_name, version) AS name FROM public.enclave_schema_migrations")
        .await;

    let second = migrations::migrate(&installation, true)
        .await
        .expect("second start");
    assert!(second.was_up_to_date, "second start did work: {second:?}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.enclave_schema_migrations")
            .await,
        ledger_rows
    );
    assert_eq!(
        db.names("SELECT string_agg(applied_at::text, ',' ORDER BY schema_name, version) AS name FROM public.enclave_schema_migrations").await,
        applied_at,
        "a no-op start rewrote the ledger"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM public.tenants").await, 1);
}

#[tokio::test]
async fn the_database_is_hardened_and_connections_start_with_an_empty_search_path() {
    let db = TestDb::missing().await;
    db.prepare().await;
    assert_eq!(
        db.names("SELECT current_setting('search_path') AS name").await,
        [""]
    );
    // Outside a tenant transaction, an unqualified name resolves to nothing.
    let unqualified =
        diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT * FROM tenants"), &mut db.conn().await)
            .await;
    let message = unqualified
        .expect_err("an unqualified query must fail")
        .to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'public' \
                  AND (has_schema_privilege('public', oid, 'CREATE') OR has_schema_privilege('public', oid, 'USAGE'))")
            .await,
        0,
        "PUBLIC may still create in or use schema public"
    );
}

#[tokio::test]
async fn two_tenants_get_identical_tables_columns_and_indexes() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    create(&db, &installation, "acme").await;
    create(&db, &installation, "globex").await;

    let shape = |schema: &'static str| {
        let db = &db;
        async move {
            let columns = db
                .names(&format!(
                    "SELECT format('%s.%s %s %s %s', table_name, column_name, data_type, is_nullable, \
                       replace(coalesce(column_default, ''), '{schema}.', 'S.')) AS name \
                     FROM information_schema.columns WHERE table_schema = '{schema}' ORDER BY 1"
                ))
                .await;
            let indexes = db
                .names(&format!(
                    "SELECT replace(indexdef, '{schema}.', 'S.') AS name FROM pg_indexes \
                     WHERE schemaname = '{schema}' ORDER BY 1"
                ))
                .await;
            let constraints = db
                .names(&format!(
                    "SELECT format('%s %s', conname, replace(pg_get_constraintdef(c.oid), '{schema}.', 'S.')) AS name \
                     FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                     WHERE n.nspname = '{schema}' ORDER BY 1"
                ))
                .await;
            (columns, indexes, constraints)
        }
    };
    let acme = shape("tenant_acme").await;
    let globex = shape("tenant_globex").await;
    assert!(
        acme.0.len() > 40 && acme.1.len() > 10 && acme.2.len() > 10,
        "suspiciously small schema: {acme:?}"
    );
    for (what, a, g) in [
        ("columns", &acme.0, &globex.0),
        ("indexes", &acme.1, &globex.1),
        ("constraints", &acme.2, &globex.2),
    ] {
        let only_acme: Vec<_> = a.iter().filter(|x| !g.contains(x)).collect();
        let only_globex: Vec<_> = g.iter().filter(|x| !a.contains(x)).collect();
        assert!(
            only_acme.is_empty() && only_globex.is_empty(),
            "{what} differ: acme-only {only_acme:?}, globex-only {only_globex:?}"
        );
    }
}

#[tokio::test]
async fn five_concurrent_migrate_processes_on_an_empty_database_apply_each_migration_once() {
    let db = TestDb::missing().await;
    let handles: Vec<_> = (0..5)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_enclave"))
                .arg("migrate")
                .env("DATABASE_URL", &db.url)
                .env("RUST_LOG", "warn")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn enclave migrate")
        })
        .collect();
    for child in handles {
        let output = child.wait_with_output().expect("wait for enclave migrate");
        assert!(
            output.status.success(),
            "a replica failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let sets = MigrationSets::embedded();
    let expected = (sets.public.migrations().len() + sets.tenant.migrations().len()) as i64;
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.enclave_schema_migrations")
            .await,
        expected
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.tenants WHERE slug = 'platform'")
            .await,
        1
    );
}

#[tokio::test]
async fn an_edited_migration_stops_startup_naming_it_and_the_schema() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    create(&db, &installation, "acme").await;

    let embedded = MigrationSets::embedded();
    let edited: Vec<Migration> = embedded
        .tenant
        .migrations()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == 0 {
                Migration::new(m.version.clone(), format!("{}\n-- edited", m.up), m.down.clone())
            } else {
                m.clone()
            }
        })
        .collect();
    let first_version = edited[0].version.clone();
    let sets = Arc::new(MigrationSets {
        public: embedded.public.clone(),
        tenant: MigrationSet::new(edited),
    });

    let error = enclave::prepare_database(&db.config(), sets)
        .await
        .expect_err("startup must stop on an edited migration");
    let message = format!("{error:#}");
    assert!(message.contains(&first_version), "{message}");
    assert!(message.contains("tenant_acme"), "{message}");
    assert!(message.contains("edited"), "{message}");
}

#[tokio::test]
async fn a_tenant_migration_failing_half_way_rolls_that_tenant_back_and_stops_startup() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    create(&db, &installation, "acme").await;
    create(&db, &installation, "globex").await;
    // Something in globex that the new migration will trip over after its first statement.
    db.conn()
        .await
        .batch_execute("CREATE TABLE tenant_globex.conflict_marker (id int)")
        .await
        .expect("plant the conflict");

    let version = "2099-01-01-000000_widgets";
    let sets = sets_with_extra_tenant_migration(
        version,
        "CREATE TABLE widgets (id int); CREATE TABLE conflict_marker (id int);",
    );
    let listen = free_port();
    let server = enclave::config::ServerConfig::on(listen.to_string());
    let auth = enclave::config::AuthConfig::with_key(enclave::auth::keys::RootKeys::generate(1).1);
    let error = enclave::serve(
        &db.config(),
        &auth,
        &enclave::config::LimitsConfig::default(),
        &server,
        sets,
        async {},
    )
    .await
    .expect_err("startup must fail");
    let message = format!("{error:#}");
    assert!(message.contains("tenant_globex"), "{message}");
    assert!(message.contains(version), "{message}");
    assert!(
        message.contains("conflict_marker"),
        "PostgreSQL's error is missing: {message}"
    );
    assert!(!message.contains("tenant_acme"), "acme did not fail: {message}");
    assert!(
        std::net::TcpStream::connect(listen).is_err(),
        "the HTTP port was bound"
    );

    // globex is exactly as before: no widgets, no ledger row, the error recorded.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'tenant_globex' AND table_name = 'widgets'").await,
        0
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) AS n FROM public.enclave_schema_migrations WHERE schema_name = 'tenant_globex' AND version = '{version}'")).await,
        0
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.enclave_schema_state WHERE schema_name = 'tenant_globex' AND last_error LIKE '%conflict_marker%'").await,
        1
    );
    // acme, migrated in its own transaction, has the new table.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'tenant_acme' AND table_name = 'widgets'").await,
        1
    );
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_root_key() {
    let db = TestDb::missing().await;
    let mut auth = enclave::config::AuthConfig::with_key(String::new());
    auth.root_key = None;
    let server = enclave::config::ServerConfig::on(free_port().to_string());
    let error = enclave::serve(
        &db.config(),
        &auth,
        &enclave::config::LimitsConfig::default(),
        &server,
        MigrationSets::embedded(),
        async {},
    )
    .await
    .expect_err("no key, no server");
    assert!(format!("{error:#}").contains("ENCLAVE_ROOT_KEY"), "{error:#}");
    assert!(std::net::TcpStream::connect(server.listen).is_err());
}

#[tokio::test]
async fn status_lists_applied_and_pending_per_schema() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    create(&db, &installation, "acme").await;
    let sets =
        sets_with_extra_tenant_migration("2099-01-01-000000_widgets", "CREATE TABLE widgets (id int);");
    let status = migrations::status(&db.installation_with(sets))
        .await
        .expect("status");
    let schemas: Vec<_> = status.iter().map(|s| s.schema.as_str()).collect();
    assert_eq!(schemas, ["public", "tenant_acme", "tenant_platform"]);
    for tenant in &status[1..] {
        assert_eq!(tenant.pending, ["2099-01-01-000000_widgets"]);
        assert_eq!(
            tenant.applied.len(),
            MigrationSets::embedded().tenant.migrations().len()
        );
    }
    assert!(status[0].pending.is_empty());
}

#[tokio::test]
async fn every_down_migration_undoes_its_up_migration() {
    let db = TestDb::empty().await;
    let sets = MigrationSets::embedded();
    let mut conn = db.conn().await;
    for (schema, set) in [("public", &sets.public), ("scratch", &sets.tenant)] {
        if schema == "scratch" {
            conn.batch_execute("CREATE SCHEMA scratch")
                .await
                .expect("scratch schema");
        }
        let snapshot = format!(
            "SELECT format('%s %s', c.relkind, c.relname) AS name FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{schema}' ORDER BY 1"
        );
        let mut before = Vec::new();
        for migration in set.migrations() {
            before.push(db.names(&snapshot).await);
            conn.batch_execute(&format!("SET search_path TO {schema}; {}", migration.up))
                .await
                .unwrap_or_else(|e| panic!("{} up: {e}", migration.version));
        }
        for migration in set.migrations().iter().rev() {
            conn.batch_execute(&format!("SET search_path TO {schema}; {}", migration.down))
                .await
                .unwrap_or_else(|e| panic!("{} down: {e}", migration.version));
            let expected = before.pop().expect("a snapshot per migration");
            assert_eq!(
                db.names(&snapshot).await,
                expected,
                "{} down.sql leaves objects behind",
                migration.version
            );
        }
    }
}

#[test]
fn migration_directories_stay_valid_for_diesel_tooling() {
    use diesel::migration::MigrationSource;
    const PUBLIC: diesel_migrations::EmbeddedMigrations =
        diesel_migrations::embed_migrations!("migrations_public");
    const TENANT: diesel_migrations::EmbeddedMigrations =
        diesel_migrations::embed_migrations!("migrations_tenant");
    let sets = MigrationSets::embedded();
    for (diesel_set, ours) in [(PUBLIC, &sets.public), (TENANT, &sets.tenant)] {
        let mut names: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&diesel_set)
            .expect("diesel reads the directory")
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        names.sort();
        let versions: Vec<String> = ours.migrations().iter().map(|m| m.version.clone()).collect();
        assert_eq!(names, versions);
    }
}

fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}
