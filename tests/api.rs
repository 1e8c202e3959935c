//! The inventory and monitoring API: one SQL statement per level (not per row), limits
//! refused before any SQL runs, bad input refused with the right code and no write,
//! all-or-nothing mutations, roles, pagination.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::app::{TestApp, error_code};
use diesel_async::SimpleAsyncConnection;
use enclave::auth::Role;
use enclave::config::LimitsConfig;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Fixture {
    t: TestApp,
    admin: String,
    viewer: String,
    operator: String,
}

async fn fixture_with(limits: LimitsConfig) -> Fixture {
    let t = TestApp::with_limits(limits).await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
    let viewer = t.user("acme", "viewer@acme.example", Role::Viewer).await;
    let operator = t.user("acme", "ops@acme.example", Role::Operator).await;
    Fixture {
        admin: t.session("acme", &admin).await,
        viewer: t.session("acme", &viewer).await,
        operator: t.session("acme", &operator).await,
        t,
    }
}

async fn fixture() -> Fixture {
    fixture_with(LimitsConfig::default()).await
}

/// `n` devices in `schema`, each with two interfaces, in one group, with one open and one
/// resolved alert, and an event.
async fn seed(t: &TestApp, schema: &str, n: usize) {
    t.db.conn()
        .await
        .batch_execute(&format!(
            "SET search_path TO {schema};
             INSERT INTO device_groups (name) VALUES ('core');
             INSERT INTO devices (hostname, ip, status, group_id)
               SELECT format('{schema}-dev-%s', lpad(i::text, 4, '0')), ('10.0.' || (i / 250) || '.' || (i % 250 + 1))::inet,
                      'up', (SELECT id FROM device_groups)
               FROM generate_series(1, {n}) i;
             INSERT INTO interfaces (device_id, name, if_index) SELECT id, 'eth0', 1 FROM devices;
             INSERT INTO interfaces (device_id, name, if_index) SELECT id, 'eth1', 2 FROM devices;
             INSERT INTO alerts (device_id, severity, title) SELECT id, 'major', 'link down on ' || hostname FROM devices;
             INSERT INTO alerts (device_id, severity, status, title) SELECT id, 'minor', 'resolved', 'old' FROM devices;
             INSERT INTO events (device_id, kind, message) SELECT id, 'link_down', hostname FROM devices;
             RESET search_path;"
        ))
        .await
        .expect("seed");
}

const NESTED: &str = "query($n: Int!) { devices(first: $n) { totalCount edges { node { hostname \
    interfaces { nodes { name device { hostname } } } group { name } \
    openAlerts(first: 5) { totalCount nodes { title } } recentEvents(first: 5) { totalCount nodes { kind } } \
    firstInterface: interfaces(first: 1) { totalCount pageInfo { hasNextPage } nodes { name } } } } } }";

#[tokio::test]
async fn a_nested_list_costs_one_statement_per_level_not_per_row() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 100).await;
    seed(&f.t, "tenant_globex", 5).await;
    let mut counts = Vec::new();
    for n in [10, 100] {
        let before = f.t.app.db.statements();
        let response = f.t.gql(Some(&f.admin), NESTED, json!({ "n": n })).await;
        counts.push(f.t.app.db.statements() - before);
        let edges = response["data"]["devices"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), n, "{response}");
        assert_eq!(response["data"]["devices"]["totalCount"], 100);
        let first = &edges[0]["node"];
        assert_eq!(first["interfaces"]["nodes"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            first["interfaces"]["nodes"][0]["device"]["hostname"],
            first["hostname"]
        );
        assert_eq!(first["group"]["name"], "core");
        assert_eq!(first["openAlerts"]["nodes"].as_array().map(Vec::len), Some(1));
        // Nested lists are pages: `first: 1` of two interfaces answers one, and says more
        // follow; `totalCount` counts the device's whole list (one open alert of two).
        for edge in edges {
            let page = &edge["node"]["firstInterface"];
            assert_eq!(page["nodes"].as_array().map(Vec::len), Some(1), "{page}");
            assert_eq!(page["nodes"][0]["name"], "eth0", "{page}");
            assert_eq!(page["pageInfo"]["hasNextPage"], true, "{page}");
            assert_eq!(page["totalCount"], 2, "{page}");
            assert_eq!(edge["node"]["openAlerts"]["totalCount"], 1, "{edge}");
            assert_eq!(edge["node"]["recentEvents"]["totalCount"], 1, "{edge}");
        }
        assert!(
            !response.to_string().contains("tenant_globex"),
            "globex rows leaked"
        );
    }
    // BEGIN batch, credential check, page, count, interfaces (two pages: all and first 1),
    // interface devices, groups, alerts, events, COMMIT: the same for 10 and 100 devices
    // (the nested totalCounts are counted by the statements that read the pages).
    assert_eq!(counts[0], counts[1], "statements grew with the rows: {counts:?}");
    assert!(counts[1] <= 11, "too many statements: {counts:?}");
}

#[tokio::test]
async fn nested_total_counts_cost_no_statement_and_count_the_parents_whole_list() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 30).await;
    seed(&f.t, "tenant_globex", 5).await;
    f.t.db
        .conn()
        .await
        .batch_execute(
            "SET search_path TO tenant_acme;
             INSERT INTO gateways (name) SELECT 'gw-' || i FROM generate_series(1, 3) i;
             INSERT INTO agents (name, gateway_id)
               SELECT g.name || '-agent-' || i, g.id FROM gateways g, generate_series(1, 4) i;
             INSERT INTO checkers (agent_id, name, kind)
               SELECT a.id, 'chk-' || i, 'icmp' FROM agents a, generate_series(1, 5) i;
             RESET search_path;",
        )
        .await
        .expect("seed");
    let counted = "{ gateways { nodes { id agents(first: 2) { totalCount pageInfo { hasNextPage endCursor } \
        nodes { name checkers(first: 1) { totalCount nodes { name } } } } } } \
        deviceGroups { nodes { name devices(first: 5) { totalCount nodes { hostname } } } } }";
    let uncounted = counted.replace("totalCount ", "");
    let before = f.t.app.db.statements();
    let plain = f.t.gql(Some(&f.viewer), &uncounted, json!({})).await;
    let without = f.t.app.db.statements() - before;
    let before = f.t.app.db.statements();
    let response = f.t.gql(Some(&f.viewer), counted, json!({})).await;
    let with = f.t.app.db.statements() - before;
    assert!(plain["errors"].is_null(), "{plain}");
    assert_eq!(with, without, "totalCount added statements");
    let gateways = response["data"]["gateways"]["nodes"]
        .as_array()
        .expect("gateways");
    assert_eq!(gateways.len(), 3, "{response}");
    for gateway in gateways {
        let agents = &gateway["agents"];
        assert_eq!(agents["totalCount"], 4, "{agents}");
        assert_eq!(agents["nodes"].as_array().map(Vec::len), Some(2), "{agents}");
        for agent in agents["nodes"].as_array().expect("agents") {
            assert_eq!(agent["checkers"]["totalCount"], 5, "{agent}");
            assert_eq!(agent["checkers"]["nodes"].as_array().map(Vec::len), Some(1));
        }
    }
    let group = &response["data"]["deviceGroups"]["nodes"][0];
    assert_eq!(group["devices"]["totalCount"], 30, "{group}");
    assert_eq!(group["devices"]["nodes"].as_array().map(Vec::len), Some(5));
    assert!(!response.to_string().contains("globex"), "globex rows leaked");

    // A page past the end is empty and still has the whole list's count.
    let gateway = &gateways[0];
    let last = "query($id: ID!, $after: String) { node(id: $id) { ... on Gateway { \
        agents(first: 4, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { name } } } } }";
    let all =
        f.t.gql(Some(&f.viewer), last, json!({ "id": gateway["id"] }))
            .await;
    let end = &all["data"]["node"]["agents"]["pageInfo"]["endCursor"];
    assert_eq!(
        all["data"]["node"]["agents"]["pageInfo"]["hasNextPage"], false,
        "{all}"
    );
    let past =
        f.t.gql(
            Some(&f.viewer),
            last,
            json!({ "id": gateway["id"], "after": end }),
        )
        .await;
    let agents = &past["data"]["node"]["agents"];
    assert_eq!(agents["nodes"].as_array().map(Vec::len), Some(0), "{past}");
    assert_eq!(agents["totalCount"], 4, "{past}");
}

#[tokio::test]
async fn nested_lists_are_bounded_pages_that_walk_on_with_their_cursor() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 2).await;
    // 120 events on the first device: more than the default page of 50.
    f.t.db
        .conn()
        .await
        .batch_execute(
            "INSERT INTO tenant_acme.events (device_id, kind, message, occurred_at)
             SELECT d.id, 'poll', 'poll ' || i, now() - i * interval '1 minute'
             FROM tenant_acme.devices d, generate_series(1, 120) i
             WHERE d.hostname = 'tenant_acme-dev-0001'",
        )
        .await
        .expect("events");
    let query = "query($first: Int, $after: String) { devices(first: 2) { edges { node { hostname \
        recentEvents(first: $first, after: $after) { pageInfo { hasNextPage hasPreviousPage endCursor } \
        nodes { message } } interfaces(first: $first, after: $after) { nodes { name } } } } } }";
    let response = f.t.gql(Some(&f.viewer), query, json!({})).await;
    let busy = &response["data"]["devices"]["edges"][0]["node"]["recentEvents"];
    assert_eq!(busy["nodes"].as_array().map(Vec::len), Some(50), "{response}");
    assert_eq!(busy["pageInfo"]["hasNextPage"], true);
    let quiet = &response["data"]["devices"]["edges"][1]["node"]["recentEvents"];
    assert_eq!(quiet["nodes"].as_array().map(Vec::len), Some(1), "{response}");
    assert_eq!(quiet["pageInfo"]["hasNextPage"], false);

    // Walking the busy device's events on from its cursor: no gap, no repeat, newest first.
    let one = "query($first: Int, $after: String) { devices(first: 1) { edges { node { \
        recentEvents(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { message } } } } } }";
    let (mut after, mut seen) = (Value::Null, Vec::new());
    loop {
        let page =
            f.t.gql(Some(&f.viewer), one, json!({ "first": 40, "after": after }))
                .await;
        let events = &page["data"]["devices"]["edges"][0]["node"]["recentEvents"];
        let nodes = events["nodes"].as_array().expect("nodes");
        seen.extend(
            nodes
                .iter()
                .filter_map(|n| n["message"].as_str().map(str::to_owned)),
        );
        if events["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = events["pageInfo"]["endCursor"].clone();
        assert!(seen.len() < 500, "the pages never end");
    }
    // 120 polls (the newest, `poll 1`, first) and the seeded event (occurred now, newer).
    assert_eq!(seen.len(), 121, "{seen:?}");
    assert_eq!(seen[1], "poll 1");
    assert_eq!(seen[120], "poll 120");

    // The page size is capped like any list's, before any SQL runs.
    let before = f.t.app.db.statements();
    let too_big = f.t.gql(Some(&f.viewer), query, json!({ "first": 100_000 })).await;
    assert_eq!(error_code(&too_big), Some("BAD_USER_INPUT"), "{too_big}");
    assert_eq!(f.t.app.db.statements(), before, "refused after SQL ran");
}

