//! Browser notifications for new messages while the tab is hidden, once the user has allowed
//! them: one per conversation (a newer message replaces the older one's notification), closed
//! when the conversation is read, and a click opens the conversation.
//!
//! Only the browser build shows notifications; elsewhere every function does nothing.

use crate::model::{ConversationId, MessageView};

/// Whether the page is out of sight (another tab, a minimised window): what makes a new
/// message worth a notification, and what keeps it unread.
pub fn page_hidden() -> bool {
    #[cfg(feature = "hydrate")]
    {
        leptos::prelude::document().hidden()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

/// Whether the user has yet to be asked (the "Enable notifications" button shows then).
pub fn can_ask() -> bool {
    #[cfg(feature = "hydrate")]
    {
        browser::supported()
            && web_sys::Notification::permission() == web_sys::NotificationPermission::Default
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

/// Asks the browser for permission; `answered` runs once the user has chosen.
pub fn ask(answered: impl FnOnce() + 'static) {
    #[cfg(feature = "hydrate")]
    browser::ask(answered);
    #[cfg(not(feature = "hydrate"))]
    let _ = answered;
}

/// Shows (or replaces) the notification for the message's conversation.
pub fn show(message: &MessageView, preview: &str) {
    #[cfg(feature = "hydrate")]
    browser::show(message, preview);
    #[cfg(not(feature = "hydrate"))]
    let _ = (message, preview);
}

/// Closes the conversation's notification, if there is one (it has been read).
pub fn clear(conversation: ConversationId) {
    #[cfg(feature = "hydrate")]
    browser::clear(conversation);
    #[cfg(not(feature = "hydrate"))]
    let _ = conversation;
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::RefCell;

    use wasm_bindgen::{JsCast, closure::Closure};
    use web_sys::{Notification, NotificationOptions, NotificationPermission};

    use crate::model::{ConversationId, MessageView};

    /// A notification on screen, and its click handler, which lives as long as it does.
    struct Shown {
        notification: Notification,
        _on_click: Closure<dyn FnMut()>,
    }

    impl Drop for Shown {
        fn drop(&mut self) {
            self.notification.set_onclick(None);
            self.notification.close();
        }
    }

    thread_local! {
        /// The notification shown for each conversation (the browser is single-threaded).
        /// A list, not a map: there are few, and each map type adds its own code to the
        /// bundle.
        static SHOWN: RefCell<Vec<(ConversationId, Shown)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn supported() -> bool {
        js_sys::Reflect::has(&leptos::prelude::window(), &"Notification".into()).unwrap_or(false)
    }

    pub(super) fn ask(answered: impl FnOnce() + 'static) {
        let Ok(promise) = Notification::request_permission() else {
            return;
        };
        leptos::task::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
            answered();
        });
    }

    pub(super) fn show(message: &MessageView, preview: &str) {
        if !supported() || Notification::permission() != NotificationPermission::Granted {
            return;
        }
        let options = NotificationOptions::new();
        options.set_body(preview);
        // The same tag replaces the conversation's previous notification.
        options.set_tag(&format!("parley-conversation-{}", message.conversation_id));
        let Ok(notification) =
            Notification::new_with_options(&message.sender.display_name, &options)
        else {
            return;
        };
        let url = format!("/chat/@{}", message.sender.username);
        let on_click = Closure::<dyn FnMut()>::new(move || {
            let window = leptos::prelude::window();
            let _ = window.focus();
            let _ = window.location().assign(&url);
        });
        notification.set_onclick(Some(on_click.as_ref().unchecked_ref()));
        let shown = Shown {
            notification,
            _on_click: on_click,
        };
        // Replacing the conversation's previous one drops (and closes) it.
        clear(message.conversation_id);
        SHOWN.with(|all| all.borrow_mut().push((message.conversation_id, shown)));
    }

    pub(super) fn clear(conversation: ConversationId) {
        // Dropping it closes it.
        SHOWN.with(|all| all.borrow_mut().retain(|(id, _)| *id != conversation));
    }
}
