//! HTTPS as seen by the application, whether Parley terminates TLS itself or a trusted proxy
//! does (telling us so with `X-Forwarded-Proto`, believed only from `PARLEY_TRUSTED_PROXIES`).
//!
//! - Responses to HTTPS requests carry `Strict-Transport-Security` (one year, subdomains), so
//!   browsers never try plain HTTP again.
//! - A plain-HTTP request relayed by a trusted proxy, when Parley's public address is https,
//!   is sent to that address: pages (GET/HEAD) with a 308, anything else refused with 400, since
//!   a redirected POST or WebSocket would already have crossed the network in clear.
//! - [`redirect_router`] does the same for Parley's own plain-HTTP listener when it terminates
//!   TLS (`PARLEY_HTTP_REDIRECT_ADDR`).
//! - Every request carries its [`Scheme`] from here on, for the same-origin test of the
//!   cross-origin guard: `http://host` is another origin than `https://host`.

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use app::{error::AppError, security::TrustedProxies};

use super::host::{self, HostPolicy};

/// The HSTS policy: a year, subdomains included (no preload: that is a decision for the domain).
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// What the middleware needs to know.
#[derive(Debug, Clone)]
pub struct Transport {
    /// Parley terminates TLS itself: every request on the main listener is HTTPS.
    pub tls: bool,
    /// Proxies whose `X-Forwarded-Proto` is believed.
    pub proxies: TrustedProxies,
    /// `https://host[:port]` when Parley's public address is known to be HTTPS.
    pub https_origin: Option<String>,
}

/// Whether a request came over HTTPS (to Parley, or to the trusted proxy in front of it): a
/// request extension, set for every request by [`transport_security`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http` or `https`, as in an origin.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// The middleware.
pub async fn transport_security(
    State(transport): State<Transport>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let forwarded_proto = transport
        .proxies
        .trusts(peer.ip())
        .then(|| {
            // The value the trusted proxy itself added: the last one. Anything before it
            // came from further out, possibly from the client.
            request
                .headers()
                .get_all("x-forwarded-proto")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.rsplit(',')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_ascii_lowercase()
                })
        })
        .flatten();
    let secure = transport.tls || forwarded_proto.as_deref() == Some("https");
    if !secure
        && forwarded_proto.as_deref() == Some("http")
        && let Some(origin) = &transport.https_origin
    {
        return to_https(origin, &request);
    }
    request
        .extensions_mut()
        .insert(if secure { Scheme::Https } else { Scheme::Http });
    let mut response = next.run(request).await;
    if secure {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}

/// Sends a plain-HTTP request to the same path on `origin`, or refuses it.
fn to_https(origin: &str, request: &Request) -> Response {
    // A WebSocket upgrade is a GET, but a redirect would not carry it to HTTPS either.
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        || request.headers().contains_key(header::UPGRADE)
    {
        return AppError::BadRequest("this site is only served over HTTPS".into()).into_response();
    }
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Redirect::permanent(&format!("{origin}{path}")).into_response()
}

/// The router of the plain-HTTP listener: everything goes to HTTPS. `https_origin` is the
/// public address if known; otherwise the request's host (when `hosts` allows it) with
/// `tls_port`.
pub fn redirect_router(https_origin: Option<String>, tls_port: u16, hosts: HostPolicy) -> Router {
    Router::new().fallback(move |request: Request| {
        let https_origin = https_origin.clone();
        let hosts = hosts.clone();
        async move {
            let origin = match https_origin {
                Some(origin) => origin,
                None => {
                    let host = request
                        .headers()
                        .get(header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .filter(|host| hosts.allows(Some(host)))
                        .map(host::without_port)
                        .filter(|host| {
                            !host.is_empty()
                                && host
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
                        });
                    match host {
                        Some(host) => format!("https://{host}:{tls_port}"),
                        None => return StatusCode::BAD_REQUEST.into_response(),
                    }
                }
            };
            to_https(&origin, &request)
        }
    })
}
