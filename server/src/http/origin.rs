//! The cross-origin guard: Parley's CSRF and cross-site WebSocket hijacking defence.
//!
//! Leptos server functions have no CSRF protection of their own, and their form-encoded POSTs
//! are requests a foreign page can send without a CORS preflight. So one middleware in front
//! of everything refuses, with 403, any state-changing request (every method but GET, HEAD and
//! OPTIONS) and any WebSocket upgrade that a browser made on behalf of another site:
//!
//! 1. `Sec-Fetch-Site: same-origin` (or `none`, a user's own navigation) is allowed;
//!    `same-site` and `cross-site` are allowed only from a trusted origin.
//! 2. Without `Sec-Fetch-Site`, `Origin` must be the request's own (the same scheme, host and
//!    port: `http://host` is not the origin of a request that came over HTTPS) or a trusted
//!    origin; without `Origin` either, the origin of `Referer` must be.
//! 3. With none of the three, a request carrying cookies is refused (every browser sends at
//!    least one of them); one without cookies has no ambient authority to abuse and is allowed,
//!    which lets non-browser clients log in and then send their session cookie along with an
//!    `Origin`.
//!
//! The session cookie is also `SameSite=Lax`, a second layer. The check never decides *who*
//! the user is; that is the session's job.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use app::error::AppError;

use super::transport::Scheme;

/// Which origins may make state-changing requests besides the request's own.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Normalised origins (`https://host[:port]`, lower case).
    trusted: Arc<Vec<String>>,
}

impl OriginPolicy {
    pub fn new(trusted: Vec<String>) -> Self {
        Self {
            trusted: Arc::new(trusted),
        }
    }

    /// Whether a request with these headers, which came over `scheme`, may change state (or
    /// open a WebSocket).
    pub fn allows(&self, headers: &HeaderMap, scheme: Scheme) -> bool {
        let origin = header_str(headers, header::ORIGIN);
        let referer_origin = header_str(headers, header::REFERER).and_then(origin_of);
        match header_str(headers, "sec-fetch-site") {
            Some("same-origin" | "none") => true,
            Some(_) => origin.is_some_and(|o| self.is_trusted(o)),
            None => match origin.or(referer_origin) {
                Some(origin) => self.is_trusted_or_same(origin, headers, scheme),
                None => !headers.contains_key(header::COOKIE),
            },
        }
    }

    fn is_trusted(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        self.trusted.contains(&origin)
    }

    fn is_trusted_or_same(&self, origin: &str, headers: &HeaderMap, scheme: Scheme) -> bool {
        if self.is_trusted(origin) {
            return true;
        }
        match header_str(headers, header::HOST) {
            Some(host) => normalise(origin) == normalise(&format!("{}://{host}", scheme.as_str())),
            None => false,
        }
    }
}

/// An origin in lower case, without a trailing slash or its scheme's default port
/// (`https://a.example:443` is `https://a.example`, as browsers write it).
fn normalise(origin: &str) -> String {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if origin.starts_with(scheme)
            && let Some(without) = origin.strip_suffix(port)
        {
            return without.to_owned();
        }
    }
    origin
}

