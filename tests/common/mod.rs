//! Test harness: every test gets its own PostgreSQL database, cloned from a template that
//! has `public` migrated (`CREATE DATABASE … TEMPLATE …`), and dropped afterwards together
//! with the tenant roles it created. Leftovers of crashed runs (databases of processes that
//! no longer exist, and roles whose database is gone) are swept once per test process.
//!
//! `ENCLAVE_TEST_DATABASE_URL` points the harness at a server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; it needs CREATEDB and CREATEROLE).
//! `ENCLAVE_KEEP_TEST_DB=1` keeps the databases for inspection.
#![allow(dead_code)]

pub mod app;
pub mod cluster;
pub mod edge;
pub mod nats;
pub mod subscribe;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use enclave::config::DatabaseConfig;
use enclave::db::{self, quote_ident};
use enclave::tenancy::Installation;
use enclave::tenancy::migrations::{self, Migration, MigrationSet, MigrationSets};
use tokio::sync::OnceCell;

const TEMPLATE_LOCK_KEY: i64 = 0x656e_636c_7465_7374; // "encltest"

static COUNTER: AtomicU32 = AtomicU32::new(0);
static PREPARED: OnceCell<String> = OnceCell::const_new();

/// URL of the maintenance database the harness administers from.
pub fn admin_url() -> String {
    std::env::var("ENCLAVE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(database: &str) -> String {
    let admin = admin_url();
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (admin.clone(), String::new()),
    };
    let server = base.rsplit_once('/').map(|(server, _)| server).unwrap_or(&base);
    format!("{server}/{database}{query}")
}

async fn admin() -> AsyncPgConnection {
    db::connect(&admin_url())
        .await
        .expect("connect to the test PostgreSQL server")
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// One test's database. Dropped (with its roles) when this value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// Dropped with its roles on drop (databases of the shared test server).
    owned: bool,
}

impl TestDb {
    /// A database with `public` migrated and no tenant yet (not even the platform tenant).
    pub async fn new() -> Self {
        let template = PREPARED.get_or_init(prepare_template).await;
        let name = next_name();
        admin()
            .await
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(template)
            ))
            .await
            .expect("clone the template database");
        Self::named(name)
    }

    /// A name for a database that does not exist yet (Enclave must create it).
    pub async fn missing() -> Self {
        PREPARED.get_or_init(prepare_template).await;
        Self::named(next_name())
    }

    /// A database that exists but is completely empty.
    pub async fn empty() -> Self {
        let db = Self::missing().await;
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&db.name)))
            .await
            .expect("create an empty database");
        db
    }

    fn named(name: String) -> Self {
        Self {
            url: url_for(&name),
            name,
            owned: true,
        }
    }

    /// Database `name` at `url` on another server (a private cluster, which removes it):
    /// created by `prepare`, never dropped by the harness.
    pub fn elsewhere(name: &str, url: String) -> Self {
        Self {
            name: name.to_owned(),
            url,
            owned: false,
        }
    }

    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig::for_url(&self.url)
    }

    pub fn installation(&self) -> Installation {
        self.installation_with(MigrationSets::embedded())
    }

    pub fn installation_with(&self, sets: Arc<MigrationSets>) -> Installation {
        Installation::new(&self.config(), sets).expect("installation")
    }

    /// Runs startup (create database, migrate, provision the platform tenant).
    pub async fn prepare(&self) -> Installation {
        enclave::prepare_database(&self.config(), MigrationSets::embedded())
            .await
            .expect("startup migrations")
    }

    /// A connection as Enclave opens them (empty search_path).
    pub async fn conn(&self) -> AsyncPgConnection {
        db::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Number of rows a scalar `count(*)` query returns (`AS n`).
    pub async fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let row: Count = diesel::sql_query(sql)
            .get_result(&mut self.conn().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.n
    }

    /// The one uuid a query returns (`AS id`).
    pub async fn uuid(&self, sql: &str) -> uuid::Uuid {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: uuid::Uuid,
        }
        let row: Id = diesel::sql_query(sql)
            .get_result(&mut self.conn().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.id
    }

    /// Names returned by a query (`AS name`).
    pub async fn names(&self, sql: &str) -> Vec<String> {
        let rows: Vec<Name> = diesel::sql_query(sql)
            .load(&mut self.conn().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|r| r.name).collect()
    }

    /// Roles of this database's tenants that exist in the cluster.
    pub async fn roles(&self) -> Vec<String> {
        let namespace = db::role_namespace(&self.name);
        let rows: Vec<Name> = diesel::sql_query(
            "SELECT rolname AS name FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1",
        )
        .bind::<Text, _>(namespace)
        .load(&mut admin().await)
        .await
        .expect("list roles");
        rows.into_iter().map(|r| r.name).collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if keep_test_databases() {
            eprintln!("keeping test database {}", self.name);
            return;
        }
        let name = self.name.clone();
        // Drop may run inside a runtime (or while panicking): clean up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(drop_database(&name));
            }
        })
        .join();
    }
}

