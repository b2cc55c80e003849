//! Security headers on every response, with tower-http's `SetResponseHeaderLayer`.
//!
//! - `X-Content-Type-Options: nosniff`: a response is only ever what its `Content-Type` says.
//! - `Referrer-Policy: same-origin`: links out of Parley don't reveal the page they came from.
//! - `Permissions-Policy`: no camera, microphone, location, payment and the like.
//! - `Cross-Origin-Opener-Policy: same-origin`: other sites' windows can't script Parley's.
//! - `Content-Security-Policy`: pages set their own (`app::security::PagePolicy`, with the
//!   response's nonce); every other response gets one that allows nothing, so a JSON or error
//!   body can never run as a page. Both carry the same `frame-ancestors`.
//! - `X-Frame-Options: SAMEORIGIN` for browsers without `frame-ancestors`, only when no
//!   embedding origin is configured (it has no way to list one).

use axum::{
    Router,
    http::{HeaderName, HeaderValue, header},
};
use tower_http::set_header::SetResponseHeaderLayer;

use app::security::frame_ancestors_directive;

/// What `Permissions-Policy` turns off.
const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), display-capture=(), \
     geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), \
     usb=(), xr-spatial-tracking=()";

/// Adds the headers to every response of `router`.
///
/// # Errors
/// An embedding origin that can't be part of a header (config validation prevents it).
pub fn add_security_headers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    embedding_origins: &[String],
) -> Result<Router<S>, header::InvalidHeaderValue> {
    let default_policy = HeaderValue::from_str(&format!(
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        frame_ancestors_directive(embedding_origins)
    ))?;
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    let mut router = router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::REFERRER_POLICY, "same-origin"))
        .layer(set(
            HeaderName::from_static("permissions-policy"),
            PERMISSIONS_POLICY,
        ))
        .layer(set(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            default_policy,
        ));
    if embedding_origins.is_empty() {
        router = router.layer(set(header::X_FRAME_OPTIONS, "SAMEORIGIN"));
    }
    Ok(router)
}
