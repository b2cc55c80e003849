//! [`ChatStore`]: the chat page's state in the browser, shared by its components through
//! context, and the one place where server frames change it.
//!
//! The socket task (`live`) feeds frames in through [`ChatStore::apply`]; components read the
//! signals and call [`ChatStore::send_message`] and friends. Everything here is signals, so the
//! store is `Copy` and can be moved into any closure.
//!
//! This file holds the store itself, the frames it applies, and how a message that arrives is
//! taken in ([`ChatStore::receive`], which touches every part in a fixed order). Each part has
//! a file of its own:
//! - [`sending`]: the messages this tab sends, until the server has them (and the saved outbox);
//! - [`receipts`]: what this device tells the server it has received and seen;
//! - [`list`]: the conversation list, page by page, and who is online in it;
//! - [`catch_up`]: fetching what a dropped connection missed, one round at a time.
//!
//! What the page never shows lives in one [`StoredValue`] ([`Inner`]), and the small keyed
//! collections are lists of pairs (see "Idioms the bundle asks for" in docs/performance.md).

mod catch_up;
mod list;
mod receipts;
mod sending;

use chrono::{DateTime, Utc};
use futures::channel::mpsc::UnboundedSender;
use leptos::prelude::*;

use super::{
    notify,
    thread::{Pending, Thread},
};
use crate::{
    model::{
        ContextCard, ConversationId, ConversationSummary, MessagePreview, MessageView,
        TYPING_TTL_MS, UserId, UserView, preview_text,
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
    /// The card the marketplace left waiting for this user's next message in the open
    /// conversation ("Asking about…"), until that message takes it or the user removes it.
    pub waiting_card: RwSignal<Option<(ConversationId, ContextCard)>>,
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
    /// Where the next page of the conversation list starts (after the last conversation of
    /// the last page fetched), or `None` when there is nothing more to fetch.
    list_cursor: Option<(i64, ConversationId)>,
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
            waiting_card: RwSignal::new(None),
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
                // The latest card is what the conversation is about.
                if let Some(card) = &message.card {
                    summary.about = Some(card.clone());
                }
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
            notify::show(
                &message,
                &preview_text(crate::model::message_text(
                    &message.body,
                    message.card.as_ref(),
                )),
            );
        }
        // Catch-up acknowledges a whole page at once (`acknowledge`), not message by message.
        if live && !mine {
            self.acknowledge(message.conversation_id, message.seq);
        }
        if is_open && added > 0 {
            self.check_seen();
        }
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

/// What the tests of every part share: people, messages, summaries, and a store to try them on.
#[cfg(test)]
mod test_support {
    pub(super) use chrono::Utc;
    pub(super) use futures::channel::mpsc;

    pub(super) use super::*;
    pub(super) use crate::{
        model::{MessageId, MessageView},
        protocol::ErrorCode,
    };

    pub(super) fn user(id: i64) -> UserView {
        UserView {
            id: UserId(id),
            username: format!("user{id}"),
            display_name: format!("User {id}"),
        }
    }

    pub(super) fn message(seq: i64, sender: i64, client_msg_id: &str) -> MessageView {
        MessageView {
            id: MessageId(seq),
            conversation_id: ConversationId(1),
            seq,
            sender: user(sender),
            client_msg_id: client_msg_id.into(),
            body: format!("message {seq}"),
            created_at: Utc::now(),
            attachments: Vec::new(),
            kind: crate::model::MessageKind::User,
            card: None,
        }
    }

    pub(super) fn summary(id: i64) -> ConversationSummary {
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
            about: None,
            waiting_card: None,
        }
    }

    /// Runs `test` with a store signed in as user 1 whose outgoing frames land in the
    /// receiver, inside a reactive owner (signals need one).
    pub(super) fn with_store(
        test: impl FnOnce(ChatStore, &mut mpsc::UnboundedReceiver<ClientFrame>),
    ) {
        Owner::new().with(|| {
            let store = ChatStore::new();
            store.me.set(Some(user(1)));
            let (outbox, mut frames) = mpsc::unbounded();
            store.set_outbox(Some(outbox));
            test(store, &mut frames);
        });
    }

    pub(super) fn sent_ids(frames: &mut mpsc::UnboundedReceiver<ClientFrame>) -> Vec<String> {
        let mut ids = Vec::new();
        while let Ok(frame) = frames.try_recv() {
            if let ClientFrame::Send { client_msg_id, .. } = frame {
                ids.push(client_msg_id);
            }
        }
        ids
    }

    /// Summaries `first..=last` (ids), the higher the id the more recent.
    pub(super) fn page(ids: std::ops::RangeInclusive<i64>) -> Vec<ConversationSummary> {
        let start = Utc::now();
        ids.rev()
            .map(|id| ConversationSummary {
                last_activity_at: start + chrono::Duration::seconds(id),
                ..summary(id)
            })
            .collect()
    }

    pub(super) fn receipts(frames: &mut mpsc::UnboundedReceiver<ClientFrame>) -> Vec<ClientFrame> {
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
}

#[cfg(test)]
mod tests {
    use super::test_support::*;

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
}
