//! Surviving the database: Enclave against a private PostgreSQL cluster that the test
//! restarts (`pg_ctl restart`), stops and starts again (`pg_ctl stop` / `start`), and whose
//! backends it terminates all at once (`pg_terminate_backend`). While the database is
//! down, requests get a coded 503 UNAVAILABLE (never INTERNAL, never a driver message) and
//! `/readyz` says so; once it is back, Enclave serves again by itself — request pool,
//! platform pool (login), the change feed's LISTEN (subscribers are told they may have
//! missed changes, and receive the next ones) — with no restart of Enclave.
//!
//! NATS too (with a private `nats-server`, see `common::nats`): after the backends are
//! terminated and after the database stops and starts again, a component's heartbeats land
//! again in its tenant's schema and committed changes are published again on the tenant's
//! subject, once the change feed listens again. Heartbeats published while the database is
//! down are lost (delivery is at most once) and not asserted on.
//!
//! Skipped, with a message, only when the PostgreSQL server binaries are not installed.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::TestDb;
use common::app::{PASSWORD, TestApp};
use common::cluster::Cluster;
use common::nats::{NatsServer, connect, edge_site, next_message, package};
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

/// Heartbeats `component` of acme (as its poller `poller`) until one lands in acme's schema,
/// for at most a minute; acme's `last_seen` is cleared first. globex's components are never
/// seen: the tenant is the publishing account's.
async fn heartbeat_lands(t: &TestApp, poller: &async_nats::Client, component: &Value) {
    const SEEN: &str = "SELECT count(*) AS n FROM tenant_acme.edge_components WHERE last_seen IS NOT NULL";
    t.db.conn()
        .await
        .batch_execute("UPDATE tenant_acme.edge_components SET last_seen = NULL")
        .await
        .expect("forget earlier heartbeats");
    let beat = json!({ "componentId": component }).to_string();
    let mut landed = false;
    for _ in 0..60 {
        poller
            .publish("acme.pollers.heartbeat", beat.clone().into())
            .await
            .expect("sent");
        poller.flush().await.expect("flush");
        for _ in 0..10 {
            if t.db.count(SEEN).await == 1 {
                landed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if landed {
            break;
        }
    }
    assert!(landed, "no heartbeat landed in acme within a minute");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_globex.edge_components WHERE last_seen IS NOT NULL")
            .await,
        0
    );
}

/// Waits (at most a minute) until the change feed tells acme's subscribers it is listening
/// again after a lost connection (`feed` is such a subscriber).
async fn feed_listening_again(feed: &mut tokio::sync::broadcast::Receiver<enclave::changes::FeedItem>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, feed.recv()).await {
            Ok(Ok(enclave::changes::FeedItem::MayHaveMissed)) => return,
            Ok(Ok(enclave::changes::FeedItem::Changed(_)))
            | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => panic!("the feed closed"),
            Err(_) => panic!("the change feed did not listen again within a minute"),
        }
    }
}

/// Creates a device in acme through GraphQL (retrying, for at most a minute, while the
/// database is not back yet) and expects acme's NATS subscriber `heard` to receive exactly
/// it next on `acme.devices.changed` (acme's heartbeats aside).
async fn device_is_published(t: &TestApp, token: &str, heard: &mut async_nats::Subscriber, hostname: &str) {
    let mut answers = Vec::new();
    let mut created = None;
    for _ in 0..120 {
        let (status, _, body) = post(t, Some(token), &create_device_with_id(hostname)).await;
        if status == StatusCode::OK && body.get("errors").is_none() {
            created = Some(body);
            break;
        }
        answers.push(body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let created = created.unwrap_or_else(|| panic!("no device created: {answers:?}"));
    let id = created["data"]["createDevice"]["device"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    loop {
        let (subject, body) = next_message(heard).await;
        if subject == "acme.pollers.heartbeat" {
            continue; // the poller's own heartbeats
        }
        assert_eq!(subject, "acme.devices.changed", "{body}");
        assert_eq!(
            body,
            json!({ "id": id.as_str(), "type": "Device", "tenant": "acme" })
        );
        return;
    }
}

fn create_device_with_id(hostname: &str) -> String {
    format!("mutation {{ createDevice(input: {{hostname: \"{hostname}\"}}) {{ device {{ id }} }} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_database_restarts_nats_heartbeats_land_and_committed_changes_are_published_again() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let name = "enclave_nats_restart";
    let t = TestApp::on(TestDb::elsewhere(name, cluster.url(name)), |database, auth| {
        database.pool_size = 4;
        database.pool_timeout_ms = 1000;
        // Only switches NATS on; the test connects to its own server below.
        auth.nats.nats_url = Some("nats://127.0.0.1:1".to_owned());
    })
    .await;
    let mut tokens = Vec::new();
    let mut packages = Vec::new();
    for slug in ["acme", "globex"] {
        t.tenant(slug, &[]).await;
        let admin = t.user(slug, &format!("owner@{slug}.example"), Role::Admin).await;
        let token = t.session(slug, &admin).await;
        let site = edge_site(&t, &token, &format!("{slug} site")).await;
        packages.push(package(&t, &token, &site, "POLLER").await);
        tokens.push(token);
    }
    let (acme, token) = (&packages[0], &tokens[0]);
    let server = NatsServer::for_app(&t, false).await;
    let listener = t.app.changes.spawn_listener(t.db.url.clone());
    let link = enclave::nats::start(t.app.clone(), &server.url)
        .await
        .expect("NATS link");
    link.client.flush().await.expect("flush");
    // A subscriber of acme's feed: it is told when the feed's LISTEN is back.
    let mut feed = t.app.changes.subscribe("tenant_acme");
    let config: Value = serde_json::from_str(&acme["config.json"]).expect("config");
    let component = &config["componentId"];
    let (poller, _) = connect(&server.url, &acme["nats.creds"]).await;
    let mut heard = poller.subscribe("acme.>").await.expect("subscribe");
    poller.flush().await.expect("flush");

    // Before: a heartbeat lands in acme, a committed device is published on acme's subject.
    heartbeat_lands(&t, &poller, component).await;
    device_is_published(&t, token, &mut heard, "before").await;

    // 1. Every backend terminated, the feed's LISTEN connection among them.
    let killed = cluster_count(
        &cluster,
        "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND backend_type = 'client backend') AS killed",
    )
    .await;
    assert!(killed >= 2, "request connections and the listener: {killed}");
    heartbeat_lands(&t, &poller, component).await;
    feed_listening_again(&mut feed).await;
    device_is_published(&t, token, &mut heard, "after-terminate").await;

    // 2. The database stops. Heartbeats published meanwhile find no connection and are
    //    lost (delivery is at most once, see `enclave::nats`): one is sent, nothing is
    //    asserted about it; the wait outlasts the pool timeout, so it is settled before
    //    the database is back.
    cluster.stop();
    poller
        .publish(
            "acme.pollers.heartbeat",
            json!({ "componentId": component }).to_string().into(),
        )
        .await
        .expect("sent");
    poller.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // …and starts again: with no restart of Enclave nor of NATS, heartbeats land again in
    // acme only and the feed, listening again, publishes committed changes.
    cluster.start_again();
    heartbeat_lands(&t, &poller, component).await;
    feed_listening_again(&mut feed).await;
    device_is_published(&t, token, &mut heard, "after-start").await;
    assert!(link.client.connection_state() == async_nats::connection::State::Connected);

    link.stop();
    listener.abort();
}
