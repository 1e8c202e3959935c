//! Subscriptions: changes committed in PostgreSQL reach the subscribers of their tenant,
//! and only them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::app::TestApp;
use diesel_async::SimpleAsyncConnection;
use enclave::auth::Role;
use enclave::auth::keys::RootKeys;
use enclave::auth::token::{self, Operation};
use enclave::resolvers::loaders::Loaders;
use enclave::tenancy::scope::{Actor, Scope};
use futures_util::StreamExt;

async fn subscriber(t: &TestApp, slug: &str) -> Arc<Scope> {
    let user = t.user(slug, &format!("admin@{slug}.example"), Role::Admin).await;
    let session = t.session(slug, &user).await;
    let keys = RootKeys::parse(&t.key_spec).expect("keys");
    let claims = token::verify(&session, &keys)
        .expect("verify")
        .authorize(Operation::Subscription, &[])
        .expect("claims");
    let actor = Actor {
        claims,
        tenant: t.entry(slug),
        attenuated: false,
    };
    Arc::new(Scope::subscriber(uuid::Uuid::new_v4(), actor))
}

#[tokio::test]
async fn alert_changes_reach_only_the_subscribers_of_their_tenant() {
    let t = TestApp::new().await;
    t.tenant("acme", &[]).await;
    t.tenant("globex", &[]).await;
    let listener = t.app.changes.spawn_listener(t.db.url.clone());
    let schema = enclave::resolvers::build_schema(t.app.clone());
    let scope = subscriber(&t, "acme").await;
    let request = async_graphql::Request::new("subscription { alertChanges { title status } }")
        .data(Arc::new(Loaders::new(scope.clone())))
        .data(scope);
    let mut stream = Box::pin(schema.execute_stream(request));
    // Let the subscription and the listener start.
    let early = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(early.is_err(), "nothing should arrive before a change");

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
