//! [`FrameHandler`]: what one connection does with each frame its client sends, and what it
//! remembers between frames.
//!
//! Every inbound frame is parsed strictly into a [`ClientFrame`]; anything wrong with one is
//! answered with an `error` frame naming the problem, and the connection carries on. A client
//! that keeps breaking the rules (a burst of invalid frames, or going on and on over its rate
//! limits) is told it misbehaved ([`FrameHandler::misbehaviour`]): the connection loop then
//! closes it with 1008, and the browser's reconnection backoff takes over.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;

use app::{
    accounts::User,
    conversations::{self, ConversationsError},
    limits::{ConnectionLimits, TypingVerdict},
    messages::{self, MessagesError},
    model::{
        AttachmentId, ClientMsgId, ConversationId, MAX_ATTACHMENTS_PER_MESSAGE, MessageBody,
        TYPING_TTL_MS, UserId,
    },
    protocol::{ClientFrame, ErrorCode, MAX_FRAME_BYTES, ServerFrame},
    realtime::SocketId,
    state::AppState,
};

use crate::metrics as names;

/// A message the client sent, as the connection loop hands it over.
pub enum Incoming {
    Text(Utf8Bytes),
    Binary,
}

/// What a connection remembers between frames.
pub struct FrameHandler {
    /// This socket, for the fan-out (which skips it for the messages it sent).
    pub(super) id: SocketId,
    state: AppState,
    user: User,
    /// The other participant of each conversation this socket has used. Membership of a
    /// two-person conversation never changes, so one check per conversation is enough.
    others: HashMap<ConversationId, UserId>,
    /// When this connection last said the user was typing, per conversation: the ones still
    /// live are cancelled when the connection ends.
    typing: HashMap<ConversationId, Instant>,
    /// This connection's budgets for typing signals and receipts, and its tolerance.
    limits: ConnectionLimits,
    /// Set once the client has broken the rules too often: the reason the connection closes.
    misbehaviour: Option<&'static str>,
}

impl FrameHandler {
    pub(super) fn new(state: AppState, user: User) -> Self {
        let limits = state.limits.connection();
        Self {
            id: uuid::Uuid::new_v4().as_u64_pair().0,
            state,
            user,
            others: HashMap::new(),
            typing: HashMap::new(),
            limits,
            misbehaviour: None,
        }
    }

    pub(super) fn user(&self) -> &User {
        &self.user
    }

