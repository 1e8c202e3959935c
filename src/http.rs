//! The HTTP surface: `/graphql` (GET and POST), `/healthz` (the process is alive) and
//! `/readyz` (migrations are done and the database answers).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_graphql_axum::GraphQL;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use diesel_async::SimpleAsyncConnection;

use crate::db::Pool;
use crate::resolvers::EnclaveSchema;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub schema: EnclaveSchema,
    pub pool: Pool,
    /// Set once startup (migrations) has finished.
    pub ready: Arc<AtomicBool>,
}

/// The router of the whole HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route_service("/graphql", GraphQL::new(state.schema.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// 200 when migrations are done and a pooled connection answers within a second;
/// 503 otherwise.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if !state.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting");
    }
    let probe = async {
        let mut conn = state.pool.get().await.ok()?;
        conn.batch_execute("SELECT 1").await.ok()
    };
    match tokio::time::timeout(Duration::from_secs(1), probe).await {
        Ok(Some(())) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}