#[tokio::test]
async fn a_single_device_by_id_waits_for_no_batching_delay_and_sees_its_relations() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 3).await;
    let list =
        f.t.gql(
            Some(&f.viewer),
            "{ devices(first: 1) { edges { node { id hostname } } } }",
            json!({}),
        )
        .await;
    let id = list["data"]["devices"]["edges"][0]["node"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let one = f
        .t
        .gql(Some(&f.viewer), "query($id: ID!) { device(id: $id) { hostname interfaces { nodes { name } } } node(id: $id) { id ... on Device { hostname } } }", json!({ "id": id }))
        .await;
    assert_eq!(one["data"]["device"]["hostname"], "tenant_acme-dev-0001", "{one}");
    assert_eq!(one["data"]["node"]["hostname"], "tenant_acme-dev-0001");
    assert_eq!(
        one["data"]["device"]["interfaces"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn pages_walk_forward_and_backward_without_gaps_or_repeats() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 25).await;
    let page = "query($after: String, $before: String, $first: Int, $last: Int) { devices(first: $first, after: $after, last: $last, before: $before) { pageInfo { hasNextPage hasPreviousPage endCursor startCursor } edges { node { hostname } } } }";
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r =
            f.t.gql(Some(&f.viewer), page, json!({ "first": 10, "after": after }))
                .await;
        let devices = &r["data"]["devices"];
        seen.extend(
            devices["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"]["hostname"].as_str().unwrap_or_default().to_owned()),
        );
        if devices["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = devices["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = (1..=25).map(|i| format!("tenant_acme-dev-{i:04}")).collect();
    assert_eq!(seen, expected);
    let back =
        f.t.gql(Some(&f.viewer), page, json!({ "last": 5, "before": after }))
            .await;
    let names: Vec<&str> = back["data"]["devices"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["hostname"].as_str())
        .collect();
    assert_eq!(
        names,
        expected[14..19].iter().map(String::as_str).collect::<Vec<_>>(),
        "{back}"
    );
}

#[tokio::test]
async fn filters_narrow_devices_alerts_and_events() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 30).await;
    let q = |filter: Value| {
        let f = &f;
        async move {
            f.t.gql(
                Some(&f.viewer),
                "query($f: DeviceFilter) { devices(filter: $f, first: 100) { totalCount } }",
                json!({ "f": filter }),
            )
            .await["data"]["devices"]["totalCount"]
                .clone()
        }
    };
    assert_eq!(q(json!({ "search": "TENANT_ACME-DEV-001" })).await, 10);
    assert_eq!(q(json!({ "search": "10.0.0.5" })).await, 1);
    assert_eq!(q(json!({ "status": ["DOWN"] })).await, 0);
    assert_eq!(
        q(json!({ "search": "%" })).await,
        0,
        "LIKE wildcards must be literal"
    );
    let alerts = f.t.gql(Some(&f.viewer), "{ alerts(filter: {status: [OPEN], severity: [MAJOR]}, first: 100) { edges { node { status severity device { hostname } } } } }", json!({})).await;
    assert_eq!(
        alerts["data"]["alerts"]["edges"].as_array().map(Vec::len),
        Some(30),
        "{alerts}"
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let events =
        f.t.gql(
            Some(&f.viewer),
            "query($from: DateTime) { events(filter: {from: $from}) { edges { node { kind } } } }",
            json!({ "from": future }),
        )
        .await;
    assert_eq!(
        events["data"]["events"]["edges"].as_array().map(Vec::len),
        Some(0),
        "{events}"
    );
}

async fn raw(t: &TestApp, request: Request<Body>) -> (StatusCode, Value) {
    let response = t.router.clone().oneshot(request).await.expect("answer");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn abusive_requests_are_refused_before_any_sql_runs() {
    let f = fixture().await;
    let bearer = format!("Bearer {}", f.admin);
    let mut deep = String::from("hostname");
    for i in 0..25 {
        deep = if i % 2 == 0 {
            format!("interfaces {{ nodes {{ device {{ {deep} }} }} }}")
        } else {
            format!("interfaces {{ nodes {{ name device {{ {deep} }} }} }}")
        };
    }
    let aliases: String = (0..10_000).map(|i| format!("a{i}: health {{ ok }} ")).collect();
    // Each series is under the per-field bucket cap; together they exceed the complexity budget.
    let series: String = (0..6)
        .map(|i| format!("s{i}: cpuMetrics(deviceId: \"RGV2aWNlOjA=\", from: \"2026-01-01T00:00:00Z\", to: \"2026-01-07T23:00:00Z\", bucket: MINUTE) {{ avg }} "))
        .collect();
    let cases = [
        ("50 levels deep", format!("{{ devices {{ edges {{ node {{ {deep} }} }} }} }}")),
        ("10,000 aliases", format!("{{ {aliases} }}")),
        ("first: 100000000", "{ devices(first: 100000000) { edges { node { id } } } }".to_owned()),
        ("complexity", "{ devices(first: 500) { edges { node { interfaces { nodes { device { interfaces { nodes { device { hostname } } } } } } } } } }".to_owned()),
        ("six week-long minute series", format!("{{ {series} }}")),
    ];
    for (what, query) in cases {
        let before = f.t.app.db.statements();
        let (_, response) =
            f.t.call(&[("authorization", &bearer)], json!({ "query": query }))
                .await;
        assert!(
            error_code(&response).is_some_and(|c| c == "BAD_USER_INPUT"),
            "{what}: {}",
            &response.to_string()[..200.min(response.to_string().len())]
        );
        assert!(response["data"].is_null(), "{what}");
        assert_eq!(f.t.app.db.statements(), before, "{what} ran SQL");
    }

    let before = f.t.app.db.statements();
    let huge = format!(
        "{{\"query\": \"{{ health {{ ok }} }}\", \"variables\": {{\"x\": \"{}\"}}}}",
        "x".repeat(10 * 1024 * 1024)
    );
    let request = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, huge.len())
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::from(huge.clone()))
        .expect("request");
    let (status, _) = raw(&f.t, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Without a length (streamed), the body is cut at the limit all the same.
    let stream = futures_util::stream::iter(
        huge.into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let request = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::from_stream(stream))
        .expect("request");
    let (status, response) = raw(&f.t, request).await;
    assert!(
        status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::BAD_REQUEST,
        "{status}"
    );
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"));

    let get = Request::get("/graphql?query=mutation%20%7B%20logout%20%7B%20revoked%20%7D%20%7D")
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::empty())
        .expect("request");
    let (status, response) = raw(&f.t, get).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"));

    let text = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::from("{ health { ok } }"))
        .expect("request");
    let (status, response) = raw(&f.t, text).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");

    let batch = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, &bearer)
        .body(Body::from(
            r#"[{"query":"{ health { ok } }"},{"query":"{ health { ok } }"}]"#,
        ))
        .expect("request");
    let (status, response) = raw(&f.t, batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"));
    assert_eq!(f.t.app.db.statements(), before, "a refused request ran SQL");

    let anonymous_introspection = f.t.gql(None, "{ __schema { types { name } } }", json!({})).await;
    assert_eq!(error_code(&anonymous_introspection), Some("UNAUTHENTICATED"));
    let introspection =
        f.t.gql(Some(&f.viewer), "{ __schema { queryType { name } } }", json!({}))
            .await;
    assert_eq!(introspection["data"]["__schema"]["queryType"]["name"], "Query");
}

async fn counts(t: &TestApp) -> (i64, i64, i64) {
    (
        t.db.count("SELECT count(*) AS n FROM tenant_acme.devices").await,
        t.db.count("SELECT count(*) AS n FROM tenant_acme.interfaces")
            .await,
        t.db.count("SELECT count(*) AS n FROM tenant_globex.devices")
            .await,
    )
}

