//! Tenant jobs (issue 15), against the real PostgreSQL: schedules fire at their cron times
//! on a controlled clock; one flooding tenant does not hold up another's job by more than
//! a round; a worker whose connection dies mid-job is retried once after its lease and
//! its result committed once; a job's transaction cannot reach another tenant's schema,
//! whatever its search_path; retention deletes exactly what the policy says, and nothing
//! of another tenant.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use common::app::TestApp;
use diesel::QueryableByName;
use diesel::sql_types::{Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{RunQueryDsl as _, SimpleAsyncConnection as _};
use enclave::jobs::clock::ManualClock;
use enclave::jobs::cron::CronSchedule;
use enclave::jobs::kinds::retention;
use enclave::jobs::worker::{RunOutcome, Tick, Worker, WorkerOptions};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 10, 10, 5, 0)
        .single()
        .expect("a valid time")
}

/// Tenants `acme` and `globex`, with no schedules at all (the default ones would fire on
/// a clock set in 2030), and a worker on a manual clock at [`t0`].
struct Jobs {
    app: TestApp,
    clock: ManualClock,
}

impl Jobs {
    async fn new() -> Self {
        Self::with(|_, _| {}).await
    }

    async fn with(
        configure: impl FnOnce(&mut enclave::config::DatabaseConfig, &mut enclave::config::AuthConfig),
    ) -> Self {
        let app = TestApp::with(configure).await;
        app.tenant("acme", &[]).await;
        app.tenant("globex", &[]).await;
        let mut conn = app.db.conn().await;
        for tenant in app.app.directory.all() {
            conn.batch_execute(&format!("DELETE FROM {}.job_schedules", tenant.schema))
                .await
                .expect("remove the default schedules");
        }
        Self {
            app,
            clock: ManualClock::at(t0()),
        }
    }

    fn worker(&self) -> Arc<Worker> {
        Arc::new(Worker::new(
            self.app.app.db.clone(),
            self.app.app.directory.clone(),
            &self.app.db.url,
            Arc::new(self.clock.clone()),
            WorkerOptions {
                lease: LEASE,
                idle_wait: Duration::from_millis(10),
            },
            Arc::default(),
        ))
    }

    fn tenant_id(&self, slug: &str) -> uuid::Uuid {
        self.app.entry(slug).id
    }

    async fn sql(&self, sql: &str) {
        self.app
            .db
            .conn()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn count(&self, sql: &str) -> i64 {
        self.app.db.count(sql).await
    }

    /// A queued job of `kind` in `schema`, due at `run_after`; returns its id.
    async fn job(
        &self,
        schema: &str,
        kind: &str,
        payload: serde_json::Value,
        run_after: DateTime<Utc>,
    ) -> uuid::Uuid {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: uuid::Uuid,
        }
        let row: Id = diesel::sql_query(format!(
            "INSERT INTO {schema}.jobs (kind, payload, run_after) VALUES ($1, $2, $3) RETURNING id"
        ))
        .bind::<Text, _>(kind)
        .bind::<Jsonb, _>(payload)
        .bind::<Timestamptz, _>(run_after)
        .get_result(&mut self.app.db.conn().await)
        .await
        .expect("insert a job");
        row.id
    }

    async fn job_row(&self, schema: &str, id: uuid::Uuid) -> JobRow {
        diesel::sql_query(format!(
            "SELECT status, attempts, last_error, result FROM {schema}.jobs WHERE id = $1"
        ))
        .bind::<diesel::sql_types::Uuid, _>(id)
        .get_result(&mut self.app.db.conn().await)
        .await
        .expect("the job")
    }
}

#[derive(Debug, QueryableByName)]
struct JobRow {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    result: Option<serde_json::Value>,
}

#[tokio::test]
async fn a_schedule_fires_at_its_cron_times_and_coalesces_missed_runs() {
    let jobs = Jobs::new().await;
    let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2030, 1, 10, h, m, 0).single().expect("time");
    let next = CronSchedule::parse("*/15 * * * *", "UTC")
        .expect("cron")
        .next_after(t0())
        .expect("next run");
    assert_eq!(next, at(10, 15));
    diesel::sql_query(
        "INSERT INTO tenant_acme.job_schedules (name, kind, cron, next_run_at) \
         VALUES ('quarterly', 'onboarding_expiry', '*/15 * * * *', $1)",
    )
    .bind::<Timestamptz, _>(next)
    .execute(&mut jobs.app.db.conn().await)
    .await
    .expect("schedule");
    let worker = jobs.worker();

    // 10:05: nothing is due anywhere.
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    // 10:15: the schedule fires once, and its job runs.
    jobs.clock.set(at(10, 15));
    let tick = worker.tick().await.expect("tick");
    assert!(
        matches!(
            tick,
            Tick::Ran {
                outcome: RunOutcome::Succeeded,
                ..
            }
        ),
        "{tick:?}"
    );
    assert_eq!(jobs.count("SELECT count(*) AS n FROM tenant_acme.jobs").await, 1);
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    // 10:29:59: not yet.
    jobs.clock.set(at(10, 29) + chrono::Duration::seconds(59));
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    // 11:47 after a downtime that missed 10:30 … 11:45: one run, then 12:00.
    jobs.clock.set(at(11, 47));
    let tick = worker.tick().await.expect("tick");
    assert!(matches!(tick, Tick::Ran { .. }), "{tick:?}");
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_acme.jobs WHERE status = 'succeeded'")
            .await,
        2
    );
    assert_eq!(
        jobs.count(
            "SELECT count(*) AS n FROM tenant_acme.job_schedules \
             WHERE next_run_at = '2030-01-10T12:00:00Z' AND last_run_at = '2030-01-10T11:47:00Z'"
        )
        .await,
        1
    );
    // Globex has no schedule and got no job.
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_globex.jobs").await,
        0
    );
}

#[tokio::test]
async fn a_flooding_tenant_delays_another_tenants_job_by_one_round_at_most() {
    let jobs = Jobs::new().await;
    // Acme has 10,000 jobs due for an hour; globex has one job, due a minute ago.
    jobs.sql(
        "INSERT INTO tenant_acme.jobs (kind, run_after) \
         SELECT 'onboarding_expiry', '2030-01-10T09:05:00Z'::timestamptz + g * interval '1 ms' \
         FROM generate_series(1, 10000) g",
    )
    .await;
    let single = jobs
        .job(
            "tenant_globex",
            "onboarding_expiry",
            json!({}),
            t0() - chrono::Duration::minutes(1),
        )
        .await;
    let (acme, globex) = (jobs.tenant_id("acme"), jobs.tenant_id("globex"));
    let worker = jobs.worker();
    let mut served = Vec::new();
    for _ in 0..4 {
        match worker.tick().await.expect("tick") {
            Tick::Ran {
                tenant,
                outcome: RunOutcome::Succeeded,
                ..
            } => served.push(tenant),
            other => panic!("unexpected round {other:?}"),
        }
    }
    // The earliest due work goes first; then globex, whose work was due before acme's
    // was served again; then acme's backlog.
    assert_eq!(served, vec![acme, globex, acme, acme]);
    assert_eq!(jobs.job_row("tenant_globex", single).await.status, "succeeded");
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_acme.jobs WHERE status = 'queued'")
            .await,
        9_997
    );
}

