//! Job fairness across tenants (issue 15): one tenant floods its queue while every other
//! tenant of the fleet has a single job, all due at the same instant, and `enclave serve`
//! runs its job workers on them.
//!
//! The fleet's own work is drained first (its polling schedules and job schedules make
//! tenants due; the server's workers visit them until no tenant is due), then
//! [`FLOOD`] (smoke: [`SMOKE_FLOOD`]) `onboarding_expiry` jobs are queued for tenant `t1`
//! and one for every other tenant, all due at `T0` and all committed before it (a few
//! dozen tenants per transaction). When every single job has succeeded, the figures are
//! read from the job rows (`run_after`, `locked_at` of the claim, `finished_at` of the
//! completion, all on the workers' clock), the server is stopped and every job this
//! module queued is deleted, so that `--reuse` finds the fleet as it was. A fleet of one
//! tenant has no other tenant to delay: the section then says so and measures nothing.
//!
//! **A round of the workers**: the dispatcher serves the tenant whose work became due
//! earliest, counting a tenant served at `t` as due no earlier than `t`, so between two
//! jobs of one tenant every other tenant with work due gets one. A round is that: one job
//! claimed of each of the D tenants with due work, shared by the W workers. Within one
//! round the flooding tenant is claimed once; while the round's last jobs are still
//! running, the workers that finished theirs may take at most one more job each of the
//! flooding tenant (nothing else is due). So "the flooding tenant delays no single job by
//! more than one round" reads: **the flooding tenant completes at most W jobs before the
//! last other tenant's job completes**, which is what the summary's "met" is computed from.
//! The claims are reported too: the flooding tenant's claims before the last single job's
//! claim, one in the round plus at most one per other worker that looked while the last
//! single tenants were being picked by the others (the dispatcher skips rows another
//! pick holds). Idle workers look for work every second (`WorkerOptions::idle_wait`), so
//! the delays include up to a second before the first look.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection as _};

use crate::fleet;
use crate::report::Figures;
use crate::server::{Launch, Server};

/// Jobs the flooding tenant queues (the issue's figure), and in a smoke run.
pub const FLOOD: usize = 10_000;
pub const SMOKE_FLOOD: usize = 200;
/// Workers the server runs for the measurement, and in a smoke run.
const WORKERS: usize = 4;
const SMOKE_WORKERS: usize = 2;
/// The payload that marks this module's jobs (the kind ignores its payload).
const MARKER: &str = r#"{"bench": "fairness"}"#;
/// Active tenants with work due at `$1`, from the due-index.
const DUE_TENANTS: &str = "SELECT count(*) AS n FROM public.job_due d \
    JOIN public.tenants t ON t.id = d.tenant_id AND t.status = 'active' WHERE d.due_at <= $1";

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Fairness {
    /// Tenants in the fleet, and those with work due at `T0` (D).
    pub tenants: usize,
    pub due_tenants: i64,
    /// Workers of the server (W).
    pub workers: usize,
    /// Jobs the flooding tenant queued.
    pub flood: usize,
    /// Due → completion of each other tenant's single job, sorted.
    pub delays: Vec<Duration>,
    /// Jobs of the flooding tenant completed before the last single job completed.
    pub flood_completed_before_last: i64,
    /// Jobs of the flooding tenant claimed before the last single job was claimed.
    pub flood_claimed_before_last: i64,
    /// Jobs of this module (single and flooding) completed by then.
    pub completed_by_last: i64,
}

impl Fairness {
    /// The delay at quantile `q` (nearest rank).
    fn quantile(&self, q: f64) -> Duration {
        let n = self.delays.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.delays[rank - 1]
    }

    /// The bound of one round for the flooding tenant: one job per worker.
    pub fn round_bound(&self) -> i64 {
        self.workers as i64
    }

    pub fn met(&self) -> bool {
        !self.delays.is_empty() && self.flood_completed_before_last <= self.round_bound()
    }
}

/// Runs the measurement (see the module doc) against the fleet of `tenants` tenants.
pub async fn measure(launch: &Launch<'_>, tenants: usize, smoke: bool) -> anyhow::Result<Option<Fairness>> {
    if tenants < 2 {
        return Ok(None);
    }
    let (flood, workers) = if smoke {
        (SMOKE_FLOOD, SMOKE_WORKERS)
    } else {
        (FLOOD, WORKERS)
    };
    let mut conn = enclave::db::connect(launch.database_url).await?;
    // Leftovers of an interrupted run.
    remove_jobs(&mut conn, tenants).await?;
    let mut env = launch.env.to_vec();
    env.push(("ENCLAVE_WORKERS", workers.to_string()));
    let (server, _) = Server::start(&Launch { env: &env, ..*launch })?;
    let measured = run(&mut conn, tenants, flood, workers, smoke).await;
    drop(server);
    remove_jobs(&mut conn, tenants).await?;
    measured.map(Some)
}

