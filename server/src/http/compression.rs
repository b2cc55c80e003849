//! Compression of the pages and of the server functions' JSON answers, Brotli or gzip as the
//! request's `Accept-Encoding` allows (tower-http's `CompressionLayer`).
//!
//! The bundle's own files are compressed once, at build time (see [`super::assets`]); this is
//! for what is rendered per request. A page is a few kilobytes of HTML that compress to less
//! than half, and a page of history is mostly repeated JSON keys.
//!
//! Compression of secrets next to attacker-chosen text can leak them through the compressed
//! length (BREACH). Nothing these answers carry qualifies: there is no CSRF token in a page or
//! an answer (the defence is the Origin check, [`super::origin`]), the session cookie is a
//! header, which is never compressed, and the pages' CSP nonce changes with every response.
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
