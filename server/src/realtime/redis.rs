//! [`RedisRealtime`]: live events across several server instances, over Redis pub/sub.
//!
//! Each instance delivers to its own sockets through a [`LocalRealtime`], and rings the other
//! instances' doorbells through one Redis channel, `{prefix}:events`: a publication carries
//! the recipients and the frame, already encoded, and every instance (this one included)
//! hands it to the recipients' sockets it holds. One channel for every instance keeps the
//! subscription fixed (no SUBSCRIBE per user as people connect); each instance reads every
//! event, which is fine for a handful of instances.
//!
//! Redis is a doorbell, never a store: PostgreSQL holds every message before it is published.
//! While Redis is unreachable, publications reach this instance's sockets directly and
//! nothing else; when the subscription comes back, every local socket is told it lagged
//! ([`RealtimeEvent::Lagged`]), so each client reconnects and catches up from the database.
//!
//! Presence across instances: each instance keeps the set of users it has sockets for in
//! `{prefix}:online:{instance}` and announces itself in `{prefix}:instances` with a
//! heartbeat; both expire when an instance dies, so a crashed instance's users go offline
//! within [`PRESENCE_TTL`].

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use app::{
    model::UserId,
    protocol::ServerFrame,
    realtime::{EndedSessions, EventStream, Realtime, RealtimeError, RealtimeEvent},
};

use super::local::LocalRealtime;

/// How long an instance counts as alive after its last heartbeat.
const PRESENCE_TTL: Duration = Duration::from_secs(30);
/// How often an instance renews its heartbeat and its set of online users.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// How long start-up waits for the first subscription.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(10);
/// Longest wait between attempts to subscribe again after Redis went away.
const RESUBSCRIBE_AT_MOST: Duration = Duration::from_secs(2);

/// What goes through the events channel.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    to: Vec<UserId>,
    #[serde(flatten)]
    event: Carried,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Carried {
    /// A frame, already encoded as JSON.
    Frame(String),
    /// Sessions that ended: sockets opened with them close.
    Ended(EndedSessions),
}

/// Fan-out over Redis pub/sub, in front of this instance's own [`LocalRealtime`].
#[derive(Clone)]
pub struct RedisRealtime {
    local: LocalRealtime,
    publisher: ConnectionManager,
    prefix: Arc<str>,
    instance: Arc<str>,
}

impl RedisRealtime {
    /// Connects to Redis at `url`, subscribes to the events channel, and starts the tasks
    /// that keep the subscription and this instance's presence alive.
    ///
    /// # Errors
    /// Redis could not be reached at start-up.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RealtimeError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let publisher = client.get_connection_manager().await.map_err(backend)?;
        let (local, membership) = LocalRealtime::with_membership();
        let realtime = Self {
            local,
            publisher,
            prefix: prefix.into(),
            instance: uuid::Uuid::new_v4().to_string().into(),
        };
        let (subscribed, first) = tokio::sync::oneshot::channel();
        tokio::spawn(realtime.clone().listen(client, subscribed));
        // Events published from here on reach this instance too.
        match tokio::time::timeout(SUBSCRIBE_WITHIN, first).await {
            Ok(Ok(())) => {}
            _ => {
                return Err(RealtimeError::Backend(format!(
                    "could not subscribe to Redis within {SUBSCRIBE_WITHIN:?}"
                )));
            }
        }
        tokio::spawn(realtime.clone().heartbeat());
        tokio::spawn(realtime.clone().track_membership(membership));
        Ok(realtime)
    }

    fn events_channel(&self) -> String {
        format!("{}:events", self.prefix)
    }

    fn online_key(&self, instance: &str) -> String {
        format!("{}:online:{instance}", self.prefix)
    }

    fn instances_key(&self) -> String {
        format!("{}:instances", self.prefix)
    }

    /// Reads the events channel for as long as the process lives, subscribing again (with
    /// backoff) whenever the connection drops.
    async fn listen(self, client: redis::Client, subscribed: tokio::sync::oneshot::Sender<()>) {
        let mut subscribed = Some(subscribed);
        let mut failures = 0_u32;
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(self.events_channel()).await {
                    Ok(()) => {
                        failures = 0;
                        match subscribed.take() {
                            Some(first) => {
                                let _ = first.send(());
                            }
                            // Whatever was published while we were away is lost to this
                            // instance's sockets: they resynchronise from the database.
                            None => self.local.lag_everyone(),
                        }
                        let mut messages = pubsub.into_on_message();
                        while let Some(message) = messages.next().await {
                            match message.get_payload::<String>() {
                                Ok(payload) => self.deliver(&payload),
                                Err(error) => tracing::warn!(%error, "unreadable Redis message"),
                            }
                        }
                        tracing::warn!("the Redis subscription ended; subscribing again");
                    }
                    Err(error) => tracing::warn!(%error, "could not subscribe to Redis"),
                },
                Err(error) => tracing::warn!(%error, "could not connect to Redis"),
            }
            failures += 1;
            let wait = Duration::from_millis(100 * 2_u64.pow(failures.min(6)));
            tokio::time::sleep(wait.min(RESUBSCRIBE_AT_MOST)).await;
        }
    }

    /// Hands an event from the channel to this instance's sockets.
    fn deliver(&self, payload: &str) {
        let envelope: Envelope = match serde_json::from_str(payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "unreadable event on the Redis channel");
                return;
            }
        };
        let event = match envelope.event {
            Carried::Frame(text) => RealtimeEvent::Frame(text.into()),
            Carried::Ended(ended) => RealtimeEvent::SessionsEnded(ended),
        };
        self.local.deliver(&envelope.to, &event);
    }

    /// Sends an envelope to every instance; if Redis can't take it, at least this instance's
    /// sockets get the event (the others catch up when Redis is back).
    async fn broadcast(
        &self,
        to: &[UserId],
        event: Carried,
        local: RealtimeEvent,
    ) -> Result<(), RealtimeError> {
        let payload = serde_json::to_string(&Envelope {
            to: to.to_vec(),
            event,
        })?;
        let mut publisher = self.publisher.clone();
        let published: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(self.events_channel())
            .arg(payload)
            .query_async(&mut publisher)
            .await;
        published.map(|_| ()).map_err(|error| {
            self.local.deliver(to, &local);
            backend(error)
        })
    }

    /// Adds users to this instance's online set as they get a first socket here, and removes
    /// them when their last one closes, so other instances see it at once (the heartbeat
    /// rewrites the whole set every few seconds, which heals anything missed).
    async fn track_membership(self, mut changes: mpsc::UnboundedReceiver<(UserId, bool)>) {
        let key = self.online_key(&self.instance);
        while let Some((user, present)) = changes.recv().await {
            let mut publisher = self.publisher.clone();
            let mut pipe = redis::pipe();
            if present {
                pipe.sadd(&key, user.0).ignore();
            } else {
                pipe.srem(&key, user.0).ignore();
            }
            pipe.expire(&key, ttl_secs()).ignore();
            if let Err(error) = pipe.query_async::<()>(&mut publisher).await {
                tracing::warn!(%error, "could not record a user's presence in Redis");
            }
        }
    }

    /// Renews this instance's heartbeat and the set of users it has sockets for.
    async fn heartbeat(self) {
        let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
        loop {
            ticks.tick().await;
            let users = self.local.connected_users();
            let key = self.online_key(&self.instance);
            let now = unix_now();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .del(&key)
                .ignore()
                .zadd(self.instances_key(), &*self.instance, now)
                .ignore()
                .zrembyscore(self.instances_key(), 0, now - PRESENCE_TTL.as_secs())
                .ignore();
            if !users.is_empty() {
                pipe.sadd(&key, users.iter().map(|u| u.0).collect::<Vec<_>>())
                    .ignore()
                    .expire(&key, ttl_secs())
                    .ignore();
            }
            let mut publisher = self.publisher.clone();
            if let Err(error) = pipe.query_async::<()>(&mut publisher).await {
                tracing::warn!(%error, "could not renew this instance's presence in Redis");
            }
        }
    }
}

