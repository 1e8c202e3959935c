//! What components report over the edge endpoint: metrics and logs (a few statements per
//! batch), health events, discovered devices merged per identifier, alerts reaching the
//! tenant's subscriptions; certificates requested with a CSR and renewed over mTLS.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::app::TestApp;
use common::edge::*;
use common::subscribe::{open, subscriber};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// Tenant `acme` (with `globex` beside it) and a connected acme agent that has reported
/// the device `r1`.
struct Reporting {
    app: TestApp,
    acme: String,
    server: enclave::edge::listener::EdgeServer,
    config: rustls::ClientConfig,
    files: Files,
}

impl Reporting {
    async fn new() -> Self {
        let app = TestApp::new().await;
        let (acme, site) = tenant_with_site(&app, "acme").await;
        tenant_with_site(&app, "globex").await;
        let files = download_package(&app, &acme, &site, "AGENT").await;
        let server = edge_server(&app).await;
        let config = client_config(
            &files["ca-chain.pem"],
            &files["component.pem"],
            &files["component-key.pem"],
        );
        let reporting = Self {
            app,
            acme,
            server,
            config,
            files,
        };
        let (status, answer) = reporting
            .post("/edge/v1/devices", &json!({"devices": [{"hostname": "r1"}]}))
            .await;
        assert_eq!(status, 200, "{answer}");
        reporting
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post(self.server.address, &self.config, path, body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn count(&self, sql: &str) -> i64 {
        self.app.db.count(sql).await
    }
}

fn ts(second: usize) -> String {
    format!("2026-11-30T10:{:02}:{:02}Z", second / 60 % 60, second % 60)
}

#[tokio::test]
async fn ten_thousand_metric_points_are_a_few_statements_in_the_reporting_tenant_only() {
    let r = Reporting::new().await;
    let series: Vec<Value> = (0..9_993)
        .map(|i| json!({"deviceHostname": "r1", "name": "if_in_octets", "ts": ts(i), "value": i, "labels": {"if": "ge-0/0/1"}}))
        .collect();
    let cpu: Vec<Value> = (0..4)
        .map(|core| json!({"deviceHostname": "r1", "ts": ts(0), "core": core, "usagePercent": 12.5}))
        .collect();
    let batch = json!({
        "cpu": cpu,
        "memory": [{"deviceHostname": "r1", "ts": ts(0), "usedBytes": 1_000, "totalBytes": 4_000}],
        "disk": [{"deviceHostname": "r1", "ts": ts(0), "mount": "/", "usedBytes": 10, "totalBytes": 100},
                 {"deviceHostname": "r1", "ts": ts(0), "mount": "/var", "usedBytes": 20, "totalBytes": 100}],
        "series": series,
    });
    let before = r.app.app.db.statements();
    let (status, answer) = r.post("/edge/v1/metrics", &batch).await;
    let statements = r.app.app.db.statements() - before;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["received"].as_u64(), answer["written"].as_u64()),
        (Some(10_000), Some(10_000))
    );
    // Begin, the component check and its last_seen, the device names, one insert per
    // kind, commit: not one statement per point.
    assert!(statements <= 12, "{statements} statements for one batch");
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.timeseries_metrics")
            .await,
        9_993
    );
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.cpu_metrics").await,
        4
    );
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.disk_metrics")
            .await,
        2
    );
    for table in [
        "timeseries_metrics",
        "cpu_metrics",
        "memory_metrics",
        "disk_metrics",
    ] {
        let other = r
            .count(&format!("SELECT count(*) AS n FROM tenant_globex.{table}"))
            .await;
        assert_eq!(other, 0, "globex.{table}");
    }

    // Resending the keyed points writes nothing twice.
    let again = json!({"cpu": batch["cpu"], "memory": batch["memory"]});
    let (status, answer) = r.post("/edge/v1/metrics", &again).await;
    assert_eq!((status, answer["written"].as_u64()), (200, Some(0)), "{answer}");

    // A point naming an unknown device: the list and index, and nothing written.
    let bad = json!({
        "cpu": [{"deviceHostname": "r1", "ts": ts(1), "usagePercent": 50}],
        "series": [{"deviceHostname": "r1", "name": "x", "ts": ts(1), "value": 1},
                   {"deviceHostname": "r1", "name": "x", "ts": ts(2), "value": 1},
                   {"deviceHostname": "nowhere", "name": "x", "ts": ts(3), "value": 1}],
    });
    let (status, answer) = r.post("/edge/v1/metrics", &bad).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["list"], "series");
    assert_eq!(answer["error"]["index"], 2);
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.cpu_metrics").await,
        4
    );
    let bad = json!({"cpu": [{"deviceHostname": "r1", "ts": ts(1), "usagePercent": 101}]});
    let (status, answer) = r.post("/edge/v1/metrics", &bad).await;
    assert_eq!(
        (status, answer["error"]["list"].as_str()),
        (400, Some("cpu")),
        "{answer}"
    );
    let bad = json!({"cpu": [{"deviceHostname": "r1", "ts": "yesterday", "usagePercent": 1}]});
    let (status, answer) = r.post("/edge/v1/metrics", &bad).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{answer}"
    );
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"deviceHostname": "r1", "name": "x", "ts": ts(i), "value": 1}))
        .collect();
    let (status, answer) = r.post("/edge/v1/metrics", &json!({"series": too_many})).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.timeseries_metrics")
            .await,
        9_993
    );

    // The points are readable through GraphQL.
    let read = r
        .app
        .gql(
            Some(&r.acme),
            "{ devices(first: 1) { edges { node { hostname } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        read["data"]["devices"]["edges"][0]["node"]["hostname"], "r1",
        "{read}"
    );
}

