//! The `enclave` command as a new user meets it: the real binary, run with a clean
//! environment against per-test databases. Boolean variables, flags after the subcommand,
//! per-command help, databases that must not be created, the per-user development key,
//! roles, `uninstall`, plain (uncoloured) logs, and host names in `ENCLAVE_LISTEN`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use common::TestDb;
use common::app::TestApp;
use enclave::auth::Role;

/// A scratch directory of its own (removed when dropped).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "enclave-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `enclave <args>` with only `PATH`, `HOME` (a scratch directory) and `vars` set, run
/// from `cwd`.
fn enclave(cwd: &Path, home: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_enclave"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .current_dir(cwd)
        .args(args)
        .stdin(std::process::Stdio::null());
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("run the enclave binary")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn database_exists(name: &str) -> bool {
    let admin = TestDb::new().await;
    admin
        .count(&format!(
            "SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"
        ))
        .await
        == 1
}

#[tokio::test]
async fn boolean_variables_take_the_usual_spellings_and_a_bad_one_names_the_variable() {
    let scratch = Scratch::new();
    let missing = TestDb::missing().await;
    let mint = ["token", "mint", "--tenant", "acme", "--email", "a@acme.example"];

    for (i, value) in ["1", "TRUE", "yes", "On", "y"].iter().enumerate() {
        let key = scratch.path().join(format!("key-{i}"));
        let key_text = key.to_string_lossy().into_owned();
        let output = enclave(
            scratch.path(),
            scratch.path(),
            &[
                ("ENCLAVE_DEV", value),
                ("ENCLAVE_DEV_KEY_FILE", &key_text),
                ("DATABASE_URL", &missing.url),
            ],
            &mint,
        );
        assert!(!output.status.success());
        // Parsed as true: the development key was made, and the command got as far as the database.
        assert!(key.exists(), "ENCLAVE_DEV={value}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("does not exist"),
            "ENCLAVE_DEV={value}: {}",
            stderr(&output)
        );
    }
    for value in ["0", "false", "No", "OFF"] {
        let output = enclave(
            scratch.path(),
            scratch.path(),
            &[("ENCLAVE_DEV", value), ("DATABASE_URL", &missing.url)],
            &mint,
        );
        assert!(!output.status.success());
        let error = stderr(&output);
        assert!(
            error.contains("no root key configured"),
            "ENCLAVE_DEV={value}: {error}"
        );
        assert!(
            error.contains("ENCLAVE_DEV"),
            "the error says how to get a dev key: {error}"
        );
    }
    let output = enclave(
        scratch.path(),
        scratch.path(),
        &[("ENCLAVE_DEV", "maybe")],
        &["serve"],
    );
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("ENCLAVE_DEV") && error.contains("'maybe'"),
        "{error}"
    );
    assert!(error.contains("yes/no"), "{error}");
}