fn ttl_secs() -> i64 {
    i64::try_from(PRESENCE_TTL.as_secs()).unwrap_or(30)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn backend(error: redis::RedisError) -> RealtimeError {
    RealtimeError::Backend(error.to_string())
}

#[async_trait::async_trait]
impl Realtime for RedisRealtime {
    async fn publish(&self, to: &[UserId], frame: &ServerFrame) -> Result<(), RealtimeError> {
        let text = serde_json::to_string(frame)?;
        let local = RealtimeEvent::Frame(text.clone().into());
        self.broadcast(to, Carried::Frame(text), local).await
    }

    async fn end_sessions(&self, user: UserId, ended: EndedSessions) -> Result<(), RealtimeError> {
        let local = RealtimeEvent::SessionsEnded(ended.clone());
        self.broadcast(&[user], Carried::Ended(ended), local).await
    }

    async fn subscribe(&self, user: UserId) -> Result<EventStream, RealtimeError> {
        self.local.subscribe(user).await
    }

    /// Online here (known exactly) or on another live instance (as of its last heartbeat).
    async fn online(&self, users: &[UserId]) -> Result<HashSet<UserId>, RealtimeError> {
        let mut online = self.local.online(users).await?;
        let rest: Vec<UserId> = users
            .iter()
            .filter(|u| !online.contains(u))
            .copied()
            .collect();
        if rest.is_empty() {
            return Ok(online);
        }
        let mut publisher = self.publisher.clone();
        let since = unix_now().saturating_sub(PRESENCE_TTL.as_secs());
        let instances: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.instances_key())
            .arg(since)
            .arg("+inf")
            .query_async(&mut publisher)
            .await
            .map_err(backend)?;
        let ids: Vec<i64> = rest.iter().map(|u| u.0).collect();
        for instance in instances.iter().filter(|i| **i != *self.instance) {
            let present: Vec<bool> = redis::cmd("SMISMEMBER")
                .arg(self.online_key(instance))
                .arg(&ids)
                .query_async(&mut publisher)
                .await
                .map_err(backend)?;
            online.extend(
                rest.iter()
                    .zip(present)
                    .filter(|(_, here)| *here)
                    .map(|(u, _)| *u),
            );
        }
        Ok(online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_frames_and_ended_sessions_between_instances() {
        let frame = Envelope {
            to: vec![UserId(1), UserId(2)],
            event: Carried::Frame(r#"{"type":"pong"}"#.into()),
        };
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(text, r#"{"to":[1,2],"frame":"{\"type\":\"pong\"}"}"#);
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to, frame.to);
        assert!(matches!(back.event, Carried::Frame(ref f) if f == r#"{"type":"pong"}"#));

        let ended = Envelope {
            to: vec![UserId(3)],
            event: Carried::Ended(EndedSessions::AllBut("kept".into())),
        };
        let text = serde_json::to_string(&ended).unwrap();
        assert_eq!(text, r#"{"to":[3],"ended":{"all_but":"kept"}}"#);
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert!(
            matches!(back.event, Carried::Ended(EndedSessions::AllBut(ref kept)) if kept == "kept")
        );
    }
}