#[tokio::test]
async fn logs_are_stored_with_their_source_and_a_bad_line_writes_none() {
    let r = Reporting::new().await;
    let logs = json!({"logs": [
        {"message": "link up", "deviceHostname": "r1", "severity": "info", "attributes": {"if": "ge-0/0/1"}},
        {"message": "agent started", "ts": ts(5)},
        {"message": "disk full", "severity": "error", "source": "syslog"},
    ]});
    let (status, answer) = r.post("/edge/v1/logs", &logs).await;
    assert_eq!((status, answer["written"].as_u64()), (200, Some(3)), "{answer}");
    let component = r.files["config.json"].clone();
    let component: Value = serde_json::from_str(&component).expect("config");
    let sources = r
        .app
        .db
        .names("SELECT source || ' ' || severity AS name FROM tenant_acme.logs ORDER BY id")
        .await;
    let own = format!(
        "edge:agent/{} info",
        component["componentId"].as_str().expect("id")
    );
    assert_eq!(sources, [own.clone(), own, "syslog error".to_owned()]);
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.logs WHERE device_id IS NOT NULL AND attributes->>'if' = 'ge-0/0/1'")
            .await,
        1
    );
    assert_eq!(r.count("SELECT count(*) AS n FROM tenant_globex.logs").await, 0);

    let bad = json!({"logs": [{"message": "fine"}, {"message": "loud", "severity": "apocalyptic"}]});
    let (status, answer) = r.post("/edge/v1/logs", &bad).await;
    assert_eq!(
        (status, answer["error"]["index"].as_u64()),
        (400, Some(1)),
        "{answer}"
    );
    assert_eq!(r.count("SELECT count(*) AS n FROM tenant_acme.logs").await, 3);
}

