//! Edge ingest: batches of 10,000 metric points (`series`) posted by one component over
//! mutual TLS to the edge listener of `enclave serve`, against `psql \copy` of the very same
//! rows into the same table of the same tenant, one batch after the other on both sides.
//!
//! Both are warmed alike: the reference's warm-up batches run in the same psql session as
//! its timed ones (so its backend is as warm as Enclave's pooled connection), and Enclave
//! gets the same number of warm-up batches. Enclave's figure includes what a component
//! pays: a TLS handshake per batch, JSON, validation, the tenant transaction and the
//! component check.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use diesel_async::SimpleAsyncConnection as _;
use enclave::config::AuthConfig;
use enclave::edge::ca::{self, ComponentKind};
use enclave::tenancy::Installation;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

/// Points per batch (the endpoint's maximum).
pub const POINTS: usize = 10_000;

/// One side's result.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub batches: usize,
    pub elapsed: Duration,
}

impl Rate {
    pub fn points_per_second(&self) -> f64 {
        (self.batches * POINTS) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Both sides.
#[derive(Debug, Clone, Copy)]
pub struct Ingest {
    pub enclave: Rate,
    pub copy: Rate,
}

/// A component certificate of tenant `slug` (recorded as its edge component), with the
/// trust the client needs: the server's chain ends at the same root.
pub struct Component {
    config: rustls::ClientConfig,
    hostname: String,
    device_id: uuid::Uuid,
}

/// Creates the edge CAs (sealed with `auth`'s edge key, as the server will load them) and
/// issues a component certificate of tenant `slug` directly through the library.
pub async fn component(
    installation: &Installation,
    auth: &AuthConfig,
    slug: &str,
    device: uuid::Uuid,
) -> anyhow::Result<Component> {
    let authority = enclave::edge::prepare(installation, auth).await?;
    let mut conn = enclave::db::connect(&installation.database_url).await?;
    conn.batch_execute(&format!("SET search_path TO tenant_{slug}"))
        .await?;
    let tenant_slug = enclave::tenancy::slug::Slug::parse(slug)?;
    let tenant_ca = ca::load_tenant_ca(&authority, &mut conn, &tenant_slug).await?;
    let issued = tenant_ca.issue_component(ComponentKind::Agent, "bench-agent")?;
    conn.batch_execute(&format!(
        "INSERT INTO edge_components (kind, component_id, name, common_name, serial, not_after) \
         VALUES ('agent', 'bench-agent', 'benchmark agent', '{}', '{}', '{}')",
        issued.common_name,
        issued.serial,
        issued.not_after.to_rfc3339()
    ))
    .await?;
    #[derive(diesel::QueryableByName)]
    struct Host {
        #[diesel(sql_type = diesel::sql_types::Text)]
        hostname: String,
    }
    let host: Host = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT hostname FROM devices WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(device),
        &mut conn,
    )
    .await?;
    let chain = tenant_ca.chain_pem();
    let certs = |pem: &str| {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("PEM certificates")
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs(&chain)?.pop().context("root")?)?;
    let key_pem = issued.key_pem.context("a generated key")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs(&issued.certificate_pem)?, key)?;
    Ok(Component {
        config,
        hostname: host.hostname,
        device_id: device,
    })
}

/// The points of batch `n`: one series point per second, distinct across batches.
fn points(n: usize) -> impl Iterator<Item = (String, f64)> {
    (0..POINTS).map(move |i| {
        let second = (n * POINTS + i) as i64;
        let ts = chrono::DateTime::from_timestamp(1_780_000_000 + second, 0).unwrap_or_default();
        (ts.to_rfc3339(), i as f64)
    })
}

/// Posts one batch over a new mutual-TLS connection; fails unless all points are written.
async fn post(component: &Component, edge: &str, body: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tcp = tokio::net::TcpStream::connect(edge).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(component.config.clone()));
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let mut tls = connector.connect(name, tcp).await?;
    let request = format!(
        "POST /edge/v1/metrics HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(request.as_bytes()).await?;
    tls.write_all(body.as_bytes()).await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    if !response.starts_with("HTTP/1.1 200") || !response.contains(&format!("\"written\":{POINTS}")) {
        bail!(
            "edge ingest failed: {}",
            response.lines().last().unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs `warmup` then `batches` batches on each side (Enclave first).
pub async fn measure(
    component: &Component,
    edge: &str,
    database_url: &str,
    slug: &str,
    work: &Path,
    warmup: usize,
    batches: usize,
) -> anyhow::Result<Ingest> {
    let body = |n: usize| {
        let series: Vec<_> = points(n)
            .map(|(ts, value)| {
                json!({"deviceHostname": component.hostname, "name": "bench_enclave", "ts": ts, "value": value})
            })
            .collect();
        json!({ "series": series }).to_string()
    };
    let bodies: Vec<String> = (0..warmup + batches).map(body).collect();
    for body in &bodies[..warmup] {
        post(component, edge, body).await?;
    }
    let started = Instant::now();
    for body in &bodies[warmup..] {
        post(component, edge, body).await?;
    }
    let enclave = Rate {
        batches,
        elapsed: started.elapsed(),
    };

    // The same rows for \copy (another series name, so both sides insert fresh rows).
    let mut script = String::new();
    for n in 0..warmup + batches {
        let file = work.join(format!("ingest-{n}.csv"));
        let mut csv = String::with_capacity(POINTS * 80);
        for (ts, value) in points(n) {
            csv.push_str(&format!("{},bench_copy,{ts},{value},{{}}\n", component.device_id));
        }
        std::fs::write(&file, csv)?;
        if n == warmup {
            script.push_str("SELECT 'START', extract(epoch FROM clock_timestamp());\n");
        }
        script.push_str(&format!(
            "\\copy tenant_{slug}.timeseries_metrics (device_id, name, ts, value, labels) FROM '{}' WITH (FORMAT csv)\n",
            file.display()
        ));
    }
    script.push_str("SELECT 'END', extract(epoch FROM clock_timestamp());\n");
    let script_file = work.join("ingest-copy.sql");
    std::fs::write(&script_file, script)?;
    let output = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database_url,
            "-f",
        ])
        .arg(&script_file)
        .output()
        .context("cannot run psql")?;
    if !output.status.success() {
        bail!("psql \\copy failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mark = |name: &str| -> anyhow::Result<f64> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}|")))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no {name} mark in psql's output"))
    };
    let copy = Rate {
        batches,
        elapsed: Duration::from_secs_f64((mark("END")? - mark("START")?).max(0.0)),
    };
    Ok(Ingest { enclave, copy })
}
