//! The Parley server process: reads its configuration, opens the database, and serves the
//! pages, the server functions and the WebSocket on one port.
//!
//! `main.rs` only sets up logging and calls [`startup::Application`]; integration tests build
//! the same application on port 0 against a fresh database.
//!
//! # Layout
//! - [`admin`]: the administration commands (`server keys …`).
//! - [`config`]: every setting, read once from the environment.
//! - [`deploy_check`]: the start-up check of the configuration (production refuses to start
//!   when it is unsafe).
//! - [`files`]: attachments over HTTP: uploads, downloads, storage, type sniffing, images.
//! - [`startup`]: connects, migrates, assembles the router, binds, serves, shuts down.
//! - [`metrics`]: Prometheus metrics at `GET /metrics`.
//! - [`telemetry`]: logging (text or JSON), one line per request and per connection event.
//! - [`http`]: middleware every request passes (host allow-list, cross-origin guard, page
//!   redirects, status of server function errors) and the health check.
//! - [`listener`]: what every accepted connection passes: a cap per client address and a
//!   deadline for its first request.
//! - [`sessions`]: the session store, in the database so sessions survive a restart.
//! - [`tls`]: TLS termination (certificate files, or self-signed for development).
//! - [`webhooks`]: the worker that posts the event log to the marketplace's endpoints.
//! - [`ws`]: the WebSocket endpoint and the per-connection task.
//! - [`realtime`]: implementations of `app::realtime::Realtime` (in-process fan-out, Redis),
//!   and the rate limits shared through Redis.

pub mod admin;
pub mod config;
pub mod deploy_check;
pub mod files;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod realtime;
pub mod sessions;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
pub mod ws;
