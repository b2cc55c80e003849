//! The `events` table: the marketplace's event log (`integration::events`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// The log's order.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// `evt_…`, the `webhook-id` of its deliveries.
    #[sea_orm(unique)]
    pub event_id: String,
    /// `message.created`, …
    pub kind: String,
    pub conversation_id: Option<i64>,
    /// The event's `data`, as JSON text.
    #[sea_orm(column_type = "Text")]
    pub data: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
