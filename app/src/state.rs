//! [`AppState`]: what every handler and server function shares.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sea_orm::DatabaseConnection;

use crate::{
    error::AppError,
    integration::cards::CardRules,
    limits::RateLimits,
    messages::writer::MessageWriter,
    realtime::Realtime,
    security::{PagePolicy, TrustedProxies},
    uploads::UploadRules,
};

/// Shared state, cheap to clone (every field is a handle).
///
/// leptos_axum provides it to server functions as a context; axum handlers extract it.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Leptos' own settings (site root, output name), needed to render pages and serve files.
    pub leptos_options: LeptosOptions,
    /// The connection pool. sea-orm's connection is a pool handle, so clones share it.
    pub db: DatabaseConnection,
    /// Stores sent messages, several to a transaction when they come together.
    pub messages: MessageWriter,
    /// Live fan-out to users' sockets.
    pub realtime: Arc<dyn Realtime>,
    /// The Content-Security-Policy the shell puts on every page.
    pub page_policy: PagePolicy,
    /// Rate limits on sign-in, sign-up and WebSocket traffic.
    pub limits: Arc<RateLimits>,
    /// Reverse proxies whose `X-Forwarded-*` headers are believed.
    pub proxies: TrustedProxies,
    /// What may be uploaded (the browser checks it before uploading; the server enforces it).
    pub upload_rules: Arc<UploadRules>,
    /// Whether Parley's own registration and password sign-in are on (`PARLEY_LOCAL_ACCOUNTS`);
    /// off, people arrive only through the marketplace's sign-in (`/sso`).
    pub local_accounts: bool,
    /// What the marketplace's product and order cards may link to and show.
    pub card_rules: Arc<CardRules>,
}

/// What a person is told when Parley's own accounts are off.
pub const ACCOUNTS_ARE_THE_MARKETPLACES: &str =
    "Accounts come from the marketplace here: open the chat from the marketplace's site.";

impl AppState {
    /// `Ok` when Parley's own registration and sign-in are on.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] saying where to sign in instead.
    pub fn local_accounts_allowed(&self) -> Result<(), AppError> {
        if self.local_accounts {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                ACCOUNTS_ARE_THE_MARKETPLACES.to_owned(),
            ))
        }
    }

    /// The state, inside a server function.
    ///
    /// # Errors
    /// [`AppError::Internal`] if the server forgot to provide it (a wiring bug, logged).
    pub fn current() -> Result<Self, AppError> {
        leptos::prelude::use_context::<Self>().ok_or_else(|| {
            tracing::error!("AppState is missing from the server function's context");
            AppError::Internal
        })
    }
}
