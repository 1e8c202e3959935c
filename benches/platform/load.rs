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

/// Runs pgbench (prepared statements) with `script` against `database_url`: a warm-up,
/// then the measured run, whose per-transaction log gives the percentiles.
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
    let run = |secs: u64, log: bool| -> anyhow::Result<Throughput> {
        let mut command = Command::new("pgbench");
        command
            .args(["-n", "-M", "prepared"])
            .arg(format!("-c{}", shape.connections))
            .arg(format!("-j{}", shape.threads))
            .arg(format!("-T{secs}"))
            .arg("-f")
            .arg(&script_path);
        for (name, value) in variables {
            command.arg("-D").arg(format!("{name}={value}"));
        }
        if log {
            command
                .arg("-l")
                .arg(format!("--log-prefix={}", log_prefix.display()));
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
        let value_after = |prefix: &str| -> anyhow::Result<f64> {
            let line = stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .with_context(|| format!("pgbench printed no `{prefix}`: {stdout}"))?;
            let number = line.split_whitespace().next().unwrap_or_default();
            let number = number.split('/').next().unwrap_or_default();
            Ok(number.parse()?)
        };
        let requests = value_after("number of transactions actually processed:")? as u64;
        let per_second = value_after("tps =")?;
        let errors = value_after("number of failed transactions:").unwrap_or(0.0) as u64;
        Ok(Throughput {
            requests,
            per_second,
            errors,
            ..Throughput::default()
        })
    };
    run(shape.warmup_secs, false)?;
    clear_logs(&log_prefix)?;
    let mut result = run(shape.secs, true)?;
    let mut latencies_us = read_latencies(&log_prefix)?;
    (result.p50_ms, result.p99_ms) = percentiles(&mut latencies_us);
    Ok(result)
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

/// Per-transaction latencies (µs) from pgbench's `-l` logs: the third column.
fn read_latencies(prefix: &Path) -> anyhow::Result<Vec<f64>> {
    let mut all = Vec::new();
    for file in log_files(prefix)? {
        for line in std::fs::read_to_string(file)?.lines() {
            if let Some(latency) = line.split_whitespace().nth(2) {
                all.push(latency.parse()?);
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
