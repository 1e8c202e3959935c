//! A private PostgreSQL cluster for fault tests that must stop, start and restart the
//! server (the shared test server is never restarted: other tests run against it).
//!
//! `initdb` into a temporary directory, `pg_ctl start` on a free port (TCP on 127.0.0.1
//! only, trust authentication, no fsync), stopped and removed on drop. The server binaries
//! are found through `ENCLAVE_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`
//! (Debian's layout), else `PATH`. Run as root (CI), the cluster belongs to the `postgres`
//! system user, as `initdb` refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// See the module doc.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

/// The directory holding `initdb` and `pg_ctl`, if any.
fn server_binaries() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("ENCLAVE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Cluster {
    /// A running private cluster, or `None` (with the reason printed) when the PostgreSQL
    /// server binaries are not installed.
    pub fn start() -> Option<Self> {
        let Some(bin) = server_binaries() else {
            eprintln!(
                "SKIPPED: the PostgreSQL server binaries (initdb, pg_ctl) are not installed; \
                 set ENCLAVE_PG_BIN or install postgresql (scripts/ensure-postgres)"
            );
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "enclave-cluster-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&dir));
        }
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            cluster.port,
            cluster.dir.display()
        );
        let log = cluster.dir.join("server.log").display().to_string();
        cluster.pg_ctl(&["start", "-w", "-t", "60", "-o", &options, "-l", &log]);
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs a server binary (as `postgres` when we are root); panics when it fails.
    fn pg(&self, program: &str, args: &[&str]) {
        let binary = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        };
        command.args(args).current_dir(&self.dir);
        run(&mut command);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.pg("pg_ctl", &all);
    }

    /// URL of database `name` on this cluster as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// `pg_ctl stop -m fast`: every backend is terminated, the server is down on return.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-w", "-m", "fast"]);
    }

    /// `pg_ctl start` with the options of the first start (`postmaster.opts`).
    pub fn start_again(&self) {
        let log = self.dir.join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(&["start", "-w", "-t", "60", "-o", &options, "-l", &log]);
    }

    /// `pg_ctl restart -m fast`: down and up again on return.
    pub fn restart(&self) {
        // `-l` again: without it the new server would write to (and hold) our pipes.
        let log = self.dir.join("server.log").display().to_string();
        self.pg_ctl(&["restart", "-w", "-t", "60", "-m", "fast", "-l", &log]);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let binary = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        };
        let _ = command
            .args(["-D", &data, "stop", "-w", "-m", "immediate"])
            .current_dir(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
