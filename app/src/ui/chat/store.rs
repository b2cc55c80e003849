//! [`ChatStore`]: the chat page's state in the browser, shared by its components through
//! context, and the one place where server frames change it.
//!
//! The socket task (`live`) feeds frames in through [`ChatStore::apply`]; components read the
//! signals and call [`ChatStore::send_message`] and friends. Everything here is signals, so the
//! store is `Copy` and can be moved into any closure.
//!
//! Every signal type and every map type costs its own copy of generic code in the WASM
//! bundle, so the store keeps few of them: what the page never shows lives in one
//! [`StoredValue`], and the small keyed collections are lists of pairs, not hash maps
//! (docs/performance.md).

use chrono::{DateTime, Utc};
use futures::channel::mpsc::UnboundedSender;
use leptos::prelude::*;

use super::{
    notify, outbox,
    thread::{Pending, Thread},
};
use crate::{
    model::{
        AttachmentView, CONVERSATION_PAGE_SIZE, ConversationId, ConversationSummary,
        MessagePreview, MessageView, TYPING_TTL_MS, UserId, UserView, preview_text,
    },
    protocol::{ClientFrame, ServerFrame},
};

/// The state of the live connection, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// First connection attempt after the page loaded.
    Connecting,
    /// Connected and receiving live events.
    Online,
    /// The connection dropped; retrying with backoff.
    Reconnecting,
    /// The server closed this tab's connection to make room for a newer one of the same
    /// person (too many tabs open); it reconnects once the tab is looked at again.
    Paused,
}

impl Connection {
    /// The value of the `data-connection` attribute on the chat page.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Reconnecting => "reconnecting",
            Self::Paused => "paused",
        }
    }
}

/// Someone typing in a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Typist {
    pub conversation_id: ConversationId,
    pub name: String,
    /// When the indicator goes away unless renewed, in browser milliseconds.
    pub until_ms: f64,
}

/// The chat page's state.
#[derive(Clone, Copy)]
pub struct ChatStore {
    /// The signed-in user (known once `me` or the socket's `ready` frame has answered).
    pub me: RwSignal<Option<UserView>>,
    /// The user's conversations, latest activity first.
    pub conversations: RwSignal<Vec<ConversationSummary>>,
    /// Whether the conversation list has been fetched at least once.
    pub conversations_loaded: RwSignal<bool>,
    /// Whether older conversations may be left to fetch (the last page fetched was full).
    pub conversations_more: RwSignal<bool>,
    /// The open conversation, once it is known.
    pub active: RwSignal<Option<ConversationSummary>>,
    /// The open conversation's stored messages.
    pub thread: RwSignal<Thread>,
    /// Messages sent from this tab that the server has not confirmed, in any conversation.
    pub pending: RwSignal<Vec<Pending>>,
    /// Who is typing, at most one person per conversation.
    pub typing: RwSignal<Vec<Typist>>,
    /// The live connection's state.
    pub connection: RwSignal<Connection>,
    /// Bumped whenever the conversation list should be fetched again.
    pub conversations_stale: RwSignal<u32>,
    /// Bumped when what is on screen should be checked for messages now seen (the page became
    /// visible, a catch-up finished); the message log does the checking.
    pub seen_checks: RwSignal<u32>,
    /// What the store keeps for itself and the page never shows.
    inner: StoredValue<Inner>,
}

/// The store's unseen state (one `StoredValue` for all of it; see the module's documentation).
#[derive(Default)]
struct Inner {
    /// Frames to the server; `None` while disconnected (frames are then dropped, and pending
    /// messages are resent on reconnection instead).
    outbox: Option<UnboundedSender<ClientFrame>>,
    /// Whether a catch-up is running, and how many have been asked for: asking while one runs
    /// makes it go round once more instead of starting a second one.
    catch_up: CatchUp,
    /// `client_msg_id`s this tab knows are done with (stored, or deleted by the user): the
    /// saved outbox, which other tabs of the user share, must not keep them. Each save keeps
    /// only those the saved outbox still held (`outbox::save`), so this stays short.
    settled: Vec<String>,
    /// The delivery and read positions sent on this connection, per conversation: a receipt
    /// goes out only when it moves a position forward. Forgotten on reconnection, since frames
    /// sent while disconnected are lost.
    reported: Vec<(ConversationId, Reported)>,
    /// Presence frames heard, numbered in order of arrival: a list fetched before the latest
    /// of them must not undo it.
    presence: PresenceLog,
    /// The user switched read receipts off while this page was open: read positions of others
    /// still on their way (a frame, a list asked for earlier) must not show.
    receipts_hidden: bool,
}

/// The latest presence frame heard about each person.
#[derive(Debug, Clone, Default)]
struct PresenceLog {
    heard: u64,
    latest: Vec<Heard>,
}

/// The latest presence frame heard about one person, and its number.
#[derive(Debug, Clone)]
struct Heard {
    user_id: UserId,
    number: u64,
    online: bool,
    last_seen_at: Option<DateTime<Utc>>,
}

