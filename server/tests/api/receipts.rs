//! Receipts: the sender learns when a device of the recipient has received a message and,
//! when both people share read receipts, when it was seen; switching them off hides read
//! positions in both directions, never delivery.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{Browser, TestSocket, expect_json, for_each_db};
use app::{
    model::{AccountSettings, ConversationSummary, UserId},
    protocol::{ClientFrame, ServerFrame},
};

/// The next delivery or read receipt from `user`: `(read?, seq)`.
async fn receipt_from(socket: &mut TestSocket, user: UserId) -> (bool, i64) {
    socket
        .next_matching(|frame| match frame {
            ServerFrame::Delivered { user_id, seq, .. } if user_id == user => Some((false, seq)),
            ServerFrame::Read { user_id, seq, .. } if user_id == user => Some((true, seq)),
            _ => None,
        })
        .await
}

/// What `viewer`'s conversation list says of the other side's positions.
async fn positions(viewer: &Browser) -> (i64, Option<i64>) {
    let summary: ConversationSummary = viewer.conversations().await.remove(0);
    (summary.other_delivered_seq, summary.other_read_seq)
}

async fn set_read_receipts(user: &Browser, on: bool) -> AccountSettings {
    expect_json(
        user.post(
            "update_settings",
            &[("read_receipts", if on { "true" } else { "false" })],
        )
        .await,
        StatusCode::OK,
    )
    .await
}

/// Frames that are not receipts (presence, for one, comes and goes as sockets open).
fn not_a_receipt(frame: &ServerFrame) -> bool {
    !matches!(
        frame,
        ServerFrame::Delivered { .. } | ServerFrame::Read { .. }
    )
}

