//! The peer a user of this stack would pick instead of Enclave: PostGraphile v4, the
//! version pinned in `benches/peer/package-lock.json` (installed with `npm ci`, nothing
//! downloaded at run time), serving one tenant schema of the bench data. It runs as the
//! issue that asked for it tried it: connected as the database owner, with no
//! authentication and no transaction of its own, and with `--cluster-workers` = CPUs so
//! that it uses the cores Enclave uses.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

/// A running PostGraphile (its master process and its workers), stopped when dropped.
pub struct Peer {
    child: Child,
    pub address: String,
    pub version: String,
    pub workers: usize,
}

/// The directory with the peer's `package.json` and lock file.
fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer")
}

/// The same nested list as Enclave's `devices(first: 50)`: a page of devices ordered by host
/// name with each one's first page of interfaces.
pub const LIST_QUERY: &str = "{ allDevices(first: 50, orderBy: [HOSTNAME_ASC, ID_ASC]) { edges { node { id hostname ip status interfacesByDeviceId(first: 50, orderBy: [NAME_ASC, ID_ASC]) { nodes { name ifIndex operStatus } } } } } }";

/// The same device by id as Enclave's `device(id:)`, with its first page of interfaces.
pub const DEVICE_QUERY: &str = "query($id: UUID!) { deviceById(id: $id) { id hostname ip status interfacesByDeviceId(first: 50, orderBy: [NAME_ASC, ID_ASC]) { nodes { name ifIndex operStatus } } } }";

/// A request body for the device `id` (a UUID).
pub fn device_request(id: &str) -> serde_json::Value {
    json!({ "query": DEVICE_QUERY, "variables": { "id": id } })
}

impl Peer {
    /// Installs the pinned package (once), starts it on a free port serving `schema` and
    /// waits until it answers a GraphQL request.
    pub fn start(database_url: &str, schema: &str) -> anyhow::Result<Self> {
        let dir = peer_dir();
        if !dir.join("node_modules/.bin/postgraphile").exists() {
            let status = Command::new("npm")
                .args([
                    "ci",
                    "--no-audit",
                    "--no-fund",
                    "--ignore-scripts",
                    "--loglevel=error",
                ])
                .current_dir(&dir)
                .status()
                .context("cannot run npm (scripts/bench installs Node.js and npm)")?;
            if !status.success() {
                bail!("npm ci in {} failed", dir.display());
            }
        }
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(dir.join("node_modules/.bin/postgraphile"));
        command
            .args(["--connection", database_url, "--schema", schema])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--cluster-workers", &workers.to_string()])
            .arg("--disable-query-log")
            .env("NODE_ENV", "production")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that the workers stop with the master.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().context("cannot start postgraphile")?;
        let mut peer = Self {
            child,
            address,
            version: version(&dir)?,
            workers,
        };
        let started = Instant::now();
        loop {
            if let Ok(body) = peer.post(&json!({ "query": "{ allDevices(first: 1) { totalCount } }" }))
                && body.contains("totalCount")
            {
                return Ok(peer);
            }
            if let Some(status) = peer.child.try_wait()? {
                bail!("postgraphile exited during startup: {status}");
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("postgraphile did not answer within 5 minutes");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.address)
    }

    /// POSTs one GraphQL request; returns the body (used to check the queries return data).
    pub fn post(&self, body: &serde_json::Value) -> anyhow::Result<String> {
        let body = body.to_string();
        let mut stream = TcpStream::connect(&self.address)?;
        write!(
            stream,
            "POST /graphql HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The whole group: the master and its cluster workers.
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn version(dir: &Path) -> anyhow::Result<String> {
    let manifest = std::fs::read_to_string(dir.join("node_modules/postgraphile/package.json"))?;
    let manifest: serde_json::Value = serde_json::from_str(&manifest)?;
    Ok(manifest["version"].as_str().unwrap_or("unknown").to_owned())
}
