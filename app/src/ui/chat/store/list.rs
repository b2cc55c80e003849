//! The conversation list: fetched a page at a time (the first on every connection, older ones
//! as the list is scrolled), kept in activity order, merged with what changed here meanwhile,
//! and the unread total the page's title shows.
use leptos::prelude::*;

use super::ChatStore;
use crate::model::{CONVERSATION_PAGE_SIZE, ConversationId, ConversationSummary};
impl ChatStore {
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

    /// Changes one conversation in the list and keeps the list in activity order. Returns
    /// whether the conversation was in the list.
    pub(super) fn update_summary(
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
    /// `fresh` is the first page of the list. A conversation held here that it lacks stays:
    /// conversations are never removed, so it is either beyond the page's end (an older page,
    /// fetched as the list was scrolled) or newer than the server's reading (opened, or
    /// written in, while the list was on its way), and dropping it would take the open
    /// conversation, and what presence frames say about it, off the page.
    pub fn replace_conversations(&self, fresh: Vec<ConversationSummary>, asked_at: u64) {
        let (presence, receipts_hidden) = self
            .inner
            .with_value(|inner| (inner.presence.clone(), inner.receipts_hidden));
        let full = fresh.len() as u64 >= CONVERSATION_PAGE_SIZE;
        let page_end = fresh.last().map(|last| (last.last_activity_at, last.id));
        self.conversations.update(|list| {
            let mut merged: Vec<ConversationSummary> = list
                .iter()
                .filter(|held| !fresh.iter().any(|f| f.id == held.id))
                .cloned()
                .collect();
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
        // Where the next page starts: after this page, unless older pages are held already
        // (their cursor stands) or the whole list is (nothing more to fetch).
        let fresh_end = page_end.map(|(at, id)| (at.timestamp_millis(), id));
        let loaded = self.conversations_loaded.get_untracked();
        let more = self.conversations_more.get_untracked();
        self.inner.update_value(|inner| {
            inner.list_cursor = match (full, inner.list_cursor, fresh_end) {
                (false, _, _) => None,
                (true, None, _) if loaded && !more => None,
                (true, Some(held), Some(end)) if held < end => Some(held),
                (true, _, end) => end,
            };
        });
        self.conversations_more
            .set(self.inner.with_value(|inner| inner.list_cursor.is_some()));
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

    /// Where the next page of the conversation list starts: after the last conversation of
    /// the last page fetched (its last activity in milliseconds, and its id). Not the last one
    /// held: a conversation opened by its address may be far older than the pages fetched.
    pub fn next_page_after(&self) -> Option<(i64, ConversationId)> {
        self.inner.with_value(|inner| inner.list_cursor)
    }

    /// Takes a further page of the conversation list (fetched as the list scrolled): the
    /// conversations not held yet join it in order, and a short page is the last.
    pub fn append_conversations(&self, page: Vec<ConversationSummary>) {
        let cursor = page
            .last()
            .filter(|_| page.len() as u64 >= CONVERSATION_PAGE_SIZE)
            .map(|last| (last.last_activity_at.timestamp_millis(), last.id));
        self.inner.update_value(|inner| inner.list_cursor = cursor);
        self.conversations_more.set(cursor.is_some());
        self.conversations.update(|list| {
            for summary in page {
                if !list.iter().any(|held| held.id == summary.id) {
                    insert_by_activity(list, summary);
                }
            }
        });
    }
}

/// Puts a conversation into a list kept in activity order: latest activity first, ties by id
/// so the order is stable. (The list changes one conversation at a time, and the server sends
/// it in this order, so an insertion costs little.)
pub(super) fn insert_by_activity(
    list: &mut Vec<ConversationSummary>,
    summary: ConversationSummary,
) {
    let key = |s: &ConversationSummary| (s.last_activity_at, s.id);
    let at = list.partition_point(|other| key(other) > key(&summary));
    list.insert(at, summary);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::model::CONVERSATION_PAGE_SIZE;

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
            assert_eq!(store.next_page_after(), None);
            // A refresh (after a reconnection) brings the first page again: the older ones
            // fetched by scrolling stay, once each.
            store.replace_conversations(all[..size as usize].to_vec(), 0);
            assert_eq!(held(), (1..=size + 5).rev().collect::<Vec<_>>());
            assert!(!store.conversations_more.get_untracked());
        });
    }

    /// A conversation opened by its address, older than every page fetched, joins the list
    /// without moving where the next page starts.
    #[test]
    fn an_old_conversation_opened_directly_does_not_skip_a_page() {
        with_store(|store, _| {
            let size = CONVERSATION_PAGE_SIZE as i64;
            let all = page(1..=size + 5);
            store.replace_conversations(all[..size as usize].to_vec(), 0);
            let cursor = store.next_page_after();
            store.upsert_summary(all[size as usize + 4].clone());
            assert_eq!(store.next_page_after(), cursor);
        });
    }

    /// The conversation list asked for as the page loads can arrive after a conversation was
    /// opened (created) by its address: it stays in the list, and presence frames reach it.
    #[test]
    fn a_list_read_before_a_conversation_was_opened_keeps_it() {
        with_store(|store, _frames| {
            let asked_at = store.presence_heard();
            let mut opened = summary(2);
            opened.other_online = true;
            store.upsert_summary(opened);
            store.replace_conversations(vec![summary(1)], asked_at);
            let mut held: Vec<i64> = store
                .conversations
                .with_untracked(|l| l.iter().map(|c| c.id.0).collect());
            held.sort_unstable();
            assert_eq!(held, [1, 2]);
            store.apply(
                ServerFrame::Presence {
                    user_id: UserId(2),
                    online: false,
                    last_seen_at: Some(Utc::now()),
                },
                0.0,
            );
            let held = store.conversations.get_untracked();
            let two = held.iter().find(|s| s.id == ConversationId(2)).unwrap();
            assert!(!two.other_online && two.other_last_seen_at.is_some());
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