for_each_db! {
    /// Delivered, then seen: each reaches the sender once, moves only forward, is clamped to
    /// the messages that exist, and is in the conversation list too.
    async fn delivery_and_read_positions_reach_the_sender(app) {
        let (ann, ann_user, bob, bob_user, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let mut bob_socket = bob.socket().await;
        for i in 1..=3 {
            ann_socket.send_message(&conversation, &format!("m{i}"), "hello").await;
        }
        assert_eq!(positions(&ann).await, (0, Some(0)));
        // Ann has everything she wrote: her own positions follow her messages.
        assert_eq!(positions(&bob).await, (3, Some(3)));

        let receipt = |seq| ClientFrame::Delivered { conversation_id: conversation.id, seq };
        bob_socket.send_frame(&receipt(2)).await;
        assert_eq!(receipt_from(&mut ann_socket, bob_user.id).await, (false, 2));
        // Backwards, or beyond the last message: clamped, and only news is announced.
        bob_socket.send_frame(&receipt(1)).await;
        bob_socket.send_frame(&receipt(99)).await;
        assert_eq!(receipt_from(&mut ann_socket, bob_user.id).await, (false, 3));
        bob_socket.send_frame(&receipt(3)).await;
        ann_socket.expect_silence(Duration::from_millis(300), not_a_receipt).await;
        assert_eq!(positions(&ann).await, (3, Some(0)));

        // Seen: to Ann, and to Bob's own tabs (which clear their unread count).
        bob_socket.send_frame(&ClientFrame::Read { conversation_id: conversation.id, seq: 2 }).await;
        assert_eq!(receipt_from(&mut ann_socket, bob_user.id).await, (true, 2));
        assert_eq!(receipt_from(&mut bob_socket, bob_user.id).await, (true, 2));
        assert_eq!(positions(&ann).await, (3, Some(2)));
        assert_eq!(bob.conversations().await[0].unread, 1);
        // Ann's own socket never hears receipts about herself.
        ann_socket
            .expect_silence(Duration::from_millis(300), |frame| match frame {
                ServerFrame::Delivered { user_id, .. } | ServerFrame::Read { user_id, .. } => {
                    *user_id != ann_user.id
                }
                _ => true,
            })
            .await;
    }
}

for_each_db! {
    /// Reading implies receiving: a read position past the delivery position moves both.
    async fn reading_delivers(app) {
        let (ann, _, bob, bob_user, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let mut bob_socket = bob.socket().await;
        ann_socket.send_message(&conversation, "a", "one").await;
        ann_socket.send_message(&conversation, "b", "two").await;
        bob_socket.send_frame(&ClientFrame::Read { conversation_id: conversation.id, seq: 2 }).await;
        assert_eq!(receipt_from(&mut ann_socket, bob_user.id).await, (true, 2));
        assert_eq!(positions(&ann).await, (2, Some(2)));
    }
}

for_each_db! {
    /// Bob switches read receipts off: Ann no longer learns what he has seen (only that it was
    /// delivered), and Bob no longer learns what Ann has seen. His own tabs still hear of his
    /// reading, and everything shows again once he switches them back on.
    async fn read_receipts_off_hides_them_both_ways(app) {
        let (ann, ann_user, bob, bob_user, conversation) = app.pair().await;
        let mut ann_socket = ann.socket().await;
        let mut bob_socket = bob.socket().await;
        let mut bob_tab = bob.socket().await;
        ann_socket.send_message(&conversation, "a1", "one").await;
        ann_socket.send_message(&conversation, "a2", "two").await;

        let on: AccountSettings = expect_json(bob.post("settings", &[]).await, StatusCode::OK).await;
        assert!(on.read_receipts, "on by default");
        assert!(!set_read_receipts(&bob, false).await.read_receipts);
        // Every tab of Bob's hears of the change.
        let told = bob_tab
            .next_matching(|frame| match frame {
                ServerFrame::Settings { settings } => Some(settings.read_receipts),
                _ => None,
            })
            .await;
        assert!(!told);

        bob_socket.send_frame(&ClientFrame::Read { conversation_id: conversation.id, seq: 1 }).await;
        assert_eq!(receipt_from(&mut ann_socket, bob_user.id).await, (false, 1), "delivered, not read");
        assert_eq!(receipt_from(&mut bob_tab, bob_user.id).await, (true, 1), "his own tabs know");
        assert_eq!(positions(&ann).await, (1, None));
        // Once his device has acknowledged a message, reading it tells Ann nothing at all, not
        // even when.
        bob_socket.send_frame(&ClientFrame::Delivered { conversation_id: conversation.id, seq: 2 }).await;
        assert_eq!(receipt_from(&mut ann_socket, bob_user.id).await, (false, 2));
        bob_socket.send_frame(&ClientFrame::Read { conversation_id: conversation.id, seq: 2 }).await;
        assert_eq!(receipt_from(&mut bob_tab, bob_user.id).await, (true, 2));
        ann_socket.expect_silence(Duration::from_millis(300), not_a_receipt).await;

        // The other way round: Bob writes, Ann reads; Bob learns nothing of it.
        let reply = bob_socket.send_message(&conversation, "b1", "three").await;
        ann_socket.send_frame(&ClientFrame::Read { conversation_id: conversation.id, seq: reply.seq }).await;
        assert_eq!(receipt_from(&mut ann_socket, ann_user.id).await, (true, reply.seq));
        bob_tab
            .expect_silence(Duration::from_millis(300), |frame| match frame {
                ServerFrame::Read { user_id, .. } => *user_id != ann_user.id,
                _ => true,
            })
            .await;
        let (delivered, read) = positions(&bob).await;
        assert_eq!((delivered, read), (reply.seq, None));

        // Back on: both lists show how far the other has read.
        assert!(set_read_receipts(&bob, true).await.read_receipts);
        assert_eq!(positions(&ann).await, (reply.seq, Some(reply.seq)));
        assert_eq!(positions(&bob).await, (reply.seq, Some(reply.seq)));
        bob_socket.assert_alive().await;
    }
}

for_each_db! {
    /// Receipts are for participants only, and a setting must be a boolean.
    async fn receipts_are_checked(app) {
        let (ann, _, _bob, _, _conversation) = app.pair().await;
        let anonymous = app.browser();
        assert_eq!(anonymous.post("settings", &[]).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            anonymous.post("update_settings", &[("read_receipts", "false")]).await.status(),
            StatusCode::UNAUTHORIZED
        );
        for bad in ["maybe", "", "1 OR 1=1"] {
            let status = ann.post("update_settings", &[("read_receipts", bad)]).await.status();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let settings: AccountSettings = expect_json(ann.post("settings", &[]).await, StatusCode::OK).await;
        assert!(settings.read_receipts, "unchanged");
    }
}
