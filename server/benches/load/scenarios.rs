//! The load scenarios, each returning what it measured:
//!
//! - [`idle`]: many signed-in people with an open socket and nothing to say; the server's
//!   resident memory per connection;
//! - [`exchange`] with [`Pace::Rate`] (`pairs`): conversations where both people send at a
//!   fixed rate; delivered messages per second and end-to-end latency;
//! - [`exchange`] with [`Pace::Window`] (`max`): as fast as the server takes them, each sender
//!   keeping a fixed number of messages unacknowledged;
//! - [`history`]: pages of history from a conversation in a large table.
//!
//! Every loop is bounded in count and in time. After an exchange, every conversation is read
//! back from the server's history and compared with what the senders were told, so "lost" and
//! "duplicated" are checked against what was stored, not only against what arrived live.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt, stream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use app::{
    model::{ConversationId, HistoryPage, UserId},
    protocol::{ClientFrame, ServerFrame},
};

use crate::driver::{Account, Socket, Target};

/// Sign-ups in flight at once (each costs the server an Argon2 hash).
const SIGN_UPS_AT_ONCE: usize = 8;
/// Connections being opened at once.
const CONNECTS_AT_ONCE: usize = 64;
/// History requests in flight at once while verifying.
const READS_AT_ONCE: usize = 8;
/// After the sending time is over: longest wait for the last acks and deliveries.
const DRAIN_WITHIN: Duration = Duration::from_secs(15);
/// Text after the timestamp in every message body, so that messages have a realistic size.
const FILLER: &str = "Hello! Is the blue one still available, and could you ship it this week?";

/// Signs up `count` people named `{prefix}{i}`.
pub(crate) async fn sign_up_many(
    target: &Target,
    prefix: &str,
    count: usize,
) -> Result<Vec<Account>, String> {
    stream::iter(0..count)
        .map(|i| {
            let name = format!("{prefix}{i}");
            async move { Account::sign_up(target, &name).await }
        })
        .buffered(SIGN_UPS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// What [`idle`] measured.
#[derive(Debug, Clone)]
pub(crate) struct IdleReport {
    pub(crate) users: usize,
    pub(crate) connected: usize,
    /// The server's resident memory with everyone signed up and nobody connected.
    pub(crate) rss_before: u64,
    /// The same with everyone connected.
    pub(crate) rss_after: u64,
    pub(crate) connect_seconds: f64,
}

impl IdleReport {
    pub(crate) fn bytes_per_connection(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.connected.max(1) as f64
    }
}

/// `users` people connect and stay connected for `hold`, saying nothing.
pub(crate) async fn idle(
    target: &Target,
    prefix: &str,
    users: usize,
    hold: Duration,
) -> Result<IdleReport, String> {
    let accounts = sign_up_many(target, prefix, users).await?;
    let rss_before = settled_resident_bytes(target).await?;

    let started = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let holders: Vec<_> = stream::iter(accounts)
        .map(|account| async move { account.connect(target).await })
        .buffer_unordered(CONNECTS_AT_ONCE)
        .map(|socket| {
            let stopped = stopped.clone();
            socket.map(|socket| tokio::spawn(hold_open(socket, stopped)))
        })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let connect_seconds = started.elapsed().as_secs_f64();
    let rss_after = settled_resident_bytes(target).await?;
    tokio::time::sleep(hold).await;
    let still_open = holders.iter().filter(|task| !task.is_finished()).count();
    let _ = stop.send(true);
    for holder in holders {
        let _ = holder.await;
    }
    Ok(IdleReport {
        users,
        connected: still_open,
        rss_before,
        rss_after,
        connect_seconds,
    })
}

/// The server's resident memory once it has stopped changing (by less than 1% over half a
/// second, within ten seconds): what a burst of work freed has gone back to the system.
async fn settled_resident_bytes(target: &Target) -> Result<u64, String> {
    let mut last = target.resident_bytes().await?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = target.resident_bytes().await?;
        if now.abs_diff(last) * 100 < last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Reads (and so answers pings) until told to stop, then closes.
async fn hold_open(mut socket: Socket, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            message = socket.next() => if !matches!(message, Some(Ok(_))) { return },
            _ = stopped.changed() => break,
        }
    }
    let _ = socket.close(None).await;
}

/// How senders send in [`exchange`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// This many messages per second from each person, whatever happens (an open loop, so
    /// latency is measured from when a message was due, not from when it could be sent).
    Rate(f64),
    /// As fast as acknowledgements come back, with this many unacknowledged at once.
    Window(usize),
}

