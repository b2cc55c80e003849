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
//! Every Redis call is bounded in time ([`REDIS_WITHIN`]), so an outage never holds a socket
//! up for long. While the subscription is down (or a publication fails), events reach this
//! instance's sockets directly and nothing else; when the subscription comes back, every
//! local socket is told it lagged ([`RealtimeEvent::Lagged`]), so each client reconnects and
//! catches up from the database. The subscription is pinged, so a connection that died
//! without a word (a NAT or load balancer dropping it) is noticed too.
//!
//! Presence across instances: each instance keeps the users it has sockets for in the set
//! `{prefix}:online:{instance}` and announces itself with the key `{prefix}:instance:{instance}`
//! (expiring on Redis's clock unless renewed, within the presence TTL of an instance's death).
//! If Redis can't say, `online` answers from this instance's own sockets. When an instance
//! dies without a word (a crash, `kill -9`), its key lapses; the first other instance to notice
//! claims it ([`Realtime::vanished`]) and says "offline" for each of its users who is not
//! online elsewhere, so nobody stays "online" for their partners after their server is gone.

use std::{
    collections::HashSet,
    future::Future,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, UNIX_EPOCH},
};

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use app::{
    model::UserId,
    protocol::ServerFrame,
    realtime::{EndedSessions, EventStream, Realtime, RealtimeError, RealtimeEvent, SocketId},
};

use super::{local::LocalRealtime, quota::RedisQuota};

/// How long an instance counts as alive after its last heartbeat, when not configured.
pub const DEFAULT_PRESENCE_TTL: Duration = Duration::from_secs(30);
/// How many presence TTLs an instance's set of users outlives its heartbeat: long enough for
/// another instance to read it once the heartbeat has lapsed.
const USERS_OUTLIVE_HEARTBEAT: u32 = 10;
/// Longest wait for any one Redis call: past it, the call counts as failed.
const REDIS_WITHIN: Duration = Duration::from_secs(1);
/// How often the subscription is pinged to prove it is alive.
const PING_EVERY: Duration = Duration::from_secs(10);
/// A subscription that stayed up this long was healthy: the next failure starts the backoff
/// from the beginning.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How long start-up waits for the first subscription.
const SUBSCRIBE_WITHIN: Duration = Duration::from_secs(10);
/// Longest wait between attempts to subscribe again after Redis went away.
const RESUBSCRIBE_AT_MOST: Duration = Duration::from_secs(2);

/// What goes through the events channel.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The publishing instance and a number it gives each event: how an instance recognises
    /// its own events coming back from Redis.
    from: String,
    id: u64,
    to: Vec<UserId>,
    #[serde(flatten)]
    event: Carried,
    /// For a new message's frame: when it was published (microseconds since 1970), so the
    /// receiving instance can measure the delivery time. Optional, so that instances of the
    /// previous version read these envelopes and this one reads theirs during a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    published_us: Option<u64>,
    /// For a new message's frame: the socket it was sent on (which skips it). Optional, as
    /// above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<SocketId>,
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
    /// Whether this instance's subscription is up: while it is not, events are delivered
    /// to local sockets directly.
    subscribed: Arc<AtomicBool>,
    /// Numbers this instance's events, and remembers which it has delivered here.
    own: Arc<OwnEvents>,
    prefix: Arc<str>,
    instance: Arc<str>,
    /// How long this instance counts as alive after a heartbeat; it beats three times as often.
    presence_ttl: Duration,
    /// Claims an instance whose heartbeat lapsed (see [`CLAIM`]).
    claim: redis::Script,
}

/// KEYS[1]: the list of instances; KEYS[2]: the dead one's heartbeat; KEYS[3]: its set of
/// users. ARGV[1]: its id. Answers its users once, to the first caller that finds its heartbeat
/// gone and takes it off the list; nil to anyone else.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return false end
local users = redis.call('SMEMBERS', KEYS[3])
redis.call('DEL', KEYS[3])
return users
";

