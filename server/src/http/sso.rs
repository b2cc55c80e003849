//! `GET /sso?token=…` and `POST /sso` (a form with `token`): the sign-in handoff from the
//! marketplace (`app::integration::sso`). A valid token signs its person in on a new session
//! and sends them to the conversation it names, the path it gives, or the chat; any other
//! token gets a page that says what is wrong, and nothing is created.
//!
//! The POST comes from the marketplace's own pages, so it is exempt from the cross-origin
//! guard: the token, signed by the marketplace and good for one use, is what proves the
//! request was meant.

use std::sync::Arc;

use axum::{
    Extension, Form,
    extract::{
        Query, State,
        rejection::{FormRejection, QueryRejection},
    },
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::pages::notice_page;
use app::{
    accounts::{self, AuthSession},
    conversations,
    error::AppError,
    integration::{
        identities,
        sso::{self, Refusal, SsoKeys},
    },
    state::AppState,
};

/// The path of the handoff.
pub const PATH: &str = "/sso";

/// The token, from the query or the form.
#[derive(Debug, Deserialize)]
pub struct TokenInput {
    token: String,
}

/// `GET /sso?token=…`.
pub async fn sign_in_link(
    State(state): State<AppState>,
    Extension(keys): Extension<Arc<SsoKeys>>,
    auth: AuthSession,
    query: Result<Query<TokenInput>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(input)) => hand_off(&state, &keys, auth, &input.token).await,
        Err(_) => refused(&Refusal::Malformed),
    }
}

/// `POST /sso` with a form holding `token`.
pub async fn sign_in_form(
    State(state): State<AppState>,
    Extension(keys): Extension<Arc<SsoKeys>>,
    auth: AuthSession,
    form: Result<Form<TokenInput>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(input)) => hand_off(&state, &keys, auth, &input.token).await,
        Err(_) => refused(&Refusal::Malformed),
    }
}

async fn hand_off(
    state: &AppState,
    keys: &SsoKeys,
    mut auth: AuthSession,
    token: &str,
) -> Response {
    let now = conversations::now();
    let mut handoff = match keys.verify(token, now) {
        Ok(handoff) => handoff,
        Err(refusal) => return refused(&refusal),
    };
    if let Some(card) = handoff.context.take() {
        match state.card_rules.check(card, "context") {
            Ok(card) => handoff.context = Some(card),
            Err(errors) => {
                let first = errors.into_iter().next();
                let (claim, message) = first.map_or_else(
                    || ("context".to_owned(), String::new()),
                    |error| (error.field, error.message),
                );
                return refused(&Refusal::InvalidClaim { claim, message });
            }
        }
    }
    let partner = match &handoff.with {
        Some(with) => match identities::find(&state.db, with).await {
            Ok(Some(partner)) => Some(partner),
            Ok(None) => return refused(&Refusal::UnknownPartner),
            Err(error) => return AppError::internal(&error).into_response(),
        },
        None => None,
    };
    match sso::redeem(&state.db, &handoff, now).await {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return refused(&refusal),
        Err(error) => return AppError::internal(&error).into_response(),
    }
    match signed_in(state, &mut auth, &handoff, partner).await {
        Ok(target) => Redirect::to(&target).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Links or makes the account, starts its session, opens the conversation asked for, and
/// answers where to go.
async fn signed_in(
    state: &AppState,
    auth: &mut AuthSession,
    handoff: &sso::Handoff,
    partner: Option<identities::Identity>,
) -> Result<String, AppError> {
    let provisioned = identities::provision(&state.db, &handoff.external, &handoff.profile)
        .await
        .map_err(|error| match error {
            identities::IdentitiesError::Invalid(fields) => AppError::Invalid(fields),
            identities::IdentitiesError::Database(cause) => AppError::internal(&cause),
        })?;
    let user = accounts::find(&state.db, provisioned.identity.id)
        .await
        .map_err(|error| AppError::internal(&error))?
        .ok_or(AppError::NotFound)?;
    accounts::start_session(auth, &user).await?;
    tracing::info!(user = %user.id, created = provisioned.created, "signed in from the marketplace");
    Ok(match partner {
        Some(partner) => {
            let (conversation, _) =
                conversations::open_between(&state.db, user.id, partner.id).await?;
            // The card waits above this person's composer for their first message.
            if let Some(card) = &handoff.context {
                conversations::leave_card(&state.db, user.id, conversation.id, card).await?;
            }
            format!("/chat/@{}", partner.username)
        }
        None => handoff
            .return_to
            .clone()
            .unwrap_or_else(|| "/chat".to_owned()),
    })
}

/// The page a refused token gets: what is wrong, and what to do.
fn refused(refusal: &Refusal) -> Response {
    let status = match refusal {
        Refusal::NotConfigured => StatusCode::NOT_FOUND,
        Refusal::Malformed
        | Refusal::MissingClaim(_)
        | Refusal::InvalidClaim { .. }
        | Refusal::ForeignReturn => StatusCode::BAD_REQUEST,
        Refusal::UnknownPartner => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::BadSignature
        | Refusal::WrongAlgorithm
        | Refusal::WrongAudience
        | Refusal::WrongIssuer
        | Refusal::Expired
        | Refusal::TooLong
        | Refusal::Replayed => StatusCode::UNAUTHORIZED,
    };
    tracing::warn!(reason = %refusal, "refused a sign-in from the marketplace");
    notice_page(
        status,
        "Could not sign you in",
        &[
            &refusal.to_string(),
            "Nothing was changed. Go back to the marketplace and open the chat from there again.",
        ],
    )
}
