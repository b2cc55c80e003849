//! Product and order cards: the card a message was sent with (frozen, as JSON), the latest
//! card of each conversation (what it is "about"), and the card waiting above a person's
//! composer until their next message takes it.
//!
//! Cards are small JSON documents that are written once and read whole, never queried by
//! their fields, so a text column holds them the same way on PostgreSQL and SQLite.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(text_null(Messages::Card))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(text_null(Conversations::Context))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Participants::Table)
                    .add_column(text_null(Participants::WaitingCard))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Participants::Table)
                    .drop_column(Participants::WaitingCard)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .drop_column(Conversations::Context)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .drop_column(Messages::Card)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Card,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Context,
}

#[derive(DeriveIden)]
enum Participants {
    Table,
    WaitingCard,
}