/// The positions reported for one conversation.
#[derive(Debug, Clone, Copy, Default)]
struct Reported {
    delivered: i64,
    read: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct CatchUp {
    running: bool,
    requested: u64,
}

impl ChatStore {
    pub fn new() -> Self {
        Self {
            me: RwSignal::new(None),
            conversations: RwSignal::new(Vec::new()),
            conversations_loaded: RwSignal::new(false),
            conversations_more: RwSignal::new(false),
            active: RwSignal::new(None),
            thread: RwSignal::new(Thread::default()),
            pending: RwSignal::new(Vec::new()),
            typing: RwSignal::new(Vec::new()),
            connection: RwSignal::new(Connection::Connecting),
            conversations_stale: RwSignal::new(0),
            seen_checks: RwSignal::new(0),
            inner: StoredValue::new(Inner::default()),
        }
    }

    /// Hands the store the sender half of a new connection (or `None` when it drops).
    pub fn set_outbox(&self, outbox: Option<UnboundedSender<ClientFrame>>) {
        self.inner.update_value(|inner| inner.outbox = outbox);
    }

    /// Sends a frame if connected; otherwise drops it.
    pub fn send_frame(&self, frame: ClientFrame) {
        self.inner.with_value(|inner| {
            if let Some(outbox) = &inner.outbox {
                // The socket task takes the outbox back (`None`) as soon as its connection
                // ends; a frame sent in between is lost with the connection (see `outbox`).
                let _ = outbox.unbounded_send(frame);
            }
        });
    }

    /// Sends a message: it shows at once as "sending" and goes out now, or on reconnection.
    pub fn send_message(
        &self,
        conversation_id: ConversationId,
        client_msg_id: String,
        body: String,
        attachments: Vec<AttachmentView>,
        now: DateTime<Utc>,
    ) {
        let item = Pending {
            conversation_id,
            client_msg_id,
            body,
            attachments,
            created_at: now,
            failed: None,
        };
        self.pending.update(|pending| pending.push(item.clone()));
        self.send_pending(item);
    }

    /// Sends again every message still waiting for its acknowledgement (after a
    /// reconnection). Messages the server refused stay refused until the user retries them.
    /// The server stores each message at most once, whatever the number of tries.
    pub fn resend_pending(&self) {
        for item in self.pending.get_untracked() {
            if item.failed.is_none() {
                self.send_pending(item);
            }
        }
    }

    /// Unread messages over all conversations.
    pub fn total_unread(&self) -> i64 {
        self.conversations
            .with(|list| list.iter().map(|c| c.unread.max(0)).sum())
    }

    /// A page title that starts with the number of unread messages, if any: "(3) Ann".
    pub fn title(&self, text: &str) -> String {
        match self.total_unread() {
            0 => text.to_owned(),
            n => format!("({n}) {text}"),
        }
    }

    /// Takes back the outbox saved before a reload: the messages not already waiting here are
    /// added, oldest first, and sent if connected (else on connection).
    pub fn restore_pending(&self, saved: Vec<Pending>) {
        if saved.is_empty() {
            return;
        }
        self.pending.update(|pending| {
            for item in saved {
                if !pending
                    .iter()
                    .any(|p| p.client_msg_id == item.client_msg_id)
                {
                    pending.push(item);
                }
            }
        });
        self.resend_pending();
    }

    /// Saves `user`'s outbox (see `outbox`); reads, and so tracks, [`ChatStore::pending`].
    pub fn save_outbox(&self, user: UserId) {
        self.pending.with(|pending| {
            self.inner
                .update_value(|inner| outbox::save(user, pending, &mut inner.settled));
        });
    }

    /// Records that a message is done with (see [`Inner::settled`]).
    fn settle(&self, client_msg_id: &str) {
        self.inner.update_value(|inner| {
            if !inner.settled.iter().any(|id| id == client_msg_id) {
                inner.settled.push(client_msg_id.to_owned());
            }
        });
    }

    /// The user gave up on a message the server refused: it is removed.
    pub fn discard(&self, client_msg_id: &str) {
        self.settle(client_msg_id);
        self.pending
            .update(|pending| pending.retain(|p| p.client_msg_id != client_msg_id));
    }

    /// The user asked to try the refused messages again.
    pub fn retry_failed(&self) {
        let failed: Vec<Pending> = self
            .pending
            .get_untracked()
            .into_iter()
            .filter(|p| p.failed.is_some())
            .collect();
        self.pending.update(|pending| {
            for item in pending.iter_mut() {
                item.failed = None;
            }
        });
        for item in failed {
            self.send_pending(item);
        }
    }

    fn send_pending(&self, item: Pending) {
        self.send_frame(ClientFrame::Send {
            conversation_id: item.conversation_id,
            client_msg_id: item.client_msg_id,
            body: item.body,
            attachment_ids: item.attachments.iter().map(|a| a.id).collect(),
        });
    }