#[tokio::test]
async fn bad_mutation_input_gets_the_right_code_and_writes_nothing() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 2).await;
    seed(&f.t, "tenant_globex", 2).await;
    let admin = &f.admin;
    let acme_device =
        f.t.gql(
            Some(admin),
            "{ devices(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
    let globex_admin = f.t.user("globex", "admin@globex.example", Role::Admin).await;
    let globex_token = f.t.session("globex", &globex_admin).await;
    let globex_device =
        f.t.gql(
            Some(&globex_token),
            "{ devices(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
    let unknown = enclave::resolvers::ids::encode("Device", uuid::Uuid::new_v4()).0;
    let unknown_group = enclave::resolvers::ids::encode("DeviceGroup", uuid::Uuid::new_v4()).0;
    let before = counts(&f.t).await;

    let cases: Vec<(&str, String, Value, &str)> = vec![
        ("unknown id", "mutation($id: ID!) { updateDevice(input: {id: $id, hostname: \"x\"}) { device { id } } }".into(), json!({ "id": unknown }), "NOT_FOUND"),
        ("another tenant's id", "mutation($id: ID!) { deleteDevice(input: {id: $id}) { deletedId } }".into(), json!({ "id": globex_device }), "NOT_FOUND"),
        ("another tenant's id as a reference", "mutation($id: ID!) { createInterface(input: {deviceId: $id, name: \"eth9\"}) { interface { id } } }".into(), json!({ "id": globex_device }), "BAD_USER_INPUT"),
        ("an id of the wrong kind", "mutation($id: ID!) { deleteDevice(input: {id: $id}) { deletedId } }".into(), json!({ "id": unknown_group }), "BAD_USER_INPUT"),
        ("invalid enum", "mutation { createDevice(input: {hostname: \"x\", status: EXPLODED}) { device { id } } }".into(), json!({}), "BAD_USER_INPUT"),
        ("duplicate unique value", "mutation($id: ID!) { createInterface(input: {deviceId: $id, name: \"eth0\"}) { interface { id } } }".into(), json!({ "id": acme_device }), "CONFLICT"),
        ("violated reference", "mutation($g: ID!) { createDevice(input: {hostname: \"x\", groupId: $g}) { device { id } } }".into(), json!({ "g": unknown_group }), "BAD_USER_INPUT"),
        ("violated check", "mutation { createDevice(input: {hostname: \"\"}) { device { id } } }".into(), json!({}), "BAD_USER_INPUT"),
        ("malformed address", "mutation { createDevice(input: {hostname: \"x\", ip: \"10.0.0.300\"}) { device { id } } }".into(), json!({}), "BAD_USER_INPUT"),
    ];
    for (what, query, variables, code) in cases {
        let response = f.t.gql(Some(admin), &query, variables).await;
        assert_eq!(error_code(&response), Some(code), "{what}: {response}");
        let text = response.to_string();
        for leak in [
            "tenant_",
            "constraint",
            "violates",
            "SELECT",
            "interfaces_device_id",
        ] {
            assert!(!text.contains(leak), "{what} leaks {leak}: {text}");
        }
        assert_eq!(counts(&f.t).await, before, "{what} wrote something");
    }
    // A conflict says which field, without naming the constraint.
    let duplicate = f
        .t
        .gql(
            Some(admin),
            "mutation($id: ID!) { createInterface(input: {deviceId: $id, name: \"eth0\"}) { interface { id } } }",
            json!({ "id": acme_device }),
        )
        .await;
    assert_eq!(
        duplicate["errors"][0]["message"], "a record with this name on this device already exists",
        "{duplicate}"
    );
    f.t.gql(
        Some(admin),
        "mutation { createPartition(input: {name: \"lab\"}) { partition { id } } }",
        json!({}),
    )
    .await;
    let duplicate =
        f.t.gql(
            Some(admin),
            "mutation { createPartition(input: {name: \"lab\"}) { partition { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&duplicate), Some("CONFLICT"), "{duplicate}");
    assert_eq!(
        duplicate["errors"][0]["message"], "a record with this name already exists",
        "{duplicate}"
    );
}

#[tokio::test]
async fn every_unique_constraint_named_in_the_errors_module_exists() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let existing =
        t.db.names(
            "SELECT conname::text AS name FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname IN ('public', 'tenant_acme') AND c.contype IN ('u', 'p')",
        )
        .await;
    for (constraint, _) in enclave::resolvers::errors::UNIQUE_FIELDS {
        assert!(
            existing.iter().any(|name| name == constraint),
            "{constraint} is no unique constraint of the migrations"
        );
    }
}

#[tokio::test]
async fn sixty_four_bit_values_travel_as_big_int_strings() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 1).await;
    let device =
        f.t.gql(
            Some(&f.admin),
            "{ devices(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
    let create = "mutation($id: ID!, $speed: BigInt) { createInterface(input: {deviceId: $id, name: \"xe0\", speedBps: $speed}) { interface { speedBps } } }";
    for (name, speed) in [
        ("string", json!("10000000000")),
        ("number", json!(40_000_000_000_i64)),
    ] {
        let response =
            f.t.gql(
                Some(&f.admin),
                &create.replace("xe0", name),
                json!({ "id": device, "speed": speed }),
            )
            .await;
        let expected = speed.as_str().map_or_else(|| speed.to_string(), str::to_owned);
        assert_eq!(
            response["data"]["createInterface"]["interface"]["speedBps"],
            expected.as_str(),
            "{response}"
        );
    }
    let literal = f
        .t
        .gql(
            Some(&f.admin),
            "mutation($id: ID!) { createInterface(input: {deviceId: $id, name: \"lit\", speedBps: \"100000000000\"}) { interface { speedBps } } }",
            json!({ "id": device }),
        )
        .await;
    assert_eq!(
        literal["data"]["createInterface"]["interface"]["speedBps"], "100000000000",
        "{literal}"
    );
    for bad in [json!("9223372036854775808"), json!("fast"), json!(1.5)] {
        let response =
            f.t.gql(Some(&f.admin), create, json!({ "id": device, "speed": bad }))
                .await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{bad}: {response}");
    }
    let count =
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_acme.interfaces WHERE speed_bps > 2147483647")
            .await;
    assert_eq!(count, 3);
}

#[tokio::test]
async fn an_empty_page_still_answers_page_info_and_total_count() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 3).await;
    for args in ["first: 0", "last: 0"] {
        let response = f
            .t
            .gql(
                Some(&f.viewer),
                &format!("{{ devices({args}) {{ totalCount pageInfo {{ hasNextPage hasPreviousPage startCursor }} edges {{ node {{ id }} }} }} }}"),
                json!({}),
            )
            .await;
        let devices = &response["data"]["devices"];
        assert_eq!(devices["totalCount"], 3, "{args}: {response}");
        assert_eq!(
            devices["edges"].as_array().map(Vec::len),
            Some(0),
            "{args}: {response}"
        );
        let more = if args.starts_with("first") {
            "hasNextPage"
        } else {
            "hasPreviousPage"
        };
        assert_eq!(devices["pageInfo"][more], true, "{args}: {response}");
        assert!(devices["pageInfo"]["startCursor"].is_null(), "{response}");
    }
    let response =
        f.t.gql(
            Some(&f.viewer),
            "{ devices(first: -1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    // Without first or last, a page has 50 items.
    seed_more(&f.t, 60).await;
    let response =
        f.t.gql(
            Some(&f.viewer),
            "{ devices { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        response["data"]["devices"]["edges"].as_array().map(Vec::len),
        Some(50),
        "{response}"
    );
    assert_eq!(response["data"]["devices"]["totalCount"], 63);
}

async fn seed_more(t: &TestApp, n: usize) {
    t.db.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO tenant_acme.devices (hostname) SELECT 'more-' || i FROM generate_series(1, {n}) i"
        ))
        .await
        .expect("seed more");
}

#[tokio::test]
async fn a_mutation_whose_second_field_fails_leaves_nothing_from_the_first() {
    let f = fixture().await;
    let before = counts(&f.t).await;
    let response = f
        .t
        .gql(
            Some(&f.admin),
            "mutation { a: createDevice(input: {hostname: \"first\"}) { device { id } } b: createInterface(input: {deviceId: \"bm9wZQ\", name: \"eth0\"}) { interface { id } } }",
            json!({}),
        )
        .await;
    assert!(response["data"].is_null(), "{response}");
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"));
    assert_eq!(counts(&f.t).await, before);

    let ok = f.t.gql(Some(&f.admin), "mutation { a: createDevice(input: {hostname: \"one\"}) { device { id } } b: createDevice(input: {hostname: \"two\"}) { device { id } } }", json!({})).await;
    assert!(ok["errors"].is_null(), "{ok}");
    assert_eq!(counts(&f.t).await.0, before.0 + 2);
}

