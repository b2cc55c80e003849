//! [`LocalRealtime`]: live events within one process, one broadcast channel per user.
//!
//! A channel per *user* (not per conversation) because one socket carries all of a user's
//! conversations, and a user may have several sockets (tabs, devices): every socket of the
//! user subscribes to the same channel.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use futures::stream;
use tokio::sync::{
    broadcast::{self, error::RecvError},
    mpsc,
};

use app::{
    model::UserId,
    protocol::ServerFrame,
    realtime::{EndedSessions, EventStream, Realtime, RealtimeError, RealtimeEvent},
};

/// Frames a user's channel holds for a socket that has not read them yet. A socket that falls
/// further behind is not waited for: it gets [`RealtimeEvent::Lagged`] and resynchronises from
/// the database, so one slow client never holds up anyone else.
const CHANNEL_CAPACITY: usize = 256;

type Channels = Mutex<HashMap<UserId, broadcast::Sender<RealtimeEvent>>>;

/// In-process fan-out. Cloning is cheap and clones share the channels.
#[derive(Clone, Default)]
pub struct LocalRealtime {
    /// A `std` mutex, not tokio's: it is held only for map operations, never across `.await`.
    channels: Arc<Channels>,
    /// Told when a user gets a first socket here (`true`) or loses the last one (`false`):
    /// how the Redis fan-out keeps other instances' view of who is online current.
    membership: Option<mpsc::UnboundedSender<(UserId, bool)>>,
}

impl LocalRealtime {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fan-out that reports who comes and goes on the returned receiver.
    pub fn with_membership() -> (Self, mpsc::UnboundedReceiver<(UserId, bool)>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let realtime = Self {
            membership: Some(sender),
            ..Self::default()
        };
        (realtime, receiver)
    }

    /// Hands an already encoded event to the sockets of `to` held here.
    pub fn deliver(&self, to: &[UserId], event: &RealtimeEvent) {
        let channels = self.lock();
        for user in to {
            if let Some(sender) = channels.get(user) {
                // An error only means nobody is listening any more; that is not a failure.
                let _ = sender.send(event.clone());
            }
        }
    }

    /// Tells every socket here that it may have missed events: each closes and its client
    /// catches up from the database.
    pub fn lag_everyone(&self) {
        for sender in self.lock().values() {
            let _ = sender.send(RealtimeEvent::Lagged);
        }
    }

    /// The users with at least one socket here.
    pub fn connected_users(&self) -> Vec<UserId> {
        self.lock().keys().copied().collect()
    }

    /// Users with at least one live subscription (for tests and metrics).
    pub fn subscribed_users(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, broadcast::Sender<RealtimeEvent>>> {
        // A panic while holding this lock can't leave the map inconsistent (every operation on
        // it is a single insert, get or remove), so a poisoned lock is safe to keep using.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A live subscription. When dropped, it removes its user's channel if it was the last one
/// listening, so the map holds only users who are connected.
struct Subscription {
    receiver: broadcast::Receiver<RealtimeEvent>,
    user: UserId,
    channels: Arc<Channels>,
    membership: Option<mpsc::UnboundedSender<(UserId, bool)>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        // `self.receiver` is still alive here, hence `<= 1`.
        if channels
            .get(&self.user)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            channels.remove(&self.user);
            if let Some(membership) = &self.membership {
                let _ = membership.send((self.user, false));
            }
        }
    }
}

#[async_trait::async_trait]
impl Realtime for LocalRealtime {
    async fn publish(&self, to: &[UserId], frame: &ServerFrame) -> Result<(), RealtimeError> {
        let event = RealtimeEvent::Frame(serde_json::to_string(frame)?.into());
        self.deliver(to, &event);
        Ok(())
    }

    async fn end_sessions(&self, user: UserId, ended: EndedSessions) -> Result<(), RealtimeError> {
        if let Some(sender) = self.lock().get(&user) {
            let _ = sender.send(RealtimeEvent::SessionsEnded(ended));
        }
        Ok(())
    }

    async fn online(&self, users: &[UserId]) -> Result<HashSet<UserId>, RealtimeError> {
        let channels = self.lock();
        Ok(users
            .iter()
            .filter(|user| channels.contains_key(user))
            .copied()
            .collect())
    }