    /// Applies a frame from the server.
    pub fn apply(&self, frame: ServerFrame, now_ms: f64) {
        match frame {
            ServerFrame::Ready { user } => {
                self.me.set(Some(user));
                self.inner.update_value(|inner| inner.reported.clear());
            }
            ServerFrame::Ack { message, .. } | ServerFrame::Message { message } => {
                self.receive(message, true);
            }
            ServerFrame::Typing {
                conversation_id,
                user,
                active,
            } => self.typing.update(|typing| {
                typing.retain(|t| t.conversation_id != conversation_id);
                if active {
                    typing.push(Typist {
                        conversation_id,
                        name: user.display_name,
                        until_ms: now_ms + f64::from(TYPING_TTL_MS),
                    });
                }
            }),
            ServerFrame::Read {
                conversation_id,
                user_id,
                seq,
            } => {
                if self.is_me(user_id) {
                    // Read in another tab or device: this one's notification goes too.
                    notify::clear(conversation_id);
                    self.update_summary(conversation_id, |summary| {
                        summary.unread = (summary.last_seq - seq).max(0).min(summary.unread);
                    });
                } else {
                    let hidden = self.inner.with_value(|inner| inner.receipts_hidden);
                    self.update_summary(conversation_id, |summary| {
                        if !hidden {
                            summary.other_read_seq =
                                Some(summary.other_read_seq.unwrap_or(0).max(seq));
                        }
                        summary.other_delivered_seq = summary.other_delivered_seq.max(seq);
                    });
                }
            }
            ServerFrame::Delivered {
                conversation_id,
                user_id,
                seq,
            } => {
                if !self.is_me(user_id) {
                    self.update_summary(conversation_id, |summary| {
                        summary.other_delivered_seq = summary.other_delivered_seq.max(seq);
                    });
                }
            }
            // Read receipts switched off: nobody's show any more. Switched on: the list,
            // fetched again, says how far the others have read.
            ServerFrame::Settings { settings } => {
                self.inner
                    .update_value(|inner| inner.receipts_hidden = !settings.read_receipts);
                if settings.read_receipts {
                    self.conversations_stale.update(|n| *n += 1);
                } else {
                    self.conversations.update(|list| {
                        for summary in list.iter_mut() {
                            summary.other_read_seq = None;
                        }
                    });
                }
            }
            ServerFrame::Error {
                client_msg_id: Some(client_msg_id),
                message,
                ..
            } => self.pending.update(|pending| {
                if let Some(item) = pending
                    .iter_mut()
                    .find(|p| p.client_msg_id == client_msg_id)
                {
                    item.failed = Some(message);
                }
            }),
            ServerFrame::Error { message, .. } => {
                leptos::logging::warn!("server refused a frame: {message}");
            }
            // Kept in the conversation list (not in `active`, whose changes reset the composer);
            // the open conversation's header reads it from there.
            ServerFrame::Presence {
                user_id,
                online,
                last_seen_at,
            } => {
                self.inner.update_value(|inner| {
                    let log = &mut inner.presence;
                    log.heard += 1;
                    log.latest.retain(|heard| heard.user_id != user_id);
                    log.latest.push(Heard {
                        user_id,
                        number: log.heard,
                        online,
                        last_seen_at,
                    });
                });
                self.conversations.update(|list| {
                    for summary in list.iter_mut().filter(|s| s.other.id == user_id) {
                        summary.other_online = online;
                        if last_seen_at.is_some() {
                            summary.other_last_seen_at = last_seen_at;
                        }
                    }
                });
            }
            ServerFrame::Pong => {}
        }
    }

    fn is_me(&self, user: UserId) -> bool {
        self.me
            .with_untracked(|me| me.as_ref().is_some_and(|me| me.id == user))
    }

    /// A stored message arrived (`live`, or as an ack, or in catch-up): show it once, update
    /// the conversation list, clear the sender's typing indicator, and mark it read if it is in
    /// the open conversation. Only live messages notify: catch-up may bring messages read long
    /// ago on another device.
    pub fn receive(&self, message: MessageView, live: bool) {
        let mine = self.is_me(message.sender.id);
        if mine {
            // Settled first: the pending change below saves the outbox.
            self.settle(&message.client_msg_id);
            self.pending.update(|pending| {
                pending.retain(|p| p.client_msg_id != message.client_msg_id);
            });
        } else {
            self.typing.update(|typing| {
                typing.retain(|t| t.conversation_id != message.conversation_id);
            });
        }

        let is_open = self
            .thread
            .with_untracked(|t| t.conversation_id == Some(message.conversation_id));
        let added = if is_open {
            self.thread
                .try_update(|thread| thread.merge([message.clone()]))
                .unwrap_or(0)
        } else {
            0
        };

        // A message counts as unread until it has been on screen (see `mark_seen`).
        let hidden = notify::page_hidden();
        let mut fresh = false;
        let known = self.update_summary(message.conversation_id, |summary| {
            if message.seq > summary.last_seq {
                fresh = true;
                summary.last_seq = message.seq;
                summary.last_message = Some(MessagePreview::of(&message));
                summary.last_activity_at = message.created_at;
                if !mine {
                    summary.unread += 1;
                }
            }
            if !mine {
                // Writing a message means having received and read all before it.
                summary.other_delivered_seq = summary.other_delivered_seq.max(message.seq);
                if let Some(read) = &mut summary.other_read_seq {
                    *read = (*read).max(message.seq);
                }
            }
        });
        if !known {
            // A conversation someone else just started with us.
            fresh = true;
            self.conversations_stale.update(|n| *n += 1);
        }
        if live && fresh && !mine && hidden {
            notify::show(&message, &preview_text(&message.body));
        }
        // Catch-up acknowledges a whole page at once (`acknowledge`), not message by message.
        if live && !mine {
            self.acknowledge(message.conversation_id, message.seq);
        }
        if is_open && added > 0 {
            self.check_seen();
        }
    }

    /// Tells the server that this device has received a conversation's messages up to `seq`
    /// (once per position and connection).
    pub fn acknowledge(&self, conversation_id: ConversationId, seq: i64) {
        if seq <= 0 || !self.report(conversation_id, seq, |r| &mut r.delivered) {
            return;
        }
        self.send_frame(ClientFrame::Delivered {
            conversation_id,
            seq,
        });
    }

