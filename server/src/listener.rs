//! How connections are accepted, before HTTP sees them: [`ConnectionGuard`].
//!
//! A client that opens a connection and then sends nothing, or one byte a second, would hold
//! it (and its memory) forever, and a few thousand such connections exhaust a server. So:
//!
//! - **A deadline for the first request.** From the moment a connection is accepted, its first
//!   request's headers (TLS handshake included) must have arrived within the header timeout
//!   (`PARLEY_HEADER_TIMEOUT_SECS`), or the connection is dropped. Later requests on a kept-
//!   alive HTTP/1.1 connection get the same time from hyper's own header timeout, which also
//!   closes a connection left idle between requests for that long. An HTTP/2 connection is
//!   pinged instead (`startup::serve_on`) and dropped when its peer stops answering; one that
//!   answers but sends nothing stays, as browsers keep them, bounded by the cap below.
//! - **A cap per client address** (`PARLEY_CONNECTIONS_PER_ADDRESS`): open connections,
//!   WebSockets included, are counted by peer address, and one over the cap is closed as soon
//!   as it is accepted. The trusted proxies (`PARLEY_TRUSTED_PROXIES`) are not counted: every
//!   client behind them shares their address.
//! - `TCP_NODELAY`, so that small frames go out at once (without it, Nagle's algorithm holds
//!   a frame written just after another until the peer acknowledges, up to 40 ms).
//!
//! It is an axum-server [`Accept`]or over the raw TCP stream, under TLS when Parley terminates
//! it.

use std::{
    collections::HashMap,
    future::{Future, Ready},
    io,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum_server::accept::Accept;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Sleep,
};

use app::limits::address_key;

use crate::metrics as names;

/// The accepting side's rules (cheap to clone: the counts are shared).
#[derive(Clone)]
pub struct ConnectionGuard {
    /// Open connections per client address. A `std` mutex: held for a map operation only.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_address: usize,
    /// Addresses not counted: the trusted proxies.
    uncounted: Arc<[IpAddr]>,
    first_request_within: Duration,
}

impl ConnectionGuard {
    pub fn new(per_address: usize, uncounted: Vec<IpAddr>, first_request_within: Duration) -> Self {
        Self {
            open: Arc::default(),
            per_address: per_address.max(1),
            uncounted: uncounted.into_iter().map(|ip| ip.to_canonical()).collect(),
            first_request_within,
        }
    }

    /// Takes a place for a connection from `peer`, unless its address has no place left.
    /// Addresses count as the rate limits count them (`app::limits::address_key`: an IPv6
    /// client by its /64).
    fn admit(&self, peer: IpAddr) -> Option<Place> {
        let peer = peer.to_canonical();
        if self.uncounted.contains(&peer) {
            return Some(Place { open: None, peer });
        }
        let peer = address_key(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(peer).or_default();
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(Place {
            open: Some(self.open.clone()),
            peer,
        })
    }
}

/// A counted connection's place, given back when the connection (or the WebSocket it became)
/// is dropped.
struct Place {
    open: Option<Arc<Mutex<HashMap<IpAddr, usize>>>>,
    peer: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some(open) = &self.open else { return };
        let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

impl<S> Accept<TcpStream, S> for ConnectionGuard {
    type Stream = Guarded;
    type Service = FirstRequest<S>;
    type Future = Ready<io::Result<(Guarded, FirstRequest<S>)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(self.guard(stream, service))
    }
}

impl ConnectionGuard {
    fn guard<S>(&self, stream: TcpStream, service: S) -> io::Result<(Guarded, FirstRequest<S>)> {
        let peer = stream.peer_addr()?.ip();
        let Some(place) = self.admit(peer) else {
            metrics::counter!(names::CONNECTIONS_REFUSED).increment(1);
            tracing::debug!(%peer, "refused a connection: too many open from this address");
            return Err(io::Error::other("too many connections from this address"));
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "could not set TCP_NODELAY");
        }
        let requested = Arc::new(AtomicBool::new(false));
        let stream = Guarded {
            inner: stream,
            deadline: Some(Box::pin(tokio::time::sleep(self.first_request_within))),
            requested: requested.clone(),
            _place: place,
        };
        Ok((
            stream,
            FirstRequest {
                inner: service,
                requested,
            },
        ))
    }
}

/// An accepted connection: the TCP stream, with its place and its first-request deadline.
pub struct Guarded {
    inner: TcpStream,
    /// Until the first request has come: when reading fails with `TimedOut`.
    deadline: Option<Pin<Box<Sleep>>>,
    requested: Arc<AtomicBool>,
    _place: Place,
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = &mut this.deadline {
            if this.requested.load(Ordering::Relaxed) {
                this.deadline = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                // Polling the deadline registered this task to be woken when it passes, so a
                // connection that sends nothing at all is dropped on time too.
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request within the header timeout",
                )));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connection's service, which notes that a request has come (lifting the deadline).
#[derive(Clone)]
pub struct FirstRequest<S> {
    inner: S,
    requested: Arc<AtomicBool>,
}

impl<S, R> tower::Service<R> for FirstRequest<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.requested.store(true, Ordering::Relaxed);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_places_and_gets_them_back() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let guard = ConnectionGuard::new(2, vec![proxy], Duration::from_secs(5));
        let client: IpAddr = "203.0.113.5".parse().unwrap();
        let first = guard.admit(client).unwrap();
        let second = guard.admit(client).unwrap();
        assert!(guard.admit(client).is_none(), "the third is over the cap");
        assert!(
            guard.admit("203.0.113.6".parse().unwrap()).is_some(),
            "others are not"
        );
        drop(first);
        let third = guard.admit(client).unwrap();
        // One subscriber's IPv6 block counts as one address.
        let block: Vec<_> = (1..=2)
            .map(|n| guard.admit(format!("2001:db8::{n}").parse().unwrap()))
            .collect();
        assert!(block.iter().all(Option::is_some));
        assert!(guard.admit("2001:db8::3".parse().unwrap()).is_none());
        drop(block);
        // The proxy carries everyone: never counted, even written as IPv6.
        assert!(guard.admit("::ffff:10.0.0.1".parse().unwrap()).is_some());
        let through_proxy: Vec<_> = (0..10).map(|_| guard.admit(proxy).unwrap()).collect();
        drop((second, third, through_proxy));
        assert!(
            guard.open.lock().unwrap().is_empty(),
            "nothing left counted"
        );
    }
}
