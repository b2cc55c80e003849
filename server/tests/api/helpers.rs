//! The test harness: a running Parley ([`TestApp`]), browsers ([`Browser`], each with its own
//! cookie jar) and sockets ([`TestSocket`]).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use reqwest::{
    StatusCode,
    cookie::{CookieStore, Jar},
    header::{HeaderMap, HeaderValue},
};
use sea_orm::{ConnectionTrait, Database};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{self, Message, client::IntoClientRequest},
};

use app::{
    model::{ConversationSummary, HistoryPage, UserView},
    protocol::{ClientFrame, ServerFrame},
};
use server::{config::Config, startup::Application};

/// The password every test user has.
pub(crate) const PASSWORD: &str = "correct horse battery";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TestDb {
    Postgres,
    Sqlite,
}

/// Emits one test per database: `mod name { fn postgres(); fn sqlite(); }`.
macro_rules! for_each_db {
    ($(#[doc = $doc:literal])* async fn $name:ident($app:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn scenario($app: $crate::helpers::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                scenario($crate::helpers::TestApp::spawn($crate::helpers::TestDb::Postgres).await)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                scenario($crate::helpers::TestApp::spawn($crate::helpers::TestDb::Sqlite).await)
                    .await;
            }
        }
    };
}
pub(crate) use for_each_db;

/// A database that exists for one test and is removed after it.
pub(crate) struct Scratch {
    pub(crate) url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
    /// The app's data directory: uploads in progress and stored files.
    pub(crate) files: tempfile::TempDir,
}