    /// Acknowledges the latest message of every conversation in the list with unread
    /// messages (the list shows it). The others need nothing: reading counts as delivery.
    fn acknowledge_list(&self) {
        let latest: Vec<(ConversationId, i64)> = self.conversations.with_untracked(|list| {
            list.iter()
                .filter(|s| s.unread > 0)
                .map(|s| (s.id, s.last_seq))
                .collect()
        });
        for (conversation_id, seq) in latest {
            self.acknowledge(conversation_id, seq);
        }
    }

    /// Records that `seq` is being reported for one of a conversation's positions; `false` if
    /// it was already reported (or a later one was) on this connection. Nothing is recorded
    /// while disconnected, so that the report is made again once connected.
    fn report(
        &self,
        conversation_id: ConversationId,
        seq: i64,
        position: impl FnOnce(&mut Reported) -> &mut i64,
    ) -> bool {
        let mut moved = false;
        self.inner.update_value(|inner| {
            if inner.outbox.is_none() {
                return;
            }
            let reported = &mut inner.reported;
            let index = match reported.iter().position(|(id, _)| *id == conversation_id) {
                Some(index) => index,
                None => {
                    reported.push((conversation_id, Reported::default()));
                    reported.len() - 1
                }
            };
            let position = position(&mut reported[index].1);
            if seq > *position {
                *position = seq;
                moved = true;
            }
        });
        moved
    }

    /// Receipts were refused for going too fast: forgets what was reported and reports again
    /// (the caller waits as long as the server said first).
    pub fn resend_receipts(&self) {
        self.inner.update_value(|inner| inner.reported.clear());
        let (open, newest) = self
            .thread
            .with_untracked(|t| (t.conversation_id, t.last_seq()));
        if let Some(conversation_id) = open {
            self.acknowledge(conversation_id, newest);
        }
        self.acknowledge_list();
        self.check_seen();
    }

    /// Asks the message log to check which messages are on screen now.
    pub fn check_seen(&self) {
        self.seen_checks.update(|n| *n += 1);
    }

    /// The messages of the open conversation up to `seq` have been on screen: they are read,
    /// here, in the user's other tabs and (with read receipts) for the sender. A hidden page
    /// sees nothing; the visibility handler asks again once it is seen.
    pub fn mark_seen(&self, seq: i64) {
        if notify::page_hidden() {
            return;
        }
        let Some(conversation_id) = self.thread.with_untracked(|t| t.conversation_id) else {
            return;
        };
        let mut unread = 0;
        self.update_summary(conversation_id, |summary| {
            summary.unread = (summary.last_seq - seq).max(0).min(summary.unread);
            unread = summary.unread;
        });
        if unread == 0 {
            notify::clear(conversation_id);
        }
        if seq > 0 && self.report(conversation_id, seq, |r| &mut r.read) {
            self.send_frame(ClientFrame::Read {
                conversation_id,
                seq,
            });
        }
    }

    /// Changes one conversation in the list and keeps the list in activity order. Returns
    /// whether the conversation was in the list.
    fn update_summary(
        &self,
        conversation_id: ConversationId,
        change: impl FnOnce(&mut ConversationSummary),
    ) -> bool {
        let mut found = false;
        self.conversations.update(|list| {
            if let Some(index) = list.iter().position(|s| s.id == conversation_id) {
                change(&mut list[index]);
                let summary = list.remove(index);
                insert_by_activity(list, summary);
                found = true;
            }
        });
        found
    }

    /// Asks for a catch-up. Returns `true` if the caller should run it (none was running);
    /// otherwise the running one will go round again.
    pub fn request_catch_up(&self) -> bool {
        let mut start = false;
        self.inner.update_value(|Inner { catch_up: c, .. }| {
            c.requested += 1;
            start = !c.running;
            c.running = true;
        });
        start
    }

    /// How many catch-ups have been asked for so far.
    pub fn catch_up_requests(&self) -> u64 {
        self.inner.with_value(|inner| inner.catch_up.requested)
    }

    /// A catch-up round that started when `handled` had been asked for is done. Returns
    /// `true` if more were asked for meanwhile and it must go round again.
    pub fn finish_catch_up(&self, handled: u64) -> bool {
        let mut again = false;
        self.inner.update_value(|Inner { catch_up: c, .. }| {
            again = c.requested != handled;
            c.running = again;
        });
        again
    }

    /// Whether the open conversation is missing messages it should fetch.
    pub fn needs_catch_up(&self) -> bool {
        self.thread.with_untracked(Thread::has_gap)
    }

    /// How many presence frames have been heard: taken just before asking for the list, and
    /// handed to [`ChatStore::replace_conversations`] with the answer.
    pub fn presence_heard(&self) -> u64 {
        self.inner.with_value(|inner| inner.presence.heard)
    }

