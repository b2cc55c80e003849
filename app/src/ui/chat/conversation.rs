//! One open conversation: its header, the message log, the typing indicator and the composer.
//!
//! A note on the views, which are written for the size of the browser's bundle: every type
//! of view, attribute or reactive closure that reaches the page brings its own copy of the
//! rendering code (docs/performance.md). So reactive parts are written as closures in the
//! view itself (`{move || …}`, which the view macro turns into one shared type per result
//! type) rather than passed as closure variables, optional parts are type-erased
//! (`.into_any()`), and text closures give `String`s.

use chrono::Utc;
use leptos::{ev, html, prelude::*, task::spawn_local};
use leptos_router::hooks::use_params_map;

use super::{
    attach::{Draft, DraftState, Drafts},
    links::{Segment, segments},
    live::new_client_msg_id,
    store::{ChatStore, Connection},
    thread::{Delivery, Receipt, Row, Thread, rows},
};
use crate::{
    api::{
        conversations::{history, open_conversation},
        uploads::current_upload_rules,
    },
    error::AppError,
    model::{
        AttachmentView, ConversationId, MESSAGE_MAX_CHARS, MessageBody, TYPING_THROTTLE_MS,
        TYPING_TTL_MS,
    },
    protocol::ClientFrame,
    ui::{
        time::{self, now_ms},
        title::page_title,
        typed_before_hydration,
    },
    uploads::format_size,
};

/// `/chat/@{username}`: opens (or starts) the conversation with that user.
#[component]
pub fn ConversationView() -> impl IntoView {
    let store = expect_context::<ChatStore>();
    let params = use_params_map();
    let username = Memo::new(move |_| {
        params.with(|p| {
            p.get("handle")
                // Usernames are ASCII (`Username::parse`), so ASCII folding is enough.
                .map(|h| h.trim_start_matches('@').to_ascii_lowercase())
                .unwrap_or_default()
        })
    });
    let problem = RwSignal::new(None::<String>);
    let drafts = Drafts::new();
    provide_context(drafts);
    // Leaving the conversation (or the page) stops its uploads.
    on_cleanup(move || drafts.stop_uploads());
    // This server's upload rules, for the checks made before uploading.
    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(rules) = current_upload_rules().await {
                drafts.rules.set(rules);
            }
        });
    });
    let dragging = RwSignal::new(false);
    let on_drop = move |ev: ev::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        #[cfg(feature = "hydrate")]
        if let Some(id) = store.active.with_untracked(|a| a.as_ref().map(|a| a.id)) {
            drafts.add(id, super::attach::dropped_files(&ev));
        }
    };

    Effect::new(move |_| {
        let wanted = username.get();
        problem.set(None);
        store.active.set(None);
        store.thread.set(Thread::default());
        spawn_local(async move {
            let still_wanted = {
                let wanted = wanted.clone();
                move || username.get_untracked() == wanted
            };
            let summary = match open_conversation(wanted.clone()).await {
                Ok(summary) => summary,
                Err(error) => {
                    if still_wanted() {
                        problem.set(Some(match error {
                            AppError::NotFound => format!("There is no one called @{wanted}."),
                            other => other.to_string(),
                        }));
                    }
                    return;
                }
            };
            if !still_wanted() {
                return;
            }
            let id = summary.id;
            let opening = Thread::opening(id).with_unread(summary.last_seq, summary.unread);
            store.upsert_summary(summary.clone());
            store.active.set(Some(summary));
            store.thread.set(opening);
            match history(id, None, None).await {
                Ok(page) => {
                    let newest = page.messages.last().map_or(0, |m| m.seq);
                    store.thread.update(|thread| {
                        if thread.conversation_id == Some(id) {
                            thread.load_latest(page.messages, page.has_more);
                        }
                    });
                    store.acknowledge(id, newest);
                }
                Err(error) => {
                    if still_wanted() {
                        problem.set(Some(error.to_string()));
                    }
                }
            }
        });
    });

    let other = move || store.active.with(|a| a.as_ref().map(|a| a.other.clone()));
    // "online", or "last seen today at 14:05": from the conversation list, which presence
    // frames keep current.
    let presence = move || {
        let id = store.active.with(|a| a.as_ref().map(|a| a.id))?;
        let (online, last_seen) = store
            .conversations
            .with(|list| {
                list.iter()
                    .find(|s| s.id == id)
                    .map(|s| (s.other_online, s.other_last_seen_at))
            })
            .or_else(|| {
                store
                    .active
                    .with(|a| a.as_ref().map(|a| (a.other_online, a.other_last_seen_at)))
            })?;
        if online {
            Some("online".to_owned())
        } else {
            last_seen.map(last_seen_text)
        }
    };
    page_title(move || store.title(&other().map(|o| o.display_name).unwrap_or_default()));
    view! {
        <section
            class="conversation-view"
            class:dragging=move || dragging.get()
            aria-label="Conversation"
            on:dragover=move |ev: ev::DragEvent| {
                ev.prevent_default();
                dragging.set(true);
            }
            on:dragleave=move |_| dragging.set(false)
            on:drop=on_drop
        >
            <header class="thread-header">
                <a href="/chat" class="back">"← Conversations"</a>
                <div class="peer">
                    <h2>{move || other().map(|o| o.display_name)}</h2>
                    <span class="handle">{move || format!("@{}", username.get())}</span>
                    <span class="presence">{move || presence()}</span>
                </div>
            </header>
            {move || {
                problem
                    .get()
                    .map(|p| view! { <p class="problem" role="alert">{p}</p> }.into_any())
            }}
            <MessageLog/>
            <TypingIndicator/>
            <Composer/>
        </section>
    }
}

