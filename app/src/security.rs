//! [`PagePolicy`]: the Content-Security-Policy of Parley's HTML pages.
//!
//! A page may run scripts from Parley's own origin (the WASM bundle's JS glue) and the one
//! inline script Leptos writes to start hydration, which carries a fresh random nonce per
//! response; nothing else, and never inline event handlers. WebAssembly compilation needs
//! `'wasm-unsafe-eval'` (which allows compiling WASM, not JavaScript `eval`). Styles and
//! connections (including the WebSocket) are same-origin only; images too, but for the
//! pictures of the marketplace's cards, from the origins it was told. Framing is allowed for Parley
//! itself and the configured embedding origins (the marketplace).
//!
//! The shell sets the header while rendering (only it knows the nonce); every other response
//! gets the server's default policy, which allows nothing at all.
//!
//! Also [`TrustedProxies`]: which peers may tell us the client's real address.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::http::HeaderMap;

/// The page policy, fixed at start-up except for the per-response nonce.
#[derive(Debug, Clone)]
pub struct PagePolicy {
    /// Everything after `script-src`, ready to append: frame ancestors and the rest.
    rest: Arc<str>,
    /// Extra `connect-src` sources (cargo-leptos' live-reload socket in development).
    extra_connect: Arc<str>,
}

impl PagePolicy {
    /// `frame_ancestors` are the origins allowed to embed Parley besides itself;
    /// `image_origins` the ones product and order cards show pictures from;
    /// `extra_connect` adds connection sources (for development tools); `upgrade_insecure`
    /// asks browsers to load every subresource over HTTPS.
    pub fn new(
        frame_ancestors: &[String],
        image_origins: &[String],
        extra_connect: &[String],
        upgrade_insecure: bool,
    ) -> Self {
        let images: String = image_origins
            .iter()
            .map(|origin| format!(" {origin}"))
            .collect();
        let mut rest = format!(
            "style-src 'self'; img-src 'self' data:{images}; font-src 'self'; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors {}",
            frame_ancestors_directive(frame_ancestors)
        );
        if upgrade_insecure {
            rest.push_str("; upgrade-insecure-requests");
        }
        Self {
            rest: rest.into(),
            extra_connect: extra_connect
                .iter()
                .map(|source| format!(" {source}"))
                .collect::<String>()
                .into(),
        }
    }

    /// The header value for a page rendered with `nonce`.
    pub fn header(&self, nonce: &str) -> String {
        format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
             connect-src 'self'{}; {}",
            self.extra_connect, self.rest
        )
    }
}

/// `'self'` and the given origins, as a `frame-ancestors` source list.
pub fn frame_ancestors_directive(origins: &[String]) -> String {
    std::iter::once("'self'")
        .chain(origins.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The reverse proxies whose `X-Forwarded-For` header is believed. Anyone else could write any
/// address there, so for other peers the header is ignored.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpAddr]>);

impl TrustedProxies {
    pub fn new(proxies: Vec<IpAddr>) -> Self {
        Self(proxies.into_iter().map(|ip| ip.to_canonical()).collect())
    }

    /// Whether `peer` is one of the trusted proxies (an IPv4 address written as IPv6, as a
    /// dual-stack listener sees it, is the IPv4 one).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.0.contains(&peer.to_canonical())
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case
    /// the last address in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.ip().to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .map(|hop| hop.to_canonical())
            .rev()
            .find(|hop| !self.trusts(*hop))
            .unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let proxies = TrustedProxies::new(vec![proxy]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 203.0.113.9, 10.0.0.5"),
        );
        let via_proxy = SocketAddr::new(proxy, 40000);
        assert_eq!(
            proxies.client_address(via_proxy, &headers),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the last hop the proxy saw, not what the client claimed"
        );
        let direct: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        assert_eq!(proxies.client_address(direct, &headers), direct.ip());
        assert_eq!(
            proxies.client_address(via_proxy, &HeaderMap::new()),
            proxy,
            "no header: the proxy itself"
        );
    }

    #[test]
    fn the_page_policy_allows_the_nonce_and_nothing_inline() {
        let policy = PagePolicy::new(
            &["https://market.example".into()],
            &["https://img.market.example".into()],
            &[],
            true,
        );
        let header = policy.header("abc123");
        assert!(header.contains("img-src 'self' data: https://img.market.example;"));
        assert!(header.contains("script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval';"));
        assert!(!header.contains("unsafe-inline"));
        assert!(header.contains("frame-ancestors 'self' https://market.example"));
        assert!(header.contains("object-src 'none'"));
        assert!(header.ends_with("upgrade-insecure-requests"));
    }

    #[test]
    fn development_sources_are_added_to_connect_src() {
        let policy = PagePolicy::new(&[], &[], &["ws://127.0.0.1:3001".into()], false);
        assert!(
            policy
                .header("n")
                .contains("connect-src 'self' ws://127.0.0.1:3001;")
        );
    }
}
