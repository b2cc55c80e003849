//! Parley's load benchmark: drives a running server over real HTTP and WebSockets with as
//! many simulated people as asked, and prints a table and one JSON line per run.
//!
//! ```text
//! cargo bench -p server --bench load -- [--url http://127.0.0.1:3000] [--metrics-token T] SCENARIO [OPTIONS]
//!
//!   idle    [--users 10000] [--hold 5]                     memory per idle connection
//!   pairs   [--pairs 500] [--rate 5] [--seconds 20]        fixed rate per person: throughput, latency
//!   max     [--pairs 100] [--window 16] [--seconds 20]     as fast as the server takes them
//!           (both: [--webhooks true --database-url …]     with a webhook endpoint taking every message)
//!   history --database-url postgres://… [--messages 1000000] [--conversations 10] [--requests 300]
//!   page                                                   bytes of the chat page's first load
//!   api     --database-url … [--conversations 200] [--rate 1000] [--seconds 20]
//!                                                          messages through the server API, webhook lag
//! ```
//!
//! The server must allow the traffic: `PARLEY_REGISTRATIONS_PER_HOUR`,
//! `PARLEY_MESSAGES_PER_MINUTE`, `PARLEY_CONNECTIONS_PER_ADDRESS` and `PARLEY_SOCKETS_PER_USER`
//! well above the defaults, since every simulated person connects from 127.0.0.1
//! (`scripts/bench` starts one so).
//! `history` fills the server's PostgreSQL database directly (a million messages take minutes
//! to send) and then reads pages over HTTP. Loopback only: the load and the server share the
//! machine, as in `docs/performance.md`.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "statistics for display"
)]

mod api;
mod driver;
mod scenarios;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;

use app::model::ConversationId;
use driver::Target;
use scenarios::{FlowReport, Pace, percentile};

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("no runtime: {error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = runtime.block_on(run()) {
        eprintln!("load: {error}");
        std::process::exit(1);
    }
}

/// The command line: `--name value` options around one scenario name.
struct Args {
    scenario: String,
    options: HashMap<String, String>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut scenario = None;
        let mut options = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.strip_prefix("--") {
                // `cargo bench` adds `--bench` to every benchmark's command line.
                Some("bench") => {}
                Some(name) => {
                    let value = args.next().ok_or(format!("--{name} needs a value"))?;
                    options.insert(name.to_owned(), value);
                }
                None if scenario.is_none() => scenario = Some(arg),
                None => return Err(format!("unexpected argument `{arg}`")),
            }
        }
        Ok(Self {
            scenario: scenario.ok_or("name a scenario: idle, pairs, max or history")?,
            options,
        })
    }

    fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.options.get(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| format!("--{name} `{value}` is not a number")),
        }
    }
}

