//! Privileges follow the database, not the token: a demoted or disabled user, an API token
//! whose creator was demoted, an ended impersonation. The role switch is a barrier: request
//! connections log in as an authenticator that can read nothing by itself. Each tenant
//! transaction really switches role, times statements out and refuses writes in queries.

mod common;

use common::app::{TestApp, error_code};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use enclave::auth::Role;
use enclave::auth::token;
use enclave::resolvers::ids;
use enclave::tenancy::transaction::Access;
use serde_json::json;

const CREATE_DEVICE: &str = "mutation { createDevice(input: {hostname: \"probe\"}) { device { hostname } } }";

fn promote(id: uuid::Uuid, role: &str) -> String {
    format!(
        "mutation {{ updateUser(input: {{id: \"{}\", role: {role}}}) {{ user {{ role }} }} }}",
        ids::encode("User", id).as_str()
    )
}

async fn two_admins() -> (TestApp, String, enclave::auth::users::UserRecord, String) {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let a = t.user("acme", "a@acme.example", Role::Admin).await;
    let b = t.user("acme", "b@acme.example", Role::Admin).await;
    let a_token = t.session("acme", &a).await;
    let b_token = t.session("acme", &b).await;
    (t, a_token, b, b_token)
}

#[tokio::test]
async fn a_demoted_admin_loses_the_role_at_once_and_cannot_promote_themselves_back() {
    let (t, a_token, b, b_token) = two_admins().await;
    // The session is used (and its verification cached) while B is an admin.
    let before = t.gql(Some(&b_token), CREATE_DEVICE, json!({})).await;
    assert!(before["errors"].is_null(), "{before}");

    let demoted = t.gql(Some(&a_token), &promote(b.id, "VIEWER"), json!({})).await;
    assert_eq!(
        demoted["data"]["updateUser"]["user"]["role"], "VIEWER",
        "{demoted}"
    );

    let me = t.gql(Some(&b_token), "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "VIEWER", "{me}");
    let write = t.gql(Some(&b_token), CREATE_DEVICE, json!({})).await;
    assert_eq!(error_code(&write), Some("FORBIDDEN"), "{write}");
    let back = t.gql(Some(&b_token), &promote(b.id, "ADMIN"), json!({})).await;
    assert_eq!(error_code(&back), Some("FORBIDDEN"), "{back}");
    assert_eq!(
        t.db.names("SELECT role AS name FROM tenant_acme.users WHERE email = 'b@acme.example'")
            .await,
        ["viewer"]
    );
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.devices").await,
        1,
        "only the device created before the demotion"
    );
}

