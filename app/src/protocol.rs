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

/// The WebSocket close code of a socket closed because its user opened more than the server
/// keeps for one person (the oldest goes). A client should not reconnect at once, or its tabs
/// would take turns closing each other: Parley's waits until its tab is looked at again.
pub const CLOSE_DISPLACED: u16 = 4001;

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
        /// Take the card the marketplace left waiting in this conversation ("Asking about…")
        /// with this message. The card itself never comes from the browser.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        with_card: bool,
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
///
/// Decoded by hand (see the `Deserialize` impl below), written by serde's derive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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

/// Reads a server frame whose `type` comes first, as the server always writes it (serde
/// writes an internally tagged enum's tag before the fields).
///
/// serde's derived decoder for internally tagged enums accepts the tag anywhere, so it buffers
/// every frame into an intermediate tree before decoding it: code for every field type, twice,
/// in the browser's bundle (about 10 KB compressed, docs/performance.md). Reading the tag
/// first lets each kind's fields be decoded straight from the input by the plain structs in
/// [`fields`], with the same rules: every field known, the required ones present.
impl<'de> Deserialize<'de> for ServerFrame {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ServerFrameVisitor)
    }
}

struct ServerFrameVisitor;

impl<'de> serde::de::Visitor<'de> for ServerFrameVisitor {
    type Value = ServerFrame;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a server frame: an object whose first field is `type`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ServerFrame, A::Error> {
        use serde::de::{Error, value::MapAccessDeserializer};

        if map.next_key::<fields::TypeKey>()?.is_none() {
            return Err(A::Error::missing_field("type"));
        }
        let kind: fields::FrameType = map.next_value()?;
        let rest = MapAccessDeserializer::new(map);
        // Decodes the rest of the object as `fields::$kind` and moves its fields into the
        // variant of the same name.
        macro_rules! frame {
            ($kind:ident => $variant:ident { $($field:ident),* }) => {{
                let fields::$kind { $($field),* } = Deserialize::deserialize(rest)?;
                ServerFrame::$variant { $($field),* }
            }};
        }
        Ok(match kind {
            fields::FrameType::Ready => frame!(Ready => Ready { user }),
            fields::FrameType::Ack => frame!(Ack => Ack { client_msg_id, message }),
            fields::FrameType::Message => frame!(Message => Message { message }),
            fields::FrameType::Typing => {
                frame!(Typing => Typing { conversation_id, user, active })
            }
            fields::FrameType::Delivered => {
                frame!(Position => Delivered { conversation_id, user_id, seq })
            }
            fields::FrameType::Read => frame!(Position => Read { conversation_id, user_id, seq }),
            fields::FrameType::Presence => {
                frame!(Presence => Presence { user_id, online, last_seen_at })
            }
            fields::FrameType::Settings => frame!(Settings => Settings { settings }),
            fields::FrameType::Pong => {
                let fields::Pong {} = Deserialize::deserialize(rest)?;
                ServerFrame::Pong
            }
            fields::FrameType::Error => frame!(Error => Error {
                code,
                message,
                client_msg_id,
                retry_after_ms
            }),
        })
    }
}

/// The fields of each kind of server frame, as plain structs for serde to decode.
mod fields {
    use chrono::{DateTime, Utc};
    use serde::Deserialize;

    use super::ErrorCode;
    use crate::model::{AccountSettings, ConversationId, MessageView, UserId, UserView};

