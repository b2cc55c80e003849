//! What operators see: Prometheus metrics at `/metrics` (only for whom they are meant) and
//! logs with one line per request and per socket event, as JSON on request, that never hold
//! a password, a message body or a session id.

use std::{sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    helpers::{Browser, PASSWORD, Scratch, TestApp, TestDb, expect_json},
    server_process::{ServerProcess, free_port},
};
use app::model::UserView;
use server::config::Config;

/// The value of an unlabelled sample in a Prometheus text page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// After a message goes from Ann to Bob, `/metrics` (asked from this machine) counts it:
/// stored, delivered, acknowledged and delivered in measured time, with sockets open and the
/// database pool sampled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_messages_and_latencies() {
    let app = TestApp::spawn(TestDb::Postgres).await;
    let (ann, _, bob, _, conversation) = app.pair().await;
    let mut ann_socket = ann.socket().await;
    let mut bob_socket = bob.socket().await;
    ann_socket.send_message(&conversation, "m1", "Hello").await;
    bob_socket
        .next_matching(|frame| match frame {
            app::protocol::ServerFrame::Message { message } => Some(message),
            _ => None,
        })
        .await;

    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    // The recorder is shared by every test in this process: at least, not exactly.
    assert!(
        sample(&page, "parley_websocket_connections").unwrap() >= 2.0,
        "{page}"
    );
    assert!(sample(&page, "parley_messages_persisted_total").unwrap() >= 1.0);
    assert!(sample(&page, "parley_messages_delivered_total").unwrap() >= 1.0);
    assert!(sample(&page, "parley_send_ack_seconds_count").unwrap() >= 1.0);
    assert!(sample(&page, "parley_delivery_seconds_count").unwrap() >= 1.0);
    assert!(sample(&page, "parley_messages_per_commit_count").unwrap() >= 1.0);
    assert!(page.contains("parley_send_ack_seconds_bucket{le=\"0.005\"}"));
    assert!(page.contains("parley_http_requests_total{status=\"2xx\"}"));
    // Both pools on PostgreSQL: the requests' and the message writer's own.
    for pool in ["requests", "writer"] {
        assert!(
            page.contains(&format!(
                "parley_db_pool_connections{{pool=\"{pool}\",state=\"idle\"}}"
            )),
            "{page}"
        );
        assert!(
            sample(
                &page,
                &format!("parley_db_pool_max_connections{{pool=\"{pool}\"}}")
            )
            .unwrap()
                >= 1.0
        );
    }
    assert!(sample(&page, "process_resident_memory_bytes").unwrap() > 1_000_000.0);
}

/// A request that came through a proxy (it names the visitor it is for) gets the same 404 as
/// an unknown page; with `PARLEY_METRICS_TOKEN`, only the bearer of the token is answered.
#[tokio::test]
async fn metrics_are_only_for_this_machine_or_the_token() {
    let app = TestApp::spawn(TestDb::Sqlite).await;
    let client = reqwest::Client::new();
    let forwarded = client
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), StatusCode::NOT_FOUND);

    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.metrics_token = Some("s3cret-scrape-token".into());
    let guarded = TestApp::start(config, scratch, TestDb::Sqlite).await;
    let status = |token: Option<&'static str>| {
        let mut request = client.get(guarded.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(None).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(Some("s3cret-scrape-tokem")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status(Some("s3cret-scrape-token")).await, StatusCode::OK);
}

/// The real binary with `PARLEY_LOG_FORMAT=json`: every line is a JSON object; each request
/// has a line with its method, path, status and time; each socket has an "opened" and a
/// "closed" line naming the user and why it closed; and nothing the users typed or were given
/// (password, message, session cookie) appears anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_a_line_per_request_and_socket_event_and_no_secrets() {
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
        ("PARLEY_LOG_FORMAT".to_owned(), "json".to_owned()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ];
    let server = ServerProcess::start(free_port(), env, dir.path().join("server.log")).await;
    let addr = server.addr();
    let sign_up = |name: &'static str| async move {
        let browser = Browser::new(addr, Some(format!("http://{addr}")));
        let response = browser
            .post(
                "register",
                &[
                    ("username", name),
                    ("display_name", name),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ],
            )
            .await;
        let user = expect_json::<UserView>(response, StatusCode::OK).await;
        (browser, user)
    };
    let (ann, ann_user) = sign_up("ann").await;
    let (_bob, _) = sign_up("bob").await;
    let conversation = ann.open_conversation("bob").await;
    let secret_body = "my card number is 4111 1111 1111 1111";
    let mut socket = ann.socket().await;
    socket.send_message(&conversation, "m1", secret_body).await;
    socket.close().await;
    let cookie = ann.cookie_header().unwrap();
    let session_id = cookie.split_once('=').unwrap().1.to_owned();

    // The "closed" line is written once the server has seen the close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains("socket closed") {
        assert!(tokio::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let request_line = |path: &str| {
        lines.iter().find(|line| {
            line["message"] == "answered"
                && line["span"]["path"] == path
                && line["span"]["method"] == "POST"
        })
    };
    let register = request_line("/api/register").expect("a line for the sign-up");
    assert_eq!(register["status"], 200);
    assert!(register["latency_ms"].as_f64().is_some());
    assert!(request_line("/api/open_conversation").is_some());
    let user = ann_user.id.0.to_string();
    let opened = lines
        .iter()
        .find(|line| line["message"] == "socket opened")
        .expect("an opened line");
    assert_eq!(opened["user"], user.as_str());
    let closed = lines
        .iter()
        .find(|line| line["message"] == "socket closed")
        .expect("a closed line");
    assert_eq!(closed["user"], user.as_str());
    assert_eq!(closed["reason"], "closed by the client");

    for secret in [PASSWORD, secret_body, session_id.as_str()] {
        assert!(!log.contains(secret), "the log holds `{secret}`");
    }
}