/// `ENCLAVE_KEEP_TEST_DB`, read like every boolean variable (`1`/`0`, `yes`/`no`, ...).
fn keep_test_databases() -> bool {
    std::env::var("ENCLAVE_KEEP_TEST_DB")
        .ok()
        .and_then(|v| enclave::config::parse_bool(&v))
        .unwrap_or(false)
}

fn next_name() -> String {
    format!(
        "enclave_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn drop_database(name: &str) {
    let _ = db::drop_database(&mut admin().await, name).await;
}

/// Sweeps leftovers, then makes sure the template for the current migrations exists.
/// Returns the template's name.
async fn prepare_template() -> String {
    let mut conn = admin().await;
    sweep_leftovers(&mut conn).await;
    let sets = MigrationSets::embedded();
    let digest = format!("{}{}", sets.public.fingerprint(), sets.tenant.fingerprint());
    let template = format!("enclave_tpl_{}", &digest[..12]);
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(TEMPLATE_LOCK_KEY)
        .execute(&mut conn)
        .await
        .expect("template lock");
    let ready: Vec<Name> =
        diesel::sql_query("SELECT datname AS name FROM pg_database WHERE datname = $1 AND datistemplate")
            .bind::<Text, _>(&template)
            .load(&mut conn)
            .await
            .expect("look for the template");
    drop_other_templates(&mut conn, &template).await;
    if ready.is_empty() {
        let quoted = quote_ident(&template);
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            .await
            .expect("drop a half-built template");
        conn.batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
            .expect("create template");
        let config = DatabaseConfig::for_url(url_for(&template));
        let installation = Installation::new(&config, sets).expect("installation");
        migrations::migrate(&installation, false)
            .await
            .expect("migrate the template");
        conn.batch_execute(&format!(
            "ALTER DATABASE {quoted} IS_TEMPLATE true; COMMENT ON DATABASE {quoted} IS 'built {}'",
            chrono::Utc::now().timestamp()
        ))
        .await
        .expect("mark the template");
    }
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(TEMPLATE_LOCK_KEY)
        .execute(&mut conn)
        .await
        .expect("template unlock");
    template
}

/// Drops templates built for other migration sets more than an hour ago (unless some test
/// is cloning them): a run of another checkout, with other migrations, may be using a
/// younger one.
async fn drop_other_templates(conn: &mut AsyncPgConnection, current: &str) {
    let stale: Vec<Name> = diesel::sql_query(
        "SELECT datname AS name FROM pg_database WHERE datname LIKE 'enclave\\_tpl\\_%' AND datname <> $1 \
         AND coalesce(substring(shobj_description(oid, 'pg_database') FROM '^built ([0-9]+)$')::bigint, 0) \
             < extract(epoch FROM now()) - 3600",
    )
    .bind::<Text, _>(current)
    .load(conn)
    .await
    .unwrap_or_default();
    for template in stale {
        let quoted = quote_ident(&template.name);
        if conn
            .batch_execute(&format!("ALTER DATABASE {quoted} IS_TEMPLATE false"))
            .await
            .is_ok()
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE {quoted}")).await;
        }
    }
}

/// Drops test databases whose process is gone, templates of other migration sets, and
/// tenant roles whose database no longer exists.
async fn sweep_leftovers(conn: &mut AsyncPgConnection) {
    let databases: Vec<Name> = diesel::sql_query("SELECT datname AS name FROM pg_database")
        .load(conn)
        .await
        .expect("list databases");
    let mut alive = Vec::new();
    for db in databases {
        let pid = db
            .name
            .strip_prefix("enclave_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        match pid {
            Some(pid) if !std::path::Path::new(&format!("/proc/{pid}")).exists() => {
                drop_database(&db.name).await;
            }
            _ => alive.push(db.name),
        }
    }
    let namespaces: Vec<String> = alive.iter().map(|name| db::role_namespace(name)).collect();
    let roles: Vec<Name> =
        diesel::sql_query("SELECT rolname AS name FROM pg_roles WHERE rolname ~ '^enclave_[0-9a-f]{10}_'")
            .load(conn)
            .await
            .expect("list roles");
    for role in roles {
        if !namespaces.iter().any(|ns| role.name.starts_with(ns.as_str())) {
            let _ = conn
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&role.name)))
                .await;
        }
    }
}

/// The embedded sets with one tenant migration appended (for fault tests).
pub fn sets_with_extra_tenant_migration(version: &str, up: &str) -> Arc<MigrationSets> {
    let embedded = MigrationSets::embedded();
    let mut tenant = embedded.tenant.migrations().to_vec();
    tenant.push(Migration::new(version.to_owned(), up.to_owned(), String::new()));
    Arc::new(MigrationSets {
        public: embedded.public.clone(),
        tenant: MigrationSet::new(tenant),
    })
}
