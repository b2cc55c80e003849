//! History pages: the latest 50, older pages by keyset, catching up after a sequence number,
//! and everything still there after signing out and in.

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, expect_error, for_each_db};

for_each_db! {
    /// 120 messages come back as pages of 50, 50 and 20, in order, each message exactly once.
    async fn history_pages_cover_everything_once(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let mut bob_socket = bob.socket().await;
        for i in 1..=120 {
            let socket = if i % 3 == 0 { &mut bob_socket } else { &mut ann_socket };
            socket.send_message(&conversation, &format!("m{i}"), &format!("message {i}")).await;
        }

        let latest = bob.history(&conversation, None, None).await;
        assert_eq!(latest.messages.len(), 50);
        assert!(latest.has_more);
        assert_eq!(latest.messages.first().unwrap().seq, 71);
        assert_eq!(latest.messages.last().unwrap().body, "message 120");

        let middle = bob.history(&conversation, Some(71), None).await;
        assert_eq!(middle.messages.len(), 50);
        assert!(middle.has_more);
        let oldest = bob.history(&conversation, Some(middle.messages[0].seq), None).await;
        assert_eq!(oldest.messages.len(), 20);
        assert!(!oldest.has_more);

        let all: Vec<_> = oldest.messages.iter()
            .chain(&middle.messages)
            .chain(&latest.messages)
            .collect();
        let seqs: Vec<i64> = all.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=120).collect::<Vec<_>>());
        for pair in all.windows(2) {
            assert!(
                (pair[0].created_at, pair[0].id) < (pair[1].created_at, pair[1].id),
                "history must be in (server time, id) order"
            );
        }
        for (i, message) in all.iter().enumerate() {
            assert_eq!(message.body, format!("message {}", i + 1));
            let expected_sender = if (i + 1) % 3 == 0 { "bob" } else { "ann" };
            assert_eq!(message.sender.username, expected_sender);
        }

        // Catching up: everything after 115.
        let missed = bob.history(&conversation, None, Some(115)).await;
        let seqs: Vec<i64> = missed.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [116, 117, 118, 119, 120]);
        assert!(!missed.has_more);
    }
}

for_each_db! {
    /// After signing out and in again, or from another browser, the history is all there.
    async fn history_survives_logging_out_and_in(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let mut socket = ann.socket().await;
        let sent = socket.send_message(&conversation, "x1", "Your order has shipped.").await;
        socket.close().await;
        ann.logout().await;
        let response = ann.post("history", &[("conversation_id", &conversation.id.to_string())]).await;
        expect_error(response, StatusCode::UNAUTHORIZED).await;

        ann.login("ann", PASSWORD).await;
        let page = ann.history(&conversation, None, None).await;
        assert_eq!(page.messages, vec![sent.clone()]);

        let elsewhere = app.browser();
        elsewhere.login("bob", PASSWORD).await;
        assert_eq!(elsewhere.history(&conversation, None, None).await.messages, vec![sent]);
        drop(bob);
    }
}

for_each_db! {
    /// `before_seq` and `after_seq` together make no sense and are refused.
    async fn history_takes_one_direction(app) {
        let (ann, _, _bob, _, conversation) = app.pair().await;
        let id = conversation.id.to_string();
        let response = ann
            .post("history", &[("conversation_id", &id), ("before_seq", "5"), ("after_seq", "1")])
            .await;
        let body = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"], "bad_request");
    }
}
