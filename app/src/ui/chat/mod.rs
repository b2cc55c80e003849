//! The chat pages: the conversation list on the left, the open conversation on the right
//! (one pane at a time on a phone).
//!
//! [`ChatLayout`] owns the page's [`ChatStore`] and its live connection, so both survive
//! moving between conversations; the conversation itself is
//! [`conversation::ConversationView`].

pub mod attach;
pub mod card;
pub mod conversation;
pub mod links;
pub mod live;
pub mod notify;
pub mod outbox;
pub mod store;
pub mod thread;

use leptos::{ev::SubmitEvent, prelude::*, server_fn::ServerFn, task::spawn_local};
use leptos_router::hooks::use_location;

use self::store::{ChatStore, Connection};
use super::{time, title::page_title};
use crate::{
    api::{
        accounts::{Logout, current_user, logout, search_users},
        conversations::list_conversations,
    },
    model::{ConversationSummary, UserId, UserView},
};

/// `/chat` and everything under it.
#[component]
pub fn ChatLayout() -> impl IntoView {
    super::mark_interactive();
    let store = ChatStore::new();
    provide_context(store);
    live::start(store);
    let resume = live::controller(live::Control::Resume);

    // Who am I: the socket's `ready` frame says so too, but the list needs it even when the
    // socket is slow to come up.
    Effect::new(move |_| {
        spawn_local(async move {
            if let Ok(Some(me)) = current_user().await {
                store.me.set(Some(me));
            }
        });
    });
    // Coming back to the page reads what is on screen (a hidden page reads nothing).
    let visibility = window_event_listener(
        leptos::ev::Custom::<leptos::ev::Event>::new("visibilitychange"),
        move |_| {
            if !notify::page_hidden() {
                store.check_seen();
            }
        },
    );
    on_cleanup(move || visibility.remove());
    // The outbox: what this browser sent before a reload and the server never confirmed comes
    // back (and goes out again once connected); every change is saved.
    Effect::new(move |loaded_for: Option<Option<UserId>>| {
        let me = store.me.with(|me| me.as_ref().map(|me| me.id));
        let loaded_for = loaded_for.flatten();
        if let Some(me) = me {
            if loaded_for != Some(me) {
                store.restore_pending(outbox::load(me));
            }
            // Read (and so watched) on every run, the first included.
            store.save_outbox(me);
        }
        me.or(loaded_for)
    });
    // Someone started a conversation with us: fetch the list again.
    Effect::new(move |previous: Option<u32>| {
        let version = store.conversations_stale.get();
        if previous.is_some() {
            spawn_local(async move {
                let asked_at = store.presence_heard();
                if let Ok(list) = list_conversations(None, None, None).await {
                    store.replace_conversations(list, asked_at);
                }
            });
        }
        version
    });

    let location = use_location();
    let in_conversation = move || location.pathname.with(|p| p.len() > "/chat/".len());

    page_title(move || store.title("Chat"));
    view! {
        <div
            class="chat"
            data-connection=move || store.connection.get().as_str()
            data-pane=move || if in_conversation() { "conversation" } else { "list" }
        >
            {move || match store.connection.get() {
                Connection::Reconnecting => {
                    view! {
                        <div class="banner" role="status">
                            "Reconnecting…"
                        </div>
                    }
                        .into_any()
                }
                Connection::Paused => {
                    let resume = resume.clone();
                    view! {
                        <div class="banner" role="status">
                            "Parley is open in too many tabs, so this one was paused. "
                            <button type="button" on:click=move |_| resume()>
                                "Use it here"
                            </button>
                        </div>
                    }
                        .into_any()
                }
                _ => ().into_any(),
            }}
            <Sidebar/>
            <main class="thread-pane">
                <leptos_router::components::Outlet/>
            </main>
        </div>
    }
}

/// `/chat` with no conversation open.
#[component]
pub fn NoConversation() -> impl IntoView {
    view! {
        <div class="empty-thread">
            <p>"Choose a conversation, or find someone to talk to."</p>
        </div>
    }
}

