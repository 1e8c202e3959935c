//! `GET /onboarding/<token>`: an edge component's one-time package (see
//! `crate::edge::onboarding`). The token is the only credential. Answers: 200 with a
//! `tar.gz`, 404 for an unknown token, 410 for a used or expired one — plain text that
//! reveals nothing about the tenant or the package.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::edge::onboarding::{self, Download};

pub async fn handle(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match onboarding::download(&state.app, &token).await {
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