    async fn subscribe(&self, user: UserId) -> Result<EventStream, RealtimeError> {
        let receiver = {
            let mut channels = self.lock();
            // Told under the lock, like departures, so the two can't arrive out of order.
            if !channels.contains_key(&user)
                && let Some(membership) = &self.membership
            {
                let _ = membership.send((user, true));
            }
            channels
                .entry(user)
                .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
                .subscribe()
        };
        let subscription = Subscription {
            receiver,
            user,
            channels: self.channels.clone(),
            membership: self.membership.clone(),
        };
        Ok(Box::pin(stream::unfold(
            subscription,
            |mut sub| async move {
                match sub.receiver.recv().await {
                    Ok(event) => Some((event, sub)),
                    Err(RecvError::Lagged(_)) => Some((RealtimeEvent::Lagged, sub)),
                    Err(RecvError::Closed) => None,
                }
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn every_subscription_of_a_user_receives_and_others_do_not() {
        let realtime = LocalRealtime::new();
        let mut tab_one = realtime.subscribe(UserId(1)).await.unwrap();
        let mut tab_two = realtime.subscribe(UserId(1)).await.unwrap();
        let mut stranger = realtime.subscribe(UserId(2)).await.unwrap();

        realtime
            .publish(&[UserId(1)], &ServerFrame::Pong)
            .await
            .unwrap();

        let expected = RealtimeEvent::Frame(r#"{"type":"pong"}"#.into());
        assert_eq!(tab_one.next().await, Some(expected.clone()));
        assert_eq!(tab_two.next().await, Some(expected));
        let nothing =
            tokio::time::timeout(std::time::Duration::from_millis(50), stranger.next()).await;
        assert!(nothing.is_err(), "user 2 received user 1's frame");
    }

    #[tokio::test]
    async fn ended_sessions_reach_only_that_users_subscriptions() {
        let realtime = LocalRealtime::new();
        let mut mine = realtime.subscribe(UserId(1)).await.unwrap();
        let mut theirs = realtime.subscribe(UserId(2)).await.unwrap();
        let ended = EndedSessions::Only("s1".into());
        realtime
            .end_sessions(UserId(1), ended.clone())
            .await
            .unwrap();
        assert_eq!(mine.next().await, Some(RealtimeEvent::SessionsEnded(ended)));
        let nothing =
            tokio::time::timeout(std::time::Duration::from_millis(50), theirs.next()).await;
        assert!(nothing.is_err());
        assert!(EndedSessions::AllBut("keep".into()).includes("other"));
        assert!(!EndedSessions::AllBut("keep".into()).includes("keep"));
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged() {
        let realtime = LocalRealtime::new();
        let mut slow = realtime.subscribe(UserId(1)).await.unwrap();
        for _ in 0..CHANNEL_CAPACITY + 10 {
            realtime
                .publish(&[UserId(1)], &ServerFrame::Pong)
                .await
                .unwrap();
        }
        assert_eq!(slow.next().await, Some(RealtimeEvent::Lagged));
    }

    #[tokio::test]
    async fn channels_are_removed_when_their_last_subscriber_leaves() {
        let realtime = LocalRealtime::new();
        let first = realtime.subscribe(UserId(1)).await.unwrap();
        let second = realtime.subscribe(UserId(1)).await.unwrap();
        assert_eq!(realtime.subscribed_users(), 1);
        drop(first);
        assert_eq!(realtime.subscribed_users(), 1);
        drop(second);
        assert_eq!(realtime.subscribed_users(), 0);
        // Publishing to nobody is fine.
        realtime
            .publish(&[UserId(1)], &ServerFrame::Pong)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn first_arrivals_and_last_departures_are_reported_in_order() {
        let (realtime, mut changes) = LocalRealtime::with_membership();
        let first = realtime.subscribe(UserId(1)).await.unwrap();
        let second = realtime.subscribe(UserId(1)).await.unwrap();
        drop(first);
        drop(second);
        let again = realtime.subscribe(UserId(1)).await.unwrap();
        assert_eq!(changes.recv().await, Some((UserId(1), true)));
        assert_eq!(changes.recv().await, Some((UserId(1), false)));
        assert_eq!(changes.recv().await, Some((UserId(1), true)));
        assert!(changes.try_recv().is_err(), "a second tab is not news");
        assert_eq!(realtime.connected_users(), vec![UserId(1)]);
        drop(again);
    }

    #[tokio::test]
    async fn everyone_can_be_told_to_resynchronise() {
        let realtime = LocalRealtime::new();
        let mut one = realtime.subscribe(UserId(1)).await.unwrap();
        let mut two = realtime.subscribe(UserId(2)).await.unwrap();
        realtime.lag_everyone();
        assert_eq!(one.next().await, Some(RealtimeEvent::Lagged));
        assert_eq!(two.next().await, Some(RealtimeEvent::Lagged));
    }
}