#[tokio::test]
async fn health_events_are_about_a_device_or_the_reporting_component() {
    let r = Reporting::new().await;
    let health = json!({"healthEvents": [
        {"status": "degraded", "message": "queue backing up"},
        {"status": "unhealthy", "deviceHostname": "r1", "occurredAt": ts(7)},
    ]});
    let (status, answer) = r.post("/edge/v1/health-events", &health).await;
    assert_eq!((status, answer["created"].as_u64()), (200, Some(2)), "{answer}");
    let seen = r
        .app
        .gql(
            Some(&r.acme),
            "{ healthEvents { edges { node { sourceKind sourceId status } } } \
               edgeComponents { edges { node { id } } } devices { edges { node { id hostname } } } }",
            json!({}),
        )
        .await;
    let component = seen["data"]["edgeComponents"]["edges"][0]["node"]["id"].clone();
    let device = seen["data"]["devices"]["edges"][0]["node"]["id"].clone();
    let mut events: Vec<(String, Value, String)> = seen["data"]["healthEvents"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{seen}"))
        .iter()
        .map(|e| {
            let node = &e["node"];
            (
                node["sourceKind"].as_str().unwrap_or_default().to_owned(),
                node["sourceId"].clone(),
                node["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        events,
        [
            ("DEVICE".to_owned(), device, "UNHEALTHY".to_owned()),
            ("EDGE_COMPONENT".to_owned(), component, "DEGRADED".to_owned()),
        ]
    );
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_globex.health_events")
            .await,
        0
    );
    let bad = json!({"healthEvents": [{"status": "on fire"}]});
    let (status, answer) = r.post("/edge/v1/health-events", &bad).await;
    assert_eq!(
        (status, answer["error"]["index"].as_u64()),
        (400, Some(0)),
        "{answer}"
    );
}

#[tokio::test]
async fn devices_sharing_an_identifier_are_merged_and_audited() {
    let r = Reporting::new().await;
    // Two reports (two transactions, so the first device is the older).
    for (device, created) in [
        (
            json!({"hostname": "sw1", "identifiers": [{"kind": "serial", "value": "SN-1"}]}),
            1,
        ),
        (
            json!({"hostname": "sw1-mgmt", "ip": "10.0.0.9", "identifiers": [{"kind": "mac", "value": "aa:bb:cc:00:00:01"}]}),
            1,
        ),
    ] {
        let (status, answer) = r.post("/edge/v1/devices", &json!({"devices": [device]})).await;
        assert_eq!(
            (status, answer["created"].as_u64()),
            (200, Some(created)),
            "{answer}"
        );
    }
    // A later report shows both identifiers on one device: the two were duplicates.
    let second = json!({"devices": [
        {"hostname": "sw1", "vendor": "Juniper", "identifiers": [
            {"kind": "serial", "value": "SN-1"}, {"kind": "mac", "value": "aa:bb:cc:00:00:01"}]},
    ]});
    let (status, answer) = r.post("/edge/v1/devices", &second).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["merged"].as_u64(), answer["updated"].as_u64()),
        (Some(1), Some(1))
    );
    let names = r
        .app
        .db
        .names("SELECT hostname || ' ' || coalesce(vendor, '-') || ' ' || coalesce(host(ip), '-') AS name FROM tenant_acme.devices WHERE hostname LIKE 'sw1%'")
        .await;
    // As mergeDevices: the oldest device stays with its own fields (the duplicate's are in
    // the audit's snapshot), updated by the record.
    assert_eq!(
        names,
        ["sw1 Juniper -"],
        "the duplicate is merged into the oldest"
    );
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.merge_audits WHERE merged_snapshot->>'hostname' = 'sw1-mgmt'")
            .await,
        1
    );
    assert_eq!(
        r.count("SELECT count(DISTINCT device_id) AS n FROM tenant_acme.device_identifiers WHERE value IN ('SN-1', 'aa:bb:cc:00:00:01')")
            .await,
        1
    );
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.merge_audits WHERE merged_by IS NULL AND reason LIKE 'edge:agent/%'")
            .await,
        1
    );
    // A record matched by identifier takes its new hostname.
    let renamed =
        json!({"devices": [{"hostname": "sw1-core", "identifiers": [{"kind": "serial", "value": "SN-1"}]}]});
    let (status, answer) = r.post("/edge/v1/devices", &renamed).await;
    assert_eq!((status, answer["updated"].as_u64()), (200, Some(1)), "{answer}");
    assert_eq!(
        r.app
            .db
            .names("SELECT hostname AS name FROM tenant_acme.devices WHERE hostname LIKE 'sw1%'")
            .await,
        ["sw1-core"]
    );
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_globex.device_identifiers")
            .await,
        0
    );
    let bad = json!({"devices": [{"hostname": "x", "identifiers": [{"kind": "dna", "value": "ACGT"}]}]});
    let (status, answer) = r.post("/edge/v1/devices", &bad).await;
    assert_eq!(
        (status, answer["error"]["index"].as_u64()),
        (400, Some(0)),
        "{answer}"
    );
    assert_eq!(
        r.count("SELECT count(*) AS n FROM tenant_acme.devices WHERE hostname = 'x'")
            .await,
        0
    );
}