async fn run() -> Result<(), String> {
    let args = Args::parse()?;
    let url = args
        .options
        .get("url")
        .map_or("http://127.0.0.1:3000", String::as_str);
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .ok_or("--url must be http://host:port (loopback)")?
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("--url `{url}` is not http://ip:port"))?;
    let target = Target::new(addr, args.options.get("metrics-token").cloned())?;
    // Names no earlier run used: `b` and the time in base 36.
    let prefix = format!("b{}_", base36(chrono::Utc::now().timestamp_millis()));

    match args.scenario.as_str() {
        "idle" => {
            let users = args.get("users", 10_000)?;
            let hold = Duration::from_secs(args.get("hold", 5)?);
            eprintln!("idle: signing up {users} people (the server hashes each password)…");
            let report = scenarios::idle(&target, &prefix, users, hold).await?;
            println!(
                "{:<8}{:>10}{:>12}{:>14}{:>14}{:>16}",
                "scenario", "users", "connected", "RSS before", "RSS after", "per connection"
            );
            println!(
                "{:<8}{:>10}{:>12}{:>11} MB{:>11} MB{:>13} KB",
                "idle",
                report.users,
                report.connected,
                report.rss_before / 1_000_000,
                report.rss_after / 1_000_000,
                format!("{:.1}", report.bytes_per_connection() / 1024.0),
            );
            println!(
                "{}",
                json!({
                    "bench": "parley-load",
                    "scenario": "idle",
                    "users": report.users,
                    "connected": report.connected,
                    "rss_before_bytes": report.rss_before,
                    "rss_after_bytes": report.rss_after,
                    "bytes_per_connection": report.bytes_per_connection().round(),
                    "connect_seconds": report.connect_seconds,
                })
            );
            if report.connected < report.users {
                return Err(format!(
                    "{} of {} connections were closed early",
                    report.users - report.connected,
                    report.users
                ));
            }
        }
        "pairs" | "max" => {
            let seconds = args.get("seconds", 20)?;
            let (pairs, pace) = if args.scenario == "pairs" {
                (args.get("pairs", 500)?, Pace::Rate(args.get("rate", 5.0)?))
            } else {
                (
                    args.get("pairs", 100)?,
                    Pace::Window(args.get("window", 16)?),
                )
            };
            let receiver = if args.get("webhooks", false)? {
                let database_url = args
                    .options
                    .get("database-url")
                    .ok_or("--webhooks needs --database-url, to add the endpoint")?;
                let db = Database::connect(database_url.as_str())
                    .await
                    .map_err(|e| format!("database: {e}"))?;
                let receiver = api::Receiver::start().await?;
                receiver.register(&db).await?;
                Some(receiver)
            } else {
                None
            };
            eprintln!(
                "{}: {pairs} conversations, {pace:?}, {seconds} s{}…",
                args.scenario,
                if receiver.is_some() {
                    ", webhooks on"
                } else {
                    ""
                }
            );
            let report =
                scenarios::exchange(&target, &prefix, pairs, pace, Duration::from_secs(seconds))
                    .await?;
            print_flow(&args.scenario, pace, &report);
            if report.lost + report.duplicated + report.unacknowledged > 0
                || !report.mismatches.is_empty()
            {
                return Err("messages were lost, duplicated or left unacknowledged".into());
            }
            if let Some(receiver) = receiver {
                receiver
                    .wait_for(report.stored, Duration::from_secs(60))
                    .await;
                let heard = receiver.report();
                println!(
                    "webhooks: {} of {} messages heard, lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} duplicates",
                    heard.heard,
                    report.stored,
                    heard.lag_ms(50.0),
                    heard.lag_ms(99.0),
                    heard.lag_ms(100.0),
                    heard.duplicates
                );
                println!(
                    "{}",
                    json!({"bench": "parley-load", "scenario": format!("{}-webhooks", args.scenario), "stored": report.stored, "webhooks": heard.json()})
                );
                if heard.heard < report.stored || heard.forged > 0 {
                    return Err("webhooks were lost or did not verify".into());
                }
            }
        }
        "history" => history(&args, &target, &prefix).await?,
        "api" => {
            let database_url = args
                .options
                .get("database-url")
                .ok_or("api needs --database-url, to make its key and webhook endpoint")?;
            let report = api::api(
                &target,
                database_url,
                &prefix,
                args.get("conversations", 200)?,
                args.get("rate", 1000.0)?,
                args.get("seconds", 20)?,
            )
            .await?;
            print_api(&report);
            if report.failed > 0 || report.lost() > 0 || report.webhooks.forged > 0 {
                return Err("messages were refused, or webhooks lost or not verified".into());
            }
        }
        "page" => page(&target, &prefix).await?,
        other => return Err(format!("unknown scenario `{other}`")),
    }
    Ok(())
}

fn print_flow(scenario: &str, pace: Pace, report: &FlowReport) {
    let offered = match pace {
        Pace::Rate(rate) => format!("{:.0}", rate * 2.0 * report.pairs as f64),
        Pace::Window(window) => format!("window {window}"),
    };
    println!(
        "{:<9}{:>7}{:>11}{:>9}{:>12}{:>8}{:>8}{:>9}{:>9}{:>9}{:>6}{:>6}{:>7}",
        "scenario",
        "pairs",
        "offered/s",
        "sent",
        "delivered/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "ack p50",
        "ack p99",
        "lost",
        "dup",
        "unack"
    );
    println!(
        "{:<9}{:>7}{:>11}{:>9}{:>12.0}{:>8.1}{:>8.1}{:>9.1}{:>9.1}{:>9.1}{:>6}{:>6}{:>7}",
        scenario,
        report.pairs,
        offered,
        report.sent,
        report.delivered_per_second(),
        report.latency_ms(50.0),
        report.latency_ms(99.0),
        report.latency_ms(100.0),
        report.ack_ms(50.0),
        report.ack_ms(99.0),
        report.lost,
        report.duplicated,
        report.unacknowledged,
    );
    for error in &report.errors {
        eprintln!("  error: {error}");
    }
    for mismatch in report.mismatches.iter().take(10) {
        eprintln!("  history: {mismatch}");
    }
    println!(
        "{}",
        json!({
            "bench": "parley-load",
            "scenario": scenario,
            "pairs": report.pairs,
            "pace": format!("{pace:?}"),
            "seconds": report.seconds,
            "sent": report.sent,
            "acked": report.acked,
            "delivered": report.delivered,
            "stored": report.stored,
            "delivered_per_second": report.delivered_per_second().round(),
            "latency_ms": {
                "p50": report.latency_ms(50.0),
                "p99": report.latency_ms(99.0),
                "max": report.latency_ms(100.0),
            },
            "ack_ms": { "p50": report.ack_ms(50.0), "p99": report.ack_ms(99.0) },
            "lost": report.lost,
            "duplicated": report.duplicated,
            "unacknowledged": report.unacknowledged,
            "history_mismatches": report.mismatches.len(),
        })
    );
}

