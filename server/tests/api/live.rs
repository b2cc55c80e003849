//! The WebSocket: live delivery, acknowledgements, idempotent sends, several tabs, typing
//! signals, and catching up after a disconnection.

use std::time::Duration;

use crate::helpers::for_each_db;
use app::{
    model::MESSAGE_MAX_CHARS,
    protocol::{ClientFrame, ErrorCode, ServerFrame},
};

for_each_db! {
    /// A sent message is acknowledged to its sender and appears at once in every open socket
    /// of both participants: the recipient's and the sender's other tab. The socket it was
    /// sent on has it in its ack, and gets no second copy.
    async fn messages_reach_both_sides_live(app) {
        let (ann, ann_user, bob, _, conversation) = app.pair().await;
        let mut bob_socket = bob.socket().await;
        let mut ann_tab_one = ann.socket().await;
        let mut ann_tab_two = ann.socket().await;

        let started = std::time::Instant::now();
        let acked = ann_tab_one
            .send_message(&conversation, "first", "  Hello Bob!\r\nIs it available?  ")
            .await;
        assert_eq!(acked.body, "Hello Bob!\nIs it available?", "trimmed, newlines normalised");
        let composed = ann_tab_one.send_message(&conversation, "nfc", "Cafe\u{301}").await;
        assert_eq!(composed.body, "Caf\u{e9}", "stored in NFC");
        assert_eq!(acked.sender, ann_user);
        assert_eq!(acked.seq, 1);
        assert_eq!(acked.conversation_id, conversation.id);

        let received = bob_socket
            .next_matching(|frame| match frame {
                ServerFrame::Message { message } => Some(message),
                _ => None,
            })
            .await;
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        assert_eq!(received, acked);
        let other_tab = ann_tab_two
            .next_matching(|frame| match frame {
                ServerFrame::Message { message } => Some(message),
                _ => None,
            })
            .await;
        assert_eq!(other_tab, acked);
        ann_tab_one
            .expect_silence(Duration::from_millis(300), |frame| {
                !matches!(frame, ServerFrame::Message { .. })
            })
            .await;
        let age = chrono::Utc::now() - acked.created_at;
        assert!(age.num_seconds().abs() < 5, "created_at is server time");
    }
}

for_each_db! {
    /// Sending the same client_msg_id again stores nothing new and returns the same message.
    async fn resending_a_message_is_idempotent(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let first = ann_socket.send_message(&conversation, "retry-1", "Only once").await;
        let second = ann_socket.send_message(&conversation, "retry-1", "Only once").await;
        assert_eq!(first, second);
        // Also from another connection, as after a reconnect.
        let mut reconnected = ann.socket().await;
        let third = reconnected.send_message(&conversation, "retry-1", "Only once").await;
        assert_eq!(first, third);

        let page = bob.history(&conversation, None, None).await;
        assert_eq!(page.messages.len(), 1);

        // The same id can't be reused for another conversation.
        app.user("carol").await;
        let other = ann.open_conversation("carol").await;
        ann_socket
            .send_frame(&ClientFrame::Send {
                conversation_id: other.id,
                client_msg_id: "retry-1".into(),
                body: "x".into(), attachment_ids: Vec::new(), with_card: false,
            })
            .await;
        let code = ann_socket
            .next_matching(|frame| match frame {
                ServerFrame::Error { code, .. } => Some(code),
                _ => None,
            })
            .await;
        assert_eq!(code, ErrorCode::InvalidInput);
    }
}

