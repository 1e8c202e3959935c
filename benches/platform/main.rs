//! `scripts/bench` (`cargo bench --bench platform`): Enclave against the physical limit,
//! side by side, written to BENCHMARKS.md.
//!
//! Against the local PostgreSQL it recreates the database `enclave_bench`, provisions and
//! seeds N tenants (default 1,000), starts `enclave serve` as its own process and drives it
//! with wrk using real Biscuit tokens; every figure is set against a reference measured in
//! the same run (pgbench replaying the very statements Enclave sent, the same load pinned
//! to one tenant, raw DDL through `psql -1`...). `--smoke` runs a tiny fleet for a few
//! seconds so that CI keeps the command working; it writes to `target/` instead.

mod fleet;
mod ingest;
mod jobs;
mod load;
mod peer;
mod pgbouncer;
mod plot;
mod profile;
mod rate;
mod report;
mod scaling;
mod server;
mod spread;
mod sql;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use enclave::auth::keys::RootKeys;
use enclave::config::DatabaseConfig;
use enclave::resolvers::ids;
use serde_json::json;

use load::{Shape, Throughput};
use report::Figures;
use server::{Launch, Server};
use spread::{SplitMix, Spread};
use sql::Substitution;

/// Command-line options (after `--`).
struct Options {
    tenants: usize,
    devices: u32,
    shape: Shape,
    smoke: bool,
    /// Keep the database of an earlier run with the same number of tenants.
    reuse: bool,
    output: PathBuf,
    database_url: String,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let mut options = Self {
            tenants: 1000,
            devices: 200,
            shape: Shape {
                connections: 16,
                threads: 2,
                warmup_secs: 3,
                secs: 15,
            },
            smoke: false,
            reuse: false,
            output: PathBuf::from("BENCHMARKS.md"),
            database_url: std::env::var("ENCLAVE_BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/enclave_bench".to_owned()),
        };
        let mut output = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--bench" => {}
                "--smoke" => options.smoke = true,
                "--reuse" => options.reuse = true,
                "--tenants" => options.tenants = value()?.parse()?,
                "--seconds" => options.shape.secs = value()?.parse()?,
                "--connections" => options.shape.connections = value()?.parse()?,
                "--output" => output = Some(PathBuf::from(value()?)),
                other => bail!(
                    "unknown option {other}; use --tenants N, --seconds S, --connections C, --output FILE, --reuse, --smoke"
                ),
            }
        }
        if options.smoke {
            options.tenants = 3;
            options.devices = 60;
            options.shape = Shape {
                connections: 4,
                threads: 1,
                warmup_secs: 1,
                secs: 2,
            };
            options.output = PathBuf::from("target/bench-smoke/BENCHMARKS.md");
            // Its own database, so that a smoke run never wipes a full run's.
            if std::env::var_os("ENCLAVE_BENCH_DATABASE_URL").is_none() {
                options.database_url.push_str("_smoke");
            }
        }
        if let Some(output) = output {
            options.output = output;
        }
        if options.tenants == 0 {
            bail!("--tenants must be at least 1");
        }
        Ok(options)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let capture = sql::Capture::install();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(&options, &capture))
}

fn step(what: &str) {
    eprintln!("bench: {what}");
    let _ = std::io::stderr().flush();
}

