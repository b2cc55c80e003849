//! [`AppError`]: every error a client of Parley may see.
//!
//! Server functions return it, the WebSocket reports it in `error` frames and axum routes turn
//! it into responses. Each variant is safe to show: internal causes are logged on the server by
//! [`AppError::internal`] and reach the client only as [`AppError::Internal`], never as
//! database or driver text.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize, de};

use crate::model::FieldError;

/// An error as a client sees it. On the wire: `{"error": "<kind>", "detail": …}`, `detail`
/// only for the kinds that have one. Written by serde's derive, read by hand (below).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum AppError {
    /// The request needs a signed-in user and there is none.
    #[error("Please sign in.")]
    Unauthorized,
    /// Sign-in failed. The same answer whether the username or the password was wrong.
    #[error("Wrong username or password.")]
    InvalidCredentials,
    /// The thing does not exist, or the requester may not see it: the two look the same.
    #[error("Not found.")]
    NotFound,
    /// Some fields are invalid; each error names its field.
    #[error("{}", join_field_errors(.0))]
    Invalid(Vec<FieldError>),
    /// The request itself is malformed (missing or undecodable arguments).
    #[error("Bad request: {0}")]
    BadRequest(String),
    /// A state-changing request came from another site.
    #[error("Cross-origin request refused.")]
    CrossOrigin,
    /// This deployment does not allow it (Parley's own accounts turned off, say); the detail
    /// says what to do instead.
    #[error("{0}")]
    Forbidden(String),
    /// The request body is longer than the endpoint accepts.
    #[error("The request is too large: the limit is {limit_bytes} bytes.")]
    PayloadTooLarge { limit_bytes: u64 },
    /// The request body is in a format the endpoint does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many attempts; try again after the given number of seconds.
    #[error("Too many attempts. Try again in {retry_after_secs} s.")]
    RateLimited { retry_after_secs: u64 },
    /// Something failed on the server; the cause is in the server's log, not here.
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The browser could not reach the server or read its answer (never sent by the server).
    #[error("Could not reach the server: {0}")]
    Transport(String),
}

fn join_field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl AppError {
    /// One field error.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// The error message for `field`, if this error has one.
    pub fn field_message(&self, field: &str) -> Option<String> {
        match self {
            Self::Invalid(errors) => errors
                .iter()
                .find(|e| e.field == field)
                .map(|e| e.message.clone()),
            _ => None,
        }
    }

    /// The HTTP status that carries this error.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Unauthorized | Self::InvalidCredentials => 401,
            Self::CrossOrigin | Self::Forbidden(_) => 403,
            Self::RateLimited { .. } => 429,
            Self::NotFound => 404,
            Self::Invalid(_) => 422,
            Self::BadRequest(_) => 400,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Internal => 500,
            Self::Transport(_) => 502,
        }
    }

    /// The `Retry-After` header this error calls for, if any.
    #[cfg(feature = "ssr")]
    pub fn retry_after_header(&self) -> Option<axum::http::HeaderValue> {
        match self {
            Self::RateLimited { retry_after_secs } => Some((*retry_after_secs).into()),
            _ => None,
        }
    }

    /// Logs an unexpected failure with its cause chain and returns [`AppError::Internal`].
    ///
    /// This is the one place where internal errors are logged; their text never leaves the
    /// server.
    #[cfg(feature = "ssr")]
    #[track_caller]
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let location = std::panic::Location::caller();
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(inner) = source {
            chain.push_str(": ");
            chain.push_str(&inner.to_string());
            source = inner.source();
        }
        tracing::error!(%location, error = %chain, "internal error");
        Self::Internal
    }
}

/// Reads an error whose `error` comes before its `detail`, as the server writes it.
///
/// serde's derived decoder accepts the two in either order, so it buffers the `detail` into an
/// intermediate tree first: code for every detail type, twice, in the browser's bundle. Reading
/// `error` first decodes the detail straight from the input (docs/performance.md).
impl<'de> Deserialize<'de> for AppError {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AppErrorVisitor)
    }
}

/// The kinds of [`AppError`], as `error` names them.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ErrorKind {
    Unauthorized,
    InvalidCredentials,
    NotFound,
    Invalid,
    BadRequest,
    CrossOrigin,
    Forbidden,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Internal,
    Transport,
}