#[tokio::test]
async fn an_api_token_is_capped_by_its_creators_current_role() {
    let (t, a_token, b, b_token) = two_admins().await;
    let created = t
        .gql(
            Some(&b_token),
            "mutation($exp: DateTime!) { createApiToken(input: {name: \"ci\", role: ADMIN, expiresAt: $exp}) { token } }",
            json!({ "exp": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339() }),
        )
        .await;
    let api_token = created["data"]["createApiToken"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let ok = t.gql(Some(&api_token), CREATE_DEVICE, json!({})).await;
    assert!(ok["errors"].is_null(), "{ok}");

    t.gql(Some(&a_token), &promote(b.id, "VIEWER"), json!({})).await;
    let me = t.gql(Some(&api_token), "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "VIEWER", "{me}");
    let refused = t.gql(Some(&api_token), CREATE_DEVICE, json!({})).await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.devices").await,
        1
    );
}

#[tokio::test]
async fn a_demoted_platform_admin_can_no_longer_manage_tenants() {
    let t = TestApp::new().await;
    let root = t
        .user("platform", "root@platform.example", Role::PlatformAdmin)
        .await;
    let token = t.session("platform", &root).await;
    let listed = t
        .gql(Some(&token), "{ tenants { nodes { slug } } }", json!({}))
        .await;
    assert!(listed["errors"].is_null(), "{listed}");
    t.db.conn()
        .await
        .batch_execute("UPDATE tenant_platform.users SET role = 'admin'")
        .await
        .expect("demote");
    let refused = t
        .gql(Some(&token), "{ tenants { nodes { slug } } }", json!({}))
        .await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    let create = t
        .gql(
            Some(&token),
            "mutation { createTenant(input: {slug: \"sneaky\", name: \"Sneaky\"}) { tenant { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&create), Some("FORBIDDEN"), "{create}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM public.tenants WHERE slug = 'sneaky'")
            .await,
        0
    );
}

const CREATE_USER: &str = "mutation { createUser(input: {email: \"new@acme.example\", password: \"a long enough password\", role: ADMIN}) { user { email } } }";

#[tokio::test]
async fn create_user_runs_in_the_tenant_transaction_with_its_checks() {
    let (t, a_token, _, b_token) = two_admins().await;
    // A logged-out session creates nobody.
    let out = t
        .gql(Some(&b_token), "mutation { logout { revoked } }", json!({}))
        .await;
    assert_eq!(out["data"]["logout"]["revoked"], true, "{out}");
    let revoked = t.gql(Some(&b_token), CREATE_USER, json!({})).await;
    assert_eq!(error_code(&revoked), Some("UNAUTHENTICATED"), "{revoked}");
    // The refusal is the whole request's: no data, no per-field errors.
    assert!(revoked["data"].is_null(), "{revoked}");
    assert_eq!(revoked["errors"].as_array().map(Vec::len), Some(1), "{revoked}");
    assert!(revoked["errors"][0]["path"].is_null(), "{revoked}");
    // Nor can it read, or introspect (answered by the engine, not by a resolver of ours).
    for query in [
        "{ me { role } devices { totalCount } }",
        "{ __schema { queryType { name } } }",
    ] {
        let out = t.gql(Some(&b_token), query, json!({})).await;
        assert_eq!(error_code(&out), Some("UNAUTHENTICATED"), "{query}: {out}");
        assert!(out["data"].is_null(), "{query}: {out}");
    }
    // An attenuated token creates nobody (the user's sessions would outlive the attenuation).
    let soon = token::attenuate(
        &a_token,
        &format!(
            "check if time($t), $t < {};",
            (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339()
        ),
    )
    .expect("attenuate");
    let attenuated = t.gql(Some(&soon), CREATE_USER, json!({})).await;
    assert_eq!(error_code(&attenuated), Some("FORBIDDEN"), "{attenuated}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.users WHERE email = 'new@acme.example'")
            .await,
        0
    );
    // In an operation with a failing field, nothing is written.
    let failing = t
        .gql(
            Some(&a_token),
            &CREATE_USER.replacen(
                "mutation {",
                &format!(
                    "mutation {{ deleteDevice(input: {{id: \"{}\"}}) {{ deletedId }} ",
                    ids::encode("Device", uuid::Uuid::nil()).as_str()
                ),
                1,
            ),
            json!({}),
        )
        .await;
    assert!(failing["errors"].is_array(), "{failing}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.users WHERE email = 'new@acme.example'")
            .await,
        0,
        "{failing}"
    );
    // An unrestricted admin session does create the user, who can then log in.
    let created = t.gql(Some(&a_token), CREATE_USER, json!({})).await;
    assert_eq!(
        created["data"]["createUser"]["user"]["email"], "new@acme.example",
        "{created}"
    );
    let login = t
        .gql(
            None,
            "mutation { login(email: \"new@acme.example\", password: \"a long enough password\") { token } }",
            json!({}),
        )
        .await;
    assert!(login["data"]["login"]["token"].is_string(), "{login}");
}

async fn impersonate(t: &TestApp, platform_token: &str) -> String {
    let response = t
        .gql(
            Some(platform_token),
            "mutation { impersonate(input: {tenant: \"acme\", reason: \"ticket 7\"}) { token } }",
            json!({}),
        )
        .await;
    response["data"]["impersonate"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"))
        .to_owned()
}

#[tokio::test]
async fn impersonation_ends_on_request_and_when_its_platform_admin_is_disabled() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let root = t
        .user("platform", "root@platform.example", Role::PlatformAdmin)
        .await;
    let platform_token = t.session("platform", &root).await;

    let first = impersonate(&t, &platform_token).await;
    let me = t.gql(Some(&first), "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "ADMIN", "{me}");
    let ended = t
        .gql(Some(&first), "mutation { endImpersonation { ended } }", json!({}))
        .await;
    assert_eq!(ended["data"]["endImpersonation"]["ended"], true, "{ended}");
    let after = t.gql(Some(&first), "{ me { role } }", json!({})).await;
    assert_eq!(error_code(&after), Some("UNAUTHENTICATED"), "{after}");

    let second = impersonate(&t, &platform_token).await;
    assert!(t.gql(Some(&second), "{ me { role } }", json!({})).await["errors"].is_null());
    t.db.conn()
        .await
        .batch_execute("UPDATE tenant_platform.users SET disabled = true")
        .await
        .expect("disable");
    let refused = t.gql(Some(&second), CREATE_DEVICE, json!({})).await;
    assert_eq!(error_code(&refused), Some("UNAUTHENTICATED"), "{refused}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.devices").await,
        0
    );
}

/// A connection exactly as the server's request pool opens them: as the authenticator.
async fn authenticator(t: &TestApp) -> AsyncPgConnection {
    enclave::db::connect_with(t.installation.authenticator_connect.clone(), &[])
        .await
        .expect("log in as the authenticator")
}

