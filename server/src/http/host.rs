//! The host allow-list, Django's `ALLOWED_HOSTS`: a request naming a host Parley does not
//! serve is refused with 400 before anything else looks at it.
//!
//! Without it, any domain an attacker points at Parley's address is served as if it were
//! Parley's own, which is what DNS rebinding needs: a page on `evil.example` whose name is
//! switched to Parley's address afterwards talks to Parley as a *same-origin* page, past the
//! cross-origin guard. With the list, such requests never reach a page, a server function or
//! the WebSocket.
//!
//! The list is the public address's host (`PARLEY_PUBLIC_URL`) and `PARLEY_ALLOWED_HOSTS`;
//! names are compared without their port and in any letter case, and `.example.com` matches
//! `example.com` and every subdomain. With no list at all (development without a public
//! address) every host is served. The health checks and the metrics are answered for any host:
//! load balancers and Prometheus address them by IP, and neither serves anything a browser
//! page could use (metrics ask for their own token or a local peer).

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use app::error::AppError;

/// Paths answered whatever the host.
const ANY_HOST: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Which hosts requests may name.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Lower-case names, without ports; a leading `.` also matches subdomains. Empty: any.
    allowed: Arc<[String]>,
}

impl HostPolicy {
    pub fn new(allowed: Vec<String>) -> Self {
        Self {
            allowed: allowed.into(),
        }
    }

    /// Whether a request naming `host` (a `Host` header or an HTTP/2 authority, with or
    /// without a port) may be served.
    pub fn allows(&self, host: Option<&str>) -> bool {
        if self.allowed.is_empty() {
            return true;
        }
        let Some(host) = host else {
            return false;
        };
        // `chat.example.com.` (a fully qualified name, as some users type it) is the same host.
        let name = without_port(host)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.allowed
            .iter()
            .any(|allowed| match allowed.strip_prefix('.') {
                Some(domain) => name == domain || name.ends_with(allowed.as_str()),
                None => name == *allowed,
            })
    }
}

/// The host a request names: its `Host` header, or (HTTP/2) its URI's authority.
pub fn request_host(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
}

/// The middleware. Refusals are `400 {"error":"bad_request"}`.
pub async fn check_host(
    State(policy): State<HostPolicy>,
    request: Request,
    next: Next,
) -> Response {
    if ANY_HOST.contains(&request.uri().path()) || policy.allows(request_host(&request)) {
        return next.run(request).await;
    }
    tracing::warn!(
        host = request_host(&request).unwrap_or("-"),
        path = request.uri().path(),
        "refused a request for a host this server does not serve"
    );
    AppError::BadRequest("this server does not serve that host name".into()).into_response()
}

/// `example.com:8080` → `example.com`, `[::1]:8080` → `[::1]`.
pub fn without_port(host: &str) -> &str {
    match host.find(']') {
        Some(end) => &host[..=end],
        None => host.split(':').next().unwrap_or(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_cut_from_hosts() {
        assert_eq!(without_port("example.com:8080"), "example.com");
        assert_eq!(without_port("example.com"), "example.com");
        assert_eq!(without_port("[::1]:8080"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
    }

    #[test]
    fn only_listed_hosts_are_served() {
        let policy = HostPolicy::new(vec!["chat.example.com".into(), "10.0.0.7".into()]);
        for host in [
            "chat.example.com",
            "CHAT.example.com:8443",
            "chat.example.com.",
            "10.0.0.7:3000",
        ] {
            assert!(policy.allows(Some(host)), "{host}");
        }
        for host in [
            "evil.example",
            "chat.example.com.evil.example",
            "www.chat.example.com",
            "example.com",
            "",
        ] {
            assert!(!policy.allows(Some(host)), "{host}");
        }
        assert!(!policy.allows(None), "a request that names no host");
    }

    #[test]
    fn a_leading_dot_allows_subdomains() {
        let policy = HostPolicy::new(vec![".shop.example".into()]);
        assert!(policy.allows(Some("shop.example")));
        assert!(policy.allows(Some("chat.shop.example:443")));
        assert!(!policy.allows(Some("evilshop.example")));
    }

    #[test]
    fn without_a_list_every_host_is_served() {
        assert!(HostPolicy::default().allows(Some("anything.example")));
        assert!(HostPolicy::default().allows(None));
    }
}
