//! The `webhook_endpoints` table: where the marketplace wants its events posted.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub url: String,
    /// `whsec_…`.
    pub secret: String,
    /// The secret before the last rotation, signed with too until `previous_until`.
    pub previous_secret: Option<String>,
    pub previous_until: Option<DateTimeUtc>,
    /// Comma-separated event types, or `*`.
    pub events: String,
    /// Every event up to this one has its delivery row, if it is for this endpoint.
    pub fanned_out_seq: i64,
    pub created_at: DateTimeUtc,
    /// Set when the receiver answered 410 Gone.
    pub disabled_at: Option<DateTimeUtc>,
}

/// Written by hand to keep the secrets out of logs.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("webhook_endpoints::Model")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