    /// Takes a freshly fetched conversation list, asked for when `presence_heard` said
    /// `asked_at`. What changed here after the list was read on the server stays: a
    /// conversation with a newer message keeps its local copy, receipt positions only move
    /// forward, and presence frames heard since the request win over the list's.
    ///
    /// `fresh` is the first page of the list. When it is full, the conversations already held
    /// beyond its end (older pages, fetched as the list was scrolled) stay.
    pub fn replace_conversations(&self, fresh: Vec<ConversationSummary>, asked_at: u64) {
        let (presence, receipts_hidden) = self
            .inner
            .with_value(|inner| (inner.presence.clone(), inner.receipts_hidden));
        let full = fresh.len() as u64 >= CONVERSATION_PAGE_SIZE;
        let page_end = fresh.last().map(|last| (last.last_activity_at, last.id));
        self.conversations.update(|list| {
            let mut merged = Vec::with_capacity(fresh.len());
            if let (true, Some(end)) = (full, page_end) {
                for older in list.iter().filter(|l| (l.last_activity_at, l.id) < end) {
                    if !fresh.iter().any(|f| f.id == older.id) {
                        merged.push(older.clone());
                    }
                }
            }
            for mut summary in fresh {
                let local = list.iter().find(|l| l.id == summary.id);
                if let Some(local) = local {
                    if local.last_seq > summary.last_seq {
                        insert_by_activity(&mut merged, local.clone());
                        continue;
                    }
                    summary.other_delivered_seq =
                        summary.other_delivered_seq.max(local.other_delivered_seq);
                    // `None` in the fresh list means read receipts are not shared (now).
                    if let (Some(fresh), Some(known)) =
                        (&mut summary.other_read_seq, local.other_read_seq)
                    {
                        *fresh = (*fresh).max(known);
                    }
                }
                if receipts_hidden {
                    summary.other_read_seq = None;
                }
                if let Some(heard) = presence
                    .latest
                    .iter()
                    .find(|heard| heard.user_id == summary.other.id)
                    && heard.number > asked_at
                {
                    summary.other_online = heard.online;
                    if heard.last_seen_at.is_some() {
                        summary.other_last_seen_at = heard.last_seen_at;
                    }
                }
                insert_by_activity(&mut merged, summary);
            }
            *list = merged;
        });
        if !self.conversations_loaded.get_untracked() || !full {
            self.conversations_more.set(full);
        }
        self.conversations_loaded.set(true);
        self.acknowledge_list();
    }

    /// Puts `summary` in the list (replacing an older copy).
    pub fn upsert_summary(&self, summary: ConversationSummary) {
        self.conversations.update(|list| {
            list.retain(|s| s.id != summary.id);
            insert_by_activity(list, summary);
        });
    }

    /// Forgets every typing indicator (when disconnected nobody can tell who still types).
    pub fn clear_typing(&self) {
        self.typing.update(Vec::clear);
    }

    /// Drops typing indicators that have not been renewed in time.
    pub fn expire_typing(&self, now_ms: f64) {
        let expired = self
            .typing
            .with_untracked(|typing| typing.iter().any(|t| t.until_ms <= now_ms));
        if expired {
            self.typing
                .update(|typing| typing.retain(|t| t.until_ms > now_ms));
        }
    }
}

impl Default for ChatStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Puts a conversation into a list kept in activity order: latest activity first, ties by id
/// so the order is stable. (The list changes one conversation at a time, and the server sends
/// it in this order, so an insertion costs little; the standard library's sort would add
/// about 1.5 KB to the bundle for this one list.)
/// Where the next page of the conversation list starts: after the oldest conversation held.
impl ChatStore {
    pub fn next_page_after(&self) -> Option<(i64, ConversationId)> {
        self.conversations.with_untracked(|list| {
            list.last()
                .map(|last| (last.last_activity_at.timestamp_millis(), last.id))
        })
    }