impl RedisRealtime {
    /// Connects to Redis at `url`, subscribes to the events channel, and starts the tasks
    /// that keep the subscription and this instance's presence alive.
    ///
    /// # Errors
    /// Redis could not be reached at start-up.
    pub async fn connect(
        url: &str,
        prefix: &str,
        socket_cap: usize,
        ca_file: Option<&Path>,
        presence_ttl: Duration,
    ) -> Result<Self, RealtimeError> {
        let client = client(url, ca_file)?;
        // Fail fast and let callers fall back, rather than queue behind reconnection attempts.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(REDIS_WITHIN)
            .set_connection_timeout(Some(REDIS_WITHIN))
            .set_response_timeout(Some(REDIS_WITHIN));
        let publisher = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(backend)?;
        let (local, membership) = LocalRealtime::with_membership();
        let local = local.with_socket_cap(socket_cap);
        let realtime = Self {
            local,
            publisher,
            subscribed: Arc::new(AtomicBool::new(false)),
            own: Arc::new(OwnEvents::default()),
            prefix: prefix.into(),
            instance: uuid::Uuid::new_v4().to_string().into(),
            presence_ttl: presence_ttl.max(Duration::from_secs(1)),
            claim: redis::Script::new(CLAIM),
        };
        let (first_tx, first) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(realtime.clone().listen(client, first_tx));
        // Events published from here on reach this instance too.
        if !matches!(
            tokio::time::timeout(SUBSCRIBE_WITHIN, first).await,
            Ok(Ok(()))
        ) {
            listener.abort();
            return Err(RealtimeError::Backend(format!(
                "could not subscribe to Redis within {SUBSCRIBE_WITHIN:?}"
            )));
        }
        tokio::spawn(realtime.clone().keep_presence(membership));
        Ok(realtime)
    }

    /// Rate limits kept in this Redis, for every instance alike.
    pub fn quota(&self) -> RedisQuota {
        RedisQuota::new(self.publisher.clone(), &self.prefix)
    }

    fn events_channel(&self) -> String {
        format!("{}:events", self.prefix)
    }

    fn online_key(&self, instance: &str) -> String {
        format!("{}:online:{instance}", self.prefix)
    }

    fn instance_key(&self, instance: &str) -> String {
        format!("{}:instance:{instance}", self.prefix)
    }

    fn instances_key(&self) -> String {
        format!("{}:instances", self.prefix)
    }

    /// Reads the events channel for as long as the process lives, subscribing again (with
    /// backoff) whenever the connection drops or stops answering pings.
    async fn listen(self, client: redis::Client, first: tokio::sync::oneshot::Sender<()>) {
        let mut first = Some(first);
        let mut failures = 0_u32;
        loop {
            match self.subscribe_once(&client).await {
                Ok((mut sink, mut messages)) => {
                    let since = Instant::now();
                    self.subscribed.store(true, Ordering::SeqCst);
                    match first.take() {
                        Some(first) => {
                            let _ = first.send(());
                        }
                        // Whatever was published while we were away is lost to this
                        // instance's sockets: they resynchronise from the database.
                        None => self.local.lag_everyone(),
                    }
                    let mut pings = tokio::time::interval(PING_EVERY);
                    pings.reset();
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(message) => match message.get_payload::<String>() {
                                    Ok(payload) => self.deliver(&payload),
                                    Err(error) => tracing::warn!(%error, "unreadable Redis message"),
                                },
                                None => break,
                            },
                            _ = pings.tick() => {
                                if bounded(sink.ping::<String>()).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    self.subscribed.store(false, Ordering::SeqCst);
                    metrics::counter!(crate::metrics::FANOUT_ERRORS).increment(1);
                    tracing::warn!("the Redis subscription was lost; subscribing again");
                    if since.elapsed() > HEALTHY_AFTER {
                        failures = 0;
                    }
                }
                Err(error) => tracing::warn!(%error, "could not subscribe to Redis"),
            }
            failures += 1;
            let wait = Duration::from_millis(100 * 2_u64.pow(failures.min(6)));
            tokio::time::sleep(wait.min(RESUBSCRIBE_AT_MOST)).await;
        }
    }

