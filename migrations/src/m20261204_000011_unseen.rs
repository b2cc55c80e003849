//! Where the `message.unseen` scan has got to: messages up to this id have been looked at, and
//! an event written for each that was still unseen.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventCursors::Table)
                    .if_not_exists()
                    // What the cursor is for (`message.unseen`).
                    .col(string_len(EventCursors::Name, 32).primary_key())
                    // The last message id looked at.
                    .col(big_integer(EventCursors::Position))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventCursors::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EventCursors {
    Table,
    Name,
    Position,
}
