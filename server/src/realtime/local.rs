//! [`LocalRealtime`]: live events within one process, one queue per socket.
//!
//! Events are addressed to *users* (not conversations) because one socket carries all of a
//! user's conversations, and a user may have several sockets (tabs, devices): each event is
//! put on the queue of every socket the user has open here.
//!
//! Each socket's queue is a bounded `mpsc` channel, which allocates its slots as they fill,
//! so an idle socket costs a couple of kilobytes (a broadcast channel per user would allocate
//! all of its slots up front, several times more). A socket whose queue is full is not waited
//! for: it is marked as lagging, reads [`RealtimeEvent::Lagged`] next, closes, and its client
//! resynchronises from the database. One slow client never holds up anyone else.
//!
//! A user keeps at most [`LocalRealtime::with_socket_cap`] sockets here: opening one more
//! closes their oldest ([`RealtimeEvent::Displaced`]), so one account can't hold an unbounded
//! share of the server.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use futures::stream;
use tokio::sync::mpsc::{self, error::TrySendError};

use app::{
    model::UserId,
    protocol::ServerFrame,
    realtime::{EndedSessions, EventStream, Realtime, RealtimeError, RealtimeEvent, SocketId},
};

/// Events a socket's queue holds before the socket counts as lagging.
const QUEUE_CAPACITY: usize = 256;

/// One socket's end of the fan-out.
struct Socket {
    /// Tells this socket apart from the user's others, to remove it when it closes.
    id: u64,
    queue: mpsc::Sender<RealtimeEvent>,
    /// Set when an event could not be queued: the socket must resynchronise.
    lagging: Arc<AtomicBool>,
    /// Told to make way for a newer socket of the same user (it is closing).
    displaced: bool,
}

impl Socket {
    /// Queues `event`, or marks the socket as lagging when its queue is full.
    fn offer(&self, event: RealtimeEvent) {
        if let Err(TrySendError::Full(_)) = self.queue.try_send(event) {
            self.lagging.store(true, Ordering::Release);
        }
        // Closed: the socket is going away, and its subscription with it.
    }
}

type Sockets = Mutex<HashMap<UserId, Vec<Socket>>>;

/// In-process fan-out. Cloning is cheap and clones share the sockets.
#[derive(Clone, Default)]
pub struct LocalRealtime {
    /// A `std` mutex, not tokio's: it is held only for map operations, never across `.await`.
    sockets: Arc<Sockets>,
    /// Numbers the subscriptions.
    next_id: Arc<AtomicU64>,
    /// Told when a user gets a first socket here (`true`) or loses the last one (`false`):
    /// how the Redis fan-out keeps other instances' view of who is online current.
    membership: Option<mpsc::UnboundedSender<(UserId, bool)>>,
    /// Most sockets one user keeps here; `None`: no limit.
    socket_cap: Option<usize>,
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

    /// The same fan-out, keeping at most `cap` sockets per user (at least one): a newer
    /// socket closes the user's oldest.
    pub fn with_socket_cap(self, cap: usize) -> Self {
        Self {
            socket_cap: Some(cap.max(1)),
            ..self
        }
    }

    /// Hands an already encoded event to the sockets of `to` held here.
    pub fn deliver(&self, to: &[UserId], event: &RealtimeEvent) {
        let sockets = self.lock();
        for user in to {
            for socket in sockets.get(user).into_iter().flatten() {
                socket.offer(event.clone());
            }
        }
    }

