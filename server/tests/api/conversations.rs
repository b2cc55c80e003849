//! Starting conversations and the conversation list.

use reqwest::StatusCode;

use crate::helpers::{expect_error, for_each_db};
use app::protocol::ClientFrame;

for_each_db! {
    /// Opening a conversation by username creates it once; either side opening it again, in
    /// any letter case, gets the same one.
    async fn exactly_one_conversation_per_pair(app) {
        let (ann, ann_user) = app.user("ann").await;
        let (bob, _) = app.user("bob").await;
        let first = ann.open_conversation("bob").await;
        let again = ann.open_conversation("BOB").await;
        let from_bob = bob.open_conversation("ann").await;
        assert_eq!(first.id, again.id);
        assert_eq!(first.id, from_bob.id);
        assert_eq!(from_bob.other, ann_user);
        assert_eq!(first.last_seq, 0);
        assert_eq!(first.last_message, None);
    }
}

for_each_db! {
    /// Both users opening the conversation at the same moment still get one conversation.
    async fn concurrent_opening_creates_one_conversation(app) {
        let (ann, _) = app.user("ann").await;
        let (bob, _) = app.user("bob").await;
        let mut tasks = Vec::new();
        for i in 0..6 {
            let (browser, other) = if i % 2 == 0 { (ann.clone(), "bob") } else { (bob.clone(), "ann") };
            tasks.push(tokio::spawn(async move { browser.open_conversation(other).await.id }));
        }
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
    }
}

for_each_db! {
    /// Unknown users are not found; oneself is not a conversation partner.
    async fn opening_needs_another_existing_user(app) {
        let (ann, _) = app.user("ann").await;
        let missing = ann.post("open_conversation", &[("username", "ghost")]).await;
        expect_error(missing, StatusCode::NOT_FOUND).await;
        let invalid = ann.post("open_conversation", &[("username", "not valid!")]).await;
        expect_error(invalid, StatusCode::NOT_FOUND).await;
        let myself = ann.post("open_conversation", &[("username", "ann")]).await;
        let body = expect_error(myself, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["detail"][0]["field"], "username");
        assert!(ann.conversations().await.is_empty());
    }
}

for_each_db! {
    /// The list shows the latest activity first, with the other person, a preview of the last
    /// message and unread counts that reading clears.
    async fn the_conversation_list(app) {
        let (ann, _) = app.user("ann").await;
        let (bob, bob_user) = app.user("bob").await;
        let (carol, carol_user) = app.user("carol").await;
        let with_bob = ann.open_conversation("bob").await;
        let with_carol = ann.open_conversation("carol").await;

        let mut bob_socket = bob.socket().await;
        bob_socket.send_message(&with_bob, "b1", "Hi Ann, is the vase still available?").await;
        bob_socket.send_message(&with_bob, "b2", "The blue one.").await;
        let mut carol_socket = carol.socket().await;
        carol_socket.send_message(&with_carol, "c1", "Hello!").await;

        let list = ann.conversations().await;
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].other, carol_user, "most recent activity first");
        assert_eq!(list[1].other, bob_user);
        assert_eq!(list[1].unread, 2);
        assert_eq!(list[1].last_seq, 2);
        let preview = list[1].last_message.as_ref().unwrap();
        assert_eq!(preview.body, "The blue one.");
        assert_eq!(preview.sender_id, bob_user.id);

        // Bob has read everything he wrote.
        assert_eq!(bob.conversations().await[0].unread, 0);

        let mut ann_socket = ann.socket().await;
        ann_socket
            .send_frame(&ClientFrame::Read { conversation_id: with_bob.id, seq: 2 })
            .await;
        ann_socket
            .next_matching(|frame| matches!(frame, app::protocol::ServerFrame::Read { .. }).then_some(()))
            .await;
        let list = ann.conversations().await;
        assert_eq!(list[1].unread, 0);
        assert_eq!(list[0].unread, 1);
    }
}

for_each_db! {
    /// Conversations are private: a third user can't see or open someone else's.
    async fn other_peoples_conversations_are_not_found(app) {
        let (_ann, _, _bob, _, conversation) = app.pair().await;
        let (eve, _) = app.user("eve").await;
        assert!(eve.conversations().await.is_empty());
        let id = conversation.id.to_string();
        let response = eve.post("history", &[("conversation_id", &id)]).await;
        expect_error(response, StatusCode::NOT_FOUND).await;
        let response = eve.post("history", &[("conversation_id", "999999")]).await;
        expect_error(response, StatusCode::NOT_FOUND).await;
    }
}

for_each_db! {
    /// The list comes in pages (keyset: last activity, then id): following each page's last
    /// conversation gives every conversation once, latest activity first, and a short page is
    /// the last. A cursor given by halves, or a limit out of range, is refused.
    async fn the_list_pages_through_every_conversation(app) {
        let (seller, _) = app.user("seller").await;
        let mut opened = Vec::new();
        for name in ["cust1", "cust2", "cust3", "cust4", "cust5"] {
            app.user(name).await;
            opened.push(seller.open_conversation(name).await);
        }
        // Activity ties are broken by id, latest first; a message moves cust2 to the top.
        let mut socket = seller.socket().await;
        socket.send_message(&opened[1], "m1", "back to you").await;
        let expected: Vec<_> = ["cust2", "cust5", "cust4", "cust3", "cust1"].map(String::from).into();

        let mut seen = Vec::new();
        let mut form: Vec<(String, String)> = vec![("limit".into(), "2".into())];
        loop {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let page: Vec<app::model::ConversationSummary> =
                crate::helpers::expect_json(seller.post("conversations", &pairs).await, StatusCode::OK).await;
            seen.extend(page.iter().map(|c| c.other.username.clone()));
            let Some(last) = page.last().filter(|_| page.len() == 2) else { break };
            form = vec![
                ("limit".into(), "2".into()),
                ("after_activity_ms".into(), last.last_activity_at.timestamp_millis().to_string()),
                ("after_id".into(), last.id.to_string()),
            ];
        }
        assert_eq!(seen, expected);
        // Without a limit, everything fits in one page.
        let all: Vec<String> = seller.conversations().await.into_iter().map(|c| c.other.username).collect();
        assert_eq!(all, expected);

        let half = seller.post("conversations", &[("after_id", "1")]).await;
        expect_error(half, StatusCode::BAD_REQUEST).await;
        for limit in ["0", "201"] {
            let body = expect_error(seller.post("conversations", &[("limit", limit)]).await, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(body["detail"][0]["field"], "limit");
        }
    }
}