    /// Why the connection must close, once the client has misbehaved too often.
    pub(super) fn misbehaviour(&self) -> Option<&'static str> {
        self.misbehaviour
    }

    /// Handles one message from the client; returns the reply for this socket, if any.
    pub(super) async fn handle(&mut self, incoming: Incoming) -> Option<ServerFrame> {
        let parsed = match incoming {
            Incoming::Text(text) => parse(text.as_str()),
            Incoming::Binary => Err((
                ErrorCode::InvalidFrame,
                "binary frames are not supported; send JSON text frames".into(),
            )),
        };
        let frame = match parsed {
            Ok(frame) => frame,
            Err((code, message)) => {
                if !self.limits.tolerate_invalid() {
                    self.misbehaviour = Some("too many invalid frames");
                }
                return Some(ServerFrame::error(code, message));
            }
        };
        match frame {
            ClientFrame::Send {
                conversation_id,
                client_msg_id,
                body,
                attachment_ids,
                with_card,
            } => Some(
                self.send_message(
                    conversation_id,
                    client_msg_id,
                    &body,
                    attachment_ids,
                    with_card,
                )
                .await,
            ),
            ClientFrame::Typing {
                conversation_id,
                active,
            } => self.typing(conversation_id, active).await,
            ClientFrame::Delivered {
                conversation_id,
                seq,
            } => self.delivered(conversation_id, seq).await,
            ClientFrame::Read {
                conversation_id,
                seq,
            } => self.read(conversation_id, seq).await,
            ClientFrame::Ping {} => Some(ServerFrame::Pong),
        }
    }

    /// Counts a frame refused (or dropped) for going over a limit.
    fn count_refusal(&mut self) {
        if !self.limits.tolerate_refusal() {
            self.misbehaviour = Some("too many requests over the rate limits");
        }
    }

    /// Stores the message, acknowledges it, and publishes it to both participants.
    async fn send_message(
        &mut self,
        conversation_id: ConversationId,
        client_msg_id: String,
        body: &str,
        attachments: Vec<AttachmentId>,
        with_card: bool,
    ) -> ServerFrame {
        let refuse = |code, message: String, id: &str| ServerFrame::Error {
            code,
            message,
            client_msg_id: Some(id.to_owned()),
            retry_after_ms: None,
        };
        // Before any work: a flood costs no parsing, no database and no fan-out. The budget is
        // the user's, whichever connection (or instance) the messages come through.
        if let Err(wait) = self.state.limits.message(self.user.id).await {
            self.count_refusal();
            return rate_limited("messages", wait, Some(client_msg_id));
        }
        let id = match ClientMsgId::parse(&client_msg_id) {
            Ok(id) => id,
            Err(problem) => return refuse(ErrorCode::InvalidInput, problem, &client_msg_id),
        };
        if attachments.len() > MAX_ATTACHMENTS_PER_MESSAGE {
            return refuse(
                ErrorCode::InvalidInput,
                format!("A message can carry at most {MAX_ATTACHMENTS_PER_MESSAGE} files."),
                &client_msg_id,
            );
        }
        // Files may go without a caption; text alone may not be blank.
        let body = if attachments.is_empty() {
            MessageBody::parse(body)
        } else {
            MessageBody::parse_caption(body)
        };
        let body = match body {
            Ok(body) => body,
            Err(problem) => return refuse(ErrorCode::InvalidInput, problem, &client_msg_id),
        };
        // The card comes from what the marketplace left waiting, never from the frame: a
        // browser can ask for it to go, not say what it is.
        let card = if with_card {
            match conversations::waiting_card(&self.state.db, self.user.id, conversation_id).await {
                Ok(card) => card,
                Err(error) => {
                    tracing::error!(%error, user = %self.user.id, "could not read a waiting card");
                    return refuse(
                        ErrorCode::Internal,
                        "the message could not be stored; send it again".into(),
                        &client_msg_id,
                    );
                }
            }
        } else {
            None
        };
        let content = messages::Content {
            body,
            attachments,
            card,
        };
        // A message that takes its card is stored on its own, and so is its retry: the answer
        // to a retry then carries the card too, however the first attempt was stored.
        let stored = if with_card {
            messages::send(
                &self.state.db,
                &self.user.view(),
                conversation_id,
                &id,
                &content,
            )
            .await
        } else {
            self.state
                .messages
                .send(self.user.view(), conversation_id, id, content)
                .await
        };
        let sent = match stored {
            Ok(sent) => sent,
            Err(MessagesError::NotFound) => {
                return refuse(
                    ErrorCode::NotFound,
                    "conversation not found".into(),
                    &client_msg_id,
                );
            }
            Err(
                error @ (MessagesError::ClientMsgIdReused | MessagesError::AttachmentUnavailable),
            ) => {
                return refuse(ErrorCode::InvalidInput, error.to_string(), &client_msg_id);
            }
            Err(MessagesError::Database(error)) => {
                tracing::error!(%error, user = %self.user.id, "could not store a message");
                return refuse(
                    ErrorCode::Internal,
                    "the message could not be stored; send it again".into(),
                    &client_msg_id,
                );
            }
        };
        // Sending a message ends "typing" on the other side by itself.
        if self.typing.remove(&conversation_id).is_some() {
            self.state
                .limits
                .typing_stopped(self.user.id, conversation_id);
        }
        if sent.created {
            metrics::counter!(names::MESSAGES_PERSISTED).increment(1);
            match self.other(conversation_id).await {
                Ok(other) => {
                    let frame = ServerFrame::Message {
                        message: sent.message.clone(),
                    };
                    if let Err(error) = self
                        .state
                        .realtime
                        .publish_from(Some(self.id), &[self.user.id, other], &frame)
                        .await
                    {
                        // Stored but not delivered live: both sides catch up from history.
                        tracing::error!(%error, "could not publish a message");
                    }
                }
                Err(error) => {
                    tracing::error!(?error, "sent to a conversation with no other member")
                }
            }
        }
        ServerFrame::Ack {
            client_msg_id,
            message: sent.message,
        }
    }

    /// Relays a typing signal to the other participant: at most one per conversation per
    /// throttle interval, whichever of the user's connections sends them (`RateLimits::typing`).
    /// Signals that change nothing, come too fast or go over this connection's budget are
    /// dropped without an answer: typing is best-effort.
    async fn typing(
        &mut self,
        conversation_id: ConversationId,
        active: bool,
    ) -> Option<ServerFrame> {
        if self.limits.typing().is_err() {
            self.count_refusal();
            return None;
        }
        let other = match self.other(conversation_id).await {
            Ok(other) => other,
            Err(reply) => return Some(reply),
        };
        if active {
            self.typing.insert(conversation_id, Instant::now());
        } else {
            self.typing.remove(&conversation_id);
        }
        match self
            .state
            .limits
            .typing(self.user.id, conversation_id, active)
        {
            TypingVerdict::Relay => {
                relay_typing(&self.state, &self.user, conversation_id, other, active).await;
            }
            TypingVerdict::Drop => {}
            // Held until the interval ends, then relayed if the user has not started again.
            TypingVerdict::StopAt(at) => {
                let (state, user) = (self.state.clone(), self.user.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    if state.limits.typing_stop_due(user.id, conversation_id) {
                        relay_typing(&state, &user, conversation_id, other, false).await;
                    }
                });
            }
        }
        None
    }

    /// Moves the user's delivery position and tells the other participant (the sender of what
    /// was delivered).
    async fn delivered(
        &mut self,
        conversation_id: ConversationId,
        seq: i64,
    ) -> Option<ServerFrame> {
        if let Err(wait) = self.limits.receipt() {
            self.count_refusal();
            return Some(rate_limited("receipts", wait, None));
        }
        let other = match self.other(conversation_id).await {
            Ok(other) => other,
            Err(reply) => return Some(reply),
        };
        match conversations::mark_delivered(&self.state.db, self.user.id, conversation_id, seq)
            .await
        {
            Ok(Some(seq)) => {
                self.publish_delivered(conversation_id, other, seq).await;
                None
            }
            Ok(None) => None,
            Err(error) => Some(self.conversation_error(error)),
        }
    }

    /// Tells the other participant how far this user's devices have received a conversation.
    async fn publish_delivered(&self, conversation_id: ConversationId, other: UserId, seq: i64) {
        let frame = ServerFrame::Delivered {
            conversation_id,
            user_id: self.user.id,
            seq,
        };
        if let Err(error) = self.state.realtime.publish(&[other], &frame).await {
            tracing::warn!(%error, "could not publish a delivery position");
        }
    }

    /// Moves the user's read position and tells the user's connections (so that every tab
    /// clears its unread count). The other participant hears of it only when both share read
    /// receipts; otherwise they learn that it was delivered, which reading implies.
    async fn read(&mut self, conversation_id: ConversationId, seq: i64) -> Option<ServerFrame> {
        if let Err(wait) = self.limits.receipt() {
            self.count_refusal();
            return Some(rate_limited("receipts", wait, None));
        }
        let other = match self.other(conversation_id).await {
            Ok(other) => other,
            Err(reply) => return Some(reply),
        };
        let moved = match conversations::mark_read(
            &self.state.db,
            self.user.id,
            conversation_id,
            seq,
        )
        .await
        {
            Ok(moved) => moved,
            Err(error) => return Some(self.conversation_error(error)),
        };
        let seq = moved.read?;
        let shared =
            match conversations::read_receipts_shared(&self.state.db, self.user.id, other).await {
                Ok(shared) => shared,
                Err(error) => {
                    // Stored; only the receipt is withheld, as if it were not shared.
                    tracing::warn!(%error, "could not check whether read receipts are shared");
                    false
                }
            };
        let frame = ServerFrame::Read {
            conversation_id,
            user_id: self.user.id,
            seq,
        };
        let to: &[UserId] = if shared {
            &[self.user.id, other]
        } else {
            &[self.user.id]
        };
        if let Err(error) = self.state.realtime.publish(to, &frame).await {
            tracing::warn!(%error, "could not publish a read position");
        }
        // Without shared receipts the sender learns only what reading implies, and only if it
        // is news: a delivery position that moved (so nothing tells when the reading happened
        // once the device has acknowledged the messages).
        if !shared && let Some(delivered) = moved.delivered {
            self.publish_delivered(conversation_id, other, delivered)
                .await;
        }
        None
    }

    /// The other participant, checking (once per conversation) that the user is one.
    async fn other(&mut self, conversation_id: ConversationId) -> Result<UserId, ServerFrame> {
        if let Some(other) = self.others.get(&conversation_id) {
            return Ok(*other);
        }
        match conversations::other_participant(&self.state.db, self.user.id, conversation_id).await
        {
            Ok(other) => {
                self.others.insert(conversation_id, other);
                Ok(other)
            }
            Err(error) => Err(self.conversation_error(error)),
        }
    }

    fn conversation_error(&self, error: ConversationsError) -> ServerFrame {
        match error {
            ConversationsError::NotFound | ConversationsError::WithSelf => {
                ServerFrame::error(ErrorCode::NotFound, "conversation not found")
            }
            ConversationsError::Database(error) => {
                tracing::error!(%error, user = %self.user.id, "database error on a socket");
                ServerFrame::error(ErrorCode::Internal, "something went wrong; try again")
            }
        }
    }

    /// The connection is over: whoever saw this user typing here sees them stop.
    pub(super) async fn leave(self) {
        let ttl = Duration::from_millis(u64::from(TYPING_TTL_MS));
        for (conversation_id, since) in &self.typing {
            if since.elapsed() < ttl
                && let Some(other) = self.others.get(conversation_id)
                && self
                    .state
                    .limits
                    .typing_stopped(self.user.id, *conversation_id)
            {
                relay_typing(&self.state, &self.user, *conversation_id, *other, false).await;
            }
        }
    }
}

