//! `/metrics` in the Prometheus text format: request outcomes, SQL statements, the pool,
//! tenants by status, quarantined tenants, and job runs and queues (`crate::jobs::metrics`). Counts only, never
//! tenant data.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::tenancy::registry::TenantStatus;

/// GraphQL requests by outcome.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    /// Answered without errors.
    pub ok: AtomicU64,
    /// Answered with errors (refused before execution or failed in a resolver).
    pub errors: AtomicU64,
    /// Edge connections whose TLS handshake failed (unknown CA, bad chain, expired…).
    pub edge_handshake_refused: AtomicU64,
    /// Edge connections whose verified certificate named no component of its CA's tenant.
    pub edge_identity_refused: AtomicU64,
    /// Edge requests refused because the certificate is revoked or unknown.
    pub edge_revoked_refused: AtomicU64,
    /// Committed changes published on NATS.
    pub nats_published: AtomicU64,
    /// NATS publishes that failed (the change is not delivered).
    pub nats_publish_failed: AtomicU64,
    /// Account JWTs the NATS resolver did not take.
    pub nats_push_failed: AtomicU64,
    /// Heartbeats received over NATS and recorded.
    pub nats_heartbeats: AtomicU64,
    /// Heartbeats received over NATS and ignored (unknown component, bad payload…).
    pub nats_heartbeats_refused: AtomicU64,
}

impl RequestMetrics {
    pub fn record(&self, had_errors: bool) {
        let counter = if had_errors { &self.errors } else { &self.ok };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn handle(State(state): State<AppState>) -> impl IntoResponse {
    let app = &state.app;
    let pool = app.db.request_pool_state();
    let tenants = app.directory.all();
    let active = tenants
        .iter()
        .filter(|t| t.status == TenantStatus::Active)
        .count();
    let quarantined = tenants.iter().filter(|t| t.quarantined).count();
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "enclave_graphql_requests_total",
        "GraphQL requests by outcome.",
        "counter",
        &[
            ("{outcome=\"ok\"}", app.requests.ok.load(Ordering::Relaxed)),
            ("{outcome=\"error\"}", app.requests.errors.load(Ordering::Relaxed)),
        ],
    );
    metric(
        "enclave_edge_refusals_total",
        "Edge connections and requests refused, by reason.",
        "counter",
        &[
            (
                "{reason=\"handshake\"}",
                app.requests.edge_handshake_refused.load(Ordering::Relaxed),
            ),
            (
                "{reason=\"identity\"}",
                app.requests.edge_identity_refused.load(Ordering::Relaxed),
            ),
            (
                "{reason=\"revoked\"}",
                app.requests.edge_revoked_refused.load(Ordering::Relaxed),
            ),
        ],
    );
    metric(
        "enclave_nats_messages_total",
        "NATS: changes published after commit, lost, and heartbeats received, by outcome.",
        "counter",
        &[
            (
                "{kind=\"change\",outcome=\"published\"}",
                app.requests.nats_published.load(Ordering::Relaxed),
            ),
            (
                "{kind=\"change\",outcome=\"failed\"}",
                app.requests.nats_publish_failed.load(Ordering::Relaxed),
            ),
            ("{kind=\"change\",outcome=\"dropped\"}", app.changes.tap_dropped()),
            (
                "{kind=\"heartbeat\",outcome=\"recorded\"}",
                app.requests.nats_heartbeats.load(Ordering::Relaxed),
            ),
            (
                "{kind=\"heartbeat\",outcome=\"ignored\"}",
                app.requests.nats_heartbeats_refused.load(Ordering::Relaxed),
            ),
            (
                "{kind=\"account_update\",outcome=\"failed\"}",
                app.requests.nats_push_failed.load(Ordering::Relaxed),
            ),
        ],
    );
    metric(
        "enclave_sql_statements_total",
        "SQL statements sent by the request pool.",
        "counter",
        &[("", app.db.statements())],
    );
    metric(
        "enclave_db_pool_connections",
        "Connections of the request pool.",
        "gauge",
        &[
            ("{state=\"idle\"}", u64::from(pool.idle_connections)),
            (
                "{state=\"busy\"}",
                u64::from(pool.connections.saturating_sub(pool.idle_connections)),
            ),
        ],
    );
    metric(
        "enclave_db_connections_opened_total",
        "Connections the request pool has opened (replacing retired or broken ones included).",
        "counter",
        &[("", pool.connections_opened)],
    );
    metric(
        "enclave_db_pool_tenants_cached",
        "Tenants the pool's open connections have served, summed over the connections (each is a tenant's catalog cached in a PostgreSQL backend).",
        "gauge",
        &[("", pool.tenants_cached)],
    );
    metric(
        "enclave_tenants",
        "Tenants by status.",
        "gauge",
        &[
            ("{status=\"active\"}", active as u64),
            ("{status=\"suspended\"}", (tenants.len() - active) as u64),
        ],
    );
    metric(
        "enclave_tenants_quarantined",
        "Tenants Enclave refuses to serve because their schema drifted from a freshly migrated one or a migration failed on them (see `enclave migrate --status`).",
        "gauge",
        &[("", quarantined as u64)],
    );
    app.jobs.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