async fn run(options: &Options, capture: &sql::Capture) -> anyhow::Result<()> {
    // Scratch files (request lists, scripts, pgbench logs) stay out of the repository.
    let work = PathBuf::from("target/bench-work");
    if let Some(parent) = options.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::create_dir_all(&work)?;
    let work = std::fs::canonicalize(work)?;
    let config = DatabaseConfig::for_url(options.database_url.clone());
    let mut figures = Figures::new(options.tenants, options.devices, options.shape, options.smoke);

    let reused = if options.reuse {
        fleet::reusable(&config, options.tenants).await?
    } else {
        None
    };
    let installation = match reused {
        Some(installation) => {
            step(&format!(
                "reusing the {} tenants of an earlier run",
                options.tenants
            ));
            figures.provisioning_reused();
            installation
        }
        None => {
            step("recreating the database");
            let installation = fleet::recreate(&config).await?;
            step(&format!("provisioning {} tenants", options.tenants));
            let provisioned = fleet::provision(&installation, options.tenants).await?;
            figures.provisioning(&provisioned);
            step("seeding");
            fleet::seed(&installation, options.tenants, options.devices).await?;
            installation
        }
    };
    step("provisioning reference (the same DDL as one batch)");
    let rounds = if options.smoke { 2 } else { 20 };
    figures.provisioning_reference(fleet::provisioning_reference(&installation, rounds).await?);

    let (keys, key_spec) = RootKeys::generate(1);
    let tokens = fleet::tokens(&installation, &keys, options.tenants).await?;

    // The requests, and the statements Enclave sends for each.
    let device_query = "query($id: ID!) { device(id: $id) { id hostname ip status interfaces { nodes { name ifIndex operStatus } } } }";
    let list_query = "{ devices(first: 50) { edges { node { id hostname ip status interfaces { nodes { name ifIndex operStatus } } } } } }";
    let by_id = |token: &str, device: u32| {
        (
            token.to_owned(),
            json!({ "query": device_query, "variables": { "id": ids::encode("Device", fleet::device_id(device)).0 } }),
        )
    };
    let list = |token: &str| (token.to_owned(), json!({ "query": list_query }));
    step("capturing the SQL of each request");
    let captured = sql::statements_of(
        capture,
        &config,
        &installation,
        (RootKeys::parse(&key_spec)?, key_spec.clone()),
        &[by_id(&tokens[0], 1), list(&tokens[0])],
    )
    .await?;
    let (device_sql, list_sql) = (&captured[0], &captured[1]);
    let first_page = first_page_ids(&installation.database_url, 50).await?;
    let random_device_array = "ARRAY[('00000000-0000-4000-8000-' || lpad(:d::text, 12, '0'))::uuid]";
    let random_device = format!("ANY({random_device_array})");
    let preamble = format!(
        "\\set t random(1, {})\n\\set d random(1, {})\n",
        options.tenants, options.devices
    );
    let session_check = || Substitution {
        captured: "\"tokens\".\"id\" = $1",
        replay: "\"tokens\".\"id\" = :session".to_owned(),
    };
    let device_script = sql::pgbench_script(
        device_sql,
        &preamble,
        &[
            Substitution {
                captured: "= ANY($1)",
                replay: format!("= {random_device}"),
            },
            // The device's first page of interfaces (one LATERAL statement).
            Substitution {
                captured: "unnest($1::uuid[])",
                replay: format!("unnest({random_device_array})"),
            },
            Substitution {
                captured: "LIMIT $2",
                replay: "LIMIT 51".to_owned(),
            },
            session_check(),
        ],
    )?;
    let list_script = sql::pgbench_script(
        list_sql,
        &preamble,
        &[
            Substitution {
                captured: "= ANY($1)",
                replay: "= ANY(:ids)".to_owned(),
            },
            Substitution {
                captured: "LIMIT $1",
                replay: "LIMIT 51".to_owned(),
            },
            // Each device's first page of interfaces: one LATERAL statement for the page.
            Substitution {
                captured: "unnest($1::uuid[])",
                replay: "unnest(:ids::uuid[])".to_owned(),
            },
            Substitution {
                captured: "LIMIT $2",
                replay: "LIMIT 51".to_owned(),
            },
            session_check(),
        ],
    )?;
    figures.sql(device_sql, &device_script, list_sql, &list_script);
    let variables = vec![
        ("role_prefix", installation.role_namespace.clone() + "t"),
        ("session", fleet::SESSION.to_string()),
        ("ids", format!("{{{}}}", first_page.join(","))),
    ];

    // Request files for wrk.
    let mut rng = SplitMix(0x5eed);
    let pick_tenant = |rng: &mut SplitMix| tokens[rng.below(options.tenants)].as_str();
    let lines = if options.smoke { 500 } else { 20_000 };
    let device_random = write_requests(
        &work,
        "device-random",
        (0..lines).map(|_| {
            let token = pick_tenant(&mut rng);
            by_id(token, 1 + rng.below(options.devices as usize) as u32)
        }),
    )?;
    let mut rng = SplitMix(0x5eed);
    let device_pinned = write_requests(
        &work,
        "device-pinned",
        (0..lines).map(|_| {
            let _ = pick_tenant(&mut rng);
            by_id(&tokens[0], 1 + rng.below(options.devices as usize) as u32)
        }),
    )?;
    let list_random = write_requests(
        &work,
        "list-random",
        (0..lines).map(|_| list(pick_tenant(&mut rng))),
    )?;
    let list_pinned = write_requests(&work, "list-pinned", (0..lines).map(|_| list(&tokens[0])))?;
    let device_requests = |spread: Spread| {
        let sampler = spread.sampler();
        let mut rng = SplitMix(0x5eed);
        (0..lines)
            .map(|_| {
                let token = &tokens[sampler.next(&mut rng)];
                by_id(token, 1 + rng.below(options.devices as usize) as u32)
            })
            .collect::<Vec<_>>()
    };
    let zipf_fleet = Spread::Zipf {
        tenants: options.tenants,
        s: scaling::ZIPF_S,
    };
    let device_zipf = write_requests(&work, "device-zipf", device_requests(zipf_fleet).into_iter())?;
    let health = json!({ "query": "{ health { ok } }" });
    let health_token = write_requests(
        &work,
        "health-token",
        (0..lines).map(|_| (pick_tenant(&mut rng).to_owned(), health.clone())),
    )?;
    let health_anonymous = write_requests(
        &work,
        "health-anonymous",
        (0..lines).map(|_| (String::new(), health.clone())),
    )?;

    // Startup with N up-to-date tenants, through the real binary.
    step("startup check");
    figures.startup(startup_checks(
        &options.database_url,
        if options.smoke { 2 } else { 5 },
    )?);

    // The peer serves the pinned tenant's schema, with the same requests.
    let peer_device_requests = write_requests(
        &work,
        "peer-device",
        (0..lines).map(|_| {
            let device = fleet::device_id(1 + rng.below(options.devices as usize) as u32);
            (String::new(), peer::device_request(&device.to_string()))
        }),
    )?;
    let peer_list_requests = write_requests(
        &work,
        "peer-list",
        (0..lines).map(|_| (String::new(), json!({ "query": peer::LIST_QUERY }))),
    )?;

    let shape = options.shape;
    let launch = Launch {
        database_url: &options.database_url,
        root_key: &key_spec,
        pool_size: shape.connections,
        tenants_per_connection: DEFAULT_TENANTS_PER_CONNECTION,
        edge: None,
        env: &[],
    };
    let (server, _) = Server::start(&launch)?;
    let graphql = server.url("/graphql");
    let measure = |name: &str, requests: &Path| -> anyhow::Result<(Throughput, f64)> {
        step(name);
        let (statements, ok, errors) = counters(&server)?;
        let result = load::wrk(&graphql, requests, shape, &work)?;
        let (statements_after, ok_after, errors_after) = counters(&server)?;
        if errors_after > errors || result.errors > 0 {
            bail!(
                "{name}: {} GraphQL errors, {} HTTP errors",
                errors_after - errors,
                result.errors
            );
        }
        let answered = ok_after - ok;
        Ok((result, (statements_after - statements) / answered.max(1.0)))
    };
    step("starting the peer (PostGraphile)");
    let peer = peer::Peer::start(&options.database_url, &format!("tenant_{}", fleet::slug(1)))?;
    let peer_url = peer.url();
    let peer_label = format!(
        "PostGraphile {} (`--cluster-workers {}`)",
        peer.version, peer.workers
    );
    for body in [
        peer::device_request(&fleet::device_id(1).to_string()),
        json!({ "query": peer::LIST_QUERY }),
    ] {
        let answer = peer.post(&body)?;
        if !answer.contains("ifIndex") || answer.contains("\"errors\"") {
            bail!("the peer does not answer the benchmark's queries: {answer}");
        }
    }
    let measure_peer = |name: &str, requests: &Path| -> anyhow::Result<Throughput> {
        step(name);
        let result = load::wrk(&peer_url, requests, shape, &work)?;
        if result.errors > 0 {
            bail!("{name}: {} HTTP errors", result.errors);
        }
        Ok(result)
    };

    // Each comparison in alternating rounds: the reference, Enclave over every tenant,
    // Enclave pinned to one tenant, the peer on that tenant.
    let rounds = if options.smoke { 1 } else { 3 };
    let mut device_statements = 0.0;
    let mut list_statements = 0.0;
    let device_series = load::alternate(
        rounds,
        &mut [
            &mut || {
                step("pgbench: device by id");
                load::pgbench(
                    &options.database_url,
                    &device_script,
                    &variables,
                    shape,
                    &work,
                    "device",
                )
            },
            &mut || {
                let (result, statements) = measure("enclave: device by id, random tenants", &device_random)?;
                device_statements = statements;
                Ok(result)
            },
            &mut || Ok(measure("enclave: device by id, one tenant", &device_pinned)?.0),
            &mut || measure_peer("peer: device by id, one tenant", &peer_device_requests),
            &mut || Ok(measure("enclave: device by id, Zipf(1.1) over the tenants", &device_zipf)?.0),
        ],
    )?;
    let list_series = load::alternate(
        rounds,
        &mut [
            &mut || {
                step("pgbench: devices(first: 50)");
                load::pgbench(
                    &options.database_url,
                    &list_script,
                    &variables,
                    shape,
                    &work,
                    "list",
                )
            },
            &mut || {
                let (result, statements) =
                    measure("enclave: devices(first: 50), random tenants", &list_random)?;
                list_statements = statements;
                Ok(result)
            },
            &mut || Ok(measure("enclave: devices(first: 50), one tenant", &list_pinned)?.0),
            &mut || measure_peer("peer: devices(first: 50), one tenant", &peer_list_requests),
        ],
    )?;
    drop(peer);
    let [
        pg_device,
        device_spread,
        device_pinned_series,
        peer_device,
        device_zipf_series,
    ] = &device_series[..]
    else {
        bail!("five device series expected");
    };
    let [pg_list, list_spread, list_pinned_series, peer_list] = &list_series[..] else {
        bail!("four list series expected");
    };
    let device = device_spread.median();
    let (with_token, _) = measure("enclave: { health } with a token", &health_token)?;
    let (anonymous, _) = measure("enclave: { health } without a token", &health_anonymous)?;
    // Where the time goes, in runs of their own.
    let profile_secs = shape.secs.min(10);
    let profiles = [
        ("devices(first: 50), random tenants", "list-random", &list_random),
        ("device by id, random tenants", "device-random", &device_random),
        ("device by id, one tenant", "device-pinned", &device_pinned),
    ]
    .into_iter()
    .map(|(title, name, requests)| {
        step(&format!("profile: {title}"));
        let (throughput, profile) = profile::record(&work, name, profile_secs, server.pid(), || {
            load::wrk_for(&graphql, requests, shape, &work, profile_secs)
        })?;
        Ok((title, throughput, profile))
    })
    .collect();
    figures.profiles(profiles);
    // Memory after the rotating load, bound on.
    let (_, _) = measure("enclave: device by id, random tenants (memory)", &device_random)?;
    let bounded_rss = server::proc_status_mib(server.pid(), "VmHWM")?;
    let bounded_backends = server::backend_memory(&options.database_url).await?;
    let bounded_opened = server.metric("enclave_db_connections_opened_total", "")?;
    drop(server);

    figures.requests(pg_device, device_spread, pg_list, list_spread);
    figures.rotation(
        device_pinned_series,
        device_spread,
        device_zipf_series,
        list_pinned_series,
        list_spread,
        (shape.connections * DEFAULT_TENANTS_PER_CONNECTION) as usize,
    );
    figures.peer(
        &peer_label,
        (peer_device, device_pinned_series),
        (peer_list, list_pinned_series),
    );
    figures.authentication(with_token, anonymous, device, full_verification(&tokens, &keys)?);
    figures.statements(
        (device_sql.len(), list_sql.len()),
        (device_statements, list_statements),
    );

    step("enclave without the tenants-per-connection bound (memory)");
    let (server, _) = Server::start(&Launch {
        tenants_per_connection: 0,
        ..launch
    })?;
    let graphql = server.url("/graphql");
    load::wrk(&graphql, &device_random, shape, &work)?;
    let unbounded = load::wrk(&graphql, &device_random, shape, &work)?;
    let unbounded_rss = server::proc_status_mib(server.pid(), "VmHWM")?;
    let unbounded_backends = server::backend_memory(&options.database_url).await?;
    drop(server);
    figures.memory(report::Memory {
        bound: DEFAULT_TENANTS_PER_CONNECTION,
        bounded_throughput: device,
        bounded_rss_mib: bounded_rss,
        bounded_backends_mib: bounded_backends,
        bounded_connections_opened: bounded_opened,
        unbounded_throughput: unbounded,
        unbounded_rss_mib: unbounded_rss,
        unbounded_backends_mib: unbounded_backends,
    });

    // Throughput, latency and memory against the number of tenants, with its chart.
    let points = scaling::measure(
        &launch,
        &scaling::spreads(options.tenants),
        |spread| {
            let requests = device_requests(spread);
            let file = write_requests(
                &work,
                &format!("scaling-{}", spread.label()),
                requests.iter().cloned(),
            )?;
            let lines = requests
                .into_iter()
                .map(|(token, body)| (token, body.to_string()))
                .collect();
            Ok(scaling::Requests { file, lines })
        },
        shape,
        &work,
    )
    .await?;
    let chart = chart_path(&options.output);
    std::fs::write(
        &chart,
        plot::tenant_scaling(
            &points,
            &format!(
                "Device by id against tenant count ({} tenants in the fleet)",
                options.tenants
            ),
        ),
    )?;
    figures.scaling(
        &points,
        &chart
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );

    // The same load through PgBouncer in transaction mode, where prepared statements are off.
    step("PgBouncer: device by id, one tenant");
    let bouncer = pgbouncer::Bouncer::start(&options.database_url, &work, shape.connections)?;
    let prepared_off = [("ENCLAVE_PREPARED_STATEMENTS", "off".to_owned())];
    let through_bouncer = [
        ("ENCLAVE_DIRECT_DATABASE_URL", options.database_url.clone()),
        ("DATABASE_URL", bouncer.url.clone()),
    ];
    let servers = [
        Server::start(&launch)?.0,
        Server::start(&Launch {
            env: &prepared_off,
            ..launch
        })?
        .0,
        Server::start(&Launch {
            env: &through_bouncer,
            ..launch
        })?
        .0,
    ];
    let urls: Vec<String> = servers.iter().map(|s| s.url("/graphql")).collect();
    let mut contenders: Vec<Box<dyn FnMut() -> anyhow::Result<Throughput>>> = urls
        .iter()
        .map(|url| {
            let (url, requests, work) = (url.clone(), device_pinned.clone(), work.clone());
            Box::new(move || load::wrk(&url, &requests, shape, &work)) as Box<dyn FnMut() -> _>
        })
        .collect();
    let mut refs: Vec<&mut dyn FnMut() -> anyhow::Result<Throughput>> =
        contenders.iter_mut().map(|c| c.as_mut() as _).collect();
    let bouncer_series = load::alternate(rounds, &mut refs)?;
    drop(servers);
    drop(bouncer);
    figures.pgbouncer(&bouncer_series)?;

    step("edge ingest against psql \\copy");
    let (_, edge_key) = enclave::edge::keys::EdgeKey::generate()?;
    let mut auth = enclave::config::AuthConfig::with_key(key_spec.clone());
    auth.edge.edge_key = Some(edge_key.clone());
    let component = ingest::component(&installation, &auth, &fleet::slug(1), fleet::device_id(1)).await?;
    let edge_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let edge_listen = format!("127.0.0.1:{edge_port}");
    let (server, _) = Server::start(&Launch {
        edge: Some((&edge_key, &edge_listen)),
        ..launch
    })?;
    let (warmup, batches) = if options.smoke { (1, 2) } else { (3, 20) };
    let measured = ingest::measure(
        &component,
        &edge_listen,
        &options.database_url,
        &fleet::slug(1),
        &work,
        warmup,
        batches,
    )
    .await?;
    drop(server);
    figures.ingest(&measured);

    step("jobs: one tenant flooding its queue, one job for every other tenant");
    jobs::report(
        &mut figures,
        &jobs::measure(&launch, options.tenants, options.smoke).await?,
    );

    // Last: the extra migrations are undone afterwards, so that `--reuse` can keep the fleet.
    step("fleet migration, sequential then concurrent");
    let [
        (sequential_version, sequential_column),
        (concurrent_version, concurrent_column),
    ] = fleet::EXTRA_MIGRATIONS
    else {
        bail!("two fleet migrations expected");
    };
    let sequential = fleet::migrate_fleet(&config, 1, sequential_version, sequential_column).await?;
    let concurrent_width = 4;
    let concurrent =
        fleet::migrate_fleet(&config, concurrent_width, concurrent_version, concurrent_column).await?;
    figures.fleet_migration(sequential, concurrent, concurrent_width);
    fleet::revert_fleet_migrations(&config).await?;

    let report = figures.render()?;
    std::fs::write(&options.output, report)?;
    step(&format!("wrote {}", options.output.display()));
    Ok(())
}