#[tokio::test]
async fn commands_other_than_serve_migrate_and_demo_refuse_a_missing_database_and_create_nothing() {
    let scratch = Scratch::new();
    let missing = TestDb::missing().await;
    for args in [
        vec!["tenant", "list", "--database-url", missing.url.as_str()],
        vec!["migrate", "--status", "--database-url", missing.url.as_str()],
        vec![
            "tenant",
            "suspend",
            "acme",
            "--database-url",
            missing.url.as_str(),
        ],
    ] {
        let output = enclave(scratch.path(), scratch.path(), &[], &args);
        assert!(!output.status.success(), "{args:?}");
        let error = stderr(&output);
        assert!(
            error.contains(&format!("database {} does not exist", missing.name)),
            "{args:?}: {error}"
        );
        assert!(!error.contains("db error\n"), "{error}");
    }
    assert!(
        !database_exists(&missing.name).await,
        "a read-only command created the database"
    );
    // The server's own message reaches the user, not just "db error".
    let error = match enclave::db::connect(&missing.url).await {
        Ok(_) => panic!("connected to a missing database"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("does not exist"), "{error}");
}

#[tokio::test]
async fn flags_work_after_the_subcommand_and_help_lists_only_what_a_command_uses() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let scratch = Scratch::new();
    let listed = enclave(
        scratch.path(),
        scratch.path(),
        &[],
        &["tenant", "list", "--database-url", &t.db.url],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).contains("acme"), "{}", stdout(&listed));
    // The INFO line about the database belongs to serve, not to every command.
    assert!(!stderr(&listed).contains("database ready"), "{}", stderr(&listed));

    let help = stdout(&enclave(
        scratch.path(),
        scratch.path(),
        &[],
        &["tenant", "list", "--help"],
    ));
    assert!(help.contains("--database-url"), "{help}");
    for unused in ["--listen", "--max-depth", "--root-key", "--dev", "--pool-size"] {
        assert!(
            !help.contains(unused),
            "tenant list --help lists {unused}: {help}"
        );
    }
    let help = stdout(&enclave(
        scratch.path(),
        scratch.path(),
        &[],
        &["serve", "--help"],
    ));
    for used in [
        "--listen",
        "--max-depth",
        "--root-key",
        "--dev",
        "--database-url",
        "--pool-size",
    ] {
        assert!(help.contains(used), "serve --help lacks {used}: {help}");
    }
    let help = stdout(&enclave(
        scratch.path(),
        scratch.path(),
        &[],
        &["keys", "generate", "--help"],
    ));
    assert!(!help.contains("--database-url"), "{help}");
}

