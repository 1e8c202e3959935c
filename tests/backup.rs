//! Per-tenant backup and restore (`enclave tenant export|import`) against a real
//! PostgreSQL: a round trip restores every table exactly; `--as` makes an independent
//! copy the original's tokens cannot reach; a damaged or newer archive is refused and
//! changes nothing; an import drops what crashed imports left behind, never what a running
//! one is working on.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use common::app::{TestApp, error_code};
use diesel_async::SimpleAsyncConnection;
use enclave::auth::Role;
use enclave::auth::keys::RootKeys;
use enclave::auth::token::{self, Claims, Credential};
use enclave::backup::{self, BackupError, ImportOptions};
use enclave::tenancy::provision;
use serde_json::json;

const ME: &str = "{ me { role tenant { slug } user { email } } }";
const HOSTNAMES: &str = "{ devices(first: 50) { totalCount edges { node { hostname } } } }";

/// A scratch directory of its own (removed when dropped).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "enclave-backup-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Tenant `slug` with an admin, devices (with interfaces), alerts and logs (a sequence).
async fn seeded(t: &TestApp, slug: &str) -> String {
    t.tenant(slug, &[&format!("{slug}.example.com")]).await;
    let admin = t.user(slug, &format!("admin@{slug}.test"), Role::Admin).await;
    let token = t.session(slug, &admin).await;
    let s = format!("tenant_{slug}");
    t.db.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO {s}.devices (hostname, ip, status) \
               SELECT '{slug}-router-' || i, ('10.0.0.' || i)::inet, 'up' FROM generate_series(1, 20) i; \
             INSERT INTO {s}.interfaces (device_id, name, description) \
               SELECT id, 'eth0', E'tab\\there, newline\\nthere, backslash \\\\ done' FROM {s}.devices; \
             INSERT INTO {s}.alerts (device_id, severity, title) \
               SELECT id, 'major', 'Link down on ' || hostname FROM {s}.devices LIMIT 5; \
             INSERT INTO {s}.logs (message, attributes) \
               SELECT 'line ' || i, jsonb_build_object('i', i) FROM generate_series(1, 30) i;"
        ))
        .await
        .expect("seed data");
    token
}

/// Every table of a schema with an order-independent digest of its rows.
async fn digests(t: &TestApp, schema: &str) -> Vec<(String, String)> {
    let tables =
        t.db.names(&format!(
            "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1"
        ))
        .await;
    assert!(tables.len() > 30, "{schema} has its tables: {tables:?}");
    let mut out = Vec::new();
    for table in tables {
        let digest =
            t.db.names(&format!(
                "SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS name \
                 FROM {schema}.{table} x"
            ))
            .await;
        out.push((table, digest.concat()));
    }
    out
}

async fn schemas(t: &TestApp) -> Vec<String> {
    t.db.names("SELECT nspname::text AS name FROM pg_namespace ORDER BY 1")
        .await
}

