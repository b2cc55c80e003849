//! The bottom of a conversation: who is typing, and the message box with its files and the
//! card the marketplace left waiting for the first message ("Asking about…").

use leptos::{ev, prelude::*};

use super::super::{
    attach::{Draft, DraftState, Drafts},
    card::CardView,
    live::new_client_msg_id,
    store::ChatStore,
};
use crate::{
    api::conversations::drop_waiting_card,
    model::{ConversationId, MESSAGE_MAX_CHARS, MessageBody, TYPING_THROTTLE_MS, TYPING_TTL_MS},
    protocol::ClientFrame,
    ui::{
        time::{self, now_ms},
        typed_before_hydration,
    },
    uploads::format_size,
};

/// "Ann is typing…" for the open conversation.
#[component]
pub fn TypingIndicator() -> impl IntoView {
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

/// "Asking about: <title>" with the card, above the message box, until the next message takes
/// it or the user removes it.
#[component]
fn WaitingCard() -> impl IntoView {
    let store = expect_context::<ChatStore>();
    let remove = move |_| {
        let Some((id, _)) = store.waiting_card.get_untracked() else {
            return;
        };
        store.waiting_card.set(None);
        leptos::task::spawn_local(async move {
            // Still stored, it only waits: the next message goes without it all the same.
            if let Err(error) = drop_waiting_card(id).await {
                leptos::logging::warn!("could not remove the waiting card: {error}");
            }
        });
    };
    move || {
        store.waiting_card.get().map(|(_, card)| {
            let label = format!("Asking about: {}", card.title);
            let title = card.title.clone();
            view! {
                <div class="waiting-card" role="group" aria-label=label>
                    <p class="asking">"Asking about: " <strong>{title}</strong></p>
                    <CardView card/>
                    <button type="button" class="link remove-card" on:click=remove>
                        "Remove"
                    </button>
                </div>
            }
            .into_any()
        })
    }
}

/// The message box. Enter sends, Shift+Enter starts a new line.
#[component]
pub fn Composer() -> impl IntoView {
    let store = expect_context::<ChatStore>();
    let drafts = expect_context::<Drafts>();
    // What was typed while the page was loading stays (see `typed_before_hydration`).
    let text = RwSignal::new(typed_before_hydration("composer-input"));
    let error = RwSignal::new(None::<String>);
    // The conversation a "typing" signal was last sent for, and when.
    let typing_sent = StoredValue::new(None::<(ConversationId, f64)>);
    let conversation = move || store.active.with(|a| a.as_ref().map(|a| a.id));
    // What the length decides (the counter, the "too long" line) is drawn once the page is
    // alive: while it hydrates, the page must look as the server drew it, with an empty box,
    // whatever was typed meanwhile.
    let alive = RwSignal::new(false);
    Effect::new(move |_| alive.set(true));
    let length = Memo::new(move |_| {
        if alive.get() {
            text.with(|t| t.trim().chars().count())
        } else {
            0
        }
    });

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
                // The waiting card goes with this message, and waits no more.
                let with_card = store
                    .waiting_card
                    .with_untracked(|waiting| waiting.as_ref().is_some_and(|(at, _)| *at == id));
                if with_card {
                    store.waiting_card.set(None);
                }
                store.send_message(
                    id,
                    new_client_msg_id(),
                    body.as_str().to_owned(),
                    files,
                    with_card,
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
        add_files(super::super::attach::input_files(&ev));
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = ev;
            add_files(());
        }
    };
    let on_paste = move |ev: ev::ClipboardEvent| {
        #[cfg(feature = "hydrate")]
        {
            let files = super::super::attach::pasted_files(&ev);
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
            <WaitingCard/>
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
