//! The message log: the messages, oldest at the top, loading older pages as the reader scrolls
//! up without moving what is on screen, following new ones when the reader is at the bottom,
//! and telling the store what has been on screen (read receipts).

use leptos::{html, prelude::*, task::spawn_local};

use super::super::{
    store::ChatStore,
    thread::{Row, rows},
};
use crate::{api::conversations::history, model::ConversationId, ui::time};

use super::row::RowView;

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
pub fn MessageLog() -> impl IntoView {
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
                                        "Loading…"
                                    } else {
                                        "Load earlier messages"
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
pub struct Receipts(pub Memo<Option<(i64, Option<i64>)>>);

/// Keeps the log at the bottom when the reader is there and something grows (an image loads).
#[derive(Clone, Copy)]
pub struct FollowBottom(pub Callback<()>);
