//! Registration, sign-in, sign-out, the current user, and finding people.

use leptos::prelude::*;

use crate::{
    error::AppError,
    model::{AccountSettings, UserView},
};

/// Creates an account and signs it in. Field errors come back as `invalid` (422); too many
/// registrations from one address give `rate_limited` (429).
#[server(endpoint = "register")]
pub async fn register(
    username: String,
    display_name: String,
    password: String,
    password_confirm: String,
) -> Result<UserView, AppError> {
    use crate::{accounts, state::AppState};

    let state = AppState::current()?;
    state.local_accounts_allowed()?;
    state
        .limits
        .register(super::ssr::client_address(&state).await?)?;
    let mut auth = super::ssr::auth_session().await?;
    let user = accounts::register(
        &state.db,
        accounts::Registration {
            username,
            display_name,
            password,
            password_confirm,
        },
    )
    .await?;
    crate::accounts::start_session(&mut auth, &user).await?;
    Ok(user.view())
}

/// Signs in. A wrong username and a wrong password both give `invalid_credentials` (401);
/// too many attempts for one username from one address, or from one address altogether, or
/// for one username from everywhere together, give `rate_limited` (429). A correct password
/// gives that username and address their whole budget back (see `limits`).
#[server(endpoint = "login")]
pub async fn login(username: String, password: String) -> Result<UserView, AppError> {
    use crate::{accounts::Credentials, state::AppState};

    let state = AppState::current()?;
    state.local_accounts_allowed()?;
    let address = super::ssr::client_address(&state).await?;
    // Waits a little when the username is being tried from many places at once.
    state.limits.login(address, &username).await?;
    let mut auth = super::ssr::auth_session().await?;
    let user = auth
        .authenticate(Credentials {
            username: username.clone(),
            password,
        })
        .await
        .map_err(|error| AppError::internal(&error))?
        .ok_or(AppError::InvalidCredentials)?;
    state.limits.login_succeeded(address, &username);
    crate::accounts::start_session(&mut auth, &user).await?;
    Ok(user.view())
}

/// Signs out: the session is deleted on the server, its cookie cleared, and the WebSockets
/// opened with it are closed.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    use crate::{realtime::EndedSessions, state::AppState};

    let state = AppState::current()?;
    let mut auth = super::ssr::auth_session().await?;
    let session = auth.session.id();
    let user = auth
        .logout()
        .await
        .map_err(|error| AppError::internal(&error))?;
    if let (Some(user), Some(session)) = (user, session) {
        ssr::end_sessions(&state, &user, EndedSessions::Only(session.to_string())).await;
    }
    Ok(())
}

/// Changes the signed-in user's password. Every other session of the user ends (and its
/// WebSockets close); this one stays signed in, under a new session id. Attempts count against
/// the sign-in rate limits (429 past them).
#[server(endpoint = "change_password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
    new_password_confirm: String,
) -> Result<(), AppError> {
    use crate::{accounts, realtime::EndedSessions};

    let (state, user) = super::ssr::signed_in().await?;
    // Trying current passwords is guessing a password: the sign-in limits apply, so a stolen
    // session can't be used to find the password.
    let address = super::ssr::client_address(&state).await?;
    state.limits.login(address, &user.username).await?;
    let mut auth = super::ssr::auth_session().await?;
    let updated = accounts::change_password(
        &state.db,
        &user,
        current_password,
        new_password,
        new_password_confirm,
    )
    .await?;
    state.limits.login_succeeded(address, &user.username);
    // This session now carries the new password's hash; the others carry the old one, so
    // axum-login signs them out at their next request.
    auth.login(&updated)
        .await
        .map_err(|error| AppError::internal(&error))?;
    if let Some(session) = auth.session.id() {
        ssr::end_sessions(&state, &user, EndedSessions::AllBut(session.to_string())).await;
    }
    Ok(())
}

/// The signed-in user, or `null`.
#[server(endpoint = "me")]
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    let auth = super::ssr::auth_session().await?;
    Ok(auth.user.map(|user| user.view()))
}

/// The signed-in user's settings.
#[server(endpoint = "settings")]
pub async fn get_settings() -> Result<AccountSettings, AppError> {
    let (state, me) = super::ssr::signed_in().await?;
    Ok(crate::accounts::settings(&state.db, me.id).await?)
}

/// Changes the signed-in user's settings, and tells their open tabs.
#[server(endpoint = "update_settings")]
pub async fn update_settings(read_receipts: bool) -> Result<AccountSettings, AppError> {
    use crate::protocol::ServerFrame;

    let (state, me) = super::ssr::signed_in().await?;
    let settings =
        crate::accounts::update_settings(&state.db, me.id, AccountSettings { read_receipts })
            .await?;
    let frame = ServerFrame::Settings { settings };
    if let Err(error) = state.realtime.publish(&[me.id], &frame).await {
        // The tabs pick the settings up when they next reconnect.
        tracing::warn!(%error, "could not tell a user's tabs about new settings");
    }
    Ok(settings)
}

/// Up to 20 people whose username or display name contains `query`.
#[server(endpoint = "search_users")]
pub async fn search_users(query: String) -> Result<Vec<UserView>, AppError> {
    let (state, me) = super::ssr::signed_in().await?;
    Ok(crate::accounts::search(&state.db, me.id, &query).await?)
}

#[cfg(feature = "ssr")]
mod ssr {
    use crate::{accounts::User, realtime::EndedSessions, state::AppState};

    /// Closes the user's sockets opened with the ended sessions. A failure is logged, not
    /// returned: the sessions have ended regardless, and each socket also checks its session
    /// periodically.
    pub(super) async fn end_sessions(state: &AppState, user: &User, ended: EndedSessions) {
        if let Err(error) = state.realtime.end_sessions(user.id, ended).await {
            tracing::warn!(%error, "could not close the sockets of ended sessions");
        }
    }
}