for_each_db! {
    /// Concurrent sends from both sides get gapless, unique sequence numbers.
    async fn concurrent_sends_get_gapless_sequence_numbers(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let mut tasks = Vec::new();
        for (browser, name) in [(ann.clone(), "ann"), (bob.clone(), "bob")] {
            let conversation = conversation.clone();
            tasks.push(tokio::spawn(async move {
                let mut socket = browser.socket().await;
                for i in 0..15 {
                    socket.send_message(&conversation, &format!("{name}-{i}"), "hi").await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let page = ann.history(&conversation, None, None).await;
        let seqs: Vec<i64> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
    }
}

for_each_db! {
    /// Empty, blank and over-long messages are refused with an error frame naming the message,
    /// nothing is stored, and the connection keeps working.
    async fn invalid_messages_are_refused_and_not_stored(app) {
        let (ann, _, _bob, _, conversation) = app.pair().await;
        let mut socket = ann.socket().await;
        let too_long = "x".repeat(MESSAGE_MAX_CHARS + 1);
        for (id, body) in [("e1", ""), ("e2", " \n\t "), ("e3", too_long.as_str()), ("e4", "bell\u{7}")] {
            socket
                .send_frame(&ClientFrame::Send {
                    conversation_id: conversation.id,
                    client_msg_id: id.into(),
                    body: body.into(), attachment_ids: Vec::new(), with_card: false,
                })
                .await;
            let (code, message, client_msg_id) = socket
                .next_matching(|frame| match frame {
                    ServerFrame::Error { code, message, client_msg_id, .. } => {
                        Some((code, message, client_msg_id))
                    }
                    _ => None,
                })
                .await;
            assert_eq!(code, ErrorCode::InvalidInput, "{message}");
            assert_eq!(client_msg_id.as_deref(), Some(id));
        }
        // Exactly at the limit is fine.
        let limit = "y".repeat(MESSAGE_MAX_CHARS);
        let accepted = socket.send_message(&conversation, "ok", &limit).await;
        assert_eq!(accepted.body.chars().count(), MESSAGE_MAX_CHARS);
        let page = ann.history(&conversation, None, None).await;
        assert_eq!(page.messages.len(), 1);
        socket.assert_alive().await;
    }
}

for_each_db! {
    /// Typing signals reach the other participant (not the typist), are throttled, end with an
    /// explicit stop or when the typist disconnects, and are never stored.
    async fn typing_indicators(app) {
        let (ann, ann_user, bob, _, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let mut bob_socket = bob.socket().await;
        let typing = |active: bool| ClientFrame::Typing { conversation_id: conversation.id, active };

        ann_socket.send_frame(&typing(true)).await;
        let frame = bob_socket.next_frame().await;
        assert_eq!(
            frame,
            ServerFrame::Typing { conversation_id: conversation.id, user: ann_user.clone(), active: true }
        );
        // A burst of keystrokes within the throttle window relays nothing more.
        for _ in 0..5 {
            ann_socket.send_frame(&typing(true)).await;
        }
        bob_socket.expect_silence(Duration::from_millis(300), |_| false).await;
        // (Ann does hear that Bob came online.)
        ann_socket
            .expect_silence(Duration::from_millis(100), |frame| matches!(frame, ServerFrame::Presence { .. }))
            .await;

        // A stop within the window is held until the window ends, then relayed.
        ann_socket.send_frame(&typing(false)).await;
        assert_eq!(
            bob_socket.next_frame().await,
            ServerFrame::Typing { conversation_id: conversation.id, user: ann_user.clone(), active: false }
        );

        // Typing again (a window later), then leaving: the other side hears the stop at once.
        tokio::time::sleep(Duration::from_millis(u64::from(app::model::TYPING_THROTTLE_MS) + 100)).await;
        ann_socket.send_frame(&typing(true)).await;
        assert!(matches!(bob_socket.next_frame().await, ServerFrame::Typing { active: true, .. }));
        ann_socket.close().await;
        assert!(matches!(bob_socket.next_frame().await, ServerFrame::Typing { active: false, .. }));

        assert!(bob.history(&conversation, None, None).await.messages.is_empty());
    }
}

for_each_db! {
    /// A message sent while the recipient was disconnected is found by catching up after the
    /// last sequence number they had, exactly once; live delivery resumes on the new socket.
    async fn catching_up_after_a_disconnection(app) {
        let (ann, _, bob, _, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let mut bob_socket = bob.socket().await;
        ann_socket.send_message(&conversation, "c1", "before").await;
        let seen = bob_socket
            .next_matching(|frame| match frame {
                ServerFrame::Message { message } => Some(message.seq),
                _ => None,
            })
            .await;
        bob_socket.close().await;

        ann_socket.send_message(&conversation, "c2", "while you were away").await;
        ann_socket.send_message(&conversation, "c3", "and this").await;

        let mut bob_socket = bob.socket().await;
        let missed = bob.history(&conversation, None, Some(seen)).await;
        let bodies: Vec<&str> = missed.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["while you were away", "and this"]);

        let live = ann_socket.send_message(&conversation, "c4", "live again").await;
        let received = bob_socket
            .next_matching(|frame| match frame {
                ServerFrame::Message { message } => Some(message),
                _ => None,
            })
            .await;
        assert_eq!(received, live);
    }
}

for_each_db! {
    /// Read positions reach the reader's other tabs, move only forward and never beyond the
    /// last message.
    async fn read_positions(app) {
        let (ann, ann_user, bob, _, conversation) = app.pair().await;
        let mut bob_socket = bob.socket().await;
        for i in 0..3 {
            bob_socket.send_message(&conversation, &format!("r{i}"), "hello").await;
        }
        let mut ann_tab_one = ann.socket().await;
        let mut ann_tab_two = ann.socket().await;
        ann_tab_one
            .send_frame(&ClientFrame::Read { conversation_id: conversation.id, seq: 99 })
            .await;
        let read = ann_tab_two
            .next_matching(|frame| match frame {
                ServerFrame::Read { conversation_id, user_id, seq } => Some((conversation_id, user_id, seq)),
                _ => None,
            })
            .await;
        assert_eq!(read, (conversation.id, ann_user.id, 3));
        // Going backwards changes nothing and announces nothing.
        ann_tab_one
            .send_frame(&ClientFrame::Read { conversation_id: conversation.id, seq: 1 })
            .await;
        ann_tab_two
            .expect_silence(Duration::from_millis(300), |frame| matches!(frame, ServerFrame::Read { seq: 3, .. }))
            .await;
        assert_eq!(ann.conversations().await[0].unread, 0);
    }
}
