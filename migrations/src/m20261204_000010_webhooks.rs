//! The marketplace's webhooks: each endpoint gets a delivery row per event of the log it takes,
//! retried until it is delivered or given up on.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const DUE_INDEX: &str = "idx_webhook_deliveries_due";
const PER_EVENT_INDEX: &str = "idx_webhook_deliveries_endpoint_event";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .if_not_exists()
                    .col(big_pk_auto(WebhookEndpoints::Id))
                    .col(string_len_uniq(WebhookEndpoints::Url, 2048))
                    // `whsec_…`: what deliveries are signed with. Kept as it is (it must be,
                    // to sign); shown once, when the endpoint is added.
                    .col(string_len(WebhookEndpoints::Secret, 64))
                    // After a rotation, the secret before, still signed with (a second
                    // signature) until `previous_until`, so receivers can switch at leisure.
                    .col(string_len_null(WebhookEndpoints::PreviousSecret, 64))
                    .col(timestamp_with_time_zone_null(
                        WebhookEndpoints::PreviousUntil,
                    ))
                    // Comma-separated event types, or `*` for every one.
                    .col(string_len(WebhookEndpoints::Events, 256))
                    // Every event after this one has its delivery row (or is not for it).
                    .col(big_integer(WebhookEndpoints::FannedOutSeq))
                    .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                    // Set when the receiver answered 410 Gone: nothing more is sent.
                    .col(timestamp_with_time_zone_null(WebhookEndpoints::DisabledAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(big_pk_auto(WebhookDeliveries::Id))
                    .col(big_integer(WebhookDeliveries::EndpointId))
                    .col(big_integer(WebhookDeliveries::EventSeq))
                    // `pending`, `delivered` or `failed`.
                    .col(string_len(WebhookDeliveries::Status, 16))
                    .col(integer(WebhookDeliveries::Attempts))
                    // When it is next due. An attempt in flight pushes it ahead by a lease,
                    // so a worker that dies mid-flight leaves it to the next one.
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(integer_null(WebhookDeliveries::LastStatus))
                    .col(string_len_null(WebhookDeliveries::LastError, 512))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::DeliveredAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                            .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EventSeq)
                            .to(Events::Table, Events::Seq)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(PER_EVENT_INDEX)
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::EventSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(DUE_INDEX)
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::Status)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Seq,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    Url,
    Secret,
    PreviousSecret,
    PreviousUntil,
    Events,
    FannedOutSeq,
    CreatedAt,
    DisabledAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    EventSeq,
    Status,
    Attempts,
    NextAttemptAt,
    LastStatus,
    LastError,
    DeliveredAt,
}
