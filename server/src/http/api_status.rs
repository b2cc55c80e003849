//! Gives a failed server function the HTTP status its error deserves.
//!
//! Leptos answers every server-function error with 500 and the encoded error in the body
//! (marked by a `serverfnerror` header), and errors raised before our code runs (undecodable
//! arguments) can't set a status at all. This middleware reads such a body back as
//! [`AppError`] and sets `AppError::status_code`, so a bad argument is a 400, a missing session
//! a 401, a stranger's conversation a 404, a field error a 422, and a rate limit a 429 with
//! `Retry-After`: one rule, in one place.
//! Redirects are left alone: they answer plain HTML form posts, which must land on a page.

use axum::{
    body::{Body, to_bytes},
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};

use app::error::AppError;

/// The header Leptos puts on server-function error responses.
const SERVER_FN_ERROR_HEADER: &str = "serverfnerror";
/// Error bodies are tiny; anything bigger is not one of ours and is passed through.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The middleware.
pub async fn server_fn_status(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    // A plain HTML form post (no WASM yet) is answered with a redirect back to the form, error
    // or not; a 4xx there would leave the browser on a page of raw JSON.
    if !response.headers().contains_key(SERVER_FN_ERROR_HEADER)
        || response.status().is_redirection()
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BODY).await else {
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        return Response::from_parts(parts, Body::empty());
    };
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status =
            StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(retry_after) = error.retry_after_header() {
            parts.headers.insert(header::RETRY_AFTER, retry_after);
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}