fn admin_url() -> String {
    std::env::var("PARLEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl Scratch {
    pub(crate) async fn create(kind: TestDb) -> Self {
        match kind {
            TestDb::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/parley.db?mode=rwc", dir.path().display());
                Self {
                    url,
                    postgres_name: None,
                    _dir: Some(dir),
                    files: tempfile::tempdir().expect("temp dir"),
                }
            }
            TestDb::Postgres => {
                static COUNTER: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "parley_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    chrono::Utc::now().timestamp_micros()
                );
                let admin = Database::connect(admin_url())
                    .await
                    .expect("PostgreSQL should be running (see README: Tests)");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let base = admin_url();
                let server = base.rsplit_once('/').map_or(base.as_str(), |(s, _)| s);
                Self {
                    url: format!("{server}/{name}"),
                    postgres_name: Some(name),
                    _dir: None,
                    files: tempfile::tempdir().expect("temp dir"),
                }
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside async code, so the clean-up gets a small runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A running Parley.
pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) db: TestDb,
    pub(crate) scratch: Arc<Scratch>,
    server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    /// Starts Parley on a random port against a new, empty database.
    pub(crate) async fn spawn(db: TestDb) -> Self {
        let scratch = Arc::new(Scratch::create(db).await);
        Self::start(Config::for_tests(scratch.url.clone()), scratch, db).await
    }

    /// Starts Parley with a configuration of the test's choosing.
    pub(crate) async fn start(mut config: Config, scratch: Arc<Scratch>, db: TestDb) -> Self {
        config.files.data_dir = scratch.files.path().to_owned();
        let app = Application::build(config)
            .await
            .expect("Parley should start");
        let addr = app.local_addr();
        let server = tokio::spawn(async move {
            let _ = app.run_until_stopped(std::future::pending()).await;
        });
        Self {
            addr,
            db,
            scratch,
            server,
        }
    }

    /// Stops this instance and starts a new one on the same database (a server restart).
    pub(crate) async fn restart(self) -> Self {
        self.server.abort();
        while !self.server.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let scratch = self.scratch.clone();
        Self::start(Config::for_tests(scratch.url.clone()), scratch, self.db).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new browser: its own cookie jar, sending this site's `Origin` like a browser would.
    pub(crate) fn browser(&self) -> Browser {
        Browser::new(self.addr, Some(self.url("")))
    }

    /// A new browser that has signed up as `username` (display name: capitalised username).
    pub(crate) async fn user(&self, username: &str) -> (Browser, UserView) {
        let browser = self.browser();
        let mut display: Vec<char> = username.chars().collect();
        if let Some(first) = display.first_mut() {
            *first = first.to_ascii_uppercase();
        }
        let display: String = display.into_iter().collect();
        let response = browser
            .post(
                "register",
                &[
                    ("username", username),
                    ("display_name", &display),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ],
            )
            .await;
        let user = expect_json::<UserView>(response, StatusCode::OK).await;
        (browser, user)
    }

    /// Who a bare `Cookie` header signs in as, asked from a client with no cookie jar: for
    /// replaying a session cookie after logout, a new login or a restart.
    pub(crate) async fn me_with_cookie(&self, cookie: &str) -> Option<UserView> {
        let response = reqwest::Client::new()
            .post(self.url("/api/me"))
            .header("cookie", cookie)
            .header("origin", self.url(""))
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await
    }

    /// What the database holds, in numbers.
    pub(crate) async fn footprint(&self) -> Footprint {
        let db = Database::connect(&self.scratch.url).await.expect("connect");
        let count = |sql: &'static str| {
            let db = db.clone();
            async move {
                let row = db
                    .query_one_raw(sea_orm::Statement::from_string(
                        db.get_database_backend(),
                        sql,
                    ))
                    .await
                    .expect("count")
                    .expect("a row");
                row.try_get_by_index::<i64>(0).expect("a number")
            }
        };
        let footprint = Footprint {
            users: count("SELECT COUNT(*) FROM users").await,
            conversations: count("SELECT COUNT(*) FROM conversations").await,
            participants: count("SELECT COUNT(*) FROM participants").await,
            messages: count("SELECT COUNT(*) FROM messages").await,
            read_positions: count(
                "SELECT CAST(COALESCE(SUM(last_read_seq), 0) AS BIGINT) FROM participants",
            )
            .await,
            sessions: count("SELECT COUNT(*) FROM sessions").await,
            attachments: count("SELECT COUNT(*) FROM attachments").await,
            stored_files: stored_files(self.scratch.files.path()),
        };
        // Closed, not just dropped: a dropped pool's maintenance task can linger and spin.
        db.close().await.expect("close");
        footprint
    }

    /// Asserts that the server still answers: the health check, a signed-in request, a socket.
    pub(crate) async fn assert_serving(&self, user: &Browser) {
        for check in ["/healthz", "/readyz"] {
            let health = reqwest::get(self.url(check)).await.expect("request");
            assert_eq!(health.status(), StatusCode::OK, "{check}");
        }
        assert!(user.me().await.is_some(), "the user is still signed in");
        user.socket().await.assert_alive().await;
    }

    /// Two signed-up users and the conversation between them.
    pub(crate) async fn pair(&self) -> (Browser, UserView, Browser, UserView, ConversationSummary) {
        let (ann, ann_user) = self.user("ann").await;
        let (bob, bob_user) = self.user("bob").await;
        let conversation = ann.open_conversation("bob").await;
        (ann, ann_user, bob, bob_user, conversation)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Row counts (and the sum of read positions): an input that is refused must leave every one
/// of them as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footprint {
    pub(crate) users: i64,
    pub(crate) conversations: i64,
    pub(crate) participants: i64,
    pub(crate) messages: i64,
    pub(crate) read_positions: i64,
    pub(crate) sessions: i64,
    pub(crate) attachments: i64,
    /// Files in the data directory: stored objects and uploads in progress.
    pub(crate) stored_files: usize,
}

/// Counts the files under `dir`, at any depth.
fn stored_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                stored_files(&path)
            } else {
                1
            }
        })
        .sum()
}

/// One browser (or any HTTP client with a cookie jar).
#[derive(Clone)]
pub(crate) struct Browser {
    pub(crate) addr: SocketAddr,
    pub(crate) http: reqwest::Client,
    pub(crate) jar: Arc<Jar>,
    origin: Option<String>,
}