#[tokio::test]
async fn roles_gate_mutations_in_one_place() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 1).await;
    let alert =
        f.t.gql(
            Some(&f.viewer),
            "{ alerts(filter: {status: [OPEN]}) { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["alerts"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("alert")
            .to_owned();
    let create = "mutation { createDevice(input: {hostname: \"by-viewer\"}) { device { id } } }";
    assert_eq!(
        error_code(&f.t.gql(Some(&f.viewer), create, json!({})).await),
        Some("FORBIDDEN")
    );
    let ack = "mutation($id: ID!) { acknowledgeAlert(input: {id: $id}) { alert { status } } }";
    assert_eq!(
        error_code(&f.t.gql(Some(&f.viewer), ack, json!({ "id": alert })).await),
        Some("FORBIDDEN")
    );
    let acked = f.t.gql(Some(&f.operator), ack, json!({ "id": alert })).await;
    assert_eq!(
        acked["data"]["acknowledgeAlert"]["alert"]["status"], "ACKNOWLEDGED",
        "{acked}"
    );
    let again = f.t.gql(Some(&f.operator), ack, json!({ "id": alert })).await;
    assert_eq!(error_code(&again), Some("CONFLICT"));
    let resolve = "mutation($id: ID!) { resolveAlert(input: {id: $id}) { alert { status resolvedAt } } }";
    assert_eq!(
        f.t.gql(Some(&f.operator), resolve, json!({ "id": alert })).await["data"]["resolveAlert"]["alert"]["status"],
        "RESOLVED"
    );
    let device =
        f.t.gql(
            Some(&f.viewer),
            "{ devices { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("device")
            .to_owned();
    let delete = "mutation($id: ID!) { deleteDevice(input: {id: $id}) { deletedId } }";
    assert_eq!(
        error_code(&f.t.gql(Some(&f.operator), delete, json!({ "id": device })).await),
        Some("FORBIDDEN")
    );
    assert_eq!(
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_acme.devices")
            .await,
        1
    );
    assert_eq!(
        f.t.gql(Some(&f.admin), delete, json!({ "id": device })).await["data"]["deleteDevice"]["deletedId"],
        device
    );
    assert_eq!(
        error_code(
            &f.t.gql(Some(&f.viewer), "{ apiTokens { nodes { id } } }", json!({}))
                .await
        ),
        Some("FORBIDDEN")
    );
}

#[tokio::test]
async fn operators_update_devices_and_null_clears_a_field() {
    let f = fixture().await;
    let created = f.t.gql(Some(&f.operator), "mutation { createDevice(input: {hostname: \"edge-1\", ip: \"192.0.2.10\", mac: \"AA-BB-CC-00-11-22\", vendor: \"Acme\"}) { device { id ip mac vendor status } } }", json!({})).await;
    let device = &created["data"]["createDevice"]["device"];
    assert_eq!(device["ip"], "192.0.2.10", "{created}");
    assert_eq!(device["mac"], "aa:bb:cc:00:11:22");
    assert_eq!(device["status"], "UNKNOWN");
    let id = device["id"].as_str().expect("id");
    let updated = f.t.gql(Some(&f.operator), "mutation($id: ID!) { updateDevice(input: {id: $id, vendor: null, status: UP}) { device { ip vendor status } } }", json!({ "id": id })).await;
    let device = &updated["data"]["updateDevice"]["device"];
    assert_eq!(device["vendor"], Value::Null, "{updated}");
    assert_eq!(device["status"], "UP");
    assert_eq!(device["ip"], "192.0.2.10", "an absent field changed");
}

#[tokio::test]
async fn the_demo_seeds_two_isolated_tenants_with_working_tokens() {
    let t = TestApp::new().await;
    let tenants = enclave::demo::prepare(&t.app, &Default::default())
        .await
        .expect("demo");
    assert_eq!(
        tenants.iter().map(|d| d.slug.as_str()).collect::<Vec<_>>(),
        ["acme", "globex"]
    );
    let query = "{ me { tenant { slug } } devices(first: 500) { totalCount edges { node { hostname interfaces(first: 8) { nodes { name } } } } } alerts { edges { node { title } } } }";
    for demo in &tenants {
        let response = t.gql(Some(&demo.token), query, json!({})).await;
        assert_eq!(
            response["data"]["me"]["tenant"]["slug"],
            demo.slug.as_str(),
            "{response}"
        );
        let total = response["data"]["devices"]["totalCount"]
            .as_i64()
            .unwrap_or_default();
        assert!(total >= 200, "{} has only {total} devices", demo.slug);
        let other = if demo.slug == "acme" { "globex-" } else { "acme-" };
        assert!(
            !response.to_string().contains(other),
            "{} sees the other tenant",
            demo.slug
        );
    }
    // Running it again reuses the tenants and seeds nothing twice.
    let again = enclave::demo::prepare(&t.app, &Default::default())
        .await
        .expect("demo again");
    let response = t
        .gql(Some(&again[0].token), "{ devices { totalCount } }", json!({}))
        .await;
    assert_eq!(response["data"]["devices"]["totalCount"], 300);
}

#[tokio::test]
async fn the_demo_refuses_a_foreign_tenant_of_its_slug_unless_forced_and_uses_the_given_password() {
    let t = TestApp::new().await;
    // A real tenant that happens to be called acme, with data of its own.
    t.tenant("acme", &["acme.example.com"]).await;
    t.user("acme", "ops@acme.example.com", Role::Admin).await;
    let options = enclave::demo::Options {
        force: false,
        admin_password: Some("demo password 123".to_owned()),
    };
    let error = match enclave::demo::prepare(&t.app, &options).await {
        Ok(_) => panic!("the demo seeded a tenant it did not create"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("acme") && error.contains("--force"), "{error}");
    let devices = t.db.count("SELECT count(*) AS n FROM tenant_acme.devices").await;
    assert_eq!(devices, 0, "nothing was seeded into the foreign tenant");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM public.tenants WHERE slug = 'globex'")
            .await,
        0,
        "refused before provisioning anything"
    );

    let forced = enclave::demo::Options {
        force: true,
        ..options.clone()
    };
    let tenants = enclave::demo::prepare(&t.app, &forced)
        .await
        .expect("forced demo");
    assert_eq!(tenants[0].admin_password.as_deref(), Some("demo password 123"));
    // The printed password logs in.
    let login = t
        .call(
            &[("host", "acme.example.com")],
            json!({ "query": "mutation { login(email: \"admin@acme.example\", password: \"demo password 123\") { token } }" }),
        )
        .await
        .1;
    assert!(login["data"]["login"]["token"].is_string(), "{login}");
    // A later run (no --force needed for its own tenants) does not claim a new password.
    let again = enclave::demo::prepare(
        &t.app,
        &enclave::demo::Options {
            force: false,
            admin_password: None,
        },
    )
    .await;
    // acme is still not a demo tenant (its name and domain are its own): refused again.
    assert!(again.is_err());
}

#[tokio::test]
async fn a_second_demo_run_reuses_its_tenants_and_prints_no_new_password() {
    let t = TestApp::new().await;
    let first = enclave::demo::prepare(&t.app, &Default::default())
        .await
        .expect("demo");
    let password = first[0]
        .admin_password
        .clone()
        .expect("a password for the new admin");
    assert!(password.len() >= 12, "{password}");
    let again = enclave::demo::prepare(&t.app, &Default::default())
        .await
        .expect("demo again");
    assert!(again.iter().all(|d| d.admin_password.is_none()));
}

#[tokio::test]
async fn infrastructure_observability_and_users_through_the_demo_data() {
    let t = TestApp::new().await;
    let tenants = enclave::demo::prepare(&t.app, &Default::default())
        .await
        .expect("demo");
    let acme = &tenants[0].token;
    let query = "{ gateways { edges { node { name agents(first: 5) { nodes { name gateway { name } checkers(first: 5) { nodes { kind } } } } } } }
        agents(first: 2) { edges { node { name device { hostname } } } }
        serviceChecks(first: 3) { edges { node { name lastStatus agent { name } device { hostname } } } }
        pollingSchedules { edges { node { name agent { name } } } }
        integrationSources { edges { node { name kind } } }
        edgeSites { edges { node { name status } } }
        healthEvents(first: 2) { edges { node { sourceKind status } } }
        users { edges { node { email role } } } }";
    let response = t.gql(Some(acme), query, json!({})).await;
    assert!(response["errors"].is_null(), "{response}");
    let data = &response["data"];
    let gateway = &data["gateways"]["edges"][0]["node"];
    assert_eq!(gateway["name"], "acme-gw-1");
    assert_eq!(gateway["agents"]["nodes"][0]["gateway"]["name"], "acme-gw-1");
    assert_eq!(
        gateway["agents"]["nodes"][0]["checkers"]["nodes"][0]["kind"],
        "ICMP"
    );
    assert_eq!(data["integrationSources"]["edges"][0]["node"]["kind"], "NETBOX");
    assert_eq!(data["users"]["edges"][0]["node"]["email"], "admin@acme.example");
    assert!(
        !response.to_string().contains("globex"),
        "globex leaked into acme's answer"
    );

    // A day of CPU samples every 5 minutes, bucketed per hour: 24 or 25 buckets of ~12.
    let device = t
        .gql(
            Some(acme),
            "{ devices(first: 1) { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let to = chrono::Utc::now() + chrono::Duration::minutes(1);
    let from = to - chrono::Duration::hours(24);
    let cpu = t
        .gql(Some(acme), "query($d: ID!, $f: DateTime!, $t: DateTime!) { cpuMetrics(deviceId: $d, from: $f, to: $t, bucket: HOUR) { time avg min max samples } }", json!({ "d": device, "f": from.to_rfc3339(), "t": to.to_rfc3339() }))
        .await;
    let points = cpu["data"]["cpuMetrics"].as_array().expect("points");
    assert!((24..=25).contains(&points.len()), "{} buckets", points.len());
    let samples: i64 = points.iter().filter_map(|p| p["samples"].as_i64()).sum();
    assert_eq!(samples, 288);
    assert!(
        points
            .iter()
            .all(|p| p["min"].as_f64() <= p["avg"].as_f64() && p["avg"].as_f64() <= p["max"].as_f64())
    );
    let too_many = t
        .gql(Some(acme), "query($d: ID!, $f: DateTime!, $t: DateTime!) { cpuMetrics(deviceId: $d, from: $f, to: $t, bucket: MINUTE) { time } }", json!({ "d": device, "f": (to - chrono::Duration::days(30)).to_rfc3339(), "t": to.to_rfc3339() }))
        .await;
    assert_eq!(error_code(&too_many), Some("BAD_USER_INPUT"));

    // Logs page newest first without repeats.
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    for _ in 0..3 {
        let page = t.gql(Some(acme), "query($a: String) { logs(first: 200, after: $a) { pageInfo { endCursor } edges { node { time message } } } }", json!({ "a": after })).await;
        for edge in page["data"]["logs"]["edges"].as_array().expect("edges") {
            assert!(seen.insert(edge["node"].to_string()), "repeated log line");
        }
        after = page["data"]["logs"]["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    assert_eq!(seen.len(), 500);
}

#[tokio::test]
async fn merging_devices_moves_their_data_records_an_audit_and_is_admin_only() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 2).await;
    seed(&f.t, "tenant_globex", 1).await;
    let ids: Vec<String> =
        f.t.gql(Some(&f.admin), "{ devices { edges { node { id } } } }", json!({}))
            .await["data"]["devices"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
            .collect();
    let (primary, merged) = (&ids[0], &ids[1]);
    let extra = f.t.gql(Some(&f.admin), "mutation($d: ID!) { createInterface(input: {deviceId: $d, name: \"eth7\"}) { interface { id } } }", json!({ "d": merged })).await;
    assert!(extra["errors"].is_null(), "{extra}");
    let merge = "mutation($p: ID!, $m: ID!) { mergeDevices(input: {primaryId: $p, mergedId: $m, reason: \"same chassis\"}) { mergedId device { hostname interfaces { nodes { name } } openAlerts { nodes { title } } } } }";

    let refused =
        f.t.gql(Some(&f.operator), merge, json!({ "p": primary, "m": merged }))
            .await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"));
    let globex_admin = f.t.user("globex", "admin@globex.example", Role::Admin).await;
    let globex_token = f.t.session("globex", &globex_admin).await;
    let globex_device =
        f.t.gql(
            Some(&globex_token),
            "{ devices { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
    let cross =
        f.t.gql(Some(&f.admin), merge, json!({ "p": primary, "m": globex_device }))
            .await;
    assert_eq!(error_code(&cross), Some("NOT_FOUND"));
    assert_eq!(
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.devices")
            .await,
        1
    );

    let response =
        f.t.gql(Some(&f.admin), merge, json!({ "p": primary, "m": merged }))
            .await;
    let device = &response["data"]["mergeDevices"]["device"];
    let names: Vec<&str> = device["interfaces"]["nodes"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["eth0", "eth1", "eth7"], "{response}");
    assert_eq!(
        device["openAlerts"]["nodes"].as_array().map(Vec::len),
        Some(2),
        "alerts follow the merge"
    );
    assert_eq!(
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_acme.devices")
            .await,
        1
    );
    assert_eq!(
        f.t.db.count("SELECT count(*) AS n FROM tenant_acme.merge_audits WHERE reason = 'same chassis' AND merged_snapshot->>'hostname' = 'tenant_acme-dev-0002'").await,
        1
    );
    assert_eq!(
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.merge_audits")
            .await,
        0
    );
}

#[tokio::test]
async fn admins_manage_users_and_disabling_one_ends_their_sessions_at_once() {
    let f = fixture().await;
    let create = "mutation($e: String!, $r: Role!) { createUser(input: {email: $e, role: $r, password: \"correct horse battery\"}) { user { id email role } } }";
    let created =
        f.t.gql(
            Some(&f.admin),
            create,
            json!({ "e": "New.Person@acme.example", "r": "OPERATOR" }),
        )
        .await;
    let user = &created["data"]["createUser"]["user"];
    assert_eq!(user["email"], "new.person@acme.example", "{created}");
    let id = user["id"].as_str().expect("id").to_owned();
    assert_eq!(
        error_code(
            &f.t.gql(
                Some(&f.admin),
                create,
                json!({ "e": "new.person@acme.example", "r": "VIEWER" })
            )
            .await
        ),
        Some("CONFLICT")
    );
    assert_eq!(
        error_code(
            &f.t.gql(
                Some(&f.admin),
                create,
                json!({ "e": "boss@acme.example", "r": "PLATFORM_ADMIN" })
            )
            .await
        ),
        Some("FORBIDDEN")
    );
    assert_eq!(
        error_code(
            &f.t.gql(
                Some(&f.operator),
                create,
                json!({ "e": "x@acme.example", "r": "VIEWER" })
            )
            .await
        ),
        Some("FORBIDDEN")
    );
    assert_eq!(
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.users")
            .await,
        0
    );

    // Two customer tenants and no vanity domain: login finds the tenant through the membership.
    let login = f.t.gql(None, "mutation { login(email: \"new.person@acme.example\", password: \"correct horse battery\") { token tenant { slug } } }", json!({})).await;
    assert_eq!(login["data"]["login"]["tenant"]["slug"], "acme", "{login}");
    let session = login["data"]["login"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        f.t.gql(Some(&session), "{ me { role } }", json!({})).await["data"]["me"]["role"],
        "OPERATOR"
    );

    let disable =
        f.t.gql(
            Some(&f.admin),
            "mutation($id: ID!) { updateUser(input: {id: $id, disabled: true}) { user { disabled } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        disable["data"]["updateUser"]["user"]["disabled"], true,
        "{disable}"
    );
    assert_eq!(
        error_code(&f.t.gql(Some(&session), "{ me { role } }", json!({})).await),
        Some("UNAUTHENTICATED")
    );
}

#[tokio::test]
async fn infrastructure_mutations_validate_and_delete_within_the_tenant() {
    let f = fixture().await;
    let globex_admin = f.t.user("globex", "admin@globex.example", Role::Admin).await;
    let globex_token = f.t.session("globex", &globex_admin).await;
    let globex_gateway =
        f.t.gql(
            Some(&globex_token),
            "mutation { createGateway(input: {name: \"gw\"}) { gateway { id } } }",
            json!({}),
        )
        .await["data"]["createGateway"]["gateway"]["id"]
            .as_str()
            .expect("gw")
            .to_owned();
    let gateway =
        f.t.gql(
            Some(&f.admin),
            "mutation { createGateway(input: {name: \"gw\", address: \"gw:4222\"}) { gateway { id } } }",
            json!({}),
        )
        .await["data"]["createGateway"]["gateway"]["id"]
            .as_str()
            .expect("gw")
            .to_owned();
    let agent = f.t.gql(Some(&f.admin), "mutation($g: ID!) { createAgent(input: {name: \"a1\", gatewayId: $g, capabilities: [\"icmp\"]}) { agent { id gateway { name } } } }", json!({ "g": gateway })).await;
    assert_eq!(
        agent["data"]["createAgent"]["agent"]["gateway"]["name"], "gw",
        "{agent}"
    );
    let agent_id = agent["data"]["createAgent"]["agent"]["id"]
        .as_str()
        .expect("agent")
        .to_owned();
    let agents_before = f.t.db.count("SELECT count(*) AS n FROM tenant_acme.agents").await;

    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "another tenant's gateway",
            "mutation($g: ID!) { createAgent(input: {name: \"a2\", gatewayId: $g}) { agent { id } } }",
            json!({ "g": globex_gateway }),
            "BAD_USER_INPUT",
        ),
        (
            "duplicate name",
            "mutation { createAgent(input: {name: \"a1\"}) { agent { id } } }",
            json!({}),
            "CONFLICT",
        ),
        (
            "operator creating an agent",
            "mutation { createAgent(input: {name: \"a3\"}) { agent { id } } }",
            json!({}),
            "FORBIDDEN",
        ),
    ];
    for (what, query, variables, code) in cases {
        let token = if what.starts_with("operator") {
            &f.operator
        } else {
            &f.admin
        };
        let response = f.t.gql(Some(token), query, variables).await;
        assert_eq!(error_code(&response), Some(code), "{what}: {response}");
        assert_eq!(
            f.t.db.count("SELECT count(*) AS n FROM tenant_acme.agents").await,
            agents_before,
            "{what} wrote"
        );
    }
    let bad_interval = f.t.gql(Some(&f.operator), "mutation($a: ID!) { createServiceCheck(input: {name: \"ping\", kind: ICMP, target: \"10.0.0.1\", agentId: $a, intervalSeconds: 1}) { serviceCheck { id } } }", json!({ "a": agent_id })).await;
    assert_eq!(
        error_code(&bad_interval),
        Some("BAD_USER_INPUT"),
        "{bad_interval}"
    );
    let bad_config = f.t.gql(Some(&f.admin), "mutation($a: ID!) { createChecker(input: {agentId: $a, name: \"c\", kind: HTTP, config: [1, 2]}) { checker { id } } }", json!({ "a": agent_id })).await;
    assert_eq!(error_code(&bad_config), Some("BAD_USER_INPUT"));
    let check = f.t.gql(Some(&f.operator), "mutation($a: ID!) { createServiceCheck(input: {name: \"ping\", kind: ICMP, target: \"10.0.0.1\", agentId: $a}) { serviceCheck { intervalSeconds agent { name } } } }", json!({ "a": agent_id })).await;
    assert_eq!(
        check["data"]["createServiceCheck"]["serviceCheck"]["intervalSeconds"], 60,
        "{check}"
    );

    let node =
        f.t.gql(
            Some(&f.viewer),
            "query($id: ID!) { node(id: $id) { ... on Agent { name } } }",
            json!({ "id": agent_id }),
        )
        .await;
    assert_eq!(node["data"]["node"]["name"], "a1", "{node}");
    let foreign =
        f.t.gql(
            Some(&f.viewer),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": globex_gateway }),
        )
        .await;
    assert!(foreign["data"]["node"].is_null(), "{foreign}");

    let delete = "mutation($id: ID!) { deleteGateway(input: {id: $id}) { deletedId } }";
    assert_eq!(
        error_code(
            &f.t.gql(Some(&f.admin), delete, json!({ "id": globex_gateway }))
                .await
        ),
        Some("NOT_FOUND")
    );
    assert_eq!(
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.gateways")
            .await,
        1
    );
    assert_eq!(
        f.t.gql(Some(&f.admin), delete, json!({ "id": gateway })).await["data"]["deleteGateway"]["deletedId"],
        gateway.as_str()
    );
    let orphan =
        f.t.gql(
            Some(&f.viewer),
            "query($id: ID!) { node(id: $id) { ... on Agent { gateway { name } } } }",
            json!({ "id": agent_id }),
        )
        .await;
    assert!(orphan["data"]["node"]["gateway"].is_null(), "{orphan}");
}

#[tokio::test]
async fn operators_retune_checks_and_metric_siblings_bucket_their_series() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 1).await;
    let device =
        f.t.gql(
            Some(&f.viewer),
            "{ devices { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("device")
            .to_owned();
    let check = f.t.gql(Some(&f.operator), "mutation($d: ID!) { createServiceCheck(input: {name: \"http\", kind: HTTP, target: \"https://x\", deviceId: $d}) { serviceCheck { id } } }", json!({ "d": device })).await["data"]["createServiceCheck"]["serviceCheck"]["id"].as_str().expect("check").to_owned();
    let update = "mutation($id: ID!, $i: Int) { updateServiceCheck(input: {id: $id, enabled: false, intervalSeconds: $i}) { serviceCheck { enabled intervalSeconds } } }";
    let bad =
        f.t.gql(Some(&f.operator), update, json!({ "id": check, "i": 1 }))
            .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");
    assert_eq!(
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_acme.service_checks WHERE enabled")
            .await,
        1,
        "a refused update changed the row"
    );
    let ok =
        f.t.gql(Some(&f.operator), update, json!({ "id": check, "i": 30 }))
            .await;
    assert_eq!(
        ok["data"]["updateServiceCheck"]["serviceCheck"],
        json!({ "enabled": false, "intervalSeconds": 30 }),
        "{ok}"
    );
    let unknown = enclave::resolvers::ids::encode("ServiceCheck", uuid::Uuid::new_v4()).0;
    assert_eq!(
        error_code(
            &f.t.gql(Some(&f.operator), update, json!({ "id": unknown, "i": 30 }))
                .await
        ),
        Some("NOT_FOUND")
    );

    f.t.db.conn().await.batch_execute(
        "INSERT INTO tenant_acme.disk_metrics (device_id, ts, mount, used_bytes, total_bytes) \
         SELECT id, date_trunc('hour', now()) - m * interval '10 minutes', '/', 1000 * m, 100000 FROM tenant_acme.devices CROSS JOIN generate_series(1, 12) m; \
         INSERT INTO tenant_acme.timeseries_metrics (device_id, name, ts, value) \
         SELECT id, 'if_in_octets', date_trunc('hour', now()) - m * interval '10 minutes', m FROM tenant_acme.devices CROSS JOIN generate_series(1, 12) m",
    ).await.expect("samples");
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::hours(3);
    let series = f.t.gql(Some(&f.viewer), "query($d: ID!, $f: DateTime!, $t: DateTime!) { diskMetrics(deviceId: $d, mount: \"/\", from: $f, to: $t, bucket: HOUR) { samples } timeseriesMetrics(deviceId: $d, name: \"if_in_octets\", from: $f, to: $t, bucket: HOUR) { samples max } }", json!({ "d": device, "f": from.to_rfc3339(), "t": to.to_rfc3339() })).await;
    let disk: i64 = series["data"]["diskMetrics"]
        .as_array()
        .expect("disk")
        .iter()
        .filter_map(|p| p["samples"].as_i64())
        .sum();
    let named: i64 = series["data"]["timeseriesMetrics"]
        .as_array()
        .expect("named")
        .iter()
        .filter_map(|p| p["samples"].as_i64())
        .sum();
    assert_eq!((disk, named), (12, 12), "{series}");
}