#[tokio::test]
async fn export_then_import_replace_restores_every_table() {
    let t = TestApp::new().await;
    let token = seeded(&t, "acme").await;
    let before = digests(&t, "tenant_acme").await;
    let scratch = Scratch::new();
    let file = scratch.file("acme.tar.gz");

    let manifest = backup::export_tenant(&t.installation, &t.entry("acme").slug, &file)
        .await
        .expect("export");
    assert_eq!(manifest.slug, "acme");
    let rows = |name: &str| manifest.tables.iter().find(|x| x.name == name).map(|x| x.rows);
    assert_eq!(rows("devices"), Some(20));
    assert_eq!(rows("logs"), Some(30));
    assert_eq!(
        manifest.tenant_migrations.len(),
        t.installation.migrations.tenant.migrations().len()
    );
    assert!(manifest.parts.contains_key("tables/devices.copy"));

    // Lose data, then restore it.
    t.db.conn()
        .await
        .batch_execute(
            "DELETE FROM tenant_acme.logs; DELETE FROM tenant_acme.alerts; \
             DELETE FROM tenant_acme.devices; \
             INSERT INTO tenant_acme.devices (hostname) VALUES ('not-in-the-backup');",
        )
        .await
        .expect("delete rows");
    assert_ne!(digests(&t, "tenant_acme").await, before);

    let refused = backup::import_tenant(&t.installation, &file, &ImportOptions::default())
        .await
        .expect_err("an existing tenant needs --replace");
    assert!(refused.to_string().contains("--replace"), "{refused}");

    let schemas_before = schemas(&t).await;
    let done = backup::import_tenant(
        &t.installation,
        &file,
        &ImportOptions {
            replace: true,
            ..ImportOptions::default()
        },
    )
    .await
    .expect("import --replace");
    assert_eq!(done.tenant_id, t.entry("acme").id, "the tenant keeps its id");
    assert_eq!(
        digests(&t, "tenant_acme").await,
        before,
        "every table restored exactly"
    );
    assert_eq!(schemas(&t).await, schemas_before, "no staging schema left behind");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM public.tenant_domains WHERE domain = 'acme.example.com'")
            .await,
        1
    );
    // The schema is served again through the tenant role: the session still works.
    t.reload().await;
    let response = t.gql(Some(&token), HOSTNAMES, json!({})).await;
    assert_eq!(response["data"]["devices"]["totalCount"], 20, "{response}");
    assert!(!response.to_string().contains("not-in-the-backup"));
    // The sequence continues after the restored rows.
    assert_eq!(
        t.db.count("SELECT nextval('tenant_acme.logs_id_seq') AS n").await,
        31
    );
    // The ledger names the tenant schema, not the staging one.
    assert_eq!(
        t.db.count(
            "SELECT count(*) AS n FROM public.enclave_schema_migrations WHERE schema_name LIKE 'enclave_import_%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn import_as_makes_an_independent_copy_the_originals_tokens_cannot_reach() {
    let t = TestApp::new().await;
    let token = seeded(&t, "acme").await;
    seeded(&t, "globex").await;
    let scratch = Scratch::new();
    let file = scratch.file("acme.tar.gz");
    backup::export_tenant(&t.installation, &t.entry("acme").slug, &file)
        .await
        .expect("export");

    let done = backup::import_tenant(
        &t.installation,
        &file,
        &ImportOptions {
            as_slug: Some("acme_copy".into()),
            replace: false,
        },
    )
    .await
    .expect("import --as");
    t.reload().await;
    let original = t.entry("acme");
    let copy = t.entry("acme_copy");
    assert_eq!(done.tenant_id, copy.id);
    assert_ne!(copy.id, original.id, "the copy is a new tenant");
    // Its scheduled jobs are in the due-index (rows were loaded with triggers off).
    assert_eq!(
        t.db.count(&format!(
            "SELECT count(*) AS n FROM public.job_due WHERE tenant_id = '{}' AND due_at IS NOT NULL",
            copy.id
        ))
        .await,
        1
    );

    // Same data (credentials and CAs aside, which the copy revokes or replaces).
    let changed = ["tokens", "api_tokens", "edge_components", "tenant_cas"];
    let keep = |d: Vec<(String, String)>| {
        d.into_iter()
            .filter(|(table, _)| !changed.contains(&table.as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keep(digests(&t, "tenant_acme_copy").await),
        keep(digests(&t, "tenant_acme").await)
    );
    // The copy's sessions are revoked; the original's are not.
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme_copy.tokens WHERE revoked_at IS NULL")
            .await,
        0
    );
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.tokens WHERE revoked_at IS NULL")
            .await,
        1
    );
    // A fresh CA of its own (the edge key is configured in tests), not the original's.
    let ca = |s: &str| format!("SELECT key_identifier AS name FROM tenant_{s}.tenant_cas");
    let (ours, theirs) = (t.db.names(&ca("acme_copy")).await, t.db.names(&ca("acme")).await);
    assert_eq!(ours.len(), 1);
    assert!(!theirs.contains(&ours[0]));
    // No vanity domain moves to the copy; memberships do.
    assert_eq!(
        t.db.count(&format!(
            "SELECT count(*) AS n FROM public.tenant_domains WHERE tenant_id = '{}'",
            copy.id
        ))
        .await,
        0
    );

    // The copy is independent: a change to it is absent from the original, and the
    // original's token still reaches only the original.
    t.db.conn()
        .await
        .batch_execute("INSERT INTO tenant_acme_copy.devices (hostname) VALUES ('only-in-the-copy')")
        .await
        .expect("write to the copy");
    let response = t.gql(Some(&token), HOSTNAMES, json!({})).await;
    assert_eq!(response["data"]["devices"]["totalCount"], 20, "{response}");
    assert!(!response.to_string().contains("only-in-the-copy"));
    assert!(!response.to_string().contains("globex-router"));
    let me = t.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["tenant"]["slug"], "acme", "{me}");

    // A token naming the copy with the original's (copied) session is refused.
    let session =
        t.db.uuid("SELECT id FROM tenant_acme.tokens ORDER BY created_at DESC LIMIT 1")
            .await;
    let user =
        t.db.uuid("SELECT id FROM tenant_acme.users WHERE email = 'admin@acme.test'")
            .await;
    let keys = RootKeys::parse(&t.key_spec).expect("keys");
    let forged = token::mint(
        &keys,
        &Claims {
            user_id: user,
            tenant_id: copy.id,
            role: Role::Admin,
            credential: Credential::Session(session),
            impersonator: None,
            expires_at: Utc::now() + chrono::Duration::hours(1),
        },
    )
    .expect("mint");
    let refused = t.gql(Some(&forged), HOSTNAMES, json!({})).await;
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"), "{refused}");
    assert!(!refused.to_string().contains("acme-router"));

    // Importing the copy again under the same slug is refused (it exists now).
    let again = backup::import_tenant(
        &t.installation,
        &file,
        &ImportOptions {
            as_slug: Some("acme_copy".into()),
            replace: false,
        },
    )
    .await
    .expect_err("the copy exists");
    assert!(again.to_string().contains("exists"), "{again}");
}

