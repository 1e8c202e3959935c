//! BENCHMARKS.md: the machine, the versions, and for every scenario the figure, its
//! reference from the same run, the ratio and the target. The commentary (profiles,
//! explanations of misses) lives in `benches/platform/analysis.md` and is appended as is.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::fleet::{Provisioned, ProvisioningReference};
use crate::load::{Series, Shape, Throughput};
use crate::profile::{Process, Profile};
use crate::rate::Latencies;
use crate::scaling::Point;
use crate::spread::Spread;

/// Memory figures with and without the tenants-per-connection bound.
pub struct Memory {
    pub bound: u32,
    pub bounded_throughput: Throughput,
    pub bounded_rss_mib: f64,
    pub bounded_backends_mib: Vec<f64>,
    pub bounded_connections_opened: f64,
    pub unbounded_throughput: Throughput,
    pub unbounded_rss_mib: f64,
    pub unbounded_backends_mib: Vec<f64>,
}

/// Everything one run measured, rendered by [`Figures::render`].
pub struct Figures {
    tenants: usize,
    devices: u32,
    shape: Shape,
    smoke: bool,
    summary: Vec<[String; 6]>,
    /// The machine and versions, read when the run starts (the commit measured is the one
    /// checked out then, whatever happens to the work tree during the run).
    machine: Vec<(&'static str, String)>,
    /// Sections keyed by their place in the document.
    sections: Vec<(u8, String)>,
}

/// The rotation target for a fleet of `tenants`: ≥ 90% of pinned while every tenant fits in
/// the pool's tenant-connections (`bound`), ≥ 70% beyond (issue 13).
fn rotation_target(tenants: usize, bound: usize) -> (&'static str, f64) {
    if tenants > bound {
        ("≥ 70%", 0.70)
    } else {
        ("≥ 90%", 0.90)
    }
}

fn ratio(value: f64, reference: f64) -> f64 {
    if reference > 0.0 { value / reference } else { 0.0 }
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// A ratio as a percentage below 2, as a multiple from 2 on.
fn percent_or_times(r: f64) -> String {
    if r < 2.0 {
        format!("{:.0}%", r * 100.0)
    } else {
        format!("{r:.2}×")
    }
}

/// The median throughput of a series and its spread over the rounds.
fn series_figure(series: &Series, unit: &str) -> String {
    let (lo, hi) = series.spread();
    format!("{:.0} {unit} ({lo:.0}–{hi:.0})", series.median().per_second)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn throughput_row(name: &str, t: &Throughput) -> String {
    format!(
        "| {name} | {:.0} | {:.2} | {:.2} | {} |\n",
        t.per_second, t.p50_ms, t.p99_ms, t.requests
    )
}

const THROUGHPUT_HEADER: &str =
    "| Run | Requests/s | p50 (ms) | p99 (ms) | Requests |\n| --- | ---: | ---: | ---: | ---: |\n";

impl Figures {
    pub fn new(tenants: usize, devices: u32, shape: Shape, smoke: bool) -> Self {
        Self {
            tenants,
            devices,
            shape,
            smoke,
            summary: Vec::new(),
            machine: machine(),
            sections: Vec::new(),
        }
    }

    pub(crate) fn target(
        &mut self,
        scenario: &str,
        figure: String,
        reference: String,
        ratio: String,
        target: &str,
        met: bool,
    ) {
        self.summary.push([
            scenario.to_owned(),
            figure,
            reference,
            ratio,
            target.to_owned(),
            if met { "met" } else { "**missed**" }.to_owned(),
        ]);
    }

    pub(crate) fn section(&mut self, place: u8, text: &str) {
        self.sections.push((place, format!("{text}\n")));
    }

    /// One comparison of Enclave against a reference, run in alternating rounds: the
    /// summary row gives the median of each and the ratio of every round; the target is met
    /// only when the worst round meets it.
    fn compare(&mut self, scenario: &str, enclave: &Series, reference: (&str, &Series), target: (&str, f64)) {
        let ratios = enclave.ratios(reference.1);
        let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let rounds: Vec<String> = ratios.iter().map(|r| percent_or_times(*r)).collect();
        self.target(
            scenario,
            series_figure(enclave, "req/s"),
            format!("{} {}", reference.0, series_figure(reference.1, "/s")),
            format!("{} (worst {})", rounds.join(", "), percent_or_times(worst)),
            target.0,
            worst.is_finite() && worst >= target.1,
        );
    }

    pub fn requests(&mut self, pg_device: &Series, device: &Series, pg_list: &Series, list: &Series) {
        self.compare(
            "1a. device by id + interfaces",
            device,
            ("pgbench", pg_device),
            ("≥ 60%", 0.60),
        );
        self.compare(
            "1b. devices(first: 50) + interfaces",
            list,
            ("pgbench", pg_list),
            ("≥ 80%", 0.80),
        );
        let mut text = format!(
            "## 1. Requests\n\nTenants drawn at random among {} for every request; GraphQL over HTTP with a viewer's \
             session token (wrk), against pgbench running the statements Enclave sent for the same request \
             (below) with prepared statements, at the same concurrency. pgbench runs as one process for the \
             warm-up and the measured seconds, and only transactions that ended after the warm-up count, so \
             that its backends are as warm as Enclave's pool. One difference remains: Enclave prepares \
             each statement once per tenant on each connection (`tenancy::statements`), while pgbench prepares \
             each script line once per connection for every tenant, so PostgreSQL re-plans it whenever the \
             tenant changes; pgbench cannot do otherwise over more than 128 tenants (its script limit). {} alternating rounds (pgbench, Enclave over \
             every tenant, Enclave on one tenant, the peer of section 1p); each row is one round.\n\n{THROUGHPUT_HEADER}",
            self.tenants,
            device.0.len(),
        );
        for (name, series) in [
            ("pgbench, device by id", pg_device),
            ("Enclave, device by id", device),
            ("pgbench, devices(first: 50)", pg_list),
            ("Enclave, devices(first: 50)", list),
        ] {
            for (round, run) in series.0.iter().enumerate() {
                text += &throughput_row(&format!("{name}, round {}", round + 1), run);
            }
        }
        self.section(10, &text);
    }

    /// Enclave against the peer a user would pick instead, on the same tenant's data.
    pub fn peer(&mut self, label: &str, device: (&Series, &Series), list: (&Series, &Series)) {
        let (peer_device, enclave_device) = device;
        let (peer_list, enclave_list) = list;
        self.compare(
            "1p. device by id, against the peer",
            enclave_device,
            ("PostGraphile", peer_device),
            ("≥ 1.5×", 1.5),
        );
        self.compare(
            "1q. devices(first: 50), against the peer",
            enclave_list,
            ("PostGraphile", peer_list),
            ("≥ 2×", 2.0),
        );
        let mut text = format!(
            "## 1p. Against the peer\n\n{label}, the tool a user of this stack would pick instead, serving the \
             schema of the tenant Enclave's pinned runs use, with the same queries (`allDevices` and `deviceById` \
             with `interfacesByDeviceId`, the same page sizes and order) and the same wrk settings, in the same \
             alternating rounds. It connects as the database owner with no authentication and no transaction; \
             Enclave verifies a token, opens the tenant transaction, switches role and checks the credential on \
             every request.\n\n{THROUGHPUT_HEADER}"
        );
        for (name, series) in [
            ("PostGraphile, device by id", peer_device),
            ("Enclave, device by id, one tenant", enclave_device),
            ("PostGraphile, devices(first: 50)", peer_list),
            ("Enclave, devices(first: 50), one tenant", enclave_list),
        ] {
            for (round, run) in series.0.iter().enumerate() {
                text += &throughput_row(&format!("{name}, round {}", round + 1), run);
            }
        }
        self.section(15, &text);
    }

    pub fn sql(
        &mut self,
        device_sql: &[String],
        device_script: &str,
        list_sql: &[String],
        list_script: &str,
    ) {
        let mut text = String::from(
            "### The SQL, captured from Enclave and replayed by pgbench\n\nCaptured from Enclave's own \
             `enclave::sql` trace while it answered one request of each kind; the pgbench scripts are generated \
             from these statements (parameters become pgbench variables; the `BEGIN` batch becomes `BEGIN` plus \
             `set_config`, which is what `SET LOCAL` does, pipelined into the same single round trip).\n\n",
        );
        for (name, statements, script) in [
            ("device by id", device_sql, device_script),
            ("devices(first: 50)", list_sql, list_script),
        ] {
            let _ = writeln!(text, "**{name}**, Enclave sent:\n\n```sql");
            for statement in statements {
                let _ = writeln!(text, "{statement};");
            }
            let _ = writeln!(text, "```\n\npgbench ran:\n\n```\n{}```\n", script);
        }
        self.section(11, &text);
    }

    /// Rotation: the same requests pinned to one tenant, spread uniformly over the fleet and
    /// Zipf-spread over it, in the alternating rounds of section 1. `bound` is the pool
    /// size times the tenants each connection may serve: beyond it the target is 70%.
    pub fn rotation(
        &mut self,
        device_pinned: &Series,
        device: &Series,
        device_zipf: &Series,
        list_pinned: &Series,
        list: &Series,
        bound: usize,
    ) {
        let target = rotation_target(self.tenants, bound);
        let mut text = format!(
            "## 2. Tenant rotation\n\nThe same requests pinned to one tenant versus spread over {} tenants \
             (uniformly, and for device by id also Zipf(1.1): tenant 1 busiest, a long idle tail), in the \
             alternating rounds of section 1. The pool holds {} tenant-connections (connections × tenants per \
             connection); the target is ≥ 90% of pinned within that and ≥ 70% beyond it.\n\n{THROUGHPUT_HEADER}",
            self.tenants, bound
        );
        let spread_label = format!("over {} tenants", self.tenants);
        for (name, pinned, spread) in [
            ("2a. rotation, device by id", device_pinned, device),
            ("2b. rotation, devices(first: 50)", list_pinned, list),
            (
                "2c. rotation, Zipf(1.1), device by id",
                device_pinned,
                device_zipf,
            ),
        ] {
            self.compare(name, spread, ("one tenant", pinned), target);
            for (round, (pinned, spread)) in pinned.0.iter().zip(&spread.0).enumerate() {
                text += &throughput_row(&format!("{name}: one tenant, round {}", round + 1), pinned);
                text += &throughput_row(&format!("{name}: {spread_label}, round {}", round + 1), spread);
            }
        }
        self.section(20, &text);
    }

    /// Throughput, latency and backend memory against the number of tenants the load
    /// touches (one run per point, each on a fresh server), with the chart in `chart`.
    pub fn scaling(&mut self, points: &[Point], chart: &str) {
        let pinned = points
            .iter()
            .find(|p| p.spread == Spread::Pinned)
            .map(|p| p.throughput.per_second)
            .unwrap_or_default();
        let mut text = format!(
            "## 2s. Throughput against tenant count\n\nDevice by id, pinned to one tenant and spread over the \
             first K tenants of the fleet, uniformly and Zipf(1.1). One run per point, each on a freshly started \
             server so that its backends meet exactly those tenants: wrk ({} s warm-up, {} s measured) for the \
             throughput, then the backends' private memory (`RssAnon`), then a constant-rate run at {:.0}% of \
             that throughput for the latencies. The latencies are free of coordinated omission: each connection \
             sends on a fixed schedule and a request's latency counts from when it was scheduled (`rate.rs`, \
             the method of wrk2). The rotation targets use the alternating rounds of section 2, not these single \
             runs.\n\n![Throughput and backend memory against tenant count]({chart})\n\n\
             | Tenants | Spread | Requests/s | Of pinned | Rate asked | p50 (ms) | p90 (ms) | p99 (ms) | p99.9 (ms) | p99/p50 | MiB per backend (mean, max) | Backends |\n\
             | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            self.shape.warmup_secs,
            self.shape.secs,
            crate::scaling::RATE_SHARE * 100.0,
        );
        for p in points {
            let spread = match p.spread {
                Spread::Pinned => "pinned".to_owned(),
                Spread::Uniform { .. } => "uniform".to_owned(),
                Spread::Zipf { s, .. } => format!("Zipf({s})"),
            };
            let max = p.backends_mib.iter().copied().fold(0.0, f64::max);
            let l = &p.latencies;
            let _ = writeln!(
                text,
                "| {} | {spread} | {:.0} | {:.0}% | {:.0}/s | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1}, {:.1} | {} |",
                p.spread.tenants(),
                p.throughput.per_second,
                ratio(p.throughput.per_second, pinned) * 100.0,
                l.rate,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.p999_ms,
                l.tail_ratio(),
                p.backend_mean_mib(),
                max,
                p.backends_mib.len(),
            );
        }
        let abandoned: u64 = points.iter().map(|p| p.latencies.abandoned).sum();
        if abandoned > 0 {
            let _ = writeln!(
                text,
                "\n{abandoned} scheduled requests were never sent because a run fell a whole window behind its rate."
            );
        }
        self.latency_target(points.iter().map(|p| (p.spread.label(), p.latencies)));
        self.section(22, &text);
    }

    /// The latency target over every constant-rate run: p99 at most 3× p50 in each.
    fn latency_target(&mut self, runs: impl Iterator<Item = (String, Latencies)>) {
        let runs: Vec<(String, Latencies)> = runs.collect();
        let worst = runs
            .iter()
            .max_by(|a, b| a.1.tail_ratio().total_cmp(&b.1.tail_ratio()));
        if let Some((label, worst)) = worst {
            let all_complete = runs.iter().all(|(_, l)| l.abandoned == 0 && l.completed > 0);
            self.target(
                "2d. latency at a constant rate (device by id)",
                format!("worst p99/p50 {:.1} ({label})", worst.tail_ratio()),
                format!(
                    "{} runs at {:.0}% of their throughput",
                    runs.len(),
                    crate::scaling::RATE_SHARE * 100.0
                ),
                format!("p50 {:.2} ms, p99 {:.2} ms", worst.p50_ms, worst.p99_ms),
                "p99 ≤ 3× p50",
                all_complete && worst.tail_ratio() <= 3.0,
            );
        }
    }

    pub fn authentication(
        &mut self,
        with_token: Throughput,
        anonymous: Throughput,
        device: Throughput,
        full: Duration,
    ) {
        // Every request keeps the machine busy; the extra machine time a token costs per
        // request is the difference of the inverse throughputs.
        let cost_us = (1.0 / with_token.per_second - 1.0 / anonymous.per_second).max(0.0) * 1e6;
        let share = cost_us / 1e6 * device.per_second;
        self.target(
            "3. token verification + authorization",
            format!("{cost_us:.1} µs of machine time per request"),
            format!("{:.0} req/s (1a)", device.per_second),
            format!("{:.1}% of 1a's time", share * 100.0),
            "≤ 10%",
            share <= 0.10,
        );
        let mut text = format!(
            "## 3. Authentication\n\n`{{ health {{ ok }} }}` touches no database; with a token, the server \
             verifies its signature, runs the authorizer and checks the tenant, without a token it does not. \
             The difference of the inverse throughputs is the machine time a token costs per request \
             ({cost_us:.1} µs); at the {:.0} req/s of scenario 1a that is {:.1}% of the time. A token is verified \
             and authorized in full (signature, Datalog authorizer) the first time it is seen, {:.1} µs measured \
             in process, and its claims are then kept (`src/auth/verified.rs`: only unattenuated tokens, expiry \
             re-checked on every use, revocation still checked in the tenant transaction); were every request \
             to pay the full price, it would be {:.1}% of 1a's time.\n\n{THROUGHPUT_HEADER}",
            device.per_second,
            share * 100.0,
            full.as_secs_f64() * 1e6,
            full.as_secs_f64() * device.per_second * 100.0,
        );
        text += &throughput_row("{ health } with a token", &with_token);
        text += &throughput_row("{ health } without a token", &anonymous);
        self.section(30, &text);
    }

    /// `captured`: statements of one request of each kind, exactly; `measured`: the average
    /// from `/metrics` under load (requests cut off when a run ends add a little).
    pub fn statements(&mut self, captured: (usize, usize), measured: (f64, f64)) {
        // BEGIN batch, credential check, COMMIT, and one per level (devices, interfaces).
        let expected = 3 + 2;
        self.target(
            "7. SQL statements per request (N+1)",
            format!("{} (1a), {} (1b)", captured.0, captured.1),
            format!("{expected}: 3 per transaction + 1 per level (2 levels)"),
            "—".to_owned(),
            "1 per level",
            captured.0 == expected && captured.1 == expected,
        );
        self.section(
            70,
            &format!(
                "## 7. Statements per request\n\nOne device with its interfaces: {} statements; 50 devices \
                 with their interfaces: {} (the captured lists in section 1). Each is the `BEGIN` batch, the \
                 credential check, one statement per level (devices, interfaces) and `COMMIT`: a list of 50 \
                 costs what one device costs. Under load `/metrics` (`enclave_sql_statements_total` over \
                 answered requests) averaged {:.2} and {:.2}; requests cut off when wrk stops add the \
                 fraction.\n",
                captured.0, captured.1, measured.0, measured.1
            ),
        );
    }

    pub fn startup(&mut self, checks: Vec<Duration>) {
        let m = median(&checks);
        self.target(
            &format!("4a. startup check, {} up-to-date tenants", self.tenants),
            ms(m),
            "1 s".to_owned(),
            format!("{:.0}%", m.as_secs_f64() * 100.0),
            "< 1 s",
            m < Duration::from_secs(1),
        );
        let all: Vec<String> = checks.iter().map(|d| ms(*d)).collect();
        self.section(
            40,
            &format!(
                "## 4. Startup and fleet migration\n\n`enclave migrate` as a whole process (start, connect, \
             decide that nothing is pending with one query, exit) with {} up-to-date tenants: median {} \
             (runs: {}).\n",
                self.tenants,
                ms(m),
                all.join(", ")
            ),
        );
    }

    /// Device by id on one tenant: direct with prepared statements (the default), direct
    /// without, and through PgBouncer in transaction mode (where they are off).
    pub fn pgbouncer(&mut self, series: &[Series]) -> anyhow::Result<()> {
        let [direct, unprepared, bouncer] = series else {
            anyhow::bail!("three PgBouncer series expected");
        };
        let ratios = bouncer.ratios(direct);
        let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        self.target(
            "9. through PgBouncer (transaction mode), device by id",
            series_figure(bouncer, "req/s"),
            format!("direct {}", series_figure(direct, "req/s")),
            format!(
                "{} (worst {})",
                ratios
                    .iter()
                    .map(|r| percent_or_times(*r))
                    .collect::<Vec<_>>()
                    .join(", "),
                percent_or_times(worst)
            ),
            "measured",
            true,
        );
        let mut text = format!(
            "## 9. PgBouncer\n\nDevice by id pinned to one tenant, in {} alternating rounds: Enclave connected \
             straight to PostgreSQL with prepared statements (the default); the same without prepared statements \
             (`ENCLAVE_PREPARED_STATEMENTS=off`: each statement is parsed and planned every time); and through a \
             PgBouncer in transaction mode with as many server connections as the pool (`scripts/ensure-pgbouncer`; \
             requests through it, migrations and LISTEN on `ENCLAVE_DIRECT_DATABASE_URL`), where prepared \
             statements are off because Debian's PgBouncer (before 1.21) cannot keep them. The first two differ \
             by the cost of preparing; the last two by the hop through PgBouncer.\n\n{THROUGHPUT_HEADER}",
            direct.0.len()
        );
        for (name, s) in [
            ("direct, prepared statements", direct),
            ("direct, no prepared statements", unprepared),
            ("through PgBouncer, no prepared statements", bouncer),
        ] {
            for (round, run) in s.0.iter().enumerate() {
                text += &throughput_row(&format!("{name}, round {}", round + 1), run);
            }
        }
        self.section(90, &text);
        Ok(())
    }

    pub fn fleet_migration(
        &mut self,
        sequential: (Duration, usize),
        concurrent: (Duration, usize),
        width: u32,
    ) {
        let r = ratio(sequential.0.as_secs_f64(), concurrent.0.as_secs_f64());
        self.target(
            "4b. fleet migration (one column)",
            format!("{} with {width} at once", ms(concurrent.0)),
            format!("{} one at a time", ms(sequential.0)),
            format!("{r:.2}× faster"),
            "—",
            true,
        );
        self.section(
            41,
            &format!(
                "A new tenant migration adding one column to `devices`, applied to every tenant schema \
             ({} and {} schemas, platform included), each in its own transaction: one at a time {} \
             ({:.1} ms per schema); {width} at once {} ({:.1} ms per schema), {r:.2}× faster.\n",
                sequential.1,
                concurrent.1,
                ms(sequential.0),
                sequential.0.as_secs_f64() * 1e3 / sequential.1.max(1) as f64,
                ms(concurrent.0),
                concurrent.0.as_secs_f64() * 1e3 / concurrent.1.max(1) as f64,
            ),
        );
    }

    /// The fleet was built by an earlier run (`--reuse`): no provisioning figures this time.
    pub fn provisioning_reused(&mut self) {
        self.section(
            50,
            &format!(
                "## 5. Provisioning\n\nThe {} tenants were provisioned and seeded by an earlier run and reused \
                 (`--reuse`); this run has no fleet provisioning figure.\n",
                self.tenants
            ),
        );
    }

    pub fn provisioning(&mut self, provisioned: &Provisioned) {
        let per_second = self.tenants as f64 / provisioned.total.as_secs_f64();
        self.section(
            50,
            &format!(
                "## 5. Provisioning\n\n{} tenants provisioned one after another through Enclave (tenant row, \
             schema, role, every tenant migration, grants, ledger; one transaction each) in {:.1} s: \
             {per_second:.1} tenants/s, median {} each, first {}, last {}.\n",
                self.tenants,
                provisioned.total.as_secs_f64(),
                ms(median(&provisioned.each)),
                ms(provisioned.each.first().copied().unwrap_or_default()),
                ms(provisioned.each.last().copied().unwrap_or_default()),
            ),
        );
    }

    pub fn provisioning_reference(&mut self, reference: ProvisioningReference) {
        let enclave = median(&reference.enclave);
        let raw = median(&reference.raw);
        let r = ratio(enclave.as_secs_f64(), raw.as_secs_f64());
        self.target(
            "5. provisioning one tenant",
            ms(enclave),
            format!("raw DDL, one batch: {}", ms(raw)),
            format!("{r:.2}×"),
            "≤ 1.5×",
            r <= 1.5,
        );
        self.section(51, &format!(
            "Alternating, {} times on the same warm connection: one tenant through Enclave, then the same DDL \
             (schema, role, every tenant migration, the grants once at the end) sent as one batch in one \
             transaction into a fresh schema. Enclave does more than the batch (it records every migration \
             in the ledger, checks the slug and domains, inserts the tenant row) and sends each migration \
             on its own. Medians: Enclave {}, raw {}: {r:.2}×.\n",
            reference.enclave.len(),
            ms(enclave),
            ms(raw),
        ));
    }

    pub fn ingest(&mut self, ingest: &crate::ingest::Ingest) {
        let (enclave, copy) = (
            ingest.enclave.points_per_second(),
            ingest.copy.points_per_second(),
        );
        let r = ratio(enclave, copy);
        self.target(
            "8. edge ingest, 10,000-point metric batches",
            format!("{enclave:.0} points/s"),
            format!("psql \\copy {copy:.0} points/s"),
            format!("{:.0}%", r * 100.0),
            "≥ 50%",
            r >= 0.50,
        );
        let text = format!(
            "## 8. Edge ingest\n\nOne component posts batches of {points} `series` points to \
             `/edge/v1/metrics` over mutual TLS (a new TLS connection per batch, JSON, validation, the \
             tenant transaction with the certificate check, one `INSERT … SELECT FROM unnest(…)`), one \
             batch after the other; the reference is `psql \\copy` of the very same rows (CSV) into the \
             same table, one `\\copy` per batch in one psql session whose first batches warm it as \
             Enclave's are warmed.\n\n| | Batches | Seconds | Points/s |\n| --- | ---: | ---: | ---: |\n\
             | Enclave `/edge/v1/metrics` | {eb} | {es:.2} | {enclave:.0} |\n\
             | `psql \\copy` | {cb} | {cs:.2} | {copy:.0} |\n",
            points = crate::ingest::POINTS,
            eb = ingest.enclave.batches,
            es = ingest.enclave.elapsed.as_secs_f64(),
            cb = ingest.copy.batches,
            cs = ingest.copy.elapsed.as_secs_f64(),
        );
        self.section(70, &text);
    }

    pub fn memory(&mut self, memory: Memory) {
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        let cost = 1.0
            - ratio(
                memory.bounded_throughput.per_second,
                memory.unbounded_throughput.per_second,
            );
        self.target(
            "6. PostgreSQL backend memory bound",
            format!(
                "≤ {:.0} MiB per backend ({} tenants per connection)",
                max(&memory.bounded_backends_mib),
                memory.bound
            ),
            format!("{:.0} MiB unbounded", max(&memory.unbounded_backends_mib)),
            format!("throughput cost {:.1}%", cost * 100.0),
            "bounded",
            max(&memory.bounded_backends_mib) <= max(&memory.unbounded_backends_mib),
        );
        let mut text = format!(
            "## 6. Memory\n\nAfter the rotating device-by-id load over {} tenants. Backends: private memory \
             (`RssAnon`) of each PostgreSQL backend in Enclave's pool, where the catalog caches live.\n\n\
             | | Server peak RSS | Backends | Largest backend | All backends | Requests/s |\n\
             | --- | ---: | ---: | ---: | ---: | ---: |\n",
            self.tenants
        );
        for (name, rss, backends, throughput) in [
            (
                format!("retire after {} tenants (default)", memory.bound),
                memory.bounded_rss_mib,
                &memory.bounded_backends_mib,
                memory.bounded_throughput,
            ),
            (
                "never retire".to_owned(),
                memory.unbounded_rss_mib,
                &memory.unbounded_backends_mib,
                memory.unbounded_throughput,
            ),
        ] {
            let _ = writeln!(
                text,
                "| {name} | {rss:.0} MiB | {} | {:.1} MiB | {:.0} MiB | {:.0} |",
                backends.len(),
                max(backends),
                sum(backends),
                throughput.per_second
            );
        }
        let _ = writeln!(
            text,
            "\nWith the bound, the pool opened {:.0} connections in all during the bounded runs; the bound \
             costs {:.1}% of the throughput of the same load without it.",
            memory.bounded_connections_opened,
            cost * 100.0
        );
        self.section(60, &text);
    }

    /// CPU profiles of some runs (or why there are none).
    pub fn profiles(&mut self, profiles: anyhow::Result<Vec<(&str, Throughput, Profile)>>) {
        let mut text = String::from(
            "## Profiles: where the time goes\n\nA system-wide `perf record -e cpu-clock` (every process, \
             sampled at 499 Hz per CPU) while wrk drives the scenario against the default server; a separate \
             run from the measured one above. CPU per request is the process's share of the machine's CPUs \
             divided by the requests answered per second during the profile.\n\n",
        );
        let profiles = match profiles {
            Ok(profiles) => profiles,
            Err(error) => {
                let _ = writeln!(text, "No profile was taken: {error:#}.");
                self.section(80, &text);
                return;
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        for (name, throughput, profile) in profiles {
            let _ = write!(
                text,
                "### {name} ({:.0} req/s while profiled)\n\n| Process | Share of all CPUs | CPU per request |\n\
                 | --- | ---: | ---: |\n",
                throughput.per_second
            );
            for (process, share) in &profile.by_process {
                let per_request_us = share / 100.0 * cpus * 1e6 / throughput.per_second.max(1.0);
                let _ = writeln!(
                    text,
                    "| {} | {share:.1}% | {per_request_us:.0} µs |",
                    process.name()
                );
            }
            let enclave = profile.share(Process::Enclave).max(f64::MIN_POSITIVE);
            text += "\nEnclave's CPU by origin: ";
            let origins: Vec<String> = profile
                .enclave_by_origin
                .iter()
                .take(8)
                .map(|(origin, share)| format!("{origin} {:.0}%", share / enclave * 100.0))
                .collect();
            text += &origins.join(", ");
            text += ".\n\n| Hottest functions | Process | Share of all CPUs |\n| --- | --- | ---: |\n";
            for process in [Process::Postgres, Process::Enclave] {
                for hot in profile.hottest_of(process, 10) {
                    let _ = writeln!(
                        text,
                        "| `{}` | {} | {:.1}% |",
                        hot.symbol.replace('|', "\\|"),
                        process.name(),
                        hot.percent
                    );
                }
            }
            text.push('\n');
        }
        self.section(80, &text);
    }

    /// The whole document.
    pub fn render(&self) -> anyhow::Result<String> {
        let mut out = String::from("# Benchmarks\n\n");
        if self.smoke {
            out.push_str("**Smoke run** (tiny fleet, seconds-long runs): checks the command works; the figures mean nothing.\n\n");
        }
        let _ = writeln!(
            out,
            "Written by `scripts/bench` (README, \"Benchmarks\") on {}. Every figure is set against a \
             reference measured in the same run on the same machine.\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        out.push_str("## Machine and versions\n\n");
        for (what, value) in &self.machine {
            let _ = writeln!(out, "- {what}: {value}");
        }
        let _ = writeln!(
            out,
            "- Load: {} connections, {} threads (wrk and pgbench alike), {} s warm-up then {} s measured per run; \
             pool of {} connections\n- Data: {} tenants, each with {} devices (3 interfaces each), identifiers, \
             alerts, events, CPU and memory series, logs, infrastructure (the `enclave demo` data), a viewer \
             and its session\n",
            self.shape.connections,
            self.shape.threads,
            self.shape.warmup_secs,
            self.shape.secs,
            self.shape.connections,
            self.tenants,
            self.devices
        );
        out.push_str("## Summary\n\n| Scenario | Enclave | Reference | Ratio | Target | |\n| --- | --- | --- | --- | --- | --- |\n");
        let mut summary = self.summary.clone();
        summary.sort();
        for row in &summary {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push('\n');
        let mut sections = self.sections.clone();
        sections.sort_by_key(|(place, _)| *place);
        for (_, text) in sections {
            out.push_str(&text);
        }
        out.push('\n');
        out.push_str(include_str!("analysis.md"));
        Ok(out)
    }
}

/// What the report says about the machine and the software.
fn machine() -> Vec<(&'static str, String)> {
    let command = |program: &str, args: &[&str]| -> String {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .unwrap_or_else(|| "not found".to_owned())
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    vec![
        ("CPU", format!("{cpu}, {cores} cores available")),
        ("Memory", memory),
        ("Kernel", command("uname", &["-sr"])),
        (
            "PostgreSQL",
            command(
                "psql",
                &[
                    "-X",
                    "-At",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-c",
                    "SHOW server_version",
                    "postgres",
                ],
            ),
        ),
        (
            "PostgreSQL settings",
            command(
                "psql",
                &[
                    "-X",
                    "-At",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-c",
                    "SELECT string_agg(name || ' = ' || setting || coalesce(unit, ''), ', ' ORDER BY name) \
                     FROM pg_settings WHERE name IN ('shared_buffers', 'max_connections', 'work_mem', \
                     'effective_cache_size', 'synchronous_commit', 'fsync', 'jit', 'max_wal_size', 'autovacuum')",
                    "postgres",
                ],
            ),
        ),
        (
            "Build profile",
            if cfg!(debug_assertions) {
                "debug (dev)"
            } else {
                "release"
            }
            .to_owned(),
        ),
        ("Node.js (the peer)", command("node", &["--version"])),
        ("pgbench", command("pgbench", &["--version"])),
        ("wrk", command("wrk", &["-v"])),
        ("rustc", command("rustc", &["-V"])),
        (
            "Enclave",
            format!(
                "{} ({})",
                env!("CARGO_PKG_VERSION"),
                command("git", &["rev-parse", "--short", "HEAD"])
            ),
        ),
    ]
}
