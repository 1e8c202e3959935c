//! Tokens, login paths, logout, API-token revocation, suspension and impersonation,
//! through the real HTTP endpoint and a real PostgreSQL.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::app::{PASSWORD, TestApp, error_code};
use enclave::auth::Role;
use enclave::auth::keys::RootKeys;
use enclave::auth::token::{self, Claims, Credential};
use enclave::tenancy::registry::{self, TenantStatus};
use enclave::tenancy::slug::Slug;
use serde_json::{Value, json};
use uuid::Uuid;

const ME: &str = "{ me { role tenant { slug } user { email } impersonator } }";
const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token tenant { slug } choices { slug choice } } }";

fn login_body(email: &str, password: &str) -> Value {
    json!({ "query": LOGIN, "variables": { "e": email, "p": password } })
}

fn in_days(days: i64) -> String {
    (Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}

async fn acme_with_admin() -> (TestApp, enclave::auth::users::UserRecord, String) {
    let t = TestApp::new().await;
    t.tenant("acme", &["acme.example.com"]).await;
    let admin = t.user("acme", "admin@acme.example", Role::Admin).await;
    let token = t.session("acme", &admin).await;
    (t, admin, token)
}

#[tokio::test]
async fn expired_tampered_foreign_unknown_key_and_malformed_tokens_are_refused() {
    let (t, admin, good) = acme_with_admin().await;
    assert_eq!(
        t.gql(Some(&good), ME, json!({})).await["data"]["me"]["role"],
        "ADMIN"
    );
    let acme = t.entry("acme");
    let claims = |expires_at| Claims {
        user_id: admin.id,
        tenant_id: acme.id,
        role: Role::Admin,
        credential: Credential::Impersonation(Uuid::new_v4()),
        impersonator: None,
        expires_at,
    };
    let keys = RootKeys::parse(&t.key_spec).expect("keys");
    let expired = token::mint(&keys, &claims(Utc::now() - chrono::Duration::seconds(5))).expect("mint");
    let (other_root, _) = RootKeys::generate(1);
    let foreign = token::mint(&other_root, &claims(Utc::now() + chrono::Duration::hours(1))).expect("mint");
    let (unknown_id, _) = RootKeys::generate(9);
    let unknown = token::mint(&unknown_id, &claims(Utc::now() + chrono::Duration::hours(1))).expect("mint");
    let mut tampered = good.clone().into_bytes();
    let at = tampered.len() - 20;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for (what, bad) in [
        ("expired", expired.as_str()),
        ("foreign root key", foreign.as_str()),
        ("unknown key id", unknown.as_str()),
        ("tampered", tampered.as_str()),
        ("garbage", "not-a-token"),
    ] {
        let response = t.gql(Some(bad), ME, json!({})).await;
        assert_eq!(
            error_code(&response),
            Some("UNAUTHENTICATED"),
            "{what}: {response}"
        );
        assert!(response["data"].is_null(), "{what}");
    }
    let (_, response) = t
        .call(&[("authorization", "Basic abc")], json!({ "query": ME }))
        .await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"));
    let huge = format!("Bearer {}", "A".repeat(20_000));
    let (_, response) = t.call(&[("authorization", &huge)], json!({ "query": ME })).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_token_verified_before_still_expires_and_its_attenuations_are_still_checked() {
    let (t, admin, _) = acme_with_admin().await;
    let acme = t.entry("acme");
    let keys = RootKeys::parse(&t.key_spec).expect("keys");
    // A live session row (an hour), named by a token that itself expires in 1.5 s: only the
    // token's own expiry can stop it.
    let session =
        t.db.uuid("SELECT id FROM tenant_acme.tokens ORDER BY created_at DESC LIMIT 1")
            .await;
    let short = token::mint(
        &keys,
        &Claims {
            user_id: admin.id,
            tenant_id: acme.id,
            role: Role::Admin,
            credential: Credential::Session(session),
            impersonator: None,
            expires_at: Utc::now() + chrono::Duration::milliseconds(1500),
        },
    )
    .expect("mint");
    // Used twice: the second use is served from the verified tokens.
    for _ in 0..2 {
        assert_eq!(
            t.gql(Some(&short), ME, json!({})).await["data"]["me"]["role"],
            "ADMIN"
        );
    }
    // Its attenuation is a different token, checked in full.
    let read_only = token::attenuate(&short, "check if operation(\"query\");").expect("attenuate");
    let response = t
        .gql(Some(&read_only), "mutation { logout { revoked } }", json!({}))
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response}");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let response = t.gql(Some(&short), ME, json!({})).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
}

#[tokio::test]
async fn a_read_only_attenuated_token_cannot_mutate() {
    let (t, _, good) = acme_with_admin().await;
    let read_only = token::attenuate(&good, "check if operation(\"query\");").expect("attenuate");
    assert_eq!(
        t.gql(Some(&read_only), ME, json!({})).await["data"]["me"]["role"],
        "ADMIN"
    );
    let response = t
        .gql(Some(&read_only), "mutation { logout { revoked } }", json!({}))
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.tokens WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_revoked_api_token_and_its_attenuations_stop_working_at_once() {
    let (t, _, admin_token) = acme_with_admin().await;
    let created = t
        .gql(
            Some(&admin_token),
            "mutation($exp: DateTime!) { createApiToken(input: {name: \"ci\", role: OPERATOR, expiresAt: $exp}) { apiToken { id role } token } }",
            json!({ "exp": in_days(30) }),
        )
        .await;
    let api_token = created["data"]["createApiToken"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let id = created["data"]["createApiToken"]["apiToken"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let attenuated = token::attenuate(&api_token, "check if operation(\"query\");").expect("attenuate");
    assert_eq!(
        t.gql(Some(&api_token), ME, json!({})).await["data"]["me"]["role"],
        "OPERATOR"
    );
    assert_eq!(
        t.gql(Some(&attenuated), ME, json!({})).await["data"]["me"]["role"],
        "OPERATOR"
    );
    // The list never shows the token itself.
    let listed = t
        .gql(
            Some(&admin_token),
            "{ apiTokens { nodes { id name } } }",
            json!({}),
        )
        .await;
    assert!(!listed.to_string().contains(&api_token[..40]));

    let revoked = t
        .gql(
            Some(&admin_token),
            "mutation($id: ID!) { revokeApiToken(id: $id) { apiToken { revokedAt } } }",
            json!({ "id": id }),
        )
        .await;
    let revoked_at = revoked["data"]["revokeApiToken"]["apiToken"]["revokedAt"].clone();
    assert!(revoked_at.is_string(), "{revoked}");
    // Revoking again changes nothing: the first revocation's time stays.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = t
        .gql(
            Some(&admin_token),
            "mutation($id: ID!) { revokeApiToken(id: $id) { apiToken { revokedAt } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        again["data"]["revokeApiToken"]["apiToken"]["revokedAt"], revoked_at,
        "{again}"
    );
    for token in [&api_token, &attenuated] {
        let response = t.gql(Some(token), ME, json!({})).await;
        assert_eq!(error_code(&response), Some("UNAUTHENTICATED"), "{response}");
        assert!(response["data"].is_null());
    }
}

#[tokio::test]
async fn api_tokens_cannot_exceed_the_creators_role_and_need_an_admin() {
    let (t, _, admin_token) = acme_with_admin().await;
    let viewer = t.user("acme", "viewer@acme.example", Role::Viewer).await;
    let viewer_token = t.session("acme", &viewer).await;
    let create = "mutation($role: Role!, $exp: DateTime!) { createApiToken(input: {name: \"x\", role: $role, expiresAt: $exp}) { token } }";
    let response = t
        .gql(
            Some(&viewer_token),
            create,
            json!({ "role": "VIEWER", "exp": in_days(1) }),
        )
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"));
    let response = t
        .gql(
            Some(&admin_token),
            create,
            json!({ "role": "PLATFORM_ADMIN", "exp": in_days(1) }),
        )
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"));
    let response = t
        .gql(
            Some(&admin_token),
            create,
            json!({ "role": "VIEWER", "exp": in_days(-1) }),
        )
        .await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"));
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.api_tokens")
            .await,
        0
    );
}

#[tokio::test]
async fn login_by_vanity_domain_then_logout_revokes_the_session() {
    let (t, _, _) = acme_with_admin().await;
    t.tenant("globex", &["globex.example.com"]).await;
    let (_, response) = t
        .call(
            &[("host", "Acme.Example.com:443")],
            login_body("ADMIN@acme.example", PASSWORD),
        )
        .await;
    assert_eq!(response["data"]["login"]["tenant"]["slug"], "acme", "{response}");
    let session = response["data"]["login"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        t.gql(Some(&session), ME, json!({})).await["data"]["me"]["user"]["email"],
        "admin@acme.example"
    );

    let response = t
        .gql(Some(&session), "mutation { logout { revoked } }", json!({}))
        .await;
    assert_eq!(response["data"]["logout"]["revoked"], true);
    let response = t.gql(Some(&session), ME, json!({})).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_failed_login_does_not_reveal_whether_the_email_exists() {
    let (t, _, _) = acme_with_admin().await;
    let sessions = t.db.count("SELECT count(*) AS n FROM tenant_acme.tokens").await;
    let (_, wrong_password) = t
        .call(
            &[("host", "acme.example.com")],
            login_body("admin@acme.example", "wrong horse battery"),
        )
        .await;
    let (_, unknown_email) = t
        .call(
            &[("host", "acme.example.com")],
            login_body("nobody@acme.example", PASSWORD),
        )
        .await;
    assert_eq!(error_code(&wrong_password), Some("UNAUTHENTICATED"));
    assert_eq!(
        wrong_password["errors"][0]["message"],
        unknown_email["errors"][0]["message"]
    );
    assert_eq!(
        wrong_password["errors"][0]["extensions"],
        unknown_email["errors"][0]["extensions"]
    );
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.tokens").await,
        sessions,
        "a failed login started a session"
    );
}

#[tokio::test]
async fn login_without_a_vanity_domain_uses_the_single_tenant() {
    let (t, _, _) = acme_with_admin().await;
    let (_, response) = t.call(&[], login_body("admin@acme.example", PASSWORD)).await;
    assert_eq!(response["data"]["login"]["tenant"]["slug"], "acme", "{response}");
}

#[tokio::test]
async fn login_without_a_vanity_domain_uses_the_configured_default_tenant() {
    let t = TestApp::with(|_, auth| auth.default_tenant = Some("globex".into())).await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    t.user("acme", "admin@shared.example", Role::Admin).await;
    t.user("globex", "admin@shared.example", Role::Admin).await;
    let (_, response) = t.call(&[], login_body("admin@shared.example", PASSWORD)).await;
    assert_eq!(
        response["data"]["login"]["tenant"]["slug"], "globex",
        "{response}"
    );
    assert!(
        response["data"]["login"]["choices"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[tokio::test]
async fn login_in_several_tenants_offers_a_selection_of_only_the_valid_ones() {
    let t = TestApp::new().await;
    for slug in ["acme", "globex", "initech"] {
        t.tenant(slug, &[]).await;
    }
    t.user("acme", "admin@shared.example", Role::Admin).await;
    t.user("globex", "admin@shared.example", Role::Operator).await;
    // Same email in initech, but another password: not offered.
    enclave::auth::users::add_to_tenant(
        &mut t.db.conn().await,
        &t.entry("initech"),
        &enclave::auth::users::NewUser {
            email: "admin@shared.example".into(),
            display_name: String::new(),
            role: Role::Admin,
            password: "a different password".into(),
        },
    )
    .await
    .expect("user");

    let (_, response) = t.call(&[], login_body("admin@shared.example", PASSWORD)).await;
    let login = &response["data"]["login"];
    assert!(login["token"].is_null(), "{response}");
    let mut slugs: Vec<&str> = login["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .filter_map(|c| c["slug"].as_str())
        .collect();
    slugs.sort();
    assert_eq!(slugs, ["acme", "globex"]);
    let globex_choice = login["choices"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["slug"] == "globex"))
        .and_then(|c| c["choice"].as_str())
        .expect("globex choice")
        .to_owned();
    // A choice is not an access token.
    let response = t.gql(Some(&globex_choice), ME, json!({})).await;
    assert_eq!(error_code(&response), Some("UNAUTHENTICATED"));

    let selected = t
        .gql(
            None,
            "mutation($c: String!) { selectTenant(choice: $c) { token tenant { slug } } }",
            json!({ "c": globex_choice }),
        )
        .await;
    assert_eq!(
        selected["data"]["selectTenant"]["tenant"]["slug"], "globex",
        "{selected}"
    );
    let session = selected["data"]["selectTenant"]["token"].as_str().expect("token");
    let me = t.gql(Some(session), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["tenant"]["slug"], "globex");
    assert_eq!(me["data"]["me"]["role"], "OPERATOR");

    let forged = t
        .gql(
            None,
            "mutation { selectTenant(choice: \"x\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&forged), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn a_suspended_tenant_is_refused_within_a_second_and_served_again_after_resume() {
    let (t, _, token) = acme_with_admin().await;
    let refresher = t.app.directory.spawn_refresher();
    tokio::time::sleep(Duration::from_millis(200)).await; // let the listener subscribe
    let acme = Slug::parse("acme").expect("slug");
    registry::set_status(&mut t.db.conn().await, &acme, TenantStatus::Suspended)
        .await
        .expect("suspend");
    let mut code = None;
    for _ in 0..20 {
        let response = t.gql(Some(&token), ME, json!({})).await;
        code = error_code(&response).map(str::to_owned);
        if code.is_some() {
            assert!(response["data"].is_null());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        code.as_deref(),
        Some("TENANT_UNAVAILABLE"),
        "suspension not seen within a second"
    );
    registry::set_status(&mut t.db.conn().await, &acme, TenantStatus::Active)
        .await
        .expect("resume");
    let mut served = false;
    for _ in 0..20 {
        if t.gql(Some(&token), ME, json!({})).await["data"]["me"]["role"] == "ADMIN" {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refresher.abort();
    assert!(served, "resume not seen within a second");
}

#[tokio::test]
async fn impersonation_is_logged_expires_within_15_minutes_and_logs_every_mutation() {
    let (t, _, _) = acme_with_admin().await;
    let root = t
        .user("platform", "root@platform.example", Role::PlatformAdmin)
        .await;
    let platform_token = t.session("platform", &root).await;

    let response = t
        .gql(
            Some(&platform_token),
            "mutation { impersonate(input: {tenant: \"acme\", reason: \"ticket 42\"}) { token expiresAt tenant { slug } } }",
            json!({}),
        )
        .await;
    let payload = &response["data"]["impersonate"];
    assert_eq!(payload["tenant"]["slug"], "acme", "{response}");
    let expires: chrono::DateTime<Utc> = payload["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("date");
    assert!(expires <= Utc::now() + chrono::Duration::minutes(15));
    let token = payload["token"].as_str().expect("token").to_owned();

    let me = t.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["tenant"]["slug"], "acme");
    assert_eq!(me["data"]["me"]["impersonator"], "root@platform.example");
    assert!(me["data"]["me"]["user"].is_null());

    let created = t
        .gql(
            Some(&token),
            "mutation { createDevice(input: {hostname: \"support-probe\"}) { device { hostname } } }",
            json!({}),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    // An impersonation token cannot mint itself a longer-lived API token.
    let escalation = t
        .gql(
            Some(&token),
            "mutation($exp: DateTime!) { createApiToken(input: {name: \"x\", role: ADMIN, expiresAt: $exp}) { token } }",
            json!({ "exp": in_days(1) }),
        )
        .await;
    assert_eq!(error_code(&escalation), Some("FORBIDDEN"), "{escalation}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.api_tokens")
            .await,
        0
    );
    assert_eq!(
        t.db.names("SELECT action AS name FROM public.impersonation_logs WHERE target_tenant_slug = 'acme' ORDER BY created_at").await,
        ["impersonate", "mutation createDevice", "mutation createApiToken"]
    );
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM public.impersonation_logs WHERE reason = 'ticket 42' AND impersonator_email = 'root@platform.example'").await,
        1
    );

    // Platform admins read the audit through GraphQL, newest first; nobody else does.
    let audit = t
        .gql(
            Some(&platform_token),
            "{ all: impersonationLogs(filter: {targetTenantSlug: \"acme\"}) { edges { node { action reason impersonatorEmail targetTenantSlug impersonationId } } } \
               mutations: impersonationLogs(filter: {startsOnly: false}, first: 1) { pageInfo { hasNextPage } edges { node { action } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<&str> = audit["data"]["all"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"))
        .iter()
        .filter_map(|e| e["node"]["action"].as_str())
        .collect();
    assert_eq!(actions.len(), 3, "{audit}");
    assert_eq!(actions.last(), Some(&"impersonate"), "newest first: {actions:?}");
    let session = &audit["data"]["all"]["edges"][0]["node"]["impersonationId"];
    assert!(
        audit["data"]["all"]["edges"]
            .as_array()
            .is_some_and(|edges| edges.iter().all(|e| &e["node"]["impersonationId"] == session)),
        "one impersonation: {audit}"
    );
    assert_eq!(audit["data"]["mutations"]["pageInfo"]["hasNextPage"], true);
    assert!(
        audit["data"]["mutations"]["edges"][0]["node"]["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("mutation "))
    );
    let refused = t
        .gql(
            Some(&token),
            "{ impersonationLogs { edges { node { action } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");

    // An impersonation token past its expiry is refused.
    let keys = RootKeys::parse(&t.key_spec).expect("keys");
    let stale = token::mint(
        &keys,
        &Claims {
            user_id: root.id,
            tenant_id: t.entry("acme").id,
            role: Role::Admin,
            credential: Credential::Impersonation(Uuid::new_v4()),
            impersonator: Some("root@platform.example".into()),
            expires_at: Utc::now() - chrono::Duration::seconds(1),
        },
    )
    .expect("mint");
    assert_eq!(
        error_code(&t.gql(Some(&stale), ME, json!({})).await),
        Some("UNAUTHENTICATED")
    );
}

#[tokio::test]
async fn platform_admins_create_list_suspend_and_resume_tenants() {
    let t = TestApp::new().await;
    let root = t
        .user("platform", "root@platform.example", Role::PlatformAdmin)
        .await;
    let token = t.session("platform", &root).await;
    let created = t
        .gql(
            Some(&token),
            "mutation { createTenant(input: {slug: \"initech\", name: \"Initech\", domains: [\"initech.example.com\"]}) { tenant { slug status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        created["data"]["createTenant"]["tenant"]["slug"], "initech",
        "{created}"
    );
    let bad = t
        .gql(
            Some(&token),
            "mutation { createTenant(input: {slug: \"Bad Slug\", name: \"x\"}) { tenant { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"));
    let duplicate = t
        .gql(
            Some(&token),
            "mutation { createTenant(input: {slug: \"initech\", name: \"x\"}) { tenant { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&duplicate), Some("CONFLICT"));
    let suspended = t
        .gql(
            Some(&token),
            "mutation { suspendTenant(slug: \"initech\") { tenant { status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        suspended["data"]["suspendTenant"]["tenant"]["status"],
        "SUSPENDED"
    );
    let resumed = t
        .gql(
            Some(&token),
            "mutation { resumeTenant(slug: \"initech\") { tenant { status } } }",
            json!({}),
        )
        .await;
    assert_eq!(resumed["data"]["resumeTenant"]["tenant"]["status"], "ACTIVE");
    let platform = t
        .gql(
            Some(&token),
            "mutation { suspendTenant(slug: \"platform\") { tenant { status } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&platform), Some("FORBIDDEN"));
    let listed = t
        .gql(Some(&token), "{ tenants { nodes { slug } } }", json!({}))
        .await;
    assert_eq!(
        listed["data"]["tenants"]["nodes"],
        json!([{ "slug": "initech" }, { "slug": "platform" }])
    );
}

#[tokio::test]
async fn token_mint_on_the_command_line_prints_a_working_token() {
    let (t, _, _) = acme_with_admin().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_enclave"))
        .args([
            "token",
            "mint",
            "--tenant",
            "acme",
            "--email",
            "Admin@acme.example",
            "--ttl",
            "10m",
        ])
        .env("DATABASE_URL", &t.db.url)
        .env("ENCLAVE_ROOT_KEY", &t.key_spec)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run enclave token mint");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).expect("utf-8");
    let me = t.gql(Some(token.trim()), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["user"]["email"], "admin@acme.example", "{me}");
}

#[tokio::test]
async fn an_attenuated_token_cannot_mint_an_unrestricted_api_token() {
    let (t, _, admin_token) = acme_with_admin().await;
    let limited =
        token::attenuate(&admin_token, "check if time($t), $t < 2099-01-01T00:00:00Z;").expect("attenuate");
    let response = t
        .gql(
            Some(&limited),
            "mutation($exp: DateTime!) { createApiToken(input: {name: \"escape\", role: ADMIN, expiresAt: $exp}) { token } }",
            json!({ "exp": in_days(30) }),
        )
        .await;
    assert_eq!(error_code(&response), Some("FORBIDDEN"), "{response}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.api_tokens")
            .await,
        0
    );
}

#[tokio::test]
async fn self_committing_mutations_must_be_alone_in_their_operation() {
    let (t, _, admin_token) = acme_with_admin().await;
    let response = t
        .gql(
            Some(&admin_token),
            "mutation { a: login(email: \"admin@acme.example\", password: \"x\") { token } b: logout { revoked } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.tokens WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn api_tokens_expire_in_90_days_by_default_and_dates_must_be_rfc_3339() {
    let (t, _, admin_token) = acme_with_admin().await;
    let created = t
        .gql(
            Some(&admin_token),
            "mutation { createApiToken(input: {name: \"ci\", role: VIEWER}) { apiToken { expiresAt } token } }",
            json!({}),
        )
        .await;
    let expires_at = created["data"]["createApiToken"]["apiToken"]["expiresAt"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    let expires_at = chrono::DateTime::parse_from_rfc3339(expires_at).expect("RFC 3339");
    let days = (expires_at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((89.9..=90.1).contains(&days), "expires in {days} days");

    for (query, variables) in [
        (
            "mutation { createApiToken(input: {name: \"x\", role: VIEWER, expiresAt: \"2027-01-31\"}) { token } }",
            json!({}),
        ),
        (
            "mutation($exp: DateTime!) { createApiToken(input: {name: \"x\", role: VIEWER, expiresAt: $exp}) { token } }",
            json!({ "exp": "2027-01-31" }),
        ),
    ] {
        let response = t.gql(Some(&admin_token), query, variables).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
        let message = response["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("RFC 3339") && message.contains("2027-01-31T00:00:00Z"),
            "{message}"
        );
    }
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.api_tokens")
            .await,
        1,
        "the refused inputs created nothing"
    );
}

#[tokio::test]
async fn admins_list_and_revoke_a_users_sessions_and_nobody_else_can() {
    let (t, _, admin_token) = acme_with_admin().await;
    let viewer = t.user("acme", "viewer@acme.example", Role::Viewer).await;
    let viewer_token = t.session("acme", &viewer).await;
    let second = t.session("acme", &viewer).await;
    t.tenant("globex", &[]).await;
    let globex_admin = t.user("globex", "admin@globex.example", Role::Admin).await;
    let globex_token = t.session("globex", &globex_admin).await;
    let user_id = t.gql(Some(&viewer_token), ME_ID, json!({})).await["data"]["me"]["user"]["id"].clone();
    let list = "query($u: ID!, $active: Boolean) { sessions(filter: {userId: $u, active: $active}) \
                { nodes { id userId revokedAt } } }";

    let listed = t.gql(Some(&admin_token), list, json!({ "u": user_id })).await;
    let sessions = listed["data"]["sessions"]["nodes"]
        .as_array()
        .expect("sessions")
        .clone();
    assert_eq!(sessions.len(), 2, "{listed}");
    assert_eq!(sessions[0]["userId"], user_id);
    assert_eq!(
        error_code(&t.gql(Some(&viewer_token), list, json!({ "u": user_id })).await),
        Some("FORBIDDEN")
    );
    // Another tenant's admin sees none of them and cannot revoke them.
    let foreign = t.gql(Some(&globex_token), list, json!({ "u": user_id })).await;
    assert_eq!(foreign["data"]["sessions"]["nodes"], json!([]), "{foreign}");
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) { session { id revokedAt } } }";
    for (token, id, code) in [
        (&globex_token, sessions[0]["id"].clone(), "NOT_FOUND"),
        (&admin_token, json!("not an id"), "BAD_USER_INPUT"),
        (&admin_token, user_id.clone(), "BAD_USER_INPUT"),
        (&viewer_token, sessions[0]["id"].clone(), "FORBIDDEN"),
    ] {
        let refused = t.gql(Some(token), revoke, json!({ "id": id })).await;
        assert_eq!(error_code(&refused), Some(code), "{refused}");
    }
    assert_eq!(
        t.db.count("SELECT count(*) AS n FROM tenant_acme.tokens WHERE revoked_at IS NOT NULL")
            .await,
        0,
        "a refused revocation wrote"
    );

    // Revoke the viewer's first session: its token stops working, the other does not.
    let done = t
        .gql(Some(&admin_token), revoke, json!({ "id": sessions[0]["id"] }))
        .await;
    assert!(
        done["data"]["revokeSession"]["session"]["revokedAt"].is_string(),
        "{done}"
    );
    let mut working = 0;
    for token in [&viewer_token, &second] {
        if t.gql(Some(token), ME, json!({})).await["data"]["me"]["role"] == "VIEWER" {
            working += 1;
        }
    }
    assert_eq!(working, 1, "exactly one of the two sessions still works");
    let active = t
        .gql(Some(&admin_token), list, json!({ "u": user_id, "active": true }))
        .await;
    assert_eq!(
        active["data"]["sessions"]["nodes"].as_array().map(Vec::len),
        Some(1),
        "{active}"
    );
    let inactive = t
        .gql(Some(&admin_token), list, json!({ "u": user_id, "active": false }))
        .await;
    assert_eq!(
        inactive["data"]["sessions"]["nodes"].as_array().map(Vec::len),
        Some(1),
        "{inactive}"
    );
}

const ME_ID: &str = "{ me { user { id } } }";