/// The left pane: who I am, sign-out, people search and the conversation list.
#[component]
fn Sidebar() -> impl IntoView {
    let store = expect_context::<ChatStore>();
    // A plain form, so that signing out works before the WASM has loaded too; once it has,
    // the request goes out from here and the page moves to the sign-in page. (Not an
    // `ActionForm`: that would bring the form decoder of `serde_qs` into the chat page's
    // bundle for a form without fields.)
    let stop_live = live::controller(live::Control::Stop);
    let on_sign_out = move |ev: SubmitEvent| {
        ev.prevent_default();
        stop_live();
        spawn_local(async {
            let location = window().location();
            let _ = if logout().await.is_ok() {
                location.assign("/login")
            } else {
                // Not signed out (the server could not be reached): the page starts afresh,
                // with its connection, rather than stay without one.
                location.reload()
            };
        });
    };

    // What was typed while the page was loading stays (see `typed_before_hydration`); it is
    // searched for once the page has come alive.
    let query = RwSignal::new(super::typed_before_hydration("people-search"));
    let results = RwSignal::new(None::<Result<Vec<UserView>, String>>);
    // Each keystroke bumps the generation; a search runs only if no newer keystroke came
    // within the debounce delay, and its answer is used only if it is still the latest.
    let generation = StoredValue::new(0u64);
    let search = move |value: String| {
        query.set(value.clone());
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        if value.trim().is_empty() {
            results.set(None);
            return;
        }
        set_timeout(
            move || {
                if generation.get_value() != mine {
                    return;
                }
                spawn_local(async move {
                    let found = search_users(value).await.map_err(|e| e.to_string());
                    if generation.get_value() == mine {
                        results.set(Some(found));
                    }
                });
            },
            std::time::Duration::from_millis(250),
        );
    };
    let on_search = move |ev| search(event_target_value(&ev));
    // A search typed before the page came alive runs once it has.
    Effect::new(move |_| {
        let typed = query.get_untracked();
        if !typed.trim().is_empty() {
            search(typed);
        }
    });

    // Whether to offer notifications: decided in the browser, after hydration.
    let can_notify = RwSignal::new(false);
    Effect::new(move |_| can_notify.set(notify::can_ask()));

    view! {
        <aside class="sidebar" aria-label="Conversations">
            <header class="sidebar-header">
                <div class="identity">
                    <span class="brand">"Parley"</span>
                    <span class="me">{move || store.me.get().map(|me| me.display_name)}</span>
                </div>
                <div class="account">
                    {move || {
                        can_notify
                            .get()
                            .then(|| {
                                view! {
                                    <button
                                        type="button"
                                        class="secondary"
                                        on:click=move |_| {
                                            notify::ask(move || can_notify.set(notify::can_ask()))
                                        }
                                    >
                                        "Enable notifications"
                                    </button>
                                }
                                    .into_any()
                            })
                    }}
                    <a href="/settings" rel="external">"Settings"</a>
                    <form method="post" action=Logout::PATH on:submit=on_sign_out>
                        <button type="submit" class="secondary">
                            "Log out"
                        </button>
                    </form>
                </div>
            </header>
            <div class="search">
                <label for="people-search">"Find people"</label>
                <input
                    id="people-search"
                    type="search"
                    autocomplete="off"
                    placeholder="Name or username"
                    prop:value=query
                    on:input=on_search
                />
            </div>
            {move || match results.get() {
                Some(found) => {
                    // Picking someone opens the conversation and puts the list back.
                    let done = move || {
                        generation.update_value(|g| *g += 1);
                        query.set(String::new());
                        results.set(None);
                    };
                    view! { <SearchResults found done/> }.into_any()
                }
                None => view! { <ConversationList/> }.into_any(),
            }}
        </aside>
    }
}

