//! The WebSocket protocol: the frames a client sends ([`ClientFrame`]) and the frames the
//! server sends ([`ServerFrame`]), each a JSON object with a `type` field.
//!
//! `docs/protocol.md` documents every frame for other clients (a mobile app, the marketplace's
//! backend). Parsing is strict: unknown frame types and unknown fields are refused, so a client
//! bug shows up as an `error` frame instead of being silently ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{AccountSettings, AttachmentId, ConversationId, MessageView, UserId, UserView};

/// Largest text frame the server reads, in bytes. A longer frame is answered with an `error`
/// frame (`frame_too_large`) and otherwise ignored; the connection stays open.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// A frame from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Send a message. Idempotent by `client_msg_id`: resending stores nothing new and is
    /// answered with the same `ack`. `attachment_ids` are uploads (`POST /files`) to send with
    /// it, at most [`crate::model::MAX_ATTACHMENTS_PER_MESSAGE`]; with any, `body` may be empty.
    Send {
        conversation_id: ConversationId,
        client_msg_id: String,
        body: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachment_ids: Vec<AttachmentId>,
    },
    /// The user is typing (`active: true`) or has stopped (`active: false`) in a conversation.
    Typing {
        conversation_id: ConversationId,
        active: bool,
    },
    /// This device has received the conversation's messages up to and including `seq`.
    Delivered {
        conversation_id: ConversationId,
        seq: i64,
    },
    /// The user has seen the conversation up to and including `seq` (it was on screen).
    Read {
        conversation_id: ConversationId,
        seq: i64,
    },
    /// Liveness check; answered with `pong`. (A struct variant, so that unknown fields are
    /// refused here too.)
    Ping {},
}

/// A frame from the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerFrame {
    /// First frame on every connection: live events flow from here on. A client that was
    /// disconnected fetches what it missed *after* this frame, so nothing falls in between.
    Ready { user: UserView },
    /// The server has stored a message this connection sent.
    Ack {
        client_msg_id: String,
        message: MessageView,
    },
    /// A new message in one of the user's conversations (including the user's own, so that
    /// every tab shows it).
    Message { message: MessageView },
    /// The other participant started or stopped typing. A client clears an `active` indicator
    /// by itself after [`crate::model::TYPING_TTL_MS`] without renewal.
    Typing {
        conversation_id: ConversationId,
        user: UserView,
        active: bool,
    },
    /// A device of the other participant has received the conversation up to `seq`.
    Delivered {
        conversation_id: ConversationId,
        user_id: UserId,
        seq: i64,
    },
    /// A participant has read the conversation up to `seq`: sent to the reader's own
    /// connections, and to the other participant when both share read receipts.
    Read {
        conversation_id: ConversationId,
        user_id: UserId,
        seq: i64,
    },
    /// Someone the user talks to came online (opened Parley anywhere) or went offline (closed
    /// their last tab or device), with when they were last seen.
    Presence {
        user_id: UserId,
        online: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen_at: Option<DateTime<Utc>>,
    },
    /// The user changed their settings (in this tab or another).
    Settings { settings: AccountSettings },
    /// Answer to `ping`.
    Pong,
    /// A frame could not be processed. Nothing was stored; the connection stays open.
    Error {
        code: ErrorCode,
        message: String,
        /// Set when the failed frame was a `send`, so the client knows which message failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// With `rate_limited`: milliseconds until such a frame is accepted again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, an unknown `type`, a missing or unknown field, or a binary frame.
    InvalidFrame,
    /// Longer than [`MAX_FRAME_BYTES`].
    FrameTooLarge,
    /// A field's value is not acceptable (an empty or too-long message, a bad id).
    InvalidInput,
    /// The connection sent this kind of frame too fast; `retry_after_ms` says when to resume.
    RateLimited,
    /// No such conversation, or the user is not part of it.
    NotFound,
    /// The server failed; the message was not stored and may be sent again.
    Internal,
}

impl ServerFrame {
    /// An `error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            client_msg_id: None,
            retry_after_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_use_a_type_tag() {
        let frame: ClientFrame = serde_json::from_str(
            r#"{"type":"send","conversation_id":7,"client_msg_id":"abc","body":"hi"}"#,
        )
        .unwrap();
        assert_eq!(
            frame,
            ClientFrame::Send {
                conversation_id: ConversationId(7),
                client_msg_id: "abc".into(),
                body: "hi".into(),
                attachment_ids: Vec::new(),
            }
        );
        let ping: ClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, ClientFrame::Ping {});
    }

    #[test]
    fn unknown_types_and_fields_are_refused() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout"}"#).is_err());
        assert!(
            serde_json::from_str::<ClientFrame>(
                r#"{"type":"typing","conversation_id":1,"active":true,"extra":1}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"conversation_id":1}"#).is_err());
    }

    #[test]
    fn server_frames_round_trip() {
        let frame = ServerFrame::error(ErrorCode::FrameTooLarge, "too big");
        let json = serde_json::to_string(&frame).unwrap();
        assert_eq!(
            json,
            r#"{"type":"error","code":"frame_too_large","message":"too big"}"#
        );
        assert_eq!(serde_json::from_str::<ServerFrame>(&json).unwrap(), frame);
        assert_eq!(
            serde_json::to_string(&ServerFrame::Pong).unwrap(),
            r#"{"type":"pong"}"#
        );
    }
}