impl Browser {
    pub(crate) fn new(addr: SocketAddr, origin: Option<String>) -> Self {
        let jar = Arc::new(Jar::default());
        let mut headers = HeaderMap::new();
        if let Some(origin) = &origin {
            headers.insert("origin", HeaderValue::from_str(origin).expect("origin"));
        }
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Self {
            addr,
            http,
            jar,
            origin,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The `Cookie` header this browser would send.
    pub(crate) fn cookie_header(&self) -> Option<String> {
        let url = self.url("/").parse().expect("url");
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_owned))
    }

    /// Calls a server function with a form-encoded body.
    pub(crate) async fn post(&self, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/api/{endpoint}")))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post("login", &[("username", username), ("password", password)])
            .await
    }

    pub(crate) async fn logout(&self) {
        let response = self.post("logout", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    pub(crate) async fn me(&self) -> Option<UserView> {
        expect_json(self.post("me", &[]).await, StatusCode::OK).await
    }

    pub(crate) async fn open_conversation(&self, username: &str) -> ConversationSummary {
        expect_json(
            self.post("open_conversation", &[("username", username)])
                .await,
            StatusCode::OK,
        )
        .await
    }

    pub(crate) async fn conversations(&self) -> Vec<ConversationSummary> {
        expect_json(self.post("conversations", &[]).await, StatusCode::OK).await
    }

    pub(crate) async fn search(&self, query: &str) -> Vec<UserView> {
        expect_json(
            self.post("search_users", &[("query", query)]).await,
            StatusCode::OK,
        )
        .await
    }

    /// A history page: the latest, or before/after a sequence number.
    pub(crate) async fn history(
        &self,
        conversation: &ConversationSummary,
        before: Option<i64>,
        after: Option<i64>,
    ) -> HistoryPage {
        let id = conversation.id.to_string();
        let before = before.map(|b| b.to_string());
        let after = after.map(|a| a.to_string());
        let mut form = vec![("conversation_id", id.as_str())];
        if let Some(before) = &before {
            form.push(("before_seq", before));
        }
        if let Some(after) = &after {
            form.push(("after_seq", after));
        }
        expect_json(self.post("history", &form).await, StatusCode::OK).await
    }

    /// Uploads `bytes` as a file called `name` into a conversation.
    pub(crate) async fn upload(
        &self,
        conversation: &ConversationSummary,
        name: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        self.http
            .post(self.url("/files"))
            .query(&[
                ("conversation_id", conversation.id.to_string()),
                ("name", name.to_owned()),
            ])
            .body(bytes)
            .send()
            .await
            .expect("request")
    }

    /// Uploads a file that must be accepted.
    pub(crate) async fn upload_ok(
        &self,
        conversation: &ConversationSummary,
        name: &str,
        bytes: Vec<u8>,
    ) -> app::model::AttachmentView {
        expect_json(
            self.upload(conversation, name, bytes).await,
            StatusCode::CREATED,
        )
        .await
    }

    /// Opens `/ws` with this browser's cookie and origin and waits for `ready`.
    pub(crate) async fn socket(&self) -> TestSocket {
        let mut socket = self.try_socket().await.expect("socket should open");
        match socket.next_frame().await {
            ServerFrame::Ready { .. } => socket,
            other => panic!("expected ready, got {other:?}"),
        }
    }

    /// Opens `/ws`, returning the HTTP error if the upgrade is refused.
    pub(crate) async fn try_socket(&self) -> Result<TestSocket, tungstenite::Error> {
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .expect("request");
        if let Some(cookie) = self.cookie_header() {
            request
                .headers_mut()
                .insert("cookie", HeaderValue::from_str(&cookie).expect("cookie"));
        }
        if let Some(origin) = &self.origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).expect("origin"));
        }
        let (stream, _) = connect_async(request).await?;
        Ok(TestSocket { stream })
    }
}

