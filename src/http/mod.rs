//! The HTTP surface: `/graphql` (GET and POST), `/healthz` (the process is alive),
//! `/readyz` (migrations are done and the database answers), `/graphql/ws`
//! (subscriptions) and `/graphiql` (the IDE). `/metrics` (Prometheus) is on the main
//! router only with a bearer token (`ENCLAVE_METRICS_TOKEN`), otherwise only on a separate
//! listener (`ENCLAVE_METRICS_LISTEN`, see [`metrics_router`]), or nowhere: it reveals
//! load and the number of tenants.
//!
//! Every request is bounded in time: its headers by the server (`serve`), the whole
//! request by [`time_limit`].
//!
//! - `graphql`: the GraphQL handler (authenticate, scope, execute, commit);
//! - `credentials`: turning the Authorization and Host headers into a `Scope`;
//! - `operation`: the kind and root fields of an operation, for the authorizer;
//! - `serve`: the HTTP server loop (header-read timeout, peer addresses).

mod credentials;
pub mod graphiql;
mod graphql;
pub mod metrics;
mod onboarding;
pub mod operation;
pub mod privileges;
pub mod serve;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tower_http::limit::RequestBodyLimitLayer;

use crate::app::App;
use crate::config::ServerConfig;
use crate::resolvers::EnclaveSchema;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    /// The schema `/graphql` executes: no extensions, so fields resolve on the engine's
    /// fast path (privileges are checked by the root objects, see `resolvers::root`).
    pub schema: EnclaveSchema,
    /// The same schema with the WebSocket [`ws::Gate`], for `/graphql/ws`.
    pub ws_schema: EnclaveSchema,
    /// Set once startup has finished.
    pub ready: Arc<AtomicBool>,
    /// Becomes true when the server starts shutting down (WebSockets then close with 1001).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// How the HTTP API is exposed (from `ServerConfig` and `ENCLAVE_DEV`).
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Longest time one request may take (`ENCLAVE_REQUEST_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Bearer token that unlocks `/metrics` on the main router; `None`: no `/metrics` there.
    pub metrics_token: Option<String>,
    /// GraphQL errors suggest field names ("Did you mean …"): development mode only.
    pub suggestions: bool,
}

impl Default for HttpOptions {
    /// The defaults of `ServerConfig`: no `/metrics`, no suggestions.
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            metrics_token: None,
            suggestions: false,
        }
    }
}

impl HttpOptions {
    /// The options of a server; `dev` is `ENCLAVE_DEV`.
    pub fn from_config(server: &ServerConfig, dev: bool) -> Self {
        Self {
            request_timeout: server.request_timeout(),
            metrics_token: server.metrics_token.clone().filter(|t| !t.is_empty()),
            suggestions: dev,
        }
    }
}

/// The router of the whole HTTP API.
pub fn router(state: AppState, options: &HttpOptions) -> Router {
    let max_body = state.app.limits.max_body_bytes;
    let mut router = Router::new()
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
        .route(
            "/onboarding/{token}",
            get(onboarding::download)
                .post(onboarding::sign_request)
                .layer(RequestBodyLimitLayer::new(onboarding::MAX_CSR_BYTES)),
        );
    if let Some(token) = &options.metrics_token {
        let digest: Arc<[u8]> = Sha256::digest(token.as_bytes()).to_vec().into();
        router = router.route(
            "/metrics",
            get(metrics::handle).layer(middleware::from_fn_with_state(digest, require_token)),
        );
    }
    router.with_state(state).layer(middleware::from_fn_with_state(
        options.request_timeout,
        time_limit,
    ))
}

/// The router of the separate metrics listener (`ENCLAVE_METRICS_LISTEN`): `/metrics` only.
pub fn metrics_router(state: AppState, options: &HttpOptions) -> Router {
    Router::new()
        .route("/metrics", get(metrics::handle))
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            options.request_timeout,
            time_limit,
        ))
}

/// Lets through requests bearing the token whose SHA-256 digest is `expected` (digests are
/// compared, so the comparison's timing says nothing about the token); 401 otherwise.
async fn require_token(
    State(expected): State<Arc<[u8]>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Sha256::digest(token.trim().as_bytes()));
    if presented.is_some_and(|digest| digest[..] == expected[..]) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a metrics token is required\n",
        )
            .into_response()
    }
}

/// Answers 503 UNAVAILABLE (a GraphQL error, with `Retry-After`) to a request that takes
/// longer than `limit`, body upload included; dropping the handler rolls its transaction
/// back. WebSocket upgrades are answered at once, so subscriptions are not cut.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?limit, "request timed out");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CONTENT_TYPE, "application/json; charset=utf-8"),
                    (header::RETRY_AFTER, "1"),
                ],
                r#"{"errors":[{"message":"the request took too long; retry later","extensions":{"code":"UNAVAILABLE","retryAfter":1}}]}"#,
            )
                .into_response()
        }
    }
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