    /// Takes a further page of the conversation list (fetched as the list scrolled): the
    /// conversations not held yet join it in order, and a short page is the last.
    pub fn append_conversations(&self, page: Vec<ConversationSummary>) {
        self.conversations_more
            .set(page.len() as u64 >= CONVERSATION_PAGE_SIZE);
        self.conversations.update(|list| {
            for summary in page {
                if !list.iter().any(|held| held.id == summary.id) {
                    insert_by_activity(list, summary);
                }
            }
        });
    }
}

fn insert_by_activity(list: &mut Vec<ConversationSummary>, summary: ConversationSummary) {
    let key = |s: &ConversationSummary| (s.last_activity_at, s.id);
    let at = list.partition_point(|other| key(other) > key(&summary));
    list.insert(at, summary);
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use futures::channel::mpsc;

    use super::*;
    use crate::{
        model::{MessageId, MessageView},
        protocol::ErrorCode,
    };

    fn user(id: i64) -> UserView {
        UserView {
            id: UserId(id),
            username: format!("user{id}"),
            display_name: format!("User {id}"),
        }
    }

    fn message(seq: i64, sender: i64, client_msg_id: &str) -> MessageView {
        MessageView {
            id: MessageId(seq),
            conversation_id: ConversationId(1),
            seq,
            sender: user(sender),
            client_msg_id: client_msg_id.into(),
            body: format!("message {seq}"),
            created_at: Utc::now(),
            attachments: Vec::new(),
        }
    }

    fn summary(id: i64) -> ConversationSummary {
        ConversationSummary {
            id: ConversationId(id),
            other: user(2),
            last_message: None,
            last_activity_at: Utc::now(),
            last_seq: 0,
            unread: 0,
            other_online: false,
            other_last_seen_at: None,
            other_delivered_seq: 0,
            other_read_seq: Some(0),
        }
    }

    /// Runs `test` with a store signed in as user 1 whose outgoing frames land in the
    /// receiver, inside a reactive owner (signals need one).
    fn with_store(test: impl FnOnce(ChatStore, &mut mpsc::UnboundedReceiver<ClientFrame>)) {
        Owner::new().with(|| {
            let store = ChatStore::new();
            store.me.set(Some(user(1)));
            let (outbox, mut frames) = mpsc::unbounded();
            store.set_outbox(Some(outbox));
            test(store, &mut frames);
        });
    }

    fn sent_ids(frames: &mut mpsc::UnboundedReceiver<ClientFrame>) -> Vec<String> {
        let mut ids = Vec::new();
        while let Ok(frame) = frames.try_recv() {
            if let ClientFrame::Send { client_msg_id, .. } = frame {
                ids.push(client_msg_id);
            }
        }
        ids
    }

    /// Summaries `first..=last` (ids), the higher the id the more recent.
    fn page(ids: std::ops::RangeInclusive<i64>) -> Vec<ConversationSummary> {
        let start = Utc::now();
        ids.rev()
            .map(|id| ConversationSummary {
                last_activity_at: start + chrono::Duration::seconds(id),
                ..summary(id)
            })
            .collect()
    }

    #[test]
    fn the_list_grows_page_by_page_and_a_refresh_keeps_the_older_pages() {
        with_store(|store, _| {
            let size = CONVERSATION_PAGE_SIZE as i64;
            let all = page(1..=size + 5);
            store.replace_conversations(all[..size as usize].to_vec(), 0);
            assert!(
                store.conversations_more.get_untracked(),
                "a full page: maybe more"
            );
            let (after_ms, after_id) = store.next_page_after().unwrap();
            assert_eq!(after_id, ConversationId(6));
            assert_eq!(
                after_ms,
                all[size as usize - 1].last_activity_at.timestamp_millis()
            );
            store.append_conversations(all[size as usize..].to_vec());
            assert!(
                !store.conversations_more.get_untracked(),
                "a short page is the last"
            );
            let held = || {
                store
                    .conversations
                    .with_untracked(|l| l.iter().map(|c| c.id.0).collect::<Vec<_>>())
            };
            assert_eq!(held(), (1..=size + 5).rev().collect::<Vec<_>>());
            // A refresh (after a reconnection) brings the first page again: the older ones
            // fetched by scrolling stay, once each.
            store.replace_conversations(all[..size as usize].to_vec(), 0);
            assert_eq!(held(), (1..=size + 5).rev().collect::<Vec<_>>());
            assert!(!store.conversations_more.get_untracked());
        });
    }

    #[test]
    fn reconnection_resends_waiting_messages_but_not_refused_ones() {
        with_store(|store, frames| {
            store.send_message(
                ConversationId(1),
                "a".into(),
                "one".into(),
                Vec::new(),
                Utc::now(),
            );
            store.send_message(
                ConversationId(1),
                "b".into(),
                "two".into(),
                Vec::new(),
                Utc::now(),
            );
            assert_eq!(sent_ids(frames), ["a", "b"]);

            store.apply(
                ServerFrame::Error {
                    code: ErrorCode::Internal,
                    message: "try again".into(),
                    client_msg_id: Some("b".into()),
                    retry_after_ms: None,
                },
                0.0,
            );
            store.resend_pending();
            assert_eq!(sent_ids(frames), ["a"]);
            store.retry_failed();
            assert_eq!(sent_ids(frames), ["b"]);
            assert!(
                store
                    .pending
                    .get_untracked()
                    .iter()
                    .all(|p| p.failed.is_none())
            );
        });
    }

    #[test]
    fn disconnected_frames_are_dropped_but_messages_stay_pending() {
        with_store(|store, frames| {
            store.set_outbox(None);
            store.send_message(
                ConversationId(1),
                "a".into(),
                "one".into(),
                Vec::new(),
                Utc::now(),
            );
            assert!(sent_ids(frames).is_empty());
            assert_eq!(store.pending.get_untracked().len(), 1);
        });
    }

    #[test]
    fn an_acknowledged_message_replaces_its_pending_copy_once() {
        with_store(|store, _frames| {
            store.upsert_summary(summary(1));
            store
                .thread
                .set(super::super::thread::Thread::opening(ConversationId(1)));
            store.send_message(
                ConversationId(1),
                "a".into(),
                "message 1".into(),
                Vec::new(),
                Utc::now(),
            );

            let stored = message(1, 1, "a");
            store.apply(
                ServerFrame::Ack {
                    client_msg_id: "a".into(),
                    message: stored.clone(),
                },
                0.0,
            );
            store.apply(ServerFrame::Message { message: stored }, 0.0);

            assert!(store.pending.get_untracked().is_empty());
            assert_eq!(store.thread.get_untracked().messages.len(), 1);
            let summary = &store.conversations.get_untracked()[0];
            assert_eq!(summary.last_seq, 1);
            assert_eq!(summary.unread, 0, "one's own messages are never unread");
        });
    }

    #[test]
    fn messages_in_other_conversations_count_as_unread_and_move_to_the_top() {
        with_store(|store, _frames| {
            store.upsert_summary(summary(1));
            store.upsert_summary(summary(2));
            store
                .thread
                .set(super::super::thread::Thread::opening(ConversationId(2)));

            let mut incoming = message(1, 2, "x");
            incoming.created_at = Utc::now() + chrono::Duration::seconds(5);
            store.receive(incoming.clone(), true);
            store.receive(incoming, true);

            let list = store.conversations.get_untracked();
            assert_eq!(list[0].id, ConversationId(1));
            assert_eq!(list[0].unread, 1, "counted once");
            assert_eq!(
                list[0].last_message.as_ref().map(|m| m.body.as_str()),
                Some("message 1")
            );
            assert!(store.thread.get_untracked().messages.is_empty());
        });
    }

    #[test]
    fn a_fresh_list_never_overwrites_newer_local_changes() {
        with_store(|store, _frames| {
            store.upsert_summary(summary(1));
            store.upsert_summary(summary(2));
            store.receive(message(3, 2, "x"), true);
            let mut stale = summary(1);
            stale.last_seq = 2;
            stale.unread = 2;
            let mut newer = summary(2);
            newer.last_seq = 9;
            store.replace_conversations(vec![stale, newer], store.presence_heard());
            let list = store.conversations.get_untracked();
            let one = list.iter().find(|s| s.id == ConversationId(1)).unwrap();
            assert_eq!((one.last_seq, one.unread), (3, 1));
            let two = list.iter().find(|s| s.id == ConversationId(2)).unwrap();
            assert_eq!(two.last_seq, 9);
            assert!(store.conversations_loaded.get_untracked());
        });
    }

    #[test]
    fn the_list_stays_in_activity_order_whatever_order_it_arrives_in() {
        with_store(|store, _frames| {
            let at = |id: i64, minute: u32| {
                let mut summary = summary(id);
                summary.last_activity_at =
                    chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 30, 9, minute, 0).unwrap();
                summary
            };
            let ids = || -> Vec<i64> {
                store
                    .conversations
                    .get_untracked()
                    .iter()
                    .map(|s| s.id.0)
                    .collect()
            };
            // Latest first; the same time puts the higher id first.
            store.replace_conversations(
                vec![at(1, 5), at(2, 9), at(3, 1), at(4, 9), at(5, 7)],
                store.presence_heard(),
            );
            assert_eq!(ids(), [4, 2, 5, 1, 3]);
            store.upsert_summary(at(3, 8));
            assert_eq!(ids(), [4, 2, 3, 5, 1]);
            store.upsert_summary(at(6, 0));
            assert_eq!(ids(), [4, 2, 3, 5, 1, 6]);
            // A new message moves its conversation to the top; an older time moves it down.
            let mut newest = message(1, 1, "newest");
            newest.created_at = at(1, 30).last_activity_at;
            store.receive(newest, true);
            assert_eq!(ids(), [1, 4, 2, 3, 5, 6]);
            store.upsert_summary(at(1, 4));
            assert_eq!(ids(), [4, 2, 3, 5, 1, 6]);
        });
    }

