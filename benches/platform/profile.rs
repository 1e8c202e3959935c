//! Where the time goes: a system-wide CPU profile (`perf record -e cpu-clock`, sampling
//! every process on the machine) taken while wrk drives one scenario, reduced to each
//! process's share of the CPU and its hottest functions.
//!
//! `cpu-clock` is a software event, so it works on virtual machines that expose no hardware
//! counters. Without a usable perf the profile is skipped and the report says why.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Samples per second and per CPU.
const FREQUENCY: u32 = 499;

/// Who a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Enclave,
    Postgres,
    LoadGenerator,
    Idle,
    Other,
}

impl Process {
    pub fn name(self) -> &'static str {
        match self {
            Process::Enclave => "enclave (server)",
            Process::Postgres => "postgres (backends)",
            Process::LoadGenerator => "wrk (load)",
            Process::Idle => "idle",
            Process::Other => "other",
        }
    }
}

/// One sampled function.
#[derive(Debug, Clone)]
pub struct Hot {
    pub process: Process,
    pub symbol: String,
    /// Share of all samples, in percent.
    pub percent: f64,
}

/// A reduced profile.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Share of all samples per process, in percent.
    pub by_process: Vec<(Process, f64)>,
    /// Enclave's samples grouped by where the code comes from (crate, libc, kernel).
    pub enclave_by_origin: Vec<(String, f64)>,
    /// The hottest functions, hottest first.
    pub hottest: Vec<Hot>,
}

impl Profile {
    pub fn share(&self, process: Process) -> f64 {
        self.by_process
            .iter()
            .find(|(p, _)| *p == process)
            .map_or(0.0, |(_, share)| *share)
    }

    pub fn hottest_of(&self, process: Process, n: usize) -> impl Iterator<Item = &Hot> {
        self.hottest
            .iter()
            .filter(move |hot| hot.process == process)
            .take(n)
    }
}

/// Records every CPU for `secs` while `load` runs (it should run as long), then reduces the
/// samples; `server_pid` tells Enclave's samples apart (its threads must still run).
pub fn record<T>(
    work: &Path,
    name: &str,
    secs: u64,
    server_pid: u32,
    load: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Profile)> {
    let data = work.join(format!("{name}.perf.data"));
    let perf = Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-a", "-F"])
        .arg(FREQUENCY.to_string())
        .arg("-o")
        .arg(&data)
        .args(["--", "sleep"])
        .arg(secs.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run perf")?;
    let loaded = load();
    let recorded = perf.wait_with_output()?;
    let loaded = loaded?;
    if !recorded.status.success() {
        bail!(
            "perf record failed: {}",
            String::from_utf8_lossy(&recorded.stderr).trim()
        );
    }
    let report = Command::new("perf")
        .arg("report")
        .arg("-i")
        .arg(&data)
        .args([
            "--stdio",
            "--no-children",
            "--sort",
            "pid,dso,sym",
            "-g",
            "none",
            // Every line, so that the shares of the processes add up.
            "--percent-limit",
            "0",
            "-t",
            "\t",
        ])
        .output()
        .context("cannot run perf report")?;
    if !report.status.success() {
        bail!(
            "perf report failed: {}",
            String::from_utf8_lossy(&report.stderr).trim()
        );
    }
    // perf reports threads: the server's are the tasks of its process.
    let server_threads = std::fs::read_dir(format!("/proc/{server_pid}/task"))?
        .filter_map(|task| task.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    Ok((
        loaded,
        reduce(&String::from_utf8_lossy(&report.stdout), &server_threads),
    ))
}

/// Reduces `perf report --sort pid,dso,sym -t '\t'` lines (whose "pid" is a thread id).
fn reduce(report: &str, server_threads: &HashSet<u32>) -> Profile {
    let mut by_process: HashMap<Process, f64> = HashMap::new();
    let mut by_origin: HashMap<String, f64> = HashMap::new();
    let mut hot: HashMap<(Process, String), f64> = HashMap::new();
    for line in report.lines().filter(|line| !line.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        let [percent, pid_comm, dso, symbol] = fields[..] else {
            continue;
        };
        let Some(Ok(percent)) = percent.strip_suffix('%').map(str::parse::<f64>) else {
            continue;
        };
        let (thread, comm) = pid_comm.split_once(':').unwrap_or(("", pid_comm));
        let process = match comm {
            _ if thread.parse().is_ok_and(|t| server_threads.contains(&t)) => Process::Enclave,
            "postgres" => Process::Postgres,
            "wrk" => Process::LoadGenerator,
            "swapper" => Process::Idle,
            _ => Process::Other,
        };
        let kernel = symbol.starts_with("[k]");
        let symbol = symbol
            .trim_start_matches("[k]")
            .trim_start_matches("[.]")
            .trim()
            .to_owned();
        *by_process.entry(process).or_default() += percent;
        if process == Process::Enclave {
            *by_origin.entry(origin(dso, &symbol, kernel)).or_default() += percent;
        }
        if process != Process::Idle {
            let label = if kernel {
                format!("{symbol} (kernel)")
            } else {
                symbol
            };
            *hot.entry((process, label)).or_default() += percent;
        }
    }
    Profile {
        by_process: sorted(by_process),
        enclave_by_origin: sorted(by_origin),
        hottest: sorted(hot)
            .into_iter()
            .map(|((process, symbol), percent)| Hot {
                process,
                symbol,
                percent,
            })
            .collect(),
    }
}

/// The entries of `map`, largest share first.
fn sorted<K>(map: HashMap<K, f64>) -> Vec<(K, f64)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| b.1.total_cmp(&a.1));
    entries
}

/// Where a function of the server comes from: the kernel, a C library, or the Rust crate
/// that its (demangled) path starts with, looking through `<T as Trait>` and generic
/// wrappers of the standard library for the first crate that is not `core`/`alloc`/`std`.
fn origin(dso: &str, symbol: &str, kernel: bool) -> String {
    if kernel || dso.starts_with("[kernel") {
        return "kernel (network, scheduling)".to_owned();
    }
    if dso.starts_with("libc") || dso.starts_with("ld-linux") || dso.starts_with("libm") {
        return "libc (memcpy, malloc)".to_owned();
    }
    let mut crates = symbol
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter_map(|segment| segment.split_once("::").map(|(head, _)| head))
        .filter(|head| !head.is_empty());
    let first = crates.clone().next();
    crates
        .find(|head| !matches!(*head, "core" | "alloc" | "std"))
        .or(first)
        .map_or_else(|| "other".to_owned(), str::to_owned)
}
