//! Enclave behind PgBouncer in transaction pooling mode: request traffic goes through
//! `DATABASE_URL` (PgBouncer, started per test by `scripts/ensure-pgbouncer --start` with
//! two server connections per user and database, so that Enclave's connections share
//! them), and what needs a session (migrations, provisioning, LISTEN) through
//! `ENCLAVE_DIRECT_DATABASE_URL`. Requests of two tenants, interleaved on shared server
//! connections, see their own rows only; the settings request connections get at startup
//! without a pooler hold in every transaction; a subscription listens on the direct URL.
//!
//! Skipped, with a message, when `pgbouncer` is not installed (`scripts/test` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestDb;
use common::app::TestApp;
use common::subscribe::{open, subscriber};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use enclave::auth::Role;
use enclave::tenancy::transaction::Access;
use futures_util::StreamExt;
use serde_json::json;

/// Server connections PgBouncer keeps per user and database: fewer than Enclave's pool.
const SERVER_CONNECTIONS: usize = 2;

/// A PgBouncer of its own, stopped (and its directory removed) on drop.
struct Bouncer {
    dir: PathBuf,
    port: u16,
}

impl Bouncer {
    /// `None` (with the reason printed) when pgbouncer is not installed.
    fn start(upstream: &str) -> Option<Self> {
        let installed = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("pgbouncer").exists()))
            || Path::new("/usr/sbin/pgbouncer").exists();
        if !installed {
            eprintln!("SKIPPED: pgbouncer is not installed (scripts/ensure-pgbouncer installs it)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("enclave-pgbouncer-{}-{port}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-pgbouncer");
        let output = std::process::Command::new(script)
            .arg("--start")
            .arg(&dir)
            .arg(port.to_string())
            .arg(upstream)
            .arg(SERVER_CONNECTIONS.to_string())
            .output()
            .expect("run scripts/ensure-pgbouncer");
        assert!(
            output.status.success(),
            "pgbouncer did not start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(Self { dir, port })
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-pgbouncer");
        let _ = std::process::Command::new(script)
            .arg("--stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `host:port` of the test server.
fn upstream() -> String {
    let config: tokio_postgres::Config = common::admin_url().parse().expect("test URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432))
}

#[derive(QueryableByName)]
struct Settings {
    #[diesel(sql_type = Text)]
    search_path: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    lock_timeout: String,
    #[diesel(sql_type = Text)]
    idle: String,
    #[diesel(sql_type = Text)]
    check: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enclave_serves_two_isolated_tenants_through_pgbouncer_in_transaction_mode() {
    let Some(bouncer) = Bouncer::start(&upstream()) else {
        return;
    };
    let db = TestDb::new().await;
    let (pooled, direct) = (bouncer.url(&db.name), db.url.clone());
    let t = TestApp::on(db, |database, _| {
        database.database_url = pooled;
        database.direct_database_url = Some(direct);
        database.pool_size = 8;
    })
    .await;
    assert!(
        !t.app
            .installation
            .database_url
            .contains(&bouncer.port.to_string())
    );

    // Provisioning (direct URL), then requests (through PgBouncer).
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    let acme_admin = t.user("acme", "owner@acme.example", Role::Admin).await;
    let globex_admin = t.user("globex", "owner@globex.example", Role::Admin).await;
    let acme = t.session("acme", &acme_admin).await;
    let globex = t.session("globex", &globex_admin).await;

    // Writes and reads of both tenants, interleaved and concurrent: 8 Enclave connections
    // share PgBouncer's 2 server connections per user, transaction by transaction.
    let create = "mutation($h: String!) { createDevice(input: {hostname: $h}) { device { hostname } } }";
    let writes = (0..12).map(|i| {
        let (token, slug) = if i % 2 == 0 {
            (&acme, "acme")
        } else {
            (&globex, "globex")
        };
        let t = &t;
        async move {
            let hostname = format!("{slug}-{i}");
            let response = t.gql(Some(token), create, json!({ "h": hostname })).await;
            assert_eq!(
                response["data"]["createDevice"]["device"]["hostname"], hostname,
                "{response}"
            );
        }
    });
    futures_util::future::join_all(writes).await;
    let list = "{ me { tenant { slug } } devices(first: 100) { nodes { hostname } } }";
    for round in 0..3 {
        let reads = [(&acme, "acme"), (&globex, "globex")]
            .into_iter()
            .cycle()
            .take(10)
            .map(|(token, slug)| {
                let t = &t;
                async move {
                    let response = t.gql(Some(token), list, json!({})).await;
                    assert!(response.get("errors").is_none(), "round {round}: {response}");
                    assert_eq!(response["data"]["me"]["tenant"]["slug"], slug);
                    let hosts: Vec<&str> = response["data"]["devices"]["nodes"]
                        .as_array()
                        .expect("devices")
                        .iter()
                        .filter_map(|d| d["hostname"].as_str())
                        .collect();
                    assert_eq!(hosts.len(), 6, "{slug}: {hosts:?}");
                    // The other tenant's rows are absent.
                    assert!(
                        hosts.iter().all(|h| h.starts_with(&format!("{slug}-"))),
                        "{slug}: {hosts:?}"
                    );
                }
            });
        futures_util::future::join_all(reads).await;
    }
    let opened = t.app.db.request_pool_state().connections_opened;
    assert!(
        opened > SERVER_CONNECTIONS as u64,
        "Enclave opened {opened} connections"
    );
    let backends =
        t.db.count(&format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND usename = '{}'",
            t.installation.authenticator
        ))
        .await;
    assert!(
        (1..=SERVER_CONNECTIONS as i64).contains(&backends),
        "{backends} authenticator backends: the requests went through PgBouncer"
    );

    // What request connections get as startup options without a pooler holds in each
    // tenant transaction through it.
    let tx = t.app.tenant_tx(t.entry("acme"), Access::ReadOnly, None);
    let settings: Settings = diesel::sql_query(
        "SELECT current_setting('search_path') AS search_path, current_user::text AS role, \
         current_setting('lock_timeout') AS lock_timeout, \
         current_setting('idle_in_transaction_session_timeout') AS idle, \
         current_setting('client_connection_check_interval') AS check",
    )
    .get_result(&mut tx.conn().await.expect("tenant transaction"))
    .await
    .expect("settings");
    tx.finish(false).await.expect("rollback");
    assert_eq!(settings.search_path, "tenant_acme");
    assert_eq!(settings.role, t.entry("acme").role);
    assert_eq!(settings.lock_timeout, "5s");
    assert_eq!(settings.idle, "1min");
    assert_eq!(settings.check, "1s");

    // A subscription: LISTEN on the direct URL, deliveries read through PgBouncer.
    let listener = t.app.changes.spawn_listener(t.installation.database_url.clone());
    let schema = enclave::resolvers::build_schema(t.app.clone());
    let mut stream = open(
        &schema,
        subscriber(&t, "acme").await,
        "subscription { alertChanges { title } }",
    )
    .await;
    t.db.conn()
        .await
        .batch_execute(
            "INSERT INTO tenant_globex.alerts (severity, title) VALUES ('major', 'globex only'); \
             INSERT INTO tenant_acme.alerts (severity, title) VALUES ('major', 'acme link down')",
        )
        .await
        .expect("alerts");
    let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream goes on");
    assert!(item.errors.is_empty(), "{:?}", item.errors);
    let value = item.data.into_json().expect("json");
    assert_eq!(value["alertChanges"]["title"], "acme link down", "{value}");
    listener.abort();
}

/// Opening request connections through PgBouncer while others are busy: diesel-async's
/// setup statements (time zone, encoding) run inside one transaction, so that PgBouncer
/// cannot split a statement's Parse and Execute across server connections (a prepared
/// statement parsed on one does not exist on the other; the benchmark's load hit it,
/// this smaller load does not reliably), and every connection ends up in UTC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_request_connections_open_at_once_through_pgbouncer_with_their_settings() {
    let Some(bouncer) = Bouncer::start(&upstream()) else {
        return;
    };
    let db = TestDb::new().await;
    let config: tokio_postgres::Config = bouncer.url(&db.name).parse().expect("pgbouncer URL");
    // Busy server connections: transactions held open for a moment, over and over.
    let busy = (0..3).map(|_| {
        let url = bouncer.url(&db.name);
        tokio::spawn(async move {
            let mut conn = enclave::db::connect_without_options(url.parse().expect("url"))
                .await
                .expect("a busy connection");
            for _ in 0..20 {
                conn.batch_execute("BEGIN; SELECT pg_sleep(0.01); COMMIT")
                    .await
                    .expect("busy transaction");
            }
        })
    });
    let busy: Vec<_> = busy.collect();
    let opened = futures_util::future::join_all((0..40).map(|_| {
        let config = config.clone();
        async move {
            let mut conn = enclave::db::connect_without_options(config).await?;
            // Statements run in transactions behind the pooler, as request connections' do.
            let setup = diesel::ConnectionError::CouldntSetupConfiguration;
            conn.batch_execute("BEGIN").await.map_err(setup)?;
            let zone: Vec<Zone> = diesel::sql_query("SELECT current_setting('TimeZone') AS zone")
                .load(&mut conn)
                .await
                .map_err(setup)?;
            conn.batch_execute("COMMIT").await.map_err(setup)?;
            Ok::<_, diesel::ConnectionError>(zone.into_iter().next().map(|z| z.zone))
        }
    }))
    .await;
    for handle in busy {
        handle.await.expect("busy task");
    }
    let failures: Vec<String> = opened
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 40 failed: {failures:?}",
        failures.len()
    );
    assert!(
        opened.iter().all(|r| matches!(r, Ok(Some(z)) if z == "UTC")),
        "{opened:?}"
    );
}

#[derive(QueryableByName, Debug)]
struct Zone {
    #[diesel(sql_type = Text)]
    zone: String,
}
