//! [`DbSessionStore`]: tower-sessions' store, in Parley's own database through sea-orm.
//!
//! Sessions live in the `sessions` table so that they survive a restart and are shared by
//! every server instance. (tower-sessions' ready-made SQL stores are tied to a different sqlx
//! version than sea-orm's, and two copies of SQLite can't be linked into one binary.)
//!
//! Every request renews its session (`with_always_save`), but a write per request would cost
//! a database commit, and so a disk sync, on every page, API call and socket: most of a
//! history page's time. So [`SessionStore::save`] writes only when the data changed or the
//! stored expiry is more than [`RENEW_AFTER_SECONDS`] old; otherwise its `UPDATE` matches no
//! row and commits nothing. A session therefore ends at most that much earlier than exactly
//! `PARLEY_SESSION_IDLE_DAYS` after its last use.

use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    SqlErr, sea_query::Expr,
};
use time::OffsetDateTime;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store,
};

use app::entity::sessions;

/// How stale a session's stored expiry may get before a request writes the renewed one.
pub const RENEW_AFTER_SECONDS: i64 = 5 * 60;

/// Sessions in the database.
#[derive(Debug, Clone)]
pub struct DbSessionStore {
    db: DatabaseConnection,
}

impl DbSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn backend(error: DbErr) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

/// The row of a session: its id, its data as JSON, and when it expires (Unix seconds).
fn encode(record: &Record) -> Result<sessions::Model, session_store::Error> {
    let data = serde_json::to_string(&record.data)
        .map_err(|error| session_store::Error::Encode(error.to_string()))?;
    Ok(sessions::Model {
        id: record.id.to_string(),
        data,
        expires_at: record.expiry_date.unix_timestamp(),
    })
}

#[async_trait]
impl SessionStore for DbSessionStore {
    /// Inserts a new session, drawing a new id in the (astronomically unlikely) event that the
    /// random one is taken: an existing session is never overwritten by a new one.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let row = encode(record)?;
            let new = sessions::ActiveModel {
                id: Set(row.id),
                data: Set(row.data),
                expires_at: Set(row.expires_at),
            };
            match sessions::Entity::insert(new).exec(&self.db).await {
                Ok(_) => return Ok(()),
                Err(error)
                    if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
                {
                    record.id = Id::default();
                }
                Err(error) => return Err(backend(error)),
            }
        }
    }

    /// Updates a session that exists, when it changed or its expiry is due for renewal (see
    /// the module's documentation). Never inserts: tower-sessions calls `create` for new
    /// sessions (and for new ids), so a session missing here was deleted while the request
    /// was being answered (a sign-out in another tab, a password change), and must stay gone.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let row = encode(record)?;
        sessions::Entity::update_many()
            .col_expr(sessions::Column::Data, Expr::value(row.data.clone()))
            .col_expr(sessions::Column::ExpiresAt, Expr::value(row.expires_at))
            .filter(sessions::Column::Id.eq(row.id))
            .filter(
                Condition::any()
                    .add(sessions::Column::Data.ne(row.data))
                    .add(sessions::Column::ExpiresAt.lt(row.expires_at - RENEW_AFTER_SECONDS)),
            )
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// An expired session is treated as absent even before the sweep deletes it.
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let Some(found) = sessions::Entity::find_by_id(id.to_string())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let data = serde_json::from_str(&found.data)
            .map_err(|error| session_store::Error::Decode(error.to_string()))?;
        let expiry_date = OffsetDateTime::from_unix_timestamp(found.expires_at)
            .map_err(|error| session_store::Error::Decode(error.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sessions::Entity::delete_by_id(id.to_string())
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

impl DbSessionStore {
    /// Whether the session with this id exists and has not expired.
    ///
    /// # Errors
    /// The database failed.
    pub async fn is_live(&self, id: &str) -> Result<bool, DbErr> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Ok(sessions::Entity::find_by_id(id.to_owned())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?
            .is_some())
    }

    /// Deletes every expired session; returns how many there were.
    ///
    /// # Errors
    /// The database failed.
    pub async fn delete_expired(&self) -> Result<u64, DbErr> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let result = sessions::Entity::delete_many()
            .filter(sessions::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Runs [`Self::delete_expired`] every `period`, forever (the server aborts it at shutdown).
    pub async fn sweep_expired(self, period: std::time::Duration) {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            if let Err(error) = self.delete_expired().await {
                tracing::warn!(%error, "could not delete expired sessions");
            }
        }
    }
}
