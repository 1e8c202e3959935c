//! The Enclave server under test: its own process (`enclave serve`, the binary Cargo built
//! next to this benchmark), its `/metrics`, and the memory of it and its PostgreSQL
//! backends read from `/proc`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use diesel_async::RunQueryDsl;

/// A running `enclave serve`, stopped when dropped.
pub struct Server {
    child: Child,
    pub address: String,
}

/// The token the benchmarked server serves `/metrics` to.
const METRICS_TOKEN: &str = "bench-metrics";

/// How to start it.
pub struct Launch<'a> {
    pub database_url: &'a str,
    pub root_key: &'a str,
    pub pool_size: u32,
    pub tenants_per_connection: u32,
    /// The edge key and the edge listener's address, to serve the edge endpoint.
    pub edge: Option<(&'a str, &'a str)>,
    /// More environment for the server (`ENCLAVE_DIRECT_DATABASE_URL`, ...).
    pub env: &'a [(&'a str, String)],
}

impl Server {
    /// Starts the server and waits until `/readyz` answers 200; returns with the startup
    /// time.
    pub fn start(launch: &Launch<'_>) -> anyhow::Result<(Self, Duration)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let address = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let mut command = Command::new(env!("CARGO_BIN_EXE_enclave"));
        if let Some((key, listen)) = launch.edge {
            command
                .env("ENCLAVE_EDGE_KEY", key)
                .env("ENCLAVE_EDGE_LISTEN", listen);
        }
        let child = command
            .arg("serve")
            .env("DATABASE_URL", launch.database_url)
            .env("ENCLAVE_ROOT_KEY", launch.root_key)
            .env("ENCLAVE_LISTEN", &address)
            .env("ENCLAVE_POOL_SIZE", launch.pool_size.to_string())
            .env(
                "ENCLAVE_POOL_TENANTS_PER_CONNECTION",
                launch.tenants_per_connection.to_string(),
            )
            // `/metrics` is read with this token (it is off without one).
            .env("ENCLAVE_METRICS_TOKEN", METRICS_TOKEN)
            // The pinned-tenant reference sends every request to one tenant: let it use the
            // whole pool, as before the per-tenant share existed.
            .env("ENCLAVE_POOL_TENANT_SHARE", "100")
            // No job workers: the scheduled jobs every tenant gets (retention, expiry...)
            // would run during the measured seconds and take the pool's connections.
            .env("ENCLAVE_WORKERS", "0")
            .env("RUST_LOG", "warn")
            // Last, so that it may override the above (`DATABASE_URL` through a pooler).
            .envs(launch.env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start enclave serve")?;
        let mut server = Self { child, address };
        loop {
            if let Ok((status, _)) = server.get("/readyz")
                && status == 200
            {
                return Ok((server, started.elapsed()));
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("enclave serve exited during startup: {status}");
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("enclave serve did not become ready within 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A plain HTTP/1.0 GET: status and body.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = TcpStream::connect(&self.address)?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {METRICS_TOKEN}\r\n\r\n",
            self.address
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no HTTP status")?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// A counter or gauge from `/metrics` (summed over its label sets when `labels` is
    /// empty).
    pub fn metric(&self, name: &str, labels: &str) -> anyhow::Result<f64> {
        let (_, body) = self.get("/metrics")?;
        let prefix = format!("{name}{labels} ");
        let values: Vec<f64> = body
            .lines()
            .filter(|l| l.starts_with(&prefix) || (labels.is_empty() && l.starts_with(&format!("{name}{{"))))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        if values.is_empty() {
            bail!("/metrics has no {name}{labels}");
        }
        Ok(values.iter().sum())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, `RssAnon`...), in MiB.
pub fn proc_status_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("/proc/{pid}/status has no {field}"))?;
    Ok(kib / 1024.0)
}

/// Private memory (`RssAnon`, MiB) of each PostgreSQL backend Enclave's pool holds open.
pub async fn backend_memory(database_url: &str) -> anyhow::Result<Vec<f64>> {
    #[derive(diesel::QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let mut conn = enclave::db::connect(database_url).await?;
    let backends: Vec<Backend> = diesel::sql_query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = $1 AND pid <> pg_backend_pid() AND query NOT LIKE 'LISTEN%'",
    )
    .bind::<diesel::sql_types::Text, _>(enclave::db::APPLICATION_NAME)
    .load(&mut conn)
    .await?;
    backends
        .iter()
        .filter_map(|b| u32::try_from(b.pid).ok())
        .map(|pid| proc_status_mib(pid, "RssAnon"))
        .collect()
}