#[tokio::test]
async fn suspended_tenants_jobs_pause_until_resumed() {
    let jobs = Jobs::new().await;
    let job = jobs
        .job("tenant_acme", "onboarding_expiry", json!({}), t0())
        .await;
    jobs.sql("UPDATE public.tenants SET status = 'suspended' WHERE slug = 'acme'")
        .await;
    jobs.app.reload().await;
    let worker = jobs.worker();
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    assert_eq!(jobs.job_row("tenant_acme", job).await.status, "queued");
    jobs.sql("UPDATE public.tenants SET status = 'active' WHERE slug = 'acme'")
        .await;
    jobs.app.reload().await;
    assert!(matches!(worker.tick().await.expect("tick"), Tick::Ran { .. }));
    assert_eq!(jobs.job_row("tenant_acme", job).await.status, "succeeded");
}

/// Events of `schema`: `old` of 100 days and `recent` of 1 day before [`t0`].
async fn events(jobs: &Jobs, schema: &str, old: i32, recent: i32) {
    jobs.sql(&format!(
        "INSERT INTO {schema}.events (kind, occurred_at) \
         SELECT 'old', '2030-01-10T10:05:00Z'::timestamptz - interval '100 days' FROM generate_series(1, {old}); \
         INSERT INTO {schema}.events (kind, occurred_at) \
         SELECT 'recent', '2030-01-10T10:05:00Z'::timestamptz - interval '1 day' FROM generate_series(1, {recent})"
    ))
    .await;
}

#[tokio::test]
async fn a_worker_killed_mid_job_is_retried_once_after_its_lease_and_commits_once() {
    let jobs = Jobs::new().await;
    events(&jobs, "tenant_acme", 3, 2).await;
    events(&jobs, "tenant_globex", 3, 0).await;
    let job = jobs.job("tenant_acme", "retention", json!({}), t0()).await;

    // Hold acme's events so that the retention job blocks on its first delete.
    let mut holder = jobs.app.db.conn().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE tenant_acme.events IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let worker = jobs.worker();
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.tick().await }
    });
    let mut waited = 0;
    while jobs
        .count(&format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
            jobs.app.db.name
        ))
        .await
        == 0
    {
        waited += 1;
        assert!(waited < 200, "the job never blocked on the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Kill the worker mid-job: its task is gone and its backend terminated.
    running.abort();
    jobs.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
        jobs.app.db.name
    ))
    .await;
    holder.batch_execute("ROLLBACK").await.expect("unlock");

    let row = jobs.job_row("tenant_acme", job).await;
    assert_eq!((row.status.as_str(), row.attempts), ("running", 1));
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_acme.events").await,
        5
    );
    // The lease has not expired: nobody takes the job.
    let worker = jobs.worker();
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    // After the lease, the next worker retries it once, and its result is committed once.
    jobs.clock
        .advance(chrono::Duration::from_std(LEASE).expect("lease") + chrono::Duration::seconds(1));
    let tick = worker.tick().await.expect("tick");
    assert_eq!(
        tick,
        Tick::Ran {
            tenant: jobs.tenant_id("acme"),
            job,
            outcome: RunOutcome::Succeeded
        }
    );
    let row = jobs.job_row("tenant_acme", job).await;
    assert_eq!((row.status.as_str(), row.attempts), ("succeeded", 2));
    assert_eq!(row.result.expect("result")["deleted"]["events"], json!(3));
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_acme.events").await,
        2
    );
    // Globex's old events are not acme's to delete.
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_globex.events").await,
        3
    );
}

#[tokio::test]
async fn a_job_transaction_cannot_reach_another_tenant_whatever_its_search_path() {
    let jobs = Jobs::new().await;
    events(&jobs, "tenant_globex", 3, 0).await;
    let gateway = jobs.app.app.db.clone();
    let acme = jobs.app.entry("acme");
    let far_future = t0() + chrono::Duration::days(365);
    // Retention's own delete, with the search_path turned to globex's schema: PostgreSQL
    // skips a schema the role may not use, so the table is not even found.
    let error = enclave::jobs::tx::in_tenant(&gateway, acme.clone(), async |conn| {
        conn.batch_execute("SET LOCAL search_path TO tenant_globex")
            .await?;
        retention::delete_batch(conn, retention::DATA_KINDS[0], far_future, 1000).await
    })
    .await
    .expect_err("the tenant role cannot use globex's schema");
    assert_eq!(error.code(), "UNDEFINED_OBJECT", "{error}");
    // Through a function call: the same.
    let error = enclave::jobs::tx::in_tenant(&gateway, acme.clone(), async |conn| {
        conn.batch_execute("SELECT set_config('search_path', 'tenant_globex', true); DELETE FROM events")
            .await?;
        Ok(())
    })
    .await
    .expect_err("refused");
    assert_eq!(error.code(), "UNDEFINED_OBJECT", "{error}");
    // Schema-qualified: permission denied.
    let error = enclave::jobs::tx::in_tenant(&gateway, acme.clone(), async |conn| {
        conn.batch_execute("DELETE FROM tenant_globex.events").await?;
        Ok(())
    })
    .await
    .expect_err("refused");
    assert_eq!(error.code(), "PERMISSION_DENIED", "{error}");
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_globex.events").await,
        3
    );
}

