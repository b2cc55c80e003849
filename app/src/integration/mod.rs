//! What a marketplace's backend does through Parley: calls the server API with an API key
//! ([`api_keys`]) and hears what happened ([`events`]) about the people of the marketplace, whose Parley accounts are linked to its
//! own ([`identities`]), puts product and order cards in conversations ([`cards`]), retries
//! its requests safely ([`idempotency`]), and signs its people in
//! to Parley with a token ([`sso`]), and has the events pushed to its endpoints
//! ([`webhooks`]; the server's worker sends them).
//!
//! The HTTP side (routes, errors as `application/problem+json`, the OpenAPI document) is the
//! server's `http::api_v1`; this is the domain under it, as `accounts` is under the pages.

pub mod api_keys;
pub mod cards;
pub mod events;
pub mod idempotency;
pub mod identities;
pub mod sso;
pub mod webhooks;