async fn relay_typing(
    state: &AppState,
    user: &User,
    conversation_id: ConversationId,
    other: UserId,
    active: bool,
) {
    let frame = ServerFrame::Typing {
        conversation_id,
        user: user.view(),
        active,
    };
    if let Err(error) = state.realtime.publish(&[other], &frame).await {
        tracing::warn!(%error, "could not relay a typing signal");
    }
}

/// The `rate_limited` error frame.
fn rate_limited(what: &str, wait: Duration, client_msg_id: Option<String>) -> ServerFrame {
    let retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    ServerFrame::Error {
        code: ErrorCode::RateLimited,
        message: format!(
            "Too many {what}; try again in {} s.",
            app::limits::retry_after_secs(wait)
        ),
        client_msg_id,
        retry_after_ms: Some(retry_after_ms),
    }
}

/// Parses a text frame, or says what is wrong with it.
///
/// # Errors
/// The code and message of the `error` frame to answer with.
pub fn parse(text: &str) -> Result<ClientFrame, (ErrorCode, String)> {
    if text.len() > MAX_FRAME_BYTES {
        return Err((
            ErrorCode::FrameTooLarge,
            format!(
                "frame is {} bytes; the limit is {MAX_FRAME_BYTES}",
                text.len()
            ),
        ));
    }
    // serde would also take a variant's fields as an array (`["ping"]`); frames are objects.
    if !text.trim_start().starts_with('{') {
        return Err((
            ErrorCode::InvalidFrame,
            "invalid frame: a frame is a JSON object with a \"type\" field".into(),
        ));
    }
    serde_json::from_str(text)
        .map_err(|error| (ErrorCode::InvalidFrame, format!("invalid frame: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(error: (ErrorCode, String)) -> ErrorCode {
        error.0
    }

    #[test]
    fn malformed_and_unknown_frames_are_invalid() {
        for text in [
            "not json",
            r#"{"type":"dance"}"#,
            r#"{"type":"send","conversation_id":1}"#,
            r#"{"type":"ping","extra":true}"#,
            r#"[1,2,3]"#,
            r#"["ping"]"#,
            r#"["send",7,"abc","hi"]"#,
        ] {
            assert_eq!(
                code(parse(text).unwrap_err()),
                ErrorCode::InvalidFrame,
                "{text}"
            );
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing() {
        let text = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(code(parse(&text).unwrap_err()), ErrorCode::FrameTooLarge);
    }

    #[test]
    fn good_frames_parse() {
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping {});
    }
}

/// Property tests for the frame parser (a fuzz target run on every `cargo test`): it never
/// panics, refuses what is too long before looking at it, gives back exactly the frame a
/// client encoded, and refuses any frame with a field added.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn client_frame() -> impl Strategy<Value = ClientFrame> {
        let id = any::<i64>().prop_map(ConversationId);
        prop_oneof![
            (
                id.clone(),
                ".{0,70}",
                ".{0,200}",
                prop::collection::vec(any::<i64>().prop_map(AttachmentId), 0..12),
                any::<bool>()
            )
                .prop_map(
                    |(conversation_id, client_msg_id, body, attachment_ids, with_card)| {
                        ClientFrame::Send {
                            conversation_id,
                            client_msg_id,
                            body,
                            attachment_ids,
                            with_card,
                        }
                    }
                ),
            (id.clone(), any::<bool>()).prop_map(|(conversation_id, active)| ClientFrame::Typing {
                conversation_id,
                active
            }),
            (id.clone(), any::<i64>()).prop_map(|(conversation_id, seq)| ClientFrame::Read {
                conversation_id,
                seq
            }),
            (id, any::<i64>()).prop_map(|(conversation_id, seq)| ClientFrame::Delivered {
                conversation_id,
                seq
            }),
            Just(ClientFrame::Ping {}),
        ]
    }

    /// Any JSON value, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::String),
            prop_oneof![Just("send"), Just("typing"), Just("read"), Just("ping")]
                .prop_map(|t| Value::String(t.to_owned())),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("conversation_id".to_owned()),
                        Just("body".to_owned()),
                        ".{0,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn any_text_is_answered_without_panicking(text in ".{0,300}") {
            match parse(&text) {
                Ok(frame) => {
                    let again = serde_json::to_string(&frame).map(|json| parse(&json));
                    prop_assert_eq!(again.ok().and_then(Result::ok), Some(frame));
                }
                Err((code, message)) => {
                    prop_assert_eq!(code, ErrorCode::InvalidFrame);
                    prop_assert!(!message.is_empty());
                }
            }
        }

        #[test]
        fn any_json_is_answered_without_panicking(value in json_value()) {
            let text = value.to_string();
            if let Ok(frame) = parse(&text) {
                // Accepted only if it is exactly a frame: encoding it gives the same JSON back.
                let encoded: Value = serde_json::to_value(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(encoded, value);
            }
        }

        #[test]
        fn encoded_frames_parse_back_to_themselves(frame in client_frame()) {
            let text = serde_json::to_string(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parse(&text).ok(), Some(frame));
        }

        #[test]
        fn frames_with_an_extra_field_are_refused(frame in client_frame(), field in "[a-z_]{1,12}") {
            let mut value = serde_json::to_value(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let known = [
                "type",
                "conversation_id",
                "client_msg_id",
                "body",
                "attachment_ids",
                "active",
                "seq",
            ];
            prop_assume!(!known.contains(&field.as_str()));
            if let Value::Object(map) = &mut value {
                map.insert(field, Value::Bool(true));
            }
            prop_assert_eq!(parse(&value.to_string()).map_err(|e| e.0), Err(ErrorCode::InvalidFrame));
        }

        #[test]
        fn frames_over_the_limit_are_refused_unread(padding in 0_usize..1024) {
            let text = " ".repeat(MAX_FRAME_BYTES + 1 + padding);
            prop_assert_eq!(parse(&text).map_err(|e| e.0), Err(ErrorCode::FrameTooLarge));
        }
    }
}