#[tokio::test]
async fn retention_deletes_exactly_what_the_policy_says_in_bounded_batches() {
    let jobs = Jobs::new().await;
    // Rows aged (in days before t0) 1, 6, 8, 29, 31, 89, 91 and 100 of every data kind,
    // in both tenants.
    for schema in ["tenant_acme", "tenant_globex"] {
        jobs.sql(&format!(
            "INSERT INTO {schema}.devices (hostname) VALUES ('r1'); \
             INSERT INTO {schema}.events (kind, occurred_at) \
               SELECT 'e', '2030-01-10T10:05:00Z'::timestamptz - d * interval '1 day' \
               FROM unnest(ARRAY[1, 6, 8, 29, 31, 89, 91, 100]) d; \
             INSERT INTO {schema}.logs (message, ts) \
               SELECT 'l', '2030-01-10T10:05:00Z'::timestamptz - d * interval '1 day' \
               FROM unnest(ARRAY[1, 6, 8, 29, 31, 89, 91, 100]) d; \
             INSERT INTO {schema}.timeseries_metrics (device_id, name, value, ts) \
               SELECT (SELECT id FROM {schema}.devices), 'm', d, '2030-01-10T10:05:00Z'::timestamptz - d * interval '1 day' \
               FROM unnest(ARRAY[1, 6, 8, 29, 31, 89, 91, 100]) d; \
             INSERT INTO {schema}.health_events (source_kind, source_id, status, occurred_at) \
               SELECT 'device', gen_random_uuid(), 'healthy', '2030-01-10T10:05:00Z'::timestamptz - d * interval '1 day' \
               FROM unnest(ARRAY[1, 6, 8, 29, 31, 89, 91, 100]) d; \
             INSERT INTO {schema}.cpu_metrics (device_id, ts, usage_percent) \
               SELECT (SELECT id FROM {schema}.devices), '2030-01-10T10:05:00Z'::timestamptz - d * interval '1 day', 5 \
               FROM unnest(ARRAY[1, 6, 8, 29, 31, 89, 91, 100]) d; \
             INSERT INTO {schema}.process_metrics (device_id, ts, pid, name, cpu_percent, memory_bytes) \
               SELECT (SELECT id FROM {schema}.devices), '2030-01-10T10:05:00Z'::timestamptz - d * interval '1 day', 1, 'init', 0, 0 \
               FROM unnest(ARRAY[1, 6, 8, 29, 31, 89, 91, 100]) d; \
             INSERT INTO {schema}.otel_traces (trace_id, span_id, service_name, name, start_time, end_time) \
               SELECT 't' || d, 's', 'api', 'GET /', '2030-01-10T10:05:00Z'::timestamptz - d * interval '1 day', \
                      '2030-01-10T10:05:00Z'::timestamptz - d * interval '1 day' \
               FROM unnest(ARRAY[1, 6, 8, 29, 31, 89, 91, 100]) d;"
        ))
        .await;
    }
    // A job of acme finished 31 days ago and one 29 days ago; one of globex 100 days ago.
    jobs.sql(
        "INSERT INTO tenant_acme.jobs (kind, status, finished_at) VALUES \
           ('onboarding_expiry', 'succeeded', '2030-01-10T10:05:00Z'::timestamptz - interval '31 days'), \
           ('onboarding_expiry', 'failed', '2030-01-10T10:05:00Z'::timestamptz - interval '29 days'); \
         INSERT INTO tenant_globex.jobs (kind, status, finished_at) VALUES \
           ('onboarding_expiry', 'succeeded', '2030-01-10T10:05:00Z'::timestamptz - interval '100 days')",
    )
    .await;
    // Acme keeps events 30 days, metric series 7 and spans 90; logs, health events, CPU
    // and process samples keep their defaults (30, 90, 30 and 7 days). Globex's policy
    // would delete everything, but it runs no job.
    jobs.sql(
        "INSERT INTO tenant_acme.retention_policies (data_kind, keep_days) \
           VALUES ('events', 30), ('metrics', 7), ('traces', 90); \
         INSERT INTO tenant_globex.retention_policies (data_kind, keep_days) \
           VALUES ('events', 1), ('logs', 1), ('metrics', 1), ('health_events', 1), ('cpu_metrics', 1), \
                  ('process_metrics', 1), ('traces', 1)",
    )
    .await;
    let job = jobs
        .job("tenant_acme", "retention", json!({"batchSize": 2}), t0())
        .await;
    let worker = jobs.worker();
    let tick = worker.tick().await.expect("tick");
    assert!(
        matches!(
            tick,
            Tick::Ran {
                outcome: RunOutcome::Succeeded,
                ..
            }
        ),
        "{tick:?}"
    );

    assert_eq!(
        kept(&jobs, "tenant_acme").await,
        vec![
            "1,6,8,29",
            "1,6,8,29",
            "1,6",
            "1,6,8,29,31,89",
            "1,6,8,29",
            "1,6",
            "1,6,8,29,31,89"
        ]
    );
    let all = "1,6,8,29,31,89,91,100";
    assert_eq!(kept(&jobs, "tenant_globex").await, vec![all; 7]);
    // The retention job itself and the job of 29 days stay; globex's is not acme's.
    assert_eq!(jobs.count("SELECT count(*) AS n FROM tenant_acme.jobs").await, 2);
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_globex.jobs").await,
        1
    );
    let row = jobs.job_row("tenant_acme", job).await;
    assert_eq!(row.status, "succeeded");
    assert_eq!(
        row.result.expect("result"),
        json!({"deleted": {"events": 4, "logs": 4, "metrics": 6, "health_events": 2, "cpu_metrics": 4,
            "memory_metrics": 0, "disk_metrics": 0, "process_metrics": 6, "otel_metrics": 0, "traces": 2,
            "trace_summaries": 0, "jobs": 1, "poll_jobs": 0}})
    );
}

/// The ages (days before t0, newest first) of the rows of every retention data kind.
async fn kept(jobs: &Jobs, schema: &str) -> Vec<String> {
    let mut kept = Vec::new();
    for (table, column) in [
        ("events", "occurred_at"),
        ("logs", "ts"),
        ("timeseries_metrics", "ts"),
        ("health_events", "occurred_at"),
        ("cpu_metrics", "ts"),
        ("process_metrics", "ts"),
        ("otel_traces", "start_time"),
    ] {
        let sql = format!(
            "SELECT string_agg(extract(day FROM '2030-01-10T10:05:00Z'::timestamptz - {column})::text, ',' \
             ORDER BY {column} DESC) AS name FROM {schema}.{table}"
        );
        kept.push(jobs.app.db.names(&sql).await.remove(0));
    }
    kept
}

