//! [`Thread`]: the messages of the open conversation as the browser holds them, and the rules
//! for merging what arrives from history pages, live frames and acknowledgements.
//!
//! Plain data with no signals, so the merge rules are unit-tested without a browser. Messages
//! arrive from three sources that overlap (the first history page, live `message` frames, and
//! the catch-up after a reconnection); merging by `seq` is what keeps each message shown once
//! and in order.

use chrono::{DateTime, Utc};

use crate::model::{
    AttachmentView, ContextCard, ConversationId, MessageKind, MessageView, UserView,
};

/// What the browser knows of one conversation's messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thread {
    /// The conversation these messages belong to; `None` before one is opened.
    pub conversation_id: Option<ConversationId>,
    /// Stored messages, ordered by `seq`, each at most once.
    pub messages: Vec<MessageView>,
    /// Whether older messages exist beyond the first one held.
    pub has_more_before: bool,
    /// Whether the first page has arrived.
    pub loaded: bool,
    /// Every message from the first page's up to this `seq` is held. Catching up asks for what
    /// comes after it; a message held beyond it means one arrived live while earlier ones were
    /// missed (a gap), which calls for catching up.
    pub complete_to: i64,
    /// The first message that was unread when the conversation was opened: the "new
    /// messages" divider goes before it, and stays while the conversation is open.
    pub first_unread: Option<i64>,
}

impl Thread {
    /// An empty thread for a conversation whose history is being fetched.
    pub fn opening(conversation_id: ConversationId) -> Self {
        Self {
            conversation_id: Some(conversation_id),
            ..Self::default()
        }
    }

    /// Remembers where the unread messages start, from the conversation's `last_seq` and
    /// `unread` count when it was opened.
    #[must_use]
    pub fn with_unread(mut self, last_seq: i64, unread: i64) -> Self {
        self.first_unread = (unread > 0).then(|| last_seq - unread + 1);
        self
    }

    /// Takes in the latest page, the first one fetched when the conversation opens.
    pub fn load_latest(&mut self, messages: Vec<MessageView>, has_more_before: bool) {
        let newest = messages.last().map_or(0, |m| m.seq);
        self.merge(messages);
        self.has_more_before = has_more_before;
        self.loaded = true;
        self.complete_to = self.complete_to.max(newest);
        self.advance();
    }

    /// Adds stored messages (from any source), ignoring those of other conversations and those
    /// already held. Returns how many were new.
    pub fn merge(&mut self, incoming: impl IntoIterator<Item = MessageView>) -> usize {
        let Some(conversation_id) = self.conversation_id else {
            return 0;
        };
        let mut added = 0;
        for message in incoming {
            if message.conversation_id != conversation_id {
                continue;
            }
            match self.messages.binary_search_by_key(&message.seq, |m| m.seq) {
                Ok(_) => {}
                Err(position) => {
                    self.messages.insert(position, message);
                    added += 1;
                }
            }
        }
        self.advance();
        added
    }

    /// Moves `complete_to` over every message that now follows it without a hole.
    fn advance(&mut self) {
        for message in &self.messages {
            if message.seq == self.complete_to + 1 {
                self.complete_to = message.seq;
            } else if message.seq > self.complete_to + 1 {
                break;
            }
        }
    }

    /// Whether messages are missing between the complete part and the newest one held.
    pub fn has_gap(&self) -> bool {
        self.loaded && self.last_seq() > self.complete_to
    }

    /// The highest `seq` held (0 when empty): catch-up asks for what comes after it.
    pub fn last_seq(&self) -> i64 {
        self.messages.last().map_or(0, |m| m.seq)
    }

    /// The lowest `seq` held: scrolling up asks for what comes before it.
    pub fn first_seq(&self) -> Option<i64> {
        self.messages.first().map(|m| m.seq)
    }
}

/// A message this browser has sent that the server has not confirmed yet (saved in the
/// browser's storage by `outbox`, hence serde).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub conversation_id: ConversationId,
    pub client_msg_id: String,
    pub body: String,
    /// Files already uploaded, sent with the message.
    pub attachments: Vec<AttachmentView>,
    /// When the user pressed Send (local clock): shown until the server's time replaces it.
    pub created_at: DateTime<Utc>,
    /// `None` while sending; the reason once the server has refused it.
    pub failed: Option<String>,
    /// It takes the card the marketplace left waiting ("Asking about…") with it.
    #[serde(default)]
    pub with_card: bool,
}

