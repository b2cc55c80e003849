//! How browsers may keep the site's static files (`/pkg/*`, or whatever
//! `LEPTOS_SITE_PKG_DIR` names: the WASM bundle, its JavaScript glue and the stylesheet;
//! `/favicon.svg`).
//!
//! They are served by tower-http's `ServeDir`, already compressed when the build made
//! `.br`/`.gz` copies (`cargo leptos build --release --precompress`), with `Last-Modified`
//! (and `304 Not Modified` to a browser that has the same copy).
//! Their names do not change between versions, so a browser keeps them but asks again on each
//! visit (`no-cache`: a `304 Not Modified` costs a round trip, not the bundle). Which copy was
//! sent depends on the request's `Accept-Encoding`, which caches in between must know
//! (`Vary`).

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};

/// Where the bundle's files are served: `/{site_pkg_dir}/`.
#[derive(Clone)]
pub struct BundlePath(Arc<str>);

impl BundlePath {
    pub fn new(site_pkg_dir: &str) -> Self {
        Self(format!("/{}/", site_pkg_dir.trim_matches('/')).into())
    }
}

/// The middleware.
pub async fn cache_static_files(
    State(bundle): State<BundlePath>,
    request: Request,
    next: Next,
) -> Response {
    let is_static = {
        let path = request.uri().path();
        path.starts_with(&*bundle.0) || path == "/favicon.svg"
    };
    let mut response = next.run(request).await;
    if is_static && (response.status().is_success() || response.status().as_u16() == 304) {
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}