#[tokio::test]
async fn node_resolves_every_kind_of_object_of_the_callers_tenant_only() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 1).await;
    let device =
        f.t.gql(
            Some(&f.viewer),
            "{ devices { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
            .as_str()
            .expect("device")
            .to_owned();
    let check = f.t.gql(Some(&f.operator), "mutation($d: ID!) { createServiceCheck(input: {name: \"http\", kind: HTTP, target: \"https://x\", deviceId: $d}) { serviceCheck { id } } }", json!({ "d": device })).await["data"]["createServiceCheck"]["serviceCheck"]["id"].as_str().expect("check").to_owned();
    let node =
        f.t.gql(
            Some(&f.viewer),
            "query($id: ID!) { node(id: $id) { id ... on ServiceCheck { name } } }",
            json!({ "id": check }),
        )
        .await;
    assert_eq!(node["data"]["node"]["name"], "http", "{node}");
    let me = f.t.gql(Some(&f.admin), "{ me { user { id } } }", json!({})).await["data"]["me"]["user"]["id"]
        .as_str()
        .expect("me")
        .to_owned();
    let user =
        f.t.gql(
            Some(&f.admin),
            "query($id: ID!) { node(id: $id) { ... on User { email } } }",
            json!({ "id": me }),
        )
        .await;
    assert_eq!(user["data"]["node"]["email"], "admin@acme.example", "{user}");
    // The same id asked by the other tenant finds nothing.
    let globex_admin = f.t.user("globex", "admin@globex.example", Role::Admin).await;
    let globex_token = f.t.session("globex", &globex_admin).await;
    let foreign =
        f.t.gql(
            Some(&globex_token),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": check }),
        )
        .await;
    assert!(foreign["data"]["node"].is_null(), "{foreign}");
}

