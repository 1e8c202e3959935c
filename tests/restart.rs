//! Surviving the database: Enclave against a private PostgreSQL cluster that the test
//! restarts (`pg_ctl restart`), stops and starts again (`pg_ctl stop` / `start`), and whose
//! backends it terminates all at once (`pg_terminate_backend`). While the database is
//! down, requests get a coded 503 UNAVAILABLE (never INTERNAL, never a driver message) and
//! `/readyz` says so; once it is back, Enclave serves again by itself — request pool,
//! platform pool (login), the change feed's LISTEN (subscribers are told they may have
//! missed changes, and receive the next ones) — with no restart of Enclave.
//!
//! Skipped, with a message, only when the PostgreSQL server binaries are not installed.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::TestDb;
use common::app::{PASSWORD, TestApp};
use common::cluster::Cluster;
use common::subscribe::{open, subscriber};
use diesel_async::SimpleAsyncConnection;
use enclave::auth::Role;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Words of driver and server messages that must never reach a client.
const LEAKS: [&str; 9] = [
    "refused",
    "terminating",
    "127.0.0.1",
    "error connecting",
    "db error",
    "FATAL",
    "postgres",
    "shutting down",
    "closed",
];

/// `/readyz`: status and body.
async fn readyz(t: &TestApp) -> (StatusCode, String) {
    let request = Request::get("/readyz").body(Body::empty()).expect("request");
    let response = t.router.clone().oneshot(request).await.expect("router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// POSTs a GraphQL request as the bearer of `token`; returns the status, the
/// `Retry-After` header and the body.
async fn post(t: &TestApp, token: Option<&str>, query: &str) -> (StatusCode, Option<String>, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
    let (status, response_headers, body) = t.exchange(&headers, json!({ "query": query })).await;
    let retry_after = response_headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry_after, body)
}

const ME: &str = "{ me { role tenant { slug } } devices { nodes { hostname } } }";

fn create_device(hostname: &str) -> String {
    format!("mutation {{ createDevice(input: {{hostname: \"{hostname}\"}}) {{ device {{ hostname }} }} }}")
}

fn login() -> String {
    format!("mutation {{ login(email: \"owner@acme.example\", password: \"{PASSWORD}\") {{ token }} }}")
}

/// The answer to a request while the database is down: 503, `Retry-After`, every error
/// UNAVAILABLE with a message that names nothing of the database.
fn assert_unavailable(what: &str, (status, retry_after, body): &(StatusCode, Option<String>, Value)) {
    eprintln!("{what} while the database is down: {status} {body}");
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(retry_after.is_some(), "{what}: Retry-After");
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: errors in {body}"));
    assert!(!errors.is_empty(), "{what}: {body}");
    for error in errors {
        assert_eq!(error["extensions"]["code"], "UNAVAILABLE", "{what}: {body}");
        let message = error["message"].as_str().unwrap_or_default();
        assert_eq!(message, "the database is unavailable; retry later", "{what}");
        for leak in LEAKS {
            assert!(!message.contains(leak), "{what}: {message:?} leaks {leak:?}");
        }
    }
}

/// Whether a `{ me … }` request succeeds (200, acme's admin, no error).
fn served((status, _, body): &(StatusCode, Option<String>, Value)) -> bool {
    *status == StatusCode::OK
        && body.get("errors").is_none()
        && body["data"]["me"]["tenant"]["slug"] == "acme"
}

/// Retries `{ me … }` until it is served, for at most a minute (the database has just come
/// back; Enclave must find it by itself). Returns the failed answers seen before.
async fn until_served(t: &TestApp, token: &str) -> Vec<Value> {
    let mut failures = Vec::new();
    for _ in 0..120 {
        let answer = post(t, Some(token), ME).await;
        if served(&answer) {
            return failures;
        }
        failures.push(answer.2);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("Enclave did not recover: {failures:?}");
}

/// The next item of a subscription, within `secs` seconds.
async fn next(
    stream: &mut futures_util::stream::BoxStream<'_, async_graphql::Response>,
    secs: u64,
) -> async_graphql::Response {
    tokio::time::timeout(Duration::from_secs(secs), stream.next())
        .await
        .expect("a subscription item in time")
        .expect("the subscription goes on")
}

fn code(response: &async_graphql::Response) -> Option<String> {
    response.errors.first().and_then(|e| {
        e.extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .map(|c| c.to_string().trim_matches('"').to_owned())
    })
}

/// Inserts an alert as the owner (what the edge or a mutation would do) and expects the
/// subscriber to receive it, after at most one "may have missed" notice.
async fn alert_reaches_subscriber(
    t: &TestApp,
    stream: &mut futures_util::stream::BoxStream<'_, async_graphql::Response>,
    title: &str,
) {
    t.db.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO tenant_acme.alerts (severity, title) VALUES ('major', '{title}')"
        ))
        .await
        .expect("alert");
    let mut item = next(stream, 15).await;
    if code(&item).as_deref() == Some("UNAVAILABLE") {
        item = next(stream, 15).await;
    }
    assert!(item.errors.is_empty(), "{:?}", item.errors);
    let value = item.data.into_json().expect("json");
    assert_eq!(value["alertChanges"]["title"], title, "{value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enclave_serves_again_by_itself_after_the_database_restarts_stops_or_loses_its_backends() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let name = "enclave_restart";
    let t = TestApp::on(TestDb::elsewhere(name, cluster.url(name)), |database, _| {
        database.pool_size = 4;
        // Waits for a connection while the database is down end after this long.
        database.pool_timeout_ms = 1000;
    })
    .await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    let admin = t.user("acme", "owner@acme.example", Role::Admin).await;
    let token = t.session("acme", &admin).await;
    let listener = t.app.changes.spawn_listener(t.db.url.clone());
    let schema = enclave::resolvers::build_schema(t.app.clone());
    let mut stream = open(
        &schema,
        subscriber(&t, "acme").await,
        "subscription { alertChanges { title } }",
    )
    .await;

    assert!(served(&post(&t, Some(&token), ME).await));
    assert_eq!(readyz(&t).await, (StatusCode::OK, "ready".to_owned()));
    alert_reaches_subscriber(&t, &mut stream, "before anything").await;

    // 1. Every backend terminated (an operator's kill, a failover's fencing): the next
    //    requests are served on new connections, none fails.
    let killed = cluster_count(
        &cluster,
        "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND backend_type = 'client backend') AS killed",
    )
    .await;
    assert!(killed >= 2, "request connections and the listener: {killed}");
    for round in 0..3 {
        let answer = post(&t, Some(&token), ME).await;
        assert!(served(&answer), "round {round} after terminate: {:?}", answer.2);
    }
    let (status, _, body) = post(&t, Some(&token), &create_device("after-terminate")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["createDevice"]["device"]["hostname"],
        "after-terminate"
    );
    let (status, _, body) = post(&t, None, &login()).await;
    assert!(body["data"]["login"]["token"].is_string(), "{status} {body}");
    // The feed's listener was killed too: the subscriber is told, then gets changes again.
    let notice = next(&mut stream, 15).await;
    assert_eq!(
        code(&notice).as_deref(),
        Some("UNAVAILABLE"),
        "{:?}",
        notice.errors
    );
    alert_reaches_subscriber(&t, &mut stream, "after terminate").await;

    // 2. The database stops: coded 503s, /readyz 503, the subscription stays open.
    cluster.stop();
    assert_unavailable("query", &post(&t, Some(&token), ME).await);
    assert_unavailable(
        "mutation",
        &post(&t, Some(&token), &create_device("while-down")).await,
    );
    assert_unavailable("login", &post(&t, None, &login()).await);
    let (status, reason) = readyz(&t).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reason, "database unavailable");
    // Longer than the subscription's re-authorization period: it must not end meanwhile.
    tokio::time::sleep(enclave::resolvers::subscriptions::REAUTHORIZE_EVERY + Duration::from_secs(1)).await;

    // …and starts again: Enclave finds it by itself.
    cluster.start_again();
    until_served(&t, &token).await;
    assert_eq!(readyz(&t).await.0, StatusCode::OK);
    let (status, _, body) = post(&t, Some(&token), &create_device("after-start")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, body) = post(&t, None, &login()).await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
    let notice = next(&mut stream, 30).await;
    assert_eq!(
        code(&notice).as_deref(),
        Some("UNAVAILABLE"),
        "{:?}",
        notice.errors
    );
    alert_reaches_subscriber(&t, &mut stream, "after start").await;

    // 3. `pg_ctl restart`: the first requests after it are served.
    cluster.restart();
    for round in 0..3 {
        let answer = post(&t, Some(&token), ME).await;
        assert!(served(&answer), "round {round} after restart: {:?}", answer.2);
    }
    let (_, _, body) = post(&t, None, &login()).await;
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
    let notice = next(&mut stream, 30).await;
    assert_eq!(
        code(&notice).as_deref(),
        Some("UNAVAILABLE"),
        "{:?}",
        notice.errors
    );
    alert_reaches_subscriber(&t, &mut stream, "after restart").await;

    // Nothing written while the database was down; everything written around it is there,
    // in acme only.
    let (_, _, body) = post(&t, Some(&token), ME).await;
    let mut hosts: Vec<String> = body["data"]["devices"]["nodes"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["hostname"].as_str().unwrap_or_default().to_owned())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["after-start", "after-terminate"]);
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_globex.devices")
            .await,
        0
    );
    listener.abort();
}

/// A `count(*) AS n` query on the cluster's maintenance database.
async fn cluster_count(cluster: &Cluster, sql: &str) -> i64 {
    use diesel::QueryableByName;
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = enclave::db::connect(&cluster.url("postgres"))
        .await
        .expect("connect to the cluster");
    let row: Count = diesel::sql_query(sql)
        .get_result(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.n
}