/// `https://host:port` from a full URL (`https://host:port/path?query`).
fn origin_of(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    Some(&url[..end])
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request needs the check: it can change state, or it opens a WebSocket. The
/// marketplace's sign-in form (`POST /sso`) is posted from the marketplace's own pages: what
/// proves it was meant is its token, signed by the marketplace and good for one use, not its
/// origin.
fn needs_check(request: &Request) -> bool {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let upgrade = request.headers().contains_key(header::UPGRADE);
    upgrade || (!safe && request.uri().path() != super::sso::PATH)
}

/// The middleware. Refusals are `403 {"error":"cross_origin"}`.
pub async fn cross_origin_guard(
    State(policy): State<OriginPolicy>,
    mut request: Request,
    next: Next,
) -> Response {
    // HTTP/2 (which browsers use over TLS) carries the host in the URI's authority, not in a
    // `Host` header; the same-origin test compares against it either way.
    if !request.headers().contains_key(header::HOST)
        && let Some(authority) = request
            .uri()
            .authority()
            .and_then(|a| axum::http::HeaderValue::from_str(a.as_str()).ok())
    {
        request.headers_mut().insert(header::HOST, authority);
    }
    // Set by the transport middleware for every request; a request without it is treated as
    // plain HTTP, which can only make the same-origin test stricter.
    let scheme = request
        .extensions()
        .get::<Scheme>()
        .copied()
        .unwrap_or(Scheme::Http);
    if needs_check(&request) && !policy.allows(request.headers(), scheme) {
        tracing::warn!(
            method = %request.method(),
            path = request.uri().path(),
            origin = header_str(request.headers(), header::ORIGIN).unwrap_or("-"),
            "refused a cross-origin request"
        );
        return AppError::CrossOrigin.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    impl OriginPolicy {
        fn allows_http(&self, headers: &HeaderMap) -> bool {
            self.allows(headers, Scheme::Http)
        }
    }

    #[test]
    fn same_origin_is_allowed() {
        let policy = OriginPolicy::default();
        assert!(policy.allows_http(&headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
            ("cookie", "parley_session=x"),
        ])));
        assert!(policy.allows_http(&headers(&[("sec-fetch-site", "same-origin")])));
    }

    #[test]
    fn foreign_origins_are_refused() {
        let policy = OriginPolicy::default();
        assert!(!policy.allows_http(&headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "https://evil.example"),
        ])));
        assert!(!policy.allows_http(&headers(&[("host", "127.0.0.1:3000"), ("origin", "null"),])));
        assert!(!policy.allows_http(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ])));
        // A sibling subdomain is "same-site" but still another origin.
        assert!(!policy.allows_http(&headers(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://shop.example.com"),
        ])));
    }

    #[test]
    fn trusted_origins_are_allowed_even_cross_site() {
        let policy = OriginPolicy::new(vec!["https://market.example".into()]);
        assert!(policy.allows_http(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://market.example"),
        ])));
        assert!(policy.allows_http(&headers(&[
            ("host", "chat.example"),
            ("origin", "https://MARKET.example/"),
        ])));
    }

    #[test]
    fn without_origin_the_referer_decides() {
        let policy = OriginPolicy::default();
        assert!(policy.allows_http(&headers(&[
            ("host", "127.0.0.1:3000"),
            ("referer", "http://127.0.0.1:3000/login?next=%2Fchat"),
            ("cookie", "parley_session=x"),
        ])));
        assert!(!policy.allows_http(&headers(&[
            ("host", "127.0.0.1:3000"),
            ("referer", "https://evil.example/page"),
            ("cookie", "parley_session=x"),
        ])));
        assert_eq!(
            origin_of("https://a.example:8443/x?y#z"),
            Some("https://a.example:8443")
        );
        assert_eq!(origin_of("https://a.example"), Some("https://a.example"));
        assert_eq!(origin_of("not a url"), None);
    }

    #[test]
    fn an_origin_of_another_scheme_is_another_origin() {
        let policy = OriginPolicy::default();
        let from = |origin: &'static str| {
            headers(&[
                ("host", "chat.example:8443"),
                ("origin", origin),
                ("cookie", "x=1"),
            ])
        };
        assert!(policy.allows(&from("https://chat.example:8443"), Scheme::Https));
        assert!(!policy.allows(&from("http://chat.example:8443"), Scheme::Https));
        assert!(!policy.allows(&from("https://chat.example:8443"), Scheme::Http));
        assert!(!policy.allows(&from("https://chat.example:9443"), Scheme::Https));
        // Default ports are the same origin whether written or not.
        let default_port = headers(&[
            ("host", "chat.example"),
            ("origin", "https://chat.example:443"),
        ]);
        assert!(policy.allows(&default_port, Scheme::Https));
        let referer = headers(&[
            ("host", "chat.example"),
            ("referer", "http://chat.example/login"),
            ("cookie", "x=1"),
        ]);
        assert!(!policy.allows(&referer, Scheme::Https));
    }

    #[test]
    fn cookies_without_any_origin_information_are_refused() {
        let policy = OriginPolicy::default();
        assert!(!policy.allows_http(&headers(&[("cookie", "parley_session=x")])));
        assert!(policy.allows_http(&headers(&[("host", "127.0.0.1:3000")])));
    }
}
