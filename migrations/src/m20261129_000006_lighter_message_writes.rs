//! Less to write per message stored (docs/performance.md measures the difference):
//!
//! - `conversations.last_message_id` goes: it is derivable (the message at the conversation's
//!   `last_seq`, one probe of the unique index on `(conversation_id, seq)`), and keeping it
//!   meant a second update of the conversation's row after each insert;
//! - on PostgreSQL, the foreign key from `messages.sender_id` to `users` goes. It guaranteed
//!   nothing that is not already guaranteed, and was checked once per message stored, a fifth
//!   of the database's work per message at full load: every message's sender is one of its
//!   conversation's two people (the store checks membership in the same statement or
//!   transaction), and a conversation's people are foreign keys to `users`; deleting a user
//!   deletes their conversations (`ON DELETE CASCADE`) and with them every message in them,
//!   which includes every message the user sent. SQLite keeps the constraint: it can't drop one
//!   without rebuilding the table, and checking it there costs little.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

use crate::{
    m20261125_000001_create_accounts::Users,
    m20261125_000002_create_chat::{Conversations, Messages},
};

/// The name PostgreSQL gave the unnamed constraint of `m20261125_000002_create_chat`.
const SENDER_KEY: &str = "messages_sender_id_fkey";

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .drop_column(Conversations::LastMessageId)
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .drop_foreign_key(
                    ForeignKey::drop()
                        .name(SENDER_KEY)
                        .table(Messages::Table)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .create_foreign_key(
                    ForeignKey::create()
                        .name(SENDER_KEY)
                        .from(Messages::Table, Messages::SenderId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade)
                        .to_owned(),
                )
                .await?;
        }
        // Filled in again from the messages it names.
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(big_integer_null(Conversations::LastMessageId))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE conversations SET last_message_id = (SELECT m.id FROM messages AS m \
                 WHERE m.conversation_id = conversations.id AND m.seq = conversations.last_seq)",
            )
            .await?;
        Ok(())
    }
}
