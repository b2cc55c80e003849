//! Connections that hold the server up: headers trickled a byte at a time, nothing sent at
//! all, an idle kept-alive connection, and too many connections from one address. Rules of the
//! listener, the same on either database, so these run on SQLite only.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout},
};

use crate::helpers::{Scratch, TestApp, TestDb};
use server::{config::Config, tls::TlsSource};

/// The header timeout these tests set.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a test waits for the server to close a connection before failing: well past the
/// timeout, far short of "forever".
const CLOSED_WITHIN: Duration = Duration::from_secs(6);

async fn app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.header_timeout = HEADER_TIMEOUT;
    configure(&mut config);
    TestApp::start(config, scratch, TestDb::Sqlite).await
}

/// Reads until the server closes the connection; fails the test if it is still open after
/// [`CLOSED_WITHIN`]. Returns everything the server sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + CLOSED_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => panic!("the connection was still open after {CLOSED_WITHIN:?}"),
            Ok(Ok(0) | Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Whether the server still answers a plain request on a new connection.
async fn answers(app: &TestApp) -> bool {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = until_closed(&mut stream).await;
    response.starts_with(b"HTTP/1.1 200")
}

/// A WebSocket upgrade whose headers come one byte every 200 ms, and a connection that sends
/// nothing at all, are both closed after the header timeout; the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_connections_are_closed() {
    let app = app_with(|_| {}).await;

    let mut trickle = TcpStream::connect(app.addr).await.unwrap();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr
    );
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for byte in upgrade.bytes() {
            if trickle.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        trickle
    });
    let mut trickle = timeout(CLOSED_WITHIN, sender).await.unwrap().unwrap();
    assert!(
        started.elapsed() < CLOSED_WITHIN,
        "the server let the headers trickle in to the end"
    );
    let answer = until_closed(&mut trickle).await;
    assert!(!answer.starts_with(b"HTTP/1.1 101"), "upgraded after all");

    // Connected, then nothing: no first byte, no request.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    until_closed(&mut silent).await;
    // The start of an HTTP/2 preface, then nothing more.
    let mut preface = TcpStream::connect(app.addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    until_closed(&mut preface).await;

    assert!(answers(&app).await);
}

/// A kept-alive connection left idle after its response is closed after the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_kept_alive_connections_are_closed() {
    let app = app_with(|_| {}).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // The rest of the response, then the close.
    until_closed(&mut stream).await;
}

/// Over TLS, a client that connects and never starts the handshake is dropped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_comes_is_dropped() {
    let app = app_with(|config| config.tls = Some(TlsSource::SelfSigned)).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    until_closed(&mut silent).await;
}

/// One address may hold only so many connections: the next is closed at once, and a place
/// comes free when one of them closes. A trusted proxy, which carries everyone, is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_counted_per_address() {
    let app = app_with(|config| {
        config.header_timeout = Duration::from_secs(30);
        config.connections_per_address = 3;
    })
    .await;
    // Five at once: the server takes them in whatever order its tasks run, keeps three and
    // closes the other two as soon as it has them.
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let mut open = Vec::new();
    let mut closed = 0;
    for mut stream in streams {
        let mut byte = [0u8; 1];
        match timeout(Duration::from_secs(2), stream.read(&mut byte)).await {
            Err(_) => open.push(stream),
            Ok(Ok(0) | Err(_)) => closed += 1,
            Ok(Ok(_)) => panic!("the server said something unasked"),
        }
    }
    assert_eq!((open.len(), closed), (3, 2));
    drop(open.pop());
    // The place is given back as soon as the server sees the close.
    let mut answered = false;
    for _ in 0..50 {
        if answers(&app).await {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered, "a freed place was not given back");

    let proxied = app_with(|config| {
        config.header_timeout = Duration::from_secs(30);
        config.connections_per_address = 3;
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut through_proxy = Vec::new();
    for _ in 0..10 {
        through_proxy.push(TcpStream::connect(proxied.addr).await.unwrap());
    }
    assert!(
        answers(&proxied).await,
        "the proxy's connections are not capped"
    );
}
