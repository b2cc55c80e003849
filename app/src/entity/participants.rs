//! The `participants` table: who takes part in a conversation, and how far it has reached
//! them (delivered to a device) and how far they have read.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "participants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub conversation_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    pub last_read_seq: i64,
    /// A device of this participant has received every message up to here (never behind
    /// `last_read_seq`).
    pub last_delivered_seq: i64,
    /// A card from the marketplace (the sign-in that opened the conversation) that waits
    /// above this participant's composer and goes with their next message, as JSON
    /// (`model::ContextCard`).
    #[sea_orm(column_type = "Text", nullable)]
    pub waiting_card: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
