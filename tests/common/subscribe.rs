//! Subscription test helpers: a subscriber scope for a tenant's admin, and a stream that
//! starts a subscription on the schema directly.

use std::sync::Arc;
use std::time::Duration;

use enclave::auth::Role;
use enclave::auth::keys::RootKeys;
use enclave::auth::token::{self, Operation};
use enclave::resolvers::loaders::Loaders;
use enclave::tenancy::scope::{Actor, Scope};
use enclave::tenancy::transaction::Access;
use futures_util::StreamExt;

use super::app::TestApp;

/// A subscriber scope of a new admin of `slug`.
pub async fn subscriber(t: &TestApp, slug: &str) -> Arc<Scope> {
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
    let tx = t.app.tenant_tx(
        actor.tenant.clone(),
        Access::ReadOnly,
        Some(actor.claims.credential),
    );
    Arc::new(Scope::subscriber(uuid::Uuid::new_v4(), actor, session, tx))
}

/// Starts `query` as `scope`'s subscription and checks that nothing arrives before a change
/// (which also lets the subscription start).
pub async fn open<'a>(
    schema: &'a enclave::resolvers::EnclaveSchema,
    scope: Arc<Scope>,
    query: &str,
) -> futures_util::stream::BoxStream<'a, async_graphql::Response> {
    let request = async_graphql::Request::new(query)
        .data(Arc::new(Loaders::new(scope.clone())))
        .data(scope);
    let mut stream = schema.execute_stream(request).boxed();
    let early = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(early.is_err(), "nothing should arrive before a change");
    stream
}
