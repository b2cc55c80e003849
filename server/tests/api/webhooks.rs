//! Webhooks from the outside: a receiver on this machine gets each event posted, signed the
//! Standard Webhooks way, retried after failures with the same `webhook-id`, not retried after a
//! refusal, listed as failed and sent again on request, and its endpoint disabled by 410.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use sea_orm::Database;
use serde_json::{Value, json};
use sha2::Sha256;

use app::integration::{
    api_keys,
    webhooks::{self, UrlRules},
};
use server::config::Config;

use crate::{
    helpers::{Scratch, TestApp, TestDb},
    server_process::{ServerProcess, free_port},
};

/// One delivery as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Received {
    fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Whether one of the signatures is `secret`'s, computed here as the Standard Webhooks
    /// specification says (independently of Parley's code).
    fn signed_with(&self, secret: &str) -> bool {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.{}", self.id, self.timestamp, self.body).as_bytes());
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        self.signature.split(' ').any(|s| s == expected)
    }
}

/// A webhook receiver: answers each delivery with the next of its scripted statuses (200 when
/// they run out) and keeps what it got.
#[derive(Clone, Default)]
struct Receiver {
    answers: Arc<Mutex<VecDeque<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(answers: &[u16]) -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, answers)
    }

    /// A receiver on `addr`, which was down until now.
    async fn start_on(addr: std::net::SocketAddr) -> Self {
        Self::serve(tokio::net::TcpListener::bind(addr).await.unwrap(), &[]).0
    }

    fn serve(listener: tokio::net::TcpListener, answers: &[u16]) -> (Self, String) {
        let receiver = Self::default();
        receiver.answers.lock().unwrap().extend(answers);
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (receiver, url)
    }

    fn script(&self, answers: &[u16]) {
        self.answers.lock().unwrap().extend(answers);
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `done` holds of what was received (or fails after ten seconds).
    async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        self.until_within(what, Duration::from_secs(10), done).await
    }

    /// Waits until `done` holds of what was received, at most `within`.
    async fn until_within(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{what}: never came; got {:?}", self.received());
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let answer = receiver.answers.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(answer).unwrap()
}

/// Parley with retries a thousand times faster than in production (30 s becomes 30 ms).
async fn fast_app(db: TestDb) -> TestApp {
    let scratch = Arc::new(Scratch::create(db).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.webhook_retry_scale = 0.001;
    TestApp::start(config, scratch, db).await
}

const DEVELOPMENT: UrlRules = UrlRules {
    https_only: false,
    allow_private: true,
};

/// The marketplace's calls, made with a fresh key.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn new(app: &TestApp) -> Self {
        let db = Database::connect(&app.scratch.url).await.unwrap();
        Self {
            http: reqwest::Client::new(),
            base: app.url("/api/v1"),
            key: api_keys::create(&db, "shop").await.unwrap(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap())
    }

    /// Two people, their conversation and a message: three events.
    async fn chat(&self) {
        for (id, name) in [("u-1", "Ann"), ("u-2", "Bob")] {
            self.call(
                Method::PUT,
                &format!("/users/{id}"),
                Some(json!({"name": name})),
            )
            .await;
        }
        let (_, conversation) = self
            .call(
                Method::POST,
                "/conversations",
                Some(json!({"participants": ["u-1", "u-2"]})),
            )
            .await;
        let path = format!("/conversations/{}/messages", conversation["id"]);
        self.call(
            Method::POST,
            &path,
            Some(json!({"from": "u-1", "body": "Hello"})),
        )
        .await;
    }
}

