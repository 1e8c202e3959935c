//! `/onboarding/<token>`: an edge component's one-time package (see
//! `crate::edge::onboarding`). The token is the only credential.
//!
//! - `GET` answers 200 with a `tar.gz` (a fresh key included);
//! - `POST` with a PEM certificate signing request as the body answers 200 with the signed
//!   chain (component certificate, tenant CA, root) as `application/pem-certificate-chain`,
//!   or, with `Accept: application/json`, `{"chain": PEM, "config": {…config.json…}}`. A
//!   request that is not a valid CSR answers 400 and leaves the token unspent.
//!
//! 404 for an unknown token, 410 for a used or expired one — plain text that reveals
//! nothing about the tenant or the package.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::edge::ca;
use crate::edge::onboarding::{self, Download};

/// Largest certificate signing request accepted.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// `GET /onboarding/<token>`.
pub async fn download(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    answer(onboarding::download(&state.app, &token, None).await, false)
}

/// `POST /onboarding/<token>` with a PEM certificate signing request.
pub async fn sign_request(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = std::str::from_utf8(&body)
        .ok()
        .filter(|_| body.len() <= MAX_CSR_BYTES)
        .ok_or(ca::EdgeError::InvalidCsr)
        .and_then(ca::parse_csr);
    let Ok(key) = key else {
        return (
            StatusCode::BAD_REQUEST,
            "the body must be a PEM certificate signing request (at most 16 KiB) with a valid \
             signature and an ECDSA P-256/P-384, Ed25519 or RSA key\n",
        )
            .into_response();
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    answer(
        onboarding::download(&state.app, &token, Some(&key)).await,
        wants_json,
    )
}

fn answer(outcome: Result<Download, onboarding::DownloadError>, wants_json: bool) -> Response {
    match outcome {
        Ok(Download::Package(bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/gzip"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"enclave-onboarding.tar.gz\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Ok(Download::Chain {
            chain_pem,
            config_json,
        }) if wants_json => {
            let config = serde_json::from_str::<serde_json::Value>(&config_json).unwrap_or_default();
            (
                StatusCode::OK,
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(serde_json::json!({ "chain": chain_pem, "config": config })),
            )
                .into_response()
        }
        Ok(Download::Chain { chain_pem, .. }) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/pem-certificate-chain"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            chain_pem,
        )
            .into_response(),
        Ok(Download::Unknown) => (StatusCode::NOT_FOUND, "no such onboarding package\n").into_response(),
        Ok(Download::Gone) => (
            StatusCode::GONE,
            "this onboarding package was downloaded already or has expired\n",
        )
            .into_response(),
        Err(error) => {
            let request_id = uuid::Uuid::new_v4();
            tracing::error!(%request_id, %error, "onboarding download failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error (request id {request_id})\n"),
            )
                .into_response()
        }
    }
}
