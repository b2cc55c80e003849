//! A handler that panics answers 500, and the panic is logged.
//!
//! Without this layer a panic inside a handler (or inside the page render) drops the
//! connection's stream half-written: HTTP/1.1 clients see a cut body, HTTP/2 clients a reset
//! stream, which Chrome reports as `ERR_HTTP2_PROTOCOL_ERROR`, and nothing says why. With it,
//! the client gets the same `internal` error as any other failure on our side, and the log
//! says a handler panicked and with what. A panic is still a bug; this makes it visible and
//! keeps it to one request.

use std::any::Any;

use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use app::error::AppError;

/// The layer, for the router's outermost handlers.
pub fn layer() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(answer_panic as fn(Box<dyn Any + Send + 'static>) -> Response)
}

/// Logs the panic's message and answers [`AppError::Internal`].
fn answer_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "a handler panicked");
    AppError::Internal.into_response()
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::Request, routing::get};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_handler_that_panics_answers_an_internal_error() {
        async fn broken() -> &'static str {
            panic!("broken handler")
        }
        let router = Router::new().route("/", get(broken)).layer(layer());
        let response = router
            .oneshot(Request::new(Body::empty()))
            .await
            .expect("the layer answers");
        assert_eq!(response.status(), 500);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        let error: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(error["error"], "internal");
    }
}