/// Rewrites an archive with its manifest changed by `edit` (digest recomputed).
fn with_manifest(from: &Path, to: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(from).expect("open"),
    ));
    let mut entries = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        entries.push((name, data));
    }
    let manifest = entries
        .iter()
        .find(|(n, _)| n == "manifest.json")
        .map(|(_, d)| d.clone())
        .expect("manifest");
    let mut value: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
    edit(&mut value);
    let manifest = serde_json::to_vec(&value).expect("json");
    let digest = backup::archive::sha256_hex(&manifest);
    let out = std::fs::File::create(to).expect("create");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(out, flate2::Compression::fast()));
    for (name, data) in entries {
        let data = match name.as_str() {
            "manifest.json" => manifest.clone(),
            "manifest.sha256" => format!("{digest}\n").into_bytes(),
            _ => data,
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        builder
            .append_data(&mut header, &name, data.as_slice())
            .expect("append");
    }
    builder
        .into_inner()
        .expect("tar")
        .finish()
        .expect("gzip")
        .flush()
        .expect("flush");
}

#[tokio::test]
async fn a_corrupted_or_newer_archive_is_refused_and_changes_nothing() {
    let t = TestApp::new().await;
    seeded(&t, "acme").await;
    let scratch = Scratch::new();
    let good = scratch.file("acme.tar.gz");
    backup::export_tenant(&t.installation, &t.entry("acme").slug, &good)
        .await
        .expect("export");
    let bytes = std::fs::read(&good).expect("read archive");

    let flipped = scratch.file("flipped.tar.gz");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    std::fs::write(&flipped, &damaged).expect("write");

    let truncated = scratch.file("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).expect("write");

    let newer_format = scratch.file("newer-format.tar.gz");
    with_manifest(&good, &newer_format, |m| m["format"] = json!(2));
    let newer_enclave = scratch.file("newer-enclave.tar.gz");
    with_manifest(&good, &newer_enclave, |m| m["enclave_version"] = json!("999.0.0"));
    let newer_migration = scratch.file("newer-migration.tar.gz");
    with_manifest(&good, &newer_migration, |m| {
        m["tenant_migrations"]
            .as_array_mut()
            .expect("migrations")
            .push(json!({"version": "2999-01-01-000001_future", "checksum": "00"}));
    });
    // A manifest edited without fixing its digest.
    let edited = scratch.file("edited.tar.gz");
    with_manifest(&good, &edited, |m| m["tables"][0]["rows"] = json!(12345));

    // Data changed since the export: a refused import must not undo it.
    t.db.conn()
        .await
        .batch_execute("DELETE FROM tenant_acme.logs")
        .await
        .expect("delete");
    let data_before = digests(&t, "tenant_acme").await;
    let schemas_before = schemas(&t).await;
    let tenants_before =
        t.db.names("SELECT slug || ':' || id || ':' || name AS name FROM public.tenants ORDER BY 1")
            .await;

    let cases: [(&Path, &str); 6] = [
        (&flipped, "corrupted"),
        (&truncated, "corrupted"),
        (&newer_format, "format 2"),
        (&newer_enclave, "999.0.0"),
        (&newer_migration, "2999-01-01-000001_future"),
        (&edited, "corrupted"),
    ];
    for (file, expected) in cases {
        for options in [
            ImportOptions {
                replace: true,
                ..ImportOptions::default()
            },
            ImportOptions {
                as_slug: Some("acme_copy".into()),
                replace: false,
            },
        ] {
            let error = backup::import_tenant(&t.installation, file, &options)
                .await
                .expect_err("refused");
            assert!(
                matches!(error, BackupError::Corrupt(_) | BackupError::Unsupported(_)),
                "{}: {error}",
                file.display()
            );
            assert!(
                error.to_string().contains(expected),
                "{}: {error}",
                file.display()
            );
            assert!(error.to_string().contains("nothing was changed"), "{error}");
        }
    }
    assert_eq!(digests(&t, "tenant_acme").await, data_before);
    assert_eq!(schemas(&t).await, schemas_before);
    assert_eq!(
        t.db.names("SELECT slug || ':' || id || ':' || name AS name FROM public.tenants ORDER BY 1")
            .await,
        tenants_before
    );

    // The intact archive still imports.
    backup::import_tenant(
        &t.installation,
        &good,
        &ImportOptions {
            replace: true,
            ..ImportOptions::default()
        },
    )
    .await
    .expect("the good archive imports");
    assert_eq!(t.db.count("SELECT count(*) AS n FROM tenant_acme.logs").await, 30);
}

#[tokio::test]
async fn import_restores_a_dropped_tenant_under_its_id_and_refuses_bad_requests() {
    let t = TestApp::new().await;
    seeded(&t, "acme").await;
    let before = digests(&t, "tenant_acme").await;
    let id = t.entry("acme").id;
    let scratch = Scratch::new();
    let file = scratch.file("acme.tar.gz");
    backup::export_tenant(&t.installation, &t.entry("acme").slug, &file)
        .await
        .expect("export");
    let exists = backup::export_tenant(&t.installation, &t.entry("acme").slug, &file)
        .await
        .expect_err("an existing file is not overwritten");
    assert!(exists.to_string().contains("exists"), "{exists}");

    let slug = provision::parse_slug("acme").expect("slug");
    provision::drop_tenant(&mut t.db.conn().await, &t.installation, &slug)
        .await
        .expect("drop");

    // A failure at the swap (the vanity domain now belongs to another tenant) leaves
    // nothing behind: no tenant, no staging schema, no ledger entry, no role.
    t.tenant("initech", &["acme.example.com"]).await;
    let (schemas_before, roles_before) = (schemas(&t).await, t.db.roles().await);
    let taken = backup::import_tenant(&t.installation, &file, &ImportOptions::default())
        .await
        .expect_err("the domain is taken");
    assert!(taken.to_string().contains("vanity domain"), "{taken}");
    assert_eq!(schemas(&t).await, schemas_before);
    assert_eq!(t.db.roles().await, roles_before);
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM public.tenants WHERE slug = 'acme'")
            .await,
        0
    );
    assert_eq!(
        t.db.count(
            "SELECT count(*) AS n FROM public.enclave_schema_state WHERE schema_name LIKE 'enclave_import_%'"
        )
        .await,
        0
    );
    let initech = provision::parse_slug("initech").expect("slug");
    provision::drop_tenant(&mut t.db.conn().await, &t.installation, &initech)
        .await
        .expect("drop initech");
    let done = backup::import_tenant(&t.installation, &file, &ImportOptions::default())
        .await
        .expect("import into a database without the tenant");
    assert_eq!(done.tenant_id, id);
    assert_eq!(digests(&t, "tenant_acme").await, before);
    assert!(
        t.db.roles().await.contains(&t.installation.tenant_role(&slug)),
        "the tenant role is recreated"
    );

    let both = backup::import_tenant(
        &t.installation,
        &file,
        &ImportOptions {
            as_slug: Some("other".into()),
            replace: true,
        },
    )
    .await
    .expect_err("--as with --replace");
    assert!(both.to_string().contains("--as"), "{both}");
    let missing = backup::export_tenant(
        &t.installation,
        &provision::parse_slug("nobody").expect("slug"),
        &scratch.file("nobody.tar.gz"),
    )
    .await
    .expect_err("no such tenant");
    assert!(missing.to_string().contains("no tenant nobody"), "{missing}");
    assert!(!scratch.file("nobody.tar.gz.partial").exists());
    assert!(!scratch.file("nobody.tar.gz").exists());
}

