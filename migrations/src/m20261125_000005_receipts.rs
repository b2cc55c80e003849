//! Delivery receipts and the choice to share read receipts: how far each participant's devices
//! have received a conversation, and whether a user lets others see how far they have read.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Participants::Table)
                    .add_column(big_integer(Participants::LastDeliveredSeq).default(0))
                    .to_owned(),
            )
            .await?;
        // What someone has read has reached them.
        manager
            .exec_stmt(
                Query::update()
                    .table(Participants::Table)
                    .value(
                        Participants::LastDeliveredSeq,
                        Expr::col(Participants::LastReadSeq),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(boolean(Users::ReadReceipts).default(true))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::ReadReceipts)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Participants::Table)
                    .drop_column(Participants::LastDeliveredSeq)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Participants {
    Table,
    LastReadSeq,
    LastDeliveredSeq,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    ReadReceipts,
}
