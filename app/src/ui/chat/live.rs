//! The browser's end of the WebSocket: connect, apply frames to the [`ChatStore`], reconnect
//! with backoff when the connection drops, and catch up on what was missed.
//!
//! Catching up is what makes a dropped connection lose nothing: after every `ready` frame
//! (the server has subscribed this socket, so live events flow from then on) the task fetches
//! the conversation list and every message of the open conversation after the last one it
//! holds, then resends the messages still waiting for an acknowledgement. Messages are merged
//! by `seq` and sends are idempotent by `client_msg_id`, so overlap shows nothing twice.
//!
//! Only the browser build has a socket; on the server [`start`] does nothing.

use super::store::ChatStore;

/// Starts the connection task for the chat page. It stops when the page's reactive owner is
/// cleaned up (the user leaves the chat pages).
pub fn start(store: ChatStore) {
    #[cfg(feature = "hydrate")]
    browser::start(store);
    #[cfg(not(feature = "hydrate"))]
    let _ = store;
}

/// A fresh `client_msg_id`: 128 random bits from the browser's CSPRNG, as hex.
pub fn new_client_msg_id() -> String {
    #[cfg(feature = "hydrate")]
    {
        browser::random_id()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        // Never called outside the browser; a time-based id keeps the function total.
        format!(
            "s{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        )
    }
}

/// Reconnection delay after `failures` consecutive failed attempts: 250 ms doubling up to 5 s,
/// with up to 30 % of random spread so that many clients dropped together (a server restart)
/// don't all come back at the same instant.
pub fn backoff_ms(failures: u32, jitter: f64) -> u32 {
    let base = 250u32
        .saturating_mul(1 << failures.saturating_sub(1).min(5))
        .min(5_000);
    let spread = f64::from(base) * 0.3 * jitter.clamp(0.0, 1.0);
    base + spread as u32
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use futures::{FutureExt, SinkExt, StreamExt, channel::mpsc, select};
    use gloo_net::websocket::{Message, futures::WebSocket};
    use gloo_timers::future::{IntervalStream, TimeoutFuture};
    use leptos::{ev, prelude::*, task::spawn_local};

    use super::{super::store::Connection, ChatStore, backoff_ms};
    use crate::{
        api::{
            accounts::current_user,
            conversations::{history, list_conversations},
        },
        protocol::{ClientFrame, ErrorCode, ServerFrame},
        ui::time::now_ms,
    };

    /// How often the task wakes to expire typing indicators and check the connection.
    const TICK_MS: u32 = 1_000;
    /// How often the client pings so that a silently dead connection is noticed.
    const PING_EVERY_MS: f64 = 15_000.0;
    /// A connection that has said nothing for this long is given up and replaced.
    const SILENT_LIMIT_MS: f64 = 40_000.0;

    /// Rung by the browser's `online` and `offline` events; `navigator.onLine` then says
    /// which. (A channel of `()`, which the reactive system already has, rather than one of
    /// an enum: each channel type adds its own code to the bundle.)
    type NetworkChanges = mpsc::UnboundedReceiver<()>;

    /// Whether the browser thinks it is online.
    fn online() -> bool {
        window().navigator().on_line()
    }

    pub(super) fn start(store: ChatStore) {
        let stopped = Arc::new(AtomicBool::new(false));
        let (network_tx, network_rx) = mpsc::unbounded::<()>();
        // Going offline drops the connection at once (rather than when pings go unanswered),
        // and coming back online is the moment to retry, whatever the backoff says.
        let on_online = window_event_listener(ev::online, {
            let network_tx = network_tx.clone();
            move |_| {
                let _ = network_tx.unbounded_send(());
            }
        });
        let on_offline = window_event_listener(ev::offline, move |_| {
            let _ = network_tx.unbounded_send(());
        });
        on_cleanup({
            let stopped = stopped.clone();
            move || {
                stopped.store(true, Ordering::Relaxed);
                on_online.remove();
                on_offline.remove();
            }
        });
        spawn_local(run(store, stopped, network_rx));
    }

    async fn run(store: ChatStore, stopped: Arc<AtomicBool>, mut network: NetworkChanges) {
        let mut failures = 0u32;
        while !stopped.load(Ordering::Relaxed) {
            // Offline, an attempt can only fail; wait for the `online` event (or the timer).
            let was_online = online();
            let mut reached_ready = false;
            if was_online && let Ok(socket) = WebSocket::open(&socket_url()) {
                reached_ready = session(store, socket, &stopped, &mut network).await;
            }
            store.set_outbox(None);
            store.clear_typing();
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            if reached_ready {
                failures = 0;
            } else if was_online && signed_out().await {
                // The session ended (signed out in another tab, or expired): no retry will
                // help, so send the user to sign in again, then back here.
                let location = window().location();
                let here = location.pathname().unwrap_or_default();
                let next: String = js_sys::encode_uri_component(&here).into();
                let _ = location.assign(&format!("/login?next={next}"));
                break;
            }
            store.connection.set(Connection::Reconnecting);
            failures += 1;
            let delay = backoff_ms(failures, js_sys::Math::random());
            let mut sleep = TimeoutFuture::new(delay).fuse();
            loop {
                select! {
                    () = sleep => break,
                    _ = network.next() => if online() { break },
                }
            }
        }
    }

    /// Whether the server says nobody is signed in (a network failure is not a "yes").
    async fn signed_out() -> bool {
        matches!(current_user().await, Ok(None))
    }

    /// `ws://` or `wss://` (matching the page), same host, path `/ws`.
    fn socket_url() -> String {
        let location = window().location();
        let scheme = match location.protocol().as_deref() {
            Ok("https:") => "wss",
            _ => "ws",
        };
        let host = location.host().unwrap_or_default();
        format!("{scheme}://{host}/ws")
    }

    /// Runs one connection until it drops (or the browser goes offline). Returns whether it
    /// got as far as `ready`.
    async fn session(
        store: ChatStore,
        socket: WebSocket,
        stopped: &AtomicBool,
        network: &mut NetworkChanges,
    ) -> bool {
        let (mut sink, stream) = socket.split();
        let mut stream = stream.fuse();
        let (outbox, mut outgoing) = mpsc::unbounded::<ClientFrame>();
        let mut ticks = IntervalStream::new(TICK_MS).fuse();
        let mut last_heard = now_ms();
        let mut last_ping = now_ms();
        let mut ready = false;

        loop {
            select! {
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        last_heard = now_ms();
                        match serde_json::from_slice::<ServerFrame>(text.as_bytes()) {
                            Ok(ServerFrame::Ready { user }) => {
                                ready = true;
                                store.apply(ServerFrame::Ready { user }, last_heard);
                                store.set_outbox(Some(outbox.clone()));
                                store.connection.set(Connection::Online);
                                store.resend_pending();
                                schedule_catch_up(store);
                            }
                            Ok(frame) => {
                                if let ServerFrame::Error {
                                    code: ErrorCode::RateLimited,
                                    client_msg_id: None,
                                    retry_after_ms,
                                    ..
                                } = &frame
                                {
                                    // A receipt (or typing signal) was refused: report again
                                    // once allowed, or the sender's ticks would stall.
                                    let wait = retry_after_ms.unwrap_or(1_000).min(60_000);
                                    spawn_local(async move {
                                        TimeoutFuture::new(u32::try_from(wait).unwrap_or(60_000))
                                            .await;
                                        store.resend_receipts();
                                    });
                                }
                                store.apply(frame, last_heard);
                                if store.needs_catch_up() {
                                    schedule_catch_up(store);
                                }
                            }
                            Err(error) => leptos::logging::warn!("unreadable frame: {error}"),
                        }
                    }
                    Some(Ok(Message::Bytes(_))) => {}
                    Some(Err(_)) | None => return ready,
                },
                frame = outgoing.next() => {
                    let Some(frame) = frame else { continue };
                    let Ok(text) = serde_json::to_string(&frame) else { continue };
                    if sink.send(Message::Text(text)).await.is_err() {
                        return ready;
                    }
                },
                _ = network.next() => {
                    if !online() {
                        let _ = sink.close().await;
                        return ready;
                    }
                },
                _ = ticks.next() => {
                    let now = now_ms();
                    store.expire_typing(now);
                    if stopped.load(Ordering::Relaxed) || now - last_heard > SILENT_LIMIT_MS {
                        let _ = sink.close().await;
                        return ready;
                    }
                    if now - last_ping > PING_EVERY_MS {
                        last_ping = now;
                        if let Ok(text) = serde_json::to_string(&ClientFrame::Ping {})
                            && sink.send(Message::Text(text)).await.is_err()
                        {
                            return ready;
                        }
                    }
                },
            }
        }
    }

    /// Starts a catch-up, or makes the running one go round again.
    fn schedule_catch_up(store: ChatStore) {
        if store.request_catch_up() {
            spawn_local(catch_up(store));
        }
    }

    /// Fetches what may have been missed: the open conversation's messages after the last one
    /// held without a gap, then the conversation list; then checks what is on screen, to tell
    /// the server what has been read (a read position set while disconnected never reached it).
    async fn catch_up(store: ChatStore) {
        loop {
            let handled = store.catch_up_requests();
            fetch_missed_messages(store).await;
            let asked_at = store.presence_heard();
            if let Ok(list) = list_conversations().await {
                store.replace_conversations(list, asked_at);
            }
            store.check_seen();
            if !store.finish_catch_up(handled) {
                break;
            }
        }
    }

    async fn fetch_missed_messages(store: ChatStore) {
        loop {
            let (conversation_id, loaded, after) = store
                .thread
                .with_untracked(|t| (t.conversation_id, t.loaded, t.complete_to));
            // A thread still loading its first page will get everything from that page.
            let (Some(conversation_id), true) = (conversation_id, loaded) else {
                return;
            };
            let Ok(page) = history(conversation_id, None, Some(after)).await else {
                return;
            };
            let newest = page.messages.last().map_or(0, |m| m.seq);
            for message in page.messages {
                store.receive(message, false);
            }
            store.acknowledge(conversation_id, newest);
            if !page.has_more {
                return;
            }
        }
    }

    pub(super) fn random_id() -> String {
        let mut bytes = [0u8; 16];
        let filled = window()
            .crypto()
            .and_then(|crypto| crypto.get_random_values_with_u8_array(&mut bytes))
            .is_ok();
        if !filled {
            // Only reachable in a browser without Web Crypto; still unique enough per sender.
            for byte in &mut bytes {
                *byte = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1, 0.0), 250);
        assert_eq!(backoff_ms(2, 0.0), 500);
        assert_eq!(backoff_ms(3, 0.0), 1_000);
        assert_eq!(backoff_ms(10, 0.0), 5_000);
        assert_eq!(backoff_ms(10, 1.0), 6_500);
    }
}