async fn refused(conn: &mut AsyncPgConnection, sql: &str) -> String {
    match conn.batch_execute(sql).await {
        Ok(()) => panic!("{sql} was allowed"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn the_authenticator_reads_nothing_once_the_role_switch_is_undone() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    t.user("acme", "a@acme.example", Role::Admin).await;
    let acme_role = t.entry("acme").role.clone();

    let mut conn = authenticator(&t).await;
    for table in [
        "tenant_acme.users",
        "tenant_globex.users",
        "public.tenants",
        "public.tenant_memberships",
    ] {
        let error = refused(&mut conn, &format!("SELECT * FROM {table}")).await;
        assert!(error.contains("permission denied"), "{table}: {error}");
    }
    // Inside a tenant transaction, every way of undoing the switch leaves nothing readable.
    for undo in [
        "RESET ROLE",
        "SELECT set_config('role', 'none', true)",
        "SET LOCAL ROLE NONE",
    ] {
        let error = refused(
            &mut conn,
            &format!(
                "BEGIN; SET LOCAL search_path TO tenant_acme; SET LOCAL ROLE \"{acme_role}\"; {undo}; \
                 SELECT * FROM tenant_acme.users"
            ),
        )
        .await;
        assert!(error.contains("permission denied"), "{undo}: {error}");
        conn.batch_execute("ROLLBACK").await.expect("rollback");
    }
    // No temporary tables that could outlive the transaction and shadow the next tenant's.
    let error = refused(
        &mut conn,
        &format!("BEGIN; SET LOCAL ROLE \"{acme_role}\"; CREATE TEMP TABLE users (id int)"),
    )
    .await;
    assert!(error.contains("permission denied"), "{error}");
    conn.batch_execute("ROLLBACK").await.expect("rollback");
    let error = refused(&mut conn, "CREATE TEMP TABLE users (id int)").await;
    assert!(error.contains("permission denied"), "{error}");
}

#[derive(QueryableByName, Debug)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

#[tokio::test]
async fn a_tenant_transaction_switches_role_times_out_and_is_read_only_for_queries() {
    let t = TestApp::with(|database, _| database.statement_timeout_ms = 300).await;
    let acme = t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;

    let tx = t.app.tenant_tx(acme.clone(), Access::ReadOnly, None);
    {
        let mut conn = tx.conn().await.expect("tenant transaction");
        let user: Setting = diesel::sql_query("SELECT current_user::text AS value")
            .get_result(&mut conn)
            .await
            .expect("current user");
        assert_eq!(user.value, acme.role);
        let other = diesel::sql_query("SELECT count(*) FROM tenant_globex.devices")
            .execute(&mut conn)
            .await
            .expect_err("another tenant's table");
        assert!(other.to_string().contains("permission denied"), "{other}");
    }
    tx.finish(false).await.expect("rollback");

    let tx = t.app.tenant_tx(acme.clone(), Access::ReadOnly, None);
    {
        let mut conn = tx.conn().await.expect("tenant transaction");
        let write = diesel::sql_query("INSERT INTO devices (hostname) VALUES ('x')")
            .execute(&mut conn)
            .await
            .expect_err("a write in a query's transaction");
        assert!(write.to_string().contains("read-only"), "{write}");
    }
    tx.finish(false).await.expect("rollback");

    let tx = t.app.tenant_tx(acme.clone(), Access::ReadWrite, None);
    {
        let mut conn = tx.conn().await.expect("tenant transaction");
        let slow = diesel::sql_query("SELECT pg_sleep(5)")
            .execute(&mut conn)
            .await
            .expect_err("cut at the statement timeout");
        assert!(slow.to_string().contains("statement timeout"), "{slow}");
        let code = enclave::resolvers::errors::ApiError::from(slow).code;
        assert_eq!(code.as_str(), "INTERNAL");
    }
    tx.finish(false).await.expect("rollback");
}

#[tokio::test]
#[allow(clippy::disallowed_methods)]
async fn request_connections_bound_what_an_abandoned_request_can_hold() {
    let t = TestApp::new().await;
    let mut conn = t
        .app
        .db
        .raw_request_pool()
        .get()
        .await
        .expect("request connection");
    for (setting, expected) in [
        ("lock_timeout", "5s"),
        ("idle_in_transaction_session_timeout", "1min"),
        ("client_connection_check_interval", "1s"),
        ("search_path", ""),
    ] {
        let value: Setting = diesel::sql_query(format!("SELECT current_setting('{setting}') AS value"))
            .get_result(&mut conn)
            .await
            .expect("setting");
        assert_eq!(value.value, expected, "{setting}");
    }
    let user: Setting = diesel::sql_query("SELECT session_user::text AS value")
        .get_result(&mut conn)
        .await
        .expect("session user");
    assert_eq!(user.value, t.installation.authenticator);
}
