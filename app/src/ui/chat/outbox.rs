//! The offline outbox: messages this browser has sent that the server has not confirmed,
//! kept in the browser's storage so that a reload (or a crash of the tab) does not lose them.
//!
//! The list itself is [`super::store::ChatStore::pending`]; this module only mirrors it into
//! `localStorage` under a key per user, and reads it back when the chat page starts. Resending
//! is safe whatever happened before: the server stores a message once per `client_msg_id`.

use super::thread::Pending;
use crate::model::UserId;

/// The `localStorage` key of a user's outbox.
fn key(user: UserId) -> String {
    format!("parley.outbox.{user}")
}

/// The outbox saved for `user`, oldest first; empty when there is none or it can't be read.
pub fn load(user: UserId) -> Vec<Pending> {
    #[cfg(feature = "hydrate")]
    {
        storage()
            .and_then(|storage| storage.get_item(&key(user)).ok().flatten())
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = key(user);
        Vec::new()
    }
}

/// Saves `user`'s outbox (removing the entry when it is empty).
pub fn save(user: UserId, pending: &[Pending]) {
    #[cfg(feature = "hydrate")]
    if let Some(storage) = storage() {
        let key = key(user);
        // A full or disabled storage only costs the reload-proofing, never the message.
        let _ = if pending.is_empty() {
            storage.remove_item(&key)
        } else {
            match serde_json::to_string(pending) {
                Ok(json) => storage.set_item(&key, &json),
                Err(_) => Ok(()),
            }
        };
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (key(user), pending);
}

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    leptos::prelude::window().local_storage().ok().flatten()
}
