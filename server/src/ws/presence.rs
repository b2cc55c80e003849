//! Presence: the people a user talks to learn when they come online (open a first socket)
//! and go offline (close their last), with when they were last seen.
//!
//! "Online" is "has a live subscription" (`Realtime::online`), so it follows sockets, whose
//! dead peers the server's pings find out. Arrivals are announced on every new socket (an
//! extra "online" is harmless and avoids counting races); a departure only when no socket of
//! the user is left. Failures here are logged and forgotten: presence is a nicety, never a
//! reason to refuse or drop a connection.

use std::time::Duration;

use app::{conversations, model::UserId, protocol::ServerFrame, state::AppState};

/// A socket of `user` is open.
pub async fn arrived(state: &AppState, user: UserId) {
    announce(state, user, true, None).await;
}

/// A socket of `user` has closed (and its subscription is gone). If it was the last one,
/// records when the user was last seen and says so to the people they talk to.
pub async fn left(state: &AppState, user: UserId) {
    if !still_offline(state, user).await {
        return;
    }
    let now = conversations::now();
    if let Err(error) = conversations::mark_last_seen(&state.db, user, now).await {
        tracing::warn!(%error, "could not record when a user was last seen");
    }
    // A socket may have opened meanwhile (a reload): then its "online" stands.
    if still_offline(state, user).await {
        announce(state, user, false, Some(now)).await;
        // One that opened while this "offline" was on its way may have said "online" first:
        // say it again, so that the last word is the true one.
        if is_online(state, user).await {
            announce(state, user, true, None).await;
        }
    }
}

/// Every `every`, asks the fan-out for the users of instances that stopped without a word
/// (`Realtime::vanished`), and treats each as if their last socket had closed: unless they are
/// online elsewhere, they go offline for the people they talk to. Runs until aborted.
pub fn spawn_reaper(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match state.realtime.vanished().await {
                Ok(users) => {
                    for user in users {
                        left(&state, user).await;
                    }
                }
                Err(error) => tracing::warn!(%error, "could not look for stopped instances"),
            }
        }
    })
}

/// Whether `user` has a socket open right now (an error counts as "don't announce").
async fn is_online(state: &AppState, user: UserId) -> bool {
    matches!(state.realtime.online(&[user]).await, Ok(online) if online.contains(&user))
}

/// Whether `user` has no socket at all right now (an error counts as "don't announce").
async fn still_offline(state: &AppState, user: UserId) -> bool {
    matches!(state.realtime.online(&[user]).await, Ok(online) if !online.contains(&user))
}

async fn announce(
    state: &AppState,
    user: UserId,
    online: bool,
    last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
) {
    let partners = match conversations::partners(&state.db, user).await {
        Ok(partners) => partners,
        Err(error) => {
            tracing::warn!(%error, "could not find whom to tell about a presence change");
            return;
        }
    };
    if partners.is_empty() {
        return;
    }
    let frame = ServerFrame::Presence {
        user_id: user,
        online,
        last_seen_at,
    };
    if let Err(error) = state.realtime.publish(&partners, &frame).await {
        tracing::warn!(%error, "could not publish a presence change");
    }
}
