//! NATS per tenant, against a real `nats-server` in operator mode (started per test on a
//! free port with the configuration `enclave nats config` prints) and a real PostgreSQL:
//! credentials from an onboarding package reach only their tenant's subjects, heartbeats
//! land in the publishing account's tenant, committed changes are published once on their
//! tenant's subject and rolled-back ones never, revoked components lose their NATS access,
//! and after the server restarts Enclave reconnects by itself: heartbeats land and committed
//! changes are published again.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::app::TestApp;
use common::nats::{
    NatsServer, connect, edge_site, next_error, next_message, wait_connected, wait_count, wait_disconnected,
};
use diesel_async::SimpleAsyncConnection as _;
use enclave::auth::Role;
use enclave::nats::NatsLink;
use futures_util::{FutureExt as _, StreamExt as _};
use serde_json::{Value, json};

/// An app with NATS, two tenants (acme, globex) each with an admin and an edge site, and a
/// NATS server configured from the app's operator and accounts.
struct World {
    app: TestApp,
    server: NatsServer,
    tokens: BTreeMap<&'static str, String>,
    sites: BTreeMap<&'static str, String>,
}

impl World {
    /// With the MEMORY resolver.
    async fn new() -> Self {
        Self::build(false, None).await
    }

    /// With the full resolver (`--resolver-dir`) when `full`, else MEMORY, and subjects under
    /// `prefix` (`ENCLAVE_NATS_PREFIX`).
    async fn build(full: bool, prefix: Option<&str>) -> Self {
        let app = TestApp::with(|_, auth| {
            // Only switches NATS on; the test connects to its own server below.
            auth.nats.nats_url = Some("nats://127.0.0.1:1".to_owned());
            auth.nats.nats_prefix = prefix.map(str::to_owned);
        })
        .await;
        let mut tokens = BTreeMap::new();
        let mut sites = BTreeMap::new();
        for slug in ["acme", "globex"] {
            app.tenant(slug, &[]).await;
            let admin = app.user(slug, &format!("admin@{slug}.test"), Role::Admin).await;
            let token = app.session(slug, &admin).await;
            let site = edge_site(&app, &token, &format!("{slug} site")).await;
            tokens.insert(slug, token);
            sites.insert(slug, site);
        }
        let server = NatsServer::for_app(&app, full).await;
        Self {
            app,
            server,
            tokens,
            sites,
        }
    }

    /// Starts Enclave's side: the change feed and the NATS link.
    async fn start(&self) -> (tokio::task::JoinHandle<()>, Arc<NatsLink>) {
        let listener = self.app.app.changes.spawn_listener(self.app.db.url.clone());
        let link = enclave::nats::start(self.app.app.clone(), &self.server.url)
            .await
            .expect("NATS link");
        link.client.flush().await.expect("flush");
        (listener, link)
    }

    /// Adds a tenant with an admin and an edge site after the server started.
    async fn add_tenant(&mut self, slug: &'static str) {
        self.app.tenant(slug, &[]).await;
        let admin = self
            .app
            .user(slug, &format!("admin@{slug}.test"), Role::Admin)
            .await;
        let token = self.app.session(slug, &admin).await;
        let site = edge_site(&self.app, &token, &format!("{slug} site")).await;
        self.tokens.insert(slug, token);
        self.sites.insert(slug, site);
    }

    /// Creates and downloads a package of `slug`; returns its files.
    async fn package(&self, slug: &str, kind: &str) -> BTreeMap<String, String> {
        common::nats::package(&self.app, &self.tokens[slug], &self.sites[slug], kind).await
    }
}