/// The keys of an error object.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ErrorKey {
    Error,
    Detail,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadLimit {
    limit_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryAfter {
    retry_after_secs: u64,
}

struct AppErrorVisitor;

impl<'de> de::Visitor<'de> for AppErrorVisitor {
    type Value = AppError;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(r#"an error object: {"error": kind, "detail": …}"#)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<AppError, A::Error> {
        use de::Error;

        if !matches!(map.next_key()?, Some(ErrorKey::Error)) {
            return Err(A::Error::missing_field("error"));
        }
        let kind: ErrorKind = map.next_value()?;
        let has_detail = match map.next_key()? {
            None => false,
            Some(ErrorKey::Detail) => true,
            Some(ErrorKey::Error) => return Err(A::Error::duplicate_field("error")),
        };
        let error = match (kind, has_detail) {
            (ErrorKind::Unauthorized, false) => AppError::Unauthorized,
            (ErrorKind::InvalidCredentials, false) => AppError::InvalidCredentials,
            (ErrorKind::NotFound, false) => AppError::NotFound,
            (ErrorKind::CrossOrigin, false) => AppError::CrossOrigin,
            (ErrorKind::Internal, false) => AppError::Internal,
            (ErrorKind::Invalid, true) => AppError::Invalid(map.next_value()?),
            (ErrorKind::BadRequest, true) => AppError::BadRequest(map.next_value()?),
            (ErrorKind::Forbidden, true) => AppError::Forbidden(map.next_value()?),
            (ErrorKind::UnsupportedMediaType, true) => {
                AppError::UnsupportedMediaType(map.next_value()?)
            }
            (ErrorKind::Transport, true) => AppError::Transport(map.next_value()?),
            (ErrorKind::PayloadTooLarge, true) => {
                let PayloadLimit { limit_bytes } = map.next_value()?;
                AppError::PayloadTooLarge { limit_bytes }
            }
            (ErrorKind::RateLimited, true) => {
                let RetryAfter { retry_after_secs } = map.next_value()?;
                AppError::RateLimited { retry_after_secs }
            }
            // A kind without a detail was given one, or one with a detail has none.
            (_, true) => return Err(A::Error::unknown_field("detail", &["error"])),
            (_, false) => return Err(A::Error::missing_field("detail")),
        };
        if has_detail && map.next_key::<ErrorKey>()?.is_some() {
            return Err(A::Error::custom("unexpected field after `detail`"));
        }
        Ok(error)
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        use ServerFnErrorErr as E;
        match value {
            // Raised on the server before our code runs: the client sent something undecodable.
            E::Args(message) => Self::BadRequest(message),
            E::MissingArg(name) => Self::BadRequest(format!("missing argument {name}")),
            // Raised in the browser: the network failed or the answer was unreadable.
            E::Request(message) | E::Deserialization(message) | E::Serialization(message) => {
                Self::Transport(message)
            }
            E::Registration(_)
            | E::UnsupportedRequestMethod(_)
            | E::ServerError(_)
            | E::MiddlewareError(_)
            | E::Response(_) => Self::Internal,
        }
    }
}

/// Axum routes (the WebSocket upgrade, the guards) answer with the same JSON body and status
/// as server functions do.
#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let status = axum::http::StatusCode::from_u16(self.status_code())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after_header();
        let mut response = (status, axum::Json(self)).into_response();
        if let Some(value) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_tagged() {
        let json = serde_json::to_string(&AppError::invalid("username", "taken")).unwrap();
        assert_eq!(
            json,
            r#"{"error":"invalid","detail":[{"field":"username","message":"taken"}]}"#
        );
        assert_eq!(
            serde_json::to_string(&AppError::NotFound).unwrap(),
            r#"{"error":"not_found"}"#
        );
    }

    #[test]
    fn every_error_round_trips() {
        let errors = [
            AppError::Unauthorized,
            AppError::InvalidCredentials,
            AppError::NotFound,
            AppError::invalid("username", "taken"),
            AppError::BadRequest("missing argument".into()),
            AppError::CrossOrigin,
            AppError::Forbidden("sign in through the marketplace".into()),
            AppError::PayloadTooLarge { limit_bytes: 1024 },
            AppError::UnsupportedMediaType("not a form".into()),
            AppError::RateLimited {
                retry_after_secs: 30,
            },
            AppError::Internal,
            AppError::Transport("offline".into()),
        ];
        // Every kind is in the list, so a kind added to `AppError` but not to the decoder's
        // `ErrorKind` fails here.
        let kinds: std::collections::HashSet<_> = errors.iter().map(kind_number).collect();
        assert_eq!(kinds.len(), ERROR_KINDS);
        for error in errors {
            let json = serde_json::to_string(&error).unwrap();
            assert_eq!(
                serde_json::from_str::<AppError>(&json).unwrap(),
                error,
                "{json}"
            );
        }
    }

    const ERROR_KINDS: usize = 12;

    /// Numbers the kinds of error. Without a wildcard, so a new kind does not compile until it
    /// is numbered here (and `ERROR_KINDS` and the list above have it).
    fn kind_number(error: &AppError) -> usize {
        match error {
            AppError::Unauthorized => 0,
            AppError::InvalidCredentials => 1,
            AppError::NotFound => 2,
            AppError::Invalid(_) => 3,
            AppError::BadRequest(_) => 4,
            AppError::CrossOrigin => 5,
            AppError::PayloadTooLarge { .. } => 6,
            AppError::UnsupportedMediaType(_) => 7,
            AppError::RateLimited { .. } => 8,
            AppError::Internal => 9,
            AppError::Transport(_) => 10,
            AppError::Forbidden(_) => 11,
        }
    }

    #[test]
    fn errors_are_read_strictly() {
        let refused = [
            r#"{}"#,
            r#"{"detail":"x","error":"bad_request"}"#,
            r#"{"error":"bad_request"}"#,
            r#"{"error":"not_found","detail":"x"}"#,
            r#"{"error":"teapot"}"#,
            r#"{"error":"rate_limited","detail":{"retry_after_secs":1,"more":2}}"#,
            r#"{"error":"bad_request","detail":"x","error":"not_found"}"#,
        ];
        for json in refused {
            assert!(serde_json::from_str::<AppError>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn bad_arguments_are_a_client_error() {
        let error = AppError::from_server_fn_error(ServerFnErrorErr::Args("invalid digit".into()));
        assert_eq!(error.status_code(), 400);
    }
}