/// How close to the bottom (in pixels) still counts as "reading the latest messages".
const STICKY_BOTTOM_PX: i32 = 80;
/// How close to the top (in pixels) starts loading older messages.
const LOAD_OLDER_PX: i32 = 120;

/// Where the reader is in the log, kept between changes. Nothing is drawn from it, so it is
/// one plain stored value, read and written whole (one type in the bundle, not five).
#[derive(Clone, Default)]
struct Scroll {
    /// Reading the latest messages: new ones scroll into view.
    near_bottom: bool,
    /// Scroll height and position just before older messages were asked for, and the first
    /// line then: the view is restored once a different line is first (the page has landed).
    anchor: Option<(i32, i32, Option<String>)>,
    /// The newest line's key after the last change.
    last_row: Option<String>,
    /// The conversation whose first page has been given its starting position.
    placed: Option<ConversationId>,
    /// The scroll position at the last scroll event.
    last_top: i32,
}

/// The messages, oldest at the top. Scrolling up loads older pages without moving what is on
/// screen; new messages scroll into view when the reader is at the bottom (or sent them).
#[component]
fn MessageLog() -> impl IntoView {
    let store = expect_context::<ChatStore>();
    let log = NodeRef::<html::Div>::new();
    let scroll = StoredValue::new(Scroll {
        near_bottom: true,
        ..Scroll::default()
    });
    let loading_older = RwSignal::new(false);

    // Reads what is on screen: the newest message at least half visible (and everything
    // before it) counts as seen, if the page itself is visible.
    let check_seen = move || {
        if let Some(seq) = last_seq_on_screen(log) {
            store.mark_seen(seq);
        }
    };
    let rendered = Memo::new(move |_| {
        let me = store.me.get();
        store
            .thread
            .with(|t| store.pending.with(|p| rows(t, p, me.as_ref(), time::day)))
    });

    // After each change: keep the view still when history was prepended, else follow the
    // bottom if the reader was there or the newest line is their own.
    // The first message's key (not the first row's: a day separator may stay first).
    let first_key = move || {
        rendered.with_untracked(|rows| {
            rows.iter().find_map(|row| match row {
                Row::Message { key, .. } => Some(key.clone()),
                Row::Day { .. } | Row::NewMessages => None,
            })
        })
    };
    // An image that finishes loading makes the log taller: a reader at the bottom stays there.
    provide_context(FollowBottom(Callback::new(move |()| {
        let Some(el) = on_screen(log) else {
            return;
        };
        let Scroll {
            near_bottom,
            anchor,
            ..
        } = scroll.get_value();
        if near_bottom && anchor.is_none() {
            el.set_scroll_top(el.scroll_height());
        }
        check_seen();
    })));
    // The other side's receipts for this conversation, for the ticks on one's own messages.
    provide_context(Receipts(Memo::new(move |_| {
        let id = store.thread.with(|t| t.conversation_id)?;
        store.conversations.with(|list| {
            list.iter()
                .find(|s| s.id == id)
                .map(|s| (s.other_delivered_seq, s.other_read_seq))
        })
    })));
    // Asked for by the store (the page became visible, a catch-up finished).
    Effect::new(move |_| {
        store.seen_checks.track();
        request_animation_frame(check_seen);
    });
    Effect::new(move |_| {
        let newest = rendered.with(|rows| {
            rows.last().map(|row| match row {
                Row::Message { key, mine, .. } => (key.clone(), *mine),
                Row::Day { key, .. } => (key.clone(), false),
                Row::NewMessages => (row.render_key(), false),
            })
        });
        let new_own_line = match &newest {
            Some((key, true)) => scroll.get_value().last_row.as_ref() != Some(key),
            _ => false,
        };
        scroll.set_value(Scroll {
            last_row: newest.map(|(key, _)| key),
            ..scroll.get_value()
        });
        request_animation_frame(move || {
            let Some(el) = on_screen(log) else {
                return;
            };
            // Opened with unread messages: start at the first of them, as other messengers
            // do, so that what is below the fold is not taken as seen.
            let (loaded, opened) = store
                .thread
                .with_untracked(|t| (t.loaded, t.conversation_id));
            if loaded && scroll.get_value().placed != opened {
                scroll.set_value(Scroll {
                    placed: opened,
                    ..scroll.get_value()
                });
                if let Some(top) = first_unread_top(log) {
                    el.set_scroll_top(top);
                    let distance = el.scroll_height() - el.scroll_top() - el.client_height();
                    scroll.set_value(Scroll {
                        near_bottom: distance < STICKY_BOTTOM_PX,
                        ..scroll.get_value()
                    });
                    check_seen();
                    return;
                }
            }
            let Scroll {
                near_bottom,
                anchor,
                ..
            } = scroll.get_value();
            if let Some((height, top, first)) = anchor {
                // Until the older page lands, other changes (a live message) leave the view be.
                if first_key() != first {
                    scroll.set_value(Scroll {
                        anchor: None,
                        ..scroll.get_value()
                    });
                    el.set_scroll_top(el.scroll_height() - height + top);
                }
            } else if near_bottom || new_own_line {
                el.set_scroll_top(el.scroll_height());
                scroll.set_value(Scroll {
                    near_bottom: true,
                    ..scroll.get_value()
                });
            }
            check_seen();
        });
    });

    // After a request: the log may be gone by then, and its stored state with it.
    let drop_anchor = move || {
        scroll.try_update_value(|scroll| scroll.anchor = None);
    };
    let load_older = move || {
        if loading_older.get_untracked() {
            return;
        }
        let (id, first, more) = store
            .thread
            .with_untracked(|t| (t.conversation_id, t.first_seq(), t.has_more_before));
        let (Some(id), Some(first), true) = (id, first, more) else {
            return;
        };
        loading_older.set(true);
        if let Some(el) = on_screen(log) {
            scroll.set_value(Scroll {
                anchor: Some((el.scroll_height(), el.scroll_top(), first_key())),
                ..scroll.get_value()
            });
        }
        spawn_local(async move {
            match history(id, Some(first), None).await {
                Ok(page) if !page.messages.is_empty() => store.thread.update(|thread| {
                    if thread.conversation_id == Some(id) {
                        thread.merge(page.messages);
                        thread.has_more_before = page.has_more;
                    }
                }),
                Ok(page) => {
                    drop_anchor();
                    store
                        .thread
                        .update(|thread| thread.has_more_before = page.has_more);
                }
                Err(_) => drop_anchor(),
            }
            loading_older.set(false);
        });
    };
    // Following the bottom stops only when the reader scrolls up: a burst of messages can
    // grow the log between our own scroll and its event, which must not count as leaving.
    let on_scroll = move |_| {
        if let Some(el) = on_screen(log) {
            let top = el.scroll_top();
            let distance = el.scroll_height() - top - el.client_height();
            let was = scroll.get_value();
            scroll.set_value(Scroll {
                near_bottom: if distance < STICKY_BOTTOM_PX {
                    true
                } else {
                    was.near_bottom && top >= was.last_top
                },
                last_top: top,
                ..was
            });
            if top < LOAD_OLDER_PX {
                load_older();
            }
        }
        check_seen();
    };

    view! {
        <div class="log" role="log" aria-label=move || log_label(store) node_ref=log on:scroll=on_scroll>
            {move || {
                store
                    .thread
                    .with(|t| t.has_more_before)
                    .then(|| {
                        view! {
                            <button class="load-older secondary" on:click=move |_| load_older()>
                                {move || {
                                    if loading_older.get() {
                                        "Loading…".to_owned()
                                    } else {
                                        "Load earlier messages".to_owned()
                                    }
                                }}
                            </button>
                        }
                            .into_any()
                    })
            }}
            {move || {
                let empty = store.thread.with(|t| t.loaded) && rendered.with(Vec::is_empty);
                empty.then(|| {
                    view! { <p class="list-note">"No messages yet. Say hello!"</p> }.into_any()
                })
            }}
            <ol class="messages">
                <For
                    each=move || rendered.get()
                    key=Row::render_key
                    children=move |row| view! { <RowView row/> }
                />
            </ol>
        </div>
    }
}