/// The chart next to the report: `BENCHMARKS.md` → `BENCHMARKS-tenants.svg`.
fn chart_path(report: &Path) -> PathBuf {
    let stem = report
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "BENCHMARKS".to_owned());
    report.with_file_name(format!("{stem}-tenants.svg"))
}

/// The bound `serve` applies by default (`ENCLAVE_POOL_TENANTS_PER_CONNECTION`).
const DEFAULT_TENANTS_PER_CONNECTION: u32 = 100;

/// Statements sent, requests answered without and with errors, from `/metrics`.
fn counters(server: &Server) -> anyhow::Result<(f64, f64, f64)> {
    Ok((
        server.metric("enclave_sql_statements_total", "")?,
        server.metric("enclave_graphql_requests_total", "{outcome=\"ok\"}")?,
        server.metric("enclave_graphql_requests_total", "{outcome=\"error\"}")?,
    ))
}

/// Mean time of one full verification and authorization of a token (the first request
/// of a token pays it; later ones are served from the verified tokens), in process.
fn full_verification(tokens: &[String], keys: &RootKeys) -> anyhow::Result<Duration> {
    let fields = ["device".to_owned()];
    let rounds = 2000;
    let started = std::time::Instant::now();
    for i in 0..rounds {
        let verified = enclave::auth::token::verify(&tokens[i % tokens.len()], keys)?;
        // A stall of the machine longer than the authorizer's time limit refuses the
        // check as "busy" (the server answers UNAVAILABLE); measure the next one.
        match verified.authorize(enclave::auth::token::Operation::Query, &fields) {
            Ok(_) | Err(enclave::auth::token::TokenRefusal::Busy) => {}
            Err(refusal) => return Err(refusal.into()),
        }
    }
    Ok(started.elapsed() / rounds as u32)
}