fn print_api(report: &api::ApiReport) {
    println!(
        "{:<9}{:>7}{:>11}{:>9}{:>10}{:>9}{:>9}{:>9}{:>10}{:>10}{:>10}{:>6}{:>6}",
        "scenario",
        "convs",
        "offered/s",
        "stored",
        "stored/s",
        "api p50",
        "api p99",
        "heard",
        "lag p50",
        "lag p99",
        "lag max",
        "lost",
        "dup"
    );
    println!(
        "{:<9}{:>7}{:>11.0}{:>9}{:>10.0}{:>9.1}{:>9.1}{:>9}{:>10.1}{:>10.1}{:>10.1}{:>6}{:>6}",
        "api",
        report.conversations,
        report.rate,
        report.stored,
        report.stored_per_second(),
        percentile(&report.answer_us, 50.0),
        percentile(&report.answer_us, 99.0),
        report.webhooks.heard,
        report.webhooks.lag_ms(50.0),
        report.webhooks.lag_ms(99.0),
        report.webhooks.lag_ms(100.0),
        report.lost(),
        report.webhooks.duplicates,
    );
    for error in &report.errors {
        eprintln!("  error: {error}");
    }
    println!(
        "{}",
        json!({
            "bench": "parley-load",
            "scenario": "api",
            "conversations": report.conversations,
            "offered_per_second": report.rate,
            "seconds": report.seconds,
            "sent": report.sent,
            "stored": report.stored,
            "failed": report.failed,
            "stored_per_second": report.stored_per_second().round(),
            "answer_ms": {
                "p50": percentile(&report.answer_us, 50.0),
                "p99": percentile(&report.answer_us, 99.0),
            },
            "lost": report.lost(),
            "webhooks": report.webhooks.json(),
        })
    );
}

