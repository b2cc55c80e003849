//! Who calls the server API: `Authorization: Bearer <key>`, checked against the stored keys
//! at every request, then counted against that key's rate limit.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};

use app::{
    error::AppError,
    integration::api_keys::{self, ApiClient},
    state::AppState,
};

use super::problem::Problem;

/// The client a request's API key belongs to. Extracting it is what makes a handler need a
/// key: a missing, malformed, unknown or revoked key is a 401, a key over its rate limit a 429.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub client: ApiClient,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, key) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            });
        let Some(presented) = presented else {
            return Err(unauthorized(
                "Send an API key as `Authorization: Bearer <key>` (made with `server keys create`).",
            ));
        };
        let client = api_keys::authenticate(&state.db, presented)
            .await
            .map_err(|error| Problem::internal(&error))?
            .ok_or_else(|| unauthorized("This API key is not valid, or it has been revoked."))?;
        state.limits.api_request(client.key_id).await?;
        Ok(Self { client })
    }
}

fn unauthorized(detail: &str) -> Problem {
    let mut problem = Problem::from(AppError::Unauthorized);
    problem.detail = Some(detail.to_owned());
    problem
}
