//! The gate in front of the server functions: bounded bodies in the one format they take, with
//! no field they don't know.
//!
//! Leptos reads a server function's whole body into memory before decoding it, so without a
//! bound a client could make the server hold any amount. Here, for every request under
//! `/api/`:
//! 1. a `Content-Length` over [`API_BODY_MAX_BYTES`] is refused at once with 413, and a body
//!    that grows past it while being read is cut off with 413 too;
//! 2. a body that is not `application/x-www-form-urlencoded` (the encoding of every Parley
//!    server function, and of HTML forms) is refused with 415;
//! 3. a body that is not UTF-8, raw or percent-decoded, is refused with 400;
//! 4. a field the function does not take is refused with 400 (see `app::api::strict`).
//!
//! The handler then gets the body already read, so nothing is read twice.

use axum::{
    body::{Body, to_bytes},
    extract::Request,
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use app::{api::strict, error::AppError};

/// Largest server-function body, in bytes. The largest legitimate one (registration: four
/// fields of at most a few hundred characters) is well under 2 KiB.
pub const API_BODY_MAX_BYTES: usize = 16 * 1024;

/// The one body encoding server functions take.
const FORM: &str = "application/x-www-form-urlencoded";

/// The middleware.
pub async fn check_api_body(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let too_large = AppError::PayloadTooLarge {
        limit_bytes: API_BODY_MAX_BYTES as u64,
    };
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > API_BODY_MAX_BYTES as u64) {
        return too_large.into_response();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, API_BODY_MAX_BYTES).await else {
        return too_large.into_response();
    };
    if !bytes.is_empty() && !is_form(&parts.headers) {
        return AppError::UnsupportedMediaType(format!("send the arguments as {FORM}"))
            .into_response();
    }
    if !is_utf8_form(&bytes) {
        return AppError::BadRequest("the body is not valid UTF-8".into()).into_response();
    }
    if let Some(unknown) = strict::unknown_fields(parts.uri.path(), &bytes)
        && !unknown.is_empty()
    {
        return AppError::BadRequest(format!("unknown field(s): {}", unknown.join(", ")))
            .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Whether every key and value of a form body is UTF-8 once percent-decoded. Leptos' decoder
/// would replace bad bytes with U+FFFD, turning garbage into a plausible but different name.
fn is_utf8_form(body: &[u8]) -> bool {
    body.split(|byte| matches!(byte, b'&' | b'='))
        .all(|part| percent_encoding::percent_decode(part).decode_utf8().is_ok())
}

/// Whether the body is declared form-encoded (parameters such as `charset` allowed).
fn is_form(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    fn with_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn form_bodies_must_be_utf8() {
        assert!(is_utf8_form(b"username=J%C3%BCrgen&password=a+b%26c"));
        assert!(is_utf8_form(b""));
        assert!(!is_utf8_form(b"username=%FF%FE"));
        assert!(!is_utf8_form(b"username=\xff"));
        assert!(!is_utf8_form(b"%C3=x"));
    }

    #[test]
    fn only_form_bodies_are_forms() {
        assert!(is_form(&with_type("application/x-www-form-urlencoded")));
        assert!(is_form(&with_type(
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        )));
        assert!(!is_form(&with_type("application/json")));
        assert!(!is_form(&with_type("multipart/form-data; boundary=x")));
        assert!(!is_form(&HeaderMap::new()));
    }
}
