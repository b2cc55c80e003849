//! The marketplace's event log: every event (a conversation made, a message sent or seen) is
//! written to `events` in the same transaction as what it reports, and read back by cursor.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const EVENTS_CREATED_INDEX: &str = "idx_events_created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    // The order of the log: `after=<seq>` reads on from here.
                    .col(big_pk_auto(Events::Seq))
                    // `evt_…`: the `webhook-id` every delivery of it carries.
                    .col(string_len_uniq(Events::EventId, 40))
                    .col(string_len(Events::Kind, 32))
                    .col(big_integer_null(Events::ConversationId))
                    // The event's `data`, as JSON text.
                    .col(text(Events::Data))
                    .col(timestamp_with_time_zone(Events::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(EVENTS_CREATED_INDEX)
                    .table(Events::Table)
                    .col(Events::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Seq,
    EventId,
    Kind,
    ConversationId,
    Data,
    CreatedAt,
}