/// What [`exchange`] measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlowReport {
    pub(crate) pairs: usize,
    /// The sending time.
    pub(crate) seconds: f64,
    pub(crate) sent: usize,
    pub(crate) acked: usize,
    /// The other person's messages that arrived on their socket (each counted once).
    pub(crate) delivered: usize,
    /// Acknowledged to the sender, never delivered to the other person.
    pub(crate) lost: usize,
    /// Delivered twice on one socket, or stored twice.
    pub(crate) duplicated: usize,
    /// Sent and never acknowledged (refused, or no answer by the end).
    pub(crate) unacknowledged: usize,
    /// Messages the server's history holds for these conversations.
    pub(crate) stored: usize,
    /// Where history and acknowledgements disagree (a wrong `seq`, a gap, an unknown message).
    pub(crate) mismatches: Vec<String>,
    /// The first few error frames and failures.
    pub(crate) errors: Vec<String>,
    /// Send (when due) to arrival at the other person, in microseconds, sorted.
    pub(crate) latency_us: Vec<u32>,
    /// Send (when due) to the sender's ack, in microseconds, sorted.
    pub(crate) ack_us: Vec<u32>,
}

impl FlowReport {
    /// Delivered messages per second of sending time.
    pub(crate) fn delivered_per_second(&self) -> f64 {
        self.delivered as f64 / self.seconds.max(f64::EPSILON)
    }

    /// The `p`th percentile of the end-to-end latency, in milliseconds.
    pub(crate) fn latency_ms(&self, p: f64) -> f64 {
        percentile(&self.latency_us, p)
    }

    pub(crate) fn ack_ms(&self, p: f64) -> f64 {
        percentile(&self.ack_us, p)
    }
}

/// The `p`th percentile (0–100) of sorted microseconds, in milliseconds.
pub(crate) fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted_us.len() - 1) as f64).round() as usize;
    f64::from(sorted_us[rank.min(sorted_us.len() - 1)]) / 1000.0
}

/// One conversation's two people, as the exchange sees them.
#[derive(Default)]
struct Pair {
    /// Messages acknowledged to each side so far.
    acked: [AtomicUsize; 2],
    /// Each side has stopped sending and has every answer it will get.
    done_sending: [AtomicBool; 2],
}

/// What one person saw.
#[derive(Default)]
struct Seen {
    sent: usize,
    /// `client_msg_id` → the `seq` its ack gave.
    acked: HashMap<String, i64>,
    /// `seq`s of the other person's messages that arrived here.
    received: HashSet<i64>,
    duplicated: usize,
    errors: Vec<String>,
    latency_us: Vec<u32>,
    ack_us: Vec<u32>,
}

