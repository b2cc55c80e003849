//! Simulated people for the load benchmark (and for the test that runs it small): an account
//! signed up over HTTP like a browser would, and its WebSocket.
//!
//! One `reqwest::Client` serves every account (thousands of them would each keep a pool); an
//! account keeps only its session cookie, which it sends by hand.

use std::{net::SocketAddr, time::Duration};

use futures::StreamExt;
use reqwest::{StatusCode, header};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async_with_config,
    tungstenite::{Message, client::IntoClientRequest, protocol::WebSocketConfig},
};

use app::{
    model::{ConversationId, ConversationSummary, UserView},
    protocol::ServerFrame,
};

/// A simulated person's socket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every simulated person's password.
pub(crate) const PASSWORD: &str = "correct horse battery";
/// Longest wait for one HTTP answer, a connection, or the `ready` frame.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// The server under load.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// Shared by every account: requests carry their own cookie.
    pub(crate) http: reqwest::Client,
    /// `PARLEY_METRICS_TOKEN`, when the server asks for one.
    pub(crate) metrics_token: Option<String>,
}

impl Target {
    pub(crate) fn new(addr: SocketAddr, metrics_token: Option<String>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(ANSWER_WITHIN)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            addr,
            http,
            metrics_token,
        })
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's resident memory, from its `/metrics`.
    pub(crate) async fn resident_bytes(&self) -> Result<u64, String> {
        let metrics = self.metrics().await?;
        metric(&metrics, "process_resident_memory_bytes")
            .map(|bytes| bytes as u64)
            .ok_or_else(|| "/metrics has no process_resident_memory_bytes".to_owned())
    }

    /// How many HTTP requests the server has answered, and how many of those within
    /// `seconds` (a bucket bound of its latency histogram), from its `/metrics`.
    pub(crate) async fn requests_within(&self, seconds: &str) -> Result<(f64, f64), String> {
        let metrics = self.metrics().await?;
        let bucket = format!("parley_http_request_seconds_bucket{{le=\"{seconds}\"}}");
        match (
            metric(&metrics, "parley_http_request_seconds_count"),
            metric(&metrics, &bucket),
        ) {
            (Some(all), Some(within)) => Ok((all, within)),
            _ => Err(format!("/metrics has no {bucket}")),
        }
    }

    /// The server's `/metrics` page.
    async fn metrics(&self) -> Result<String, String> {
        let mut request = self.http.get(format!("{}/metrics", self.origin()));
        if let Some(token) = &self.metrics_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!(
                "/metrics answered {} (set --metrics-token, or run on the server's machine)",
                response.status()
            ));
        }
        response.text().await.map_err(|e| e.to_string())
    }
}

/// The value of the sample `name` (with its labels, if any) in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) user: UserView,
    /// `name=value` of the session cookie.
    cookie: String,
}

impl Account {
    /// Registers `username` (which also signs in).
    pub(crate) async fn sign_up(target: &Target, username: &str) -> Result<Self, String> {
        let response = target
            .http
            .post(format!("{}/api/register", target.origin()))
            .header(header::ORIGIN, target.origin())
            .form(&[
                ("username", username),
                ("display_name", username),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ])
            .send()
            .await
            .map_err(|e| format!("sign up {username}: {e}"))?;
        let cookie = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next())
            .find(|pair| pair.contains("parley_session="))
            .map(str::to_owned);
        let user: UserView = answer(response, "register").await?;
        let cookie = cookie.ok_or_else(|| format!("sign up {username}: no session cookie"))?;
        Ok(Self { user, cookie })
    }

    /// Calls a server function with a form body.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        target: &Target,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<T, String> {
        let response = target
            .http
            .post(format!("{}/api/{endpoint}", target.origin()))
            .header(header::ORIGIN, target.origin())
            .header(header::COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        answer(response, endpoint).await
    }

    /// Fetches `path` as this person's browser would on a first visit (nothing cached, every
    /// compression it knows offered): the status, the encoding, and the body as it came over
    /// the wire (still compressed).
    pub(crate) async fn fetch(
        &self,
        target: &Target,
        path: &str,
    ) -> Result<(StatusCode, Option<String>, Vec<u8>), String> {
        self.fetch_encoded(target, path, "br, gzip").await
    }

    /// `GET path` as [`Self::fetch`] does, accepting only `accept_encoding`.
    pub(crate) async fn fetch_encoded(
        &self,
        target: &Target,
        path: &str,
        accept_encoding: &str,
    ) -> Result<(StatusCode, Option<String>, Vec<u8>), String> {
        let response = target
            .http
            .get(format!("{}{path}", target.origin()))
            .header(header::COOKIE, &self.cookie)
            .header(header::ACCEPT_ENCODING, accept_encoding)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let encoding = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| format!("{path}: {e}"))?;
        Ok((status, encoding, body.to_vec()))
    }

    /// Opens (or finds) the conversation with `other`.
    pub(crate) async fn open_conversation(
        &self,
        target: &Target,
        other: &str,
    ) -> Result<ConversationId, String> {
        let summary: ConversationSummary = self
            .post(target, "open_conversation", &[("username", other)])
            .await?;
        Ok(summary.id)
    }

    /// Opens the WebSocket and waits for `ready`. The buffers are small: thousands of
    /// sockets share this process.
    pub(crate) async fn connect(&self, target: &Target) -> Result<Socket, String> {
        let mut request = format!("ws://{}/ws", target.addr)
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let headers = request.headers_mut();
        headers.insert(
            header::COOKIE,
            self.cookie.parse().map_err(|_| "bad cookie".to_owned())?,
        );
        headers.insert(
            header::ORIGIN,
            target
                .origin()
                .parse()
                .map_err(|_| "bad origin".to_owned())?,
        );
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut socket, _) = tokio::time::timeout(
            ANSWER_WITHIN,
            connect_async_with_config(request, Some(config), true),
        )
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
        match tokio::time::timeout(ANSWER_WITHIN, next_frame(&mut socket)).await {
            Ok(Some(ServerFrame::Ready { .. })) => Ok(socket),
            other => Err(format!("no ready frame: {other:?}")),
        }
    }
}

/// The next frame the server sends, skipping pings.
pub(crate) async fn next_frame(socket: &mut Socket) -> Option<ServerFrame> {
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).ok();
        }
    }
    None
}

async fn answer<T: DeserializeOwned>(
    response: reqwest::Response,
    endpoint: &str,
) -> Result<T, String> {
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{endpoint}: {status}: {body}"));
    }
    response
        .json()
        .await
        .map_err(|e| format!("{endpoint}: {e}"))
}