    #[test]
    fn catch_ups_asked_for_while_one_runs_make_it_go_round_again() {
        with_store(|store, _frames| {
            assert!(store.request_catch_up(), "the first request starts one");
            let handled = store.catch_up_requests();
            assert!(!store.request_catch_up(), "a second one is not started");
            assert!(store.finish_catch_up(handled), "the running one goes again");
            let handled = store.catch_up_requests();
            assert!(!store.finish_catch_up(handled));
            assert!(
                store.request_catch_up(),
                "after it is done, a new one may start"
            );
        });
    }

    #[test]
    fn a_message_from_an_unknown_conversation_asks_for_the_list_again() {
        with_store(|store, _frames| {
            let before = store.conversations_stale.get_untracked();
            store.receive(message(1, 2, "x"), true);
            assert_eq!(store.conversations_stale.get_untracked(), before + 1);
        });
    }

    #[test]
    fn typing_indicators_expire_unless_renewed_and_clear_on_a_message() {
        with_store(|store, _frames| {
            let typing = |active| ServerFrame::Typing {
                conversation_id: ConversationId(1),
                user: user(2),
                active,
            };
            store.apply(typing(true), 1_000.0);
            store.expire_typing(1_000.0 + f64::from(TYPING_TTL_MS) - 1.0);
            assert!(
                store
                    .typing
                    .get_untracked()
                    .iter()
                    .any(|t| t.conversation_id == ConversationId(1))
            );
            store.expire_typing(1_000.0 + f64::from(TYPING_TTL_MS));
            assert!(store.typing.get_untracked().is_empty());

            store.apply(typing(true), 0.0);
            store.receive(message(1, 2, "x"), true);
            assert!(store.typing.get_untracked().is_empty());

            store.apply(typing(true), 0.0);
            store.apply(typing(false), 0.0);
            assert!(store.typing.get_untracked().is_empty());

            // A renewal replaces the indicator; stopping in one conversation leaves the others.
            store.apply(typing(true), 0.0);
            store.apply(typing(true), 1_000.0);
            let renewed = store.typing.get_untracked();
            assert_eq!(renewed.len(), 1);
            assert_eq!(renewed[0].until_ms, 1_000.0 + f64::from(TYPING_TTL_MS));
            store.apply(
                ServerFrame::Typing {
                    conversation_id: ConversationId(2),
                    user: user(3),
                    active: true,
                },
                0.0,
            );
            store.apply(typing(false), 0.0);
            let typing = store.typing.get_untracked();
            assert_eq!(typing.len(), 1);
            assert_eq!(typing[0].conversation_id, ConversationId(2));
        });
    }

    fn receipts(frames: &mut mpsc::UnboundedReceiver<ClientFrame>) -> Vec<ClientFrame> {
        let mut receipts = Vec::new();
        while let Ok(frame) = frames.try_recv() {
            if matches!(
                frame,
                ClientFrame::Delivered { .. } | ClientFrame::Read { .. }
            ) {
                receipts.push(frame);
            }
        }
        receipts
    }

