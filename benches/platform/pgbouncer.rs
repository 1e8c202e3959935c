//! A private PgBouncer in transaction mode in front of the benchmark database, started
//! with `scripts/ensure-pgbouncer` (which installs it when missing) and stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// A running PgBouncer; stopped when dropped.
pub struct Bouncer {
    dir: PathBuf,
    /// `database_url` with PgBouncer's address instead of PostgreSQL's.
    pub url: String,
}

impl Bouncer {
    /// Starts PgBouncer on a free port in front of the server of `database_url`, with
    /// `pool_size` server connections.
    pub fn start(database_url: &str, work: &Path, pool_size: u32) -> anyhow::Result<Self> {
        let (before, rest) = database_url
            .split_once('@')
            .context("the benchmark database URL has no host part")?;
        let (upstream, database) = rest
            .split_once('/')
            .context("the benchmark database URL has no database")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = work.join("pgbouncer");
        let status = Command::new("scripts/ensure-pgbouncer")
            .arg("--start")
            .arg(&dir)
            .arg(port.to_string())
            .arg(upstream)
            .arg(pool_size.to_string())
            .status()
            .context("cannot run scripts/ensure-pgbouncer")?;
        if !status.success() {
            bail!("scripts/ensure-pgbouncer --start failed: {status}");
        }
        Ok(Self {
            dir,
            url: format!("{before}@127.0.0.1:{port}/{database}"),
        })
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = Command::new("scripts/ensure-pgbouncer")
            .arg("--stop")
            .arg(&self.dir)
            .status();
    }
}
