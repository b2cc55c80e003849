//! A simulated user: signs up over HTTP, then chats in one conversation over a real WebSocket
//! the way the browser app does. It keeps an outbox of messages not yet acknowledged and sends
//! them again, in order, on every new connection; it catches up from history after each
//! connection and whenever it sees a gap; it drops its own connection at random moments. It
//! records everything it is told, so that the harness can check the outcome message by message.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use app::{
    model::{ConversationId, HistoryPage, MessageView, UserId, UserView},
    protocol::{ClientFrame, ErrorCode, ServerFrame},
};

use crate::driver::{Account, Socket, Target};
/// After a send is refused with `internal`, the outbox goes out again after this long (what a
/// user pressing Retry does).
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// What one simulated user does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Messages this user writes.
    pub(crate) messages: usize,
    /// Most messages sent and not yet acknowledged at any time.
    pub(crate) window: usize,
    /// Messages the conversation holds once both people are done.
    pub(crate) conversation_total: usize,
    /// The connection is cut by the client after a random time in this range (ms).
    pub(crate) cut_after_ms: (u64, u64),
}

/// Shared by every user and the fault controller.
#[derive(Default)]
pub(crate) struct Progress {
    /// Messages acknowledged for the first time, over all users.
    pub(crate) confirmed: AtomicUsize,
    /// Time is up: every user stops and reports what it has.
    pub(crate) stop: AtomicBool,
}

/// Everything one user saw.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) user: Option<UserId>,
    /// The `client_msg_id`s this user wrote, in the order written.
    pub(crate) written: Vec<String>,
    /// Acknowledged messages and the `seq` their acks gave.
    pub(crate) confirmed: HashMap<String, i64>,
    /// Messages refused at least once with a retryable error (and sent again): the order of
    /// those among the sender's messages may change, as in any messenger after a failure.
    pub(crate) retried: HashSet<String>,
    /// Messages refused for good, with why: the user was told, so they are not lost.
    pub(crate) refused: Vec<(String, ErrorCode, String)>,
    /// The conversation as this user holds it: `seq` → (sender, `client_msg_id`).
    pub(crate) view: BTreeMap<i64, (UserId, String)>,
    /// The same `message` frame twice on one connection.
    pub(crate) live_duplicates: usize,
    /// The other person's messages that arrived as live frames (not fetched from history).
    pub(crate) received_live: usize,
    /// Contradictions: one `seq` with two messages, or one message acknowledged at two `seq`s.
    pub(crate) conflicts: Vec<String>,
    /// The user had everything (all its messages acknowledged, the whole conversation held)
    /// before the time limit.
    pub(crate) finished: bool,
    pub(crate) connections: usize,
    pub(crate) cuts: usize,
    /// Connections the server closed with 1001 (going away: shutting down).
    pub(crate) told_to_reconnect: usize,
}

impl Report {
    /// Every `seq` from 1 up to this one is held.
    fn complete_to(&self) -> i64 {
        let mut seq = 0;
        while self.view.contains_key(&(seq + 1)) {
            seq += 1;
        }
        seq
    }

    fn hold(&mut self, message: &MessageView) {
        let entry = (message.sender.id, message.client_msg_id.clone());
        match self.view.get(&message.seq) {
            Some(held) if *held != entry => self
                .conflicts
                .push(format!("seq {} holds {held:?} and {entry:?}", message.seq)),
            Some(_) => {}
            None => {
                self.view.insert(message.seq, entry);
            }
        }
    }
}

/// A signed-up user with a conversation to chat in.
pub(crate) struct Chatter {
    pub(crate) user: UserView,
    account: Account,
    target: Target,
    pub(crate) conversation: Option<ConversationId>,
}

impl Chatter {
    pub(crate) async fn sign_up(addr: SocketAddr, username: &str) -> Self {
        let target = Target::new(addr, None).expect("client");
        let account = Account::sign_up(&target, username).await.expect("sign up");
        Self {
            user: account.user.clone(),
            account,
            target,
            conversation: None,
        }
    }

