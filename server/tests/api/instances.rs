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
    two_instances_with(redis, |_| {}).await
}

/// [`two_instances`], with `tweak` applied to both configurations.
async fn two_instances_with(redis: String, tweak: impl Fn(&mut Config)) -> (TestApp, TestApp) {
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
        tweak(&mut config);
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

/// The message limit is the person's, whichever instance their sockets reach: with Redis,
/// sockets on two instances share one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_limit_is_shared_by_every_instance() {
    let (one, two) = two_instances_with(redis_url(), |config| {
        config.limits.messages_per_minute = std::num::NonZeroU32::new(4).unwrap();
    })
    .await;
    let (ann, _) = one.user("ann").await;
    two.user("bob").await;
    let conversation = ann.open_conversation("bob").await;
    let ann_elsewhere = two.browser();
    assert!(
        ann_elsewhere
            .login("ann", PASSWORD)
            .await
            .status()
            .is_success()
    );
    let mut on_one = ann.socket().await;
    let mut on_two = ann_elsewhere.socket().await;
    for i in 0..2 {
        on_one
            .send_message(&conversation, &format!("one-{i}"), "hi")
            .await;
        on_two
            .send_message(&conversation, &format!("two-{i}"), "hi")
            .await;
    }
    for (socket, id) in [(&mut on_one, "one-over"), (&mut on_two, "two-over")] {
        let refused = socket
            .send_with_files(&conversation, id, "one too many", Vec::new())
            .await
            .unwrap_err();
        assert_eq!(refused.0, app::protocol::ErrorCode::RateLimited, "{id}");
    }
}

/// `rediss://`: the instances reach a Redis that speaks only TLS, whose certificate comes
/// from a private authority named by `PARLEY_REDIS_CA_FILE`, and chat through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls() {
    let redis = TlsRedis::start();
    let ca = redis.ca_file.clone();
    let (one, two) = two_instances_with(redis.url(), |config| {
        config.redis_ca_file = Some(ca.clone());
    })
    .await;
    let (ann, _) = one.user("ann").await;
    let (bob, _) = two.user("bob").await;
    let conversation = ann.open_conversation("bob").await;
    let mut ann_socket = ann.socket().await;
    let mut bob_socket = bob.socket().await;
    let sent = ann_socket
        .send_message(&conversation, "tls-1", "Over TLS")
        .await;
    let received = bob_socket
        .next_matching(|frame| match frame {
            ServerFrame::Message { message } => Some(message),
            _ => None,
        })
        .await;
    assert_eq!(received, sent);
    assert_eq!(
        one.browser().get("/readyz").await.status(),
        reqwest::StatusCode::OK
    );
}

/// A `redis-server` of its own listening only for TLS on a free port, with a certificate
/// signed by a throw-away authority; stopped when dropped.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Parley test authority");
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&key, &*ca)
            .unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca.pem()).unwrap();
        std::fs::write(path("redis.pem"), cert.pem()).unwrap();
        std::fs::write(path("redis.key"), key.serialize_pem()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--tls-cert-file")
            .arg(path("redis.pem"))
            .arg("--tls-key-file")
            .arg(path("redis.key"))
            .arg("--tls-ca-cert-file")
            .arg(path("ca.pem"))
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server should be installed (scripts/test installs it)");
        // Up once it accepts connections.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            child,
            port,
            ca_file: path("ca.pem"),
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instance that crashes (stops dead: no task of it runs again, none says goodbye) leaves
/// its users "online" only until its heartbeat lapses: the other instance then claims it and
/// tells Bob's partners he is offline, with when he was last seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_of_a_crashed_instance_go_offline() {
    let scratch = Arc::new(Scratch::create(TestDb::Postgres).await);
    let prefix = format!(
        "parley_test_crash_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let config = || {
        let mut config = Config::for_tests(scratch.url.clone());
        config.redis_url = Some(redis_url());
        config.redis_prefix = prefix.clone();
        config.presence_ttl = std::time::Duration::from_secs(2);
        config
    };
    let one = TestApp::start(config(), scratch.clone(), TestDb::Postgres).await;
    // The instance to crash runs in a runtime of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (started, addr) = tokio::sync::oneshot::channel();
    let mut crashing = config();
    crashing.files.data_dir = scratch.files.path().to_owned();
    runtime.spawn(async move {
        let app = server::startup::Application::build(crashing).await.unwrap();
        let _ = started.send(app.local_addr());
        let _ = app.run_until_stopped(std::future::pending()).await;
    });
    let addr = addr.await.unwrap();

    let (ann, _) = one.user("ann").await;
    let bob = crate::helpers::Browser::new(addr, Some(format!("http://{addr}")));
    let registered = bob
        .post(
            "register",
            &[
                ("username", "bob"),
                ("display_name", "Bob"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    let bob_user: app::model::UserView = registered.json().await.unwrap();
    ann.open_conversation("bob").await;
    let mut ann_socket = ann.socket().await;
    let _bob_socket = bob.socket().await;
    let (online, _) = presence_of(&mut ann_socket, bob_user.id).await;
    assert!(online);

    runtime.shutdown_background();
    let (online, last_seen) = presence_of(&mut ann_socket, bob_user.id).await;
    assert!(!online, "Bob went offline with his server");
    assert!(last_seen.is_some());
    let listed = ann.conversations().await;
    assert!(!listed[0].other_online);
}

/// An instance whose heartbeat lapsed in Redis (Redis slow, or out of reach a while) may have
/// been taken for dead, its users announced offline. When it beats again it notices, and its
/// sockets reconnect, which says their users are online again: nobody stays "offline" for
/// their partners while connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_heartbeat_lapsed_announces_its_users_again() {
    let prefix = format!(
        "parley_test_lapse_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let (one, two) = two_instances_with(redis_url(), |config| {
        config.presence_ttl = std::time::Duration::from_secs(2);
        config.redis_prefix = prefix.clone();
    })
    .await;
    let (ann, _) = one.user("ann").await;
    let (bob, bob_user) = two.user("bob").await;
    ann.open_conversation("bob").await;
    let mut ann_socket = ann.socket().await;
    let mut bob_socket = bob.socket().await;
    let (online, _) = presence_of(&mut ann_socket, bob_user.id).await;
    assert!(online);

    // The heartbeat of Bob's instance vanishes, as if it had not been renewed in time.
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:online:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut bobs_instance = None;
    for key in keys {
        let holds: bool = redis::cmd("SISMEMBER")
            .arg(&key)
            .arg(bob_user.id.0)
            .query_async(&mut connection)
            .await
            .unwrap();
        if holds {
            bobs_instance = key.rsplit(':').next().map(str::to_owned);
        }
    }
    let bobs_instance = bobs_instance.expect("an instance holds Bob");
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:instance:{bobs_instance}"))
        .query_async(&mut connection)
        .await
        .unwrap();
    // Bob's socket is told to resynchronise; coming back, he is online for Ann again.
    assert_eq!(bob_socket.ended().await, Some(1013));
    let _bob_socket = bob.socket().await;
    let online = ann_socket
        .next_matching(|frame| match frame {
            ServerFrame::Presence {
                user_id,
                online: true,
                ..
            } if user_id == bob_user.id => Some(true),
            _ => None,
        })
        .await;
    assert!(online);
    assert!(ann.conversations().await[0].other_online);
}
