//! The HTTP surface: `/graphql` (GET and POST), `/healthz` (the process is alive),
//! `/readyz` (migrations are done and the database answers), `/metrics` (Prometheus),
//! `/graphql/ws` (subscriptions) and `/graphiql` (the IDE).
//!
//! - `graphql`: the GraphQL handler (authenticate, scope, execute, commit);
//! - `credentials`: turning the Authorization and Host headers into a `Scope`;
//! - `operation`: the kind and root fields of an operation, for the authorizer.

mod credentials;
pub mod graphiql;
mod graphql;
pub mod metrics;
pub mod operation;
pub mod privileges;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;

use crate::app::App;
use crate::resolvers::EnclaveSchema;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    pub schema: EnclaveSchema,
    /// Set once startup has finished.
    pub ready: Arc<AtomicBool>,
}

/// The router of the whole HTTP API.
pub fn router(state: AppState) -> Router {
    let max_body = state.app.limits.max_body_bytes;
    Router::new()
        .route(
            "/graphql",
            get(graphql::handle)
                .post(graphql::handle)
                .layer(RequestBodyLimitLayer::new(max_body)),
        )
        .route("/graphql/ws", get(ws::handle))
        .merge(graphiql::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::handle))
        .with_state(state)
}

/// 200 when startup is done and a pooled connection answers within a second; 503 otherwise.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if !state.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting");
    }
    match tokio::time::timeout(Duration::from_secs(1), state.app.db.ping()).await {
        Ok(true) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}