/// One line of the rendered message list.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A day separator, before the first message of each local day.
    Day { key: String, label: String },
    /// "New messages": before the first message that was unread when the conversation opened.
    NewMessages,
    /// A message, stored or still sending.
    Message {
        /// Who sent it and their `client_msg_id`: the same for the pending copy and the
        /// stored message, so the line keeps its place when the server confirms it.
        key: String,
        /// The id the sending client chose (for "delete" on a message the server refused).
        client_msg_id: String,
        /// Its place in the conversation, once stored.
        seq: Option<i64>,
        sender: UserView,
        /// Sent by the signed-in user.
        mine: bool,
        /// A notice from the marketplace (an order update): shown across the log, not as
        /// anyone's bubble.
        notice: bool,
        body: String,
        attachments: Vec<AttachmentView>,
        /// The product or order card it was sent with (boxed: most messages have none).
        card: Option<Box<ContextCard>>,
        created_at: DateTime<Utc>,
        state: Delivery,
    },
}

impl Row {
    /// The key the rendered list uses: a line is re-rendered only when it changes.
    pub fn render_key(&self) -> String {
        match self {
            Self::Day { key, label } => format!("{key}:{label}"),
            Self::NewMessages => "new-messages".to_owned(),
            Self::Message {
                key, mine, state, ..
            } => format!("{key}:{mine}:{}", state.as_str()),
        }
    }
}

/// Where a message is on its way to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sending,
    Failed(String),
    Sent,
}

impl Delivery {
    /// The value of the `data-state` attribute tests and styles rely on.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Failed(_) => "failed",
            Self::Sent => "sent",
        }
    }
}

/// How far a stored message has got on the other side, as its sender sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Stored by the server.
    Sent,
    /// A device of the recipient has received it.
    Delivered,
    /// It was on the recipient's screen.
    Seen,
}

impl Receipt {
    /// Where message `seq` is, given how far the other participant has received and (when
    /// both share read receipts) read the conversation.
    pub fn of(seq: i64, delivered_to: i64, read_to: Option<i64>) -> Self {
        if read_to.is_some_and(|read| read >= seq) {
            Self::Seen
        } else if delivered_to >= seq {
            Self::Delivered
        } else {
            Self::Sent
        }
    }

    /// The value of the `data-receipt` attribute tests and styles rely on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Seen => "seen",
        }
    }

    /// The word for it, shown on hover and read out by screen readers.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sent => "Sent",
            Self::Delivered => "Delivered",
            Self::Seen => "Seen",
        }
    }
}

/// A stored or pending message on its way to becoming a [`Row::Message`].
struct Line {
    /// "New messages" goes before it.
    divider: bool,
    seq: Option<i64>,
    sender: UserView,
    client_msg_id: String,
    body: String,
    attachments: Vec<AttachmentView>,
    card: Option<ContextCard>,
    created_at: DateTime<Utc>,
    state: Delivery,
    notice: bool,
}