    #[test]
    fn receipts_go_out_once_per_position_and_again_after_a_reconnection() {
        with_store(|store, frames| {
            store.upsert_summary(summary(1));
            store.thread.set(Thread::opening(ConversationId(1)));
            let delivered = |seq| ClientFrame::Delivered {
                conversation_id: ConversationId(1),
                seq,
            };
            let read = |seq| ClientFrame::Read {
                conversation_id: ConversationId(1),
                seq,
            };

            // Someone else's messages are acknowledged as they arrive, once each.
            store.receive(message(1, 2, "x"), true);
            store.receive(message(1, 2, "x"), true);
            store.receive(message(2, 2, "y"), true);
            assert_eq!(receipts(frames), [delivered(1), delivered(2)]);
            assert_eq!(store.conversations.get_untracked()[0].unread, 2);
            // One's own are not; nor, one by one, are those a catch-up brings (it acknowledges
            // each page at once).
            store.receive(message(3, 1, "z"), true);
            assert!(receipts(frames).is_empty());

            // Seen up to 1 (2 is below the fold), then up to 3; never backwards.
            store.mark_seen(1);
            assert_eq!(store.conversations.get_untracked()[0].unread, 2);
            store.mark_seen(3);
            store.mark_seen(2);
            assert_eq!(receipts(frames), [read(1), read(3)]);
            assert_eq!(store.conversations.get_untracked()[0].unread, 0);

            // Frames sent while disconnected are lost: after `ready` they are sent again.
            store.set_outbox(None);
            store.mark_seen(4);
            store.apply(ServerFrame::Ready { user: user(1) }, 0.0);
            let (outbox, fresh) = mpsc::unbounded();
            store.set_outbox(Some(outbox));
            *frames = fresh;
            store.acknowledge(ConversationId(1), 2);
            store.mark_seen(3);
            assert_eq!(receipts(frames), [delivered(2), read(3)]);
        });
    }

    #[test]
    fn the_other_sides_receipts_move_forward_and_go_when_switched_off() {
        with_store(|store, _frames| {
            store.upsert_summary(summary(1));
            let positions = || {
                let s = store.conversations.get_untracked()[0].clone();
                (s.other_delivered_seq, s.other_read_seq)
            };
            let frame = |read: bool, user: i64, seq: i64| {
                let (conversation_id, user_id) = (ConversationId(1), UserId(user));
                if read {
                    ServerFrame::Read {
                        conversation_id,
                        user_id,
                        seq,
                    }
                } else {
                    ServerFrame::Delivered {
                        conversation_id,
                        user_id,
                        seq,
                    }
                }
            };
            store.apply(frame(false, 2, 3), 0.0);
            assert_eq!(positions(), (3, Some(0)));
            store.apply(frame(true, 2, 2), 0.0);
            store.apply(frame(false, 2, 1), 0.0);
            assert_eq!(positions(), (3, Some(2)));
            // One's own read position (from another tab) is not the other side's.
            store.apply(frame(true, 1, 5), 0.0);
            assert_eq!(positions(), (3, Some(2)));
            // A message from the other person means they have everything before it.
            store.receive(message(4, 2, "m"), true);
            assert_eq!(positions(), (4, Some(4)));

            store.apply(
                ServerFrame::Settings {
                    settings: crate::model::AccountSettings {
                        read_receipts: false,
                    },
                },
                0.0,
            );
            assert_eq!(positions(), (4, None));
            store.receive(message(5, 2, "n"), true);
            assert_eq!(positions(), (5, None), "still hidden");
            // A read frame or a list that was on its way before the switch shows nothing.
            store.apply(frame(true, 2, 5), 0.0);
            assert_eq!(positions(), (5, None));
            let mut late = store.conversations.get_untracked()[0].clone();
            late.other_read_seq = Some(5);
            store.replace_conversations(vec![late], store.presence_heard());
            assert_eq!(positions(), (5, None));
        });
    }

    #[test]
    fn a_list_fetched_before_a_presence_frame_or_receipt_does_not_undo_it() {
        with_store(|store, _frames| {
            let mut known = summary(1);
            known.last_seq = 4;
            known.other_delivered_seq = 4;
            known.other_read_seq = Some(3);
            store.upsert_summary(known);
            let asked_at = store.presence_heard();
            // Bob comes online after the list was read on the server, before it arrives.
            store.apply(
                ServerFrame::Presence {
                    user_id: UserId(2),
                    online: true,
                    last_seen_at: None,
                },
                0.0,
            );
            let mut stale = summary(1);
            stale.last_seq = 4;
            stale.other_delivered_seq = 2;
            stale.other_read_seq = Some(1);
            store.replace_conversations(vec![stale.clone()], asked_at);
            let now = store.conversations.get_untracked()[0].clone();
            assert!(now.other_online);
            assert_eq!((now.other_delivered_seq, now.other_read_seq), (4, Some(3)));

            // A list asked for after the frame is believed; so is "receipts not shared".
            let asked_at = store.presence_heard();
            stale.other_read_seq = None;
            store.replace_conversations(vec![stale], asked_at);
            let now = store.conversations.get_untracked()[0].clone();
            assert!(!now.other_online);
            assert_eq!(now.other_read_seq, None);
        });
    }
}
