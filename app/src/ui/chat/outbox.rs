//! The offline outbox: messages this browser has sent that the server has not confirmed,
//! kept in the browser's storage so that a reload (or a crash of the tab) does not lose them.
//!
//! The list itself is [`super::store::ChatStore::pending`]; this module mirrors it into
//! `localStorage` under a key per user, and reads it back when the chat page starts. All the
//! user's tabs share that key, so a tab saving its list keeps what other tabs saved there,
//! minus what it knows is settled (stored or deleted). Resending is safe whatever happened
//! before: the server stores a message once per `client_msg_id`.

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
            .and_then(|json| serde_json::from_slice(json.as_bytes()).ok())
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = key(user);
        Vec::new()
    }
}

/// Saves `user`'s outbox: this tab's `pending`, plus what other tabs saved that is not
/// `settled` here (removing the entry when nothing is left). `settled` keeps only the ids the
/// saved outbox still held, the ones it is still needed for: the rest are gone from it, so
/// the list stays as short as the outbox instead of growing for the life of the page.
pub fn save(user: UserId, pending: &[Pending], settled: &mut Vec<String>) {
    let stored = load(user);
    settled.retain(|id| stored.iter().any(|item| &item.client_msg_id == id));
    let merged = merge(stored, pending, settled);
    #[cfg(feature = "hydrate")]
    if let Some(storage) = storage() {
        let key = key(user);
        // A full or disabled storage only costs the reload-proofing, never the message.
        let _ = if merged.is_empty() {
            storage.remove_item(&key)
        } else {
            match serde_json::to_string(&merged) {
                Ok(json) => storage.set_item(&key, &json),
                Err(_) => Ok(()),
            }
        };
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (key(user), merged);
}

/// What stays saved: the stored entries other tabs wrote (in their order) that this tab
/// neither holds nor knows to be settled, then this tab's own, in its order.
fn merge(stored: Vec<Pending>, pending: &[Pending], settled: &[String]) -> Vec<Pending> {
    let mut merged: Vec<Pending> = stored
        .into_iter()
        .filter(|item| !settled.contains(&item.client_msg_id))
        .filter(|item| {
            !pending
                .iter()
                .any(|p| p.client_msg_id == item.client_msg_id)
        })
        .collect();
    merged.extend(pending.iter().cloned());
    merged
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::ConversationId;

    fn item(id: &str) -> Pending {
        Pending {
            conversation_id: ConversationId(1),
            client_msg_id: id.to_owned(),
            body: id.to_owned(),
            attachments: Vec::new(),
            created_at: Utc::now(),
            failed: None,
            with_card: false,
        }
    }

    fn ids(items: &[Pending]) -> Vec<&str> {
        items.iter().map(|p| p.client_msg_id.as_str()).collect()
    }

    #[test]
    fn another_tabs_unsent_messages_are_kept() {
        let stored = vec![item("other-tab"), item("mine-1")];
        let settled = ["done".to_owned()];
        let merged = merge(stored, &[item("mine-1"), item("mine-2")], &settled);
        assert_eq!(ids(&merged), ["other-tab", "mine-1", "mine-2"]);
    }

    #[test]
    fn settled_messages_are_dropped_even_from_other_tabs() {
        let stored = vec![item("other-tab"), item("stored-meanwhile")];
        let settled = ["stored-meanwhile".to_owned()];
        assert_eq!(ids(&merge(stored, &[], &settled)), ["other-tab"]);
        assert!(merge(Vec::new(), &[], &[]).is_empty());
    }
}

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    leptos::prelude::window().local_storage().ok().flatten()
}