#[tokio::test]
async fn alerts_from_the_edge_reach_the_tenants_subscribers_only() {
    let r = Reporting::new().await;
    let listener = r.app.app.changes.spawn_listener(r.app.db.url.clone());
    let schema = enclave::resolvers::build_schema(r.app.app.clone());
    let mut acme = open(
        &schema,
        subscriber(&r.app, "acme").await,
        "subscription { alertChanges { title device { hostname } } }",
    )
    .await;
    let mut globex = open(
        &schema,
        subscriber(&r.app, "globex").await,
        "subscription { alertChanges { title } }",
    )
    .await;
    let alerts = json!({"alerts": [{"title": "Fan failure", "severity": "major", "deviceHostname": "r1"}]});
    let (status, answer) = r.post("/edge/v1/alerts", &alerts).await;
    assert_eq!(status, 200, "{answer}");
    let change = tokio::time::timeout(Duration::from_secs(5), acme.next())
        .await
        .expect("a change within 5 s")
        .expect("the stream goes on");
    let value = change.data.into_json().expect("json");
    assert_eq!(value["alertChanges"]["title"], "Fan failure", "{value}");
    assert_eq!(value["alertChanges"]["device"]["hostname"], "r1");
    let leaked = tokio::time::timeout(Duration::from_millis(500), globex.next()).await;
    assert!(leaked.is_err(), "globex's subscriber saw acme's alert");
    listener.abort();
}

/// POSTs `body` to the main router.
async fn post_router(app: &TestApp, path: &str, body: &str, accept: &str) -> (StatusCode, String) {
    let request = Request::post(path)
        .header("accept", accept)
        .body(Body::from(body.to_owned()))
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A new key and a CSR for it (the names it asks for are ignored by Enclave).
fn key_and_csr() -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["anything.example".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "admin.globex.enclave");
    let csr = params.serialize_request(&key).expect("csr").pem().expect("pem");
    (key, csr)
}

#[tokio::test]
async fn a_csr_gets_a_certificate_for_its_own_key_and_a_bad_csr_spends_nothing() {
    let app = TestApp::new().await;
    let (acme, site) = tenant_with_site(&app, "acme").await;
    let created = create_package(&app, &acme, &site, "POLLER").await;
    let token = created["downloadToken"].as_str().expect("token");
    let path = format!("/onboarding/{token}");

    let (status, _) = post_router(&app, &path, "not a CSR", "*/*").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (key, csr) = key_and_csr();
    let tampered = csr.replacen("MII", "MIJ", 1);
    let (status, _) = post_router(&app, &path, &tampered, "*/*").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, answer) = post_router(&app, &path, &csr, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(answer["config"]["tenant"], "acme");
    let chain = answer["chain"].as_str().expect("chain");
    let issued = certs(chain);
    assert_eq!(issued.len(), 3, "leaf, tenant CA, root");
    let (_, leaf) = x509_parser::parse_x509_certificate(&issued[0]).expect("leaf");
    assert_eq!(
        leaf.public_key().subject_public_key.data.as_ref(),
        rcgen::PublicKeyData::der_bytes(&key),
        "the certificate is for the CSR's key"
    );
    let cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .expect("CN");
    assert!(
        cn.ends_with(".acme.enclave"),
        "Enclave's names, not the CSR's: {cn}"
    );

    // The component's own key and the issued chain work on the edge endpoint.
    let server = edge_server(&app).await;
    let config = client_config(chain, chain, &key.serialize_pem());
    let (status, beat) = post(server.address, &config, "/edge/v1/heartbeat", &json!({}))
        .await
        .expect("heartbeat");
    assert_eq!((status, beat["kind"].as_str()), (200, Some("poller")), "{beat}");

    // Spent now, for CSRs and downloads alike.
    let (status, _) = post_router(&app, &path, &csr, "*/*").await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _, _) = get(&app, &path).await;
    assert_eq!(status, StatusCode::GONE);
}