    async fn subscribe_once(
        &self,
        client: &redis::Client,
    ) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), RealtimeError> {
        let pubsub = bounded(client.get_async_pubsub()).await?;
        let (mut sink, messages) = pubsub.split();
        bounded(sink.subscribe(self.events_channel())).await?;
        Ok((sink, messages))
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
        // One of ours that was already delivered here directly (see `broadcast`).
        if envelope.from == *self.instance && !self.own.claim(envelope.id) {
            return;
        }
        let event = match (envelope.event, envelope.published_us) {
            (Carried::Frame(text), Some(micros)) => RealtimeEvent::Message {
                text: text.into(),
                published_at: UNIX_EPOCH + Duration::from_micros(micros),
                origin: envelope.origin,
            },
            (Carried::Frame(text), None) => RealtimeEvent::Frame(text.into()),
            (Carried::Ended(ended), _) => RealtimeEvent::SessionsEnded(ended),
        };
        self.local.deliver(&envelope.to, &event);
    }

    /// Sends an envelope to every instance. This instance's own sockets get the event from
    /// the subscription; while that is down, or if Redis can't take the publication, they
    /// get it directly. Either way, whichever copy comes first is delivered and the other is
    /// dropped (a publication can fail after Redis has passed it on), so a socket never gets
    /// an event twice.
    async fn broadcast(&self, to: &[UserId], local: RealtimeEvent) -> Result<(), RealtimeError> {
        let id = self.own.next_id();
        let subscribed = self.subscribed.load(Ordering::SeqCst);
        if !subscribed && self.own.claim(id) {
            self.local.deliver(to, &local);
        }
        let (event, published_us, origin) = match &local {
            RealtimeEvent::Frame(text) => (Carried::Frame(text.to_string()), None, None),
            RealtimeEvent::Message {
                text,
                published_at,
                origin,
            } => (
                Carried::Frame(text.to_string()),
                published_at
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .and_then(|since| u64::try_from(since.as_micros()).ok()),
                *origin,
            ),
            RealtimeEvent::SessionsEnded(ended) => (Carried::Ended(ended.clone()), None, None),
            // Never published: each instance tells its own sockets.
            RealtimeEvent::Lagged | RealtimeEvent::Displaced => return Ok(()),
        };
        let payload = serde_json::to_string(&Envelope {
            from: self.instance.to_string(),
            id,
            to: to.to_vec(),
            event,
            published_us,
            origin,
        })?;
        let mut publisher = self.publisher.clone();
        let published = bounded(
            redis::cmd("PUBLISH")
                .arg(self.events_channel())
                .arg(payload)
                .query_async::<i64>(&mut publisher),
        )
        .await;
        if published.is_err() {
            metrics::counter!(crate::metrics::FANOUT_ERRORS).increment(1);
            if subscribed && self.own.claim(id) {
                self.local.deliver(to, &local);
            }
        }
        published.map(|_| ())
    }

    /// Keeps this instance's presence in Redis: adds users as they get a first socket here
    /// and removes them when their last one closes, so other instances see it at once, and
    /// every few seconds renews the instance's heartbeat and rewrites its whole set (which
    /// heals anything an outage made it miss). One task does both, so a rewrite never undoes
    /// a change that came after its snapshot.
    async fn keep_presence(self, mut changes: mpsc::UnboundedReceiver<(UserId, bool)>) {
        let key = self.online_key(&self.instance);
        let mut beats = tokio::time::interval(self.presence_ttl / 3);
        let ttl = self.presence_ttl.as_secs().max(1);
        let users_ttl = ttl * u64::from(USERS_OUTLIVE_HEARTBEAT);
        let mut first_beat = true;
        loop {
            let mut pipe = redis::pipe();
            let mut beat = false;
            tokio::select! {
                change = changes.recv() => {
                    let Some((user, present)) = change else { return };
                    if present {
                        pipe.sadd(&key, user.0).ignore();
                    } else {
                        pipe.srem(&key, user.0).ignore();
                    }
                    pipe.expire(&key, secs(users_ttl)).ignore();
                }
                _ = beats.tick() => {
                    beat = true;
                    let users: Vec<i64> = self.local.connected_users().iter().map(|u| u.0).collect();
                    // `GET` says whether the heartbeat was still there (see below).
                    pipe.atomic()
                        .cmd("SET")
                        .arg(self.instance_key(&self.instance))
                        .arg(1)
                        .arg("EX")
                        .arg(ttl)
                        .arg("GET")
                        .sadd(self.instances_key(), &*self.instance)
                        .ignore()
                        .expire(self.instances_key(), secs(users_ttl))
                        .ignore()
                        .del(&key)
                        .ignore();
                    if !users.is_empty() {
                        pipe.sadd(&key, users).ignore().expire(&key, secs(users_ttl)).ignore();
                    }
                }
            }
            let mut publisher = self.publisher.clone();
            let written = if beat {
                bounded(pipe.query_async::<(Option<String>,)>(&mut publisher))
                    .await
                    .map(|(previous,)| {
                        // The heartbeat had lapsed (Redis was slow or out of reach, or lost its
                        // data): another instance may have taken this one for dead and told
                        // its users' partners they went offline. Every socket here reconnects,
                        // which says they are online again (and catches up on what was missed).
                        if previous.is_none() && !first_beat {
                            tracing::warn!(
                                "this instance's heartbeat had lapsed in Redis; its sockets \
                                 reconnect to announce their users again"
                            );
                            self.local.lag_everyone();
                        }
                        first_beat = false;
                    })
            } else {
                bounded(pipe.query_async::<()>(&mut publisher)).await
            };
            if let Err(error) = written {
                tracing::warn!(%error, "could not update this instance's presence in Redis");
            }
        }
    }

    /// The other instances on the list (alive or not: their heartbeats say).
    async fn other_instances(&self) -> Result<Vec<String>, RealtimeError> {
        let mut publisher = self.publisher.clone();
        let instances: Vec<String> = bounded(
            redis::cmd("SMEMBERS")
                .arg(self.instances_key())
                .query_async(&mut publisher),
        )
        .await?;
        Ok(instances
            .into_iter()
            .filter(|i| *i != *self.instance)
            .collect())
    }

    /// Users online on other instances, as Redis knows them.
    async fn online_elsewhere(&self, users: &[UserId]) -> Result<HashSet<UserId>, RealtimeError> {
        let mut publisher = self.publisher.clone();
        let instances = self.other_instances().await?;
        let others: Vec<&String> = instances.iter().collect();
        if others.is_empty() {
            return Ok(HashSet::new());
        }
        // One round trip: for each other instance, whether it is alive and which of the users
        // it holds.
        let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
        let mut pipe = redis::pipe();
        for instance in &others {
            pipe.exists(self.instance_key(instance));
            pipe.cmd("SMISMEMBER")
                .arg(self.online_key(instance))
                .arg(&ids);
        }
        let answers: Vec<redis::Value> = bounded(pipe.query_async(&mut publisher)).await?;
        let mut online = HashSet::new();
        for pair in answers.chunks(2) {
            let [alive, present] = pair else { continue };
            let alive: bool = redis::from_redis_value_ref(alive).unwrap_or(false);
            let present: Vec<bool> = redis::from_redis_value_ref(present).unwrap_or_default();
            // A dead instance's users are not online through it, whatever its set says; the
            // set stays for `vanished` to read.
            if alive {
                online.extend(
                    users
                        .iter()
                        .zip(present)
                        .filter(|(_, here)| *here)
                        .map(|(u, _)| *u),
                );
            }
        }
        Ok(online)
    }
}

