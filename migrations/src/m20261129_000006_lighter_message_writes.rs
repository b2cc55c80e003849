//! Less to check per message stored (docs/performance.md measures the difference): on
//! PostgreSQL, the foreign key from `messages.sender_id` to `users` goes.
//!
//! It guaranteed nothing that is not already guaranteed, and was checked once per message
//! stored, a fifth of the database's work per message at full load: every message's sender is
//! one of its conversation's two people (the store checks membership in the same statement or
//! transaction), and a conversation's people are foreign keys to `users`; deleting a user
//! deletes their conversations (`ON DELETE CASCADE`) and with them every message in them, which
//! includes every message the user sent. SQLite keeps the constraint: it can't drop one without
//! rebuilding the table, and checking it there costs little.
//!
//! The same release stops writing `conversations.last_message_id` (the message at the
//! conversation's `last_seq` is the last one). The column stays until a later release, so that
//! instances of the previous version, which still read it, keep working during a rollout
//! (docs/deployment.md).

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

use crate::{m20261125_000001_create_accounts::Users, m20261125_000002_create_chat::Messages};

/// The name PostgreSQL gave the unnamed constraint of `m20261125_000002_create_chat`.
const SENDER_KEY: &str = "messages_sender_id_fkey";

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .drop_foreign_key(
                ForeignKey::drop()
                    .name(SENDER_KEY)
                    .table(Messages::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .create_foreign_key(
                ForeignKey::create()
                    .name(SENDER_KEY)
                    .from(Messages::Table, Messages::SenderId)
                    .to(Users::Table, Users::Id)
                    .on_delete(ForeignKeyAction::Cascade)
                    .to_owned(),
            )
            .await
    }
}
