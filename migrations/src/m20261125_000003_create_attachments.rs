//! Files attached to messages: images and documents, stored in the object store under keys the
//! server chose; this table holds what is known about each.

use sea_orm_migration::{prelude::*, schema::*};

use crate::{
    m20261125_000001_create_accounts::Users,
    m20261125_000002_create_chat::{Conversations, Messages},
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Attachments::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Attachments::Id))
                    // Uploaded into this conversation by this user; only its participants may
                    // ever read it.
                    .col(big_integer(Attachments::ConversationId))
                    .col(big_integer(Attachments::UploaderId))
                    // Null until the message it belongs to is sent; unsent uploads are deleted
                    // after a while.
                    .col(big_integer_null(Attachments::MessageId))
                    // Its place among the message's files (0 first), set with `message_id`.
                    .col(small_integer_null(Attachments::Position))
                    // Object-store keys: random, never derived from what the user sent.
                    .col(string_len(Attachments::StorageKey, 64).unique_key())
                    .col(string_len_null(Attachments::ThumbnailKey, 64))
                    // The sanitised name, for display and downloads only.
                    .col(string_len(Attachments::FileName, 255))
                    // Decided from the file's bytes, never from its name or the client.
                    .col(string_len(Attachments::ContentType, 100))
                    .col(big_integer(Attachments::SizeBytes))
                    .col(integer_null(Attachments::Width))
                    .col(integer_null(Attachments::Height))
                    .col(timestamp_with_time_zone(Attachments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Attachments::Table, Attachments::ConversationId)
                            .to(Conversations::Table, Conversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Attachments::Table, Attachments::UploaderId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Attachments::Table, Attachments::MessageId)
                            .to(Messages::Table, Messages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A message's attachments, for history pages and acks.
        manager
            .create_index(
                Index::create()
                    .name("idx_attachments_message")
                    .table(Attachments::Table)
                    .col(Attachments::MessageId)
                    .to_owned(),
            )
            .await?;
        // The clean-up's scan of unsent uploads by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_attachments_created_at")
                    .table(Attachments::Table)
                    .col(Attachments::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Attachments::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    Id,
    ConversationId,
    UploaderId,
    MessageId,
    Position,
    StorageKey,
    ThumbnailKey,
    FileName,
    ContentType,
    SizeBytes,
    Width,
    Height,
    CreatedAt,
}
