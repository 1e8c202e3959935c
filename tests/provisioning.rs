//! Tenant provisioning: slug rules, atomicity, drop, suspend/resume, and PostgreSQL
//! itself refusing one tenant's role access to another tenant's schema.

mod common;

use common::{TestDb, sets_with_extra_tenant_migration};
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use enclave::db::quote_ident;
use enclave::tenancy::Installation;
use enclave::tenancy::provision::{self, NewTenant, TenancyError};
use enclave::tenancy::registry::{self, TenantStatus};
use enclave::tenancy::slug::Slug;

fn tenant(slug: &str) -> NewTenant {
    NewTenant {
        slug: provision::parse_new_slug(slug).expect("valid slug"),
        name: format!("{slug} Inc."),
        domains: Vec::new(),
    }
}

async fn create(db: &TestDb, installation: &Installation, new: &NewTenant) -> Result<(), TenancyError> {
    provision::create_tenant(&mut db.conn().await, installation, new)
        .await
        .map(drop)
}

/// Everything a tenant leaves in the database: rows, schema, role, ledger entries.
async fn traces_of(db: &TestDb, installation: &Installation, slug: &str) -> (i64, i64, bool, i64) {
    let rows = db
        .count(&format!(
            "SELECT count(*) AS n FROM public.tenants WHERE slug = '{slug}'"
        ))
        .await;
    let schemas = db
        .count(&format!(
            "SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'tenant_{slug}'"
        ))
        .await;
    let role = installation.tenant_role(&Slug::parse(slug).expect("slug"));
    let has_role = db.roles().await.contains(&role);
    let ledger = db
        .count(&format!(
            "SELECT count(*) AS n FROM public.enclave_schema_migrations WHERE schema_name = 'tenant_{slug}'"
        ))
        .await;
    (rows, schemas, has_role, ledger)
}

#[tokio::test]
async fn hostile_and_malformed_slugs_are_refused_and_change_nothing() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    let before = db
        .names("SELECT nspname::text AS name FROM pg_namespace ORDER BY 1")
        .await;
    let long = "a".repeat(41);
    for raw in [
        "a\"; drop schema public; --",
        "a,public",
        long.as_str(),
        "Acme",
        "acmé",
        "pg_x",
        "public",
        "platform",
        "information_schema",
        "",
    ] {
        let error = provision::parse_new_slug(raw).expect_err(raw);
        assert!(
            matches!(error, TenancyError::InvalidSlug { .. }),
            "{raw:?}: {error}"
        );
        // The CLI refuses it the same way, without touching the database.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
            .args(["tenant", "create", raw])
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run enclave");
        assert!(!output.status.success(), "{raw:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid tenant slug"), "{raw:?}: {stderr}");
    }
    assert_eq!(
        db.names("SELECT nspname::text AS name FROM pg_namespace ORDER BY 1")
            .await,
        before
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.tenants").await,
        1,
        "only the platform tenant"
    );
    let _ = installation;
}

#[tokio::test]
async fn a_failing_tenant_migration_during_provisioning_leaves_no_row_schema_role_or_ledger() {
    let db = TestDb::new().await;
    db.prepare().await;
    let failing = db.installation_with(sets_with_extra_tenant_migration(
        "2099-01-01-000000_broken",
        "CREATE TABLE half_done (id int); SELECT 1 / 0;",
    ));
    let error = create(&db, &failing, &tenant("acme"))
        .await
        .expect_err("provisioning must fail");
    assert!(error.to_string().contains("division by zero"), "{error}");
    assert_eq!(traces_of(&db, &failing, "acme").await, (0, 0, false, 0));
}