/// The log's element while the log is on screen. The browser's callbacks (an animation frame,
/// an image that finished loading) can come after the log is gone, and its stored state with
/// it: they stop here rather than touch disposed values.
fn on_screen(log: NodeRef<html::Div>) -> Option<leptos::web_sys::HtmlDivElement> {
    log.try_get_untracked().flatten()
}

/// The log's name for screen readers: "Messages with Ann".
fn log_label(store: ChatStore) -> String {
    store
        .active
        .with(|a| {
            a.as_ref()
                .map(|a| format!("Messages with {}", a.other.display_name))
        })
        .unwrap_or_else(|| "Messages".to_owned())
}

/// "last seen today at 14:05", "last seen yesterday at 09:12", "last seen on Monday, 23
/// November 2026 at 18:40".
fn last_seen_text(at: chrono::DateTime<Utc>) -> String {
    let (_, label) = time::day(at);
    let day = match label.as_str() {
        "Today" => "today".to_owned(),
        "Yesterday" => "yesterday".to_owned(),
        other => format!("on {other}"),
    };
    format!("last seen {day} at {}", time::clock(at))
}

/// The `seq` of the newest message at least half inside the log's visible area (or filling
/// it): what the reader has on screen.
#[cfg(feature = "hydrate")]
fn last_seq_on_screen(log: NodeRef<html::Div>) -> Option<i64> {
    use wasm_bindgen::JsCast;

    let log = on_screen(log)?;
    let view = log.get_bounding_client_rect();
    let (top, bottom) = (view.top(), view.bottom());
    if bottom <= top {
        return None;
    }
    let items = log.query_selector_all("li.message[data-seq]").ok()?;
    for index in (0..items.length()).rev() {
        let Some(item) = items
            .item(index)
            .and_then(|node| node.dyn_into::<web_sys::Element>().ok())
        else {
            continue;
        };
        let rect = item.get_bounding_client_rect();
        if rect.bottom() <= top {
            // This one and every older one are above the visible area.
            return None;
        }
        let shown = rect.bottom().min(bottom) - rect.top().max(top);
        if shown > 0.0 && shown >= rect.height().min(bottom - top) / 2.0 {
            return item.get_attribute("data-seq")?.parse().ok();
        }
    }
    None
}