/// Rows under staging name `schema`: its tables and its ledger entries.
async fn staging_leftovers(t: &TestApp, schema: &str) -> (Vec<String>, i64) {
    let tables =
        t.db.names(&format!(
            "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1"
        ))
        .await;
    let ledger = t
        .db
        .count(&format!(
            "SELECT (SELECT count(*) FROM public.enclave_schema_state WHERE schema_name = '{schema}') \
                  + (SELECT count(*) FROM public.enclave_schema_migrations WHERE schema_name = '{schema}') AS n"
        ))
        .await;
    (tables, ledger)
}

#[tokio::test]
async fn an_import_first_drops_what_crashed_imports_left_but_never_a_running_imports_schema() {
    let t = TestApp::new().await;
    seeded(&t, "acme").await;
    let scratch = Scratch::new();
    let file = scratch.file("acme.tar.gz");
    backup::export_tenant(&t.installation, &t.entry("acme").slug, &file)
        .await
        .expect("export");

    // An import that crashed after staging: its schema and ledger entries, nobody's claim.
    let crashed = "enclave_import_00000000000000000000000000000001";
    t.db.conn()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA {crashed}; CREATE TABLE {crashed}.devices (id int); \
             INSERT INTO {crashed}.devices VALUES (1); \
             INSERT INTO public.enclave_schema_state (schema_name, version) VALUES ('{crashed}', 'v1'); \
             INSERT INTO public.enclave_schema_migrations (schema_name, version, checksum, duration_ms) \
               VALUES ('{crashed}', 'v1', 'c', 0)"
        ))
        .await
        .expect("a crashed import's leftovers");
    // An import still running in another session: its staging schema is claimed.
    let running = "enclave_import_00000000000000000000000000000002";
    let mut importer = t.db.conn().await;
    backup::staging::claim(&mut importer, running)
        .await
        .expect("claim");
    importer
        .batch_execute(&format!(
            "CREATE SCHEMA {running}; CREATE TABLE {running}.devices (id int); \
             INSERT INTO public.enclave_schema_state (schema_name, version) VALUES ('{running}', 'v1')"
        ))
        .await
        .expect("a running import's staging schema");
    assert_eq!(
        staging_leftovers(&t, crashed).await,
        (vec!["devices".to_owned()], 2)
    );

    let copy = |slug: &str| ImportOptions {
        as_slug: Some(slug.to_owned()),
        replace: false,
    };
    let done = backup::import_tenant(&t.installation, &file, &copy("acmecopy"))
        .await
        .expect("import");
    assert_eq!(done.slug, "acmecopy");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acmecopy.devices")
            .await,
        20
    );
    assert_eq!(
        staging_leftovers(&t, crashed).await,
        (Vec::new(), 0),
        "the crashed import's schema and ledger entries are gone"
    );
    assert!(!schemas(&t).await.contains(&crashed.to_owned()));
    assert_eq!(
        staging_leftovers(&t, running).await,
        (vec!["devices".to_owned()], 1),
        "the running import's schema is untouched"
    );

    // The running import's process dies (its session ends, and its claim with it): the
    // next import drops its schema.
    let pid =
        t.db.count(&format!(
            "SELECT pid::bigint AS n FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND objid = hashtext('{running}')::oid"
        ))
        .await;
    assert!(
        t.db.names(&format!(
            "SELECT pg_terminate_backend({pid}, 10000)::text AS name"
        ))
        .await
        .contains(&"true".to_owned()),
        "the importer's backend ends"
    );
    drop(importer);
    backup::import_tenant(&t.installation, &file, &copy("acmecopy2"))
        .await
        .expect("second import");
    assert_eq!(staging_leftovers(&t, running).await, (Vec::new(), 0));
    assert!(
        !schemas(&t).await.iter().any(|s| s.starts_with("enclave_import_")),
        "{:?}",
        schemas(&t).await
    );
}