#[tokio::test]
async fn a_taken_domain_or_slug_fails_provisioning_cleanly() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    let mut acme = tenant("acme");
    acme.domains = vec!["Acme.Example.com".into()];
    create(&db, &installation, &acme).await.expect("acme");
    assert_eq!(
        db.names("SELECT domain AS name FROM public.tenant_domains").await,
        ["acme.example.com"]
    );

    let mut globex = tenant("globex");
    globex.domains = vec!["acme.example.com".into()];
    let error = create(&db, &installation, &globex)
        .await
        .expect_err("domain taken");
    assert!(
        matches!(error, TenancyError::DomainTaken(ref d) if d == "acme.example.com"),
        "{error}"
    );
    assert_eq!(traces_of(&db, &installation, "globex").await, (0, 0, false, 0));

    let error = create(&db, &installation, &tenant("acme"))
        .await
        .expect_err("slug taken");
    assert!(matches!(error, TenancyError::AlreadyExists(_)), "{error}");
    let acme_traces = traces_of(&db, &installation, "acme").await;
    assert_eq!(
        (acme_traces.0, acme_traces.1, acme_traces.2),
        (1, 1, true),
        "acme must be untouched"
    );
}

#[tokio::test]
async fn drop_removes_schema_role_rows_and_ledger_but_refuses_the_platform_tenant() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    let mut acme = tenant("acme");
    acme.domains = vec!["acme.example.com".into()];
    create(&db, &installation, &acme).await.expect("acme");
    create(&db, &installation, &tenant("globex"))
        .await
        .expect("globex");
    assert_eq!(traces_of(&db, &installation, "acme").await.0, 1);

    let mut conn = db.conn().await;
    let acme_slug = Slug::parse("acme").expect("slug");
    provision::drop_tenant(&mut conn, &installation, &acme_slug)
        .await
        .expect("drop acme");
    assert_eq!(traces_of(&db, &installation, "acme").await, (0, 0, false, 0));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.tenant_domains").await,
        0
    );
    let globex = traces_of(&db, &installation, "globex").await;
    assert_eq!(
        (globex.0, globex.1, globex.2),
        (1, 1, true),
        "globex must be untouched"
    );

    let error = provision::drop_tenant(&mut conn, &installation, &Slug::platform())
        .await
        .expect_err("platform");
    assert!(matches!(error, TenancyError::PlatformProtected(_)), "{error}");
    let error = provision::drop_tenant(&mut conn, &installation, &acme_slug)
        .await
        .expect_err("gone");
    assert!(matches!(error, TenancyError::NotFound(_)), "{error}");
}

#[tokio::test]
async fn suspend_and_resume_flip_the_status() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    create(&db, &installation, &tenant("acme")).await.expect("acme");
    let mut conn = db.conn().await;
    let acme = Slug::parse("acme").expect("slug");
    let record = registry::set_status(&mut conn, &acme, TenantStatus::Suspended)
        .await
        .expect("suspend");
    assert_eq!(record.status, "suspended");
    let record = registry::set_status(&mut conn, &acme, TenantStatus::Active)
        .await
        .expect("resume");
    assert_eq!(record.status, "active");
    let error = registry::set_status(&mut conn, &Slug::platform(), TenantStatus::Suspended)
        .await
        .expect_err("platform cannot be suspended");
    assert!(matches!(error, TenancyError::PlatformProtected(_)));
    let missing = Slug::parse("nobody").expect("slug");
    let error = registry::set_status(&mut conn, &missing, TenantStatus::Active)
        .await
        .expect_err("missing");
    assert!(matches!(error, TenancyError::NotFound(_)));
}

