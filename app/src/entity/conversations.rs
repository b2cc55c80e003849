//! The `conversations` table: one row per pair of users.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The smaller of the two user ids.
    pub user_low_id: i64,
    /// The larger of the two user ids.
    pub user_high_id: i64,
    pub last_seq: i64,
    // `last_message_id` is no longer read or written (the message at `last_seq` is the last
    // one); the column goes in a later release (migration 6 explains why not now).
    pub last_activity_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    /// The latest card sent in it, as JSON (`model::ContextCard`): what it is about.
    #[sea_orm(column_type = "Text", nullable)]
    pub context: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
