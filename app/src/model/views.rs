//! What a client is shown: users, messages, files, conversation summaries, history pages, and
//! field errors. Built on the server from the database rows, never the rows themselves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AttachmentId, ContextCard, ConversationId, MessageId, UserId};

/// What anyone may see of a user: never the password hash or anything else from the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

/// A stored message, as both participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    /// Position in the conversation: 1, 2, 3… with no gaps. Messages are ordered by it.
    pub seq: i64,
    pub sender: UserView,
    /// The id the sending client chose; lets the sender match the stored copy to its local echo.
    pub client_msg_id: String,
    /// The text; empty when the message is only attachments.
    pub body: String,
    /// Server time at which the message was stored (millisecond precision).
    pub created_at: DateTime<Utc>,
    /// Files sent with the message, in the order they were attached.
    #[serde(default)]
    pub attachments: Vec<AttachmentView>,
    /// A person's message, or a notice from the marketplace (left out on the wire for the
    /// first, by far the most common).
    #[serde(default, skip_serializing_if = "MessageKind::is_user")]
    pub kind: MessageKind,
    /// The product or order it is about, as the marketplace described it when it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<ContextCard>,
}

/// Who a message is from: one of the two people, or the marketplace itself (an order update,
/// sent through the server API), which is shown as a notice rather than as someone's bubble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    #[default]
    User,
    System,
}

impl MessageKind {
    pub fn is_user(&self) -> bool {
        *self == Self::User
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::System => "system",
        }
    }

    /// From the stored text; anything unknown is a person's message.
    pub fn from_stored(stored: &str) -> Self {
        if stored == "system" {
            Self::System
        } else {
            Self::User
        }
    }
}

/// A file attached to a message, as both participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentView {
    pub id: AttachmentId,
    /// The sanitised file name (see [`FileName`]).
    pub file_name: String,
    /// The type the server found in the file's bytes.
    pub content_type: String,
    pub size_bytes: u64,
    /// Pixel size; set for images, which also have a thumbnail.
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl AttachmentView {
    /// Whether this is an image shown inline (it has a thumbnail).
    pub fn is_image(&self) -> bool {
        self.width.is_some()
    }

    /// Where the file is downloaded from.
    pub fn url(&self) -> String {
        format!("/files/{}", self.id)
    }

    /// Where an image's thumbnail is.
    pub fn thumbnail_url(&self) -> String {
        format!("/files/{}/thumbnail", self.id)
    }
}

/// The latest message of a conversation, shortened for the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePreview {
    pub sender_id: UserId,
    /// At most [`PREVIEW_MAX_CHARS`] characters of the body.
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// Longest preview shown in the conversation list.
pub const PREVIEW_MAX_CHARS: usize = 120;

impl MessagePreview {
    /// The preview of a message with this sender, body and time.
    pub fn new(sender_id: UserId, body: &str, created_at: DateTime<Utc>) -> Self {
        Self {
            sender_id,
            body: preview_text(body),
            created_at,
        }
    }

    /// The preview of a message: its text, or for a card alone the card's title.
    pub fn of(message: &MessageView) -> Self {
        Self::new(
            message.sender.id,
            message_text(&message.body, message.card.as_ref()),
            message.created_at,
        )
    }
}

/// What a message says in a line of text: its body, or for a card alone the card's title.
pub fn message_text<'a>(body: &'a str, card: Option<&'a ContextCard>) -> &'a str {
    match card {
        Some(card) if body.trim().is_empty() => &card.title,
        _ => body,
    }
}

/// What the conversation list shows for a message that is only files.
pub const ATTACHMENT_PREVIEW: &str = "📎 Attachment";

/// The first line-folded [`PREVIEW_MAX_CHARS`] characters of a body, with an ellipsis if cut;
/// [`ATTACHMENT_PREVIEW`] for an empty body (a message that is only files).
pub fn preview_text(body: &str) -> String {
    let folded: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.is_empty() {
        return ATTACHMENT_PREVIEW.to_owned();
    }
    if folded.chars().count() <= PREVIEW_MAX_CHARS {
        folded
    } else {
        let mut cut: String = folded.chars().take(PREVIEW_MAX_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// One row of a user's conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: ConversationId,
    /// The other participant.
    pub other: UserView,
    pub last_message: Option<MessagePreview>,
    /// When the latest message was sent, or when the conversation was opened if it has none.
    pub last_activity_at: DateTime<Utc>,
    /// Sequence number of the latest message (0 when there is none).
    pub last_seq: i64,
    /// Messages after the last one this user has read.
    pub unread: i64,
    /// Whether the other participant has Parley open right now (any tab or device).
    #[serde(default)]
    pub other_online: bool,
    /// When the other participant's last connection ended; `None` if never.
    #[serde(default)]
    pub other_last_seen_at: Option<DateTime<Utc>>,
    /// A device of the other participant has received every message up to this `seq`.
    #[serde(default)]
    pub other_delivered_seq: i64,
    /// The other participant has read up to this `seq`; `None` unless both people share read
    /// receipts.
    #[serde(default)]
    pub other_read_seq: Option<i64>,
    /// The latest card sent in it: "About: <title>" in the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<ContextCard>,
    /// The card the marketplace's sign-in left for this user's next message ("Asking about:
    /// <title>" above the composer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_card: Option<ContextCard>,
}

/// A user's own choices, which only they see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// Let the people one talks to see how far one has read, and see theirs. Off means
    /// neither: as in other messengers, it works both ways.
    pub read_receipts: bool,
}

/// One page of a conversation's history, oldest message first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub messages: Vec<MessageView>,
    /// Whether there are more messages beyond this page in the direction that was asked for.
    pub has_more: bool,
}

/// A problem with one field of a form or request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The name of the field, as in the request (`username`, `password`, `body`…).
    pub field: String,
    /// A sentence a user can act on.
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times cross the wire as chrono writes them: RFC 3339 in UTC with a `Z`, milliseconds as
    /// the server stores them; a numeric offset is read too.
    #[test]
    fn times_are_rfc3339_in_utc_on_the_wire() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T09:55:34.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let preview = MessagePreview::new(UserId(1), "hi", at);
        let json = serde_json::to_string(&preview).unwrap();
        assert_eq!(
            json,
            r#"{"sender_id":1,"body":"hi","created_at":"2026-11-30T09:55:34.123Z"}"#
        );
        assert_eq!(
            serde_json::from_str::<MessagePreview>(&json).unwrap(),
            preview
        );
        let offset = json.replace("09:55:34.123Z", "10:55:34.123+01:00");
        assert_eq!(
            serde_json::from_str::<MessagePreview>(&offset).unwrap(),
            preview
        );
    }

    #[test]
    fn preview_folds_whitespace_and_cuts_long_bodies() {
        assert_eq!(preview_text("a\n\nb   c"), "a b c");
        let long = preview_text(&"x".repeat(500));
        assert_eq!(long.chars().count(), PREVIEW_MAX_CHARS);
        assert!(long.ends_with('…'));
    }
}
