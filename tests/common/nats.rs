//! NATS test helpers: a private `nats-server` in operator mode (started per test on a free
//! port with the configuration `enclave nats config` prints, restartable on the same port),
//! onboarding packages downloaded through the router (their `nats.creds` connect a
//! component), and bounded waits on clients, subscribers and the database.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use super::app::TestApp;

/// A `nats-server` of its own, killed (and its directory removed) on drop.
pub struct NatsServer {
    child: Child,
    dir: PathBuf,
    pub url: String,
    pub port: u16,
    binary: &'static str,
}

impl NatsServer {
    /// A new directory for a server (removed with it).
    pub fn new_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("enclave-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// Starts `nats-server` in `dir` with `config` (what `enclave nats config` prints) on a
    /// free port.
    pub fn start(dir: PathBuf, config: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let file = dir.join("nats.conf");
        std::fs::write(&file, format!("listen: 127.0.0.1:{port}\n{config}")).expect("config file");
        let binary = ["nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|candidate| {
                Command::new(candidate)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success())
            })
            .expect("nats-server is installed (scripts/ensure-nats)");
        let server = Self {
            child: Self::spawn(binary, &dir),
            dir,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            binary,
        };
        server.wait_listening();
        server
    }

    fn spawn(binary: &str, dir: &std::path::Path) -> Child {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("nats.log"))
            .expect("log file");
        Command::new(binary)
            .arg("-c")
            .arg(dir.join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts")
    }

    fn wait_listening(&self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not listen: {}", self.log());
    }

    /// Stops the server and starts it again with the same configuration file (and port).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.binary, &self.dir);
        self.wait_listening();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client connected with a package's `nats.creds`, and the server errors it is told.
pub async fn connect(url: &str, creds: &str) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (errors, told) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_credentials(creds)
        .expect("creds parse")
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    let _ = errors.send(error.to_string());
                }
            }
        })
        .connect(url)
        .await
        .expect("connects with its creds");
    (client, told)
}

/// The next server error, within a generous bound (it fails the test when none comes).
pub async fn next_error(told: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), told.recv())
        .await
        .expect("the server reports an error")
        .expect("error channel open")
}

/// Waits (bounded) until `sql` counts `want`.
pub async fn wait_count(app: &TestApp, sql: &str, want: i64) {
    for _ in 0..200 {
        if app.db.count(sql).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{sql} never counted {want}");
}

/// The next message of `subscriber` as (subject, JSON), within a generous bound.
pub async fn next_message(subscriber: &mut async_nats::Subscriber) -> (String, Value) {
    let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
        .await
        .expect("a message arrives")
        .expect("subscription open");
    (
        message.subject.to_string(),
        serde_json::from_slice(&message.payload).expect("JSON payload"),
    )
}

/// Waits (bounded) until `client` is connected (again), then makes a round trip, so that
/// what it re-subscribed on reconnection is in place at the server.
pub async fn wait_connected(client: &async_nats::Client) {
    for _ in 0..400 {
        if client.connection_state() == async_nats::connection::State::Connected {
            client.flush().await.expect("flush once connected");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never connected again");
}

/// Waits (bounded) until `client` is no longer connected.
pub async fn wait_disconnected(client: &async_nats::Client) {
    for _ in 0..200 {
        if client.connection_state() != async_nats::connection::State::Connected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still connected");
}

impl NatsServer {
    /// A server configured from `app`'s operator and accounts (NATS must be prepared), with
    /// the MEMORY resolver, or the full resolver (in its directory) when `full`.
    pub async fn for_app(app: &TestApp, full: bool) -> Self {
        let authority = app.installation.nats.clone().expect("NATS prepared");
        let dir = Self::new_dir();
        let jwt_dir = dir.join("jwt").display().to_string();
        let config = authority
            .server_config(&mut app.db.conn().await, full.then_some(jwt_dir.as_str()))
            .await
            .expect("server config");
        assert!(config.contains("system_account:") && config.contains("resolver_preload"));
        assert_eq!(config.contains("resolver: MEMORY"), !full, "{config}");
        Self::start(dir, &config)
    }
}

/// Creates an edge site named `name` as the bearer of `token`; returns its id.
pub async fn edge_site(app: &TestApp, token: &str, name: &str) -> String {
    let site = app
        .gql(
            Some(token),
            "mutation($name: String!) { createEdgeSite(input: {name: $name}) { edgeSite { id } } }",
            json!({ "name": name }),
        )
        .await;
    site["data"]["createEdgeSite"]["edgeSite"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("edge site: {site}"))
        .to_owned()
}

/// Creates an onboarding package of `kind` (POLLER, AGENT) on `site` as the bearer of
/// `token` and downloads it; returns its files (`nats.creds`, `config.json`, …).
pub async fn package(app: &TestApp, token: &str, site: &str, kind: &str) -> BTreeMap<String, String> {
    let created = app
        .gql(
            Some(token),
            "mutation($site: ID!, $kind: EdgeComponentKind!) { \
             createOnboardingPackage(input: {kind: $kind, name: \"core\", edgeSiteId: $site}) { \
             downloadToken } }",
            json!({ "site": site, "kind": kind }),
        )
        .await;
    let download = created["data"]["createOnboardingPackage"]["downloadToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    let request = Request::get(format!("/onboarding/{download}"))
        .body(Body::empty())
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut contents = String::new();
        entry.read_to_string(&mut contents).expect("UTF-8");
        files.insert(name, contents);
    }
    files
}
