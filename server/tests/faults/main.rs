//! The fault-injection harness. It runs the real `server` binary against a fresh PostgreSQL
//! database (and again against a SQLite file), lets many simulated users chat over real
//! WebSockets, and meanwhile:
//!
//! - kills the server with `kill -9` in the middle of the exchange and starts it again
//!   (10 times), and stops it twice with SIGTERM (graceful shutdown must end within a bound);
//! - cuts the server off from PostgreSQL twice, for a few seconds each (a TCP proxy in
//!   between drops every connection and refuses new ones);
//! - has every user cut their own connection at random moments.
//!
//! Then it checks, message by message, against what the database holds: every acknowledged
//! message is stored at the `seq` its ack gave and reached the other person exactly once and
//! in order; every message written was either stored exactly once or refused with a reason the
//! user saw. The numbers are printed (run with `--nocapture`); any lost or duplicated message
//! fails the test.
//!
//! `PARLEY_FAULTS_PAIRS` (default 10) and `PARLEY_FAULTS_MESSAGES` (per user, default 500) make
//! the run larger or smaller; the defaults are 10,000 messages.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a harness that can't go on should fail loudly"
)]

mod client;
// Signing up and connecting like a browser: the load benchmark's simulated people.
#[allow(dead_code, reason = "the benchmark uses all of it")]
#[path = "../../benches/load/driver.rs"]
mod driver;
#[path = "../common/server_process.rs"]
mod server_process;
#[path = "../common/tcp_proxy.rs"]
mod tcp_proxy;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use reqwest::Url;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

use app::model::{ConversationId, UserId};
use client::{Chatter, Plan, Progress, Report};
use server_process::{ServerProcess, free_port};
use tcp_proxy::TcpProxy;

/// The faults, in the order they happen, spread over the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `kill -9` of one instance (taking turns when there are several), then a restart.
    Kill,
    /// SIGTERM of one instance, then a restart.
    Terminate,
    DatabaseOutage,
    /// Redis cut off, when there are several instances.
    RedisOutage,
}

const FAULTS: [Fault; 14] = [
    Fault::Kill,
    Fault::Kill,
    Fault::DatabaseOutage,
    Fault::Kill,
    Fault::Kill,
    Fault::Terminate,
    Fault::Kill,
    Fault::Kill,
    Fault::DatabaseOutage,
    Fault::Kill,
    Fault::Kill,
    Fault::Terminate,
    Fault::Kill,
    Fault::Kill,
];
/// Two instances sharing PostgreSQL and Redis, each pair of people split across them.
const FAULTS_ACROSS_INSTANCES: [Fault; 10] = [
    Fault::Kill,
    Fault::RedisOutage,
    Fault::Kill,
    Fault::Terminate,
    Fault::RedisOutage,
    Fault::Kill,
    Fault::DatabaseOutage,
    Fault::Kill,
    Fault::RedisOutage,
    Fault::Kill,
];
/// How long each database or Redis outage lasts.
const OUTAGE: Duration = Duration::from_secs(3);
/// SIGTERM to exit, at most: the server's own bounds (10 s for requests, 5 s for sockets to
/// close) and some slack.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(20);
/// The whole exchange, faults included, must be over by then.
const RUN_WITHIN: Duration = Duration::from_secs(600);

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_every_message_arrives_once_and_in_order_through_crashes_cuts_and_outages() {
    exchange(Store::postgres().await, &FAULTS, 1, 500).await;
}

/// Two server processes behind no load balancer at all: each pair's two people are on
/// different instances, so every message crosses Redis; Redis is cut off three times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_instances_every_message_arrives_once_through_redis_outages_and_crashes() {
    exchange(Store::postgres().await, &FAULTS_ACROSS_INSTANCES, 2, 250).await;
}

/// SQLite, the zero-set-up default, through the same crashes (a file has no outage to stage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_every_message_arrives_once_and_in_order_through_crashes_and_cuts() {
    let faults: Vec<Fault> = FAULTS
        .into_iter()
        .filter(|f| *f != Fault::DatabaseOutage)
        .collect();
    exchange(Store::sqlite(), &faults, 1, 500).await;
}

