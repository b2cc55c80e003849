//! Accounts and the sessions that keep them signed in.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Users::Id))
                    // Always stored in lower case: the application folds case before it writes or
                    // looks up a username, so this plain unique index makes usernames unique
                    // case-insensitively on both SQLite and PostgreSQL.
                    .col(string_len_uniq(Users::Username, 32))
                    .col(string_len(Users::DisplayName, 64))
                    // The display name in lower case (full Unicode folding, done by the
                    // application): people search compares against it, because SQL `lower()`
                    // folds only ASCII on SQLite. Unbounded: folding can lengthen a name
                    // ("İ" becomes two characters).
                    .col(string(Users::DisplayNameFolded))
                    // A PHC string (`$argon2id$v=19$m=…`): algorithm, parameters and salt travel
                    // with the hash, so parameters can be raised later without a migration.
                    .col(string(Users::PasswordHash))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    // tower-sessions' 128-bit random id, base64url-encoded.
                    .col(string_len(Sessions::Id, 64).primary_key())
                    // The session's key/value data as JSON text (it holds the signed-in user's id
                    // and a hash that ties the session to the password it was opened with).
                    .col(text(Sessions::Data))
                    // Unix seconds. An integer compares the same way on every backend, which the
                    // expired-session sweep relies on.
                    .col(big_integer(Sessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_expires_at")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub(crate) enum Users {
    Table,
    Id,
    Username,
    DisplayName,
    DisplayNameFolded,
    PasswordHash,
    CreatedAt,
    /// Added by `m20261125_000004_users_last_seen`.
    LastSeenAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Data,
    ExpiresAt,
}