/// How many of its own events an instance remembers having delivered: far more than can be
/// in flight between a publication and its return from Redis.
const OWN_EVENTS_REMEMBERED: usize = 4_096;

/// This instance's events: their numbers, and which have been delivered to its sockets (by
/// the subscription or directly), so that each is delivered once.
#[derive(Default)]
struct OwnEvents {
    next: std::sync::atomic::AtomicU64,
    delivered: std::sync::Mutex<(HashSet<u64>, std::collections::VecDeque<u64>)>,
}

impl OwnEvents {
    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether event `id` is still to be delivered here (and now counts as delivered).
    fn claim(&self, id: u64) -> bool {
        let mut guard = self
            .delivered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (seen, order) = &mut *guard;
        if !seen.insert(id) {
            return false;
        }
        order.push_back(id);
        if order.len() > OWN_EVENTS_REMEMBERED
            && let Some(oldest) = order.pop_front()
        {
            seen.remove(&oldest);
        }
        true
    }
}

/// A client for `url`: `redis://`, or `rediss://` (TLS), whose certificate must chain to the
/// PEM certificates in `ca_file` when given, else to the system's roots.
fn client(url: &str, ca_file: Option<&Path>) -> Result<redis::Client, RealtimeError> {
    match ca_file {
        Some(path) if url.starts_with("rediss://") => {
            let root_cert = std::fs::read(path).map_err(|error| {
                RealtimeError::Backend(format!("cannot read {}: {error}", path.display()))
            })?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            )
            .map_err(backend)
        }
        _ => redis::Client::open(url).map_err(backend),
    }
}

/// Runs a Redis call with [`REDIS_WITHIN`] as its deadline.
pub(super) async fn bounded<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, RealtimeError> {
    match tokio::time::timeout(REDIS_WITHIN, call).await {
        Ok(result) => result.map_err(backend),
        Err(_) => Err(RealtimeError::Backend(format!(
            "Redis did not answer within {REDIS_WITHIN:?}"
        ))),
    }
}

