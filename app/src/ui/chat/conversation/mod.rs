//! One open conversation: its header ([`ConversationView`], here), the message log
//! ([`log`]), each line of it ([`row`]), and the typing indicator and the message box
//! ([`composer`]).
//!
//! The views are written with the size of the browser's bundle in mind ("Idioms the bundle
//! asks for" in docs/performance.md): reactive parts as closures in the view itself, optional
//! parts type-erased.

pub mod composer;
pub mod log;
pub mod row;

use chrono::Utc;
use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::hooks::use_params_map;

use super::{attach::Drafts, store::ChatStore, thread::Thread};
use crate::{
    api::{
        conversations::{history, open_conversation},
        uploads::current_upload_rules,
    },
    error::AppError,
    ui::{time, title::page_title},
};

use self::{
    composer::{Composer, TypingIndicator},
    log::MessageLog,
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
        store.waiting_card.set(None);
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
            store
                .waiting_card
                .set(summary.waiting_card.clone().map(|card| (id, card)));
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
