//! Throughput, latency and PostgreSQL backend memory against the number of tenants the
//! load touches: device by id pinned to one tenant, then spread uniformly and Zipf(1.1)
//! over the first 10, 100, 1,000, ... tenants of the fleet. Each point runs on a freshly
//! started server (so its backends meet exactly that many tenants): wrk's warm-up and
//! measured run give the throughput, the backends' private memory is read right after,
//! and a constant-rate run at 70% of that throughput gives the latencies (see `rate`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::load::{self, Shape, Throughput};
use crate::rate::{self, Latencies};
use crate::server::{self, Launch, Server};
use crate::spread::Spread;

/// The Zipf exponent of the skewed spreads.
pub const ZIPF_S: f64 = 1.1;

/// The share of a point's own closed-loop throughput its constant-rate run asks for.
pub const RATE_SHARE: f64 = 0.7;

/// One measured point of the curve.
pub struct Point {
    pub spread: Spread,
    pub throughput: Throughput,
    pub latencies: Latencies,
    /// Private memory (MiB) of each backend the pool held open after the run.
    pub backends_mib: Vec<f64>,
}

impl Point {
    /// Mean private memory per backend (MiB).
    pub fn backend_mean_mib(&self) -> f64 {
        if self.backends_mib.is_empty() {
            0.0
        } else {
            self.backends_mib.iter().sum::<f64>() / self.backends_mib.len() as f64
        }
    }
}

/// The spreads measured for a fleet of `fleet` tenants: pinned, then uniform and Zipf over
/// 10, 100, 1,000 and 10,000 tenants where the fleet has them, and over the whole fleet.
pub fn spreads(fleet: usize) -> Vec<Spread> {
    let mut counts: Vec<usize> = [10, 100, 1_000, 10_000]
        .into_iter()
        .filter(|k| *k < fleet)
        .collect();
    if fleet > 1 {
        counts.push(fleet);
    }
    let mut spreads = vec![Spread::Pinned];
    for tenants in counts {
        spreads.push(Spread::Uniform { tenants });
        spreads.push(Spread::Zipf { tenants, s: ZIPF_S });
    }
    spreads
}

/// Requests of one spread: the wrk file and the same requests in memory for the
/// constant-rate client.
pub struct Requests {
    pub file: PathBuf,
    pub lines: Vec<(String, String)>,
}

/// Measures every spread, each on its own fresh server.
pub async fn measure(
    launch: &Launch<'_>,
    spreads: &[Spread],
    requests: impl Fn(Spread) -> anyhow::Result<Requests>,
    shape: Shape,
    work: &Path,
) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::with_capacity(spreads.len());
    for spread in spreads {
        crate::step(&format!("tenant scaling: device by id, {}", spread.label()));
        let requests = requests(*spread)?;
        let (server, _) = Server::start(launch)?;
        let graphql = server.url("/graphql");
        let throughput = load::wrk(&graphql, &requests.file, shape, work)?;
        if throughput.errors > 0 {
            anyhow::bail!("{}: {} HTTP errors", spread.label(), throughput.errors);
        }
        let backends_mib = server::backend_memory(launch.database_url).await?;
        let latencies = rate::run(
            &server.address,
            "/graphql",
            &requests.lines,
            throughput.per_second * RATE_SHARE,
            shape.connections as usize,
            Duration::from_secs(shape.warmup_secs),
            Duration::from_secs(shape.secs),
        )
        .await?;
        if latencies.errors > 0 {
            anyhow::bail!(
                "{}: {} errors at a constant rate",
                spread.label(),
                latencies.errors
            );
        }
        drop(server);
        points.push(Point {
            spread: *spread,
            throughput,
            latencies,
            backends_mib,
        });
    }
    Ok(points)
}
