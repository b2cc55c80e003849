//! Conversations between two users, who takes part in them, and their messages.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_create_accounts::Users;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Conversations::Id))
                    // The pair of users, smaller id first. The unique index over the ordered pair
                    // is what guarantees exactly one conversation per pair of users, even when
                    // both open it at the same moment.
                    .col(big_integer(Conversations::UserLowId))
                    .col(big_integer(Conversations::UserHighId))
                    // The sequence number of the latest message (0 before the first one). Each
                    // new message takes `last_seq + 1` inside its insert transaction, so sequence
                    // numbers are gapless per conversation and clients resume from the last one
                    // they saw.
                    .col(big_integer(Conversations::LastSeq).default(0))
                    // Denormalised for the conversation list: its order (latest activity first)
                    // and its preview, without a per-row query.
                    .col(big_integer_null(Conversations::LastMessageId))
                    .col(timestamp_with_time_zone(Conversations::LastActivityAt))
                    .col(timestamp_with_time_zone(Conversations::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Conversations::Table, Conversations::UserLowId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Conversations::Table, Conversations::UserHighId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_conversations_pair")
                    .table(Conversations::Table)
                    .col(Conversations::UserLowId)
                    .col(Conversations::UserHighId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The pair index serves lookups by the smaller id; this one serves the larger.
        manager
            .create_index(
                Index::create()
                    .name("idx_conversations_user_high")
                    .table(Conversations::Table)
                    .col(Conversations::UserHighId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Participants::Table)
                    .if_not_exists()
                    .col(big_integer(Participants::ConversationId))
                    .col(big_integer(Participants::UserId))
                    // Highest sequence number this user has seen; unread = last_seq - this.
                    .col(big_integer(Participants::LastReadSeq).default(0))
                    .primary_key(
                        Index::create()
                            .col(Participants::ConversationId)
                            .col(Participants::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Participants::Table, Participants::ConversationId)
                            .to(Conversations::Table, Conversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Participants::Table, Participants::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // "My conversations" starts from the user's side of this table.
        manager
            .create_index(
                Index::create()
                    .name("idx_participants_user")
                    .table(Participants::Table)
                    .col(Participants::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Messages::Id))
                    .col(big_integer(Messages::ConversationId))
                    .col(big_integer(Messages::Seq))
                    .col(big_integer(Messages::SenderId))
                    // Chosen by the sending client; a retried send carries the same id and finds
                    // the message already stored instead of storing it twice.
                    .col(string_len(Messages::ClientMsgId, 64))
                    .col(text(Messages::Body))
                    .col(timestamp_with_time_zone(Messages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::ConversationId)
                            .to(Conversations::Table, Conversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::SenderId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // History pages and catch-up are ranges of this index; it also refuses a second message
        // with the same sequence number should two writers ever race.
        manager
            .create_index(
                Index::create()
                    .name("idx_messages_conversation_seq")
                    .table(Messages::Table)
                    .col(Messages::ConversationId)
                    .col(Messages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The idempotency key of a send.
        manager
            .create_index(
                Index::create()
                    .name("idx_messages_sender_client_msg_id")
                    .table(Messages::Table)
                    .col(Messages::SenderId)
                    .col(Messages::ClientMsgId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Messages::Table.into_iden(),
            Participants::Table.into_iden(),
            Conversations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub(crate) enum Conversations {
    Table,
    Id,
    UserLowId,
    UserHighId,
    LastSeq,
    LastMessageId,
    LastActivityAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Participants {
    Table,
    ConversationId,
    UserId,
    LastReadSeq,
}

#[derive(DeriveIden)]
pub(crate) enum Messages {
    Table,
    Id,
    ConversationId,
    Seq,
    SenderId,
    ClientMsgId,
    Body,
    CreatedAt,
}