#[tokio::test]
async fn failed_attempts_back_off_then_dead_letter_with_a_code() {
    let jobs = Jobs::with(|database, _| database.lock_timeout_ms = 100).await;
    // A kind this version does not know: dead-lettered at once.
    let unknown = jobs.job("tenant_acme", "mine_bitcoin", json!({}), t0()).await;
    // A retention job that cannot get its lock: retried after a backoff, then dead.
    let blocked = jobs
        .job(
            "tenant_acme",
            "retention",
            json!({}),
            t0() + chrono::Duration::seconds(1),
        )
        .await;
    jobs.sql("UPDATE tenant_acme.jobs SET max_attempts = 2 WHERE kind = 'retention'")
        .await;
    let worker = jobs.worker();
    let tick = worker.tick().await.expect("tick");
    assert!(
        matches!(
            tick,
            Tick::Ran {
                outcome: RunOutcome::Failed("UNKNOWN_KIND"),
                ..
            }
        ),
        "{tick:?}"
    );
    let row = jobs.job_row("tenant_acme", unknown).await;
    assert_eq!(
        (row.status.as_str(), row.last_error.as_deref()),
        ("failed", Some("UNKNOWN_KIND"))
    );

    let mut holder = jobs.app.db.conn().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE tenant_acme.events IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    jobs.clock.advance(chrono::Duration::seconds(1));
    let tick = worker.tick().await.expect("tick");
    assert!(
        matches!(
            tick,
            Tick::Ran {
                outcome: RunOutcome::Retried("LOCK_TIMEOUT"),
                ..
            }
        ),
        "{tick:?}"
    );
    let row = jobs.job_row("tenant_acme", blocked).await;
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 1));
    // Backoff: between 5 and 10 seconds after the failure.
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    jobs.clock.advance(chrono::Duration::seconds(4));
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    jobs.clock.advance(chrono::Duration::seconds(6));
    let tick = worker.tick().await.expect("tick");
    assert!(
        matches!(
            tick,
            Tick::Ran {
                outcome: RunOutcome::Failed("LOCK_TIMEOUT"),
                ..
            }
        ),
        "{tick:?}"
    );
    holder.batch_execute("ROLLBACK").await.expect("unlock");
    let row = jobs.job_row("tenant_acme", blocked).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.last_error.as_deref()),
        ("failed", 2, Some("LOCK_TIMEOUT"))
    );
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
}

#[tokio::test]
async fn admins_manage_schedules_and_jobs_through_graphql_within_their_tenant() {
    use common::app::error_code;
    use enclave::auth::Role;
    let app = TestApp::new().await;
    app.tenant("acme", &[]).await;
    app.tenant("globex", &[]).await;
    let admin = app.user("acme", "admin@acme.example", Role::Admin).await;
    let admin = app.session("acme", &admin).await;
    let viewer = app.user("acme", "viewer@acme.example", Role::Viewer).await;
    let viewer = app.session("acme", &viewer).await;
    let other = app.user("globex", "admin@globex.example", Role::Admin).await;
    let other = app.session("globex", &other).await;
    const CREATE: &str = "mutation($input: CreateJobScheduleInput!) { createJobSchedule(input: $input) { \
        jobSchedule { id name kind cron timeZone payload enabled nextRunAt } } }";
    let input = |name: &str, cron: &str, zone: &str, payload: serde_json::Value| json!({"input": {"name": name, "kind": "RETENTION", "cron": cron, "timeZone": zone, "payload": payload}});

    let created = app
        .gql(
            Some(&admin),
            CREATE,
            input("nightly", "0 3 * * *", "Europe/Paris", json!({"batchSize": 500})),
        )
        .await;
    let schedule = &created["data"]["createJobSchedule"]["jobSchedule"];
    assert_eq!(schedule["kind"], "RETENTION", "{created}");
    assert_eq!(schedule["payload"], json!({"batchSize": 500}));
    // 03:00 in Paris is 01:00 or 02:00 UTC.
    let next = schedule["nextRunAt"].as_str().expect("next run");
    assert!(next.contains("T02:00:00") || next.contains("T01:00:00"), "{next}");
    let schedule_id = schedule["id"].as_str().expect("id").to_owned();

    // Bad input changes nothing and says so with a code, without SQL.
    for (bad, code) in [
        (
            input("bad cron", "every night", "UTC", json!({})),
            "BAD_USER_INPUT",
        ),
        (
            input("bad zone", "0 3 * * *", "Mars/Olympus", json!({})),
            "BAD_USER_INPUT",
        ),
        (
            input("bad payload", "0 3 * * *", "UTC", json!({"batchSize": 0})),
            "BAD_USER_INPUT",
        ),
        (input("nightly", "0 4 * * *", "UTC", json!({})), "CONFLICT"),
    ] {
        let refused = app.gql(Some(&admin), CREATE, bad).await;
        assert_eq!(error_code(&refused), Some(code), "{refused}");
        let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("job_schedules"), "{message}");
    }
    let refused = app
        .gql(
            Some(&viewer),
            CREATE,
            input("viewer's", "0 3 * * *", "UTC", json!({})),
        )
        .await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");

    // The default schedules and the new one.
    let listed = app
        .gql(Some(&viewer), "{ jobSchedules { nodes { name } } }", json!({}))
        .await;
    assert_eq!(
        listed["data"]["jobSchedules"]["nodes"],
        json!([
            {"name": "certificate renewal reminder"},
            {"name": "nightly"},
            {"name": "onboarding package expiry"},
            {"name": "retention"}
        ])
    );

    // Pause, resume, run now, cancel, retry.
    let paused = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { pauseJobSchedule(id: $id) { jobSchedule { enabled nextRunAt } } }",
            json!({"id": schedule_id}),
        )
        .await;
    assert_eq!(
        paused["data"]["pauseJobSchedule"]["jobSchedule"],
        json!({"enabled": false, "nextRunAt": null})
    );
    let resumed = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { resumeJobSchedule(id: $id) { jobSchedule { enabled nextRunAt } } }",
            json!({"id": schedule_id}),
        )
        .await;
    assert_eq!(
        resumed["data"]["resumeJobSchedule"]["jobSchedule"]["nextRunAt"],
        json!(next)
    );
    let ran = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { runJobScheduleNow(id: $id) { job { id kind status attempts scheduleId } } }",
            json!({"id": schedule_id}),
        )
        .await;
    let job = &ran["data"]["runJobScheduleNow"]["job"];
    assert_eq!(
        (&job["kind"], &job["status"], &job["scheduleId"]),
        (&json!("retention"), &json!("QUEUED"), &json!(schedule_id)),
        "{ran}"
    );
    let job_id = job["id"].as_str().expect("job id").to_owned();
    // Queued in the request's transaction, and in the due-index with it.
    assert_eq!(
        app.db
            .count(
                "SELECT count(*) AS n FROM public.job_due d JOIN public.tenants t ON t.id = d.tenant_id \
                 WHERE t.slug = 'acme' AND d.due_at <= now()"
            )
            .await,
        1
    );
    let listed = app
        .gql(
            Some(&viewer),
            "{ jobs(status: QUEUED, kind: RETENTION) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["jobs"]["edges"][0]["node"]["id"],
        json!(job_id),
        "{listed}"
    );
    const CANCEL: &str = "mutation($id: ID!) { cancelJob(id: $id) { job { status finishedAt } } }";
    const RETRY: &str = "mutation($id: ID!) { retryJob(id: $id) { job { status attempts } } }";
    let cancelled = app.gql(Some(&admin), CANCEL, json!({"id": job_id})).await;
    assert_eq!(
        cancelled["data"]["cancelJob"]["job"]["status"], "CANCELLED",
        "{cancelled}"
    );
    let again = app.gql(Some(&admin), CANCEL, json!({"id": job_id})).await;
    assert_eq!(error_code(&again), Some("CONFLICT"), "{again}");
    let retried = app.gql(Some(&admin), RETRY, json!({"id": job_id})).await;
    assert_eq!(
        retried["data"]["retryJob"]["job"],
        json!({"status": "QUEUED", "attempts": 0}),
        "{retried}"
    );

    // Globex sees none of it and cannot touch it.
    let theirs = app
        .gql(
            Some(&other),
            "{ jobs { edges { node { id } } } jobSchedules { nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(theirs["data"]["jobs"]["edges"], json!([]), "{theirs}");
    assert_eq!(
        theirs["data"]["jobSchedules"]["nodes"],
        json!([
            {"name": "certificate renewal reminder"},
            {"name": "onboarding package expiry"},
            {"name": "retention"}
        ])
    );
    let refused = app.gql(Some(&other), CANCEL, json!({"id": job_id})).await;
    assert_eq!(error_code(&refused), Some("NOT_FOUND"), "{refused}");
    let node = app
        .gql(
            Some(&other),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({"id": job_id}),
        )
        .await;
    assert_eq!(node["data"]["node"], json!(null), "{node}");
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_acme.jobs WHERE status = 'queued'")
            .await,
        1
    );
}