#[tokio::test]
async fn a_tenant_user_reaches_only_its_own_subjects_and_its_heartbeats_land_in_its_own_schema() {
    let world = World::new().await;
    let (_listener, _link) = world.start().await;
    let acme = world.package("acme", "POLLER").await;
    let globex = world.package("globex", "POLLER").await;
    assert_eq!(
        acme.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "ca-chain.pem",
            "component-key.pem",
            "component.pem",
            "config.json",
            "nats.creds"
        ]
    );
    let acme_config: Value = serde_json::from_str(&acme["config.json"]).expect("config");
    let globex_config: Value = serde_json::from_str(&globex["config.json"]).expect("config");
    assert_eq!(acme_config["natsPrefix"], "acme");
    // The user is recorded in the tenant's own schema with its component, never its seed.
    let seed = acme["nats.creds"]
        .lines()
        .find(|line| line.starts_with("SU"))
        .expect("a user seed in nats.creds");
    assert_eq!(
        world
            .app
            .db
            .count(&format!(
                "SELECT count(*) AS n FROM tenant_acme.nats_credentials c \
                 JOIN tenant_acme.edge_components e ON e.id = c.edge_component_id \
                 WHERE c.revoked_at IS NULL AND c.jwt_ref LIKE 'ey%' AND c::text NOT LIKE '%{seed}%'"
            ))
            .await,
        1
    );
    assert_eq!(
        world
            .app
            .db
            .count("SELECT count(*) AS n FROM tenant_globex.nats_credentials")
            .await,
        1
    );

    let (a, mut a_errors) = connect(&world.server.url, &acme["nats.creds"]).await;
    let (b, _) = connect(&world.server.url, &globex["nats.creds"]).await;
    let mut b_all = b
        .subscribe("globex.>")
        .await
        .expect("globex subscribes to its own");
    b.flush().await.expect("flush");

    // Subscribing to another tenant's subjects is refused by the server.
    let mut a_snoop = a.subscribe("globex.>").await.expect("sent");
    a.flush().await.expect("flush");
    let error = next_error(&mut a_errors).await;
    assert!(
        error.to_lowercase().contains("permissions violation") && error.contains("globex.>"),
        "{error}"
    );
    // So is publishing there: globex's subscriber never sees it.
    a.publish("globex.pollers.heartbeat", json!({}).to_string().into())
        .await
        .expect("sent");
    a.flush().await.expect("flush");
    let error = next_error(&mut a_errors).await;
    assert!(
        error.to_lowercase().contains("permissions violation") && error.contains("globex.pollers.heartbeat"),
        "{error}"
    );
    b.flush().await.expect("flush");
    assert!(
        b_all.next().now_or_never().is_none(),
        "globex received acme's message"
    );
    assert!(a_snoop.next().now_or_never().flatten().is_none());

    // A heartbeat naming globex's component, published by acme, changes nothing in globex:
    // the tenant is the publishing account's.
    a.publish(
        "acme.pollers.heartbeat",
        json!({ "componentId": globex_config["componentId"] })
            .to_string()
            .into(),
    )
    .await
    .expect("sent");
    a.publish(
        "acme.pollers.heartbeat",
        json!({ "componentId": acme_config["componentId"] })
            .to_string()
            .into(),
    )
    .await
    .expect("sent");
    a.flush().await.expect("flush");
    wait_count(
        &world.app,
        "SELECT count(*) AS n FROM tenant_acme.edge_components WHERE last_seen IS NOT NULL",
        1,
    )
    .await;
    assert_eq!(
        world
            .app
            .db
            .count("SELECT count(*) AS n FROM tenant_globex.edge_components WHERE last_seen IS NOT NULL")
            .await,
        0,
        "nothing was recorded in globex"
    );
    // The first heartbeat activated acme's package, not globex's.
    assert_eq!(
        world
            .app
            .db
            .count(
                "SELECT count(*) AS n FROM tenant_acme.onboarding_packages p \
                 JOIN tenant_acme.onboarding_events e ON e.onboarding_package_id = p.id \
                 WHERE p.status = 'activated' AND e.event = 'activated'"
            )
            .await,
        1
    );
    assert_eq!(
        world
            .app
            .db
            .count("SELECT count(*) AS n FROM tenant_globex.onboarding_packages WHERE status = 'activated'")
            .await,
        0
    );
    assert!(
        world
            .app
            .app
            .requests
            .nats_heartbeats_refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // acme's own subject space reaches acme's subscribers: globex's did not hear it.
    b.flush().await.expect("flush");
    assert!(b_all.next().now_or_never().is_none());
}