fn secs(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

fn backend(error: redis::RedisError) -> RealtimeError {
    RealtimeError::Backend(error.to_string())
}

#[async_trait::async_trait]
impl Realtime for RedisRealtime {
    async fn publish_from(
        &self,
        origin: Option<SocketId>,
        to: &[UserId],
        frame: &ServerFrame,
    ) -> Result<(), RealtimeError> {
        self.broadcast(to, RealtimeEvent::encode(frame, origin)?)
            .await
    }

    async fn end_sessions(&self, user: UserId, ended: EndedSessions) -> Result<(), RealtimeError> {
        self.broadcast(&[user], RealtimeEvent::SessionsEnded(ended))
            .await
    }

    async fn subscribe(&self, user: UserId) -> Result<EventStream, RealtimeError> {
        self.local.subscribe(user).await
    }

    /// Redis answers, and this instance's subscription is up.
    async fn ready(&self) -> Result<(), RealtimeError> {
        let mut publisher = self.publisher.clone();
        bounded(redis::cmd("PING").query_async::<String>(&mut publisher)).await?;
        if self.subscribed.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(RealtimeError::Backend(
                "not subscribed to the events channel".into(),
            ))
        }
    }

    /// Instances whose heartbeat has lapsed are claimed one by one (`SREM` from the list of
    /// instances answers 1 to exactly one claimer); the claimer takes the dead one's set of
    /// users and deletes it.
    async fn vanished(&self) -> Result<Vec<UserId>, RealtimeError> {
        let mut publisher = self.publisher.clone();
        let mut users = Vec::new();
        for instance in &self.other_instances().await? {
            // One script: the check that the heartbeat lapsed, the claim and the taking of its
            // users happen together, so an instance that comes back in between keeps its set.
            let mut claim = self.claim.key(self.instances_key());
            claim
                .key(self.instance_key(instance))
                .key(self.online_key(instance))
                .arg(instance);
            let held: Option<Vec<i64>> = bounded(claim.invoke_async(&mut publisher)).await?;
            let Some(held) = held else { continue };
            tracing::warn!(
                %instance,
                users = held.len(),
                "an instance stopped without a word; its users go offline"
            );
            users.extend(held.into_iter().map(UserId));
        }
        Ok(users)
    }

    /// Online here (known exactly) or on another live instance (as of its last heartbeat).
    /// If Redis can't say, this instance's own sockets are the answer.
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
        match self.online_elsewhere(&rest).await {
            Ok(elsewhere) => online.extend(elsewhere),
            Err(error) => tracing::warn!(%error, "could not ask Redis who is online"),
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
            from: "a".into(),
            id: 7,
            to: vec![UserId(1), UserId(2)],
            event: Carried::Frame(r#"{"type":"pong"}"#.into()),
            published_us: None,
            origin: None,
        };
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(
            text,
            r#"{"from":"a","id":7,"to":[1,2],"frame":"{\"type\":\"pong\"}"}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to, frame.to);
        assert!(matches!(back.event, Carried::Frame(ref f) if f == r#"{"type":"pong"}"#));

        let ended = Envelope {
            from: "a".into(),
            id: 8,
            to: vec![UserId(3)],
            event: Carried::Ended(EndedSessions::AllBut("kept".into())),
            published_us: None,
            origin: None,
        };
        let text = serde_json::to_string(&ended).unwrap();
        assert_eq!(
            text,
            r#"{"from":"a","id":8,"to":[3],"ended":{"all_but":"kept"}}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert!(
            matches!(back.event, Carried::Ended(EndedSessions::AllBut(ref kept)) if kept == "kept")
        );
    }

    #[test]
    fn each_own_event_is_delivered_once_whichever_copy_comes_first() {
        let own = OwnEvents::default();
        let (first, second) = (own.next_id(), own.next_id());
        assert_ne!(first, second);
        assert!(own.claim(first), "delivered directly");
        assert!(!own.claim(first), "its copy from Redis is dropped");
        assert!(own.claim(second));
        for _ in 0..OWN_EVENTS_REMEMBERED + 10 {
            let id = own.next_id();
            assert!(own.claim(id));
        }
        assert!(own.claim(first), "forgotten once long past");
    }
}
