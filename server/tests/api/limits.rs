//! Rate limits: sign-in per address and per username, sign-up per address, messages and typing
//! per connection. Over a limit: 429 with `Retry-After` (or a `rate_limited` error frame),
//! nothing done, and everyone else unaffected.

use std::{num::NonZeroU32, sync::Arc};

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, Scratch, TestApp, TestDb, expect_error};
use app::{
    limits::Limits,
    protocol::{ClientFrame, ErrorCode, ServerFrame},
};
use server::config::Config;

/// An app whose every limit is `n`, behind a trusted proxy on 127.0.0.1 so that tests can
/// speak for several client addresses with `X-Forwarded-For`.
async fn limited_app(db: TestDb, n: u32) -> TestApp {
    let scratch = Arc::new(Scratch::create(db).await);
    let mut config = Config::for_tests(scratch.url.clone());
    let n = NonZeroU32::new(n).unwrap();
    config.limits = Limits {
        logins_per_minute: n,
        registrations_per_hour: n,
        messages_per_minute: n,
        typing_per_minute: n,
        uploads_per_minute: n,
        receipts_per_minute: n,
    };
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    TestApp::start(config, scratch, db).await
}

async fn login_from(
    app: &TestApp,
    address: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    app.browser()
        .http
        .post(app.url("/api/login"))
        .header("origin", app.url(""))
        .header("x-forwarded-for", address)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// Asserts a 429 whose body and `Retry-After` header agree on a wait of 1 to 60 seconds.
async fn assert_rate_limited(response: reqwest::Response) {
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = expect_error(response, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["error"], "rate_limited");
    let seconds = body["detail"]["retry_after_secs"].as_u64().unwrap();
    assert!((1..=60).contains(&seconds), "{body}");
    assert_eq!(retry_after, Some(seconds.to_string()));
}

async fn sign_in_limits(db: TestDb) {
    let app = limited_app(db, 3).await;
    app.user("ann").await;
    app.user("bob").await;

    // Three wrong guesses from one address (two for Ann, one for Bob) use up its budget...
    for username in ["ann", "ann", "bob"] {
        let response = login_from(&app, "203.0.113.1", username, "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // ...after which even the right password is refused there, for any account.
    for username in ["ann", "bob"] {
        let response = login_from(&app, "203.0.113.1", username, PASSWORD).await;
        assert_rate_limited(response).await;
    }
    // Ann's username has one attempt left; another address spends it, then Ann is protected
    // from every address.
    assert_eq!(
        login_from(&app, "198.51.100.2", "ann", "guess")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&app, "198.51.100.3", "ANN", PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Everyone else is unaffected.
    assert_eq!(
        login_from(&app, "198.51.100.4", "bob", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.browser().get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_limited_per_address_and_per_username_postgres() {
    sign_in_limits(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_limited_per_address_and_per_username_sqlite() {
    sign_in_limits(TestDb::Sqlite).await;
}

async fn sign_up_limits(db: TestDb) {
    let app = limited_app(db, 2).await;
    let register = |address: &'static str, username: &'static str| {
        let app = &app;
        async move {
            app.browser()
                .http
                .post(app.url("/api/register"))
                .header("origin", app.url(""))
                .header("x-forwarded-for", address)
                .form(&[
                    ("username", username),
                    ("display_name", "Someone"),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        register("203.0.113.1", "one").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        register("203.0.113.1", "two").await.status(),
        StatusCode::OK
    );
    let refused = register("203.0.113.1", "three").await;
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    // Nothing was created for the refused one.
    assert_eq!(
        login_from(&app, "192.0.2.1", "three", PASSWORD)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        register("203.0.113.2", "four").await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_is_limited_per_address_postgres() {
    sign_up_limits(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_is_limited_per_address_sqlite() {
    sign_up_limits(TestDb::Sqlite).await;
}

async fn socket_limits(db: TestDb) {
    let app = limited_app(db, 5).await;
    let (ann, _, bob, _, conversation) = app.pair().await;
    let mut socket = ann.socket().await;
    for i in 0..5 {
        socket
            .send_message(&conversation, &format!("ok-{i}"), "hi")
            .await;
    }
    socket
        .send_frame(&ClientFrame::Send {
            conversation_id: conversation.id,
            client_msg_id: "too-many".into(),
            body: "one too many".into(),
            attachment_ids: Vec::new(),
        })
        .await;
    let refusal = socket
        .next_matching(|frame| match frame {
            ServerFrame::Error {
                code,
                client_msg_id,
                retry_after_ms,
                ..
            } => Some((code, client_msg_id, retry_after_ms)),
            _ => None,
        })
        .await;
    assert_eq!(refusal.0, ErrorCode::RateLimited);
    assert_eq!(refusal.1.as_deref(), Some("too-many"));
    assert!(
        refusal.2.is_some_and(|ms| (1..=12_000).contains(&ms)),
        "{refusal:?}"
    );
    assert_eq!(
        bob.history(&conversation, None, None).await.messages.len(),
        5,
        "nothing stored"
    );

    // Typing has its own budget.
    for _ in 0..5 {
        socket
            .send_frame(&ClientFrame::Typing {
                conversation_id: conversation.id,
                active: true,
            })
            .await;
    }
    socket
        .send_frame(&ClientFrame::Typing {
            conversation_id: conversation.id,
            active: true,
        })
        .await;
    let code = socket
        .next_matching(|frame| match frame {
            ServerFrame::Error { code, .. } => Some(code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::RateLimited);

    // So do receipts (delivered and read together); one over is refused and changes nothing.
    let mut bob_socket = bob.socket().await;
    for seq in 1..=5 {
        bob_socket
            .send_frame(&ClientFrame::Delivered {
                conversation_id: conversation.id,
                seq,
            })
            .await;
    }
    bob_socket
        .send_frame(&ClientFrame::Read {
            conversation_id: conversation.id,
            seq: 5,
        })
        .await;
    let code = bob_socket
        .next_matching(|frame| match frame {
            ServerFrame::Error { code, .. } => Some(code),
            _ => None,
        })
        .await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert_eq!(
        ann.conversations().await[0].other_read_seq,
        Some(0),
        "not read"
    );
    assert_eq!(ann.conversations().await[0].other_delivered_seq, 5);

    // The connection stays open, and another connection (or user) is unaffected.
    socket.assert_alive().await;
    let mut other = bob.socket().await;
    other
        .send_message(&conversation, "bob-1", "still fine")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_traffic_is_limited_per_connection_postgres() {
    socket_limits(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_traffic_is_limited_per_connection_sqlite() {
    socket_limits(TestDb::Sqlite).await;
}

async fn upload_limits(db: TestDb) {
    let app = limited_app(db, 3).await;
    let (ann, _, bob, _, conversation) = app.pair().await;
    for n in 0..3 {
        ann.upload_ok(&conversation, &format!("{n}.txt"), b"x".to_vec())
            .await;
    }
    let before = app.footprint().await;
    let response = ann.upload(&conversation, "3.txt", b"x".to_vec()).await;
    assert_rate_limited(response).await;
    assert_eq!(app.footprint().await, before, "nothing was kept");
    // Bob has his own budget.
    bob.upload_ok(&conversation, "bob.txt", b"x".to_vec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_limited_per_user_postgres() {
    upload_limits(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_limited_per_user_sqlite() {
    upload_limits(TestDb::Sqlite).await;
}

async fn password_change_limits(db: TestDb) {
    let app = limited_app(db, 3).await;
    let (ann, _) = app.user("ann").await;
    let attempt = |current: &'static str| {
        let ann = ann.clone();
        async move {
            ann.post(
                "change_password",
                &[
                    ("current_password", current),
                    ("new_password", "a much better passphrase"),
                    ("new_password_confirm", "a much better passphrase"),
                ],
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("a guess").await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let response = attempt(PASSWORD).await;
    assert_rate_limited(response).await;
    // The budget is the username's, shared with signing in.
    assert_eq!(
        login_from(&app, "198.51.100.9", "ann", PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(ann.me().await.map(|u| u.username).as_deref(), Some("ann"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_changes_count_as_sign_in_attempts_postgres() {
    password_change_limits(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_changes_count_as_sign_in_attempts_sqlite() {
    password_change_limits(TestDb::Sqlite).await;
}
