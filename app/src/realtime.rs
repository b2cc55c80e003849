//! The port through which live events reach users: [`Realtime`].
//!
//! Whoever changes something a user should see at once (a new message, a typing signal)
//! publishes a [`ServerFrame`] to that user; every socket the user has open, on this server
//! instance or another, receives it. The implementations live in the server crate: one inside
//! this process, and later one over Redis pub/sub for several instances. Callers never know
//! which one they have.
//!
//! Delivery is at most once. The database is the source of truth: messages are stored *before*
//! they are published, and a client that was disconnected or fell behind catches up from the
//! database (see [`RealtimeEvent::Lagged`]).

use std::{collections::HashSet, pin::Pin, sync::Arc, time::SystemTime};

use futures::Stream;

use crate::{model::UserId, protocol::ServerFrame};

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealtimeEvent {
    /// A frame for the user, already encoded as JSON: it is encoded once per publish and the
    /// same text goes to every socket.
    Frame(Arc<str>),
    /// A new message's frame, encoded like [`Self::Frame`], with the time it was published:
    /// the connection that writes it out measures the delivery time from there.
    Message {
        text: Arc<str>,
        published_at: SystemTime,
        /// The socket the message was sent on, which has had it in its `ack` and skips it.
        origin: Option<SocketId>,
    },
    /// Some of the user's sessions have ended: sockets opened with them must close. Never
    /// sent to a client.
    SessionsEnded(EndedSessions),
    /// The subscriber was too slow and some frames were dropped for it; it must resynchronise
    /// from the database.
    Lagged,
    /// The user has opened more sockets than the server keeps for one person, and this is the
    /// oldest: it must close (with `protocol::CLOSE_DISPLACED`). Never sent to a client.
    Displaced,
}

impl RealtimeEvent {
    /// Encodes `frame` once for every socket it goes to: a `message` frame stamped with the
    /// time of publication and the socket it came from, any other as a plain frame.
    ///
    /// # Errors
    /// The frame could not be encoded.
    pub fn encode(frame: &ServerFrame, origin: Option<SocketId>) -> Result<Self, RealtimeError> {
        let text: Arc<str> = serde_json::to_string(frame)?.into();
        Ok(match frame {
            ServerFrame::Message { .. } => Self::Message {
                text,
                published_at: SystemTime::now(),
                origin,
            },
            _ => Self::Frame(text),
        })
    }
}

/// Names one socket, on whichever instance: random, so that instances need not agree on
/// numbers.
pub type SocketId = u64;

/// Which of a user's sessions have ended (by session id). Serialisable, to travel between
/// server instances.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedSessions {
    /// Just this one (the user signed out).
    Only(String),
    /// All but this one (the user changed their password in it).
    AllBut(String),
}

impl EndedSessions {
    /// Whether a socket opened with `session` must close.
    pub fn includes(&self, session: &str) -> bool {
        match self {
            Self::Only(ended) => ended == session,
            Self::AllBut(kept) => kept != session,
        }
    }
}

/// A user's live events, until the stream is dropped.
pub type EventStream = Pin<Box<dyn Stream<Item = RealtimeEvent> + Send>>;

/// Failure to publish or subscribe.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    #[error("could not encode the frame: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("fan-out backend failed: {0}")]
    Backend(String),
}

/// Delivers live events to every socket a user has open.
#[async_trait::async_trait]
pub trait Realtime: Send + Sync + 'static {
    /// Sends `frame` to every open socket of each user in `to`.
    ///
    /// # Errors
    /// The frame could not be encoded or handed to the backend. Nothing is retried: the
    /// recipients catch up from the database.
    async fn publish(&self, to: &[UserId], frame: &ServerFrame) -> Result<(), RealtimeError> {
        self.publish_from(None, to, frame).await
    }

    /// [`Self::publish`] for a frame that answers something the socket `origin` sent: a new
    /// message goes to every socket of its sender and recipient but that one, which already
    /// has it in its `ack`.
    ///
    /// # Errors
    /// As [`Self::publish`].
    async fn publish_from(
        &self,
        origin: Option<SocketId>,
        to: &[UserId],
        frame: &ServerFrame,
    ) -> Result<(), RealtimeError>;

    /// Tells every socket of `user` opened with one of the `ended` sessions to close.
    ///
    /// # Errors
    /// The backend could not deliver the notice.
    async fn end_sessions(&self, user: UserId, ended: EndedSessions) -> Result<(), RealtimeError>;

    /// Starts receiving `user`'s events. Events published after this returns are delivered.
    ///
    /// # Errors
    /// The backend could not register the subscription.
    async fn subscribe(&self, user: UserId) -> Result<EventStream, RealtimeError>;

    /// Which of `users` are subscribed right now (have a socket open): who is online.
    async fn online(&self, users: &[UserId]) -> Result<HashSet<UserId>, RealtimeError>;

    /// Users whose sockets were on another instance that has stopped without a word (crashed):
    /// each such instance's users are returned once, to the one instance that claims it, which
    /// then says "offline" for those not online elsewhere. One process on its own has none.
    ///
    /// # Errors
    /// The backend between instances is unreachable (try again later).
    async fn vanished(&self) -> Result<Vec<UserId>, RealtimeError> {
        Ok(Vec::new())
    }

    /// Whether events reach every instance right now (for the readiness check). One process
    /// on its own always does.
    ///
    /// # Errors
    /// The backend between instances is unreachable.
    async fn ready(&self) -> Result<(), RealtimeError> {
        Ok(())
    }
}