#[tokio::test]
async fn a_tenant_role_is_refused_another_tenants_schema_and_public_by_postgresql() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    create(&db, &installation, &tenant("acme")).await.expect("acme");
    create(&db, &installation, &tenant("globex"))
        .await
        .expect("globex");
    let mut conn = db.conn().await;
    conn.batch_execute(
        "INSERT INTO tenant_globex.devices (hostname) VALUES ('globex-secret-router'); \
         INSERT INTO tenant_acme.devices (hostname) VALUES ('acme-router');",
    )
    .await
    .expect("seed devices");
    let acme_role = installation.tenant_role(&Slug::parse("acme").expect("slug"));

    #[derive(diesel::QueryableByName)]
    struct Hostname {
        #[diesel(sql_type = Text)]
        hostname: String,
    }
    let in_acme = format!(
        "SET LOCAL search_path TO tenant_acme; SET LOCAL ROLE {};",
        quote_ident(&acme_role)
    );

    // Its own rows are visible under its role.
    let own: Vec<Hostname> = conn
        .transaction(async |c| {
            c.batch_execute(&in_acme).await?;
            diesel::sql_query("SELECT hostname FROM devices").load(c).await
        })
        .await
        .expect("acme reads its own devices");
    assert_eq!(
        own.iter().map(|h| h.hostname.as_str()).collect::<Vec<_>>(),
        ["acme-router"]
    );

    for foreign in [
        "SELECT hostname FROM tenant_globex.devices",
        "SELECT slug AS hostname FROM public.tenants",
        "SELECT hostname FROM tenant_platform.devices",
    ] {
        let result: Result<Vec<Hostname>, _> = conn
            .transaction(async |c| {
                c.batch_execute(&in_acme).await?;
                diesel::sql_query(foreign).load(c).await
            })
            .await;
        let error = match result {
            Ok(rows) => panic!("{foreign} returned {} rows under acme's role", rows.len()),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("permission denied"), "{foreign}: {error}");
    }
    // Writes are refused too.
    let write = conn
        .transaction(async |c| {
            c.batch_execute(&in_acme).await?;
            c.batch_execute("DELETE FROM tenant_globex.devices").await
        })
        .await;
    assert!(write.is_err_and(|e| e.to_string().contains("permission denied")));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM tenant_globex.devices").await,
        1
    );
}

#[tokio::test]
async fn a_leftover_role_of_the_same_name_is_reported_and_nothing_is_created() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    let role = installation.tenant_role(&Slug::parse("acme").expect("slug"));
    db.conn()
        .await
        .batch_execute(&format!("CREATE ROLE {} NOLOGIN", quote_ident(&role)))
        .await
        .expect("leftover role");
    let error = create(&db, &installation, &tenant("acme"))
        .await
        .expect_err("must refuse");
    assert!(
        matches!(error, TenancyError::RoleExists(ref r) if r == &role),
        "{error}"
    );
    let traces = traces_of(&db, &installation, "acme").await;
    assert_eq!((traces.0, traces.1, traces.3), (0, 0, 0));
}

#[tokio::test]
async fn a_begin_batch_that_fails_half_way_does_not_poison_the_pool() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    create(&db, &installation, &tenant("acme")).await.expect("acme");
    let mut config = db.config();
    config.pool_size = 1;
    let (keys, spec) = enclave::auth::keys::RootKeys::generate(1);
    let app = enclave::app::App::new(
        &config,
        &enclave::config::AuthConfig::with_key(spec),
        keys,
        installation.clone(),
        enclave::config::LimitsConfig::default(),
    )
    .await
    .expect("app");
    let mut entry = (*app.directory.by_slug("acme").expect("acme")).clone();
    entry.role = "enclave_no_such_role".into(); // SET LOCAL ROLE fails after BEGIN
    let tx = app.tenant_tx(
        std::sync::Arc::new(entry),
        enclave::tenancy::transaction::Access::ReadOnly,
        None,
    );
    assert!(tx.conn().await.is_err());
    drop(tx);
    let good = app.tenant_tx(
        app.directory.by_slug("acme").expect("acme"),
        enclave::tenancy::transaction::Access::ReadOnly,
        None,
    );
    let mut conn = good
        .conn()
        .await
        .expect("the next transaction works on a clean connection");
    let devices: i64 = diesel_async::RunQueryDsl::get_result(
        diesel::dsl::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM devices)",
        )),
        conn.pg(),
    )
    .await
    .expect("query in the good transaction");
    assert_eq!(devices, 0);
}