#[tokio::test]
async fn a_start_drops_what_a_crashed_import_left_but_not_a_running_imports_schema() {
    let t = TestApp::new().await;
    let crashed = "enclave_import_00000000000000000000000000000003";
    let running = "enclave_import_00000000000000000000000000000004";
    let mut importer = t.db.conn().await;
    backup::staging::claim(&mut importer, running)
        .await
        .expect("claim");
    t.db.conn()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA {crashed}; CREATE TABLE {crashed}.devices (id int); \
             INSERT INTO public.enclave_schema_state (schema_name, version) VALUES ('{crashed}', 'v1'); \
             CREATE SCHEMA {running}; CREATE TABLE {running}.devices (id int)"
        ))
        .await
        .expect("leftovers");
    enclave::migrate_database(&t.db.config(), t.installation.migrations.clone())
        .await
        .expect("start");
    assert_eq!(staging_leftovers(&t, crashed).await, (Vec::new(), 0));
    assert_eq!(
        staging_leftovers(&t, running).await,
        (vec!["devices".to_owned()], 0),
        "the running import's schema is untouched"
    );
    drop(importer);
}

/// `enclave <args>` with only `PATH` and `HOME` set.
fn enclave(home: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .current_dir(home)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the enclave binary")
}

#[tokio::test]
async fn the_cli_exports_and_imports() {
    let t = TestApp::new().await;
    seeded(&t, "acme").await;
    let scratch = Scratch::new();
    let file = scratch.file("acme.tar.gz");
    let file = file.to_str().expect("utf-8 path");
    let url = t.db.url.as_str();
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let exported = enclave(
        &scratch.0,
        &["tenant", "export", "acme", "--out", file, "--database-url", url],
    );
    assert!(exported.status.success(), "{}", err(&exported));
    assert!(
        out(&exported).contains("exported tenant acme"),
        "{}",
        out(&exported)
    );

    let refused = enclave(&scratch.0, &["tenant", "import", file, "--database-url", url]);
    assert!(!refused.status.success());
    assert!(err(&refused).contains("--replace"), "{}", err(&refused));

    let truncated = scratch.file("truncated.tar.gz");
    let bytes = std::fs::read(file).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let broken = enclave(
        &scratch.0,
        &[
            "tenant",
            "import",
            truncated.to_str().expect("utf-8"),
            "--replace",
            "--database-url",
            url,
        ],
    );
    assert!(!broken.status.success());
    assert!(err(&broken).contains("corrupted archive"), "{}", err(&broken));

    let copied = enclave(
        &scratch.0,
        &[
            "tenant",
            "import",
            file,
            "--as",
            "acme_cli",
            "--database-url",
            url,
        ],
    );
    assert!(copied.status.success(), "{}", err(&copied));
    assert!(
        out(&copied).contains("imported tenant acme_cli"),
        "{}",
        out(&copied)
    );
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme_cli.devices")
            .await,
        20
    );
    // Without ENCLAVE_EDGE_KEY the copy has no CA yet (serve creates it), and never the original's.
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme_cli.tenant_cas")
            .await,
        0
    );

    let replaced = enclave(
        &scratch.0,
        &["tenant", "import", file, "--replace", "--database-url", url],
    );
    assert!(replaced.status.success(), "{}", err(&replaced));
    assert!(
        out(&replaced).contains("restored tenant acme"),
        "{}",
        out(&replaced)
    );
}
