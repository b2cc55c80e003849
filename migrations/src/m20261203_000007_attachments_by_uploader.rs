//! Each person's uploads by size: what their storage quota adds up (the sum is read from the
//! index alone, however many files they have sent).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const INDEX: &str = "idx_attachments_uploader_size";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Attachments::Table)
                    .col(Attachments::UploaderId)
                    .col(Attachments::SizeBytes)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(Attachments::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    UploaderId,
    SizeBytes,
}
