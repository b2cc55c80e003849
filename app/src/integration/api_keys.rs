//! API keys: how a marketplace's backend proves who it is to the server API.
//!
//! A key is `prl_` and 43 characters of base64url: 256 random bits, shown once when it is
//! made (`server keys create`) and stored only as its SHA-256. A fast hash is enough: the
//! secret has nothing a person chose, so there is nothing to guess from it, and every request
//! can be checked without argon2's cost. Every request looks its key up in the database, so a
//! key made or revoked on any instance, or from the command line, counts at the next request.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, SqlErr,
};
use sha2::{Digest, Sha256};

use crate::entity::api_keys;

/// What every key starts with, so that a leaked one is easy to recognise (secret scanners).
pub const KEY_PREFIX: &str = "prl_";
/// Random bytes in a key.
const KEY_BYTES: usize = 32;
/// Characters of a key kept to tell it apart from others: the prefix and eight more.
const SHOWN_CHARS: usize = 12;
/// Longest key name.
const NAME_MAX_CHARS: usize = 64;

/// What can go wrong with keys.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeysError {
    #[error("a key's name is 1 to {NAME_MAX_CHARS} letters, digits, '-', '_' or '.', not {0:?}")]
    InvalidName(String),
    #[error("there is already a key named {0:?}")]
    NameTaken(String),
    #[error("there is no active key named {0:?}")]
    NoSuchKey(String),
    #[error("the system has no randomness to make a key with: {0}")]
    Randomness(String),
    #[error("database error")]
    Database(#[from] DbErr),
}

/// A key as `server keys list` shows it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: String,
    /// The key's first characters.
    pub shown: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who is calling the server API: the key that authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClient {
    pub key_id: i64,
    pub name: String,
}

/// Makes a key called `name` and returns it: the only time it is ever seen.
///
/// # Errors
/// A bad or taken name, no randomness, or the database failed.
pub async fn create(db: &impl ConnectionTrait, name: &str) -> Result<String, ApiKeysError> {
    let name = checked_name(name)?;
    let mut secret = [0_u8; KEY_BYTES];
    getrandom::fill(&mut secret).map_err(|error| ApiKeysError::Randomness(error.to_string()))?;
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let row = api_keys::ActiveModel {
        name: Set(name.clone()),
        key_hash: Set(hash(&key)),
        key_prefix: Set(key.chars().take(SHOWN_CHARS).collect()),
        created_at: Set(crate::conversations::now()),
        revoked_at: Set(None),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(_) => Ok(key),
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(ApiKeysError::NameTaken(name))
        }
        Err(error) => Err(error.into()),
    }
}

/// Every key, active or revoked, oldest first.
///
/// # Errors
/// The database failed.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<KeyInfo>, ApiKeysError> {
    Ok(api_keys::Entity::find()
        .order_by_asc(api_keys::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|row| KeyInfo {
            name: row.name,
            shown: row.key_prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
        .collect())
}

/// Revokes the key called `name`: requests made with it are refused from now on. The row is
/// kept (revoked), so the name stays taken and the listing says what happened.
///
/// # Errors
/// No active key has that name, or the database failed.
pub async fn revoke(db: &impl ConnectionTrait, name: &str) -> Result<(), ApiKeysError> {
    let revoked = api_keys::Entity::update_many()
        .col_expr(
            api_keys::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(crate::conversations::now()),
        )
        .filter(api_keys::Column::Name.eq(name))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    if revoked.rows_affected == 0 {
        return Err(ApiKeysError::NoSuchKey(name.to_owned()));
    }
    Ok(())
}

/// The client a presented key belongs to, if it is a key and has not been revoked.
///
/// # Errors
/// The database failed.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    presented: &str,
) -> Result<Option<ApiClient>, DbErr> {
    // Anything that is not shaped like a key is not looked up at all.
    if !presented.starts_with(KEY_PREFIX) || presented.len() > 2 * KEY_BYTES + KEY_PREFIX.len() {
        return Ok(None);
    }
    // Looked up by its hash: equality on a hash leaks nothing about the key through timing.
    Ok(api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(hash(presented)))
        .filter(api_keys::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .map(|row| ApiClient {
            key_id: row.id,
            name: row.name,
        }))
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn checked_name(name: &str) -> Result<String, ApiKeysError> {
    let valid = (1..=NAME_MAX_CHARS).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ApiKeysError::InvalidName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use migrations::{Migrator, MigratorTrait};
    use sea_orm::{Database, DatabaseConnection};

    use super::*;

    async fn database() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        db
    }

    #[tokio::test]
    async fn a_key_works_until_it_is_revoked() {
        let db = database().await;
        let key = create(&db, "shop").await.unwrap();
        assert!(key.starts_with(KEY_PREFIX), "{key}");
        assert_eq!(key.len(), KEY_PREFIX.len() + 43);

        let client = authenticate(&db, &key).await.unwrap().unwrap();
        assert_eq!(client.name, "shop");
        // One character off is another key.
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push(if key.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(authenticate(&db, &wrong).await.unwrap(), None);
        assert_eq!(authenticate(&db, "Basic abc").await.unwrap(), None);

        revoke(&db, "shop").await.unwrap();
        assert_eq!(authenticate(&db, &key).await.unwrap(), None);
        assert!(matches!(
            revoke(&db, "shop").await,
            Err(ApiKeysError::NoSuchKey(_))
        ));
        let listed = list(&db).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].shown, key[..SHOWN_CHARS]);
        assert!(listed[0].revoked_at.is_some());
    }

    #[tokio::test]
    async fn only_the_hash_is_stored() {
        let db = database().await;
        let key = create(&db, "shop").await.unwrap();
        let row = api_keys::Entity::find().one(&db).await.unwrap().unwrap();
        assert_ne!(row.key_hash, key);
        assert!(!row.key_hash.contains(&key[SHOWN_CHARS..]));
        assert_eq!(row.key_hash, hash(&key));
    }

    #[tokio::test]
    async fn names_are_checked_and_unique() {
        let db = database().await;
        for bad in ["", "with space", "ünïcode", &"x".repeat(65)] {
            assert!(
                matches!(create(&db, bad).await, Err(ApiKeysError::InvalidName(_))),
                "{bad:?}"
            );
        }
        create(&db, "shop-2.eu_west").await.unwrap();
        assert!(matches!(
            create(&db, "shop-2.eu_west").await,
            Err(ApiKeysError::NameTaken(_))
        ));
        // Two keys, two different secrets.
        let other = create(&db, "other").await.unwrap();
        assert_eq!(
            authenticate(&db, &other).await.unwrap().unwrap().name,
            "other"
        );
    }
}
