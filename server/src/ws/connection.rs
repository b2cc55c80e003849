//! One WebSocket connection: forwards the user's live events to the socket and handles the
//! frames the client sends, until either side goes away.
//!
//! The order matters at start: subscribe first, then send `ready`. A client that catches up
//! after `ready` therefore misses nothing: whatever is stored after the subscription arrives
//! live, whatever was stored before is in the database.
//!
//! What each frame does is [`super::handler`]'s business; this loop moves frames and events,
//! one frame in hand at a time, and decides when the connection ends.

use std::{
    pin::Pin,
    time::{Duration, Instant, SystemTime},
};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::StreamExt;

use app::{
    accounts::User,
    protocol::{CLOSE_DISPLACED, ServerFrame},
    realtime::RealtimeEvent,
    state::AppState,
};

use super::{
    Heartbeat, Shutdown,
    handler::{FrameHandler, Incoming},
};
use crate::{metrics as names, sessions::DbSessionStore};

/// How often a connection checks that its session still exists (it may have expired, or ended
/// on another server instance).
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(120);

/// Runs a connection to the end. `session` is the id of the session the socket was opened
/// with.
pub async fn serve(
    mut socket: WebSocket,
    state: AppState,
    user: User,
    session: String,
    shutdown: Shutdown,
    heartbeat: Heartbeat,
) {
    // Dropped when this function returns, which tells the server this connection is done.
    let Shutdown {
        signal: mut shutdown,
        done: _done,
    } = shutdown;
    let mut events = match state.realtime.subscribe(user.id).await {
        Ok(events) => events,
        Err(error) => {
            tracing::error!(%error, user = %user.id, "could not subscribe a socket");
            let _ = socket
                .send(close(close_code::ERROR, "live updates are unavailable"))
                .await;
            return;
        }
    };
    let sessions = DbSessionStore::new(state.db.clone());
    let presence_state = state.clone();
    let user_id = user.id;
    let connection = FrameHandler::new(state, user);
    let socket_id = connection.id;
    if send(
        &mut socket,
        &ServerFrame::Ready {
            user: connection.user().view(),
        },
    )
    .await
    .is_err()
    {
        return;
    }
    super::presence::arrived(&presence_state, user_id).await;
    let opened = Instant::now();
    metrics::gauge!(names::CONNECTIONS).increment(1);
    tracing::info!(user = %user_id, "socket opened");

    // The frame being handled, if any. The handler goes into its future and comes back out
    // with the reply: frames are handled one at a time and answered in order, while live
    // events keep flowing to the socket (a message from the other person never waits for
    // this socket's own send to be stored).
    let mut idle = Some(connection);
    let mut in_flight: Option<(SystemTime, Handling)> = None;
    // Pings also keep proxies from closing an idle connection.
    let mut ping = tokio::time::interval(heartbeat.ping_every);
    let mut last_heard = Instant::now();
    ping.reset();
    let mut session_check = tokio::time::interval(SESSION_CHECK_EVERY);
    session_check.reset();
    let (reason, farewell) = loop {
        tokio::select! {
            event = events.next() => {
                let sent = match event {
                    Some(RealtimeEvent::Frame(text)) => {
                        socket.send(Message::Text(text.as_ref().into())).await
                    }
                    // This socket's own message: its `ack` carries it.
                    Some(RealtimeEvent::Message { origin, .. }) if origin == Some(socket_id) => Ok(()),
                    Some(RealtimeEvent::Message { text, published_at, .. }) => {
                        let sent = socket.send(Message::Text(text.as_ref().into())).await;
                        if sent.is_ok() {
                            metrics::counter!(names::MESSAGES_DELIVERED).increment(1);
                            names::record_since(names::DELIVERY, published_at);
                        }
                        sent
                    }
                    // Too far behind to catch up live: close, and the client reconnects and
                    // fetches what it missed from the database. A slow reader never holds
                    // anyone else up.
                    Some(RealtimeEvent::Lagged) => {
                        break ("fell behind", Some(close(close_code::AGAIN, "fell behind")));
                    }
                    Some(RealtimeEvent::SessionsEnded(ended)) => {
                        if ended.includes(&session) {
                            break ("signed out", Some(close(close_code::POLICY, "signed out")));
                        }
                        Ok(())
                    }
                    // The user opened more sockets than one instance keeps for them: this, the
                    // oldest, makes way. The client waits for its tab to be looked at again
                    // before it reconnects, so tabs don't take turns pushing each other out.
                    Some(RealtimeEvent::Displaced) => {
                        break ("too many connections", Some(close(CLOSE_DISPLACED, "too many connections")));
                    }
                    None => break ("live updates ended", None),
                };
                if sent.is_err() {
                    break ("could not write", None);
                }
            }
            (connection, reply) = async {
                match in_flight.as_mut() {
                    Some((_, handling)) => handling.await,
                    None => std::future::pending().await,
                }
            } => {
                let received = in_flight.take().map(|(received, _)| received);
                let misbehaviour = connection.misbehaviour();
                idle = Some(connection);
                if let Some(reply) = reply {
                    if send(&mut socket, &reply).await.is_err() {
                        break ("could not write", None);
                    }
                    if let (ServerFrame::Ack { .. }, Some(received)) = (&reply, received) {
                        names::record_since(names::SEND_TO_ACK, received);
                    }
                }
                // Answered, then closed: the client learns what was wrong before it goes.
                if let Some(reason) = misbehaviour {
                    tracing::warn!(user = %user_id, reason, "closing a misbehaving socket");
                    break (reason, Some(close(close_code::POLICY, reason)));
                }
            }
            incoming = socket.recv(), if in_flight.is_none() => {
                last_heard = Instant::now();
                let incoming = match incoming {
                    Some(Ok(Message::Text(text))) => Incoming::Text(text),
                    Some(Ok(Message::Binary(_))) => Incoming::Binary,
                    // Pings are answered by the WebSocket layer itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(error)) => match close_for(error) {
                        Some(reason) => break ("broke the protocol", Some(reason)),
                        None => break ("connection lost", None),
                    },
                    Some(Ok(Message::Close(_))) | None => break ("closed by the client", None),
                };
                if let Some(mut connection) = idle.take() {
                    let handling: Handling = Box::pin(async move {
                        let reply = connection.handle(incoming).await;
                        (connection, reply)
                    });
                    in_flight = Some((SystemTime::now(), handling));
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > heartbeat.silent_limit {
                    // The peer has vanished (or stopped answering): it goes offline now, not
                    // whenever TCP gives up.
                    break ("no answer to pings", Some(close(close_code::AWAY, "no answer to pings")));
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break ("could not write", None);
                }
            }
            _ = session_check.tick() => {
                // A database error is not proof that the session ended; check again later.
                if let Ok(false) = sessions.is_live(&session).await {
                    break ("session ended", Some(close(close_code::POLICY, "session ended")));
                }
            }
            _ = shutdown.changed() => {
                break ("server stopping", Some(close(close_code::AWAY, "server is restarting")));
            }
        }
    };
    // The frame being handled is finished and answered before the close (a message being
    // stored is stored and acknowledged), whatever ended the connection.
    if let Some((_, handling)) = in_flight.take() {
        let (connection, reply) = handling.await;
        idle = Some(connection);
        if let Some(reply) = reply {
            let _ = send(&mut socket, &reply).await;
        }
    }
    if let Some(farewell) = farewell {
        let _ = socket.send(farewell).await;
    }
    metrics::gauge!(names::CONNECTIONS).decrement(1);
    tracing::info!(
        user = %user_id,
        reason,
        open_s = opened.elapsed().as_secs_f64(),
        "socket closed"
    );
    // The subscription goes first, so that `left` sees whether another socket remains.
    drop(events);
    if let Some(connection) = idle {
        connection.leave().await;
    }
    super::presence::left(&presence_state, user_id).await;
}

/// A frame being handled: the handler it borrowed comes back with the reply.
type Handling = Pin<Box<dyn Future<Output = (FrameHandler, Option<ServerFrame>)> + Send>>;

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), axum::Error> {
    match serde_json::to_string(frame) {
        Ok(text) => socket.send(Message::Text(text.into())).await,
        // Our own frames always encode; if one ever did not, dropping it beats a panic.
        Err(error) => {
            tracing::error!(%error, "could not encode a server frame");
            Ok(())
        }
    }
}

/// The close frame that explains why a receive failed, when the client broke a rule: a message
/// over [`super::TRANSPORT_MAX_BYTES`] (1009), or a text frame that is not UTF-8 (1007). Other
/// failures (the peer vanished) need no explanation.
fn close_for(error: axum::Error) -> Option<Message> {
    match error.into_inner().downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some(close(close_code::SIZE, "message too big")),
        tungstenite::Error::Utf8(_) => Some(close(close_code::INVALID, "text is not UTF-8")),
        _ => None,
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