#[tokio::test]
async fn alias_states_and_merge_audits_are_listed_with_their_filters() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 2).await;
    f.t.db
        .conn()
        .await
        .batch_execute(
            "INSERT INTO tenant_acme.device_alias_states (device_id, alias_kind, alias_value, state, last_seen)
             SELECT id, 'ip', '10.9.9.9', 'active', now() FROM tenant_acme.devices WHERE hostname = 'tenant_acme-dev-0001';
             INSERT INTO tenant_acme.device_alias_states (device_id, alias_kind, alias_value, state, last_seen)
             SELECT id, 'hostname', 'old-name', 'stale', now() - interval '1 day' FROM tenant_acme.devices
             WHERE hostname = 'tenant_acme-dev-0001';",
        )
        .await
        .expect("aliases");
    let aliases = "query($f: DeviceAliasStateFilter) { deviceAliasStates(filter: $f) { edges { node { \
                   aliasKind aliasValue state device { hostname } } } } }";
    let values = |response: &Value| -> Vec<String> {
        response["data"]["deviceAliasStates"]["edges"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["node"]["aliasValue"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let all = f.t.gql(Some(&f.viewer), aliases, json!({})).await;
    assert_eq!(values(&all), ["10.9.9.9", "old-name"], "{all}");
    assert_eq!(
        all["data"]["deviceAliasStates"]["edges"][0]["node"]["device"]["hostname"],
        "tenant_acme-dev-0001"
    );
    let stale =
        f.t.gql(Some(&f.viewer), aliases, json!({ "f": { "state": ["STALE"] } }))
            .await;
    assert_eq!(values(&stale), ["old-name"], "{stale}");
    let by_value =
        f.t.gql(
            Some(&f.viewer),
            aliases,
            json!({ "f": { "aliasValue": "10.9.9.9", "aliasKind": ["IP"] } }),
        )
        .await;
    assert_eq!(values(&by_value), ["10.9.9.9"], "{by_value}");
    let bad =
        f.t.gql(
            Some(&f.viewer),
            aliases,
            json!({ "f": { "deviceId": "garbage" } }),
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"), "{bad}");

    let ids: Vec<String> =
        f.t.gql(
            Some(&f.viewer),
            "{ devices { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"]
            .as_array()
            .expect("devices")
            .iter()
            .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
            .collect();
    let merge = "mutation($p: ID!, $m: ID!) { mergeDevices(input: {primaryId: $p, mergedId: $m, reason: \"same box\"}) { mergedId } }";
    let merged =
        f.t.gql(Some(&f.admin), merge, json!({ "p": ids[0], "m": ids[1] }))
            .await;
    assert!(merged["errors"].is_null(), "{merged}");
    let audits = "query($f: MergeAuditFilter) { mergeAudits(filter: $f) { edges { node { reason mergedDeviceId \
                  mergedSnapshot primaryDevice { id } } } } }";
    let listed =
        f.t.gql(
            Some(&f.viewer),
            audits,
            json!({ "f": { "primaryDeviceId": ids[0] } }),
        )
        .await;
    let audit = &listed["data"]["mergeAudits"]["edges"][0]["node"];
    assert_eq!(audit["reason"], "same box", "{listed}");
    assert_eq!(audit["mergedDeviceId"], ids[1].as_str());
    assert_eq!(audit["primaryDevice"]["id"], ids[0].as_str());
    assert_eq!(audit["mergedSnapshot"]["hostname"], "tenant_acme-dev-0002");
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let none =
        f.t.gql(Some(&f.viewer), audits, json!({ "f": { "since": later } }))
            .await;
    assert_eq!(none["data"]["mergeAudits"]["edges"], json!([]), "{none}");
    let other =
        f.t.gql(
            Some(&f.viewer),
            audits,
            json!({ "f": { "mergedDeviceId": ids[0] } }),
        )
        .await;
    assert_eq!(other["data"]["mergeAudits"]["edges"], json!([]), "{other}");
}

#[tokio::test]
async fn identifiers_are_added_and_removed_and_interfaces_deleted_refusals_write_nothing() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 2).await;
    let listed =
        f.t.gql(
            Some(&f.viewer),
            "{ devices { edges { node { id interfaces { nodes { id } } } } } }",
            json!({}),
        )
        .await;
    let device = listed["data"]["devices"]["edges"][0]["node"]["id"].clone();
    let interface = listed["data"]["devices"]["edges"][0]["node"]["interfaces"]["nodes"][0]["id"].clone();
    let identifiers = || {
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_acme.device_identifiers")
    };
    let add = "mutation($d: ID!, $v: String!) { addDeviceIdentifier(input: {deviceId: $d, kind: SERIAL, value: $v}) \
               { deviceIdentifier { id kind value source } } }";

    let added =
        f.t.gql(Some(&f.operator), add, json!({ "d": device, "v": " SN-1 " }))
            .await;
    let identifier = &added["data"]["addDeviceIdentifier"]["deviceIdentifier"];
    assert_eq!(identifier["value"], "SN-1", "{added}");
    assert_eq!(identifier["source"], "manual");
    let id = identifier["id"].clone();
    for (token, d, v, code) in [
        (&f.viewer, &device, "SN-2", "FORBIDDEN"),
        (&f.operator, &device, "   ", "BAD_USER_INPUT"),
        (&f.operator, &interface, "SN-3", "BAD_USER_INPUT"),
        (&f.operator, &device, "SN-1", "CONFLICT"),
    ] {
        let refused = f.t.gql(Some(token), add, json!({ "d": d, "v": v })).await;
        assert_eq!(error_code(&refused), Some(code), "{v}: {refused}");
        assert!(!refused.to_string().contains("device_identifiers"), "{refused}");
    }
    assert_eq!(identifiers().await, 1, "a refused add wrote");

    let remove = "mutation($id: ID!) { removeDeviceIdentifier(id: $id) { removedId } }";
    let refused = f.t.gql(Some(&f.operator), remove, json!({ "id": device })).await;
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"), "{refused}");
    assert_eq!(identifiers().await, 1);
    let removed = f.t.gql(Some(&f.operator), remove, json!({ "id": id })).await;
    assert_eq!(
        removed["data"]["removeDeviceIdentifier"]["removedId"], id,
        "{removed}"
    );
    assert_eq!(identifiers().await, 0);
    let again = f.t.gql(Some(&f.operator), remove, json!({ "id": id })).await;
    assert_eq!(error_code(&again), Some("NOT_FOUND"), "{again}");

    let interfaces = || f.t.db.count("SELECT count(*) AS n FROM tenant_acme.interfaces");
    let delete = "mutation($id: ID!) { deleteInterface(id: $id) { deletedId } }";
    for (token, target, code) in [
        (&f.operator, &interface, "FORBIDDEN"),
        (&f.admin, &device, "BAD_USER_INPUT"),
    ] {
        let refused = f.t.gql(Some(token), delete, json!({ "id": target })).await;
        assert_eq!(error_code(&refused), Some(code), "{refused}");
    }
    assert_eq!(interfaces().await, 4, "a refused delete wrote");
    let deleted = f.t.gql(Some(&f.admin), delete, json!({ "id": interface })).await;
    assert_eq!(
        deleted["data"]["deleteInterface"]["deletedId"], interface,
        "{deleted}"
    );
    assert_eq!(interfaces().await, 3);
    let again = f.t.gql(Some(&f.admin), delete, json!({ "id": interface })).await;
    assert_eq!(error_code(&again), Some("NOT_FOUND"), "{again}");
}

#[tokio::test]
async fn groups_and_partitions_are_deleted_by_admins_and_their_devices_stay() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 2).await;
    f.t.db
        .conn()
        .await
        .batch_execute(
            "INSERT INTO tenant_acme.partitions (name) VALUES ('dmz');
             UPDATE tenant_acme.devices SET partition_id = (SELECT id FROM tenant_acme.partitions);",
        )
        .await
        .expect("partition");
    let ids =
        f.t.gql(
            Some(&f.viewer),
            "{ deviceGroups { nodes { id } } partitions { nodes { id } } devices { nodes { id } } }",
            json!({}),
        )
        .await;
    let group = ids["data"]["deviceGroups"]["nodes"][0]["id"].clone();
    let partition = ids["data"]["partitions"]["nodes"][0]["id"].clone();
    let device = ids["data"]["devices"]["nodes"][0]["id"].clone();
    let count = |table: &'static str| {
        let db = &f.t.db;
        async move {
            db.count(&format!("SELECT count(*) AS n FROM tenant_acme.{table}"))
                .await
        }
    };
    for (field, target) in [("deleteDeviceGroup", &group), ("deletePartition", &partition)] {
        let mutation = format!("mutation($id: ID!) {{ {field}(id: $id) {{ deletedId }} }}");
        for (token, id, code) in [
            (&f.operator, target, "FORBIDDEN"),
            (&f.admin, &device, "BAD_USER_INPUT"),
            (&f.admin, &json!("garbage"), "BAD_USER_INPUT"),
        ] {
            let refused = f.t.gql(Some(token), &mutation, json!({ "id": id })).await;
            assert_eq!(error_code(&refused), Some(code), "{field}: {refused}");
        }
        assert_eq!(
            count("device_groups").await + count("partitions").await,
            2,
            "{field}: a refusal wrote"
        );
    }
    for (field, target, table) in [
        ("deleteDeviceGroup", &group, "device_groups"),
        ("deletePartition", &partition, "partitions"),
    ] {
        let mutation = format!("mutation($id: ID!) {{ {field}(id: $id) {{ deletedId }} }}");
        let deleted = f.t.gql(Some(&f.admin), &mutation, json!({ "id": target })).await;
        assert_eq!(deleted["data"][field]["deletedId"], *target, "{deleted}");
        assert_eq!(count(table).await, 0);
        let again = f.t.gql(Some(&f.admin), &mutation, json!({ "id": target })).await;
        assert_eq!(error_code(&again), Some("NOT_FOUND"), "{again}");
    }
    assert_eq!(count("devices").await, 2, "the devices stay");
    let left = f
        .t
        .db
        .count(
            "SELECT count(*) AS n FROM tenant_acme.devices WHERE group_id IS NULL AND partition_id IS NULL",
        )
        .await;
    assert_eq!(left, 2);
}