/// Wall time of `enclave migrate` (whole process: start, connect, check, exit) with every
/// tenant up to date.
fn startup_checks(database_url: &str, runs: usize) -> anyhow::Result<Vec<Duration>> {
    (0..runs)
        .map(|_| {
            let started = std::time::Instant::now();
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
                .arg("migrate")
                .env("DATABASE_URL", database_url)
                .env("RUST_LOG", "warn")
                .output()?;
            if !output.status.success() {
                bail!(
                    "enclave migrate failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            Ok(started.elapsed())
        })
        .collect()
}

/// Ids of the first `n` devices by host name (the same in every benchmark tenant).
async fn first_page_ids(database_url: &str, n: i64) -> anyhow::Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let mut conn = enclave::db::connect(database_url).await?;
    let rows: Vec<Id> = diesel_async::RunQueryDsl::load(
        diesel::sql_query("SELECT id::text AS id FROM tenant_t1.devices ORDER BY hostname, id LIMIT $1")
            .bind::<diesel::sql_types::BigInt, _>(n),
        &mut conn,
    )
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Writes `<token>\t<body>` lines for wrk; returns the file.
fn write_requests(
    work: &Path,
    name: &str,
    requests: impl Iterator<Item = (String, serde_json::Value)>,
) -> anyhow::Result<PathBuf> {
    let path = work.join(format!("{name}.requests"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for (token, body) in requests {
        writeln!(file, "{token}\t{body}")?;
    }
    file.flush()?;
    Ok(path)
}