/// The rendered list: stored messages in order, then this browser's pending ones, with a day
/// separator wherever the local date (given by `day_of`) changes.
pub fn rows(
    thread: &Thread,
    pending: &[Pending],
    me: Option<&UserView>,
    day_of: impl Fn(DateTime<Utc>) -> (String, String),
) -> Vec<Row> {
    let first_unread = thread
        .messages
        .iter()
        .find(|m| thread.first_unread.is_some_and(|first| m.seq >= first))
        .map(|m| m.seq);
    let stored = thread.messages.iter().map(|m| Line {
        divider: Some(m.seq) == first_unread,
        seq: Some(m.seq),
        sender: m.sender.clone(),
        client_msg_id: m.client_msg_id.clone(),
        body: m.body.clone(),
        attachments: m.attachments.clone(),
        card: m.card.clone(),
        created_at: m.created_at,
        state: Delivery::Sent,
        notice: m.kind == MessageKind::System,
    });
    let unconfirmed = pending
        .iter()
        .filter(|p| Some(p.conversation_id) == thread.conversation_id)
        .filter_map(|p| {
            let state = match &p.failed {
                Some(reason) => Delivery::Failed(reason.clone()),
                None => Delivery::Sending,
            };
            Some(Line {
                divider: false,
                seq: None,
                sender: me?.clone(),
                client_msg_id: p.client_msg_id.clone(),
                body: p.body.clone(),
                attachments: p.attachments.clone(),
                // Its card is the server's to attach: it shows once the message is stored.
                card: None,
                created_at: p.created_at,
                state,
                notice: false,
            })
        });

    let my_id = me.map(|m| m.id);
    let mut rows = Vec::new();
    let mut current_day: Option<String> = None;
    for line in stored.chain(unconfirmed) {
        let (key, label) = day_of(line.created_at);
        if current_day.as_ref() != Some(&key) {
            rows.push(Row::Day {
                key: format!("day-{key}"),
                label,
            });
            current_day = Some(key);
        }
        if line.divider {
            rows.push(Row::NewMessages);
        }
        rows.push(Row::Message {
            key: format!("{}:{}", line.sender.id, line.client_msg_id),
            client_msg_id: line.client_msg_id,
            seq: line.seq,
            mine: !line.notice && Some(line.sender.id) == my_id,
            notice: line.notice,
            sender: line.sender,
            body: line.body,
            attachments: line.attachments,
            card: line.card.map(Box::new),
            created_at: line.created_at,
            state: line.state,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::{MessageId, UserId};

    fn user(id: i64) -> UserView {
        UserView {
            id: UserId(id),
            username: format!("user{id}"),
            display_name: format!("User {id}"),
        }
    }

    fn message(conversation: i64, seq: i64, sender: i64, day: u32) -> MessageView {
        MessageView {
            id: MessageId(seq * 10),
            conversation_id: ConversationId(conversation),
            seq,
            sender: user(sender),
            client_msg_id: format!("c{seq}"),
            body: format!("message {seq}"),
            created_at: Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap(),
            attachments: Vec::new(),
            kind: crate::model::MessageKind::User,
            card: None,
        }
    }

    fn utc_day(t: DateTime<Utc>) -> (String, String) {
        let key = t.format("%Y-%m-%d").to_string();
        (key.clone(), key)
    }

    #[test]
    fn a_notice_from_the_marketplace_is_nobodys_message() {
        let mut thread = Thread::opening(ConversationId(1));
        let mut notice = message(1, 1, 1, 1);
        notice.kind = MessageKind::System;
        thread.load_latest(vec![notice, message(1, 2, 1, 1)], false);
        let flags: Vec<(bool, bool)> = rows(&thread, &[], Some(&user(1)), utc_day)
            .iter()
            .filter_map(|row| match row {
                Row::Message { notice, mine, .. } => Some((*notice, *mine)),
                _ => None,
            })
            .collect();
        // Even when its author's id is the reader's, a notice is not "mine".
        assert_eq!(flags, [(true, false), (false, true)]);
    }

    #[test]
    fn the_new_messages_divider_goes_before_the_first_unread_message() {
        // Three messages, the last two unread when the conversation opened.
        let mut thread = Thread::opening(ConversationId(1)).with_unread(3, 2);
        thread.load_latest(
            vec![
                message(1, 1, 1, 1),
                message(1, 2, 2, 1),
                message(1, 3, 2, 1),
            ],
            false,
        );
        let shape = |thread: &Thread| -> Vec<String> {
            rows(thread, &[], Some(&user(1)), utc_day)
                .iter()
                .map(|row| match row {
                    Row::Day { label, .. } => format!("day {label}"),
                    Row::NewMessages => "new".to_owned(),
                    Row::Message { key, .. } => key.clone(),
                })
                .collect()
        };
        assert_eq!(
            shape(&thread),
            ["day 2026-11-01", "1:c1", "new", "2:c2", "2:c3"]
        );
        // Messages arriving later come after it; it stays where it was.
        thread.merge([message(1, 4, 2, 1)]);
        assert_eq!(shape(&thread).iter().filter(|r| *r == "new").count(), 1);
        assert_eq!(shape(&thread)[2], "new");
        // Nothing unread: no divider.
        let mut read = Thread::opening(ConversationId(1)).with_unread(3, 0);
        read.load_latest(vec![message(1, 1, 1, 1)], false);
        assert!(!shape(&read).contains(&"new".to_owned()));
    }

    #[test]
    fn merge_orders_by_seq_and_ignores_duplicates() {
        let mut thread = Thread::opening(ConversationId(1));
        assert_eq!(thread.merge([message(1, 3, 1, 1), message(1, 1, 2, 1)]), 2);
        assert_eq!(thread.merge([message(1, 2, 1, 1), message(1, 3, 1, 1)]), 1);
        let seqs: Vec<i64> = thread.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(thread.last_seq(), 3);
        assert_eq!(thread.first_seq(), Some(1));
    }

    #[test]
    fn a_live_message_after_missed_ones_is_a_gap_until_they_arrive() {
        let mut thread = Thread::opening(ConversationId(1));
        thread.load_latest(vec![message(1, 71, 1, 1), message(1, 72, 1, 1)], true);
        assert_eq!(thread.complete_to, 72);
        assert!(!thread.has_gap());
        // 73 and 74 were missed while disconnected; 75 arrives live.
        thread.merge([message(1, 75, 2, 1)]);
        assert!(thread.has_gap());
        assert_eq!(
            thread.complete_to, 72,
            "catch-up must start after 72, not 75"
        );
        thread.merge([message(1, 73, 2, 1), message(1, 74, 2, 1)]);
        assert!(!thread.has_gap());
        assert_eq!(thread.complete_to, 75);
        // Older pages do not move it.
        thread.merge([message(1, 70, 2, 1)]);
        assert_eq!(thread.complete_to, 75);
    }

    #[test]
    fn live_messages_before_the_first_page_do_not_hide_a_gap() {
        let mut thread = Thread::opening(ConversationId(1));
        thread.merge([message(1, 100, 2, 1)]);
        assert!(
            !thread.has_gap(),
            "nothing is known to be missing before loading"
        );
        thread.load_latest((51..=100).map(|seq| message(1, seq, 1, 1)).collect(), true);
        assert_eq!(thread.complete_to, 100);
        let mut empty = Thread::opening(ConversationId(1));
        empty.load_latest(Vec::new(), false);
        empty.merge([message(1, 1, 2, 1), message(1, 2, 2, 1)]);
        assert_eq!(empty.complete_to, 2);
    }

    #[test]
    fn merge_ignores_other_conversations() {
        let mut thread = Thread::opening(ConversationId(1));
        assert_eq!(thread.merge([message(2, 1, 1, 1)]), 0);
        assert!(thread.messages.is_empty());
        let mut closed = Thread::default();
        assert_eq!(closed.merge([message(1, 1, 1, 1)]), 0);
    }

    #[test]
    fn rows_put_a_separator_before_each_day_and_pending_last() {
        let mut thread = Thread::opening(ConversationId(1));
        thread.merge([
            message(1, 1, 1, 1),
            message(1, 2, 2, 1),
            message(1, 3, 1, 2),
        ]);
        let pending = [
            Pending {
                conversation_id: ConversationId(1),
                client_msg_id: "p1".into(),
                body: "on its way".into(),
                attachments: Vec::new(),
                created_at: Utc.with_ymd_and_hms(2026, 11, 2, 13, 0, 0).unwrap(),
                failed: None,
                with_card: false,
            },
            Pending {
                conversation_id: ConversationId(9),
                client_msg_id: "elsewhere".into(),
                body: "other conversation".into(),
                attachments: Vec::new(),
                created_at: Utc.with_ymd_and_hms(2026, 11, 2, 13, 0, 0).unwrap(),
                failed: None,
                with_card: false,
            },
        ];
        let me = user(1);
        let rendered = rows(&thread, &pending, Some(&me), utc_day);
        let shape: Vec<String> = rendered
            .iter()
            .map(|row| match row {
                Row::Day { label, .. } => format!("day {label}"),
                Row::NewMessages => "new".to_owned(),
                Row::Message { key, state, .. } => format!("{key} {}", state.as_str()),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "day 2026-11-01",
                "1:c1 sent",
                "2:c2 sent",
                "day 2026-11-02",
                "1:c3 sent",
                "1:p1 sending",
            ]
        );
    }

    #[test]
    fn a_confirmed_message_keeps_the_key_of_its_pending_copy() {
        let me = user(1);
        let pending = Pending {
            conversation_id: ConversationId(1),
            client_msg_id: "c1".into(),
            body: "message 1".into(),
            attachments: Vec::new(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
            failed: None,
            with_card: false,
        };
        let mut thread = Thread::opening(ConversationId(1));
        let before = rows(&thread, std::slice::from_ref(&pending), Some(&me), utc_day);
        thread.merge([message(1, 1, 1, 1)]);
        let after = rows(&thread, &[], Some(&me), utc_day);
        let key = |rows: &[Row]| match &rows[1] {
            Row::Message { key, .. } => key.clone(),
            Row::Day { .. } | Row::NewMessages => String::new(),
        };
        assert_eq!(key(&before), key(&after));
    }

    #[test]
    fn receipts_follow_the_other_sides_positions() {
        assert_eq!(Receipt::of(5, 4, Some(3)), Receipt::Sent);
        assert_eq!(Receipt::of(5, 5, Some(4)), Receipt::Delivered);
        assert_eq!(Receipt::of(5, 9, Some(5)), Receipt::Seen);
        // Without shared read receipts a message is at most delivered, however far read.
        assert_eq!(Receipt::of(5, 9, None), Receipt::Delivered);
        // Reading implies having received, whatever the delivery position says.
        assert_eq!(Receipt::of(5, 0, Some(7)), Receipt::Seen);
    }
}
