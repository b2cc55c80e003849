//! Several instances: two servers share one PostgreSQL database and one Redis, and people
//! connected to different instances chat as if there were one. PostgreSQL only: SQLite is a
//! file on one machine, for one instance.

use std::sync::Arc;

use crate::{
    helpers::{PASSWORD, Scratch, TestApp, TestDb},
    presence::presence_of,
    tcp_proxy::TcpProxy,
};
use app::protocol::{ClientFrame, ServerFrame};
use server::config::Config;

/// Where the tests' Redis is.
fn redis_url() -> String {
    std::env::var("PARLEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Two instances over one fresh database and the Redis at `redis`, with a channel prefix of
/// their own (tests run side by side on the same Redis).
async fn two_instances(redis: String) -> (TestApp, TestApp) {
    let scratch = Arc::new(Scratch::create(TestDb::Postgres).await);
    let prefix = format!(
        "parley_test_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let config = || {
        let mut config = Config::for_tests(scratch.url.clone());
        config.redis_url = Some(redis.clone());
        config.redis_prefix = prefix.clone();
        config
    };
    let one = TestApp::start(config(), scratch.clone(), TestDb::Postgres).await;
    let two = TestApp::start(config(), scratch.clone(), TestDb::Postgres).await;
    (one, two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_on_different_instances_chat_type_see_presence_and_receipts() {
    let (one, two) = two_instances(redis_url()).await;
    let (ann, _) = one.user("ann").await;
    let (bob, bob_user) = two.user("bob").await;
    let conversation = ann.open_conversation("bob").await;
    let mut ann_socket = ann.socket().await;

    // Bob connects to the other instance: Ann hears he is online, and her list says so.
    let mut bob_socket = bob.socket().await;
    let (online, _) = presence_of(&mut ann_socket, bob_user.id).await;
    assert!(online);
    assert!(
        ann.conversations().await[0].other_online,
        "the list asks Redis who is online"
    );

    // A message, both ways.
    let sent = ann_socket
        .send_message(&conversation, "a1", "Hello from one")
        .await;
    let received = bob_socket
        .next_matching(|frame| match frame {
            ServerFrame::Message { message } => Some(message),
            _ => None,
        })
        .await;
    assert_eq!(received, sent);
    let reply = bob_socket
        .send_message(&conversation, "b1", "Hello from two")
        .await;
    let back = ann_socket
        .next_matching(|frame| match frame {
            ServerFrame::Message { message } if message.sender.id == bob_user.id => Some(message),
            _ => None,
        })
        .await;
    assert_eq!(back, reply);

    // Typing and receipts.
    bob_socket
        .send_frame(&ClientFrame::Typing {
            conversation_id: conversation.id,
            active: true,
        })
        .await;
    let typist = ann_socket
        .next_matching(|frame| match frame {
            ServerFrame::Typing {
                user, active: true, ..
            } => Some(user.id),
            _ => None,
        })
        .await;
    assert_eq!(typist, bob_user.id);
    // (Writing counts as reading what came before: Ann writes again for Bob to read.)
    let later = ann_socket
        .send_message(&conversation, "a2", "Still there?")
        .await;
    bob_socket
        .send_frame(&ClientFrame::Read {
            conversation_id: conversation.id,
            seq: later.seq,
        })
        .await;
    let read = ann_socket
        .next_matching(|frame| match frame {
            ServerFrame::Read { user_id, seq, .. } if user_id == bob_user.id => Some(seq),
            _ => None,
        })
        .await;
    assert_eq!(read, later.seq);

    // Bob leaves: Ann, on the other instance, sees him go offline.
    bob_socket.close().await;
    let (gone, _) = presence_of(&mut ann_socket, bob_user.id).await;
    assert!(!gone);
    assert!(!ann.conversations().await[0].other_online);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_sends_succeed_and_nothing_is_lost() {
    let (proxy, through_proxy) = TcpProxy::in_front_of(&redis_url(), 6379).await;
    let (one, two) = two_instances(through_proxy).await;
    let (ann, _) = one.user("ann").await;
    let (bob, bob_user) = two.user("bob").await;
    let conversation = ann.open_conversation("bob").await;
    let mut ann_socket = ann.socket().await;
    let mut ann_other_tab = ann.socket().await;
    let mut bob_socket = bob.socket().await;

    proxy.cut();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Stored (PostgreSQL is the source of truth) and acknowledged, though Redis is away, and
    // Ann's own instance still shows it in her other tab.
    let started = std::time::Instant::now();
    let sent = ann_socket
        .send_message(&conversation, "a1", "Sent while Redis is away")
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "the send waited on Redis"
    );
    let shown = ann_other_tab
        .next_matching(|frame| match frame {
            ServerFrame::Message { message } => Some(message),
            _ => None,
        })
        .await;
    assert_eq!(shown, sent);
    // Alive, but not ready: a load balancer would send new traffic elsewhere.
    let readyz = one.browser().get("/readyz").await;
    assert_eq!(readyz.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(readyz.text().await.unwrap(), "redis unavailable");
    assert_eq!(
        one.browser().get("/healthz").await.status(),
        reqwest::StatusCode::OK
    );
    proxy.restore();

    // Once the subscription is back, Bob's socket is told to resynchronise (it may have
    // missed events), and the catch-up finds the message.
    assert_eq!(bob_socket.ended().await, Some(1013));
    let page = bob.history(&conversation, None, Some(0)).await;
    assert_eq!(page.messages, vec![sent]);

    // Live again, both ways.
    let mut bob_socket = bob.socket().await;
    let mut ann_socket = ann.socket().await;
    ann_socket
        .send_message(&conversation, "a2", "And now?")
        .await;
    let live = bob_socket
        .next_matching(|frame| match frame {
            ServerFrame::Message { message } => Some(message.client_msg_id),
            _ => None,
        })
        .await;
    assert_eq!(live, "a2");
    bob_socket
        .send_message(&conversation, "b1", "Loud and clear")
        .await;
    let back = ann_socket
        .next_matching(|frame| match frame {
            ServerFrame::Message { message } if message.sender.id == bob_user.id => {
                Some(message.client_msg_id)
            }
            _ => None,
        })
        .await;
    assert_eq!(back, "b1");
    one.assert_serving(&ann).await;
    two.assert_serving(&bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_on_one_instance_closes_sockets_on_the_other() {
    let (one, two) = two_instances(redis_url()).await;
    let (laptop, _) = one.user("bob").await;
    let phone = two.browser();
    assert!(phone.login("bob", PASSWORD).await.status().is_success());
    let mut phone_socket = phone.socket().await;
    let changed = laptop
        .post(
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a much better passphrase"),
                ("new_password_confirm", "a much better passphrase"),
            ],
        )
        .await;
    assert!(changed.status().is_success());
    assert_eq!(
        phone_socket.ended().await,
        Some(1008),
        "closed at once, not at the next check"
    );
    laptop.socket().await.assert_alive().await;
}