async fn run(
    conn: &mut AsyncPgConnection,
    tenants: usize,
    flood: usize,
    workers: usize,
    smoke: bool,
) -> anyhow::Result<Fairness> {
    let patience = if smoke {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(900)
    };
    drain(conn, patience).await?;
    // Every job due at T0, queued before T0 (a batch of tenants per transaction: one
    // transaction over the whole fleet would hold more locks than PostgreSQL's lock table).
    let margin = Duration::from_secs(3) + Duration::from_millis(5 * tenants as u64);
    // Whole milliseconds: the text below and the bound parameters must name the same
    // instant at PostgreSQL's precision (microseconds).
    let t0 = Utc::now() + chrono::Duration::from_std(margin)?;
    let t0 = DateTime::from_timestamp_millis(t0.timestamp_millis()).context("T0 out of range")?;
    for batch in batches(1..=tenants) {
        let sql = batch
            .iter()
            .map(|&i| {
                format!(
                    "INSERT INTO tenant_{slug}.jobs (kind, payload, run_after) \
                     SELECT 'onboarding_expiry', '{MARKER}', '{t0}' FROM generate_series(1, {rows});",
                    slug = fleet::slug(i),
                    t0 = t0.to_rfc3339(),
                    rows = if i == 1 { flood } else { 1 },
                )
            })
            .collect::<String>();
        conn.batch_execute(&sql).await.context("queueing the jobs")?;
    }
    if Utc::now() >= t0 {
        bail!("queueing the jobs took longer than their {margin:?} margin");
    }
    let due_tenants = count(conn, DUE_TENANTS, t0).await?;
    // Wait until every single job succeeded, asking only the tenants not done yet.
    let mut pending: Vec<usize> = (2..=tenants).collect();
    let mut done: Vec<Single> = Vec::new();
    let started = Instant::now();
    let pause = Duration::from_millis(if tenants > 100 { 1000 } else { 250 });
    while !pending.is_empty() {
        if started.elapsed() > patience {
            bail!(
                "only {} of {} single jobs succeeded within {patience:?}",
                done.len(),
                tenants - 1
            );
        }
        tokio::time::sleep(pause).await;
        let mut still = Vec::new();
        for batch in batches(pending.iter().copied()) {
            let sql = batch
                .iter()
                .map(|&i| {
                    format!(
                        "SELECT {i}::bigint AS tenant, run_after, locked_at, finished_at \
                         FROM tenant_{}.jobs WHERE payload @> '{MARKER}' AND status = 'succeeded'",
                        fleet::slug(i)
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let rows: Vec<Single> = diesel::sql_query(sql).load(conn).await?;
            still.extend(
                batch
                    .iter()
                    .filter(|&&i| !rows.iter().any(|row| row.tenant == i as i64)),
            );
            done.extend(rows);
        }
        pending = still;
    }
    let last_finished = done.iter().filter_map(|s| s.finished_at).max();
    let last_claimed = done.iter().filter_map(|s| s.locked_at).max();
    let (Some(last_finished), Some(last_claimed)) = (last_finished, last_claimed) else {
        bail!("the single jobs have no claim or completion time");
    };
    let mut delays = done
        .iter()
        .filter_map(|s| (s.finished_at? - s.run_after).to_std().ok())
        .collect::<Vec<_>>();
    delays.sort();
    let flooding = format!("tenant_{}.jobs", fleet::slug(1));
    let before = |column: &str| {
        format!("SELECT count(*) AS n FROM {flooding} WHERE payload @> '{MARKER}' AND {column} < $1")
    };
    let flood_completed_before_last = count(conn, &before("finished_at"), last_finished).await?;
    let flood_claimed_before_last = count(conn, &before("locked_at"), last_claimed).await?;
    Ok(Fairness {
        tenants,
        due_tenants,
        workers,
        flood,
        delays,
        flood_completed_before_last,
        flood_claimed_before_last,
        completed_by_last: flood_completed_before_last + (tenants as i64 - 1),
    })
}

#[derive(QueryableByName)]
struct Single {
    #[diesel(sql_type = BigInt)]
    tenant: i64,
    #[diesel(sql_type = Timestamptz)]
    run_after: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    locked_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The `n` of a `SELECT count(*) AS n` whose one parameter is a time.
async fn count(conn: &mut AsyncPgConnection, sql: &str, at: DateTime<Utc>) -> anyhow::Result<i64> {
    let row: Count = diesel::sql_query(sql)
        .bind::<Timestamptz, _>(at)
        .get_result(conn)
        .await?;
    Ok(row.n)
}

/// Waits until the server's workers have served every tenant whose work is due (the
/// fleet's schedules), so that the measurement starts from an idle queue.
async fn drain(conn: &mut AsyncPgConnection, patience: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let due = count(conn, DUE_TENANTS, Utc::now()).await?;
        if due == 0 {
            return Ok(());
        }
        if started.elapsed() > patience {
            bail!("{due} tenants still had due work after {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes every job this module queued.
async fn remove_jobs(conn: &mut AsyncPgConnection, tenants: usize) -> anyhow::Result<()> {
    for batch in batches(1..=tenants) {
        let sql = batch
            .iter()
            .map(|&i| {
                format!(
                    "DELETE FROM tenant_{}.jobs WHERE payload @> '{MARKER}';",
                    fleet::slug(i)
                )
            })
            .collect::<String>();
        conn.batch_execute(&sql)
            .await
            .context("removing the benchmark's jobs")?;
    }
    Ok(())
}

/// Tenants per statement batch (one transaction): a few dozen tenants' tables and
/// indexes stay well inside PostgreSQL's lock table.
const BATCH: usize = 25;

fn batches(tenants: impl Iterator<Item = usize>) -> Vec<Vec<usize>> {
    let all: Vec<usize> = tenants.collect();
    all.chunks(BATCH).map(<[usize]>::to_vec).collect()
}

/// `10000` → `10,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Its summary row and section.
pub fn report(figures: &mut Figures, fairness: &Option<Fairness>) {
    let Some(fairness) = fairness else {
        figures.section(
            75,
            "## 10. Job fairness across tenants\n\nNot measured: the fleet has one tenant.\n",
        );
        return;
    };
    let (median, p99, max) = (
        fairness.quantile(0.5),
        fairness.quantile(0.99),
        fairness.quantile(1.0),
    );
    let bound = fairness.round_bound();
    figures.target(
        &format!(
            "10. jobs: 1 tenant with {} queued, {} with 1 each",
            thousands(fairness.flood),
            thousands(fairness.tenants - 1)
        ),
        format!(
            "{} of its jobs before the last other one; delay p99 {}",
            fairness.flood_completed_before_last,
            ms(p99)
        ),
        format!("one round: {bound} (1 per worker)"),
        format!("{}/{bound}", fairness.flood_completed_before_last),
        "≤ one round",
        fairness.met(),
    );
    let rate = fairness.completed_by_last as f64 / max.as_secs_f64().max(1e-9);
    let text = format!(
        "## 10. Job fairness across tenants\n\n\
         Tenant `t1` queues {flood} `onboarding_expiry` jobs and each of the other {others} tenants one, all \
         due at the same instant and committed before it; `enclave serve` runs {w} job workers (the fleet's own \
         due work drained first). A round of the workers is one job claimed of each tenant with due work \
         ({d} tenants), shared by the {w} workers: within it the flooding tenant is claimed once, and workers \
         left without other work may finish one more job of it each while the round's last jobs run, so the \
         target is at most {w} (one per worker) of its jobs completed before the last other tenant's job. \
         Idle workers look for work every second, so the delays include up to a second before the first \
         look.\n\n\
         | | Figure |\n| --- | ---: |\n\
         | Delay from due to completion of the single jobs, median | {median} |\n\
         | … p99 | {p99} |\n\
         | … max (the round) | {max} |\n\
         | Flooding tenant's jobs completed before the last single job completed | {completed} |\n\
         | Flooding tenant's jobs claimed before the last single job was claimed | {claimed} |\n\
         | Jobs completed during the round (single and flooding) | {total} |\n\
         | Jobs per second during the round | {rate:.0} |\n",
        flood = thousands(fairness.flood),
        others = thousands(fairness.tenants - 1),
        w = fairness.workers,
        d = fairness.due_tenants,
        median = ms(median),
        p99 = ms(p99),
        max = ms(max),
        completed = fairness.flood_completed_before_last,
        claimed = fairness.flood_claimed_before_last,
        total = fairness.completed_by_last,
    );
    figures.section(75, &text);
}
