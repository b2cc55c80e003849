//! The messages this tab sends: shown at once as "sending", sent now or on reconnection, and
//! kept (here and in the saved outbox, `ui/chat/outbox.rs`) until the server has stored them or
//! the user gives up on one the server refused.
use chrono::{DateTime, Utc};
use leptos::prelude::*;

use super::{super::outbox, ChatStore, Pending};
use crate::{
    model::{AttachmentView, ConversationId, UserId},
    protocol::ClientFrame,
};
impl ChatStore {
    /// Sends a message: it shows at once as "sending" and goes out now, or on reconnection.
    pub fn send_message(
        &self,
        conversation_id: ConversationId,
        client_msg_id: String,
        body: String,
        attachments: Vec<AttachmentView>,
        with_card: bool,
        now: DateTime<Utc>,
    ) {
        let item = Pending {
            conversation_id,
            client_msg_id,
            body,
            attachments,
            created_at: now,
            failed: None,
            with_card,
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
    pub(super) fn settle(&self, client_msg_id: &str) {
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
            with_card: item.with_card,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn reconnection_resends_waiting_messages_but_not_refused_ones() {
        with_store(|store, frames| {
            store.send_message(
                ConversationId(1),
                "a".into(),
                "one".into(),
                Vec::new(),
                false,
                Utc::now(),
            );
            store.send_message(
                ConversationId(1),
                "b".into(),
                "two".into(),
                Vec::new(),
                false,
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

    /// The waiting card goes with the message that took it, and with each resend of it.
    #[test]
    fn a_message_that_takes_the_waiting_card_asks_for_it_on_every_try() {
        with_store(|store, frames| {
            store.send_message(
                ConversationId(1),
                "a".into(),
                "Is it still available?".into(),
                Vec::new(),
                true,
                Utc::now(),
            );
            store.resend_pending();
            let asked: Vec<bool> = std::iter::from_fn(|| frames.try_recv().ok())
                .filter_map(|frame| match frame {
                    ClientFrame::Send { with_card, .. } => Some(with_card),
                    _ => None,
                })
                .collect();
            assert_eq!(asked, [true, true]);
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
                false,
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
            store.thread.set(Thread::opening(ConversationId(1)));
            store.send_message(
                ConversationId(1),
                "a".into(),
                "message 1".into(),
                Vec::new(),
                false,
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
}
