//! Subscriptions: changes committed in PostgreSQL reach the subscribers of their tenant,
//! and only them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::app::TestApp;
use common::subscribe::{open, subscriber};
use diesel_async::SimpleAsyncConnection;
use enclave::auth::token;
use enclave::tenancy::scope::Scope;
use enclave::tenancy::transaction::Access;
use futures_util::StreamExt;

#[tokio::test]
async fn alert_changes_reach_only_the_subscribers_of_their_tenant() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    let listener = t.app.changes.spawn_listener(t.db.url.clone());
    let schema = enclave::resolvers::build_schema(t.app.clone());
    let mut stream = open(
        &schema,
        subscriber(&t, "acme").await,
        "subscription { alertChanges { title status } }",
    )
    .await;

    let mut conn = t.db.conn().await;
    conn.batch_execute(
        "INSERT INTO tenant_globex.alerts (severity, title) VALUES ('critical', 'globex secret outage')",
    )
    .await
    .expect("globex alert");
    conn.batch_execute(
        "BEGIN; INSERT INTO tenant_acme.alerts (severity, title) VALUES ('major', 'rolled back'); ROLLBACK",
    )
    .await
    .expect("rolled back alert");
    conn.batch_execute("INSERT INTO tenant_acme.alerts (severity, title) VALUES ('major', 'acme link down')")
        .await
        .expect("acme alert");

    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a change within 5 s")
        .expect("the stream goes on");
    let value = first.data.into_json().expect("json");
    assert_eq!(value["alertChanges"]["title"], "acme link down", "{value}");
    assert_eq!(value["alertChanges"]["status"], "OPEN");
    // Nothing else: not globex's alert, not the rolled-back one.
    let more = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(
        more.is_err(),
        "unexpected change: {:?}",
        more.ok().flatten().map(|r| r.data)
    );
    listener.abort();
}

#[tokio::test]
async fn another_tenants_alert_storm_does_not_make_a_subscriber_lag() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    let listener = t.app.changes.spawn_listener(t.db.url.clone());
    let schema = enclave::resolvers::build_schema(t.app.clone());
    let mut stream = open(
        &schema,
        subscriber(&t, "acme").await,
        "subscription { alertChanges { title } }",
    )
    .await;

    // More changes of globex than any buffer holds, then one of acme.
    let mut conn = t.db.conn().await;
    conn.batch_execute(
        "INSERT INTO tenant_globex.alerts (severity, title) \
         SELECT 'minor', 'storm ' || n FROM generate_series(1, 5000) AS n",
    )
    .await
    .expect("globex storm");
    conn.batch_execute("INSERT INTO tenant_acme.alerts (severity, title) VALUES ('major', 'acme link down')")
        .await
        .expect("acme alert");
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream goes on");
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let value = first.data.into_json().expect("json");
    assert_eq!(value["alertChanges"]["title"], "acme link down", "{value}");
    listener.abort();
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires_or_is_revoked() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let schema = enclave::resolvers::build_schema(t.app.clone());
    let scope = subscriber(&t, "acme").await;
    let session = scope.subscription_token().expect("token").to_owned();

    // An attenuation that expires in a second.
    let soon = token::attenuate(
        &session,
        &format!(
            "check if time($t), $t < {};",
            (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339()
        ),
    )
    .expect("attenuate");
    let actor = scope.actor.clone().expect("actor");
    let tx = t.app.tenant_tx(
        actor.tenant.clone(),
        Access::ReadOnly,
        Some(actor.claims.credential),
    );
    let attenuated = Arc::new(Scope::subscriber(uuid::Uuid::new_v4(), actor, soon, tx));
    for (what, scope, revoke) in [
        ("expired attenuation", attenuated, false),
        ("revoked session", scope, true),
    ] {
        let mut stream = open(&schema, scope, "subscription { alertChanges { title } }").await;
        if revoke {
            t.db.conn()
                .await
                .batch_execute("UPDATE tenant_acme.tokens SET revoked_at = now()")
                .await
                .expect("revoke");
        }
        let ended = tokio::time::timeout(Duration::from_secs(8), stream.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: the subscription must end within 8 s"))
            .expect("an error before the end");
        let code = ended.errors[0]
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|c| c.to_string());
        assert!(
            matches!(code.as_deref(), Some("\"UNAUTHENTICATED\"" | "\"FORBIDDEN\"")),
            "{what}: {:?}",
            ended.errors
        );
        assert!(stream.next().await.is_none(), "{what}: the stream ends");
    }
}

#[tokio::test]
async fn a_delivered_alert_resolves_its_device_in_the_delivery_transaction() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let listener = t.app.changes.spawn_listener(t.db.url.clone());
    let schema = enclave::resolvers::build_schema(t.app.clone());
    let mut stream = open(
        &schema,
        subscriber(&t, "acme").await,
        "subscription { alertChanges { title device { hostname } } }",
    )
    .await;

    let mut conn = t.db.conn().await;
    for (hostname, title) in [("core-1", "first"), ("core-2", "second")] {
        conn.batch_execute(&format!(
            "WITH d AS (INSERT INTO tenant_acme.devices (hostname) VALUES ('{hostname}') RETURNING id) \
             INSERT INTO tenant_acme.alerts (severity, title, device_id) SELECT 'major', '{title}', id FROM d"
        ))
        .await
        .expect("device and alert");
        let delivered = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a change within 5 s")
            .expect("the stream goes on");
        assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
        let value = delivered.data.into_json().expect("json");
        assert_eq!(value["alertChanges"]["title"], title, "{value}");
        assert_eq!(value["alertChanges"]["device"]["hostname"], hostname, "{value}");
    }
    // Waiting for the next change (as the WebSocket server always does), the subscription
    // holds no transaction.
    let idle = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(idle.is_err(), "no third change");
    assert_eq!(
        t.db.count(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'enclave' AND state LIKE 'idle in transaction%'"
        )
        .await,
        0
    );
    listener.abort();
}

#[tokio::test]
async fn subscribers_are_told_when_the_change_feed_reconnects_and_keep_receiving() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    let listener = t.app.changes.spawn_listener(t.db.url.clone());
    let schema = enclave::resolvers::build_schema(t.app.clone());
    let mut stream = open(
        &schema,
        subscriber(&t, "acme").await,
        "subscription { alertChanges { title } }",
    )
    .await;

    // The listening backend goes away (a database restart, an operator's kill).
    let killed =
        t.db.count(
            "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%') AS killed",
        )
        .await;
    assert_eq!(killed, 1, "the listener's backend");
    let notice = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a notice within 10 s")
        .expect("the stream goes on");
    let code = notice.errors[0]
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .map(|c| c.to_string());
    assert_eq!(code.as_deref(), Some("\"UNAVAILABLE\""), "{:?}", notice.errors);

    t.db.conn()
        .await
        .batch_execute("INSERT INTO tenant_acme.alerts (severity, title) VALUES ('major', 'after the gap')")
        .await
        .expect("alert");
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a change within 5 s")
        .expect("the stream goes on");
    let value = next.data.into_json().expect("json");
    assert_eq!(value["alertChanges"]["title"], "after the gap", "{value}");
    listener.abort();
}