/// Where the log must be scrolled to for the "New messages" divider to be at its top, if
/// there is one.
#[cfg(feature = "hydrate")]
fn first_unread_top(log: NodeRef<html::Div>) -> Option<i32> {
    let log = on_screen(log)?;
    let divider = log.query_selector("li.new-messages").ok()??;
    let offset = divider.get_bounding_client_rect().top() - log.get_bounding_client_rect().top();
    Some(log.scroll_top() + offset as i32)
}

#[cfg(not(feature = "hydrate"))]
fn first_unread_top(_log: NodeRef<html::Div>) -> Option<i32> {
    None
}

/// Nothing is on screen while rendering on the server.
#[cfg(not(feature = "hydrate"))]
fn last_seq_on_screen(_log: NodeRef<html::Div>) -> Option<i64> {
    None
}

/// The other participant's delivery and read positions in the open conversation (the read
/// one only when both share read receipts).
#[derive(Clone, Copy)]
struct Receipts(Memo<Option<(i64, Option<i64>)>>);

/// Keeps the log at the bottom when the reader is there and something grows (an image loads).
#[derive(Clone, Copy)]
struct FollowBottom(Callback<()>);

/// One line of the log: a day separator, the "new messages" divider, or a message.
#[component]
fn RowView(row: Row) -> impl IntoView {
    let store = expect_context::<ChatStore>();
    match row {
        Row::NewMessages => view! {
            <li class="new-messages" role="separator" aria-label="New messages">
                "New messages"
            </li>
        }
        .into_any(),
        Row::Day { key, label } => {
            let date = key.trim_start_matches("day-").to_owned();
            let name = label.clone();
            view! {
                <li class="day-separator" role="separator" aria-label=name>
                    <time datetime=date>{label}</time>
                </li>
            }
            .into_any()
        }
        Row::Message {
            client_msg_id,
            seq,
            sender,
            mine,
            body,
            attachments,
            created_at,
            state,
            ..
        } => {
            let status = match &state {
                Delivery::Sent => mine.then_some(seq).flatten().map(|seq| {
                    let receipts = expect_context::<Receipts>().0;
                    let receipt = move || {
                        let (delivered, read) = receipts.get().unwrap_or((0, None));
                        Receipt::of(seq, delivered, read)
                    };
                    view! {
                        <span
                            class="receipt"
                            data-receipt=move || receipt().as_str()
                            title=move || receipt().label()
                        >
                            <span aria-hidden="true">
                                {move || if receipt() == Receipt::Sent { "✓".to_owned() } else { "✓✓".to_owned() }}
                            </span>
                            <span class="visually-hidden">{move || receipt().label().to_owned()}</span>
                        </span>
                    }
                    .into_any()
                }),
                // Offline, a message waits in the outbox (kept across reloads) until the
                // connection is back.
                Delivery::Sending => Some(
                    view! {
                        <span class="status">
                            {move || {
                                if store.connection.get() == Connection::Online {
                                    "Sending…".to_owned()
                                } else {
                                    "Waiting to send".to_owned()
                                }
                            }}
                        </span>
                    }
                    .into_any(),
                ),
                Delivery::Failed(reason) => Some(
                    view! {
                        <span class="status failed" role="alert">
                            {format!("Not sent: {reason}")}
                        </span>
                        <button class="link" on:click=move |_| store.retry_failed()>
                            "Retry"
                        </button>
                        <button class="link" on:click=move |_| store.discard(&client_msg_id)>
                            "Delete"
                        </button>
                    }
                    .into_any(),
                ),
            };
            view! {
                <li class=if mine { "message mine" } else { "message" } data-state=state.as_str() data-seq=seq.map(|s| s.to_string())>
                    <div class="meta">
                        <span class="sender">{sender.display_name}</span>
                        <time datetime=time::machine(created_at)>{time::clock(created_at)}</time>
                        {status}
                    </div>
                    {(!body.is_empty())
                        .then(|| {
                            view! {
                                <p class="body">
                                    {segments(&body)
                            .into_iter()
                            .map(|segment| match segment {
                                Segment::Text(text) => text.into_any(),
                                Segment::Link(url) => {
                                    let href = url.clone();
                                    view! {
                                        <a
                                            href=href
                                            rel="noopener noreferrer nofollow"
                                            target="_blank"
                                        >
                                            {url}
                                        </a>
                                    }
                                        .into_any()
                                }
                            })
                            .collect_view()}
                                </p>
                            }
                                .into_any()
                        })}
                    {(!attachments.is_empty())
                        .then(|| {
                            view! {
                                <ul class="attachments">
                                    {attachments
                                        .into_iter()
                                        .map(|file| view! { <li class="attachment"><AttachmentLink file/></li> }.into_any())
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        })}
                </li>
            }
            .into_any()
        }
    }
}

/// An attached file in a message: an image as its thumbnail (opening the full size), anything
/// else as a card with its name and size that downloads it.
#[component]
fn AttachmentLink(file: AttachmentView) -> impl IntoView {
    let url = file.url();
    let name = file.file_name.clone();
    if file.is_image() {
        let (width, height) = thumbnail_size(&file);
        let thumbnail = file.thumbnail_url();
        let title = name.clone();
        let follow = use_context::<FollowBottom>();
        let loaded = move |_| {
            if let Some(FollowBottom(follow)) = follow {
                follow.run(());
            }
        };
        view! {
            <a class="image-attachment" href=url target="_blank" rel="noopener" title=title>
                <img
                    src=thumbnail
                    alt=name
                    width=width
                    height=height
                    loading="lazy"
                    on:load=loaded
                />
            </a>
        }
        .into_any()
    } else {
        let download = name.clone();
        view! {
            <a class="file-card" href=url download=download>
                <span class="file-icon" aria-hidden="true">{file_badge(&file.content_type)}</span>
                <span class="file-name">{name}</span>
                <span class="file-size">{format_size(file.size_bytes)}</span>
            </a>
        }
        .into_any()
    }
}

/// The thumbnail's pixel size (the server fits images in 400 × 400), so the page does not
/// jump when it loads.
fn thumbnail_size(file: &AttachmentView) -> (u32, u32) {
    let (width, height) = (
        file.width.unwrap_or(1).max(1),
        file.height.unwrap_or(1).max(1),
    );
    let scale = (400.0 / f64::from(width.max(height))).min(1.0);
    let fit = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
    (fit(width), fit(height))
}

/// The label on a file card: what kind of file it is, in a word.
fn file_badge(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => "PDF",
        "application/zip" => "ZIP",
        "text/csv" => "CSV",
        "text/plain" => "TXT",
        t if t.contains("spreadsheet") || t.contains("excel") => "XLS",
        t if t.contains("presentation") || t.contains("powerpoint") => "PPT",
        t if t.contains("word") => "DOC",
        _ => "FILE",
    }
}

/// "Ann is typing…" for the open conversation.
#[component]
fn TypingIndicator() -> impl IntoView {
    let store = expect_context::<ChatStore>();
    let text = move || {
        let id = store.thread.with(|t| t.conversation_id)?;
        store.typing.with(|typing| {
            typing
                .iter()
                .find(|t| t.conversation_id == id)
                .map(|t| format!("{} is typing…", t.name))
        })
    };
    view! { <p class="typing" aria-live="polite">{move || text()}</p> }
}

/// The message box. Enter sends, Shift+Enter starts a new line.
#[component]
fn Composer() -> impl IntoView {
    let store = expect_context::<ChatStore>();
    let drafts = expect_context::<Drafts>();
    // What was typed while the page was loading stays (see `typed_before_hydration`).
    let text = RwSignal::new(typed_before_hydration("composer-input"));
    let error = RwSignal::new(None::<String>);
    // The conversation a "typing" signal was last sent for, and when.
    let typing_sent = StoredValue::new(None::<(ConversationId, f64)>);
    let conversation = move || store.active.with(|a| a.as_ref().map(|a| a.id));
    let length = Memo::new(move |_| text.with(|t| t.trim().chars().count()));

    let stop_typing = move || {
        if let Some((id, at)) = typing_sent.get_value() {
            typing_sent.set_value(None);
            if now_ms() - at < f64::from(TYPING_TTL_MS) {
                store.send_frame(ClientFrame::Typing {
                    conversation_id: id,
                    active: false,
                });
            }
        }
    };
    // Another conversation starts with an empty box, and the one left hears we stopped
    // typing. (The first one keeps what was typed while it was being found: the box works
    // from the moment it shows.)
    Effect::new(move |last: Option<Option<ConversationId>>| {
        let now = conversation();
        let last = last.flatten();
        if now.is_some() && last.is_some() && now != last {
            stop_typing();
            text.set(String::new());
            error.set(None);
            drafts.clear();
        }
        now.or(last)
    });
    on_cleanup(stop_typing);

    let submit = move || {
        let Some(id) = conversation() else {
            return;
        };
        let typed = text.get_untracked();
        // Nothing goes out until every file is stored.
        let files = match drafts.ready() {
            Ok(files) => files,
            Err(why) => {
                error.set(Some(why.to_owned()));
                return;
            }
        };
        if typed.trim().is_empty() && files.is_empty() {
            return;
        }
        let body = if files.is_empty() {
            MessageBody::parse(&typed)
        } else {
            MessageBody::parse_caption(&typed)
        };
        match body {
            Ok(body) => {
                store.send_message(
                    id,
                    new_client_msg_id(),
                    body.as_str().to_owned(),
                    files,
                    time::now(),
                );
                // The message itself clears the indicator on the other side.
                typing_sent.set_value(None);
                text.set(String::new());
                error.set(None);
                drafts.clear();
            }
            Err(problem) => error.set(Some(problem)),
        }
    };
    let add_files = move |files| {
        #[cfg(feature = "hydrate")]
        if let Some(id) = conversation() {
            error.set(None);
            drafts.add(id, files);
        }
        #[cfg(not(feature = "hydrate"))]
        let _: () = files;
    };
    let on_chosen = move |ev: ev::Event| {
        #[cfg(feature = "hydrate")]
        add_files(super::attach::input_files(&ev));
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = ev;
            add_files(());
        }
    };
    let on_paste = move |ev: ev::ClipboardEvent| {
        #[cfg(feature = "hydrate")]
        {
            let files = super::attach::pasted_files(&ev);
            if !files.is_empty() {
                ev.prevent_default();
                add_files(files);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = ev;
            add_files(());
        }
    };
    let on_input = move |ev| {
        let value = event_target_value(&ev);
        let blank = value.trim().is_empty();
        text.set(value);
        error.set(None);
        let Some(id) = conversation() else {
            return;
        };
        if blank {
            stop_typing();
            return;
        }
        let now = now_ms();
        let due = typing_sent
            .get_value()
            .is_none_or(|(last_id, at)| last_id != id || now - at >= f64::from(TYPING_THROTTLE_MS));
        if due {
            typing_sent.set_value(Some((id, now)));
            store.send_frame(ClientFrame::Typing {
                conversation_id: id,
                active: true,
            });
        }
    };
    let on_keydown = move |ev: ev::KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            submit();
        }
    };

    let too_long = move || length.get() > MESSAGE_MAX_CHARS;
    let counter = move || {
        let n = length.get();
        (n > MESSAGE_MAX_CHARS - 500).then(|| format!("{n} / {MESSAGE_MAX_CHARS}"))
    };
    view! {
        <form
            class="composer"
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <ul class="drafts" aria-label="Files to send">
                // A string key, as the other lists (see the conversation list).
                <For
                    each=move || drafts.items.with(|items| items.iter().map(|d| d.key).collect::<Vec<_>>())
                    key=|key| key.to_string()
                    children=move |key| view! { <DraftLine key/> }
                />
            </ul>
            {move || {
                drafts
                    .notice
                    .get()
                    .map(|n| view! { <p class="notice" role="status">{n}</p> }.into_any())
            }}
            <label for="composer-input">"Message"</label>
            <div class="composer-row">
                <input
                    id="attach-input"
                    class="visually-hidden"
                    type="file"
                    multiple
                    on:change=on_chosen
                />
                <label class="attach" for="attach-input">"Attach files"</label>
                <textarea
                    id="composer-input"
                    name="body"
                    rows="2"
                    placeholder="Write a message…  (Enter to send, Shift+Enter for a new line)"
                    aria-invalid=move || (too_long() || error.with(Option::is_some)).to_string()
                    aria-describedby="composer-error composer-counter"
                    prop:value=text
                    on:input=on_input
                    on:keydown=on_keydown
                    on:paste=on_paste
                ></textarea>
                <button
                    type="submit"
                    disabled=move || {
                        conversation().is_none() || too_long() || drafts.uploading()
                            || (length.get() == 0 && drafts.is_empty())
                    }
                >
                    "Send"
                </button>
            </div>
            <p class="counter" id="composer-counter" class:over=move || too_long()>
                {move || counter()}
            </p>
            <p class="field-error" id="composer-error" role="alert">
                {move || {
                    error
                        .get()
                        .or_else(|| {
                            too_long()
                                .then(|| {
                                    format!(
                                        "Message is too long: {} characters, the limit is {MESSAGE_MAX_CHARS}.",
                                        length.get(),
                                    )
                                })
                        })
                }}
            </p>
        </form>
    }
}

