//! The isolation suite: two tenants with look-alike data; everything tenant A's token can
//! do returns and changes only A's rows, whatever else the request carries. Every test
//! asserts that B's data is absent, not only that A's is present.

mod common;

use common::app::{PASSWORD, TestApp, error_code};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use enclave::auth::Role;
use enclave::auth::token;
use enclave::tenancy::transaction::Access;
use serde_json::{Value, json};

struct World {
    t: TestApp,
    acme_token: String,
    globex_token: String,
    globex_api_token_id: String,
}

/// acme and globex, each with an admin `admin@<tenant>.example` (same local part), a
/// vanity domain, and an API token named like the other's.
async fn world() -> World {
    let t = TestApp::new().await;
    t.tenant("acme", &["acme.example.com"]).await;
    t.tenant("globex", &["globex.example.com"]).await;
    let acme_admin = t.user("acme", "admin@shared.example", Role::Admin).await;
    let globex_admin = t.user("globex", "admin@shared.example", Role::Admin).await;
    let acme_token = t.session("acme", &acme_admin).await;
    let globex_token = t.session("globex", &globex_admin).await;
    let create = "mutation($name: String!, $exp: DateTime!) { createApiToken(input: {name: $name, \
                  role: VIEWER, expiresAt: $exp}) { apiToken { id name } token } }";
    let acme = t
        .gql(
            Some(&acme_token),
            create,
            json!({"name": "acme-ci", "exp": in_30_days()}),
        )
        .await;
    assert!(acme["errors"].is_null(), "{acme}");
    let globex = t
        .gql(
            Some(&globex_token),
            create,
            json!({"name": "globex-ci", "exp": in_30_days()}),
        )
        .await;
    let globex_api_token_id = globex["data"]["createApiToken"]["apiToken"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    World {
        t,
        acme_token,
        globex_token,
        globex_api_token_id,
    }
}

fn in_30_days() -> String {
    (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339()
}

const ME: &str = "{ me { role tenant { slug name } user { email } } apiTokens { nodes { name revokedAt } } }";

/// Asserts a response carries acme's data and nothing of globex.
fn only_acme(response: &Value) {
    let text = response.to_string();
    assert!(!text.contains("globex"), "globex data leaked: {text}");
    assert_eq!(response["data"]["me"]["tenant"]["slug"], "acme", "{text}");
    let names: Vec<&str> = response["data"]["apiTokens"]["nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["acme-ci"], "{text}");
}

#[tokio::test]
async fn every_query_with_a_tenants_token_returns_only_its_rows() {
    let w = world().await;
    only_acme(&w.t.gql(Some(&w.acme_token), ME, json!({})).await);
    let globex = w.t.gql(Some(&w.globex_token), ME, json!({})).await;
    assert_eq!(globex["data"]["me"]["tenant"]["slug"], "globex");
    assert!(!globex.to_string().contains("acme"), "{globex}");
}

#[tokio::test]
async fn headers_arguments_and_variables_naming_another_tenant_are_ignored_or_refused() {
    let w = world().await;
    let globex = w.t.entry("globex");
    let bearer = format!("Bearer {}", w.acme_token);
    let globex_id = globex.id.to_string();
    for (name, value) in [
        ("x-tenant-id", globex_id.as_str()),
        ("x-tenant", "globex"),
        ("x-tenant-code", "globex"),
        ("x-tenant-slug", "globex"),
    ] {
        let (_, response) =
            w.t.call(
                &[("authorization", &bearer), (name, value)],
                json!({ "query": ME, "variables": { "tenant": "globex", "tenantId": globex_id } }),
            )
            .await;
        only_acme(&response);
    }
    // A `tenant` argument does not exist: refused by validation, nothing returned.
    let response =
        w.t.gql(
            Some(&w.acme_token),
            "{ me(tenant: \"globex\") { role } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"));
    assert!(response["data"].is_null() && !response.to_string().contains("globex\","));
}

#[tokio::test]
async fn a_token_sent_to_another_tenants_vanity_domain_is_refused() {
    let w = world().await;
    let bearer = format!("Bearer {}", w.acme_token);
    let (_, response) =
        w.t.call(
            &[("authorization", &bearer), ("host", "globex.example.com")],
            json!({ "query": ME }),
        )
        .await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    assert!(response["data"].is_null());
    // On its own domain it works.
    let (_, response) =
        w.t.call(
            &[("authorization", &bearer), ("host", "acme.example.com")],
            json!({ "query": ME }),
        )
        .await;
    only_acme(&response);
}

#[tokio::test]
async fn another_tenants_object_ids_are_not_found_and_stay_untouched() {
    let w = world().await;
    let response =
        w.t.gql(
            Some(&w.acme_token),
            "mutation($id: ID!) { revokeApiToken(id: $id) { apiToken { name } } }",
            json!({ "id": w.globex_api_token_id }),
        )
        .await;
    assert_eq!(error_code(&response), Some("NOT_FOUND"), "{response}");
    assert_eq!(
        w.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.api_tokens WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
    // Revoking acme's own token works and touches only acme.
    let own =
        w.t.gql(Some(&w.acme_token), "{ apiTokens { nodes { id } } }", json!({}))
            .await;
    let own_id = own["data"]["apiTokens"]["nodes"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response =
        w.t.gql(
            Some(&w.acme_token),
            "mutation($id: ID!) { revokeApiToken(id: $id) { apiToken { name } } }",
            json!({ "id": own_id }),
        )
        .await;
    assert_eq!(
        response["data"]["revokeApiToken"]["apiToken"]["name"], "acme-ci",
        "{response}"
    );
    assert_eq!(
        w.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.api_tokens WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn mutations_write_only_into_the_callers_tenant() {
    let w = world().await;
    let before =
        w.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.api_tokens")
            .await;
    let response = w
        .t
        .gql(
            Some(&w.acme_token),
            "mutation($exp: DateTime!) { createApiToken(input: {name: \"second\", role: VIEWER, expiresAt: $exp}) { apiToken { name } } }",
            json!({ "exp": in_30_days() }),
        )
        .await;
    assert!(response["errors"].is_null(), "{response}");
    assert_eq!(
        w.t.db
            .count("SELECT count(*) AS n FROM tenant_acme.api_tokens")
            .await,
        2
    );
    assert_eq!(
        w.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.api_tokens")
            .await,
        before
    );
    // logout revokes acme's session only.
    let response =
        w.t.gql(Some(&w.acme_token), "mutation { logout { revoked } }", json!({}))
            .await;
    assert_eq!(response["data"]["logout"]["revoked"], true);
    assert_eq!(
        w.t.db
            .count("SELECT count(*) AS n FROM tenant_globex.tokens WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn platform_operations_are_refused_to_tenant_admins() {
    let w = world().await;
    for query in [
        "{ tenants { nodes { slug } } }",
        "mutation { suspendTenant(slug: \"globex\") { tenant { slug } } }",
        "mutation { impersonate(input: {tenant: \"globex\", reason: \"x\"}) { token } }",
        "mutation { createTenant(input: {slug: \"evil\", name: \"Evil\"}) { tenant { slug } } }",
    ] {
        let response = w.t.gql(Some(&w.acme_token), query, json!({})).await;
        assert_eq!(error_code(&response), Some("FORBIDDEN"), "{query}: {response}");
    }
    assert_eq!(
        w.t.db
            .count("SELECT count(*) AS n FROM public.tenants WHERE status = 'suspended'")
            .await,
        0
    );
    assert_eq!(
        w.t.db
            .count("SELECT count(*) AS n FROM public.tenants WHERE slug = 'evil'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_token_with_an_appended_tenant_block_still_acts_in_its_own_tenant() {
    let w = world().await;
    let globex = w.t.entry("globex");
    let forged = token::attenuate(
        &w.acme_token,
        &format!("tenant(\"{}\"); role(\"platform_admin\");", globex.id),
    )
    .expect("append a block");
    only_acme(&w.t.gql(Some(&forged), ME, json!({})).await);
    let response =
        w.t.gql(Some(&forged), "{ tenants { nodes { slug } } }", json!({}))
            .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"));
}

#[tokio::test]
async fn login_on_a_vanity_domain_never_reaches_another_tenant() {
    let w = world().await;
    w.t.user("globex", "only-globex@example.com", Role::Admin).await;
    let login = json!({
        "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token tenant { slug } } }",
        "variables": { "e": "only-globex@example.com", "p": PASSWORD },
    });
    let (_, response) = w.t.call(&[("host", "acme.example.com")], login).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
    assert!(response["data"].is_null());
}

#[tokio::test]
async fn interleaved_concurrent_requests_over_a_pool_of_two_see_only_their_own_rows() {
    let t = TestApp::with(|database, _| database.pool_size = 2).await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    let acme = t.user("acme", "admin@shared.example", Role::Admin).await;
    let globex = t.user("globex", "admin@shared.example", Role::Admin).await;
    let tokens = [
        ("acme", t.session("acme", &acme).await),
        ("globex", t.session("globex", &globex).await),
    ];
    let query = "{ me { tenant { slug } user { id } } }";
    let requests = (0..60).map(|i| {
        let (slug, token) = &tokens[i % 2];
        let t = &t;
        async move { (*slug, t.gql(Some(token), query, json!({})).await) }
    });
    for (slug, response) in futures_util::future::join_all(requests).await {
        assert_eq!(response["data"]["me"]["tenant"]["slug"], slug, "{response}");
        let expected = if slug == "acme" { acme.id } else { globex.id };
        let id = response["data"]["me"]["user"]["id"].as_str().expect("id");
        assert_eq!(
            enclave::resolvers::ids::decode("User", &id.into()).ok(),
            Some(expected)
        );
    }
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // inspects the raw request pool
async fn an_aborted_request_never_returns_a_connection_inside_a_transaction() {
    let t = TestApp::with(|database, _| {
        database.pool_size = 1;
        // Long enough that only the client check can end the abandoned backend's wait.
        database.lock_timeout_ms = 60_000;
    })
    .await;
    t.tenant("acme", &[]).await;
    let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
    let token = t.session("acme", &admin).await;

    // Hold a lock so that the request blocks inside its tenant transaction...
    let mut locker = t.db.conn().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE tenant_acme.users IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let blocked = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        t.gql(Some(&token), "{ me { user { email } } }", json!({})),
    )
    .await;
    assert!(
        blocked.is_err(),
        "the request should still be waiting for the lock"
    );
    // ...and the client is gone. Its backend notices (client_connection_check_interval)
    // and stops waiting even while the lock is still held: discarded backends do not
    // pile up behind a slow statement.
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
                   AND application_name = 'enclave' AND wait_event_type = 'Lock'";
    for _ in 0..100 {
        if t.db.count(waiting).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        t.db.count(waiting).await,
        0,
        "the abandoned backend is still waiting"
    );
    locker.batch_execute("ROLLBACK").await.expect("unlock");

    // The next request gets a clean connection: no open transaction, the empty search_path,
    // the login role.
    let mut conn = t
        .app
        .db
        .raw_request_pool()
        .get()
        .await
        .expect("a pooled connection");
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct State {
        #[diesel(sql_type = diesel::sql_types::Text)]
        search_path: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        role: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        read_only: String,
    }
    // In an open transaction, `now()` would be older than the statement.
    let state: State = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT current_setting('search_path') AS search_path, current_user::text AS role, \
             current_setting('transaction_read_only') AS read_only",
        ),
        &mut conn,
    )
    .await
    .expect("state");
    assert_eq!(state.search_path, "");
    assert_eq!(state.read_only, "off");
    assert_eq!(
        state.role, t.installation.authenticator,
        "still under a tenant role: {state:?}"
    );
    drop(conn);
    for _ in 0..50 {
        let stuck =
            t.db.count(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'enclave' AND state LIKE 'idle in transaction%'",
            )
            .await;
        if stuck == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        t.db.count(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'enclave' AND state LIKE 'idle in transaction%'"
        )
        .await,
        0
    );
    // And requests work again on the pool of one.
    let response = t.gql(Some(&token), "{ me { user { email } } }", json!({})).await;
    assert_eq!(
        response["data"]["me"]["user"]["email"], "admin@acme.example",
        "{response}"
    );
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // inspects the raw request pool
async fn waiting_for_a_pooled_connection_ends_in_a_clear_error_not_a_hang() {
    let t = TestApp::with(|database, _| {
        database.pool_size = 1;
        database.pool_timeout_ms = 200;
    })
    .await;
    t.tenant("acme", &[]).await;
    let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
    let token = t.session("acme", &admin).await;
    let held = t
        .app
        .db
        .raw_request_pool()
        .get()
        .await
        .expect("take the only connection");
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        t.gql(Some(&token), "{ me { role } }", json!({})),
    )
    .await
    .expect("the request must not hang");
    assert_eq!(error_code(&response), Some("UNAVAILABLE"), "{response}");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("busy")),
        "{response}"
    );
    drop(held);
    let response = t.gql(Some(&token), "{ me { role } }", json!({})).await;
    assert_eq!(response["data"]["me"]["role"], "ADMIN");
}

/// The PostgreSQL backend behind one tenant transaction of `tenant`.
async fn backend_of(t: &TestApp, tenant: &str) -> i32 {
    #[derive(diesel::QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let entry = t.app.directory.by_slug(tenant).expect("tenant");
    let tx = t.app.tenant_tx(entry, Access::ReadOnly, None);
    let pid = {
        let mut conn = tx.conn().await.expect("tenant transaction");
        diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Backend>(&mut conn)
            .await
            .expect("pid")
            .pid
    };
    tx.finish(true).await.expect("commit");
    pid
}

#[tokio::test]
async fn a_pooled_connection_is_replaced_when_it_would_serve_more_than_its_limit_of_tenants() {
    let t = TestApp::with(|database, _| {
        database.pool_size = 1;
        database.pool_tenants_per_connection = 2;
    })
    .await;
    for slug in ["acme", "globex", "initech"] {
        t.tenant(slug, &[]).await;
    }
    let first = backend_of(&t, "acme").await;
    assert_eq!(backend_of(&t, "globex").await, first, "the second tenant fits");
    assert_eq!(
        backend_of(&t, "acme").await,
        first,
        "a tenant it has served keeps the connection"
    );
    let second = backend_of(&t, "initech").await;
    assert_ne!(second, first, "a third tenant needs a fresh connection");
    assert_eq!(backend_of(&t, "acme").await, second, "which then serves others");

    // Without a limit the one connection serves every tenant.
    let unlimited = TestApp::with(|database, _| {
        database.pool_size = 1;
        database.pool_tenants_per_connection = 0;
    })
    .await;
    for slug in ["acme", "globex", "initech"] {
        unlimited.tenant(slug, &[]).await;
    }
    let only = backend_of(&unlimited, "acme").await;
    for slug in ["globex", "initech", "acme"] {
        assert_eq!(backend_of(&unlimited, slug).await, only);
    }
}

#[tokio::test]
async fn each_tenant_goes_back_to_the_connection_that_has_served_it() {
    let t = TestApp::with(|database, _| {
        database.pool_size = 2;
        database.pool_tenants_per_connection = 1;
    })
    .await;
    for slug in ["acme", "globex"] {
        t.tenant(slug, &[]).await;
    }
    let acme = backend_of(&t, "acme").await;
    let globex = backend_of(&t, "globex").await;
    assert_ne!(acme, globex, "each connection holds one tenant");
    for _ in 0..3 {
        assert_eq!(backend_of(&t, "globex").await, globex);
        assert_eq!(backend_of(&t, "acme").await, acme);
    }
    assert_eq!(t.app.db.request_pool_state().tenants_cached, 2);
    assert_eq!(
        t.app.db.request_pool_state().connections_opened,
        2,
        "no reconnection"
    );
}

#[tokio::test]
async fn requests_survive_backends_terminated_under_the_pool() {
    let t = TestApp::with(|database, _| database.pool_size = 2).await;
    t.tenant("acme", &[]).await;
    let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
    let token = t.session("acme", &admin).await;
    for round in 0..3 {
        let response = t.gql(Some(&token), "{ me { role } }", json!({})).await;
        assert_eq!(
            response["data"]["me"]["role"], "ADMIN",
            "round {round}: {response}"
        );
        // Every request connection's backend goes away (a restart, an operator's kill).
        let killed =
            t.db.count(
                "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'enclave' \
                 AND pid <> pg_backend_pid() AND backend_type = 'client backend') AS killed",
            )
            .await;
        assert!(killed >= 1, "round {round}: no request connection to kill");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let response = t.gql(Some(&token), "{ me { role } }", json!({})).await;
    assert_eq!(response["data"]["me"]["role"], "ADMIN", "{response}");
}

#[tokio::test]
async fn node_finds_api_tokens_identifiers_and_tenants_of_the_callers_tenant_only() {
    let w = world().await;
    w.t.db
        .conn()
        .await
        .batch_execute(
            "INSERT INTO tenant_acme.devices (hostname, status) VALUES ('acme-r1', 'up');
             INSERT INTO tenant_acme.device_identifiers (device_id, kind, value)
               SELECT id, 'serial', 'SN-ACME-1' FROM tenant_acme.devices;",
        )
        .await
        .expect("seed");
    let ids = "{ me { tenant { id } } apiTokens { nodes { id } } \
               devices { nodes { identifiers { id } } } }";
    let acme = w.t.gql(Some(&w.acme_token), ids, json!({})).await;
    let globex = w.t.gql(Some(&w.globex_token), ids, json!({})).await;
    let node = "query($id: ID!) { node(id: $id) { id ... on ApiToken { name } \
                ... on DeviceIdentifier { value } ... on Tenant { slug } } }";
    let find = |token: &str, id: &Value| {
        let token = token.to_owned();
        let id = id.clone();
        let t = &w.t;
        async move { t.gql(Some(&token), node, json!({ "id": id })).await["data"]["node"].clone() }
    };
    let token_id = &acme["data"]["apiTokens"]["nodes"][0]["id"];
    let identifier_id = &acme["data"]["devices"]["nodes"][0]["identifiers"][0]["id"];
    let tenant_id = &acme["data"]["me"]["tenant"]["id"];
    assert!(identifier_id.is_string(), "{acme}");
    assert_eq!(find(&w.acme_token, token_id).await["name"], "acme-ci");
    assert_eq!(find(&w.acme_token, identifier_id).await["value"], "SN-ACME-1");
    assert_eq!(find(&w.acme_token, tenant_id).await["slug"], "acme");
    // The same ids from globex find nothing, and acme cannot reach globex's objects.
    for id in [token_id, identifier_id, tenant_id] {
        assert!(find(&w.globex_token, id).await.is_null(), "globex found {id}");
    }
    assert!(find(&w.acme_token, &json!(w.globex_api_token_id)).await.is_null());
    assert!(
        find(&w.acme_token, &globex["data"]["me"]["tenant"]["id"])
            .await
            .is_null()
    );
}

#[tokio::test]
async fn node_refuses_what_the_lists_refuse_and_a_platform_admin_reaches_every_tenant() {
    let w = world().await;
    let viewer = w.t.user("acme", "viewer@acme.example", Role::Viewer).await;
    let viewer_token = w.t.session("acme", &viewer).await;
    let root =
        w.t.user("platform", "root@platform.example", Role::PlatformAdmin)
            .await;
    let root_token = w.t.session("platform", &root).await;
    let acme =
        w.t.gql(
            Some(&w.acme_token),
            "{ me { tenant { id } } apiTokens { nodes { id } } }",
            json!({}),
        )
        .await;
    let token_id = &acme["data"]["apiTokens"]["nodes"][0]["id"];
    let tenant_id = &acme["data"]["me"]["tenant"]["id"];
    assert!(token_id.is_string() && tenant_id.is_string(), "{acme}");
    let node = "query($id: ID!) { node(id: $id) { id ... on ApiToken { name } ... on Tenant { slug } } }";

    // A viewer may not list API tokens, and may not fetch one by id either.
    let listed =
        w.t.gql(Some(&viewer_token), "{ apiTokens { nodes { id } } }", json!({}))
            .await;
    assert_eq!(error_code(&listed), Some("FORBIDDEN"), "{listed}");
    let fetched =
        w.t.gql(Some(&viewer_token), node, json!({ "id": token_id }))
            .await;
    assert!(fetched["data"]["node"].is_null(), "{fetched}");
    assert!(!fetched.to_string().contains("acme-ci"), "{fetched}");
    // Its own tenant it may see (as under `me`), and not globex's.
    let own =
        w.t.gql(Some(&viewer_token), node, json!({ "id": tenant_id }))
            .await;
    assert_eq!(own["data"]["node"]["slug"], "acme", "{own}");
    let globex =
        w.t.gql(Some(&w.globex_token), "{ me { tenant { id } } }", json!({}))
            .await;
    let globex_tenant = &globex["data"]["me"]["tenant"]["id"];
    let other =
        w.t.gql(Some(&viewer_token), node, json!({ "id": globex_tenant }))
            .await;
    assert!(other["data"]["node"].is_null(), "{other}");

    // A tenant admin may not list tenants; a platform admin lists them and fetches any.
    let refused =
        w.t.gql(Some(&w.acme_token), "{ tenants { nodes { slug } } }", json!({}))
            .await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    let listed =
        w.t.gql(
            Some(&root_token),
            "{ tenants(first: 100) { nodes { id slug } } }",
            json!({}),
        )
        .await;
    let slugs: Vec<&str> = listed["data"]["tenants"]["nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["slug"].as_str()).collect())
        .unwrap_or_default();
    assert!(slugs.contains(&"acme") && slugs.contains(&"globex"), "{listed}");
    for (id, slug) in [(tenant_id, "acme"), (globex_tenant, "globex")] {
        let found = w.t.gql(Some(&root_token), node, json!({ "id": id })).await;
        assert_eq!(found["data"]["node"]["slug"], slug, "{found}");
    }
    // The platform admin's token is for the platform tenant: acme's API token is not its.
    let foreign = w.t.gql(Some(&root_token), node, json!({ "id": token_id })).await;
    assert!(foreign["data"]["node"].is_null(), "{foreign}");
}

/// The prepared statements of the backend behind a tenant transaction that mention
/// `table`, with their text.
async fn prepared_statements_reading(t: &TestApp, tenant: &str, table: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Prepared {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement: String,
    }
    let entry = t.app.directory.by_slug(tenant).expect("tenant");
    let tx = t.app.tenant_tx(entry, Access::ReadOnly, None);
    let statements = {
        let mut conn = tx.conn().await.expect("tenant transaction");
        diesel::sql_query("SELECT statement FROM pg_prepared_statements ORDER BY statement")
            .load::<Prepared>(&mut conn)
            .await
            .expect("prepared statements")
    };
    tx.finish(true).await.expect("commit");
    statements
        .into_iter()
        .map(|p| p.statement)
        .filter(|statement| statement.contains(&format!("FROM \"{table}\"")))
        .collect()
}

/// Counts `tenant`'s devices through its tenant transaction, with the query builder.
async fn count_devices(t: &TestApp, tenant: &str) -> i64 {
    use diesel::QueryDsl as _;
    use enclave::schema::tenant::devices;
    let entry = t.app.directory.by_slug(tenant).expect("tenant");
    let tx = t.app.tenant_tx(entry, Access::ReadOnly, None);
    let count = {
        let mut conn = tx.conn().await.expect("tenant transaction");
        devices::table
            .count()
            .get_result::<i64>(&mut conn)
            .await
            .expect("count")
    };
    tx.finish(true).await.expect("commit");
    count
}

#[tokio::test]
async fn a_connection_shared_by_tenants_prepares_each_tenants_statements_apart() {
    let t = TestApp::with(|database, _| database.pool_size = 1).await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    t.db.conn()
        .await
        .batch_execute(
            "INSERT INTO tenant_acme.devices (hostname) VALUES ('a1'), ('a2'); \
             INSERT INTO tenant_globex.devices (hostname) VALUES ('g1');",
        )
        .await
        .expect("devices");
    // Alternating on the pool's one connection: each tenant reads its own rows.
    for _ in 0..2 {
        assert_eq!(count_devices(&t, "acme").await, 2);
        assert_eq!(count_devices(&t, "globex").await, 1);
    }
    // Two prepared statements, one per tenant, each planned under its own search_path:
    // switching tenants does not make PostgreSQL re-plan the other's.
    let statements = prepared_statements_reading(&t, "acme", "devices").await;
    assert_eq!(statements.len(), 2, "{statements:?}");
    assert!(
        statements[0].starts_with("/* tenant_acme */ SELECT"),
        "{statements:?}"
    );
    assert!(
        statements[1].starts_with("/* tenant_globex */ SELECT"),
        "{statements:?}"
    );
}
