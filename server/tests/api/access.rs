//! Access control, walked endpoint by endpoint and frame by frame: as an anonymous client, and
//! as a third user who is signed in but not part of the conversation. Whatever a requester may
//! not see looks exactly like something that does not exist.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite;

use crate::helpers::{Browser, PASSWORD, expect_error, for_each_db};
use app::{
    model::ConversationId,
    protocol::{ClientFrame, ServerFrame},
};

/// Server functions anyone may call: signing up and in, signing out, and asking who one is.
const PUBLIC: [&str; 4] = ["/api/register", "/api/login", "/api/logout", "/api/me"];

/// Calls the server function at `path` with arguments that would be valid for a member.
async fn call(browser: &Browser, path: &str, conversation: ConversationId) -> reqwest::Response {
    let id = conversation.to_string();
    let fields: Vec<(&str, &str)> = match path.trim_start_matches("/api/") {
        "register" => vec![
            ("username", "walker"),
            ("display_name", "Walker"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
        "login" => vec![("username", "ann"), ("password", "wrong password")],
        "change_password" => vec![
            ("current_password", PASSWORD),
            ("new_password", "another good passphrase"),
            ("new_password_confirm", "another good passphrase"),
        ],
        "search_users" => vec![("query", "ann")],
        "open_conversation" => vec![("username", "ann")],
        "history" | "drop_waiting_card" => vec![("conversation_id", id.as_str())],
        "update_settings" => vec![("read_receipts", "false")],
        _ => vec![],
    };
    browser
        .post(path.trim_start_matches("/api/"), &fields)
        .await
}

for_each_db! {
    /// An anonymous client gets 401 from every server function that is not public, is sent to
    /// the login page by every chat page, and can't open a socket.
    async fn anonymous_clients_reach_nothing_private(app) {
        let (_ann, _, _bob, _, conversation) = app.pair().await;
        let anonymous = app.browser();
        let before = app.footprint().await;
        let paths: Vec<&str> = app::api::strict::known_paths().collect();
        assert!(paths.len() >= 9, "{paths:?}");
        for path in paths.iter().filter(|path| !PUBLIC.contains(path)) {
            let response = call(&anonymous, path, conversation.id).await;
            let body = expect_error(response, StatusCode::UNAUTHORIZED).await;
            assert_eq!(body["error"], "unauthorized", "{path}");
        }
        assert_eq!(app.footprint().await, before);
        assert_eq!(anonymous.me().await, None);

        for page in ["/chat", "/chat/@bob", "/settings"] {
            let response = anonymous.get(page).await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
            let location = response.headers()["location"].to_str().unwrap();
            assert!(location.starts_with("/login?next="), "{page}: {location}");
        }
        match anonymous.try_socket().await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("an anonymous socket was accepted"),
        }
    }
}

/// The body of a refusal, for comparing two of them.
async fn refusal(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

for_each_db! {
    /// Eve, signed in but not part of Ann and Bob's conversation, can neither read it, nor
    /// write to it, nor learn that it exists: every answer is the one for a conversation that
    /// does not exist. She receives none of its live events.
    async fn a_third_user_cannot_see_or_touch_a_conversation(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let mut bob_socket = bob.socket().await;
        ann_socket.send_message(&conversation, "m1", "a private message").await;
        let (eve, eve_user) = app.user("eve").await;
        let mut eve_socket = eve.socket().await;
        let missing = ConversationId(conversation.id.0 + 1_000_000);

        // History, every way of paging it.
        let before = app.footprint().await;
        for (extra, value) in [("", ""), ("before_seq", "2"), ("after_seq", "0")] {
            let query = |id: ConversationId| {
                let id = id.to_string();
                let mut fields = vec![("conversation_id".to_owned(), id)];
                if !extra.is_empty() {
                    fields.push((extra.to_owned(), value.to_owned()));
                }
                eve.http.post(eve.url("/api/history")).form(&fields).send()
            };
            let theirs = refusal(query(conversation.id).await.unwrap()).await;
            let nowhere = refusal(query(missing).await.unwrap()).await;
            assert_eq!(theirs.0, StatusCode::NOT_FOUND, "{extra}");
            assert_eq!(theirs, nowhere, "{extra}: a stranger's conversation must look missing");
        }

        // Her conversation list and her search show only what is hers to see.
        assert!(eve.conversations().await.is_empty());
        let found = eve.search("ann").await;
        let json = serde_json::to_value(&found).unwrap();
        for user in json.as_array().unwrap() {
            let mut keys: Vec<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["display_name", "id", "username"], "only public fields");
        }

        // Every frame that names a conversation.
        let frames = |id: ConversationId| {
            [
                ClientFrame::Send { conversation_id: id, client_msg_id: "e1".into(), body: "hi".into(), attachment_ids: Vec::new(), with_card: false },
                ClientFrame::Typing { conversation_id: id, active: true },
                ClientFrame::Read { conversation_id: id, seq: 1 },
                ClientFrame::Delivered { conversation_id: id, seq: 1 },
            ]
        };
        for (theirs, nowhere) in frames(conversation.id).into_iter().zip(frames(missing)) {
            eve_socket.send_frame(&theirs).await;
            let refused = eve_socket.next_frame().await;
            eve_socket.send_frame(&nowhere).await;
            let missing_answer = eve_socket.next_frame().await;
            assert!(matches!(refused, ServerFrame::Error { .. }), "{refused:?}");
            assert_eq!(refused, missing_answer, "{theirs:?}");
        }
        assert_eq!(app.footprint().await, before, "nothing was stored");
        assert_eq!(ann.history(&conversation, None, None).await.messages.len(), 1);

        // Ann and Bob's live traffic never reaches her.
        ann_socket.send_message(&conversation, "m2", "still private").await;
        ann_socket.send_frame(&ClientFrame::Typing { conversation_id: conversation.id, active: true }).await;
        bob_socket
            .next_matching(|f| matches!(f, ServerFrame::Typing { .. }).then_some(()))
            .await;
        eve_socket.expect_silence(Duration::from_millis(300), |_| false).await;

        // Opening a conversation with Ann gives Eve her own, never theirs.
        let own = eve.open_conversation("ann").await;
        assert_ne!(own.id, conversation.id);
        assert_eq!(Some(own.other.clone()), ann.me().await);
        assert!(eve.history(&own, None, None).await.messages.is_empty());
        assert_eq!(eve.me().await, Some(eve_user));
    }
}
