//! Errors of the server API as `application/problem+json` (RFC 9457), and the extractors that
//! turn bad input into them rather than into axum's plain-text rejections.
//!
//! A problem's `type` is `urn:parley:problem:<kind>`, one kind per way to fail (the table in
//! docs/integration.md); `errors` lists every bad field, each named by a JSON pointer into the
//! body (`"pointer": "#/participants/1"`) or by the path parameter (`"parameter"`), the shape
//! RFC 9457 §3 suggests for validation errors.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Query, Request, rejection::BytesRejection},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

use app::{error::AppError, model::FieldError};

/// The media type of every error the API answers.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Where every problem type lives.
const TYPE_PREFIX: &str = "urn:parley:problem:";

/// An error, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(examples(json!({
    "type": "urn:parley:problem:invalid",
    "title": "Some fields are not valid.",
    "status": 422,
    "detail": "Display name is required.",
    "errors": [{"detail": "Display name is required.", "pointer": "#/name"}]
})))]
pub struct Problem {
    /// `urn:parley:problem:` and the kind of problem: what a program should look at.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short sentence for the kind.
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What went wrong this time, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Every invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<InvalidField>,
    /// For 429: seconds until a retry can succeed (sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvalidField {
    /// What is wrong with it.
    pub detail: String,
    /// Where it is in the body, as a JSON pointer in a URI fragment (`#/name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The path or query parameter, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl Problem {
    /// A problem of `kind` with no field errors.
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{TYPE_PREFIX}{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            errors: Vec::new(),
            retry_after_secs: None,
        }
    }

    /// Something asked for does not exist; `detail` says what.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.", detail)
    }

    /// A bad path, query or header parameter.
    pub fn parameter(parameter: &str, message: &str) -> Self {
        Self::from_app(
            AppError::Invalid(vec![FieldError::new(parameter, message)]),
            &[parameter],
        )
    }

    /// A failure on Parley's side, logged (where it was called from, with its causes) by
    /// [`AppError::internal`]; the client sees only `internal`.
    #[track_caller]
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        Self::from(AppError::internal(cause))
    }

    /// The route asked for does not exist.
    pub fn no_such_endpoint() -> Self {
        Self::not_found("There is no such endpoint in the server API; see /api/v1/openapi.json.")
    }

    /// The route exists, not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed.",
            "This endpoint does not take this method; see /api/v1/openapi.json.",
        )
    }

    /// `error`, with the fields named in `parameters` reported as path parameters rather than
    /// as places in the body.
    pub fn from_app(error: AppError, parameters: &[&str]) -> Self {
        let status =
            StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, title) = match &error {
            AppError::Unauthorized | AppError::InvalidCredentials => {
                ("unauthorized", "A valid API key is needed.")
            }
            AppError::NotFound => ("not_found", "Not found."),
            AppError::Invalid(_) => ("invalid", "Some fields are not valid."),
            AppError::BadRequest(_) => ("bad_request", "The request is malformed."),
            AppError::CrossOrigin | AppError::Forbidden(_) => ("forbidden", "Forbidden."),
            AppError::PayloadTooLarge { .. } => ("payload_too_large", "The body is too large."),
            AppError::UnsupportedMediaType(_) => {
                ("unsupported_media_type", "The body must be JSON.")
            }
            AppError::RateLimited { .. } => ("rate_limited", "Too many requests."),
            AppError::Internal | AppError::Transport(_) => {
                ("internal", "Something went wrong on our side.")
            }
        };
        let mut problem = Self::new(status, kind, title, error.to_string());
        if let AppError::RateLimited { retry_after_secs } = error {
            problem.retry_after_secs = Some(retry_after_secs);
        }
        if let AppError::Invalid(fields) = error {
            problem.errors = fields
                .into_iter()
                .map(|FieldError { field, message }| {
                    if parameters.contains(&field.as_str()) {
                        InvalidField {
                            detail: message,
                            pointer: None,
                            parameter: Some(field),
                        }
                    } else {
                        InvalidField {
                            detail: message,
                            pointer: Some(format!("#/{}", field.replace('.', "/"))),
                            parameter: None,
                        }
                    }
                })
                .collect();
        }
        problem
    }
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        Self::from_app(error, &[])
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, seconds.into());
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"parley\""),
            );
        }
        response
    }
}

