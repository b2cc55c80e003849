//! A TCP proxy between the server and a service it depends on (PostgreSQL, Redis) that can
//! cut the service off: every open connection is dropped and new ones are refused until it is
//! restored. This is how tests make "the database (or Redis) went away for a few seconds"
//! happen to a real server without touching the service itself, which other tests share.
//!
//! Shared by the test binaries with `#[path]`.

use std::net::SocketAddr;

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub(crate) struct TcpProxy {
    addr: SocketAddr,
    down: watch::Sender<bool>,
}

impl TcpProxy {
    /// Listens on a free local port and forwards to `upstream`.
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let (down, watching) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watching.borrow() {
                    // Refused: the server sees the connection close at once.
                    drop(client);
                    continue;
                }
                tokio::spawn(pipe(client, upstream, watching.clone()));
            }
        });
        Self { addr, down }
    }

    /// Starts a proxy in front of the service `url` points at (`postgres://…`, `redis://…`;
    /// `default_port` when the URL names none), and returns it with `url` rewritten to go
    /// through it (credentials, database and options kept).
    pub(crate) async fn in_front_of(url: &str, default_port: u16) -> (Self, String) {
        let mut url = reqwest::Url::parse(url).expect("a service URL");
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        let upstream = tokio::net::lookup_host((host, url.port().unwrap_or(default_port)))
            .await
            .expect("resolve the service's host")
            .next()
            .expect("an address for the service's host");
        let proxy = Self::start(upstream).await;
        url.set_ip_host(proxy.addr.ip()).expect("host");
        url.set_port(Some(proxy.addr.port())).expect("port");
        (proxy, url.to_string())
    }

    /// Drops every connection to the service and refuses new ones.
    pub(crate) fn cut(&self) {
        self.down.send_replace(true);
    }

    /// Lets connections through again.
    pub(crate) fn restore(&self) {
        self.down.send_replace(false);
    }
}

async fn pipe(mut client: TcpStream, upstream: SocketAddr, mut down: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = down.wait_for(|down| *down) => {}
    }
}