#[tokio::test]
async fn user_add_makes_a_viewer_by_default_and_takes_roles_in_any_case() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let scratch = Scratch::new();
    let password = [("ENCLAVE_ADMIN_PASSWORD", "a long enough password")];
    for (email, role) in [("v@acme.example", None), ("o@acme.example", Some("OPERATOR"))] {
        let mut args = vec!["user", "add", "--tenant", "acme", "--email", email];
        if let Some(role) = role {
            args.extend(["--role", role]);
        }
        args.extend(["--database-url", t.db.url.as_str()]);
        let output = enclave(scratch.path(), scratch.path(), &password, &args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    let roles =
        t.db.names("SELECT email || ' ' || role AS name FROM tenant_acme.users ORDER BY email")
            .await;
    assert_eq!(roles, ["o@acme.example operator", "v@acme.example viewer"]);
    let output = enclave(
        scratch.path(),
        scratch.path(),
        &password,
        &[
            "user",
            "add",
            "--tenant",
            "acme",
            "--email",
            "x@acme.example",
            "--role",
            "boss",
            "--database-url",
            &t.db.url,
        ],
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("unknown role"), "{}", stderr(&output));
}

#[tokio::test]
async fn dev_mode_uses_one_key_per_user_wherever_the_command_runs() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    t.user("acme", "admin@acme.example", Role::Admin).await;
    let home = Scratch::new();
    let elsewhere = Scratch::new();
    let mint = |cwd: &Path| {
        enclave(
            cwd,
            home.path(),
            &[("ENCLAVE_DEV", "1"), ("DATABASE_URL", &t.db.url)],
            &[
                "token",
                "mint",
                "--tenant",
                "acme",
                "--email",
                "admin@acme.example",
            ],
        )
    };
    let first = mint(home.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let second = mint(elsewhere.path());
    assert!(second.status.success(), "{}", stderr(&second));
    let key_file = home.path().join(".local/share/enclave/dev-root-key");
    assert!(key_file.exists(), "the key lives at the per-user path");
    assert!(!elsewhere.path().join(".enclave-dev-root-key").exists());
    // Both tokens verify with that one key.
    let spec = std::fs::read_to_string(&key_file).expect("read the dev key");
    let keys = enclave::auth::keys::RootKeys::parse(spec.trim()).expect("the dev key parses");
    for output in [&first, &second] {
        let token = stdout(output).trim().to_owned();
        assert!(
            enclave::auth::token::verify(&token, &keys).is_ok(),
            "the token verifies with the per-user dev key"
        );
    }
    // ENCLAVE_DEV_KEY_FILE moves it.
    let custom = home.path().join("custom-key");
    let output = enclave(
        elsewhere.path(),
        home.path(),
        &[
            ("ENCLAVE_DEV", "yes"),
            ("ENCLAVE_DEV_KEY_FILE", &custom.to_string_lossy()),
            ("DATABASE_URL", &t.db.url),
        ],
        &[
            "token",
            "mint",
            "--tenant",
            "acme",
            "--email",
            "admin@acme.example",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(custom.exists());
}

#[tokio::test]
async fn uninstall_drops_the_database_and_its_roles_after_confirmation() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    let new = enclave::tenancy::provision::NewTenant {
        slug: enclave::tenancy::provision::parse_new_slug("acme").expect("slug"),
        name: "Acme".into(),
        domains: vec![],
    };
    enclave::tenancy::provision::create_tenant(&mut db.conn().await, &installation, &new)
        .await
        .expect("provision");
    assert!(!db.roles().await.is_empty());
    let scratch = Scratch::new();
    let refused = enclave(
        scratch.path(),
        scratch.path(),
        &[("DATABASE_URL", &db.url)],
        &["uninstall", "--confirm", "enclave"],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--confirm"), "{}", stderr(&refused));
    assert!(database_exists(&db.name).await);

    let done = enclave(
        scratch.path(),
        scratch.path(),
        &[("DATABASE_URL", &db.url)],
        &["uninstall", "--confirm", &db.name],
    );
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(!database_exists(&db.name).await);
    assert!(db.roles().await.is_empty(), "roles left: {:?}", db.roles().await);
}

#[tokio::test]
async fn logs_written_to_a_file_have_no_colours() {
    let db = TestDb::missing().await;
    let scratch = Scratch::new();
    let output = enclave(
        scratch.path(),
        scratch.path(),
        &[("DATABASE_URL", &db.url), ("RUST_LOG", "debug")],
        &["migrate"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("created database"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a piped log: {log:?}");
    assert!(stdout(&output).contains("up to date"), "{}", stdout(&output));
}

#[tokio::test]
async fn the_server_listens_on_a_host_name() {
    let db = TestDb::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = enclave::config::ServerConfig::on(format!("localhost:{port}"));
    let auth = enclave::config::AuthConfig::with_key(enclave::auth::keys::RootKeys::generate(1).1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = db.config();
    let serving = tokio::spawn(async move {
        enclave::serve(
            &config,
            &auth,
            &enclave::config::LimitsConfig::default(),
            &server,
            enclave::tenancy::migrations::MigrationSets::embedded(),
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    let mut answer = String::new();
    for _ in 0..100 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("localhost", port)).await {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                .await
                .expect("send");
            stream.read_to_string(&mut answer).await.expect("read");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    serving.await.expect("join").expect("served");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn json_logs_carry_one_line_per_request_with_its_tenant_operation_and_outcome() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
    let token = t.session("acme", &admin).await;
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let scratch = Scratch::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_enclave"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch.path())
        .env("DATABASE_URL", &t.db.url)
        .env("ENCLAVE_ROOT_KEY", &t.key_spec)
        .env("ENCLAVE_LISTEN", address.to_string())
        .env("ENCLAVE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start enclave serve");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = r#"{"query":"query Inventory { devices { totalCount } }","operationName":"Inventory"}"#;
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut answer = String::new();
    for _ in 0..200 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
            stream.write_all(request.as_bytes()).await.expect("send");
            stream.read_to_string(&mut answer).await.expect("read");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("server output");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let log = stderr(&output);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let request_line = lines
        .iter()
        .find(|line| line["fields"]["message"] == "graphql request")
        .unwrap_or_else(|| panic!("no request line in {log}"));
    let span = &request_line["span"];
    assert_eq!(span["tenant"], "acme", "{request_line}");
    assert_eq!(span["operation"], "Inventory", "{request_line}");
    assert_eq!(span["outcome"], "ok", "{request_line}");
    assert!(span["request_id"].is_string(), "{request_line}");
    assert_eq!(request_line["fields"]["status"], 200, "{request_line}");
    assert!(request_line["fields"]["duration_us"].is_u64(), "{request_line}");
}

#[tokio::test]
async fn nats_config_prints_one_operator_and_an_account_per_tenant_and_needs_the_edge_key() {
    let scratch = Scratch::new();
    let app = TestApp::new().await;
    app.tenant("acme", &[]).await;
    let url = app.db.url.clone();
    let (_, edge_key) = enclave::edge::keys::EdgeKey::generate().expect("edge key");
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("ENCLAVE_EDGE_KEY", edge_key.as_str()),
    ];
    let first = enclave(scratch.path(), scratch.path(), &vars, &["nats", "config"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let config = stdout(&first);
    assert!(config.contains("resolver: MEMORY"), "{config}");
    let operator = config
        .lines()
        .find_map(|line| line.strip_prefix("operator: "))
        .expect("operator line")
        .to_owned();
    let claims = enclave::nats::jwt::decode(&operator).expect("a verifiable operator JWT");
    // platform and acme, plus the system and enclave accounts.
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM public.nats_accounts WHERE kind = 'tenant'")
            .await,
        2
    );
    let preloaded = config.lines().filter(|line| line.starts_with("  A")).count();
    assert_eq!(preloaded, 4, "{config}");
    // A second run keeps the operator; a full resolver is printed on request.
    let second = enclave(
        scratch.path(),
        scratch.path(),
        &vars,
        &["nats", "config", "--resolver-dir", "/var/lib/nats/jwt"],
    );
    assert!(second.status.success(), "{}", stderr(&second));
    let again = stdout(&second);
    assert!(
        again.contains("type: full") && again.contains("\"/var/lib/nats/jwt\""),
        "{again}"
    );
    let operator_again = again
        .lines()
        .find_map(|line| line.strip_prefix("operator: "))
        .expect("operator line");
    assert_eq!(
        enclave::nats::jwt::decode(operator_again).expect("verifies")["sub"],
        claims["sub"]
    );
    // Without the edge key, which seals the NATS keys, it refuses.
    let refused = enclave(
        scratch.path(),
        scratch.path(),
        &[("DATABASE_URL", url.as_str())],
        &["nats", "config"],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("edge key"), "{}", stderr(&refused));
}

#[tokio::test]
async fn edge_ca_init_prints_the_same_root_each_time_and_tenant_create_gives_a_ca_with_the_key() {
    let db = common::TestDb::new().await;
    db.prepare().await;
    let scratch = Scratch::new();
    let (_, edge_key) = enclave::edge::keys::EdgeKey::generate().expect("edge key");
    let with_key = [("ENCLAVE_EDGE_KEY", edge_key.as_str())];
    let init = ["edge", "ca", "init", "--database-url", db.url.as_str()];
    let first = enclave(scratch.path(), scratch.path(), &with_key, &init);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        stdout(&first)
    );
    let second = enclave(scratch.path(), scratch.path(), &with_key, &init);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&first), stdout(&second), "the root is created once");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.edge_root_cas").await,
        1
    );
    // Without the key that sealed it, nothing starts.
    let (_, other_key) = enclave::edge::keys::EdgeKey::generate().expect("edge key");
    let wrong = enclave(
        scratch.path(),
        scratch.path(),
        &[("ENCLAVE_EDGE_KEY", other_key.as_str())],
        &init,
    );
    assert!(!wrong.status.success());

    let create = |slug: &'static str, vars: &[(&str, &str)]| {
        enclave(
            scratch.path(),
            scratch.path(),
            vars,
            &["tenant", "create", slug, "--database-url", db.url.as_str()],
        )
    };
    let created = create("initech", &with_key);
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM tenant_initech.tenant_cas")
            .await,
        1
    );
    let created = create("hooli", &[]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM tenant_hooli.tenant_cas")
            .await,
        0,
        "without an edge key the CA comes at the next start with one"
    );
}
