//! `/api/v1/users/{external_id}`: the marketplace's people, as Parley knows them.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use app::{
    conversations,
    error::AppError,
    integration::identities::{self, ExternalId, Identity, Profile, Role},
    model::FieldError,
    state::AppState,
};

use super::{
    auth::ApiCaller,
    problem::{ApiJson, ApiPath, Problem},
};

/// A person of the marketplace, linked to a Parley account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({
    "id": 42,
    "external_id": "u-1001",
    "username": "ann",
    "name": "Ann Seller",
    "email": "ann@shop.example",
    "role": "seller"
})))]
pub struct ApiUser {
    /// Parley's id for the account.
    pub id: i64,
    /// The marketplace's id for the person (the path's `{external_id}`).
    pub external_id: String,
    /// The Parley username: chosen once, when the account was made.
    pub username: String,
    /// The display name others see.
    pub name: String,
    pub email: Option<String>,
    pub role: Option<ApiRole>,
}

/// A person's role on the marketplace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiRole {
    Seller,
    Customer,
}

impl From<Role> for ApiRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Seller => Self::Seller,
            Role::Customer => Self::Customer,
        }
    }
}

impl ApiRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Seller => "seller",
            Self::Customer => "customer",
        }
    }
}

impl From<Identity> for ApiUser {
    fn from(identity: Identity) -> Self {
        Self {
            id: identity.id.0,
            external_id: identity.external_id,
            username: identity.username,
            name: identity.display_name,
            email: identity.email,
            role: identity.role.map(ApiRole::from),
        }
    }
}

/// What the marketplace says about a person.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "name": "Ann Seller",
    "username": "ann",
    "email": "ann@shop.example",
    "role": "seller"
})))]
pub struct UserInput {
    /// The display name: 1 to 64 characters.
    pub name: String,
    /// The Parley username wished for (3 to 32 of `a-z 0-9 _ . -`), used when the account is
    /// made: a taken one gets a suffix (`ann-2`). Ignored afterwards.
    pub username: Option<String>,
    pub email: Option<String>,
    pub role: Option<ApiRole>,
}

/// Unread messages, for a badge in the marketplace's own pages.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"unread": 3, "conversations": 2})))]
pub struct Unread {
    /// Messages not yet read, in all of the person's conversations.
    pub unread: i64,
    /// Conversations with at least one of them.
    pub conversations: i64,
}

/// The external id of the path, or a problem naming the parameter.
pub(super) fn external_id(raw: &str) -> Result<ExternalId, Problem> {
    ExternalId::parse(raw).map_err(|message| {
        Problem::from_app(
            AppError::Invalid(vec![FieldError::new("external_id", message)]),
            &["external_id"],
        )
    })
}

/// The account linked to `external`, or 404.
pub(super) async fn linked(state: &AppState, external: &ExternalId) -> Result<Identity, Problem> {
    identities::find(&state.db, external)
        .await
        .map_err(|error| Problem::internal(&error))?
        .ok_or_else(|| {
            Problem::not_found(format!(
                "No user has the external id {:?}; create it with PUT /api/v1/users/{{external_id}}.",
                external.as_str()
            ))
        })
}

/// Creates or updates the user linked to `external_id`.
///
/// The link never changes: the same external id is always the same Parley account. `name`,
/// `email` and `role` are replaced by what is sent (an absent `email` or `role` clears it).
#[utoipa::path(
    put,
    path = "/users/{external_id}",
    tag = "users",
    params(("external_id" = String, Path, description = "The marketplace's id for the person (1 to 128 characters).", example = "u-1001")),
    request_body = UserInput,
    responses(
        (status = 200, description = "The user existed and was updated.", body = ApiUser),
        (status = 201, description = "The user was created.", body = ApiUser),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn put_user(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiPath(raw): ApiPath<String>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<(StatusCode, Json<ApiUser>), Problem> {
    let external = ExternalId::parse(&raw);
    let profile = Profile::parse(
        &input.name,
        input.username.as_deref(),
        input.email.as_deref(),
        input.role.map(ApiRole::as_str),
    );
    let (external, profile) = match (external, profile) {
        (Ok(external), Ok(profile)) => (external, profile),
        (external, profile) => {
            let mut errors = Vec::new();
            if let Err(message) = external {
                errors.push(FieldError::new("external_id", message));
            }
            errors.extend(profile.err().unwrap_or_default());
            return Err(Problem::from_app(
                AppError::Invalid(errors),
                &["external_id"],
            ));
        }
    };
    let provisioned = identities::provision(&state.db, &external, &profile)
        .await
        .map_err(|error| match error {
            identities::IdentitiesError::Invalid(fields) => {
                Problem::from(AppError::Invalid(fields))
            }
            identities::IdentitiesError::Database(cause) => Problem::internal(&cause),
        })?;
    let status = if provisioned.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(provisioned.identity.into())))
}

/// The user linked to `external_id`.
#[utoipa::path(
    get,
    path = "/users/{external_id}",
    tag = "users",
    params(("external_id" = String, Path, description = "The marketplace's id for the person.", example = "u-1001")),
    responses(
        (status = 200, description = "The user.", body = ApiUser),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No user has this external id.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get_user(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<ApiUser>, Problem> {
    let external = external_id(&raw)?;
    Ok(Json(linked(&state, &external).await?.into()))
}

/// How many messages the user has not read yet, for a badge in the marketplace's header.
#[utoipa::path(
    get,
    path = "/users/{external_id}/unread",
    tag = "users",
    params(("external_id" = String, Path, description = "The marketplace's id for the person.", example = "u-1001")),
    responses(
        (status = 200, description = "The unread count.", body = Unread),
        (status = 401, description = "No valid API key.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No user has this external id (nothing is unread for them).", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get_unread(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Unread>, Problem> {
    let external = external_id(&raw)?;
    let user = linked(&state, &external).await?;
    let total = conversations::total_unread(&state.db, user.id)
        .await
        .map_err(|error| Problem::internal(&error))?;
    Ok(Json(Unread {
        unread: total.messages,
        conversations: total.conversations,
    }))
}
