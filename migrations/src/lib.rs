//! Parley's database schema, as an ordered list of sea-orm migrations.
//!
//! The server runs [`Migrator::up`] at start-up, so a fresh SQLite file or an empty PostgreSQL
//! database becomes a working Parley without a separate step. Migrations are frozen history:
//! once one has shipped it is never edited; a change to the schema is a new migration. They use
//! sea-query builders (never raw SQL) so that the same file runs on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_accounts;
mod m20261125_000002_create_chat;
mod m20261125_000003_create_attachments;
mod m20261125_000004_users_last_seen;
mod m20261125_000005_receipts;
mod m20261129_000006_lighter_message_writes;
mod m20261203_000007_attachments_by_uploader;
mod m20261204_000008_integration;
mod m20261204_000009_events;
mod m20261204_000010_webhooks;
mod m20261204_000011_unseen;
mod m20261206_000012_cards;

/// Every migration Parley has, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_accounts::Migration),
            Box::new(m20261125_000002_create_chat::Migration),
            Box::new(m20261125_000003_create_attachments::Migration),
            Box::new(m20261125_000004_users_last_seen::Migration),
            Box::new(m20261125_000005_receipts::Migration),
            Box::new(m20261129_000006_lighter_message_writes::Migration),
            Box::new(m20261203_000007_attachments_by_uploader::Migration),
            Box::new(m20261204_000008_integration::Migration),
            Box::new(m20261204_000009_events::Migration),
            Box::new(m20261204_000010_webhooks::Migration),
            Box::new(m20261204_000011_unseen::Migration),
            Box::new(m20261206_000012_cards::Migration),
        ]
    }
}
