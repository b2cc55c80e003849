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

/// What the page may ask of its connection task from a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Reconnect a paused connection at once (the paused banner's button).
    Resume,
    /// Stop for good, before this tab signs out: the socket closes with the session, and the
    /// page goes to the sign-in page by itself (the task must not send it there too, with
    /// this page as where to come back to).
    Stop,
}

/// What asks the connection task for `control`. Taken while the chat page is being built,
/// where the task's handle is in context.
pub fn controller(control: Control) -> impl Fn() + Clone + Send + Sync + 'static {
    #[cfg(feature = "hydrate")]
    let handle = leptos::prelude::use_context::<browser::ResumeHandle>();
    move || {
        #[cfg(feature = "hydrate")]
        if let Some(handle) = &handle {
            handle.ask(control);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = control;
    }
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
    use std::{
        cell::Cell,
        rc::Rc,
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Duration,
    };

    use futures::{StreamExt, channel::mpsc};
    use leptos::{ev, prelude::*, task::spawn_local};
    use wasm_bindgen::{JsCast, closure::Closure};
    use web_sys::{MessageEvent, WebSocket};

    use super::{super::store::Connection, ChatStore, backoff_ms};
    use crate::{
        api::{
            accounts::current_user,
            conversations::{history, list_conversations},
        },
        protocol::{CLOSE_DISPLACED, ClientFrame, ErrorCode, ServerFrame},
        ui::time::now_ms,
    };

    /// The close code of a connection closed for breaking the rules (or a session that ended).
    const CLOSE_POLICY: u16 = 1008;
    /// How long a connection must have worked for the reconnection backoff to start afresh.
    const STEADY_MS: f64 = 10_000.0;

    /// How the page's buttons reach the connection task (`controller`).
    #[derive(Clone)]
    pub(crate) struct ResumeHandle {
        flags: Arc<Flags>,
        wake: Wake,
    }

    impl ResumeHandle {
        pub(crate) fn ask(&self, control: super::Control) {
            let flag = match control {
                super::Control::Resume => &self.flags.resumed,
                super::Control::Stop => &self.flags.stopped,
            };
            flag.store(true, Ordering::Relaxed);
            let _ = self.wake.unbounded_send(());
        }
    }

    /// How often an open socket's timer expires typing indicators and checks the connection.
    const TICK: Duration = Duration::from_millis(1_000);
    /// How often the client pings so that a silently dead connection is noticed.
    const PING_EVERY_MS: f64 = 15_000.0;
    /// A connection that has said nothing for this long is given up and replaced.
    const SILENT_LIMIT_MS: f64 = 40_000.0;

    /// Wakes the connection task, which then looks at what changed: the socket closed, the
    /// network changed, a delay ended, the page was left. (A channel of `()`, which the
    /// reactive system already has: each channel type adds its own code to the bundle.)
    type Wake = mpsc::UnboundedSender<()>;

    /// What the page's events tell the connection task.
    #[derive(Default)]
    struct Flags {
        /// The chat pages were left: the task ends.
        stopped: AtomicBool,
        /// An `online` or `offline` event came since the task last looked.
        network_changed: AtomicBool,
        /// The tab was looked at again (or its user asked to reconnect) since the task last
        /// looked: a paused connection may come back.
        resumed: AtomicBool,
    }

    impl Flags {
        fn stopped(&self) -> bool {
            self.stopped.load(Ordering::Relaxed)
        }
    }

    /// Whether the browser thinks it is online.
    fn online() -> bool {
        window().navigator().on_line()
    }

    pub(super) fn start(store: ChatStore) {
        let flags = Arc::new(Flags::default());
        let (wake, woken) = mpsc::unbounded::<()>();
        // Going offline drops the connection at once (rather than when pings go unanswered),
        // and coming back online is the moment to retry, whatever the backoff says.
        let on_network = {
            let (flags, wake) = (flags.clone(), wake.clone());
            move |_| {
                flags.network_changed.store(true, Ordering::Relaxed);
                let _ = wake.unbounded_send(());
            }
        };
        let on_online = window_event_listener(ev::online, on_network.clone());
        let on_offline = window_event_listener(ev::offline, on_network);
        let on_visible = window_event_listener(ev::Custom::<ev::Event>::new("visibilitychange"), {
            let (flags, wake) = (flags.clone(), wake.clone());
            move |_| {
                if !document().hidden() {
                    flags.resumed.store(true, Ordering::Relaxed);
                    let _ = wake.unbounded_send(());
                }
            }
        });
        // For the page's buttons (`controller`).
        provide_context(ResumeHandle {
            flags: flags.clone(),
            wake: wake.clone(),
        });
        on_cleanup({
            let (flags, wake) = (flags.clone(), wake.clone());
            move || {
                flags.stopped.store(true, Ordering::Relaxed);
                let _ = wake.unbounded_send(());
                on_online.remove();
                on_offline.remove();
                on_visible.remove();
            }
        });
        spawn_local(run(store, flags, wake, woken));
    }

    async fn run(
        store: ChatStore,
        flags: Arc<Flags>,
        wake: Wake,
        mut woken: mpsc::UnboundedReceiver<()>,
    ) {
        let mut failures = 0u32;
        while !flags.stopped() {
            // From here on, an `online` event cuts the wait before the next attempt short.
            flags.network_changed.store(false, Ordering::Relaxed);
            // Offline, an attempt can only fail; wait for the `online` event (or the timer).
            let was_online = online();
            let mut reached_ready = false;
            let mut close_code = None;
            let mut lasted_ms = 0.0;
            if was_online && let Some(socket) = Socket::open(store, flags.clone(), wake.clone()) {
                while !socket.state.closed.get() && online() && !flags.stopped() {
                    woken.next().await;
                }
                reached_ready = socket.state.ready.get();
                close_code = socket.state.close_code.get();
                lasted_ms = now_ms() - socket.state.ready_at.get();
                // Dropping the socket closes it and stops its timer.
            }
            store.set_outbox(None);
            store.clear_typing();
            if flags.stopped() {
                break;
            }
            if close_code == Some(CLOSE_DISPLACED) {
                // Too many tabs: this one waits until it is looked at again, so that tabs
                // don't take turns pushing each other out.
                store.connection.set(Connection::Paused);
                flags.resumed.store(false, Ordering::Relaxed);
                while !flags.resumed.swap(false, Ordering::Relaxed) && !flags.stopped() {
                    woken.next().await;
                }
                failures = 0;
                continue;
            }
            // A connection that worked for a while starts the backoff afresh; one closed soon
            // after `ready` (a server shedding its sockets, say), or for breaking the rules or
            // a session that ended (1008), keeps it growing.
            let policy = close_code == Some(CLOSE_POLICY);
            if reached_ready && !policy && lasted_ms >= STEADY_MS {
                failures = 0;
            } else if (!reached_ready || policy) && was_online && signed_out().await {
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
            let due = Rc::new(Cell::new(false));
            set_timeout(
                {
                    let (due, wake) = (due.clone(), wake.clone());
                    move || {
                        due.set(true);
                        let _ = wake.unbounded_send(());
                    }
                },
                Duration::from_millis(delay.into()),
            );
            loop {
                woken.next().await;
                let back_online = flags.network_changed.swap(false, Ordering::Relaxed) && online();
                if due.get() || back_online || flags.stopped() {
                    break;
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

    /// One connection: the browser's `WebSocket`, its event handlers and its timer. Frames
    /// are applied to the store as they arrive; the task only waits for the end.
    struct Socket {
        socket: WebSocket,
        state: Rc<SocketState>,
        ticks: Option<IntervalHandle>,
        // Called by the browser for as long as the socket has them as handlers.
        _on_message: Closure<dyn FnMut(MessageEvent)>,
        _on_close: Closure<dyn FnMut(web_sys::Event)>,
    }

    #[derive(Default)]
    struct SocketState {
        /// The server said `ready`.
        ready: Cell<bool>,
        /// Closed by either side, failed, or given up as silent.
        closed: Cell<bool>,
        /// The code of the server's close frame, when there was one.
        close_code: Cell<Option<u16>>,
        /// When `ready` came (browser milliseconds).
        ready_at: Cell<f64>,
        last_heard: Cell<f64>,
        last_ping: Cell<f64>,
    }

    impl Socket {
        /// `flags` stops the handlers from touching the store once the chat pages are left:
        /// the browser may deliver a frame between that moment and the socket's closing.
        fn open(store: ChatStore, flags: Arc<Flags>, wake: Wake) -> Option<Self> {
            let socket = WebSocket::new(&socket_url()).ok()?;
            let state = Rc::new(SocketState::default());
            state.last_heard.set(now_ms());
            state.last_ping.set(now_ms());
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
                let (socket, state, flags) = (socket.clone(), state.clone(), flags.clone());
                move |event: MessageEvent| {
                    if flags.stopped() {
                        return;
                    }
                    // Every frame the server sends is text; a binary one would carry nothing.
                    if let Some(text) = event.data().as_string() {
                        state.last_heard.set(now_ms());
                        receive(store, &socket, &state, &text);
                    }
                }
            });
            // An error is always followed by a close; either ends the connection.
            let on_close = Closure::<dyn FnMut(web_sys::Event)>::new({
                let (state, wake) = (state.clone(), wake.clone());
                move |event: web_sys::Event| {
                    if let Some(close) = event.dyn_ref::<web_sys::CloseEvent>() {
                        state.close_code.set(Some(close.code()));
                    }
                    state.closed.set(true);
                    let _ = wake.unbounded_send(());
                }
            });
            socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            socket.set_onerror(Some(on_close.as_ref().unchecked_ref()));
            let ticks = set_interval_with_handle(
                {
                    let (socket, state) = (socket.clone(), state.clone());
                    move || {
                        if !flags.stopped() {
                            tick(store, &socket, &state, &wake);
                        }
                    }
                },
                TICK,
            )
            .ok();
            Some(Self {
                socket,
                state,
                ticks,
                _on_message: on_message,
                _on_close: on_close,
            })
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            if let Some(ticks) = &self.ticks {
                ticks.clear();
            }
            self.socket.set_onmessage(None);
            self.socket.set_onclose(None);
            self.socket.set_onerror(None);
            let _ = self.socket.close();
        }
    }

    /// Sends a frame. Only an open socket is given frames (the outbox exists from `ready` on,
    /// pings wait for the socket to open); one that has just closed drops them.
    fn send(socket: &WebSocket, frame: &ClientFrame) {
        if let Ok(text) = serde_json::to_string(frame) {
            let _ = socket.send_with_str(&text);
        }
    }

    /// One frame from the server.
    fn receive(store: ChatStore, socket: &WebSocket, state: &SocketState, text: &str) {
        let now = state.last_heard.get();
        match serde_json::from_slice::<ServerFrame>(text.as_bytes()) {
            Ok(ServerFrame::Ready { user }) => {
                state.ready.set(true);
                state.ready_at.set(now_ms());
                store.apply(ServerFrame::Ready { user }, now);
                // From now on the store's frames go out on this socket, in order.
                let (outbox, outgoing) = mpsc::unbounded::<ClientFrame>();
                store.set_outbox(Some(outbox));
                spawn_local(send_all(socket.clone(), outgoing));
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
                    // A receipt (or typing signal) was refused: report again once allowed,
                    // or the sender's ticks would stall.
                    let wait = retry_after_ms.unwrap_or(1_000).min(60_000);
                    set_timeout(move || store.resend_receipts(), Duration::from_millis(wait));
                }
                store.apply(frame, now);
                if store.needs_catch_up() {
                    schedule_catch_up(store);
                }
            }
            Err(error) => leptos::logging::warn!("unreadable frame: {error}"),
        }
    }

    /// Sends the store's frames until the store lets go of the outbox (the connection ended).
    /// A frame sent into a socket that has just closed is lost; what matters (messages) is
    /// sent again after the next `ready`.
    async fn send_all(socket: WebSocket, mut outgoing: mpsc::UnboundedReceiver<ClientFrame>) {
        while let Some(frame) = outgoing.next().await {
            send(&socket, &frame);
        }
    }

    /// Once a second: typing indicators expire, a silent connection is given up, and a ping
    /// goes out every so often so that a dead one is noticed.
    fn tick(store: ChatStore, socket: &WebSocket, state: &SocketState, wake: &Wake) {
        let now = now_ms();
        store.expire_typing(now);
        if now - state.last_heard.get() > SILENT_LIMIT_MS {
            // Silent for too long (or still not open): give it up for a new one.
            state.closed.set(true);
            let _ = wake.unbounded_send(());
        } else if now - state.last_ping.get() > PING_EVERY_MS
            && socket.ready_state() == WebSocket::OPEN
        {
            state.last_ping.set(now);
            send(socket, &ClientFrame::Ping {});
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
            if let Ok(list) = list_conversations(None, None, None).await {
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
