//! Presence: the people a user talks to see them come online and go offline, with when they
//! were last seen; nobody else hears of it.

use std::time::Duration;

use crate::helpers::{TestSocket, for_each_db};
use app::{model::UserId, protocol::ServerFrame};

/// The next presence frame about `user`.
pub(crate) async fn presence_of(
    socket: &mut TestSocket,
    user: UserId,
) -> (bool, Option<chrono::DateTime<chrono::Utc>>) {
    socket
        .next_matching(|frame| match frame {
            ServerFrame::Presence {
                user_id,
                online,
                last_seen_at,
            } if user_id == user => Some((online, last_seen_at)),
            _ => None,
        })
        .await
}

for_each_db! {
    /// Bob comes online and goes offline: Ann hears both (only once his last socket closes),
    /// and her conversation list says the same; Eve, who never talked to Bob, hears nothing.
    async fn partners_see_each_other_come_and_go(app) {
        let (ann, _, bob, bob_user, _conversation) = app.pair().await;
        let (eve, _) = app.user("eve").await;
        let mut ann_socket = ann.socket().await;
        let mut eve_socket = eve.socket().await;
        let listed = |list: Vec<app::model::ConversationSummary>| {
            let summary = list.into_iter().find(|s| s.other.id == bob_user.id).unwrap();
            (summary.other_online, summary.other_last_seen_at)
        };
        assert_eq!(listed(ann.conversations().await), (false, None), "never connected yet");

        let first = bob.socket().await;
        assert_eq!(presence_of(&mut ann_socket, bob_user.id).await, (true, None));
        assert!(listed(ann.conversations().await).0);
        assert!(ann.open_conversation("bob").await.other_online);

        // A second tab, then the first closes: Bob is still online.
        let second = bob.socket().await;
        assert_eq!(presence_of(&mut ann_socket, bob_user.id).await, (true, None));
        first.close().await;
        ann_socket
            .expect_silence(Duration::from_millis(300), |frame| {
                !matches!(frame, ServerFrame::Presence { .. })
            })
            .await;
        assert!(listed(ann.conversations().await).0);

        // The last one closes: offline, last seen just now.
        let before = chrono::Utc::now() - chrono::Duration::seconds(5);
        second.close().await;
        let (online, last_seen) = presence_of(&mut ann_socket, bob_user.id).await;
        assert!(!online);
        let last_seen = last_seen.expect("a last-seen time");
        assert!(last_seen > before && last_seen <= chrono::Utc::now());
        assert_eq!(listed(ann.conversations().await), (false, Some(last_seen)));

        eve_socket
            .expect_silence(Duration::from_millis(300), |frame| {
                !matches!(frame, ServerFrame::Presence { .. })
            })
            .await;
    }
}

/// A client whose network vanished answers no pings: the server closes it once the heartbeat's
/// limit passes, and its partners see it go offline then, not whenever TCP gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_dropped_and_go_offline() {
    let scratch =
        std::sync::Arc::new(crate::helpers::Scratch::create(crate::helpers::TestDb::Sqlite).await);
    let mut config = server::config::Config::for_tests(scratch.url.clone());
    config.heartbeat = server::ws::Heartbeat {
        ping_every: Duration::from_millis(100),
        silent_limit: Duration::from_millis(400),
    };
    let app = crate::helpers::TestApp::start(config, scratch, crate::helpers::TestDb::Sqlite).await;
    let (ann, _, bob, bob_user, _conversation) = app.pair().await;
    let mut ann_socket = ann.socket().await;
    // Bob's socket is never read again, so it never answers a ping.
    let _silent = bob.socket().await;
    assert_eq!(
        presence_of(&mut ann_socket, bob_user.id).await,
        (true, None)
    );
    let started = std::time::Instant::now();
    let (online, last_seen) = presence_of(&mut ann_socket, bob_user.id).await;
    assert!(!online && last_seen.is_some());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Ann, who reads (and so answers pings), is still connected.
    ann_socket.assert_alive().await;
}
