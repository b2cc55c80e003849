//! `GET /ws`: the WebSocket every chat page opens, authenticated by the session cookie.
//!
//! By the time [`upgrade`] runs, the cross-origin guard has already refused upgrades from
//! foreign pages (cross-site WebSocket hijacking) and the session layer has loaded the user.
//! Without a signed-in user the answer is a plain 401 before any upgrade. The connection
//! itself is [`connection::serve`]; it remembers the session it was opened with and closes
//! (code 1008) when that session ends: at sign-out, at a password change in another session,
//! or on expiry. What each frame does is [`handler`].

pub mod connection;
pub mod handler;
pub mod presence;

use axum::{
    Extension,
    extract::{State, WebSocketUpgrade},
    response::{IntoResponse, Response},
};
use tokio::sync::{mpsc, watch};

use app::{accounts::AuthSession, error::AppError, state::AppState};

/// Largest WebSocket message the transport accepts at all. Beyond this the connection is
/// closed with 1009 (message too big); between `app::protocol::MAX_FRAME_BYTES` and this, the
/// frame is refused with an `error` frame and the connection stays open.
pub const TRANSPORT_MAX_BYTES: usize = 1024 * 1024;

/// What a socket's read buffer starts at. The library's default (128 KiB) would cost an idle
/// connection eight times its whole budget; frames are small, and the buffer grows for the
/// rare big one.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// How the server tells a live connection from a dead one: it pings every `ping_every`, and a
/// connection that has sent nothing at all (not even a pong) for `silent_limit` is closed, so
/// that a peer whose network vanished goes offline within about half a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub ping_every: std::time::Duration,
    pub silent_limit: std::time::Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            ping_every: std::time::Duration::from_secs(10),
            silent_limit: std::time::Duration::from_secs(30),
        }
    }
}

/// How connections learn that the server is shutting down, and how the server learns that
/// they have all finished (mini-redis' shutdown pattern).
#[derive(Clone)]
pub struct Shutdown {
    /// Becomes `true` when the server stops: connections send Close (1001) and end.
    pub signal: watch::Receiver<bool>,
    /// Held by every connection task; when the last clone is dropped the receiving end sees
    /// the channel close, so the server knows every Close frame has gone out.
    pub done: mpsc::Sender<()>,
}

/// The upgrade handler.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    auth: AuthSession,
    State(state): State<AppState>,
    Extension(shutdown): Extension<Shutdown>,
    Extension(heartbeat): Extension<Heartbeat>,
) -> Response {
    let (Some(user), Some(session)) = (auth.user, auth.session.id()) else {
        return AppError::Unauthorized.into_response();
    };
    let session = session.to_string();
    ws.max_message_size(TRANSPORT_MAX_BYTES)
        .max_frame_size(TRANSPORT_MAX_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            connection::serve(socket, state, user, session, shutdown, heartbeat)
        })
}