#[tokio::test]
async fn groups_and_partitions_are_updated_and_bad_updates_change_nothing() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 1).await;
    f.t.db
        .conn()
        .await
        .batch_execute(
            "INSERT INTO tenant_acme.partitions (name, cidrs) VALUES ('dmz', '{10.0.0.0/24}');
             INSERT INTO tenant_acme.device_groups (name) VALUES ('edge');",
        )
        .await
        .expect("rows");
    let ids =
        f.t.gql(
            Some(&f.viewer),
            "{ deviceGroups { nodes { id name } } partitions { nodes { id } } }",
            json!({}),
        )
        .await;
    let group = ids["data"]["deviceGroups"]["nodes"][0]["id"].clone();
    assert_eq!(ids["data"]["deviceGroups"]["nodes"][0]["name"], "core", "{ids}");
    let partition = ids["data"]["partitions"]["nodes"][0]["id"].clone();
    let update_group = "mutation($i: UpdateDeviceGroupInput!) { updateDeviceGroup(input: $i) { deviceGroup { name description } } }";
    let update_partition =
        "mutation($i: UpdatePartitionInput!) { updatePartition(input: $i) { partition { name cidrs } } }";
    let unchanged = "SELECT count(*) AS n FROM tenant_acme.device_groups WHERE name IN ('core', 'edge') AND description = ''";
    let partition_unchanged =
        "SELECT count(*) AS n FROM tenant_acme.partitions WHERE name = 'dmz' AND cidrs = '{10.0.0.0/24}'";
    for (token, query, input, code) in [
        (
            &f.operator,
            update_group,
            json!({ "id": group, "name": "x" }),
            "FORBIDDEN",
        ),
        (
            &f.admin,
            update_group,
            json!({ "id": group, "name": "  " }),
            "BAD_USER_INPUT",
        ),
        (&f.admin, update_group, json!({ "id": group }), "BAD_USER_INPUT"),
        (
            &f.admin,
            update_group,
            json!({ "id": partition, "name": "x" }),
            "BAD_USER_INPUT",
        ),
        (
            &f.admin,
            update_group,
            json!({ "id": group, "name": "edge" }),
            "CONFLICT",
        ),
        (
            &f.admin,
            update_partition,
            json!({ "id": partition, "cidrs": ["nope"] }),
            "BAD_USER_INPUT",
        ),
        (
            &f.admin,
            update_partition,
            json!({ "id": partition }),
            "BAD_USER_INPUT",
        ),
    ] {
        let refused = f.t.gql(Some(token), query, json!({ "i": input })).await;
        assert_eq!(error_code(&refused), Some(code), "{input}: {refused}");
        assert_eq!(f.t.db.count(unchanged).await, 2, "{input} changed a group");
        assert_eq!(
            f.t.db.count(partition_unchanged).await,
            1,
            "{input} changed a partition"
        );
    }
    let renamed =
        f.t.gql(
            Some(&f.admin),
            update_group,
            json!({ "i": { "id": group, "name": " backbone ", "description": "core routers" } }),
        )
        .await;
    assert_eq!(
        renamed["data"]["updateDeviceGroup"]["deviceGroup"],
        json!({ "name": "backbone", "description": "core routers" }),
        "{renamed}"
    );
    let readdressed =
        f.t.gql(
            Some(&f.admin),
            update_partition,
            json!({ "i": { "id": partition, "cidrs": ["10.1.0.0/16"] } }),
        )
        .await;
    assert_eq!(
        readdressed["data"]["updatePartition"]["partition"],
        json!({ "name": "dmz", "cidrs": ["10.1.0.0/16"] }),
        "{readdressed}"
    );
}

/// Process samples, OpenTelemetry points and traces of `schema`, named after it.
async fn seed_telemetry(t: &TestApp, schema: &str) {
    t.db.conn()
        .await
        .batch_execute(&format!(
            "SET search_path TO {schema};
             INSERT INTO process_metrics (device_id, ts, pid, name, cpu_percent, memory_bytes)
               SELECT (SELECT id FROM devices ORDER BY hostname LIMIT 1), now() - i * interval '1 minute',
                      100 + i % 3, CASE WHEN i % 3 = 0 THEN 'sshd' ELSE '{schema}-proc' END, i, i * 1024
               FROM generate_series(1, 30) i;
             INSERT INTO otel_metrics (service_name, name, ts, value)
               SELECT '{schema}-svc', 'http.requests', now() - i * interval '1 second', i FROM generate_series(1, 120) i;
             INSERT INTO otel_trace_summaries (trace_id, root_service, root_span_name, start_time, duration_ms, span_count, error_count)
               SELECT '{schema}-trace-' || i, '{schema}-svc', 'GET /', now() - i * interval '1 minute', 12.5, 2, i % 2
               FROM generate_series(1, 10) i;
             INSERT INTO otel_traces (trace_id, span_id, parent_span_id, service_name, name, start_time, end_time, status)
               VALUES ('{schema}-trace-1', 'a1', NULL, '{schema}-svc', 'GET /', now(), now() + interval '12 ms', 'ok'),
                      ('{schema}-trace-1', 'a2', 'a1', '{schema}-svc', 'SELECT', now() + interval '1 ms', now() + interval '5 ms', 'error');"
        ))
        .await
        .expect("telemetry seed");
}

