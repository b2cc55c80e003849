//! Compression of the pages and of the server functions' JSON answers, Brotli or gzip as the
//! request's `Accept-Encoding` allows (tower-http's `CompressionLayer`).
//!
//! The bundle's own files are compressed once, at build time (see [`super::assets`]); this is
//! for what is rendered per request. A page is a few kilobytes of HTML that compress to less
//! than half, and a page of history is mostly repeated JSON keys.
//!
//! Compressing a secret next to text an attacker chose can leak the secret through the
//! compressed length (BREACH). There is no CSRF token in a page or an answer to leak (the
//! defence is the Origin check, [`super::origin`]), the session cookie is a header, which is
//! never compressed, and the pages' CSP nonce changes with every response. What remains is
//! user text: a conversation list shows other people's last messages next to one the
//! attacker wrote. Guessing it needs an attacker who watches the victim's encrypted traffic
//! *and* makes the victim's browser repeat the request many times with chosen text; server
//! functions are POSTs, refused from other sites (the Origin check; the `SameSite=Lax`
//! cookie is not even sent with them), so another site's page cannot repeat them.
//! See docs/security.md.

use axum::http::{Extensions, HeaderMap, StatusCode, Version, header::CONTENT_TYPE};
use tower_http::compression::{
    CompressionLayer,
    predicate::{Predicate, SizeAbove},
};

/// Below this many bytes, compressing saves less than it costs.
const MIN_SIZE: u16 = 256;

/// The layer, for the page and server-function routes only: attachments keep their stored
/// bytes (and their byte ranges), WebSocket upgrades have no body.
pub fn layer() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .no_deflate()
        .no_zstd()
        .compress_when(SizeAbove::new(MIN_SIZE).and(is_page_or_data))
}

/// HTML and JSON answers; anything else (images, files, event streams) as it is.
fn is_page_or_data(_: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.starts_with("text/html") || kind.starts_with("application/json"))
}
