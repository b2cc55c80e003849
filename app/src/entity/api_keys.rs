//! The `api_keys` table: the keys a marketplace's backend calls the server API with.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    /// SHA-256 of the key, in lower-case hex; the key itself is never stored.
    #[sea_orm(unique)]
    pub key_hash: String,
    /// The key's first characters, to tell keys apart in a listing.
    pub key_prefix: String,
    pub created_at: DateTimeUtc,
    /// When it was revoked; `None` while it works.
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