#[tokio::test]
async fn a_committed_alert_is_published_once_on_its_tenants_subject_and_a_rolled_back_one_never() {
    let world = World::new().await;
    // Alerts to act on, made before Enclave listens (so their inserts are not published).
    let mut conn = world.app.db.conn().await;
    conn.batch_execute(
        "INSERT INTO tenant_acme.alerts (id, severity, title) VALUES \
           ('00000000-0000-0000-0000-00000000000a', 'major', 'first'), \
           ('00000000-0000-0000-0000-00000000000b', 'major', 'second'); \
         INSERT INTO tenant_globex.alerts (id, severity, title) VALUES \
           ('00000000-0000-0000-0000-00000000000c', 'critical', 'globex outage')",
    )
    .await
    .expect("seed alerts");
    let first = enclave::resolvers::ids::encode("Alert", uuid::Uuid::from_u128(0xa));
    let second = enclave::resolvers::ids::encode("Alert", uuid::Uuid::from_u128(0xb));
    let globex_alert = enclave::resolvers::ids::encode("Alert", uuid::Uuid::from_u128(0xc));
    let (_listener, _link) = world.start().await;
    let acme = world.package("acme", "AGENT").await;
    let globex = world.package("globex", "AGENT").await;
    let (a, _) = connect(&world.server.url, &acme["nats.creds"]).await;
    let (b, _) = connect(&world.server.url, &globex["nats.creds"]).await;
    let mut a_all = a.subscribe("acme.>").await.expect("subscribe");
    let mut b_all = b.subscribe("globex.>").await.expect("subscribe");
    a.flush().await.expect("flush");
    b.flush().await.expect("flush");

    const ACK: &str = "mutation($id: ID!) { acknowledgeAlert(input: {id: $id}) { alert { id status } } }";
    let done = world
        .app
        .gql(Some(&world.tokens["acme"]), ACK, json!({ "id": first.as_str() }))
        .await;
    assert_eq!(
        done["data"]["acknowledgeAlert"]["alert"]["status"], "ACKNOWLEDGED",
        "{done}"
    );

    // Two root fields, the second fails (already acknowledged): nothing commits.
    let failed = world
        .app
        .gql(
            Some(&world.tokens["acme"]),
            "mutation($a: ID!, $b: ID!) { \
               ok: acknowledgeAlert(input: {id: $a}) { alert { id } } \
               bad: acknowledgeAlert(input: {id: $b}) { alert { id } } }",
            json!({ "a": second.as_str(), "b": first.as_str() }),
        )
        .await;
    assert!(failed["errors"].is_array(), "{failed}");
    assert_eq!(
        world
            .app
            .db
            .count("SELECT count(*) AS n FROM tenant_acme.alerts WHERE title = 'second' AND status = 'open'")
            .await,
        1,
        "the failed mutation rolled back"
    );

    let done = world
        .app
        .gql(
            Some(&world.tokens["globex"]),
            ACK,
            json!({ "id": globex_alert.as_str() }),
        )
        .await;
    assert!(done["errors"].is_null(), "{done}");
    // A committed device, after all of the above: the last message acme hears.
    let device = world
        .app
        .gql(
            Some(&world.tokens["acme"]),
            "mutation { createDevice(input: {hostname: \"core-1\"}) { device { id } } }",
            json!({}),
        )
        .await;
    let device_id = device["data"]["createDevice"]["device"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{device}"))
        .to_owned();

    // Enclave publishes in commit order on one connection: acme hears exactly its
    // committed alert, then its device — no rolled-back alert, nothing of globex.
    let (subject, body) = next_message(&mut a_all).await;
    assert_eq!(subject, "acme.alerts.changed");
    assert_eq!(
        body,
        json!({ "id": first.as_str(), "type": "Alert", "tenant": "acme" })
    );
    let (subject, body) = next_message(&mut a_all).await;
    assert_eq!(
        (subject.as_str(), body["id"].as_str()),
        ("acme.devices.changed", Some(device_id.as_str()))
    );
    // globex hears its own alert, and only that.
    let (subject, body) = next_message(&mut b_all).await;
    assert_eq!(subject, "globex.alerts.changed");
    assert_eq!(body["id"], globex_alert.as_str());
    b.flush().await.expect("flush");
    a.flush().await.expect("flush");
    assert!(b_all.next().now_or_never().is_none(), "globex heard more");
    assert!(a_all.next().now_or_never().is_none(), "acme heard more");
}

#[tokio::test]
async fn a_revoked_components_nats_user_is_disconnected_and_refused_while_its_sibling_works() {
    let mut world = World::new().await;
    let (_listener, _link) = world.start().await;
    let revoked = world.package("acme", "POLLER").await;
    let kept = world.package("acme", "POLLER").await;
    let (doomed, _) = connect(&world.server.url, &revoked["nats.creds"]).await;
    let revoked_config: Value = serde_json::from_str(&revoked["config.json"]).expect("config");

    let listed = world
        .app
        .gql(
            Some(&world.tokens["acme"]),
            "{ edgeComponents { edges { node { id componentId } } } }",
            json!({}),
        )
        .await;
    let id = listed["data"]["edgeComponents"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .find(|edge| edge["node"]["componentId"] == revoked_config["componentId"])
        .and_then(|edge| edge["node"]["id"].as_str())
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    let done = world
        .app
        .gql(
            Some(&world.tokens["acme"]),
            "mutation($id: ID!) { revokeEdgeComponent(input: {id: $id}) { edgeComponent { revokedAt } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(done["errors"].is_null(), "{done}");
    assert_eq!(
        world
            .app
            .db
            .count("SELECT count(*) AS n FROM tenant_acme.nats_credentials WHERE revoked_at IS NOT NULL")
            .await,
        1
    );

    // The revoked user's open connection is closed, and it cannot connect again.
    wait_disconnected(&doomed).await;
    let refused = async_nats::ConnectOptions::with_credentials(&revoked["nats.creds"])
        .expect("creds parse")
        .connect(&world.server.url)
        .await;
    assert!(refused.is_err(), "the revoked user connected again");
    // Its sibling, issued by the same account, still works.
    let (sibling, _) = connect(&world.server.url, &kept["nats.creds"]).await;
    sibling.flush().await.expect("the kept user is served");
    drop(sibling);

    // A restarted server knows only the JWTs of its configuration file, which predate the
    // revocation: Enclave pushes every account again when it reconnects, and the revoked
    // user is refused again.
    world.server.restart();
    let mut refused_again = false;
    for _ in 0..400 {
        let attempt = async_nats::ConnectOptions::with_credentials(&revoked["nats.creds"])
            .expect("creds parse")
            .connect(&world.server.url)
            .await;
        if attempt.is_err() {
            refused_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused_again,
        "the revoked user is served again after a server restart"
    );
    let (sibling, _) = connect(&world.server.url, &kept["nats.creds"]).await;
    sibling.flush().await.expect("the kept user is still served");
}

#[tokio::test]
async fn after_the_nats_server_restarts_heartbeats_land_and_committed_changes_are_published_again() {
    let mut world = World::new().await;
    let (_listener, link) = world.start().await;
    let acme = world.package("acme", "POLLER").await;
    let config: Value = serde_json::from_str(&acme["config.json"]).expect("config");
    let (poller, _) = connect(&world.server.url, &acme["nats.creds"]).await;
    let mut heard = poller.subscribe("acme.>").await.expect("subscribe");
    poller.flush().await.expect("flush");
    let beat = || json!({ "componentId": config["componentId"] }).to_string();
    const SEEN: &str = "SELECT count(*) AS n FROM tenant_acme.edge_components WHERE last_seen IS NOT NULL";

    // Before: a heartbeat lands in acme's schema.
    poller
        .publish("acme.pollers.heartbeat", beat().into())
        .await
        .expect("sent");
    poller.flush().await.expect("flush");
    wait_count(&world.app, SEEN, 1).await;
    let recorded = |app: &TestApp| {
        app.app
            .requests
            .nats_heartbeats
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(recorded(&world.app), 1);

    // The server goes away and comes back (same port, same configuration): Enclave's
    // clients and the poller's reconnect by themselves and subscribe again.
    world.server.restart();
    wait_connected(&link.client).await;
    wait_connected(&link.system).await;
    wait_connected(&poller).await;
    world
        .app
        .db
        .conn()
        .await
        .batch_execute("UPDATE tenant_acme.edge_components SET last_seen = NULL")
        .await
        .expect("forget the first heartbeat");

    // A heartbeat after the restart is recorded again, in acme's schema.
    poller
        .publish("acme.pollers.heartbeat", beat().into())
        .await
        .expect("sent");
    poller.flush().await.expect("flush");
    wait_count(&world.app, SEEN, 1).await;
    assert_eq!(recorded(&world.app), 2);
    assert_eq!(
        world
            .app
            .db
            .count("SELECT count(*) AS n FROM tenant_globex.edge_components WHERE last_seen IS NOT NULL")
            .await,
        0
    );

    // A change committed after the restart is published on acme's subject again.
    let device = world
        .app
        .gql(
            Some(&world.tokens["acme"]),
            "mutation { createDevice(input: {hostname: \"after-restart\"}) { device { id } } }",
            json!({}),
        )
        .await;
    let device_id = device["data"]["createDevice"]["device"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{device}"))
        .to_owned();
    assert_eq!(
        world
            .app
            .db
            .count("SELECT count(*) AS n FROM tenant_acme.devices WHERE hostname = 'after-restart'")
            .await,
        1
    );
    loop {
        let (subject, body) = next_message(&mut heard).await;
        if subject == "acme.pollers.heartbeat" {
            continue; // the poller's own heartbeats
        }
        assert_eq!(subject, "acme.devices.changed");
        assert_eq!(body["id"], device_id.as_str());
        break;
    }
}

#[tokio::test]
async fn a_tenant_created_later_reaches_the_full_resolver_and_suspending_it_disables_its_users() {
    let mut world = World::build(true, None).await;
    let (_listener, _link) = world.start().await;
    // Created after the server started: its account and the enclave account's new import
    // are pushed when its first package is downloaded.
    world.add_tenant("initech").await;
    let files = world.package("initech", "AGENT").await;
    let config: Value = serde_json::from_str(&files["config.json"]).expect("config");
    let (client, _) = connect(&world.server.url, &files["nats.creds"]).await;
    client
        .publish(
            "initech.agents.heartbeat",
            json!({ "componentId": config["componentId"] }).to_string().into(),
        )
        .await
        .expect("sent");
    client.flush().await.expect("flush");
    wait_count(
        &world.app,
        "SELECT count(*) AS n FROM tenant_initech.edge_components WHERE last_seen IS NOT NULL",
        1,
    )
    .await;

    // A platform admin suspends the tenant: its account revokes every user.
    let root = world
        .app
        .user("platform", "root@platform.test", Role::PlatformAdmin)
        .await;
    let root = world.app.session("platform", &root).await;
    const STATUS: &str = "mutation($slug: String!) { suspendTenant(slug: $slug) { tenant { status } } }";
    let done = world
        .app
        .gql(Some(&root), STATUS, json!({ "slug": "initech" }))
        .await;
    assert!(done["errors"].is_null(), "{done}");
    wait_disconnected(&client).await;
    let refused = async_nats::ConnectOptions::with_credentials(&files["nats.creds"])
        .expect("creds parse")
        .connect(&world.server.url)
        .await;
    assert!(refused.is_err(), "a suspended tenant's user connected");
    // The directory sees the suspension (as its refresher would).
    world.app.reload().await;
    // Other tenants are untouched.
    let acme = world.package("acme", "AGENT").await;
    connect(&world.server.url, &acme["nats.creds"]).await;

    // Resuming as `enclave tenant resume` does (no GraphQL): Enclave follows the tenant
    // directory and re-signs the account; the same credentials are served again.
    let slug = enclave::tenancy::provision::parse_slug("initech").expect("slug");
    enclave::tenancy::registry::set_status(
        &mut world.app.db.conn().await,
        &slug,
        enclave::tenancy::registry::TenantStatus::Active,
    )
    .await
    .expect("resumed");
    world.app.reload().await;
    for _ in 0..200 {
        let attempt = async_nats::ConnectOptions::with_credentials(&files["nats.creds"])
            .expect("creds parse")
            .connect(&world.server.url)
            .await;
        if let Ok(again) = attempt {
            again.flush().await.expect("served again");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the resumed tenant's user is still refused");
}

#[tokio::test]
async fn with_a_prefix_every_tenant_subject_lives_under_it() {
    let world = World::build(false, Some("prod.eu")).await;
    let mut conn = world.app.db.conn().await;
    conn.batch_execute(
        "INSERT INTO tenant_acme.alerts (id, severity, title) VALUES \
           ('00000000-0000-0000-0000-00000000000a', 'major', 'first')",
    )
    .await
    .expect("seed alert");
    let (_listener, _link) = world.start().await;
    let files = world.package("acme", "POLLER").await;
    let config: Value = serde_json::from_str(&files["config.json"]).expect("config");
    assert_eq!(config["natsPrefix"], "prod.eu.acme");
    let (a, mut errors) = connect(&world.server.url, &files["nats.creds"]).await;
    let mut mine = a
        .subscribe("prod.eu.acme.alerts.changed")
        .await
        .expect("subscribe");
    // The bare slug is not the tenant's subject root any more.
    let _bare = a.subscribe("acme.>").await.expect("sent");
    a.flush().await.expect("flush");
    let error = next_error(&mut errors).await;
    assert!(error.contains("acme.>"), "{error}");

    a.publish(
        "prod.eu.acme.pollers.heartbeat",
        json!({ "componentId": config["componentId"] }).to_string().into(),
    )
    .await
    .expect("sent");
    a.flush().await.expect("flush");
    wait_count(
        &world.app,
        "SELECT count(*) AS n FROM tenant_acme.edge_components WHERE last_seen IS NOT NULL",
        1,
    )
    .await;
    let alert = enclave::resolvers::ids::encode("Alert", uuid::Uuid::from_u128(0xa));
    let done = world
        .app
        .gql(
            Some(&world.tokens["acme"]),
            "mutation($id: ID!) { acknowledgeAlert(input: {id: $id}) { alert { id } } }",
            json!({ "id": alert.as_str() }),
        )
        .await;
    assert!(done["errors"].is_null(), "{done}");
    let (subject, body) = next_message(&mut mine).await;
    assert_eq!(subject, "prod.eu.acme.alerts.changed");
    assert_eq!(body["id"], alert.as_str());
}

#[tokio::test]
async fn a_dropped_tenants_users_are_refused_even_when_its_slug_is_taken_again() {
    let mut world = World::build(true, None).await;
    let (_listener, _link) = world.start().await;
    world.add_tenant("initech").await;
    let old = world.package("initech", "AGENT").await;
    let (old_client, _) = connect(&world.server.url, &old["nats.creds"]).await;

    // `enclave tenant drop`: the running Enclave sees the tenant gone from its directory.
    let slug = enclave::tenancy::provision::parse_slug("initech").expect("slug");
    enclave::tenancy::provision::drop_tenant(&mut world.app.db.conn().await, &world.app.installation, &slug)
        .await
        .expect("dropped");
    world.app.reload().await;
    wait_disconnected(&old_client).await;
    assert_eq!(
        world
            .app
            .db
            .count(
                "SELECT count(*) AS n FROM public.nats_accounts WHERE kind = 'tenant' AND tenant_id IS NULL"
            )
            .await,
        1,
        "the account is kept, detached"
    );

    // A new tenant with the same slug gets a new account; the old users stay refused.
    world.add_tenant("initech").await;
    let new = world.package("initech", "AGENT").await;
    let (new_client, _) = connect(&world.server.url, &new["nats.creds"]).await;
    new_client.flush().await.expect("the new tenant's user is served");
    let refused = async_nats::ConnectOptions::with_credentials(&old["nats.creds"])
        .expect("creds parse")
        .connect(&world.server.url)
        .await;
    assert!(refused.is_err(), "a dropped tenant's user connected");
}
