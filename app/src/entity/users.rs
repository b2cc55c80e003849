//! The `users` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Lower case; see `Username::parse`.
    #[sea_orm(unique)]
    pub username: String,
    pub display_name: String,
    /// `display_name` in lower case, for search.
    pub display_name_folded: String,
    pub password_hash: String,
    pub created_at: DateTimeUtc,
    /// When the user's last connection ended; `None` before the first one.
    pub last_seen_at: Option<DateTimeUtc>,
    /// Whether the user shares read receipts (and so sees other people's).
    pub read_receipts: bool,
    /// The marketplace's id for this person; `None` for Parley's own accounts.
    #[sea_orm(unique)]
    pub external_id: Option<String>,
    /// As the marketplace last gave it.
    pub email: Option<String>,
    /// `seller` or `customer`, as the marketplace last gave it.
    pub role: Option<String>,
}

/// Written by hand so that the password hash can never end up in a log line.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("users::Model")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("external_id", &self.external_id)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
