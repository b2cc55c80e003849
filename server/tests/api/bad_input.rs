//! Bad input of every kind gets a clear error, stores nothing, and leaves the connection and
//! the server running.

use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::helpers::{Browser, PASSWORD, expect_error, for_each_db};
use app::protocol::{ClientFrame, ErrorCode, MAX_FRAME_BYTES, ServerFrame};

fn error_code(frame: ServerFrame) -> Option<ErrorCode> {
    match frame {
        ServerFrame::Error { code, .. } => Some(code),
        _ => None,
    }
}

for_each_db! {
    /// Malformed JSON, unknown frame types, unknown fields, binary and oversized frames each
    /// get an error frame; the socket stays usable throughout.
    async fn malformed_frames_get_error_frames(app) {
        let (ann, _, _bob, _, conversation) = app.pair().await;
        let mut socket = ann.socket().await;
        let cases = [
            ("{not json".to_owned(), ErrorCode::InvalidFrame),
            (r#"{"type":"shout","text":"hi"}"#.to_owned(), ErrorCode::InvalidFrame),
            (r#"{"type":"typing","conversation_id":1,"active":true,"x":1}"#.to_owned(), ErrorCode::InvalidFrame),
            (r#"{"type":"send","conversation_id":"one","client_msg_id":"a","body":"b"}"#.to_owned(), ErrorCode::InvalidFrame),
            (format!(r#"{{"type":"send","conversation_id":{},"client_msg_id":"big","body":"{}"}}"#, conversation.id, "x".repeat(MAX_FRAME_BYTES)), ErrorCode::FrameTooLarge),
        ];
        for (text, expected) in cases {
            socket.send_text(&text).await;
            let code = socket.next_matching(error_code).await;
            assert_eq!(code, expected, "{}", &text[..text.len().min(80)]);
        }
        socket.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
        assert_eq!(socket.next_matching(error_code).await, ErrorCode::InvalidFrame);
        socket
            .send_frame(&ClientFrame::Send {
                conversation_id: conversation.id,
                client_msg_id: "bad id with spaces".into(),
                body: "hi".into(), attachment_ids: Vec::new(), with_card: false,
            })
            .await;
        assert_eq!(socket.next_matching(error_code).await, ErrorCode::InvalidInput);

        socket.assert_alive().await;
        assert!(ann.history(&conversation, None, None).await.messages.is_empty());
    }
}

for_each_db! {
    /// A message over the 1 MiB transport limit ends that connection (with close code 1009
    /// when the close frame gets through); the server and every other connection carry on.
    async fn messages_over_the_transport_limit_end_the_connection(app) {
        let (ann, _, bob, _, _conversation) = app.pair().await;
        let mut oversized = ann.socket().await;
        let mut bystander = bob.socket().await;
        oversized.try_send_text(&"x".repeat(server::ws::TRANSPORT_MAX_BYTES + 1024)).await;
        if let Some(code) = oversized.ended().await {
            assert_eq!(code, 1009);
        }
        bystander.assert_alive().await;
        ann.socket().await.assert_alive().await;
    }
}

for_each_db! {
    /// A third user can't send to, type in, or mark read a conversation they are not part of:
    /// it looks exactly like a conversation that does not exist.
    async fn strangers_get_not_found_on_the_socket(app) {
        let (_ann, _, bob, _, conversation) = app.pair().await;
        let (eve, _) = app.user("eve").await;
        let mut bob_socket = bob.socket().await;
        let mut eve_socket = eve.socket().await;
        for frame in [
            ClientFrame::Send { conversation_id: conversation.id, client_msg_id: "e".into(), body: "hi".into(), attachment_ids: Vec::new(), with_card: false },
            ClientFrame::Typing { conversation_id: conversation.id, active: true },
            ClientFrame::Read { conversation_id: conversation.id, seq: 1 },
            ClientFrame::Delivered { conversation_id: conversation.id, seq: 1 },
            ClientFrame::Send { conversation_id: app::model::ConversationId(424242), client_msg_id: "f".into(), body: "hi".into(), attachment_ids: Vec::new(), with_card: false },
        ] {
            eve_socket.send_frame(&frame).await;
            assert_eq!(eve_socket.next_matching(error_code).await, ErrorCode::NotFound);
        }
        bob_socket.expect_silence(std::time::Duration::from_millis(300), |_| false).await;
        assert!(bob.history(&conversation, None, None).await.messages.is_empty());
    }
}

for_each_db! {
    /// Undecodable or missing arguments are a 400, not a server error; an unknown endpoint is
    /// a 404.
    async fn malformed_server_function_arguments_are_bad_requests(app) {
        let (ann, _) = app.user("ann").await;
        let response = ann.post("history", &[("conversation_id", "not-a-number")]).await;
        let body = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"], "bad_request");
        let response = ann.post("login", &[("username", "ann")]).await;
        expect_error(response, StatusCode::BAD_REQUEST).await;
        let response = ann.post("no_such_function", &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

for_each_db! {
    /// State-changing requests and socket upgrades from another site are refused before they
    /// do anything; the same requests from the site itself work.
    async fn foreign_origins_are_refused(app) {
        let (ann, _) = app.user("ann").await;
        app.user("bob").await;
        let cookie = ann.cookie_header().unwrap();
        let foreign = |path: &str| {
            ann.http
                .post(app.url(path))
                .header("origin", "https://evil.example")
                .header("cookie", cookie.clone())
        };

        let response = foreign("/api/open_conversation").form(&[("username", "bob")]).send().await.unwrap();
        let body = expect_error(response, StatusCode::FORBIDDEN).await;
        assert_eq!(body["error"], "cross_origin");
        let response = foreign("/api/logout").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(ann.me().await.is_some(), "a cross-site logout must not sign the user out");
        assert!(ann.conversations().await.is_empty(), "nothing was created");

        let cross_site = ann
            .http
            .post(app.url("/api/register"))
            .header("sec-fetch-site", "cross-site")
            .form(&[("username", "mallory"), ("display_name", "M"), ("password", PASSWORD), ("password_confirm", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            app.browser().login("mallory", PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED,
            "the account was not created"
        );

        // Without Origin, a foreign Referer is refused.
        let referred = reqwest::Client::new()
            .post(app.url("/api/logout"))
            .header("cookie", cookie.clone())
            .header("referer", "https://evil.example/attack.html")
            .send()
            .await
            .unwrap();
        assert_eq!(referred.status(), StatusCode::FORBIDDEN);

        // A cookie with no Origin, Sec-Fetch-Site or Referer is refused too.
        let bare = reqwest::Client::new()
            .post(app.url("/api/logout"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), StatusCode::FORBIDDEN);

        // Cross-site WebSocket hijacking.
        let evil = Browser::new(app.addr, Some("https://evil.example".into()));
        evil.jar.add_cookie_str(
            &ann.cookie_header().unwrap(),
            &app.url("/").parse().unwrap(),
        );
        match evil.try_socket().await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a foreign origin opened a socket"),
        }
        ann.socket().await.assert_alive().await;
    }
}

for_each_db! {
    /// Pages that don't exist are a 404 page, and the health check reports the database.
    async fn unknown_pages_and_health(app) {
        let (ann, _) = app.user("ann").await;
        let response = ann.get("/no/such/page").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = ann.get("/healthz").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "ok");
    }
}