/// People matching the search box; `done` runs when one is picked.
#[component]
fn SearchResults(
    found: Result<Vec<UserView>, String>,
    done: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    match found {
        Err(error) => view! { <p class="list-note" role="alert">{error}</p> }.into_any(),
        Ok(people) if people.is_empty() => {
            view! { <p class="list-note">"Nobody matches."</p> }.into_any()
        }
        Ok(people) => view! {
            <ul class="people" aria-label="People">
                {people
                    .into_iter()
                    .map(|person| {
                        view! {
                            <li class="person">
                                <a
                                    href=format!("/chat/@{}", person.username)
                                    on:click=move |_| done()
                                >
                                    <span class="name">{person.display_name}</span>
                                    <span class="handle">{format!("@{}", person.username)}</span>
                                </a>
                            </li>
                        }
                            .into_any()
                    })
                    .collect_view()}
            </ul>
        }
        .into_any(),
    }
}

/// The user's conversations, latest activity first.
#[component]
fn ConversationList() -> impl IntoView {
    let store = expect_context::<ChatStore>();
    // Near the bottom, the next page of older conversations is fetched (one at a time).
    let loading_more = StoredValue::new(false);
    let on_scroll = move |ev: leptos::ev::Event| {
        let list = event_target::<leptos::web_sys::Element>(&ev);
        let near_bottom = list.scroll_top() + list.client_height() >= list.scroll_height() - 200;
        if !near_bottom || !store.conversations_more.get_untracked() || loading_more.get_value() {
            return;
        }
        let Some((after_ms, after_id)) = store.next_page_after() else {
            return;
        };
        loading_more.set_value(true);
        spawn_local(async move {
            if let Ok(page) = list_conversations(Some(after_ms), Some(after_id), None).await {
                store.append_conversations(page);
            }
            loading_more.set_value(false);
        });
    };
    view! {
        <Show
            when=move || store.conversations_loaded.get()
            fallback=|| view! { <p class="list-note">"Loading conversations…"</p> }
        >
            <Show
                when=move || !store.conversations.with(Vec::is_empty)
                fallback=|| {
                    view! {
                        <p class="list-note">
                            "No conversations yet. Find someone above to start one."
                        </p>
                    }
                }
            >
                <ul class="conversations" aria-label="Conversation list" on:scroll=on_scroll>
                    <For
                        each=move || store.conversations.get()
                        key=|c| (c.id, c.last_seq, c.unread, c.last_activity_at)
                        children=move |summary| view! { <ConversationItem summary/> }
                    />
                </ul>
            </Show>
        </Show>
    }
}

/// One row of the conversation list.
#[component]
fn ConversationItem(summary: ConversationSummary) -> impl IntoView {
    let store = expect_context::<ChatStore>();
    let id = summary.id;
    let is_active = move || store.active.with(|a| a.as_ref().map(|a| a.id) == Some(id));
    let preview = summary.last_message.as_ref().map(|last| {
        let mine = store
            .me
            .with_untracked(|me| me.as_ref().map(|me| me.id) == Some(last.sender_id));
        if mine {
            format!("You: {}", last.body)
        } else {
            last.body.clone()
        }
    });
    let unread = summary.unread;
    let has_unread = unread > 0;
    view! {
        <li class=if has_unread { "conversation unread" } else { "conversation" }>
            <a
                href=format!("/chat/@{}", summary.other.username)
                aria-current=move || is_active().then_some("page")
            >
                <span class="name">{summary.other.display_name.clone()}</span>
                <time datetime=time::machine(summary.last_activity_at)>
                    {time::short(summary.last_activity_at)}
                </time>
                <span class="preview">
                    {preview.unwrap_or_else(|| "No messages yet".to_owned())}
                </span>
                {has_unread
                    .then(|| {
                        view! {
                            <span class="badge" aria-label=format!("{unread} unread")>
                                {unread.to_string()}
                            </span>
                        }
                            .into_any()
                    })}
                {summary
                    .about
                    .as_ref()
                    .map(|card| {
                        view! { <span class="about">{format!("About: {}", card.title)}</span> }
                            .into_any()
                    })}
            </a>
        </li>
    }
}
