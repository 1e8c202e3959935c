//! Load generators: wrk against Enclave's `/graphql`, pgbench against PostgreSQL, each
//! from its own process and reduced to one [`Throughput`].

use std::path::{Path, PathBuf};

use std::process::Command;

use anyhow::{Context as _, bail};

/// One measured run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    pub requests: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx answers and socket errors (wrk), failed transactions (pgbench).
    pub errors: u64,
}

/// How long and how wide every run is.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub connections: u32,
    pub threads: u32,
    pub warmup_secs: u64,
    pub secs: u64,
}

const WRK_SCRIPT: &str = r#"
-- Each request is a random line of the requests file: "<token>\t<json body>".
local entries = {}
local counter = 0

setup = function(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

init = function(args)
  for line in io.lines(args[1]) do
    local token, body = line:match("^([^\t]*)\t(.*)$")
    local headers = { ["Content-Type"] = "application/json" }
    if token ~= "" then headers["Authorization"] = "Bearer " .. token end
    entries[#entries + 1] = wrk.format("POST", "/graphql", headers, body)
  end
  math.randomseed(thread_id * 7919)
end

request = function()
  return entries[math.random(#entries)]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"#;

/// Runs wrk against `url` with requests drawn from `requests` (lines of token, tab, body):
/// a warm-up, then the measured run.
pub fn wrk(url: &str, requests: &Path, shape: Shape, work: &Path) -> anyhow::Result<Throughput> {
    wrk_for(url, requests, shape, work, shape.warmup_secs)?;
    wrk_for(url, requests, shape, work, shape.secs)
}

/// One wrk run of `secs` seconds, without warm-up.
pub fn wrk_for(
    url: &str,
    requests: &Path,
    shape: Shape,
    work: &Path,
    secs: u64,
) -> anyhow::Result<Throughput> {
    let script = work.join("requests.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    let output = Command::new("wrk")
        .arg(format!("-t{}", shape.threads))
        .arg(format!("-c{}", shape.connections))
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(&script)
        .arg(url)
        .arg("--")
        .arg(requests)
        .output()
        .context("cannot run wrk (scripts/bench installs it)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| {
            format!(
                "wrk printed no result: {stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let n: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [requests, duration_us, p50_us, p99_us, errors] = n[..] else {
        bail!("unexpected wrk result: {line}");
    };
    Ok(Throughput {
        requests: requests as u64,
        per_second: requests / (duration_us / 1e6),
        p50_ms: p50_us / 1e3,
        p99_ms: p99_us / 1e3,
        errors: errors as u64,
    })
}

/// Runs pgbench (prepared statements) with `script` against `database_url` as one process
/// of `warmup_secs + secs`, so that the measured backends are the warmed ones (as Enclave's
/// pool is): the per-transaction log gives the transactions that ended in the last `secs`
/// seconds, and their percentiles.
pub fn pgbench(
    database_url: &str,
    script: &str,
    variables: &[(&str, String)],
    shape: Shape,
    work: &Path,
    name: &str,
) -> anyhow::Result<Throughput> {
    let script_path = work.join(format!("{name}.pgbench.sql"));
    std::fs::write(&script_path, script)?;
    let log_prefix = work.join(format!("{name}.pgbench-log"));
    clear_logs(&log_prefix)?;
    let mut command = Command::new("pgbench");
    command
        .args(["-n", "-M", "prepared"])
        .arg(format!("-c{}", shape.connections))
        .arg(format!("-j{}", shape.threads))
        .arg(format!("-T{}", shape.warmup_secs + shape.secs))
        .arg("-f")
        .arg(&script_path)
        .arg("-l")
        .arg(format!("--log-prefix={}", log_prefix.display()));
    for (name, value) in variables {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    command.current_dir(work).arg(database_url);
    let output = command.output().context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let errors = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("number of failed transactions:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let transactions = read_transactions(&log_prefix)?;
    let first_end = transactions.iter().map(|t| t.end_s).fold(f64::INFINITY, f64::min);
    let from = first_end + shape.warmup_secs as f64;
    let mut latencies_us: Vec<f64> = transactions
        .iter()
        .filter(|t| t.end_s >= from)
        .map(|t| t.latency_us)
        .collect();
    let last_end = transactions.iter().map(|t| t.end_s).fold(from, f64::max);
    let measured_secs = (last_end - from).max(1e-3);
    let requests = latencies_us.len() as u64;
    let (p50_ms, p99_ms) = percentiles(&mut latencies_us);
    Ok(Throughput {
        requests,
        per_second: requests as f64 / measured_secs,
        p50_ms,
        p99_ms,
        errors,
    })
}

fn log_files(prefix: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = prefix.parent().context("log prefix without a directory")?;
    let stem = prefix
        .file_name()
        .and_then(|n| n.to_str())
        .context("log prefix")?
        .to_owned();
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{stem}.")))
        })
        .collect())
}

fn clear_logs(prefix: &Path) -> anyhow::Result<()> {
    for file in log_files(prefix)? {
        std::fs::remove_file(file)?;
    }
    Ok(())
}

/// One transaction of pgbench's `-l` log.
struct Transaction {
    /// When it ended, in seconds since the epoch.
    end_s: f64,
    latency_us: f64,
}

/// The transactions of pgbench's `-l` logs: `client_id transaction_no time script_no
/// time_epoch time_us ...`, where `time` is the latency (µs) and the epoch pair its end.
fn read_transactions(prefix: &Path) -> anyhow::Result<Vec<Transaction>> {
    let mut all = Vec::new();
    for file in log_files(prefix)? {
        for line in std::fs::read_to_string(file)?.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [_, _, latency, _, epoch, micros, ..] = fields[..] {
                all.push(Transaction {
                    end_s: epoch.parse::<f64>()? + micros.parse::<f64>()? / 1e6,
                    latency_us: latency.parse()?,
                });
            }
        }
    }
    Ok(all)
}

/// p50 and p99 in milliseconds of latencies in microseconds.
fn percentiles(latencies_us: &mut [f64]) -> (f64, f64) {
    if latencies_us.is_empty() {
        return (0.0, 0.0);
    }
    latencies_us.sort_by(f64::total_cmp);
    let at = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q).round() as usize] / 1e3;
    (at(0.50), at(0.99))
}

/// The runs of one contender in alternating rounds, one per round.
#[derive(Debug, Clone, Default)]
pub struct Series(pub Vec<Throughput>);

impl Series {
    /// The run with the median throughput (its latencies with it).
    pub fn median(&self) -> Throughput {
        let mut runs = self.0.clone();
        runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
        runs.get(runs.len() / 2).copied().unwrap_or_default()
    }

    /// Lowest and highest throughput of the rounds.
    pub fn spread(&self) -> (f64, f64) {
        self.0.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), t| {
            (lo.min(t.per_second), hi.max(t.per_second))
        })
    }

    /// Per round, this series' throughput over `reference`'s in the same round.
    pub fn ratios(&self, reference: &Series) -> Vec<f64> {
        self.0
            .iter()
            .zip(&reference.0)
            .map(|(a, b)| {
                if b.per_second > 0.0 {
                    a.per_second / b.per_second
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// Runs each contender once per round, in turn (a, b, c, a, b, c, ...), `rounds` times, so
/// that a slow moment of the machine falls on every contender alike; returns each
/// contender's runs.
pub fn alternate(
    rounds: usize,
    contenders: &mut [&mut dyn FnMut() -> anyhow::Result<Throughput>],
) -> anyhow::Result<Vec<Series>> {
    let mut series = vec![Series::default(); contenders.len()];
    for _ in 0..rounds {
        for (run, series) in contenders.iter_mut().zip(&mut series) {
            series.0.push(run()?);
        }
    }
    Ok(series)
}