#[tokio::test]
async fn polling_schedules_produce_one_queued_poll_job_each_coalescing_missed_intervals() {
    let jobs = Jobs::new().await;
    jobs.sql(
        "INSERT INTO tenant_acme.polling_schedules (name, target, interval_seconds, next_run_at) \
         VALUES ('core', 'snmp://10.0.0.1', 60, '2030-01-10T10:05:00Z'), \
                ('edge', 'snmp://10.0.0.2', 300, '2030-01-10T10:30:00Z'); \
         INSERT INTO tenant_globex.polling_schedules (name, target, interval_seconds, next_run_at, enabled) \
         VALUES ('off', 'snmp://10.9.9.9', 60, '2030-01-10T10:00:00Z', false)",
    )
    .await;
    let worker = jobs.worker();
    // 10:05: `core` is due and produces a poll job; there is no job to run.
    assert_eq!(
        worker.tick().await.expect("tick"),
        Tick::Nothing {
            tenant: jobs.tenant_id("acme")
        }
    );
    let polls = "SELECT count(*) AS n FROM tenant_acme.poll_jobs p JOIN tenant_acme.polling_schedules s \
                 ON s.id = p.schedule_id WHERE s.name = 'core' AND p.status = 'queued'";
    assert_eq!(jobs.count(polls).await, 1);
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    // An hour later, no poller took it: still one queued poll job, and the next run is
    // a minute from now (the missed ones are not made up).
    jobs.clock.advance(chrono::Duration::hours(1));
    assert!(matches!(worker.tick().await.expect("tick"), Tick::Nothing { .. }));
    assert_eq!(jobs.count(polls).await, 1);
    assert_eq!(
        jobs.count(
            "SELECT count(*) AS n FROM tenant_acme.polling_schedules \
             WHERE name = 'core' AND next_run_at = '2030-01-10T11:06:00Z'"
        )
        .await,
        1
    );
    // `edge` (due 10:30) produced one too; globex's disabled schedule nothing.
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_acme.poll_jobs")
            .await,
        2
    );
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_globex.poll_jobs")
            .await,
        0
    );
}

#[tokio::test]
async fn a_poll_job_still_running_is_not_doubled_and_its_expired_lease_returns_it_to_the_queue() {
    let jobs = Jobs::new().await;
    jobs.sql(
        "INSERT INTO tenant_acme.polling_schedules (name, target, interval_seconds, next_run_at) \
         VALUES ('core', 'snmp://10.0.0.1', 60, '2030-01-10T10:05:00Z')",
    )
    .await;
    let worker = jobs.worker();
    assert!(matches!(worker.tick().await.expect("tick"), Tick::Nothing { .. }));
    // A poller leased it at 10:05 for five minutes (what GET /edge/v1/poll-jobs does).
    jobs.sql(
        "UPDATE tenant_acme.poll_jobs SET status = 'running', leased_by = 'p1', attempts = 1, \
         started_at = '2030-01-10T10:05:00Z', locked_until = '2030-01-10T10:10:00Z'",
    )
    .await;
    let all = "SELECT count(*) AS n FROM tenant_acme.poll_jobs";
    // 10:06 and 10:07: the schedule is due again, but its poll is still running.
    for _ in 0..2 {
        jobs.clock.advance(chrono::Duration::minutes(1));
        assert!(matches!(worker.tick().await.expect("tick"), Tick::Nothing { .. }));
        assert_eq!(jobs.count(all).await, 1);
    }
    // 10:11: the lease ran out; the producer's visit returns the job to the queue (one
    // job, queued, no holder) and still makes no second one.
    jobs.clock.set(t0() + chrono::Duration::minutes(6));
    assert!(matches!(worker.tick().await.expect("tick"), Tick::Nothing { .. }));
    assert_eq!(jobs.count(all).await, 1);
    assert_eq!(
        jobs.count(
            "SELECT count(*) AS n FROM tenant_acme.poll_jobs \
             WHERE status = 'queued' AND leased_by IS NULL AND locked_until IS NULL AND attempts = 1"
        )
        .await,
        1
    );
    // Once it is done, the next interval produces a new one.
    jobs.sql("UPDATE tenant_acme.poll_jobs SET status = 'succeeded', finished_at = '2030-01-10T10:11:30Z'")
        .await;
    jobs.clock.advance(chrono::Duration::minutes(1));
    assert!(matches!(worker.tick().await.expect("tick"), Tick::Nothing { .. }));
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_acme.poll_jobs WHERE status = 'queued'")
            .await,
        1
    );
    assert_eq!(jobs.count(all).await, 2);
}

