//! The group commit ([`MessageWriter`]) under many concurrent sends, and the load benchmark's
//! scenarios run small against a real server, so both are known to work on every `cargo test`
//! (the full-size numbers are `docs/performance.md`'s, from `scripts/bench`).

use std::{collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter, QueryOrder};

use crate::{
    driver::Target,
    helpers::{Scratch, TestApp, TestDb, for_each_db},
    scenarios::{self, Pace},
};
use app::{
    entity::{conversations, messages as message_rows, participants},
    messages::{Content, MessagesError, writer::MessageWriter},
    model::{ClientMsgId, MessageBody},
};
use server::config::Config;

/// A server whose limits let a benchmark through.
async fn roomy(db: TestDb) -> TestApp {
    let scratch = Arc::new(Scratch::create(db).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.limits.registrations_per_hour = NonZeroU32::MAX;
    config.limits.messages_per_minute = NonZeroU32::MAX;
    TestApp::start(config, scratch, db).await
}

fn text(body: &str) -> Content {
    Content::text(MessageBody::parse(body).unwrap())
}

for_each_db! {
    /// 300 sends at once over three conversations, both people writing, plus the awkward
    /// cases in the same batches: one message sent twice at the same moment (stored once,
    /// both answered with it), a stranger writing (refused, nothing stored), an id reused in
    /// another conversation (refused). Afterwards each conversation is numbered 1..n without
    /// a gap, in each sender's order, and its last message and read positions are right.
    async fn concurrent_sends_share_commits_and_keep_every_guarantee(app) {
        let mut people = Vec::new();
        for name in ["ann", "bob", "cat", "dan", "eve", "fay", "gus"] {
            people.push(app.user(name).await);
        }
        let mut pairs = Vec::new();
        for (one, two) in [(0, 1), (2, 3), (4, 5)] {
            let summary = people[one].0.open_conversation(&people[two].1.username).await;
            pairs.push((summary.id, people[one].1.clone(), people[two].1.clone()));
        }
        let db = Database::connect(&app.scratch.url).await.unwrap();
        let writer = MessageWriter::start(&db, 2);

        // Each sender sends ten at a time, polled in the order made (`join_all` of so few
        // polls in order), so their messages reach the lane in order, as a connection's
        // would; six senders at once fill batches of up to sixty.
        let mut senders = Vec::new();
        for (conversation, one, two) in &pairs {
            for sender in [one, two] {
                let (writer, sender, conversation) = (writer.clone(), sender.clone(), *conversation);
                senders.push(tokio::spawn(async move {
                    let mut sent = Vec::new();
                    for chunk in 0..5 {
                        let sends = (0..10).map(|i| {
                            let n = chunk * 10 + i;
                            let id = ClientMsgId::parse(&format!("m{n}")).unwrap();
                            writer.send(sender.clone(), conversation, id, text(&format!("{n}")))
                        });
                        sent.extend(futures::future::join_all(sends).await);
                    }
                    sent
                }));
            }
        }
        let sends = futures::future::join_all(senders);
        let (first_conversation, ann, _) = pairs[0].clone();
        let twice = |writer: MessageWriter| {
            let ann = ann.clone();
            tokio::spawn(async move {
                let id = ClientMsgId::parse("twice").unwrap();
                writer.send(ann, first_conversation, id, text("once")).await
            })
        };
        let (copy_one, copy_two) = (twice(writer.clone()), twice(writer.clone()));
        let stranger = people[6].1.clone();
        let intruder = writer.send(
            stranger,
            first_conversation,
            ClientMsgId::parse("x").unwrap(),
            text("let me in"),
        );
        let (sent, intruder) = tokio::join!(sends, intruder);
        assert!(matches!(intruder, Err(MessagesError::NotFound)));
        let mut created = 0;
        for sent in sent.into_iter().flat_map(Result::unwrap) {
            assert!(sent.unwrap().created);
            created += 1;
        }
        let (one, two) = (copy_one.await.unwrap().unwrap(), copy_two.await.unwrap().unwrap());
        assert_eq!(one.message.id, two.message.id, "stored once");
        assert!(one.created != two.created, "one stored it, the other was told it was");
        let reused = writer
            .send(ann.clone(), pairs[1].0, ClientMsgId::parse("twice").unwrap(), text("elsewhere"))
            .await;
        assert!(matches!(reused, Err(MessagesError::ClientMsgIdReused)));
        assert_eq!(created, 300);

        for (index, (conversation, one, two)) in pairs.iter().enumerate() {
            let rows = message_rows::Entity::find()
                .filter(message_rows::Column::ConversationId.eq(conversation.0))
                .order_by_asc(message_rows::Column::Seq)
                .all(&db)
                .await
                .unwrap();
            let expected = if index == 0 { 101 } else { 100 };
            assert_eq!(rows.len(), expected);
            let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
            assert_eq!(seqs, (1..=expected as i64).collect::<Vec<_>>(), "no gaps");
            // Each sender's messages in the order sent (the lane keeps a conversation's order).
            let mut next_of: HashMap<i64, usize> = HashMap::new();
            for row in rows.iter().filter(|row| row.client_msg_id != "twice") {
                let n: usize = row.client_msg_id[1..].parse().unwrap();
                let next = next_of.entry(row.sender_id).or_default();
                assert_eq!(n, *next, "sender {}'s order", row.sender_id);
                *next += 1;
            }
            assert!(rows.windows(2).all(|w| w[0].created_at <= w[1].created_at));
            let last = rows.last().unwrap();
            let row = conversations::Entity::find_by_id(conversation.0).one(&db).await.unwrap().unwrap();
            assert_eq!(row.last_seq, expected as i64);
            assert_eq!(row.last_activity_at, last.created_at);
            for user in [one, two] {
                let newest = rows.iter().filter(|r| r.sender_id == user.id.0).map(|r| r.seq).max();
                let position = participants::Entity::find()
                    .filter(participants::Column::ConversationId.eq(conversation.0))
                    .filter(participants::Column::UserId.eq(user.id.0))
                    .one(&db)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(Some(position.last_read_seq), newest);
                assert_eq!(Some(position.last_delivered_seq), newest);
            }
        }
        // Nothing else was stored: not the stranger's, not the reused id's.
        assert_eq!(message_rows::Entity::find().all(&db).await.unwrap().len(), 301);
        db.close().await.unwrap();
    }
}

/// The benchmark's three scenarios, small: people connect and sit idle (and the server's
/// memory and request timings are read from `/metrics`); pairs chat at a fixed rate; pairs
/// chat as fast as they can.
/// Nothing is lost, duplicated or left unanswered, live or in the stored history.
async fn load_scenarios_run_small(db: TestDb) {
    let app = roomy(db).await;
    let target = Target::new(app.addr, None).unwrap();

    let (answered_before, quick_before) = target.requests_within("0.005").await.unwrap();
    let idle = scenarios::idle(&target, "idle", 20, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(idle.connected, 20);
    assert!(idle.rss_before > 0 && idle.rss_after > 0);
    // The server's own request timings (what `history` reports): every sign-up counted.
    let (answered, quick) = target.requests_within("0.005").await.unwrap();
    assert!(
        answered - answered_before >= 20.0,
        "{answered_before} → {answered}"
    );
    assert!(quick - quick_before <= answered - answered_before);

    for (prefix, pace) in [("rate", Pace::Rate(20.0)), ("max", Pace::Window(4))] {
        let report = scenarios::exchange(&target, prefix, 3, pace, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(report.sent >= 60, "{pace:?}: only {} sent", report.sent);
        assert_eq!(report.acked, report.sent, "{pace:?}: {:?}", report.errors);
        assert_eq!(report.delivered, report.acked, "{pace:?}");
        assert_eq!(report.stored, report.acked, "{pace:?}");
        assert_eq!(
            (report.lost, report.duplicated, report.unacknowledged),
            (0, 0, 0)
        );
        assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
        assert_eq!(report.latency_us.len(), report.delivered);
        assert!(report.latency_ms(99.0) > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_scenarios_run_and_find_nothing_lost_on_postgres() {
    load_scenarios_run_small(TestDb::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_scenarios_run_and_find_nothing_lost_on_sqlite() {
    load_scenarios_run_small(TestDb::Sqlite).await;
}

/// The `page` scenario counts each file of the chat page's first load once, as sent: the page
/// (compressed by the server), the files it names (compressed when a compressed copy
/// exists), and the modules its script imports, which the page itself does not name (the
/// loader of the bundle's pieces).
#[tokio::test]
async fn the_page_scenario_counts_every_file_of_the_first_load() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let glue = r#"import*as t from"./__wasm_split.js";export function hydrate(){}"#;
    for (name, body) in [
        ("parley.js", glue.as_bytes()),
        ("parley.js.br", b"brotli-js".as_slice()),
        ("__wasm_split.js", b"export{}".as_slice()),
        ("parley.css", b"body{}".as_slice()),
        // The page names `parley.wasm`, or `parley_bg.wasm` when not built by cargo-leptos.
        ("parley.wasm", b"\0asm".as_slice()),
        ("parley_bg.wasm", b"\0asm".as_slice()),
    ] {
        std::fs::write(pkg.join(name), body).unwrap();
    }
    std::fs::write(site.path().join("favicon.svg"), "<svg/>").unwrap();
    let scratch = Arc::new(Scratch::create(TestDb::Sqlite).await);
    let mut config = Config::for_tests(scratch.url.clone());
    config.leptos_options.site_root = site.path().display().to_string().into();
    let app = TestApp::start(config, scratch, TestDb::Sqlite).await;
    let target = Target::new(app.addr, None).unwrap();
    let reader = scenarios::sign_up_many(&target, "page", 1)
        .await
        .unwrap()
        .pop()
        .unwrap();

    let report = scenarios::page(&target, &reader).await.unwrap();
    let file = |path: &str| {
        report
            .files
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, encoding, bytes)| (encoding.as_deref(), *bytes))
            .collect::<Vec<_>>()
    };
    // The page as sent: compressed by the server.
    let page = file("/chat");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].0, Some("br"));
    assert_eq!(file("/pkg/parley.js"), [(Some("br"), 9)]);
    assert_eq!(file("/pkg/__wasm_split.js"), [(None, 8)]);
    assert_eq!(file("/pkg/parley.css"), [(None, 6)]);
    assert_eq!(file("/favicon.svg"), [(None, 6)]);
    assert_eq!(
        report.total_bytes(),
        report
            .files
            .iter()
            .map(|(_, _, bytes)| bytes)
            .sum::<usize>()
    );
}
