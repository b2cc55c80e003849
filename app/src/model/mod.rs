//! Types shared by the browser and the server: ids, the views a client is shown ([`views`]),
//! and the validated newtypes every input goes through ([`input`]).
//!
//! Validation lives here, not on the server only, so that the browser can tell a user what is
//! wrong before a round trip and the server applies exactly the same rules when it matters.
//! Everything is re-exported here: `crate::model::Username`, `crate::model::MessageView`.

pub mod card;
pub mod input;
pub mod views;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use self::{card::*, input::*, views::*};

/// Longest message body, in characters (Unicode scalar values).
pub const MESSAGE_MAX_CHARS: usize = 4_000;
/// Messages in one history page.
pub const HISTORY_PAGE_SIZE: u64 = 50;
/// Most conversations one page of the conversation list holds, and how many a page holds
/// unless fewer are asked for.
pub const CONVERSATION_PAGE_SIZE: u64 = 200;
/// How long a "typing" signal lasts unless it is renewed, in milliseconds.
pub const TYPING_TTL_MS: u32 = 5_000;
/// A client sends at most one "typing" signal per conversation per this many milliseconds.
pub const TYPING_THROTTLE_MS: u32 = 2_000;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user account's id.
    UserId
);
id_type!(
    /// A conversation's id.
    ConversationId
);
id_type!(
    /// A stored message's id.
    MessageId
);
id_type!(
    /// An uploaded file's id.
    AttachmentId
);

/// Most files one message carries.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;
/// Longest file name kept, in characters.
pub const FILE_NAME_MAX_CHARS: usize = 255;