/// `pairs` conversations of two people each, both sending at `pace` for `duration`, then
/// every conversation read back from history.
pub(crate) async fn exchange(
    target: &Target,
    prefix: &str,
    pairs: usize,
    pace: Pace,
    duration: Duration,
) -> Result<FlowReport, String> {
    let accounts = sign_up_many(target, prefix, 2 * pairs).await?;
    let conversations: Vec<ConversationId> = stream::iter(accounts.chunks(2))
        .map(|two| async move {
            two[0]
                .open_conversation(target, &two[1].user.username)
                .await
        })
        .buffered(SIGN_UPS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let sockets: Vec<Socket> = stream::iter(&accounts)
        .map(|account| account.connect(target))
        .buffered(CONNECTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    eprintln!("{pairs} conversations ready; sending for {duration:?}");
    let base = Instant::now();
    let sending_ends = base + duration;
    let mut tasks = Vec::new();
    let mut sockets = sockets.into_iter();
    for (index, conversation) in conversations.iter().enumerate() {
        let pair = Arc::new(Pair::default());
        for side in 0..2 {
            let me = accounts[2 * index + side].user.id;
            let socket = sockets.next().ok_or("a socket is missing")?;
            let person = Person {
                me,
                side,
                conversation: *conversation,
                pair: pair.clone(),
                base,
                sending_ends,
            };
            tasks.push(tokio::spawn(person.run(socket, pace)));
        }
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.map_err(|e| e.to_string())?);
    }
    let seconds = duration.as_secs_f64();

    let mut report = FlowReport {
        pairs,
        seconds,
        ..FlowReport::default()
    };
    let stored: Vec<_> = stream::iter(conversations.iter().enumerate())
        .map(|(index, conversation)| stored_messages(target, &accounts[2 * index], *conversation))
        .buffered(READS_AT_ONCE)
        .collect()
        .await;
    for ((index, people), stored) in seen.chunks(2).enumerate().zip(stored) {
        let [one, two] = people else { continue };
        for (sender, receiver) in [(one, two), (two, one)] {
            report.lost += sender
                .acked
                .values()
                .filter(|seq| !receiver.received.contains(seq))
                .count();
        }
        match stored {
            Ok(stored) => {
                report.stored += stored.len();
                let accounts = &accounts[2 * index..2 * index + 2];
                compare(&stored, [one, two], accounts, &mut report);
            }
            Err(error) => report.mismatches.push(error),
        }
    }
    for person in &seen {
        report.sent += person.sent;
        report.acked += person.acked.len();
        report.delivered += person.received.len();
        report.duplicated += person.duplicated;
        report.latency_us.extend(&person.latency_us);
        report.ack_us.extend(&person.ack_us);
        if report.errors.len() < 5 {
            report.errors.extend(person.errors.iter().take(5).cloned());
        }
    }
    report.unacknowledged = report.sent - report.acked;
    report.latency_us.sort_unstable();
    report.ack_us.sort_unstable();
    Ok(report)
}

/// Checks history against what the two senders were told.
fn compare(
    stored: &[(i64, UserId, String)],
    people: [&Seen; 2],
    accounts: &[Account],
    report: &mut FlowReport,
) {
    let mut by_id = HashMap::new();
    for (index, (seq, sender, id)) in stored.iter().enumerate() {
        if *seq != index as i64 + 1 {
            report
                .mismatches
                .push(format!("history has seq {seq} at position {}", index + 1));
            return;
        }
        if by_id.insert((*sender, id.as_str()), *seq).is_some() {
            report.duplicated += 1;
        }
    }
    for (person, account) in people.into_iter().zip(accounts) {
        for (id, seq) in &person.acked {
            match by_id.get(&(account.user.id, id.as_str())) {
                Some(stored) if stored == seq => {}
                Some(stored) => report
                    .mismatches
                    .push(format!("{id} acknowledged as {seq}, stored as {stored}")),
                None => report
                    .mismatches
                    .push(format!("{id} acknowledged, not stored")),
            }
        }
    }
    let acked = people[0].acked.len() + people[1].acked.len();
    if stored.len() != acked {
        report.mismatches.push(format!(
            "{} messages stored in a conversation, {acked} acknowledged",
            stored.len()
        ));
    }
}

/// Every message of a conversation, oldest first: (`seq`, sender, `client_msg_id`).
async fn stored_messages(
    target: &Target,
    reader: &Account,
    conversation: ConversationId,
) -> Result<Vec<(i64, UserId, String)>, String> {
    let mut stored = Vec::new();
    let conversation = conversation.0.to_string();
    // Bounded: a page holds at least one message, and no run stores this many.
    for _ in 0..1_000_000 {
        let after = stored.last().map_or(0, |(seq, _, _)| *seq).to_string();
        let page: HistoryPage = reader
            .post(
                target,
                "history",
                &[("conversation_id", &conversation), ("after_seq", &after)],
            )
            .await?;
        stored.extend(
            page.messages
                .into_iter()
                .map(|m| (m.seq, m.sender.id, m.client_msg_id)),
        );
        if !page.has_more {
            return Ok(stored);
        }
    }
    Err("history did not end".into())
}

/// One simulated person in an exchange.
struct Person {
    me: UserId,
    /// 0 or 1: which of the pair.
    side: usize,
    conversation: ConversationId,
    pair: Arc<Pair>,
    /// Time zero of the run: message bodies carry when they were due, counted from here.
    base: Instant,
    sending_ends: Instant,
}

impl Person {
    async fn run(self, socket: Socket, pace: Pace) -> Seen {
        let mut seen = Seen::default();
        let (mut sink, mut incoming) = socket.split();
        // When each message was due, by its number (the `client_msg_id` is `m{number}`).
        let mut due_at: Vec<u64> = Vec::new();
        let mut outstanding = 0_usize;
        let interval = match pace {
            Pace::Rate(rate) => Duration::from_secs_f64(1.0 / rate.max(0.001)),
            Pace::Window(_) => Duration::ZERO,
        };
        // People start at different moments within one interval, as they would.
        let mut next_due = self.base + interval.mul_f64(fastrand::f64());
        let hard_stop = self.sending_ends + DRAIN_WITHIN;

        loop {
            let now = Instant::now();
            let sending = now < self.sending_ends;
            // Send whatever is due (or whatever the window allows).
            let mut batch = Vec::new();
            if sending {
                loop {
                    let due = match pace {
                        Pace::Rate(_) if next_due <= now => next_due,
                        Pace::Window(window) if outstanding + batch.len() < window => now,
                        _ => break,
                    };
                    let number = due_at.len();
                    let since_base =
                        u64::try_from(due.duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
                    due_at.push(since_base);
                    batch.push(send_frame(self.conversation, number, since_base));
                    next_due += interval;
                }
            }
            if !batch.is_empty() {
                outstanding += batch.len();
                seen.sent += batch.len();
                let mut frames = stream::iter(batch.into_iter().map(Ok));
                if let Err(error) = sink.send_all(&mut frames).await {
                    seen.errors.push(format!("send: {error}"));
                    break;
                }
            }
            if !sending && outstanding == 0 {
                self.pair.done_sending[self.side].store(true, Ordering::Release);
                let other = 1 - self.side;
                if self.pair.done_sending[other].load(Ordering::Acquire)
                    && seen.received.len() >= self.pair.acked[other].load(Ordering::Acquire)
                {
                    break;
                }
            }
            if now >= hard_stop {
                seen.errors.push(format!(
                    "{} unanswered, {} of the other's messages missing at the time limit",
                    outstanding,
                    self.pair.acked[1 - self.side]
                        .load(Ordering::Acquire)
                        .saturating_sub(seen.received.len())
                ));
                break;
            }

            let wake = match pace {
                Pace::Rate(_) if sending => tokio::time::Instant::from_std(next_due),
                _ => tokio::time::Instant::now() + Duration::from_millis(50),
            };
            tokio::select! {
                message = incoming.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else {
                            seen.errors.push(format!("unreadable frame: {text}"));
                            continue;
                        };
                        self.take(frame, &due_at, &mut outstanding, &mut seen);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        seen.errors.push(format!("socket: {error}"));
                        break;
                    }
                    None => {
                        seen.errors.push("the server closed the socket".into());
                        break;
                    }
                },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        self.pair.done_sending[self.side].store(true, Ordering::Release);
        let _ = sink.close().await;
        seen
    }

    /// Takes one frame from the server into account.
    fn take(&self, frame: ServerFrame, due_at: &[u64], outstanding: &mut usize, seen: &mut Seen) {
        let elapsed = |since_base: u64| {
            let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
            u32::try_from(now.saturating_sub(since_base) / 1_000).unwrap_or(u32::MAX)
        };
        match frame {
            ServerFrame::Ack {
                client_msg_id,
                message,
            } => {
                if let Some(due) = message_number(&client_msg_id).and_then(|n| due_at.get(n)) {
                    seen.ack_us.push(elapsed(*due));
                }
                if seen.acked.insert(client_msg_id, message.seq).is_none() {
                    *outstanding = outstanding.saturating_sub(1);
                    self.pair.acked[self.side].fetch_add(1, Ordering::AcqRel);
                }
            }
            ServerFrame::Message { message } if message.sender.id != self.me => {
                if !seen.received.insert(message.seq) {
                    seen.duplicated += 1;
                } else if let Some(due) = due_time(&message.body) {
                    seen.latency_us.push(elapsed(due));
                }
            }
            ServerFrame::Error {
                code,
                message,
                client_msg_id,
                ..
            } => {
                if client_msg_id.is_some() {
                    *outstanding = outstanding.saturating_sub(1);
                }
                if seen.errors.len() < 5 {
                    seen.errors.push(format!("{code:?}: {message}"));
                }
            }
            _ => {}
        }
    }
}

/// The `send` frame of message `number`, due `since_base` nanoseconds into the run.
fn send_frame(conversation: ConversationId, number: usize, since_base: u64) -> Message {
    let frame = ClientFrame::Send {
        conversation_id: conversation,
        client_msg_id: format!("m{number}"),
        body: format!("{since_base} {FILLER}"),
        attachment_ids: Vec::new(),
        with_card: false,
    };
    Message::Text(serde_json::to_string(&frame).unwrap_or_default().into())
}

fn message_number(client_msg_id: &str) -> Option<usize> {
    client_msg_id.strip_prefix('m')?.parse().ok()
}

fn due_time(body: &str) -> Option<u64> {
    body.split(' ').next()?.parse().ok()
}

/// What [`history`] measured: round trips of the `history` server function, in
/// microseconds, sorted, for each kind of page.
#[derive(Debug, Clone, Default)]
pub(crate) struct HistoryReport {
    pub(crate) latest_us: Vec<u32>,
    pub(crate) before_us: Vec<u32>,
    pub(crate) after_us: Vec<u32>,
}

/// `requests` pages of each kind (latest, before a random `seq`, after a random `seq`) of a
/// conversation holding `messages` messages, one request at a time.
pub(crate) async fn history(
    target: &Target,
    reader: &Account,
    conversation: ConversationId,
    messages: i64,
    requests: usize,
) -> Result<HistoryReport, String> {
    let mut report = HistoryReport::default();
    let conversation = conversation.0.to_string();
    for _ in 0..requests {
        for kind in 0..3 {
            let seq = fastrand::i64(1..=messages.max(1)).to_string();
            let mut form = vec![("conversation_id", conversation.as_str())];
            match kind {
                1 => form.push(("before_seq", &seq)),
                2 => form.push(("after_seq", &seq)),
                _ => {}
            }
            let started = Instant::now();
            let page: HistoryPage = reader.post(target, "history", &form).await?;
            let took = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            if page.messages.is_empty() && messages > 0 && kind == 0 {
                return Err("the latest page is empty".into());
            }
            [
                &mut report.latest_us,
                &mut report.before_us,
                &mut report.after_us,
            ][kind]
                .push(took);
        }
    }
    report.latest_us.sort_unstable();
    report.before_us.sort_unstable();
    report.after_us.sort_unstable();
    Ok(report)
}

/// The paths of the modules a script at `path` imports statically (`from"./x.js"`, as the
/// minified glue writes it, or `from "./x.js"`).
fn imported_modules(path: &str, source: &str) -> Vec<String> {
    let directory = path.rsplit_once('/').map_or("", |(directory, _)| directory);
    let mut modules = Vec::new();
    for quote in ["from\"./", "from \"./"] {
        for (at, _) in source.match_indices(quote) {
            if let Some(name) = source[at + quote.len()..].split('"').next() {
                modules.push(format!("{directory}/{name}"));
            }
        }
    }
    modules
}

/// What [`page`] measured: each file of the chat page's first load, as sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageReport {
    /// Path, encoding (`br`, `gzip`, or none), bytes over the wire.
    pub(crate) files: Vec<(String, Option<String>, usize)>,
}

impl PageReport {
    pub(crate) fn total_bytes(&self) -> usize {
        self.files.iter().map(|(_, _, bytes)| bytes).sum()
    }
}

/// The first load of the chat page by a signed-in person with an empty cache: the page, then
/// every file of this site it names (`href`/`src` starting with `/`: the script, the WASM
/// bundle it preloads, the stylesheet, the icon), then the modules those scripts import (the
/// loader of the lazily loaded pieces of the bundle).
pub(crate) async fn page(target: &Target, reader: &Account) -> Result<PageReport, String> {
    let (status, encoding, html) = reader.fetch(target, "/chat").await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("/chat answered {status}"));
    }
    // The files it names, read from an uncompressed copy (the page is sent compressed).
    let (_, _, plain) = reader.fetch_encoded(target, "/chat", "identity").await?;
    let text = String::from_utf8_lossy(&plain).into_owned();
    let mut report = PageReport {
        files: vec![("/chat".to_owned(), encoding, html.len())],
    };
    let mut seen = HashSet::new();
    let mut queue = VecDeque::new();
    for attribute in ["href=\"", "src=\""] {
        for (at, _) in text.match_indices(attribute) {
            let rest = &text[at + attribute.len()..];
            let Some(path) = rest.split('"').next() else {
                continue;
            };
            // Links to other pages (no file extension) are not part of this one's load.
            if path.starts_with('/') && !path.starts_with("//") && path.contains('.') {
                queue.push_back(path.to_owned());
            }
        }
    }
    // Bounded: every file is fetched once, and this site has a few dozen.
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        if seen.len() > 64 {
            return Err("the page names more than 64 files".into());
        }
        let (status, encoding, body) = reader.fetch(target, &path).await?;
        if status != reqwest::StatusCode::OK {
            return Err(format!("{path} answered {status}"));
        }
        report.files.push((path.clone(), encoding, body.len()));
        if path.ends_with(".js") {
            let (_, _, source) = reader.fetch_encoded(target, &path, "identity").await?;
            queue.extend(imported_modules(&path, &String::from_utf8_lossy(&source)));
        }
    }
    Ok(report)
}
