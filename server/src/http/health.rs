//! `GET /healthz`: 200 when the database answers, 503 when it does not.

use axum::{extract::State, http::StatusCode};

use app::state::AppState;

/// The handler.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::error!(%error, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
