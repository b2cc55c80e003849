//! Health checks for load balancers and orchestrators:
//!
//! - `GET /healthz`: the process is alive and serving (200 `ok`), whatever its dependencies
//!   say, so that an orchestrator does not restart every instance when the database blips;
//! - `GET /readyz`: it can do its work: the database answers, and so does the fan-out between
//!   instances (Redis) when one is configured. 503 naming what is missing otherwise, so that a
//!   load balancer sends traffic elsewhere meanwhile.

use axum::{extract::State, http::StatusCode};

use app::state::AppState;

/// `GET /healthz`.
pub async fn healthz() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok")
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if let Err(error) = state.db.ping().await {
        tracing::error!(%error, "readiness: database unreachable");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    if let Err(error) = state.realtime.ready().await {
        tracing::error!(%error, "readiness: live fan-out unavailable");
        return (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable");
    }
    (StatusCode::OK, "ready")
}