    /// The one key a frame may start with.
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum TypeKey {
        Type,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub(super) enum FrameType {
        Ready,
        Ack,
        Message,
        Typing,
        Delivered,
        Read,
        Presence,
        Settings,
        Pong,
        Error,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Ready {
        pub user: UserView,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Ack {
        pub client_msg_id: String,
        pub message: MessageView,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Message {
        pub message: MessageView,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Typing {
        pub conversation_id: ConversationId,
        pub user: UserView,
        pub active: bool,
    }

    /// `delivered` and `read`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Position {
        pub conversation_id: ConversationId,
        pub user_id: UserId,
        pub seq: i64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Presence {
        pub user_id: UserId,
        pub online: bool,
        #[serde(default)]
        pub last_seen_at: Option<DateTime<Utc>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Settings {
        pub settings: AccountSettings,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Pong {}

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Error {
        pub code: ErrorCode,
        pub message: String,
        #[serde(default)]
        pub client_msg_id: Option<String>,
        #[serde(default)]
        pub retry_after_ms: Option<u64>,
    }
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
                with_card: false,
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
    fn every_kind_of_server_frame_round_trips() {
        use chrono::TimeZone;

        use crate::model::{AccountSettings, MessageId, MessageView, UserId, UserView};

        let ann = UserView {
            id: UserId(1),
            username: "ann".into(),
            display_name: "Ann".into(),
        };
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 30, 9, 15, 0)
            .unwrap();
        let message = MessageView {
            id: MessageId(9),
            conversation_id: ConversationId(7),
            seq: 3,
            sender: ann.clone(),
            client_msg_id: "m-1".into(),
            body: "hi".into(),
            created_at: at,
            attachments: Vec::new(),
            kind: crate::model::MessageKind::User,
            card: None,
        };
        let frames = [
            ServerFrame::Ready { user: ann.clone() },
            ServerFrame::Ack {
                client_msg_id: "m-1".into(),
                message: message.clone(),
            },
            ServerFrame::Message { message },
            ServerFrame::Typing {
                conversation_id: ConversationId(7),
                user: ann,
                active: true,
            },
            ServerFrame::Delivered {
                conversation_id: ConversationId(7),
                user_id: UserId(2),
                seq: 3,
            },
            ServerFrame::Read {
                conversation_id: ConversationId(7),
                user_id: UserId(2),
                seq: 3,
            },
            ServerFrame::Presence {
                user_id: UserId(2),
                online: false,
                last_seen_at: Some(at),
            },
            ServerFrame::Presence {
                user_id: UserId(2),
                online: true,
                last_seen_at: None,
            },
            ServerFrame::Settings {
                settings: AccountSettings {
                    read_receipts: false,
                },
            },
            ServerFrame::Pong,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                client_msg_id: Some("m-2".into()),
                retry_after_ms: Some(300),
            },
        ];
        // Every variant is in the list, so a kind added to `ServerFrame` but not to the
        // decoder's `fields` fails here.
        let kinds: std::collections::HashSet<_> = frames.iter().map(kind_number).collect();
        assert_eq!(kinds.len(), FRAME_KINDS);
        for frame in frames {
            let json = serde_json::to_string(&frame).unwrap();
            assert!(json.starts_with(r#"{"type":"#), "{json}");
            assert_eq!(serde_json::from_str::<ServerFrame>(&json).unwrap(), frame);
        }
    }

    const FRAME_KINDS: usize = 10;

    /// Numbers the kinds of frame. Without a wildcard, so a new kind does not compile until it
    /// is numbered here (and `FRAME_KINDS` and the list above have it).
    fn kind_number(frame: &ServerFrame) -> usize {
        match frame {
            ServerFrame::Ready { .. } => 0,
            ServerFrame::Ack { .. } => 1,
            ServerFrame::Message { .. } => 2,
            ServerFrame::Typing { .. } => 3,
            ServerFrame::Delivered { .. } => 4,
            ServerFrame::Read { .. } => 5,
            ServerFrame::Presence { .. } => 6,
            ServerFrame::Settings { .. } => 7,
            ServerFrame::Pong => 8,
            ServerFrame::Error { .. } => 9,
        }
    }

    #[test]
    fn server_frames_are_read_strictly() {
        let refused = [
            // The type must come first (the server always writes it first).
            r#"{"user_id":2,"type":"read","conversation_id":7,"seq":3}"#,
            r#"{}"#,
            r#"{"type":"shout"}"#,
            r#"{"type":"pong","extra":1}"#,
            r#"{"type":"read","conversation_id":7,"seq":3}"#,
            r#"{"type":"read","conversation_id":7,"user_id":2,"seq":3,"seq":4}"#,
            r#"["read"]"#,
        ];
        for json in refused {
            assert!(serde_json::from_str::<ServerFrame>(json).is_err(), "{json}");
        }
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