#[tokio::test]
async fn an_expired_poll_lease_returns_to_the_queue_though_nothing_else_of_the_tenant_is_due() {
    let jobs = Jobs::new().await;
    // An hourly polling schedule: once it ran at 10:05, nothing of acme is due before 11:05.
    jobs.sql(
        "INSERT INTO tenant_acme.polling_schedules (name, target, interval_seconds, next_run_at) \
         VALUES ('core', 'snmp://10.0.0.1', 3600, '2030-01-10T10:05:00Z')",
    )
    .await;
    let acme = jobs.tenant_id("acme");
    let worker = jobs.worker();
    assert_eq!(worker.tick().await.expect("tick"), Tick::Nothing { tenant: acme });
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    // A poller leases the poll job at 10:05 for five minutes (what GET /edge/v1/poll-jobs
    // does): the due-index learns when the lease runs out.
    jobs.sql(
        "UPDATE tenant_acme.poll_jobs SET status = 'running', leased_by = 'p1', attempts = 1, \
         started_at = '2030-01-10T10:05:00Z', locked_until = '2030-01-10T10:10:00Z'",
    )
    .await;
    let due_at = |at: &str| {
        format!("SELECT count(*) AS n FROM public.job_due WHERE tenant_id = '{acme}' AND due_at = '{at}'")
    };
    assert_eq!(jobs.count(&due_at("2030-01-10T10:10:00Z")).await, 1);
    // 10:09: the lease holds; nothing is due.
    jobs.clock.set(t0() + chrono::Duration::minutes(4));
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    // 10:11: the poller never answered. A worker visits acme for the expired lease alone
    // and returns the job to the queue, for any poller to lease again.
    jobs.clock.set(t0() + chrono::Duration::minutes(6));
    assert_eq!(worker.tick().await.expect("tick"), Tick::Nothing { tenant: acme });
    assert_eq!(
        jobs.count(
            "SELECT count(*) AS n FROM tenant_acme.poll_jobs \
             WHERE status = 'queued' AND leased_by IS NULL AND locked_until IS NULL AND attempts = 1"
        )
        .await,
        1
    );
    // Then acme is due again at its schedule's next run only.
    assert_eq!(jobs.count(&due_at("2030-01-10T11:05:00Z")).await, 1);
    assert_eq!(worker.tick().await.expect("tick"), Tick::Idle);
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_acme.poll_jobs")
            .await,
        1
    );
}

#[tokio::test]
async fn metrics_sample_queue_depth_and_oldest_due_age_by_kind_without_tenants() {
    let jobs = Jobs::new().await;
    for (schema, minutes) in [("tenant_acme", 10), ("tenant_acme", 2), ("tenant_globex", 5)] {
        jobs.job(
            schema,
            "retention",
            json!({}),
            t0() - chrono::Duration::minutes(minutes),
        )
        .await;
    }
    jobs.job(
        "tenant_globex",
        "onboarding_expiry",
        json!({}),
        t0() - chrono::Duration::minutes(1),
    )
    .await;
    // Not due yet: not counted.
    jobs.job(
        "tenant_globex",
        "retention",
        json!({}),
        t0() + chrono::Duration::minutes(1),
    )
    .await;
    let metrics = enclave::jobs::metrics::JobMetrics::default();
    enclave::jobs::metrics::sample(
        &mut jobs.app.db.conn().await,
        &jobs.app.app.directory,
        &metrics,
        t0(),
    )
    .await
    .expect("sample");
    let mut out = String::new();
    metrics.render(&mut out);
    for line in [
        "enclave_job_queue_depth{kind=\"retention\"} 3",
        "enclave_job_queue_depth{kind=\"onboarding_expiry\"} 1",
        "enclave_job_oldest_due_seconds{kind=\"retention\"} 600.000",
        "enclave_job_oldest_due_seconds{kind=\"onboarding_expiry\"} 60.000",
        "enclave_job_runs_total{outcome=\"succeeded\"} 0",
    ] {
        assert!(out.contains(line), "{line} missing from\n{out}");
    }
    assert!(!out.contains("acme") && !out.contains("globex"), "{out}");
}

