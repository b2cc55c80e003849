//! Rate limits: sign-in per username and address (and per address), sign-up per address,
//! messages per user, typing and receipts per connection, sockets per user, and misbehaving
//! connections closed. Over a limit: 429 with `Retry-After` (or a `rate_limited` error frame),
//! nothing done, and everyone else unaffected.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

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
        api_requests_per_minute: n,
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

    // Three wrong guesses for Ann from one address use up that pair's budget...
    for _ in 0..3 {
        let response = login_from(&app, "203.0.113.1", "ann", "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // ...after which even the right password is refused there, for Ann (in any case)...
    assert_rate_limited(login_from(&app, "203.0.113.1", "ANN", PASSWORD).await).await;
    // ...but not for Bob from the same address, nor for Ann from her own: a stranger can't
    // lock a seller out.
    assert_eq!(
        login_from(&app, "203.0.113.1", "bob", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        login_from(&app, "198.51.100.7", "ann", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );

    // A correct sign-in gives the pair its whole budget back: two mistakes, a success, then
    // three more mistakes are still answered, and only the next is refused.
    for _ in 0..2 {
        let response = login_from(&app, "198.51.100.8", "ann", "typo").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_from(&app, "198.51.100.8", "ann", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    for _ in 0..3 {
        let response = login_from(&app, "198.51.100.8", "ann", "typo").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_rate_limited(login_from(&app, "198.51.100.8", "ann", "typo").await).await;
    assert_eq!(app.browser().get("/healthz").await.status(), StatusCode::OK);

    // One address has a budget of its own, five pairs' worth: trying many usernames from it
    // runs out.
    let app = limited_app(db, 1).await;
    app.user("carol").await;
    for username in ["u1", "u2", "u3", "u4", "u5"] {
        let response = login_from(&app, "192.0.2.50", username, "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{username}");
    }
    assert_rate_limited(login_from(&app, "192.0.2.50", "u6", "guess").await).await;
    // A username tried from everywhere at once goes no faster than ten pairs' worth a minute:
    // past that, strangers are refused, but its owner, from the address they sign in from,
    // is never held up.
    assert_eq!(
        login_from(&app, "192.0.2.200", "carol", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    for last in 1..=9 {
        let response = login_from(&app, &format!("192.0.2.{last}"), "carol", "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_rate_limited(login_from(&app, "192.0.2.10", "carol", "guess").await).await;
    assert_rate_limited(login_from(&app, "192.0.2.99", "carol", PASSWORD).await).await;
    assert_eq!(
        login_from(&app, "192.0.2.200", "carol", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
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
            with_card: false,
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

    // Typing has its own budget; signals over it are dropped without an answer, and Bob hears
    // of the typing once, not once per signal.
    let mut bob_socket = bob.socket().await;
    for _ in 0..6 {
        socket
            .send_frame(&ClientFrame::Typing {
                conversation_id: conversation.id,
                active: true,
            })
            .await;
    }
    socket
        .expect_silence(Duration::from_millis(300), |frame| {
            matches!(frame, ServerFrame::Presence { .. })
        })
        .await;
    let relayed = bob_socket
        .next_matching(|frame| match frame {
            ServerFrame::Typing { active, .. } => Some(active),
            _ => None,
        })
        .await;
    assert!(relayed);
    bob_socket
        .expect_silence(Duration::from_millis(300), |frame| {
            matches!(frame, ServerFrame::Presence { .. })
        })
        .await;

    // So do receipts (delivered and read together); one over is refused and changes nothing.
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

    // The connection stays open. The message budget is Ann's, not her connection's: another
    // socket of hers is refused too, while Bob is unaffected.
    socket.assert_alive().await;
    let mut second = ann.socket().await;
    let refused = second
        .send_with_files(&conversation, "second-socket", "me again", Vec::new())
        .await
        .unwrap_err();
    assert_eq!(refused.0, ErrorCode::RateLimited);
    let mut other = bob.socket().await;
    other
        .send_message(&conversation, "bob-1", "still fine")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_traffic_is_limited_per_user_and_connection_postgres() {
    socket_limits(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_traffic_is_limited_per_user_and_connection_sqlite() {
    socket_limits(TestDb::Sqlite).await;
}

/// A socket that sends a burst of invalid frames gets an error frame for each of the first
/// ten, then is closed with 1008; so is one that goes on sending over its message limit.
async fn misbehaviour(db: TestDb) {
    let app = limited_app(db, 5).await;
    let (ann, _, _, _, conversation) = app.pair().await;
    let mut socket = ann.socket().await;
    for _ in 0..25 {
        socket.try_send_text("not a frame").await;
    }
    let mut errors = 0;
    let code = loop {
        match socket.next_frame_or_close().await {
            Ok(ServerFrame::Error { code, .. }) => {
                assert_eq!(code, ErrorCode::InvalidFrame);
                errors += 1;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(code) => break code,
        }
    };
    assert_eq!(code, Some(1008), "closed as a policy violation");
    assert!((10..=12).contains(&errors), "{errors} error frames");

    // A flood of sends: five stored, the rest refused, then the socket is closed.
    let mut socket = ann.socket().await;
    for i in 0..40 {
        let frame = ClientFrame::Send {
            conversation_id: conversation.id,
            client_msg_id: format!("flood-{i}"),
            body: "spam".into(),
            attachment_ids: Vec::new(),
            with_card: false,
        };
        socket
            .try_send_text(&serde_json::to_string(&frame).unwrap())
            .await;
    }
    let (mut acks, mut refusals) = (0, 0);
    let code = loop {
        match socket.next_frame_or_close().await {
            Ok(ServerFrame::Ack { .. }) => acks += 1,
            Ok(ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => refusals += 1,
            Ok(ServerFrame::Message { .. } | ServerFrame::Presence { .. }) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(code) => break code,
        }
    };
    assert_eq!(code, Some(1008));
    assert_eq!(acks, 5);
    assert!((20..40).contains(&refusals), "{refusals} refusals");
    // Reconnecting is allowed (the browser's backoff decides when).
    ann.socket().await.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_sockets_are_closed_postgres() {
    misbehaviour(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_sockets_are_closed_sqlite() {
    misbehaviour(TestDb::Sqlite).await;
}

/// A hundred typing signals in a burst, from two of Ann's sockets, reach Bob once; her last
/// word, a stop, reaches him when the throttle interval ends. The rest are dropped silently.
async fn typing_throttle(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (ann, _, bob, _, conversation) = app.pair().await;
    let mut one = ann.socket().await;
    let mut two = ann.socket().await;
    let mut bob_socket = bob.socket().await;
    let started = tokio::time::Instant::now();
    for i in 0..100 {
        let socket = if i % 3 == 0 { &mut two } else { &mut one };
        socket
            .send_frame(&ClientFrame::Typing {
                conversation_id: conversation.id,
                active: i % 2 == 0,
            })
            .await;
    }
    // Each socket handles its frames in order: once both have answered a ping, the burst is
    // through, and a last stop settles which word is last.
    one.assert_alive().await;
    two.assert_alive().await;
    one.send_frame(&ClientFrame::Typing {
        conversation_id: conversation.id,
        active: false,
    })
    .await;
    let mut relayed = Vec::new();
    let deadline = started + Duration::from_secs(3);
    while let Ok(frame) = tokio::time::timeout_at(deadline, bob_socket.next_frame()).await {
        if let ServerFrame::Typing { active, .. } = frame {
            relayed.push(active);
        }
    }
    assert_eq!(
        relayed,
        [true, false],
        "one start, and the stop once the interval ended"
    );
    for socket in [&mut one, &mut two] {
        socket
            .expect_silence(Duration::from_millis(100), |frame| {
                matches!(frame, ServerFrame::Presence { .. })
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_relayed_once_per_interval_postgres() {
    typing_throttle(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_relayed_once_per_interval_sqlite() {
    typing_throttle(TestDb::Sqlite).await;
}

/// One user keeps at most `PARLEY_SOCKETS_PER_USER` sockets: the next closes their oldest with
/// `CLOSE_DISPLACED`; the others, and other people's, carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_per_user_are_capped() {
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.sockets_per_user = 2;
    let app = TestApp::start(config, scratch, TestDb::Sqlite).await;
    let (ann, _) = app.user("ann").await;
    let (bob, _) = app.user("bob").await;
    let mut oldest = ann.socket().await;
    let mut second = ann.socket().await;
    let mut bobs = bob.socket().await;
    let mut third = ann.socket().await;
    assert_eq!(oldest.ended().await, Some(app::protocol::CLOSE_DISPLACED));
    second.assert_alive().await;
    third.assert_alive().await;
    bobs.assert_alive().await;
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
    // The budget is the pair's (Ann's username from this address), shared with signing in;
    // from elsewhere Ann still signs in.
    assert_eq!(
        login_from(&app, "127.0.0.1", "ann", PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&app, "198.51.100.9", "ann", PASSWORD)
            .await
            .status(),
        StatusCode::OK
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
