//! `Idempotency-Key`s of the server API, turned into the `client_msg_id` every message has.
//!
//! A message is stored once per (sender, `client_msg_id`), the rule that makes a browser's
//! retries safe; the API gets the same guarantee by deriving the id from the key. The key is
//! hashed, so any key the marketplace uses (a UUID, an order number and an event name…) fits,
//! and prefixed with `api-`, so it can never be an id a browser chose.

use sha2::{Digest, Sha256};

use crate::model::ClientMsgId;

/// Longest key, as the IETF draft on the header suggests servers accept.
const KEY_MAX_CHARS: usize = 255;
/// Hex digits of the hash kept: 60 characters with the prefix, within `ClientMsgId`'s 64.
const HASH_CHARS: usize = 56;

/// The message id for a request with this `Idempotency-Key`, or a fresh one without.
///
/// # Errors
/// A sentence saying what is wrong with the key (1 to 255 visible ASCII characters), or that
/// the system has no randomness.
pub fn message_id(key: Option<&str>) -> Result<ClientMsgId, String> {
    let hashed = match key {
        Some(key) => {
            let visible = key.bytes().all(|b| b.is_ascii_graphic());
            if !(1..=KEY_MAX_CHARS).contains(&key.len()) || !visible {
                return Err(format!(
                    "An Idempotency-Key is 1 to {KEY_MAX_CHARS} visible ASCII characters."
                ));
            }
            hex::encode(Sha256::digest(key.as_bytes()))
        }
        None => {
            let mut random = [0_u8; HASH_CHARS / 2];
            getrandom::fill(&mut random).map_err(|error| error.to_string())?;
            hex::encode(random)
        }
    };
    ClientMsgId::parse(&format!("api-{}", &hashed[..HASH_CHARS]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_always_names_the_same_message() {
        let first = message_id(Some("order-1042-shipped")).unwrap();
        assert_eq!(first, message_id(Some("order-1042-shipped")).unwrap());
        assert_ne!(first, message_id(Some("order-1042-delivered")).unwrap());
        assert!(first.as_str().starts_with("api-"));
        assert_eq!(first.as_str().len(), 60);
        assert_ne!(message_id(None).unwrap(), message_id(None).unwrap());
        for bad in ["", "with space", "ünïcode", &"k".repeat(256)] {
            assert!(message_id(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
