//! Parley's shared core: the pages, the server functions, the wire types, and (with the `ssr`
//! feature) the domain that stores accounts, conversations and messages.
//!
//! The crate is compiled twice: with `ssr` into the server, and with `hydrate` into the WASM
//! bundle. Modules gated on `ssr` never reach the browser.
//!
//! # Layout
//!
//! Shared by both builds:
//! - [`model`]: ids, the views clients are shown, validated input newtypes.
//! - [`protocol`]: the WebSocket frames, one enum per direction.
//! - [`error`]: [`error::AppError`], every error a client may see.
//! - [`api`]: the server functions (HTTP API under `/api/`).
//! - [`uploads`]: the kinds of file accepted, and the browser's early checks.
//! - [`ui`]: the HTML shell, the router and the page components.
//!
//! Server only (`ssr`):
//! - [`state`]: [`state::AppState`], shared by handlers and server functions.
//! - [`entity`]: sea-orm entities for the tables the `migrations` crate creates.
//! - [`accounts`]: registration, argon2 hashing, axum-login's backend, people search.
//! - [`attachments`]: files sent in conversations: pending uploads, attaching, who may fetch.
//! - [`conversations`]: one conversation per pair, membership checks, read positions.
//! - [`integration`]: what a marketplace's backend does through Parley: API keys, and the
//!   accounts linked to the marketplace's own.
//! - [`limits`]: rate limits on sign-in, sign-up, uploads and WebSocket traffic (per person,
//!   shared through Redis when there is one), the typing relay, and when a socket misbehaves.
//! - [`messages`]: storing a message exactly once, history pages.
//! - [`realtime`]: the [`realtime::Realtime`] port live events go through.
//! - [`security`]: the pages' Content-Security-Policy.

pub mod api;
pub mod error;
pub mod model;
pub mod protocol;
pub mod ui;
pub mod uploads;

#[cfg(feature = "ssr")]
pub mod accounts;
#[cfg(feature = "ssr")]
pub mod attachments;
#[cfg(feature = "ssr")]
pub mod conversations;
#[cfg(feature = "ssr")]
pub mod entity;
#[cfg(feature = "ssr")]
pub mod integration;
#[cfg(feature = "ssr")]
pub mod limits;
#[cfg(feature = "ssr")]
pub mod messages;
#[cfg(feature = "ssr")]
pub mod realtime;
#[cfg(feature = "ssr")]
pub mod security;
#[cfg(feature = "ssr")]
pub mod state;

pub use ui::{App, shell};
