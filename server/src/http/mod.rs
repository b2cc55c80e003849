//! What every HTTP request passes through besides its handler, and the health check.
//!
//! - [`assets`]: caching of the site's static files.
//! - [`compression`]: Brotli or gzip for pages and server-function answers.
//! - [`api_body`]: bounds server-function bodies and refuses unknown fields.
//! - [`origin`]: refuses state-changing requests and WebSocket upgrades from other sites.
//! - [`pages`]: sends signed-out visitors of the chat pages to the log-in page and back.
//! - [`api_v1`]: the server API a marketplace's backend calls, with its OpenAPI document.
//! - [`api_status`]: gives server-function errors their proper HTTP status.
//! - [`panics`]: a handler that panics answers 500 and is logged, not cut off mid-answer.
//! - [`sso`]: `/sso`, the sign-in handoff from the marketplace.
//! - [`headers`]: security headers on every response.
//! - [`host`]: refuses requests for a host name Parley does not serve (DNS rebinding).
//! - [`health`]: `GET /healthz` (alive) and `GET /readyz` (able to work) for load balancers.
//! - [`transport`]: HSTS, and HTTPS redirects for plain-HTTP requests.

pub mod api_body;
pub mod api_status;
pub mod api_v1;
pub mod assets;
pub mod compression;
pub mod headers;
pub mod health;
pub mod host;
pub mod origin;
pub mod pages;
pub mod panics;
pub mod sso;
pub mod transport;