/// One run: `instances` server processes (with Redis between them when more than one),
/// `per_user` messages from each person unless `PARLEY_FAULTS_MESSAGES` says otherwise.
async fn exchange(store: Store, faults: &[Fault], instances: usize, per_user: usize) {
    let pairs = setting("PARLEY_FAULTS_PAIRS", 10);
    let per_user = setting("PARLEY_FAULTS_MESSAGES", per_user);
    let scratch = tempfile::tempdir().expect("temp dir");
    let redis = if instances > 1 {
        let url = std::env::var("PARLEY_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        Some(TcpProxy::in_front_of(&url, 6379).await)
    } else {
        None
    };
    let mut env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), store.server_url(scratch.path())),
        (
            "PARLEY_DATA_DIR".into(),
            scratch.path().join("data").display().to_string(),
        ),
        (
            "LEPTOS_SITE_ROOT".into(),
            scratch.path().join("site").display().to_string(),
        ),
        ("LEPTOS_OUTPUT_NAME".into(), "parley".into()),
        ("RUST_LOG".into(), "warn".into()),
        ("PARLEY_REGISTRATIONS_PER_HOUR".into(), "100000".into()),
        ("PARLEY_MESSAGES_PER_MINUTE".into(), "1000000".into()),
    ];
    if let Some((_, through_proxy)) = &redis {
        env.push(("REDIS_URL".into(), through_proxy.clone()));
        env.push((
            "PARLEY_REDIS_PREFIX".into(),
            format!("parley_faults_{}_{}", std::process::id(), unix_micros()),
        ));
    }
    let mut servers = Vec::new();
    for instance in 0..instances {
        let log = scratch.path().join(format!("server-{instance}.log"));
        servers.push(ServerProcess::start(free_port(), env.clone(), log).await);
    }
    let first_instance = servers[0].addr();
    let last_instance = servers[instances - 1].addr();

    // Pairs of people, each pair in its own conversation (on two instances when there are).
    let mut chatters = Vec::new();
    for pair in 0..pairs {
        let mut one = Chatter::sign_up(first_instance, &format!("f{pair}a")).await;
        let mut two = Chatter::sign_up(last_instance, &format!("f{pair}b")).await;
        one.talk_to(&two.user.username).await;
        two.talk_to(&one.user.username).await;
        chatters.push(one);
        chatters.push(two);
    }
    let plan = Plan {
        messages: per_user,
        window: 4,
        conversation_total: 2 * per_user,
        cut_after_ms: (500, 4_000),
    };
    let total = chatters.len() * per_user;
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let users: Vec<_> = chatters
        .into_iter()
        .map(|chatter| {
            let conversation = chatter.conversation.expect("conversation");
            let progress = progress.clone();
            (conversation, tokio::spawn(chatter.run(plan, progress)))
        })
        .collect();
    let stopper = tokio::spawn({
        let progress = progress.clone();
        async move {
            tokio::time::sleep(RUN_WITHIN).await;
            progress.stop.store(true, Ordering::Relaxed);
        }
    });

    // The faults, each once the exchange has got that far.
    let mut shutdowns = Vec::new();
    for (index, fault) in faults.iter().enumerate() {
        let threshold = total * (5 + 87 * index / (faults.len() - 1)) / 100;
        while progress.confirmed.load(Ordering::Relaxed) < threshold {
            assert!(
                !progress.stop.load(Ordering::Relaxed),
                "ran out of time before fault {index}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let server = &mut servers[index % instances];
        match fault {
            Fault::Kill => server.kill_and_restart().await,
            Fault::Terminate => shutdowns.push(server.terminate_and_restart(SHUTDOWN_BOUND).await),
            Fault::DatabaseOutage => store.outage(OUTAGE).await,
            Fault::RedisOutage => {
                let (redis, _) = redis
                    .as_ref()
                    .expect("Redis outages need several instances");
                redis.cut();
                tokio::time::sleep(OUTAGE).await;
                redis.restore();
            }
        }
    }

    let mut reports: HashMap<ConversationId, Vec<Report>> = HashMap::new();
    for (conversation, user) in users {
        reports
            .entry(conversation)
            .or_default()
            .push(user.await.expect("user task"));
    }
    stopper.abort();
    let elapsed = started.elapsed();
    let stored = store.stored_messages(scratch.path()).await;
    let outcome = check(&reports, &stored);

    let count = |fault| faults.iter().filter(|f| **f == fault).count();
    let all: Vec<&Report> = reports.values().flatten().collect();
    let sum = |f: fn(&Report) -> usize| all.iter().map(|r| f(r)).sum::<usize>();
    println!(
        "fault harness on {} with {instances} instance(s): {pairs} conversations, {} users, {per_user} messages each",
        store.name(),
        all.len()
    );
    println!(
        "  {:<40}{:>10}",
        "messages written",
        sum(|r| r.written.len())
    );
    println!(
        "  {:<40}{:>10}",
        "messages stored",
        stored.values().map(Vec::len).sum::<usize>()
    );
    println!("  {:<40}{:>10}", "acknowledged", sum(|r| r.confirmed.len()));
    println!(
        "  {:<40}{:>10}",
        "refused (reported to the sender)",
        sum(|r| r.refused.len())
    );
    println!(
        "  {:<40}{:>10}",
        "retried after an error frame",
        sum(|r| r.retried.len())
    );
    println!("  {:<40}{:>10}", "kill -9 restarts", count(Fault::Kill));
    println!(
        "  {:<40}{:>10}",
        "SIGTERM restarts",
        count(Fault::Terminate)
    );
    let slowest_shutdown_ms = shutdowns.iter().max().map_or(0, Duration::as_millis);
    println!(
        "  {:<40}{:>10}",
        "slowest graceful shutdown (ms)", slowest_shutdown_ms
    );
    println!(
        "  {:<40}{:>10}",
        "database outages",
        count(Fault::DatabaseOutage)
    );
    println!("  {:<40}{:>10}", "Redis outages", count(Fault::RedisOutage));
    let received_live = sum(|r| r.received_live);
    println!(
        "  {:<40}{:>10}",
        "received live (not caught up)", received_live
    );
    println!("  {:<40}{:>10}", "connections", sum(|r| r.connections));
    println!(
        "  {:<40}{:>10}",
        "connections cut by clients",
        sum(|r| r.cuts)
    );
    println!(
        "  {:<40}{:>10}",
        "closed by the server with 1001",
        sum(|r| r.told_to_reconnect)
    );
    println!("  {:<40}{:>10}", "lost", outcome.lost.len());
    println!("  {:<40}{:>10}", "duplicated", outcome.duplicated.len());
    println!("  {:<40}{:>10}", "out of order", outcome.out_of_order.len());
    println!("  {:<40}{:>10.1?}", "elapsed", elapsed);
    println!(
        "{}",
        serde_json::json!({
            "harness": "faults",
            "database": store.name(),
            "messages": stored.values().map(Vec::len).sum::<usize>(),
            "lost": outcome.lost.len(),
            "duplicated": outcome.duplicated.len(),
            "out_of_order": outcome.out_of_order.len(),
            "kill_restarts": count(Fault::Kill),
            "sigterm_restarts": count(Fault::Terminate),
            "slowest_shutdown_ms": slowest_shutdown_ms,
            "database_outages": count(Fault::DatabaseOutage),
            "redis_outages": count(Fault::RedisOutage),
            "instances": instances,
            "received_live": received_live,
            "client_cuts": sum(|r| r.cuts),
            "elapsed_s": elapsed.as_secs_f64(),
        })
    );

    let failed = !(outcome.lost.is_empty()
        && outcome.duplicated.is_empty()
        && outcome.out_of_order.is_empty());
    if failed {
        for server in &servers {
            println!("server log (last lines):\n{}", server.log_tail(40));
        }
    }
    assert!(outcome.lost.is_empty(), "lost: {:?}", first(&outcome.lost));
    assert!(
        outcome.duplicated.is_empty(),
        "duplicated: {:?}",
        first(&outcome.duplicated)
    );
    assert!(
        outcome.out_of_order.is_empty(),
        "out of order: {:?}",
        first(&outcome.out_of_order)
    );
    assert_eq!(
        stored.values().map(Vec::len).sum::<usize>() + sum(|r| r.refused.len()),
        total,
        "every message written is stored or was refused"
    );
    // Every message was valid: a refusal would be the server failing, however politely.
    assert_eq!(
        sum(|r| r.refused.len()),
        0,
        "refused: {:?}",
        all.iter()
            .flat_map(|r| &r.refused)
            .take(5)
            .collect::<Vec<_>>()
    );
    // Every user got everything by themselves, before the time limit stopped anyone.
    assert!(
        all.iter().all(|r| r.finished),
        "some users were still waiting when time ran out"
    );
    // Many messages arrive live; the catch-up is for what cuts, crashes and outages make a
    // connection miss. With two instances every pair is split across them, so without a
    // working fan-out between instances none would. (How many do depends on when the outages
    // fall; runs have seen just under a fifth, so the bound is a tenth: far from none.)
    assert!(
        received_live * 10 > total,
        "only {received_live} of {total} messages arrived live"
    );
    assert!(
        sum(|r| r.told_to_reconnect) > 0,
        "SIGTERM tells connected clients to reconnect (close code 1001)"
    );
}

fn first(problems: &[String]) -> &[String] {
    &problems[..problems.len().min(5)]
}

/// What went wrong, each problem described.
#[derive(Default)]
struct Outcome {
    lost: Vec<String>,
    duplicated: Vec<String>,
    out_of_order: Vec<String>,
}

/// Compares what each user saw with what the database holds.
fn check(
    reports: &HashMap<ConversationId, Vec<Report>>,
    stored: &HashMap<ConversationId, Vec<(i64, UserId, String)>>,
) -> Outcome {
    let mut outcome = Outcome::default();
    for (conversation, people) in reports {
        let rows = stored
            .get(conversation)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // The database: seq 1, 2, 3… with no gap, each client_msg_id once.
        let mut by_id: HashMap<&str, i64> = HashMap::new();
        for (index, (seq, _, id)) in rows.iter().enumerate() {
            if *seq != index as i64 + 1 {
                outcome.lost.push(format!(
                    "{conversation:?}: seq {seq} at position {}",
                    index + 1
                ));
            }
            if by_id.insert(id, *seq).is_some() {
                outcome.duplicated.push(format!("{id} stored twice"));
            }
        }
        let expected: BTreeMap<i64, (UserId, String)> = rows
            .iter()
            .map(|(seq, sender, id)| (*seq, (*sender, id.clone())))
            .collect();
        for person in people {
            outcome.duplicated.extend(
                person
                    .conflicts
                    .iter()
                    .map(|c| format!("{conversation:?}: {c}")),
            );
            if person.live_duplicates > 0 {
                outcome.duplicated.push(format!(
                    "{:?} got {} message frames twice on one connection",
                    person.user, person.live_duplicates
                ));
            }
            // Acknowledged means stored, at that seq, for good (kill -9 included).
            for (id, seq) in &person.confirmed {
                if by_id.get(id.as_str()) != Some(seq) {
                    outcome.lost.push(format!(
                        "{id} acknowledged as {seq}, stored as {:?}",
                        by_id.get(id.as_str())
                    ));
                }
            }
            // Written means stored once, or refused with a reason the sender saw.
            for id in &person.written {
                let refused = person.refused.iter().any(|(r, ..)| r == id);
                match (by_id.contains_key(id.as_str()), refused) {
                    (false, false) => outcome
                        .lost
                        .push(format!("{id} neither stored nor refused")),
                    (true, true) => outcome.duplicated.push(format!("{id} refused but stored")),
                    _ => {}
                }
            }
            // Each person holds the conversation exactly as stored: nothing missing, nothing
            // extra, in the same order.
            for (seq, entry) in &expected {
                if person.view.get(seq) != Some(entry) {
                    outcome.lost.push(format!(
                        "{:?} is missing seq {seq} ({})",
                        person.user, entry.1
                    ));
                }
            }
            for seq in person.view.keys() {
                if !expected.contains_key(seq) {
                    outcome
                        .duplicated
                        .push(format!("{:?} holds seq {seq}, never stored", person.user));
                }
            }
            // A sender's messages keep the order they were written in, except those that
            // failed and were sent again.
            let mut last = 0;
            for id in person
                .written
                .iter()
                .filter(|id| !person.retried.contains(*id))
            {
                if let Some(seq) = by_id.get(id.as_str()) {
                    if *seq < last {
                        outcome
                            .out_of_order
                            .push(format!("{id} stored at {seq}, after {last}"));
                    }
                    last = *seq;
                }
            }
        }
    }
    outcome
}

fn unix_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Where the server keeps its data for one run.
enum Store {
    /// A fresh PostgreSQL database, reached through a proxy that can cut it off (at the URL
    /// given with it).
    Postgres(ScratchDatabase, TcpProxy, String),
    /// A SQLite file in the run's scratch directory.
    Sqlite,
}

impl Store {
    async fn postgres() -> Self {
        let database = ScratchDatabase::create().await;
        let (proxy, through_proxy) = TcpProxy::in_front_of(&database.direct_url(), 5432).await;
        Self::Postgres(database, proxy, through_proxy)
    }

    fn sqlite() -> Self {
        Self::Sqlite
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Postgres(..) => "PostgreSQL",
            Self::Sqlite => "SQLite",
        }
    }

    /// The server's `DATABASE_URL`.
    fn server_url(&self, scratch: &std::path::Path) -> String {
        match self {
            Self::Postgres(_, _, through_proxy) => through_proxy.clone(),
            Self::Sqlite => sqlite_url(scratch),
        }
    }

    /// Cuts the server off from its database for `how_long`.
    async fn outage(&self, how_long: Duration) {
        match self {
            Self::Postgres(_, proxy, _) => {
                proxy.cut();
                tokio::time::sleep(how_long).await;
                proxy.restore();
            }
            Self::Sqlite => unreachable!("no outage is staged for a SQLite file"),
        }
    }

    /// Every stored message: conversation → (seq, sender, `client_msg_id`) in seq order.
    async fn stored_messages(
        &self,
        scratch: &std::path::Path,
    ) -> HashMap<ConversationId, Vec<(i64, UserId, String)>> {
        let url = match self {
            Self::Postgres(database, ..) => database.direct_url(),
            Self::Sqlite => sqlite_url(scratch),
        };
        let db: DatabaseConnection = Database::connect(url).await.expect("connect");
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT conversation_id, seq, sender_id, client_msg_id FROM messages \
                 ORDER BY conversation_id, seq",
            ))
            .await
            .expect("read messages");
        let mut stored: HashMap<ConversationId, Vec<(i64, UserId, String)>> = HashMap::new();
        for row in rows {
            let conversation: i64 = row.try_get_by_index(0).expect("conversation_id");
            let seq: i64 = row.try_get_by_index(1).expect("seq");
            let sender: i64 = row.try_get_by_index(2).expect("sender_id");
            let id: String = row.try_get_by_index(3).expect("client_msg_id");
            stored
                .entry(ConversationId(conversation))
                .or_default()
                .push((seq, UserId(sender), id));
        }
        db.close().await.expect("close");
        stored
    }
}

fn sqlite_url(scratch: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", scratch.join("parley.db").display())
}

/// A PostgreSQL database that exists for this run only.
struct ScratchDatabase {
    admin: Url,
    name: String,
}

impl ScratchDatabase {
    async fn create() -> Self {
        let admin = std::env::var("PARLEY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        // The harness's runs start at once: the counter keeps their names apart even within
        // one microsecond.
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "parley_faults_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros()
        );
        let db = Database::connect(&admin)
            .await
            .expect("PostgreSQL should be running (see README: Tests)");
        db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create the database");
        db.close().await.expect("close");
        Self {
            admin: Url::parse(&admin).expect("PARLEY_TEST_POSTGRES_URL"),
            name,
        }
    }

    fn direct_url(&self) -> String {
        let mut url = self.admin.clone();
        url.set_path(&self.name);
        url.to_string()
    }
}

impl Drop for ScratchDatabase {
    /// Removes the database, whether the run passed or failed. Drop runs outside async code,
    /// so the clean-up gets a small runtime of its own.
    fn drop(&mut self) {
        let (admin, name) = (self.admin.to_string(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(db) = Database::connect(admin).await {
                    let _ = db
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = db.close().await;
                }
            });
        })
        .join();
    }
}