#[tokio::test]
async fn enclave_worker_runs_due_jobs_on_the_system_clock_and_stops_on_sigterm() {
    let jobs = Jobs::new().await;
    let job = jobs
        .job("tenant_acme", "onboarding_expiry", json!({}), Utc::now())
        .await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args(["worker", "--database-url", &jobs.app.db.url])
        .env("ENCLAVE_WORKERS", "1")
        .env("ENCLAVE_WORKER_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env_remove("ENCLAVE_AUTHENTICATOR_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start enclave worker");
    let mut waited = 0;
    while jobs.job_row("tenant_acme", job).await.status != "succeeded" {
        waited += 1;
        assert!(waited < 300, "the worker did not run the job within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The worker's own /metrics shows the run.
    let metrics = {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
            .await
            .expect("the worker's metrics listener");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("answer");
        answer
    };
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("enclave_job_runs_total{outcome=\"succeeded\"} 1\n"),
        "{metrics}"
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        waited += 1;
        assert!(waited < 100, "the worker did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let row = jobs.job_row("tenant_acme", job).await;
    assert_eq!((row.attempts, row.result), (1, Some(json!({"expired": 0}))));
}

#[tokio::test]
async fn platform_admins_see_platform_jobs_and_tenant_admins_do_not() {
    use common::app::error_code;
    use enclave::auth::Role;
    let app = TestApp::new().await;
    let acme = app.tenant("acme", &[]).await;
    let root = app
        .user("platform", "root@platform.example", Role::PlatformAdmin)
        .await;
    let root = app.session("platform", &root).await;
    let admin = app.user("acme", "admin@acme.example", Role::Admin).await;
    let admin = app.session("acme", &admin).await;
    app.db
        .conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO public.platform_jobs (kind, tenant_id, status, attempts, last_error) \
             VALUES ('tenant_export', '{}', 'failed', 3, 'STATEMENT_TIMEOUT'), ('fleet_migration', NULL, 'queued', 0, NULL)",
            acme.id
        ))
        .await
        .expect("platform jobs");
    const QUERY: &str =
        "{ platformJobs(status: FAILED) { edges { node { kind status attempts lastError tenantId } } } }";
    let seen = app.gql(Some(&root), QUERY, json!({})).await;
    let edges = &seen["data"]["platformJobs"]["edges"];
    assert_eq!(edges.as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(
        (&edges[0]["node"]["kind"], &edges[0]["node"]["lastError"]),
        (&json!("tenant_export"), &json!("STATEMENT_TIMEOUT"))
    );
    assert!(edges[0]["node"]["tenantId"].is_string());
    let refused = app.gql(Some(&admin), QUERY, json!({})).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    assert!(
        refused["data"].is_null() || refused["data"]["platformJobs"].is_null(),
        "{refused}"
    );
}

#[tokio::test]
async fn certificate_reminders_alert_once_per_component_expiring_within_14_days() {
    let jobs = Jobs::new().await;
    // Acme: `soon` expires in 10 days (its older certificate too), `later` in 30, `gone`
    // in 5 but is revoked; `renewed` had a certificate expiring in 3 days and a newer one.
    // Globex: one expiring in 3 days, but globex runs no job.
    for (schema, component, days, revoked) in [
        ("tenant_acme", "soon", 10, false),
        ("tenant_acme", "soon", 2, false),
        ("tenant_acme", "later", 30, false),
        ("tenant_acme", "gone", 5, true),
        ("tenant_acme", "renewed", 3, false),
        ("tenant_acme", "renewed", 90, false),
        ("tenant_globex", "theirs", 3, false),
    ] {
        jobs.sql(&format!(
            "INSERT INTO {schema}.edge_components (kind, component_id, name, common_name, serial, not_after, revoked_at) \
             VALUES ('agent', '{component}', '{component} agent', '{component}.cn', \
                     md5(random()::text), '2030-01-10T10:05:00Z'::timestamptz + interval '{days} days', \
                     {})",
            if revoked { "now()" } else { "NULL" }
        ))
        .await;
    }
    let first = jobs
        .job("tenant_acme", "certificate_reminder", json!({}), t0())
        .await;
    let worker = jobs.worker();
    assert!(matches!(
        worker.tick().await.expect("tick"),
        Tick::Ran {
            outcome: RunOutcome::Succeeded,
            ..
        }
    ));
    assert_eq!(
        jobs.job_row("tenant_acme", first).await.result,
        Some(json!({"reminded": 1}))
    );
    assert_eq!(
        jobs.app
            .db
            .names("SELECT title AS name FROM tenant_acme.alerts WHERE source = 'certificate_renewal'")
            .await,
        vec!["Certificate of edge component soon expires soon"]
    );
    // The next day: the reminder is still open, nothing new.
    jobs.clock.advance(chrono::Duration::days(1));
    let second = jobs
        .job(
            "tenant_acme",
            "certificate_reminder",
            json!({}),
            enclave::jobs::clock::Clock::now(&jobs.clock),
        )
        .await;
    assert!(matches!(worker.tick().await.expect("tick"), Tick::Ran { .. }));
    assert_eq!(
        jobs.job_row("tenant_acme", second).await.result,
        Some(json!({"reminded": 0}))
    );
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_acme.alerts").await,
        1
    );
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM tenant_globex.alerts").await,
        0
    );
}

#[tokio::test]
async fn concurrent_workers_run_every_job_exactly_once() {
    let jobs = Jobs::new().await;
    for schema in ["tenant_acme", "tenant_globex"] {
        jobs.sql(&format!(
            "INSERT INTO {schema}.jobs (kind, run_after) \
             SELECT 'onboarding_expiry', '2030-01-10T10:00:00Z' FROM generate_series(1, 40)"
        ))
        .await;
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let worker = jobs.worker();
            tokio::spawn(async move {
                let mut ran = 0;
                loop {
                    match worker.tick().await.expect("tick") {
                        Tick::Idle => return ran,
                        Tick::Ran {
                            outcome: RunOutcome::Succeeded,
                            ..
                        } => ran += 1,
                        Tick::Nothing { .. } => {}
                        other => panic!("unexpected round {other:?}"),
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    assert_eq!(total, 80);
    for schema in ["tenant_acme", "tenant_globex"] {
        assert_eq!(
            jobs.count(&format!(
                "SELECT count(*) AS n FROM {schema}.jobs WHERE status = 'succeeded' AND attempts = 1"
            ))
            .await,
            40
        );
    }
    assert_eq!(
        jobs.count("SELECT count(*) AS n FROM public.job_due WHERE due_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn admins_set_their_tenants_retention_policy_and_the_job_follows_it() {
    use common::app::error_code;
    use enclave::auth::Role;
    let app = TestApp::new().await;
    app.tenant("acme", &[]).await;
    app.tenant("globex", &[]).await;
    let admin = app.user("acme", "admin@acme.example", Role::Admin).await;
    let admin = app.session("acme", &admin).await;
    let viewer = app.user("acme", "viewer@acme.example", Role::Viewer).await;
    let viewer = app.session("acme", &viewer).await;
    let other = app.user("globex", "viewer@globex.example", Role::Viewer).await;
    let other = app.session("globex", &other).await;
    const READ: &str = "{ retentionPolicy { eventsDays logsDays metricsDays healthEventsDays tracesDays } }";
    const SET: &str = "mutation($input: SetRetentionPolicyInput!) { setRetentionPolicy(input: $input) { \
        retentionPolicy { eventsDays logsDays metricsDays healthEventsDays tracesDays } } }";
    let defaults =
        json!({"eventsDays": 90, "logsDays": 30, "metricsDays": 30, "healthEventsDays": 90, "tracesDays": 7});
    assert_eq!(
        app.gql(Some(&viewer), READ, json!({})).await["data"]["retentionPolicy"],
        defaults
    );
    let set = app
        .gql(
            Some(&admin),
            SET,
            json!({"input": {"eventsDays": 7, "metricsDays": 400, "tracesDays": 3}}),
        )
        .await;
    let changed =
        json!({"eventsDays": 7, "logsDays": 30, "metricsDays": 400, "healthEventsDays": 90, "tracesDays": 3});
    assert_eq!(
        set["data"]["setRetentionPolicy"]["retentionPolicy"], changed,
        "{set}"
    );
    assert_eq!(
        app.gql(Some(&viewer), READ, json!({})).await["data"]["retentionPolicy"],
        changed
    );
    let refused = app
        .gql(Some(&admin), SET, json!({"input": {"logsDays": 0}}))
        .await;
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"), "{refused}");
    let refused = app
        .gql(Some(&viewer), SET, json!({"input": {"logsDays": 5}}))
        .await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    assert_eq!(
        app.gql(Some(&other), READ, json!({})).await["data"]["retentionPolicy"],
        defaults
    );
    // What the retention job reads.
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_acme.retention_policies WHERE data_kind = 'events' AND keep_days = 7")
            .await,
        1
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_globex.retention_policies")
            .await,
        0
    );
}

/// A platform job runner on the manual clock of `jobs`, writing exports into `export_dir`.
fn platform_runner(
    jobs: &Jobs,
    export_dir: Option<std::path::PathBuf>,
) -> enclave::jobs::platform::PlatformRunner {
    enclave::jobs::platform::PlatformRunner::new(
        jobs.app.app.installation.clone(),
        Arc::new(jobs.clock.clone()),
        WorkerOptions {
            lease: LEASE,
            idle_wait: Duration::from_millis(10),
        },
        Arc::default(),
        export_dir,
    )
}

#[derive(Debug, QueryableByName)]
struct PlatformJobRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    result: Option<serde_json::Value>,
}

async fn platform_jobs(jobs: &Jobs) -> Vec<PlatformJobRow> {
    diesel::sql_query(
        "SELECT j.kind, j.status, j.attempts, j.last_error, j.result FROM public.platform_jobs j \
         ORDER BY j.created_at, j.kind",
    )
    .load(&mut jobs.app.db.conn().await)
    .await
    .expect("platform jobs")
}

#[tokio::test]
async fn a_tenant_behind_this_builds_migrations_is_migrated_once_by_a_platform_job() {
    use enclave::jobs::platform::PlatformTick;
    let jobs = Jobs::new().await;
    // Acme looks like a tenant an older build added while this one ran: its latest
    // migration undone and forgotten by the ledger.
    let latest = jobs
        .app
        .app
        .installation
        .migrations
        .tenant
        .migrations()
        .last()
        .expect("a tenant migration")
        .clone();
    jobs.sql(&format!(
        "BEGIN; SET LOCAL search_path = tenant_acme; {down} COMMIT; \
         DELETE FROM public.enclave_schema_migrations WHERE schema_name = 'tenant_acme' AND version = '{version}'; \
         UPDATE public.enclave_schema_state SET fingerprint = 'older build' WHERE schema_name = 'tenant_acme';",
        down = latest.down,
        version = latest.version
    ))
    .await;
    let runner = platform_runner(&jobs, None);
    // The first round finds acme behind, queues its migration and runs it.
    let tick = runner.tick().await.expect("tick");
    assert!(
        matches!(
            tick,
            PlatformTick::Ran {
                outcome: RunOutcome::Succeeded,
                ..
            }
        ),
        "{tick:?}"
    );
    let ran = platform_jobs(&jobs).await;
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(
        (ran[0].kind.as_str(), ran[0].status.as_str()),
        ("migrate_tenant", "succeeded")
    );
    assert_eq!(
        ran[0].result,
        Some(json!({"schema": "tenant_acme", "applied": [latest.version.clone()]}))
    );
    assert_eq!(
        jobs.count(
            "SELECT count(*) AS n FROM public.platform_jobs j JOIN public.tenants t ON t.id = j.tenant_id \
             WHERE t.slug = 'acme' AND j.kind = 'migrate_tenant'"
        )
        .await,
        1
    );
    // The schema is back at this build's migrations, like globex (which was never touched).
    assert_eq!(
        jobs.count(&format!(
            "SELECT count(*) AS n FROM public.enclave_schema_migrations \
             WHERE schema_name = 'tenant_acme' AND version = '{}'",
            latest.version
        ))
        .await,
        1
    );
    assert_eq!(
        jobs.count(
            "SELECT count(*) AS n FROM public.enclave_schema_state a JOIN public.enclave_schema_state g \
             ON g.schema_name = 'tenant_globex' WHERE a.schema_name = 'tenant_acme' AND a.fingerprint = g.fingerprint"
        )
        .await,
        1
    );
    // Nothing more to do, now or after the next check.
    assert_eq!(runner.tick().await.expect("tick"), PlatformTick::Idle);
    jobs.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(runner.tick().await.expect("tick"), PlatformTick::Idle);
    assert_eq!(platform_jobs(&jobs).await.len(), 1);
}

#[tokio::test]
async fn platform_admins_export_a_tenant_through_a_platform_job_with_its_path_and_digest() {
    use common::app::error_code;
    use enclave::auth::Role;
    use enclave::jobs::platform::PlatformTick;
    use sha2::Digest as _;
    let jobs = Jobs::new().await;
    let root = jobs
        .app
        .user("platform", "root@platform.example", Role::PlatformAdmin)
        .await;
    let root = jobs.app.session("platform", &root).await;
    let admin = jobs.app.user("acme", "admin@acme.example", Role::Admin).await;
    let admin = jobs.app.session("acme", &admin).await;
    const EXPORT: &str =
        "mutation($slug: String!) { exportTenant(slug: $slug) { platformJob { id kind status } } }";
    let refused = jobs.app.gql(Some(&admin), EXPORT, json!({"slug": "acme"})).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    let missing = jobs.app.gql(Some(&root), EXPORT, json!({"slug": "nobody"})).await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"), "{missing}");
    assert_eq!(platform_jobs(&jobs).await.len(), 0);
    let queued = jobs.app.gql(Some(&root), EXPORT, json!({"slug": "acme"})).await;
    assert_eq!(
        queued["data"]["exportTenant"]["platformJob"]["status"], "QUEUED",
        "{queued}"
    );

    // A runner without an export directory dead-letters it at once, with a code.
    let tick = platform_runner(&jobs, None).tick().await.expect("tick");
    assert!(
        matches!(
            tick,
            PlatformTick::Ran {
                outcome: RunOutcome::Failed("NOT_CONFIGURED"),
                ..
            }
        ),
        "{tick:?}"
    );
    let failed = platform_jobs(&jobs).await;
    assert_eq!(
        (
            failed[0].status.as_str(),
            failed[0].attempts,
            failed[0].last_error.as_deref()
        ),
        ("failed", 1, Some("NOT_CONFIGURED"))
    );

    // With one, the next export is written, with its digest; an export whose worker died
    // (its lease expired) is run again by the next round.
    let dir = std::env::temp_dir().join(format!("enclave-exports-{}", uuid::Uuid::new_v4()));
    let runner = platform_runner(&jobs, Some(dir.clone()));
    let queued = jobs.app.gql(Some(&root), EXPORT, json!({"slug": "acme"})).await;
    assert!(queued["errors"].is_null(), "{queued}");
    jobs.sql(&format!(
        "INSERT INTO public.platform_jobs (kind, tenant_id, status, attempts, locked_until, lease_id, created_at) \
         VALUES ('tenant_export', '{}', 'running', 1, '2030-01-10T10:04:00Z', gen_random_uuid(), now() + interval '1 hour')",
        jobs.tenant_id("globex")
    ))
    .await;
    for _ in 0..2 {
        let tick = runner.tick().await.expect("tick");
        assert!(
            matches!(
                tick,
                PlatformTick::Ran {
                    outcome: RunOutcome::Succeeded,
                    ..
                }
            ),
            "{tick:?}"
        );
    }
    assert_eq!(runner.tick().await.expect("tick"), PlatformTick::Idle);
    let done = platform_jobs(&jobs).await;
    assert_eq!(done.len(), 3, "{done:?}");
    for (job, tenant, attempts) in [(&done[1], "acme", 1), (&done[2], "globex", 2)] {
        assert_eq!(
            (job.status.as_str(), job.attempts),
            ("succeeded", attempts),
            "{job:?}"
        );
        let result = job.result.as_ref().expect("result");
        assert_eq!(result["tenant"], tenant);
        let path = std::path::PathBuf::from(result["path"].as_str().expect("path"));
        assert_eq!(path.parent(), Some(dir.as_path()));
        assert!(
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&format!("{tenant}-")) && name.ends_with(".tar.gz")),
            "{path:?}"
        );
        let bytes = std::fs::read(&path).expect("the archive");
        assert_eq!(result["bytes"].as_u64(), Some(bytes.len() as u64));
        assert_eq!(result["sha256"], format!("{:x}", sha2::Sha256::digest(&bytes)));
    }
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("export dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
