//! Logs: one line per HTTP request and per WebSocket connection event, as text for a terminal
//! or as JSON for a log pipeline (`PARLEY_LOG_FORMAT=json`), filtered by `RUST_LOG`.
//!
//! What a line may hold is decided here and in `ws::connection`: the method, the path (never
//! the query string), the status, the time taken, user ids. Never a message body, a password,
//! a cookie or a session id: request bodies and headers are not logged at all.

use std::time::Duration;

use axum::http::{Request, Response};
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::{config::ConfigError, metrics as names};

/// The filter when `RUST_LOG` is not set: Parley's own events, without every SQL statement.
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn";

/// How log lines are written (`PARLEY_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, with the event's fields at the top level.
    Json,
}

impl LogFormat {
    /// Reads `PARLEY_LOG_FORMAT`: `text` (default) or `json`.
    ///
    /// # Errors
    /// Any other value.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("PARLEY_LOG_FORMAT")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            None | Some("" | "text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(ConfigError::Invalid {
                name: "PARLEY_LOG_FORMAT",
                reason: format!("`{other}` is neither text nor json"),
            }),
        }
    }
}

/// Starts logging to standard output.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// The span every request's events are logged in: its method and path.
pub fn request_span<B>(request: &Request<B>) -> Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// The request's log line, and its metrics.
pub fn on_response<B>(response: &Response<B>, latency: Duration, _span: &Span) {
    let status = response.status();
    tracing::info!(
        status = status.as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "answered"
    );
    let class = match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!(names::HTTP_REQUESTS, "status" => class).increment(1);
    metrics::histogram!(names::HTTP_DURATION).record(latency.as_secs_f64());
}