/// Fills the database with `--messages` messages over `--conversations` conversations (made
/// over HTTP), shows PostgreSQL's plan for a history page, and times history requests.
async fn history(args: &Args, target: &Target, prefix: &str) -> Result<(), String> {
    let database_url = args
        .options
        .get("database-url")
        .ok_or("history needs --database-url (the server's PostgreSQL) to fill the table")?;
    let messages: i64 = args.get("messages", 1_000_000)?;
    let conversations: usize = args.get("conversations", 10)?;
    let requests: usize = args.get("requests", 300)?;
    let per_conversation = messages / conversations.max(1) as i64;

    let accounts = scenarios::sign_up_many(target, prefix, 2 * conversations).await?;
    let mut ids = Vec::new();
    for two in accounts.chunks(2) {
        ids.push(
            two[0]
                .open_conversation(target, &two[1].user.username)
                .await?
                .0,
        );
    }
    let db = Database::connect(database_url.as_str())
        .await
        .map_err(|e| format!("database: {e}"))?;
    if db.get_database_backend() != DbBackend::Postgres {
        return Err("history fills a PostgreSQL database".into());
    }
    let id_list = ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    eprintln!(
        "history: storing {per_conversation} messages in each of {conversations} conversations…"
    );
    let started = std::time::Instant::now();
    for sql in [
        format!(
            "INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, body, created_at) \
             SELECT c.id, g, CASE WHEN g % 2 = 0 THEN c.user_low_id ELSE c.user_high_id END, \
                    'seed-' || g, 'Seeded message number ' || g, \
                    now() - make_interval(secs => {per_conversation} - g) \
             FROM conversations c CROSS JOIN generate_series(1, {per_conversation}) AS g \
             WHERE c.id IN ({id_list})"
        ),
        format!(
            "UPDATE conversations SET last_seq = {per_conversation}, last_activity_at = now() \
             WHERE id IN ({id_list})"
        ),
        "ANALYZE messages".to_owned(),
    ] {
        db.execute_unprepared(&sql)
            .await
            .map_err(|e| format!("filling the table: {e}"))?;
    }
    let total = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM messages",
        ))
        .await
        .map_err(|e| e.to_string())?
        .and_then(|row| row.try_get::<i64>("", "n").ok())
        .unwrap_or(0);
    eprintln!(
        "history: {total} messages in the table ({:.0} s to fill)",
        started.elapsed().as_secs_f64()
    );

    // The plan of the query behind "scroll up" (the server's query, as sea-orm writes it).
    let middle = per_conversation / 2;
    let plan = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM messages \
                 WHERE conversation_id = {} AND seq < {middle} ORDER BY seq DESC LIMIT 51",
                ids[0]
            ),
        ))
        .await
        .map_err(|e| e.to_string())?;
    println!("query plan of a page before seq {middle}:");
    for row in plan {
        if let Ok(line) = row.try_get_by_index::<String>(0) {
            println!("  {line}");
        }
    }

    // Server time, as the server itself measures it (its latency histogram, before and
    // after): the round trips below also count the benchmark's own side.
    let (all_before, fast_before) = target.requests_within(SERVER_TIME_BOUND).await?;
    let report = scenarios::history(
        target,
        &accounts[0],
        ConversationId(ids[0]),
        per_conversation,
        requests,
    )
    .await?;
    let (all_after, fast_after) = target.requests_within(SERVER_TIME_BOUND).await?;
    // The difference also holds the first `/metrics` request, which is quick.
    let answered = all_after - all_before;
    let within = 100.0 * (fast_after - fast_before) / answered.max(1.0);
    println!(
        "{:<9}{:>10}{:>10}{:>10}{:>10}",
        "page", "requests", "p50 ms", "p99 ms", "max ms"
    );
    for (name, times) in [
        ("latest", &report.latest_us),
        ("before", &report.before_us),
        ("after", &report.after_us),
    ] {
        println!(
            "{:<9}{:>10}{:>10.2}{:>10.2}{:>10.2}",
            name,
            times.len(),
            percentile(times, 50.0),
            percentile(times, 99.0),
            percentile(times, 100.0)
        );
    }
    println!(
        "server time ≤ {} ms: {within:.1}% of {answered:.0} requests (the server's own histogram)",
        SERVER_TIME_BOUND_MS
    );
    let summary = |times: &[u32]| {
        json!({
            "p50_ms": percentile(times, 50.0),
            "p99_ms": percentile(times, 99.0),
            "max_ms": percentile(times, 100.0),
        })
    };
    println!(
        "{}",
        json!({
            "bench": "parley-load",
            "scenario": "history",
            "messages_in_table": total,
            "conversation_messages": per_conversation,
            "requests_per_kind": requests,
            "latest": summary(&report.latest_us),
            "before": summary(&report.before_us),
            "after": summary(&report.after_us),
            "server_requests": answered,
            "server_within_5ms_percent": within,
        })
    );
    Ok(())
}

/// Weighs the chat page's first load, as a browser with an empty cache fetches it.
async fn page(target: &Target, prefix: &str) -> Result<(), String> {
    let reader = scenarios::sign_up_many(target, prefix, 1)
        .await?
        .pop()
        .ok_or("no account")?;
    let report = scenarios::page(target, &reader).await?;
    println!("{:<36}{:>10}{:>12}", "file", "encoding", "bytes");
    for (path, encoding, bytes) in &report.files {
        println!(
            "{:<36}{:>10}{:>12}",
            path,
            encoding.as_deref().unwrap_or("-"),
            bytes
        );
    }
    println!("{:<36}{:>10}{:>12}", "total", "", report.total_bytes());
    println!(
        "{}",
        json!({
            "bench": "parley-load",
            "scenario": "page",
            "total_bytes": report.total_bytes(),
            "files": report
                .files
                .iter()
                .map(|(path, encoding, bytes)| json!({"path": path, "encoding": encoding, "bytes": bytes}))
                .collect::<Vec<_>>(),
        })
    );
    Ok(())
}

/// The history target: a page in at most 5 ms of server time (a bucket of the server's
/// latency histogram, as Prometheus writes it).
const SERVER_TIME_BOUND: &str = "0.005";
const SERVER_TIME_BOUND_MS: u32 = 5;

fn base36(mut value: i64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while value > 0 {
        out.push(digits[(value % 36) as usize]);
        value /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