/// One file of the message being written: its name and size, then a progress bar and Cancel
/// while it uploads, "Ready" once stored, or what went wrong with Remove (and Retry when
/// trying again could help). Progress updates only the bar, so the buttons stay put.
#[component]
fn DraftLine(key: u64) -> impl IntoView {
    let drafts = expect_context::<Drafts>();
    let store = expect_context::<ChatStore>();
    let kind = Memo::new(move |_| {
        drafts
            .items
            .with(|items| draft_state(items, key).map(DraftState::as_str))
    });
    let reason = move || {
        drafts.items.with(|items| match draft_state(items, key) {
            Some(DraftState::Failed(reason) | DraftState::Refused(reason)) => reason.clone(),
            _ => String::new(),
        })
    };
    let (name, size) = drafts
        .items
        .with_untracked(|items| {
            items
                .iter()
                .find(|d| d.key == key)
                .map(|d| (d.name.clone(), d.size))
        })
        .unwrap_or_default();
    let label = format!("Uploading {name}");
    let remove = move |_| drafts.remove(key);
    let retry = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(id) = store.active.with_untracked(|a| a.as_ref().map(|a| a.id)) {
            drafts.retry(key, id);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = store;
    };
    let status = move || match kind.get() {
        Some("uploading") => view! {
            <progress
                max="100"
                value=move || drafts.items.with(|items| upload_percent(draft_state(items, key)))
                aria-label=label.clone()
            ></progress>
            <button type="button" class="secondary" on:click=remove>
                "Cancel"
            </button>
        }
        .into_any(),
        Some("stored") => view! {
            <span class="draft-ready">"Ready"</span>
            <button type="button" class="secondary" on:click=remove>
                "Remove"
            </button>
        }
        .into_any(),
        Some("failed") => view! {
            <span class="draft-problem" role="alert">{move || reason()}</span>
            <button type="button" class="secondary" on:click=retry>
                "Retry"
            </button>
            <button type="button" class="secondary" on:click=remove>
                "Remove"
            </button>
        }
        .into_any(),
        _ => view! {
            <span class="draft-problem" role="alert">{move || reason()}</span>
            <button type="button" class="secondary" on:click=remove>
                "Remove"
            </button>
        }
        .into_any(),
    };
    view! {
        <li class="draft" data-state=move || kind.get().unwrap_or("gone")>
            <span class="draft-name">{name}</span>
            <span class="draft-size">{format_size(size)}</span>
            {move || status()}
        </li>
    }
}

/// The state of the file `key` among `items`, if it is still there.
fn draft_state(items: &[Draft], key: u64) -> Option<&DraftState> {
    items.iter().find(|d| d.key == key).map(|d| &d.state)
}

/// How much of an upload is done, as the bar shows it: a whole number (an `f64` attribute
/// brings its own code to write floats into the page, 0.5 KB compressed).
fn upload_percent(state: Option<&DraftState>) -> u32 {
    match state {
        Some(DraftState::Uploading(fraction)) => (fraction.clamp(0.0, 1.0) * 100.0).round() as u32,
        _ => 100,
    }
}
