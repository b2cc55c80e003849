//! The marketplace integration: each user's link to the marketplace's own account (its id,
//! e-mail and role there), the API keys the marketplace's backend calls Parley with, the
//! sign-in tokens it has handed over (each works once), and the kind of each message (a
//! person's, or a notice from the marketplace itself).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const EXTERNAL_ID_INDEX: &str = "idx_users_external_id";
const SSO_TOKENS_EXPIRY_INDEX: &str = "idx_sso_tokens_expires_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [
            // The marketplace's id for this person (`sub` of its sign-in tokens, the
            // `{external_id}` of the server API); `NULL` for Parley's own accounts.
            string_len_null(Users::ExternalId, 128),
            // As the marketplace last gave it: it vouches for it.
            string_len_null(Users::Email, 254),
            // `seller` or `customer`, as the marketplace last gave it.
            string_len_null(Users::Role, 16),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // Unique where set: both backends let several rows hold NULL in a unique index.
        manager
            .create_index(
                Index::create()
                    .name(EXTERNAL_ID_INDEX)
                    .table(Users::Table)
                    .col(Users::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        // `user` (a person wrote it) or `system` (the marketplace did: shown as a notice).
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(string_len(Messages::Kind, 16).default("user"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ApiKeys::Id))
                    // What the operator called it (`server keys create --name shop`).
                    .col(string_len_uniq(ApiKeys::Name, 64))
                    // SHA-256 of the key, in hex: the key itself is shown once and never stored.
                    // A key is 256 random bits, so a fast hash is enough (nothing to guess).
                    .col(string_len_uniq(ApiKeys::KeyHash, 64))
                    // The key's first characters, so that `server keys list` can tell keys apart.
                    .col(string_len(ApiKeys::KeyPrefix, 16))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SsoTokens::Table)
                    .if_not_exists()
                    // The token's `jti`: a second use of it is refused.
                    .col(string_len(SsoTokens::Jti, 128).primary_key())
                    // The token's `exp`: the row is forgotten after it.
                    .col(timestamp_with_time_zone(SsoTokens::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(SSO_TOKENS_EXPIRY_INDEX)
                    .table(SsoTokens::Table)
                    .col(SsoTokens::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SsoTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .drop_column(Messages::Kind)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(EXTERNAL_ID_INDEX)
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Users::Role, Users::Email, Users::ExternalId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    ExternalId,
    Email,
    Role,
}

#[derive(DeriveIden)]
enum SsoTokens {
    Table,
    Jti,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Kind,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    KeyHash,
    KeyPrefix,
    CreatedAt,
    RevokedAt,
}