#[tokio::test]
async fn process_otel_and_trace_data_page_newest_first_within_the_tenant() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 1).await;
    seed(&f.t, "tenant_globex", 1).await;
    seed_telemetry(&f.t, "tenant_acme").await;
    seed_telemetry(&f.t, "tenant_globex").await;
    let device =
        f.t.gql(
            Some(&f.viewer),
            "{ devices { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["devices"]["edges"][0]["node"]["id"]
            .clone();

    // Process samples of the device, filtered by name, newest first, paged without repeats.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = f
            .t
            .gql(
                Some(&f.viewer),
                "query($d: ID!, $a: String) { processMetrics(filter: {deviceId: $d, name: \"tenant_acme-proc\"}, first: 7, after: $a) { pageInfo { hasNextPage endCursor } edges { node { time pid name } } } }",
                json!({ "d": device, "a": after }),
            )
            .await;
        let connection = &page["data"]["processMetrics"];
        for edge in connection["edges"].as_array().unwrap_or_else(|| panic!("{page}")) {
            assert_eq!(edge["node"]["name"], "tenant_acme-proc");
            seen.push(edge["node"]["time"].as_str().expect("time").to_owned());
        }
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = connection["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 20, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, no repeats");

    // OpenTelemetry points: only acme's service exists for acme.
    let points = f
        .t
        .gql(
            Some(&f.viewer),
            "{ all: otelMetrics(first: 500) { edges { node { serviceName value } } } \
               globex: otelMetrics(filter: {serviceName: \"tenant_globex-svc\"}) { edges { node { value } } } }",
            json!({}),
        )
        .await;
    let all = points["data"]["all"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{points}"));
    assert_eq!(all.len(), 120);
    assert!(all.iter().all(|e| e["node"]["serviceName"] == "tenant_acme-svc"));
    assert_eq!(all[0]["node"]["value"], 1.0, "newest first");
    assert_eq!(
        points["data"]["globex"]["edges"].as_array().map(Vec::len),
        Some(0)
    );

    // Traces with errors, and the spans of one.
    let traces =
        f.t.gql(
            Some(&f.viewer),
            "{ traceSummaries(filter: {hasErrors: true}) { edges { node { traceId errorCount } } } \
               traceSpans(traceId: \"tenant_acme-trace-1\") { spanId parentSpanId status } \
               foreign: traceSpans(traceId: \"tenant_globex-trace-1\") { spanId } }",
            json!({}),
        )
        .await;
    let with_errors = traces["data"]["traceSummaries"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{traces}"));
    assert_eq!(with_errors.len(), 5);
    assert!(with_errors.iter().all(|e| e["node"]["errorCount"] == 1));
    assert_eq!(
        traces["data"]["traceSpans"],
        json!([{"spanId": "a1", "parentSpanId": null, "status": "ok"}, {"spanId": "a2", "parentSpanId": "a1", "status": "error"}])
    );
    assert_eq!(
        traces["data"]["foreign"],
        json!([]),
        "another tenant's trace is not there"
    );
    let refused =
        f.t.gql(
            Some(&f.viewer),
            "{ traceSpans(traceId: \"x\", first: 5000) { spanId } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn checkers_sources_sites_and_interfaces_update_only_what_is_given_within_the_tenant() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 1).await;
    let globex_admin = f.t.user("globex", "admin@globex.example", Role::Admin).await;
    let globex = f.t.session("globex", &globex_admin).await;
    let gql = |token: &str, query: &str, variables: Value| {
        let (t, token, query) = (&f.t, token.to_owned(), query.to_owned());
        async move { t.gql(Some(&token), &query, variables).await }
    };
    let created = gql(
        &f.admin,
        "mutation { a: createAgent(input: {name: \"agent-1\"}) { agent { id } } \
           s: createIntegrationSource(input: {name: \"netbox\", kind: NETBOX, config: {url: \"https://nb\"}}) { integrationSource { id } } \
           e: createEdgeSite(input: {name: \"plant\", location: \"Lyon\"}) { edgeSite { id } } }",
        json!({}),
    )
    .await;
    assert!(created["errors"].is_null(), "{created}");
    let agent = created["data"]["a"]["agent"]["id"].clone();
    let source = created["data"]["s"]["integrationSource"]["id"].clone();
    let site = created["data"]["e"]["edgeSite"]["id"].clone();
    let checker = gql(
        &f.admin,
        "mutation($a: ID!) { createChecker(input: {agentId: $a, name: \"ping\", kind: ICMP, config: {count: 3}}) { checker { id } } }",
        json!({ "a": agent }),
    )
    .await["data"]["createChecker"]["checker"]["id"]
        .clone();
    let interface = gql(
        &f.admin,
        "{ devices { edges { node { interfaces { nodes { id name } } } } } }",
        json!({}),
    )
    .await["data"]["devices"]["edges"][0]["node"]["interfaces"]["nodes"][0]["id"]
        .clone();

    let updated = gql(
        &f.admin,
        "mutation($c: ID!, $s: ID!, $e: ID!, $i: ID!) { \
           c: updateChecker(input: {id: $c, enabled: false}) { checker { name enabled config } } \
           s: updateIntegrationSource(input: {id: $s, config: {url: \"https://nb2\"}}) { integrationSource { name enabled } } \
           e: updateEdgeSite(input: {id: $e, status: ONLINE}) { edgeSite { name location status } } \
           i: updateInterface(input: {id: $i, operStatus: DOWN, speedBps: \"10000000000\", mac: \"aa:bb:cc:dd:ee:ff\"}) { interface { name operStatus speedBps mac } } }",
        json!({ "c": checker, "s": source, "e": site, "i": interface }),
    )
    .await;
    assert!(updated["errors"].is_null(), "{updated}");
    let data = &updated["data"];
    assert_eq!(
        data["c"]["checker"],
        json!({"name": "ping", "enabled": false, "config": {"count": 3}})
    );
    assert_eq!(
        data["s"]["integrationSource"],
        json!({"name": "netbox", "enabled": true})
    );
    assert_eq!(
        f.t.db.count("SELECT count(*) AS n FROM tenant_acme.integration_sources WHERE config->>'url' = 'https://nb2'").await,
        1
    );
    assert_eq!(
        data["e"]["edgeSite"],
        json!({"name": "plant", "location": "Lyon", "status": "ONLINE"})
    );
    assert_eq!(data["i"]["interface"]["name"], "eth0");
    assert_eq!(data["i"]["interface"]["operStatus"], "DOWN");
    assert_eq!(data["i"]["interface"]["speedBps"], "10000000000");

    // Bad input changes nothing.
    let refused = gql(
        &f.admin,
        "mutation($c: ID!) { updateChecker(input: {id: $c, name: \"renamed\", config: [1, 2]}) { checker { name } } }",
        json!({ "c": checker }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"));
    let refused = gql(
        &f.admin,
        "mutation($i: ID!) { updateInterface(input: {id: $i, name: \"  \", mac: \"nonsense\"}) { interface { name } } }",
        json!({ "i": interface }),
    )
    .await;
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"));
    assert_eq!(
        f.t.db.names("SELECT name FROM tenant_acme.checkers UNION ALL SELECT name FROM tenant_acme.interfaces WHERE mac IS NOT NULL").await,
        ["ping", "eth0"]
    );

    // Another tenant's admin cannot reach them.
    for (mutation, id) in [
        (
            "updateChecker(input: {id: $x, enabled: true}) { checker { id } }",
            &checker,
        ),
        (
            "updateIntegrationSource(input: {id: $x, enabled: false}) { integrationSource { id } }",
            &source,
        ),
        (
            "updateEdgeSite(input: {id: $x, location: \"elsewhere\"}) { edgeSite { id } }",
            &site,
        ),
        (
            "updateInterface(input: {id: $x, description: \"mine\"}) { interface { id } }",
            &interface,
        ),
    ] {
        let foreign = gql(
            &globex,
            &format!("mutation($x: ID!) {{ {mutation} }}"),
            json!({ "x": id }),
        )
        .await;
        assert_eq!(error_code(&foreign), Some("NOT_FOUND"), "{foreign}");
    }
    assert_eq!(
        f.t.db
            .count("SELECT count(*) AS n FROM tenant_acme.edge_sites WHERE location = 'Lyon'")
            .await,
        1
    );
}

#[tokio::test]
async fn alias_states_merge_audits_and_sessions_are_nodes_of_their_tenant() {
    let f = fixture().await;
    seed(&f.t, "tenant_acme", 2).await;
    f.t.db
        .conn()
        .await
        .batch_execute(
            "SET search_path TO tenant_acme;
             INSERT INTO device_alias_states (device_id, alias_kind, alias_value)
               SELECT id, 'hostname', 'old-name' FROM devices ORDER BY hostname LIMIT 1;
             INSERT INTO merge_audits (primary_device_id, merged_device_id, merged_snapshot, reason)
               SELECT id, gen_random_uuid(), '{}', 'duplicate' FROM devices ORDER BY hostname LIMIT 1;",
        )
        .await
        .expect("seed");
    let admin_user =
        f.t.db
            .uuid("SELECT id FROM tenant_acme.users WHERE email = 'admin@acme.example'")
            .await;
    let listed = f
        .t
        .gql(
            Some(&f.admin),
            "query($u: ID!) { deviceAliasStates { edges { node { id } } } mergeAudits { edges { node { id } } } \
               sessions(filter: {userId: $u}) { edges { node { id } } } }",
            json!({ "u": enclave::resolvers::ids::encode("User", admin_user) }),
        )
        .await;
    let alias = listed["data"]["deviceAliasStates"]["edges"][0]["node"]["id"].clone();
    let audit = listed["data"]["mergeAudits"]["edges"][0]["node"]["id"].clone();
    let session = listed["data"]["sessions"]["edges"][0]["node"]["id"].clone();
    assert!(
        alias.is_string() && audit.is_string() && session.is_string(),
        "{listed}"
    );
    let query = "query($a: ID!, $m: ID!, $s: ID!) { a: node(id: $a) { id } m: node(id: $m) { id } s: node(id: $s) { id } }";
    let variables = json!({ "a": alias, "m": audit, "s": session });
    let found = f.t.gql(Some(&f.admin), query, variables.clone()).await;
    assert_eq!(
        (
            &found["data"]["a"]["id"],
            &found["data"]["m"]["id"],
            &found["data"]["s"]["id"]
        ),
        (&alias, &audit, &session),
        "{found}"
    );
    // A viewer sees the inventory history but not sessions.
    let viewer = f.t.gql(Some(&f.viewer), query, variables.clone()).await;
    assert_eq!(viewer["data"]["a"]["id"], alias, "{viewer}");
    assert!(viewer["data"]["s"].is_null(), "{viewer}");
    // Another tenant's admin finds none of them.
    let globex_admin = f.t.user("globex", "admin@globex.example", Role::Admin).await;
    let globex = f.t.session("globex", &globex_admin).await;
    let foreign = f.t.gql(Some(&globex), query, variables).await;
    for alias in ["a", "m", "s"] {
        assert!(foreign["data"][alias].is_null(), "{foreign}");
    }
}
