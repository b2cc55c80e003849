//! sea-orm entities, one per table created by the `migrations` crate.
//!
//! They are the domain modules' private view of the database: nothing outside `accounts`,
//! `attachments`, `conversations`, `messages` and the session store reads them, and no entity is ever sent to
//! a client (the explicit views in [`crate::model`] are).

pub mod attachments;
pub mod conversations;
pub mod messages;
pub mod participants;
pub mod sessions;
pub mod users;