#[tokio::test]
async fn a_component_renews_its_certificate_and_revoking_it_revokes_every_certificate() {
    let r = Reporting::new().await;
    let (status, renewed) = r.post("/edge/v1/renew", &json!({})).await;
    assert_eq!(status, 200, "{renewed}");
    let new_config = client_config(
        renewed["chain"].as_str().expect("chain"),
        renewed["certificate"].as_str().expect("certificate"),
        renewed["key"].as_str().expect("a new key"),
    );
    let old_leaf = certs(&r.files["component.pem"]).remove(0);
    let new_leaf = certs(renewed["certificate"].as_str().expect("certificate")).remove(0);
    let subject = |der: &[u8]| {
        let (_, parsed) = x509_parser::parse_x509_certificate(der).expect("cert");
        let serial: String = parsed.raw_serial().iter().map(|b| format!("{b:02x}")).collect();
        (parsed.subject().to_string(), serial)
    };
    let (old_subject, old_serial) = subject(&old_leaf);
    let (new_subject, new_serial) = subject(&new_leaf);
    assert_eq!(old_subject, new_subject, "the same component");
    assert_ne!(old_serial, new_serial);
    let (status, beat) = post(r.server.address, &new_config, "/edge/v1/heartbeat", &json!({}))
        .await
        .expect("heartbeat with the renewed certificate");
    assert_eq!(status, 200, "{beat}");

    // With a CSR, no key comes back.
    let (key, csr) = key_and_csr();
    let (status, with_csr) = r.post("/edge/v1/renew", &json!({"csr": csr})).await;
    assert_eq!(status, 200, "{with_csr}");
    assert!(with_csr["key"].is_null());
    let csr_leaf = certs(with_csr["certificate"].as_str().expect("certificate")).remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(&csr_leaf).expect("cert");
    assert_eq!(
        parsed.public_key().subject_public_key.data.as_ref(),
        rcgen::PublicKeyData::der_bytes(&key)
    );
    let (status, _) = r.post("/edge/v1/renew", &json!({"csr": "garbage"})).await;
    assert_eq!(status, 400);

    let seen = r
        .app
        .gql(
            Some(&r.acme),
            "{ edgeComponents { edges { node { id serial } } } onboardingEvents { edges { node { event } } } }",
            json!({}),
        )
        .await;
    let components = seen["data"]["edgeComponents"]["edges"]
        .as_array()
        .expect("components");
    assert_eq!(components.len(), 3, "{seen}");
    let events: Vec<&str> = seen["data"]["onboardingEvents"]["edges"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["node"]["event"].as_str())
        .collect();
    assert_eq!(
        events.iter().filter(|e| **e == "RENEWED").count(),
        2,
        "{events:?}"
    );

    // Revoking the component (any of its certificates' ids) refuses all of them.
    let original = components
        .iter()
        .find(|c| c["node"]["serial"].as_str() == Some(old_serial.as_str()))
        .unwrap_or_else(|| panic!("the original certificate in {seen}"))["node"]["id"]
        .clone();
    let revoked = r
        .app
        .gql(
            Some(&r.acme),
            "mutation($id: ID!) { revokeEdgeComponent(input: {id: $id}) { edgeComponent { revokedAt } } }",
            json!({ "id": original }),
        )
        .await;
    assert!(revoked["errors"].is_null(), "{revoked}");
    for config in [&r.config, &new_config] {
        let (status, answer) = post(r.server.address, config, "/edge/v1/heartbeat", &json!({}))
            .await
            .expect("answered");
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("REVOKED")),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn edge_objects_are_nodes_for_admins_only() {
    let r = Reporting::new().await;
    let listed = r
        .app
        .gql(
            Some(&r.acme),
            "{ edgeComponents { edges { node { id serial } } } onboardingPackages { edges { node { id } } } \
               onboardingEvents { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let component = &listed["data"]["edgeComponents"]["edges"][0]["node"];
    let package = listed["data"]["onboardingPackages"]["edges"][0]["node"]["id"].clone();
    let event = listed["data"]["onboardingEvents"]["edges"][0]["node"]["id"].clone();
    let query = "query($c: ID!, $p: ID!, $e: ID!) { c: node(id: $c) { id ... on EdgeComponent { serial } } \
                 p: node(id: $p) { id } e: node(id: $e) { id } }";
    let variables = json!({ "c": component["id"], "p": package, "e": event });
    let found = r.app.gql(Some(&r.acme), query, variables.clone()).await;
    assert_eq!(found["data"]["c"]["serial"], component["serial"], "{found}");
    assert_eq!(found["data"]["p"]["id"], package);
    assert_eq!(found["data"]["e"]["id"], event);
    let viewer = r
        .app
        .user("acme", "viewer@acme.test", enclave::auth::Role::Viewer)
        .await;
    let viewer = r.app.session("acme", &viewer).await;
    let hidden = r.app.gql(Some(&viewer), query, variables).await;
    for alias in ["c", "p", "e"] {
        assert!(hidden["data"][alias].is_null(), "{hidden}");
    }
}

/// A component of `slug` of `kind` (an edge client and its component id).
async fn component(app: &TestApp, token: &str, site: &str, kind: &str) -> (rustls::ClientConfig, String) {
    let files = download_package(app, token, site, kind).await;
    let config: Value = serde_json::from_str(&files["config.json"]).expect("config.json");
    let id = config["componentId"].as_str().expect("componentId").to_owned();
    let client = client_config(
        &files["ca-chain.pem"],
        &files["component.pem"],
        &files["component-key.pem"],
    );
    (client, id)
}

/// The names of the schedules of the poll jobs a lease answer holds, sorted.
fn leased_names(answer: &Value) -> Vec<String> {
    let mut names: Vec<String> = answer["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|job| job["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn pollers_lease_their_tenants_poll_jobs_and_only_the_leaseholder_posts_a_result() {
    use enclave::jobs::clock::ManualClock;
    use enclave::jobs::worker::{Tick, Worker, WorkerOptions};

    let app = TestApp::new().await;
    let (acme, acme_site) = tenant_with_site(&app, "acme").await;
    let (globex, globex_site) = tenant_with_site(&app, "globex").await;
    let (poller, poller_id) = component(&app, &acme, &acme_site, "POLLER").await;
    let (agent, agent_id) = component(&app, &acme, &acme_site, "AGENT").await;
    let (checker, _) = component(&app, &acme, &acme_site, "CHECKER").await;
    let (other, _) = component(&app, &globex, &globex_site, "POLLER").await;
    let server = edge_server(&app).await;
    let address = server.address;

    // acme: `open` (any poller) and `mine` (assigned to the agent named like the agent
    // component); globex: `theirs`. All due a minute ago.
    let mut conn = app.db.conn().await;
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        &format!(
            "INSERT INTO tenant_acme.agents (name) VALUES ('{agent_id}'); \
             INSERT INTO tenant_acme.polling_schedules (name, target, interval_seconds, next_run_at, agent_id) \
             VALUES ('open', 'snmp://10.0.0.1', 60, now() - interval '1 minute', NULL), \
                    ('mine', 'snmp://10.0.0.2', 60, now() - interval '1 minute', \
                     (SELECT id FROM tenant_acme.agents WHERE name = '{agent_id}')); \
             INSERT INTO tenant_globex.polling_schedules (name, target, interval_seconds, next_run_at) \
             VALUES ('theirs', 'snmp://10.9.9.9', 60, now() - interval '1 minute')"
        ),
    )
    .await
    .expect("schedules");
    // The producer (a worker visiting each tenant) makes one poll job per schedule.
    let worker = Worker::new(
        app.app.db.clone(),
        app.app.directory.clone(),
        &app.db.url,
        std::sync::Arc::new(ManualClock::at(chrono::Utc::now())),
        WorkerOptions::default(),
        std::sync::Arc::default(),
    );
    for _ in 0..4 {
        if worker.tick().await.expect("tick") == Tick::Idle {
            break;
        }
    }
    let queued =
        |schema: &str| format!("SELECT count(*) AS n FROM {schema}.poll_jobs WHERE status = 'queued'");
    assert_eq!(app.db.count(&queued("tenant_acme")).await, 2);
    assert_eq!(app.db.count(&queued("tenant_globex")).await, 1);

    // Each caller gets what it may poll, once.
    let lease = async |config: &rustls::ClientConfig| {
        let (status, answer) = get_tls(address, config, "/edge/v1/poll-jobs?limit=10")
            .await
            .expect("lease");
        assert_eq!(status, 200, "{answer}");
        answer
    };
    let polled = lease(&poller).await;
    assert_eq!(leased_names(&polled), ["open"]);
    assert_eq!(polled["jobs"][0]["target"], "snmp://10.0.0.1");
    let open_id = polled["jobs"][0]["id"].as_str().expect("id").to_owned();
    let mine = lease(&agent).await;
    assert_eq!(leased_names(&mine), ["mine"]);
    let mine_id = mine["jobs"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(leased_names(&lease(&poller).await), Vec::<String>::new());
    let theirs = lease(&other).await;
    assert_eq!(leased_names(&theirs), ["theirs"]);
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT count(*) AS n FROM tenant_acme.poll_jobs WHERE status = 'running' \
                 AND leased_by = '{poller_id}' AND id = '{open_id}'"
            ))
            .await,
        1
    );

    // Checkers lease nothing; bad limits are refused.
    let (status, answer) = get_tls(address, &checker, "/edge/v1/poll-jobs")
        .await
        .expect("checker");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{answer}"
    );
    let (status, answer) = get_tls(address, &poller, "/edge/v1/poll-jobs?limit=0")
        .await
        .expect("limit");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{answer}"
    );

    // A result for another tenant's job, or another component's: refused, nothing changes.
    let done = json!({"status": "succeeded", "result": {"ifInOctets": 5}});
    let open_result = format!("/edge/v1/poll-jobs/{open_id}/result");
    for (config, who) in [(&other, "globex's poller"), (&agent, "acme's agent")] {
        let (status, answer) = post(address, config, &open_result, &done).await.expect(who);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (409, Some("NOT_LEASED")),
            "{who}: {answer}"
        );
    }
    let theirs_id = theirs["jobs"][0]["id"].as_str().expect("id");
    let (status, _) = post(
        address,
        &poller,
        &format!("/edge/v1/poll-jobs/{theirs_id}/result"),
        &done,
    )
    .await
    .expect("cross-tenant");
    assert_eq!(status, 409);
    let untouched =
        "SELECT count(*) AS n FROM tenant_acme.poll_jobs WHERE status = 'running' AND result IS NULL";
    assert_eq!(app.db.count(untouched).await, 2);
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_globex.poll_jobs WHERE status = 'running' AND result IS NULL")
            .await,
        1
    );

    // Bad results are refused.
    for bad in [
        json!({"status": "done"}),
        json!({"status": "succeeded", "result": [1, 2]}),
        json!({"status": "succeeded", "result": {"blob": "x".repeat(70_000)}}),
        json!({"status": "failed", "error": "e".repeat(1001)}),
    ] {
        let (status, answer) = post(address, &poller, &open_result, &bad).await.expect("bad");
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{answer}"
        );
    }
    let (status, answer) = post(address, &poller, "/edge/v1/poll-jobs/not-a-uuid/result", &done)
        .await
        .expect("bad id");
    assert_eq!(status, 400, "{answer}");

    // The leaseholder's result is recorded, once.
    let (status, answer) = post(address, &poller, &open_result, &done).await.expect("result");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT count(*) AS n FROM tenant_acme.poll_jobs WHERE id = '{open_id}' \
                 AND status = 'succeeded' AND (result->>'ifInOctets')::int = 5 AND finished_at IS NOT NULL"
            ))
            .await,
        1
    );
    let (status, _) = post(address, &poller, &open_result, &done).await.expect("again");
    assert_eq!(status, 409);
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_globex.poll_jobs WHERE status = 'running'")
            .await,
        1
    );

    // The agent's lease runs out (moved into the past): the next lease request returns its
    // job to the queue; the poller still may not take it, the agent takes it again.
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        &format!("UPDATE tenant_acme.poll_jobs SET locked_until = now() - interval '1 second' WHERE id = '{mine_id}'"),
    )
    .await
    .expect("expire");
    assert_eq!(leased_names(&lease(&poller).await), Vec::<String>::new());
    assert_eq!(
        app.db
            .count(&format!("SELECT count(*) AS n FROM tenant_acme.poll_jobs WHERE id = '{mine_id}' AND status = 'queued' AND leased_by IS NULL"))
            .await,
        1
    );
    let again = lease(&agent).await;
    assert_eq!(
        (leased_names(&again), again["jobs"][0]["attempt"].as_i64()),
        (vec!["mine".to_owned()], Some(2))
    );
    let failed = json!({"status": "failed", "error": "timeout talking to 10.0.0.2"});
    let (status, answer) = post(
        address,
        &agent,
        &format!("/edge/v1/poll-jobs/{mine_id}/result"),
        &failed,
    )
    .await
    .expect("failed result");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        app.db
            .count(&format!("SELECT count(*) AS n FROM tenant_acme.poll_jobs WHERE id = '{mine_id}' AND status = 'failed' AND error LIKE 'timeout%'"))
            .await,
        1
    );

    // Through GraphQL, the tenant sees its own runs (never globex's), by status and by
    // schedule, with what the pollers reported.
    let runs = "query($status: PollJobStatus, $schedule: ID) { pollJobs(status: $status, scheduleId: $schedule) { \
                nodes { id status attempts leasedBy result error schedule { id name } } } }";
    let answer = app.gql(Some(&acme), runs, json!({})).await;
    let nodes = answer["data"]["pollJobs"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    let mut names: Vec<&str> = nodes
        .iter()
        .map(|n| n["schedule"]["name"].as_str().expect("schedule name"))
        .collect();
    names.sort();
    assert_eq!(names, ["mine", "open"], "{answer}");
    assert!(!answer.to_string().contains("theirs"));
    let answer = app.gql(Some(&acme), runs, json!({"status": "SUCCEEDED"})).await;
    let nodes = &answer["data"]["pollJobs"]["nodes"];
    assert_eq!(nodes.as_array().map(Vec::len), Some(1), "{answer}");
    assert_eq!(nodes[0]["result"]["ifInOctets"], 5);
    assert_eq!(nodes[0]["leasedBy"], poller_id.as_str());
    let mine_schedule = {
        let answer = app.gql(Some(&acme), runs, json!({"status": "FAILED"})).await;
        let failed = &answer["data"]["pollJobs"]["nodes"][0];
        assert_eq!(
            (failed["attempts"].as_i64(), failed["error"].as_str()),
            (Some(2), Some("timeout talking to 10.0.0.2")),
            "{answer}"
        );
        failed["schedule"]["id"].as_str().expect("schedule id").to_owned()
    };
    let answer = app
        .gql(Some(&acme), runs, json!({"schedule": mine_schedule}))
        .await;
    assert_eq!(
        answer["data"]["pollJobs"]["nodes"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    let answer = app.gql(Some(&globex), runs, json!({})).await;
    let nodes = answer["data"]["pollJobs"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(nodes.len(), 1, "{answer}");
    assert_eq!(nodes[0]["schedule"]["name"], "theirs");
}
