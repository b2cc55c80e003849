//! sea-orm entities, one per table created by the `migrations` crate.
//!
//! They are the domain modules' private view of the database: nothing outside `accounts`,
//! `attachments`, `conversations`, `integration`, `messages` and the session store reads them, and no entity is ever sent to
//! a client (the explicit views in [`crate::model`] are).

pub mod api_keys;
pub mod attachments;
pub mod conversations;
pub mod event_cursors;
pub mod events;
pub mod messages;
pub mod participants;
pub mod sessions;
pub mod sso_tokens;
pub mod users;
pub mod webhook_deliveries;
pub mod webhook_endpoints;

use sea_orm::{DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait};

/// Begins a transaction that will write. On SQLite it takes the database's write lock at
/// `BEGIN` (`BEGIN IMMEDIATE`), waiting for it as long as the busy timeout allows: a deferred
/// transaction that reads first and writes later can't wait for it, and fails with "database
/// is locked" whenever another connection wrote in between. PostgreSQL ignores the mode.
///
/// # Errors
/// The database could not begin the transaction (or the lock was not free in time).
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database};

    use super::*;

    /// Two writers on one SQLite file, each reading before it writes (as the message writer
    /// and a read receipt do). Begun deferred, the second to write fails at once with
    /// "database is locked": waiting could deadlock, so SQLite does not wait. Begun with
    /// [`begin_write`], the second waits at `BEGIN` until the first commits, and both get
    /// through.
    #[tokio::test]
    async fn write_transactions_wait_for_each_other_on_sqlite() {
        let path = std::env::temp_dir().join(format!(
            "parley-begin-write-{}-{}.db",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        // Several connections, as the server's pool has.
        let mut options =
            sea_orm::ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
        options.max_connections(4).min_connections(2);
        let db = Database::connect(options).await.unwrap();
        db.execute_unprepared("CREATE TABLE counter (n INTEGER NOT NULL)")
            .await
            .unwrap();
        db.execute_unprepared("INSERT INTO counter (n) VALUES (0)")
            .await
            .unwrap();
        let read = "SELECT n FROM counter";

        let first = db.begin().await.unwrap();
        let second = db.begin().await.unwrap();
        first.execute_unprepared(read).await.unwrap();
        second.execute_unprepared(read).await.unwrap();
        first
            .execute_unprepared("UPDATE counter SET n = n + 10")
            .await
            .unwrap();
        let refused = second
            .execute_unprepared("UPDATE counter SET n = n + 1")
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("locked"), "{refused}");
        second.rollback().await.unwrap();
        first.commit().await.unwrap();

        let first = begin_write(&db).await.unwrap();
        first.execute_unprepared(read).await.unwrap();
        let second = tokio::spawn({
            let db = db.clone();
            async move {
                let second = begin_write(&db).await?;
                second.execute_unprepared(read).await?;
                second
                    .execute_unprepared("UPDATE counter SET n = n + 1")
                    .await?;
                second.commit().await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        first
            .execute_unprepared("UPDATE counter SET n = n + 10")
            .await
            .unwrap();
        first.commit().await.unwrap();
        second.await.unwrap().unwrap();
        let n: i64 = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                read,
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index(0)
            .unwrap();
        assert_eq!(n, 21);
        db.close().await.unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