/// Each event is posted once it is written, signed; a receiver that fails gets the same event
/// (the same `webhook-id`) again until it takes it. Events of one conversation carry
/// increasing `seq`.
async fn events_are_posted_signed_and_retried(db: TestDb) {
    let app = fast_app(db).await;
    let (receiver, url) = Receiver::start(&[500, 503]).await;
    let secret = webhooks::add(
        &Database::connect(&app.scratch.url).await.unwrap(),
        &url,
        "*",
        DEVELOPMENT,
    )
    .await
    .unwrap();
    assert!(secret.starts_with("whsec_"));
    let api = Api::new(&app).await;
    api.chat().await;

    // Both events were refused once (500, then 503: they went out together), then taken:
    // two posts of each, each pair with one webhook-id.
    let received = receiver
        .until("both events, retried", |got| got.len() >= 4)
        .await;
    assert_eq!(received.len(), 4, "{received:?}");
    // Sent concurrently, they may arrive in any order; their `seq` says theirs.
    let first = received
        .iter()
        .find(|r| r.event()["type"] == "conversation.created")
        .unwrap();
    for delivery in &received {
        let same = received.iter().filter(|r| r.id == delivery.id).count();
        assert_eq!(same, 2, "{received:?}");
    }
    for delivery in &received {
        assert!(delivery.signed_with(&secret), "{delivery:?}");
        assert!(delivery.id.starts_with("evt_"));
        let event = delivery.event();
        assert_eq!(event["id"], delivery.id.as_str());
        let age = chrono::Utc::now().timestamp() - delivery.timestamp.parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "{age}");
    }
    let message = received
        .iter()
        .find(|r| r.event()["type"] == "message.created")
        .unwrap()
        .event();
    assert_eq!(message["data"]["message"]["from"], "u-1");
    assert_eq!(message["data"]["message"]["body"], "Hello");
    assert!(message["seq"].as_i64() > first.event()["seq"].as_i64());

    // Nothing is left to send, nothing has failed.
    let (_, failed) = api.call(Method::GET, "/webhooks/deliveries", None).await;
    assert_eq!(failed, json!({"deliveries": []}));
    let (_, delivered) = api
        .call(Method::GET, "/webhooks/deliveries?status=delivered", None)
        .await;
    let delivered = delivered["deliveries"].as_array().unwrap().clone();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert!(
        delivered.iter().all(|d| d["attempts"] == 2),
        "{delivered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_posted_signed_and_retried_postgres() {
    events_are_posted_signed_and_retried(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_posted_signed_and_retried_sqlite() {
    events_are_posted_signed_and_retried(TestDb::Sqlite).await;
}

/// A refusal (400) is not retried and lists the delivery as failed, until the marketplace asks
/// for it again; 410 Gone disables the endpoint. The same on either database: SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_fail_at_once_and_gone_disables_the_endpoint() {
    let app = fast_app(TestDb::Sqlite).await;
    let db = Database::connect(&app.scratch.url).await.unwrap();
    let (receiver, url) = Receiver::start(&[400]).await;
    webhooks::add(&db, &url, "conversation.created", DEVELOPMENT)
        .await
        .unwrap();
    let api = Api::new(&app).await;
    api.chat().await;
    receiver
        .until("the refused delivery", |got| !got.is_empty())
        .await;

    let mut failed = Value::Null;
    for _ in 0..100 {
        failed = api.call(Method::GET, "/webhooks/deliveries", None).await.1;
        if !failed["deliveries"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivery = &failed["deliveries"][0];
    assert_eq!(delivery["status"], "failed", "{failed}");
    assert_eq!(delivery["last_status"], 400);
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["event_type"], "conversation.created");
    // Only the endpoint's type was sent, and only once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);

    let id = delivery["id"].as_i64().unwrap();
    let (status, retried) = api
        .call(
            Method::POST,
            &format!("/webhooks/deliveries/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    receiver
        .until("the retried delivery", |got| got.len() == 2)
        .await;
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/webhooks/deliveries/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no longer failed");
    let (status, _) = api
        .call(Method::GET, "/webhooks/deliveries?status=lost", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Gone: the endpoint is disabled and gets nothing more.
    receiver.script(&[410]);
    let (_, _) = api
        .call(Method::PUT, "/users/u-3", Some(json!({"name": "Carol"})))
        .await;
    api.call(
        Method::POST,
        "/conversations",
        Some(json!({"participants": ["u-1", "u-3"]})),
    )
    .await;
    receiver.until("the 410", |got| got.len() == 3).await;
    let mut disabled = false;
    for _ in 0..100 {
        disabled = webhooks::list(&db).await.unwrap()[0].disabled_at.is_some();
        if disabled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(disabled);
    api.call(
        Method::POST,
        "/conversations",
        Some(json!({"participants": ["u-2", "u-3"]})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3);
}

/// `server webhooks add|list|rotate|remove` against the server's database: the secret alone on
/// the last line, a rotation signing with both secrets, refused URLs and event types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_managed_from_the_command_line() {
    let app = fast_app(TestDb::Sqlite).await;
    let (receiver, url) = Receiver::start(&[]).await;
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
            .arg("webhooks")
            .args(args)
            .env("DATABASE_URL", &app.scratch.url)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, out, err) = run(&["add", "--url", &url, "--events", "conversation.created"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let first = out.lines().last().unwrap().to_owned();
    assert!(first.starts_with("whsec_"), "{out}");
    let (_, out, _) = run(&["list"]);
    assert!(
        out.contains(&url) && out.contains("conversation.created"),
        "{out}"
    );
    assert!(!out.contains(&first), "the secret is never listed");

    let (code, out, _) = run(&["rotate", "--url", &url]);
    assert_eq!(code, Some(0));
    let second = out.lines().last().unwrap().to_owned();
    assert_ne!(first, second);
    let api = Api::new(&app).await;
    api.chat().await;
    let received = receiver.until("a delivery", |got| !got.is_empty()).await;
    assert!(received[0].signed_with(&first) && received[0].signed_with(&second));

    for bad in [
        vec!["add", "--url", "ftp://shop.example/"],
        vec!["add", "--url", &url],
        vec![
            "add",
            "--url",
            "http://127.0.0.1:1/other",
            "--events",
            "message.deleted",
        ],
        vec!["remove", "--url", "http://127.0.0.1:1/nothing"],
    ] {
        let (code, _, err) = run(&bad);
        assert_eq!(code, Some(1), "{bad:?}");
        assert!(err.starts_with("Error: "), "{bad:?}: {err}");
    }
    let (code, _, _) = run(&["remove", "--url", &url]);
    assert_eq!(code, Some(0));
    let (_, out, _) = run(&["list"]);
    assert!(out.starts_with("No webhook endpoints"), "{out}");

    // In production, only https and never a private address.
    let production = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["webhooks", "add", "--url", &url])
        .env("DATABASE_URL", &app.scratch.url)
        .env("PARLEY_MODE", "production")
        .output()
        .unwrap();
    assert_eq!(production.status.code(), Some(1));
}

/// The fault run: the receiver is down while messages are sent, Parley is killed with
/// `kill -9` while their deliveries wait for a retry, and comes back; then the receiver comes
/// back. Every event of the log reaches it (the first retry comes some 30 s after the refused
/// attempt, as in production), none is made up, and any duplicate has its original's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_when_the_receiver_is_down_and_parley_is_killed() {
    let scratch = Scratch::create(TestDb::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("DATABASE_URL".to_owned(), scratch.url.clone()),
        (
            "PARLEY_DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
        (
            "LEPTOS_SITE_ROOT".to_owned(),
            dir.path().join("site").display().to_string(),
        ),
        ("LEPTOS_OUTPUT_NAME".to_owned(), "parley".to_owned()),
    ];
    let mut server = ServerProcess::start(free_port(), env, dir.path().join("server.log")).await;
    let db = Database::connect(&scratch.url).await.unwrap();
    let receiver_addr = free_port();
    webhooks::add(
        &db,
        &format!("http://{receiver_addr}/hook"),
        "*",
        DEVELOPMENT,
    )
    .await
    .unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}/api/v1", server.addr()),
        key: api_keys::create(&db, "shop").await.unwrap(),
    };
    api.chat().await;
    let (_, conversation) = api
        .call(
            Method::POST,
            "/conversations",
            Some(json!({"participants": ["u-1", "u-2"]})),
        )
        .await;
    let path = format!("/conversations/{}/messages", conversation["id"]);
    for n in 0..20 {
        api.call(
            Method::POST,
            &path,
            Some(json!({"from": if n % 2 == 0 { "u-1" } else { "u-2" }, "body": format!("m{n}")})),
        )
        .await;
    }
    let (_, log) = api.call(Method::GET, "/events", None).await;
    let logged: std::collections::BTreeSet<String> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged.len(), 22, "{log}");

    // Every delivery has been tried and refused (nothing listens), then Parley dies.
    for _ in 0..200 {
        let (_, pending) = api
            .call(
                Method::GET,
                "/webhooks/deliveries?status=pending&limit=200",
                None,
            )
            .await;
        let tried = pending["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["attempts"].as_i64() >= Some(1))
            .count();
        if tried == logged.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill_and_restart().await;
    let receiver = Receiver::start_on(receiver_addr).await;

    let received = receiver
        .until_within(
            "every event, after the restart",
            Duration::from_secs(60),
            |got| {
                let ids: std::collections::BTreeSet<String> =
                    got.iter().map(|r| r.id.clone()).collect();
                ids.len() >= logged.len()
            },
        )
        .await;
    let ids: std::collections::BTreeSet<String> = received.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, logged, "exactly the logged events, each at least once");
    for delivery in &received {
        assert_eq!(delivery.event()["id"], delivery.id.as_str());
    }
}
