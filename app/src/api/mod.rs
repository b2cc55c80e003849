//! Server functions: Parley's HTTP API under `/api/`, called by the pages and by any other
//! client (they are public API; `docs/protocol.md` lists them).
//!
//! Each one is thin: get the state and the signed-in user, call one domain function, convert
//! its error into [`crate::error::AppError`]. Every endpoint name is fixed with
//! `endpoint = "…"` so that its URL never changes. All take form-encoded POST bodies (Leptos'
//! default, which also lets the sign-in forms work before the WASM has loaded) and answer JSON.
//! A failed call answers `{"error": …}` with the matching HTTP status (set by the server's
//! `server_fn_status` middleware from the error itself).

pub mod accounts;
pub mod conversations;
#[cfg(feature = "ssr")]
pub mod strict;
pub mod uploads;

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    //! Helpers for server function bodies.

    use crate::{
        accounts::{AuthSession, User},
        error::AppError,
        state::AppState,
    };

    /// The request's axum-login session.
    pub(crate) async fn auth_session() -> Result<AuthSession, AppError> {
        leptos_axum::extract::<AuthSession>()
            .await
            .map_err(|error| AppError::internal(&error))
    }

    /// The address of the client making this request (see `TrustedProxies`).
    pub(crate) async fn client_address(state: &AppState) -> Result<std::net::IpAddr, AppError> {
        use axum::{extract::ConnectInfo, http::HeaderMap};

        let ConnectInfo(peer) = leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>()
            .await
            .map_err(|error| AppError::internal(&error))?;
        let headers = leptos_axum::extract::<HeaderMap>()
            .await
            .map_err(|error| AppError::internal(&error))?;
        Ok(state.proxies.client_address(peer, &headers))
    }

    /// The shared state and the signed-in user.
    ///
    /// # Errors
    /// [`AppError::Unauthorized`] when nobody is signed in.
    pub(crate) async fn signed_in() -> Result<(AppState, User), AppError> {
        let state = AppState::current()?;
        let user = auth_session().await?.user.ok_or(AppError::Unauthorized)?;
        Ok((state, user))
    }
}
