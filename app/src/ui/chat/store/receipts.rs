//! Receipts: what this device tells the server it has received (`delivered`) and seen
//! (`read`), once per position and connection, and again after a reconnection.
use leptos::prelude::*;

use super::{super::notify, ChatStore, Reported};
use crate::{model::ConversationId, protocol::ClientFrame};
impl ChatStore {
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
    pub(super) fn acknowledge_list(&self) {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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
}