/// Asserts the status and decodes the JSON body.
pub(crate) async fn expect_json<T: DeserializeOwned>(
    response: reqwest::Response,
    status: StatusCode,
) -> T {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

/// Asserts the status and returns the body as JSON.
pub(crate) async fn expect_error(response: reqwest::Response, status: StatusCode) -> Value {
    expect_json(response, status).await
}

/// A WebSocket connection to Parley.
pub(crate) struct TestSocket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How long a test waits for a frame that should come.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

impl TestSocket {
    pub(crate) async fn send_frame(&mut self, frame: &ClientFrame) {
        let text = serde_json::to_string(frame).expect("encode");
        self.send_text(&text).await;
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// Sends a text frame without caring whether the server is still reading.
    pub(crate) async fn try_send_text(&mut self, text: &str) {
        let _ = self.stream.send(Message::Text(text.into())).await;
    }

    /// Waits for the connection to end; returns the close code if a Close frame came.
    pub(crate) async fn ended(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .expect("the connection should end")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub(crate) async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("send");
    }

    /// Sends a message and returns its ack.
    pub(crate) async fn send_message(
        &mut self,
        conversation: &ConversationSummary,
        client_msg_id: &str,
        body: &str,
    ) -> app::model::MessageView {
        self.send_with_files(conversation, client_msg_id, body, Vec::new())
            .await
            .unwrap_or_else(|(_, message)| panic!("send refused: {message}"))
    }

    /// Sends a message with attachments; returns its ack, or the error frame's code and text.
    pub(crate) async fn send_with_files(
        &mut self,
        conversation: &ConversationSummary,
        client_msg_id: &str,
        body: &str,
        attachment_ids: Vec<app::model::AttachmentId>,
    ) -> Result<app::model::MessageView, (app::protocol::ErrorCode, String)> {
        self.send_frame(&ClientFrame::Send {
            conversation_id: conversation.id,
            client_msg_id: client_msg_id.into(),
            body: body.into(),
            attachment_ids,
            with_card: false,
        })
        .await;
        self.next_matching(|frame| match frame {
            ServerFrame::Ack { message, .. } if message.client_msg_id == client_msg_id => {
                Some(Ok(message))
            }
            ServerFrame::Error {
                client_msg_id: Some(id),
                code,
                message,
                ..
            } if id == client_msg_id => Some(Err((code, message))),
            _ => None,
        })
        .await
    }

    /// The next JSON frame; fails the test after five seconds.
    pub(crate) async fn next_frame(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("socket closed")
                .expect("socket error");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("bad frame ({e}): {text}"));
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next JSON frame, or the close code (if any) when the connection ends instead.
    pub(crate) async fn next_frame_or_close(&mut self) -> Result<ServerFrame, Option<u16>> {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .expect("timed out waiting for a frame or the close");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("bad frame ({e}): {text}")));
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Skips frames until `pick` returns something.
    pub(crate) async fn next_matching<T>(
        &mut self,
        mut pick: impl FnMut(ServerFrame) -> Option<T>,
    ) -> T {
        loop {
            if let Some(found) = pick(self.next_frame().await) {
                return found;
            }
        }
    }

    /// Asserts that no frame other than those `ignore` accepts arrives within `wait`.
    pub(crate) async fn expect_silence(
        &mut self,
        wait: Duration,
        ignore: impl Fn(&ServerFrame) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: ServerFrame = serde_json::from_str(&text).expect("frame");
                    assert!(ignore(&frame), "unexpected frame {frame:?}");
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(other) => panic!("unexpected socket event {other:?}"),
            }
        }
    }

    /// Sends `ping` and waits for `pong`: proves the connection still works.
    pub(crate) async fn assert_alive(&mut self) {
        self.send_frame(&ClientFrame::Ping {}).await;
        self.next_matching(|frame| matches!(frame, ServerFrame::Pong).then_some(()))
            .await;
    }

    /// Closes the connection and waits until the server has seen it go.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.close(None).await;
        while let Ok(Some(_)) = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next()).await {}
    }
}