    /// Opens the conversation with `other`.
    pub(crate) async fn talk_to(&mut self, other: &str) {
        let id = self
            .account
            .open_conversation(&self.target, other)
            .await
            .expect("open a conversation");
        self.conversation = Some(id);
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<T, String> {
        self.account.post(&self.target, endpoint, form).await
    }

    async fn connect(&self) -> Result<Socket, String> {
        self.account.connect(&self.target).await
    }

    /// Fetches everything after the complete part of the view.
    async fn catch_up(
        &self,
        conversation: ConversationId,
        report: &mut Report,
    ) -> Result<(), String> {
        loop {
            let after = report.complete_to().to_string();
            let page: HistoryPage = self
                .post(
                    "history",
                    &[
                        ("conversation_id", &conversation.0.to_string()),
                        ("after_seq", &after),
                    ],
                )
                .await?;
            for message in &page.messages {
                report.hold(message);
            }
            if !page.has_more {
                return Ok(());
            }
        }
    }

    /// Chats until this user's messages are all acknowledged and the conversation is complete
    /// here, or until `progress.stop`.
    pub(crate) async fn run(self, plan: Plan, progress: Arc<Progress>) -> Report {
        let conversation = self.conversation.expect("a conversation");
        let mut report = Report {
            user: Some(self.user.id),
            ..Report::default()
        };
        // Written and not yet acknowledged (or refused), oldest first.
        let mut outbox: VecDeque<String> = VecDeque::new();
        let mut failures = 0_u32;
        let done = |report: &Report, outbox: &VecDeque<String>| {
            report.written.len() == plan.messages
                && outbox.is_empty()
                && report.complete_to() >= plan.conversation_total as i64
        };

        'connections: while !progress.stop.load(Ordering::Relaxed) && !done(&report, &outbox) {
            let mut socket = match self.connect().await {
                Ok(socket) => socket,
                Err(_) => {
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            };
            failures = 0;
            report.connections += 1;
            // Everything unacknowledged goes again, in order: sends are idempotent.
            for id in &outbox {
                if socket.send(send_frame(conversation, id)).await.is_err() {
                    continue 'connections;
                }
            }
            let mut seen_here = HashSet::new();
            let mut behind = true;
            let mut retry_at = None;
            let cut_at = Instant::now()
                + Duration::from_millis(fastrand::u64(plan.cut_after_ms.0..=plan.cut_after_ms.1));
            let mut ticks = tokio::time::interval(Duration::from_millis(20));
            loop {
                tokio::select! {
                    incoming = socket.next() => match incoming {
                        Some(Ok(Message::Text(text))) => {
                            let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else {
                                report.conflicts.push(format!("unreadable frame {text}"));
                                continue;
                            };
                            match frame {
                                ServerFrame::Ack { client_msg_id, message } => {
                                    report.hold(&message);
                                    match report.confirmed.get(&client_msg_id) {
                                        Some(seq) if *seq != message.seq => report.conflicts.push(
                                            format!("{client_msg_id} acked as {seq} and {}", message.seq),
                                        ),
                                        Some(_) => {}
                                        None => {
                                            report.confirmed.insert(client_msg_id.clone(), message.seq);
                                            progress.confirmed.fetch_add(1, Ordering::Relaxed);
                                        }
                                    }
                                    outbox.retain(|id| *id != client_msg_id);
                                }
                                ServerFrame::Message { message } => {
                                    if !seen_here.insert(message.seq) {
                                        report.live_duplicates += 1;
                                    }
                                    if message.sender.id != self.user.id
                                        && !report.view.contains_key(&message.seq)
                                    {
                                        report.received_live += 1;
                                    }
                                    report.hold(&message);
                                    if message.seq > report.complete_to() + 1 {
                                        behind = true;
                                    }
                                }
                                ServerFrame::Error { client_msg_id: Some(id), code, message, .. } => {
                                    if matches!(code, ErrorCode::Internal | ErrorCode::RateLimited) {
                                        report.retried.insert(id);
                                        retry_at = Some(Instant::now() + RETRY_AFTER);
                                    } else {
                                        outbox.retain(|queued| *queued != id);
                                        report.refused.push((id, code, message));
                                    }
                                }
                                _ => {}
                            }
                        }
                        Some(Ok(Message::Close(close))) => {
                            if close.is_some_and(|c| c.code == CloseCode::Away) {
                                report.told_to_reconnect += 1;
                            }
                            continue 'connections;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => continue 'connections,
                    },
                    _ = ticks.tick() => {
                        if progress.stop.load(Ordering::Relaxed) {
                            break 'connections;
                        }
                        if behind && self.catch_up(conversation, &mut report).await.is_ok() {
                            behind = false;
                        }
                        if done(&report, &outbox) {
                            let _ = socket.close(None).await;
                            break 'connections;
                        }
                        if retry_at.is_some_and(|at| Instant::now() >= at) {
                            retry_at = None;
                            for id in &outbox {
                                if socket.send(send_frame(conversation, id)).await.is_err() {
                                    continue 'connections;
                                }
                            }
                        }
                        while retry_at.is_none()
                            && outbox.len() < plan.window
                            && report.written.len() < plan.messages
                        {
                            let id = format!("{}-{}", self.user.username, report.written.len());
                            report.written.push(id.clone());
                            outbox.push_back(id.clone());
                            if socket.send(send_frame(conversation, &id)).await.is_err() {
                                continue 'connections;
                            }
                        }
                        if Instant::now() >= cut_at {
                            // Cut off: no close frame, the connection just goes.
                            report.cuts += 1;
                            drop(socket);
                            continue 'connections;
                        }
                    }
                }
            }
        }
        report.finished = done(&report, &outbox);
        // A last look at history, so that what was missed at the very end is counted fairly.
        let _ = self.catch_up(conversation, &mut report).await;
        report
    }
}

fn send_frame(conversation: ConversationId, id: &str) -> Message {
    let frame = ClientFrame::Send {
        conversation_id: conversation,
        client_msg_id: id.to_owned(),
        body: format!("message {id}"),
        attachment_ids: Vec::new(),
        with_card: false,
    };
    Message::Text(serde_json::to_string(&frame).expect("encode").into())
}

/// 50 ms doubling to 1 s, with up to 50 % random spread.
fn backoff(failures: u32) -> Duration {
    let base = 50_u64.saturating_mul(1 << failures.min(5)).min(1_000);
    Duration::from_millis(base + fastrand::u64(0..=base / 2))
}
