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
use tokio::sync::broadcast::{self, error::RecvError};

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
}

impl LocalRealtime {
    pub fn new() -> Self {
        Self::default()
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
        }
    }
}

#[async_trait::async_trait]
impl Realtime for LocalRealtime {
    async fn publish(&self, to: &[UserId], frame: &ServerFrame) -> Result<(), RealtimeError> {
        let event = RealtimeEvent::Frame(serde_json::to_string(frame)?.into());
        let channels = self.lock();
        for user in to {
            if let Some(sender) = channels.get(user) {
                // An error only means nobody is listening any more; that is not a failure.
                let _ = sender.send(event.clone());
            }
        }
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
        let receiver = self
            .lock()
            .entry(user)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        let subscription = Subscription {
            receiver,
            user,
            channels: self.channels.clone(),
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
}