/// A JSON body, refused as a problem: 415 unless it is sent as JSON, 413 over the route's
/// body limit, 400 when it is not JSON at all, 422 naming the field when it is JSON of the
/// wrong shape (a missing, unknown or mistyped field).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|essence| {
                let essence = essence.trim().to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            });
        if !is_json {
            return Err(AppError::UnsupportedMediaType(
                "Send the body as JSON, with Content-Type: application/json.".into(),
            )
            .into());
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        AppError::PayloadTooLarge {
                            limit_bytes: super::BODY_MAX_BYTES as u64,
                        }
                    } else {
                        AppError::BadRequest(rejection.body_text())
                    }
                })?;
        decode(&bytes).map(Self)
    }
}

/// Reads `bytes` as a `T`, or says what is wrong and where.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let pointer = field_of(&error);
        let inner = error.into_inner();
        let message = without_position(&inner.to_string());
        if inner.is_data() {
            let mut problem = Problem::from(AppError::Invalid(Vec::new()));
            problem.detail = Some(message.clone());
            problem.errors = vec![InvalidField {
                detail: message,
                pointer: Some(pointer),
                parameter: None,
            }];
            problem
        } else {
            AppError::BadRequest(format!("The body is not valid JSON: {message}.")).into()
        }
    })?;
    json.end().map_err(|_| {
        Problem::from(AppError::BadRequest(
            "The body is not valid JSON: there is more after the value.".into(),
        ))
    })?;
    Ok(value)
}

/// The JSON pointer (as a URI fragment) of the field a decoding error is about: where the
/// decoder was (an unknown field's path names it already), and for a missing field the field
/// the message names.
fn field_of(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    use serde_path_to_error::Segment;

    let mut pointer = String::from("#");
    for segment in error.path().iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                // RFC 6901's two escapes.
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    let message = error.inner().to_string();
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        pointer.push('/');
        pointer.push_str(&field.replace('~', "~0").replace('/', "~1"));
    }
    pointer
}

/// serde_json's message without its " at line 1 column 12", which means nothing to a field.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A path parameter, refused as a problem naming the parameter.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| {
                AppError::BadRequest(format!("Bad path parameter: {}", rejection.body_text()))
                    .into()
            })
    }
}

/// Query parameters, refused as a problem when they do not decode (an unknown one included).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| {
                AppError::BadRequest(format!("Bad query parameter: {}", rejection.body_text()))
                    .into()
            })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        name: String,
        participants: Vec<String>,
    }

    fn pointer_of(body: &str) -> (u16, Option<String>) {
        let problem = decode::<Input>(body.as_bytes()).unwrap_err();
        (
            problem.status,
            problem.errors.first().and_then(|e| e.pointer.clone()),
        )
    }

    #[test]
    fn decoding_errors_name_their_field() {
        let good = decode::<Input>(br#"{"name": "a", "participants": ["x"]}"#).unwrap();
        assert_eq!((good.name.as_str(), good.participants.len()), ("a", 1));
        assert_eq!(
            pointer_of(r#"{"participants": []}"#),
            (422, Some("#/name".into()))
        );
        assert_eq!(
            pointer_of(r#"{"name": "a", "participants": ["x", 5]}"#),
            (422, Some("#/participants/1".into()))
        );
        assert_eq!(
            pointer_of(r#"{"name": "a", "participants": [], "admin": true}"#),
            (422, Some("#/admin".into()))
        );
        assert_eq!(pointer_of(r#"{"name": "a", "#), (400, None));
        assert_eq!(
            pointer_of(r#"{"name": "a", "participants": []} {}"#),
            (400, None)
        );
        let problem = decode::<Input>(br#"{"name": 5, "participants": []}"#).unwrap_err();
        assert_eq!(
            problem.detail.as_deref(),
            Some("invalid type: integer `5`, expected a string")
        );
    }

    #[test]
    fn field_errors_become_pointers_or_parameters() {
        let problem = Problem::from_app(
            AppError::Invalid(vec![
                FieldError::new("external_id", "Too long."),
                FieldError::new("name", "Required."),
            ]),
            &["external_id"],
        );
        assert_eq!(problem.kind, "urn:parley:problem:invalid");
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].parameter.as_deref(), Some("external_id"));
        assert_eq!(problem.errors[1].pointer.as_deref(), Some("#/name"));
    }

    #[test]
    fn a_rate_limit_says_when_to_retry() {
        let response = Problem::from(AppError::RateLimited {
            retry_after_secs: 7,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