    /// Tells every socket here that it may have missed events: each closes and its client
    /// catches up from the database.
    pub fn lag_everyone(&self) {
        for socket in self.lock().values().flatten() {
            socket.offer(RealtimeEvent::Lagged);
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<Socket>>> {
        // A panic while holding this lock can't leave the map inconsistent (every operation on
        // it is a single insert, push, get or remove), so a poisoned lock is safe to keep using.
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A live subscription. When dropped, it removes its socket, and its user's entry if that was
/// the last, so the map holds only users who are connected.
struct Subscription {
    queue: mpsc::Receiver<RealtimeEvent>,
    lagging: Arc<AtomicBool>,
    id: u64,
    user: UserId,
    realtime: LocalRealtime,
}

impl Subscription {
    async fn next(&mut self) -> Option<RealtimeEvent> {
        if self.lagging.swap(false, Ordering::AcqRel) {
            return Some(RealtimeEvent::Lagged);
        }
        self.queue.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut sockets = self.realtime.lock();
        let Some(mine) = sockets.get_mut(&self.user) else {
            return;
        };
        mine.retain(|socket| socket.id != self.id);
        if mine.is_empty() {
            sockets.remove(&self.user);
            if let Some(membership) = &self.realtime.membership {
                let _ = membership.send((self.user, false));
            }
        }
    }
}

#[async_trait::async_trait]
impl Realtime for LocalRealtime {
    async fn publish_from(
        &self,
        origin: Option<SocketId>,
        to: &[UserId],
        frame: &ServerFrame,
    ) -> Result<(), RealtimeError> {
        self.deliver(to, &RealtimeEvent::encode(frame, origin)?);
        Ok(())
    }

    async fn end_sessions(&self, user: UserId, ended: EndedSessions) -> Result<(), RealtimeError> {
        self.deliver(&[user], &RealtimeEvent::SessionsEnded(ended));
        Ok(())
    }

    async fn online(&self, users: &[UserId]) -> Result<HashSet<UserId>, RealtimeError> {
        let sockets = self.lock();
        Ok(users
            .iter()
            .filter(|user| sockets.contains_key(user))
            .copied()
            .collect())
    }

    async fn subscribe(&self, user: UserId) -> Result<EventStream, RealtimeError> {
        let (sender, queue) = mpsc::channel(QUEUE_CAPACITY);
        let lagging = Arc::new(AtomicBool::new(false));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut sockets = self.lock();
            // Told under the lock, like departures, so the two can't arrive out of order.
            if !sockets.contains_key(&user)
                && let Some(membership) = &self.membership
            {
                let _ = membership.send((user, true));
            }
            let mine = sockets.entry(user).or_default();
            // Over the cap, the oldest socket still open makes way for this one.
            if let Some(cap) = self.socket_cap
                && mine.iter().filter(|socket| !socket.displaced).count() >= cap
                && let Some(oldest) = mine.iter_mut().find(|socket| !socket.displaced)
            {
                oldest.displaced = true;
                oldest.offer(RealtimeEvent::Displaced);
            }
            mine.push(Socket {
                id,
                queue: sender,
                lagging: lagging.clone(),
                displaced: false,
            });
        }
        let subscription = Subscription {
            queue,
            lagging,
            id,
            user,
            realtime: self.clone(),
        };
        Ok(Box::pin(stream::unfold(
            subscription,
            |mut subscription| async move {
                let event = subscription.next().await?;
                Some((event, subscription))
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
        for _ in 0..QUEUE_CAPACITY + 10 {
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
    async fn a_socket_over_the_cap_displaces_the_oldest() {
        let realtime = LocalRealtime::new().with_socket_cap(2);
        let mut first = realtime.subscribe(UserId(1)).await.unwrap();
        let mut second = realtime.subscribe(UserId(1)).await.unwrap();
        let other_user = realtime.subscribe(UserId(2)).await.unwrap();
        let mut third = realtime.subscribe(UserId(1)).await.unwrap();
        assert_eq!(first.next().await, Some(RealtimeEvent::Displaced));
        // The displaced one counts no more: a fourth displaces the second, not the first again.
        let _fourth = realtime.subscribe(UserId(1)).await.unwrap();
        assert_eq!(second.next().await, Some(RealtimeEvent::Displaced));
        realtime
            .publish(&[UserId(1)], &ServerFrame::Pong)
            .await
            .unwrap();
        assert_eq!(
            third.next().await,
            Some(RealtimeEvent::Frame(r#"{"type":"pong"}"#.into()))
        );
        drop(other_user);
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
