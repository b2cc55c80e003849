//! User accounts: registration, password hashing, sign-in through axum-login, and finding
//! people to talk to.
//!
//! Server functions in `crate::api::accounts` call into this module; the server wires
//! [`Backend`] into axum-login's `AuthManagerLayer`.

mod password;

use axum_login::{AuthUser, AuthnBackend};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait,
    QueryFilter, QueryOrder, QuerySelect, SqlErr,
    sea_query::{Expr, LikeExpr},
};

use crate::{
    entity::users,
    error::AppError,
    model::{
        AccountSettings, DisplayName, FieldError, UserId, UserView, Username, check_new_password,
    },
};

pub use password::{hash_password, is_common, verify_password};

/// The session type server functions and axum handlers extract.
pub type AuthSession = axum_login::AuthSession<Backend>;

/// The password hash of an account that has no password: those linked to a marketplace,
/// which sign in through it (`crate::integration::identities`). No argon2 hash is ever `!`,
/// so no password matches it.
pub const NO_PASSWORD: &str = "!";

/// The username of the account the marketplace's notices are written by
/// (`crate::integration::identities::marketplace`). `~` is in no username a person can choose,
/// so nobody can register it, sign in as it or open a conversation with it.
pub const MARKETPLACE_USERNAME: &str = "~marketplace";

/// Longest search query, in characters.
const SEARCH_MAX_CHARS: usize = 64;
/// Most users one search returns.
const SEARCH_LIMIT: u64 = 20;

/// What can go wrong in this module.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("invalid account details")]
    Invalid(Vec<FieldError>),
    #[error("database error")]
    Database(#[from] DbErr),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<AccountsError> for AppError {
    fn from(error: AccountsError) -> Self {
        match error {
            AccountsError::Invalid(fields) => AppError::Invalid(fields),
            other => AppError::internal(&other),
        }
    }
}

/// A signed-in user, as axum-login keeps it for the length of a request.
#[derive(Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    /// Deliberately private and not `Serialize`: it only feeds [`AuthUser::session_auth_hash`].
    password_hash: String,
}

impl User {
    /// What other people may see of this user.
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

impl From<users::Model> for User {
    fn from(row: users::Model) -> Self {
        Self {
            id: UserId(row.id),
            username: row.username,
            display_name: row.display_name,
            password_hash: row.password_hash,
        }
    }
}

/// Written by hand to keep the password hash out of logs.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id.0
    }

    /// The password hash: when the password changes, every session opened with the old one
    /// stops matching and axum-login ends it.
    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

/// What a user types to sign in.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// axum-login's view of our user store.
#[derive(Clone, Debug)]
pub struct Backend {
    db: DatabaseConnection,
}

impl Backend {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = AccountsError;

    /// Checks a username and password. An unknown username, or an account without a password
    /// ([`NO_PASSWORD`]), costs the same argon2 work as a wrong password, so response times
    /// don't reveal which accounts exist.
    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, AccountsError> {
        let row = match Username::parse(&creds.username) {
            Ok(username) => find_by_username(&self.db, &username)
                .await?
                .filter(|row| row.password_hash != NO_PASSWORD),
            Err(_) => None,
        };
        let stored_hash = row.as_ref().map(|r| r.password_hash.clone());
        let matches = verify_password(creds.password, stored_hash).await?;
        Ok(row.filter(|_| matches).map(User::from))
    }

    async fn get_user(&self, id: &i64) -> Result<Option<User>, AccountsError> {
        Ok(find(&self.db, UserId(*id)).await?)
    }
}

/// Signs `user` in on a fresh session id. Whoever was signed in on this browser before is
/// signed out first, so a session is never carried over from one account to another.
///
/// axum-login changes the id only when the session had nobody signed in, and its logout
/// keeps that memory for the rest of the request; so the id is changed here explicitly,
/// every time (session fixation).
///
/// # Errors
/// The session store failed.
pub async fn start_session(auth: &mut AuthSession, user: &User) -> Result<(), AppError> {
    if auth.user.is_some() {
        auth.logout()
            .await
            .map_err(|error| AppError::internal(&error))?;
    }
    auth.session
        .cycle_id()
        .await
        .map_err(|error| AppError::internal(&error))?;
    auth.login(user)
        .await
        .map_err(|error| AppError::internal(&error))
}

/// The fields of the registration form, as typed.
pub struct Registration {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub password_confirm: String,
}

/// Creates an account.
///
/// # Errors
/// [`AccountsError::Invalid`] with one entry per bad field (all of them at once), including a
/// username that is taken; database and hashing failures otherwise.
pub async fn register(
    db: &impl ConnectionTrait,
    form: Registration,
) -> Result<User, AccountsError> {
    let mut errors = Vec::new();
    let username = Username::parse(&form.username)
        .map_err(|message| errors.push(FieldError::new("username", message)))
        .ok();
    let display_name = DisplayName::parse(&form.display_name)
        .map_err(|message| errors.push(FieldError::new("display_name", message)))
        .ok();
    errors.extend(new_password_errors(
        &form.password,
        &form.password_confirm,
        [form.username.as_str(), form.display_name.as_str()],
        "password",
        "password_confirm",
    ));
    let (Some(username), Some(display_name), true) = (username, display_name, errors.is_empty())
    else {
        return Err(AccountsError::Invalid(errors));
    };
    if find_by_username(db, &username).await?.is_some() {
        return Err(username_taken());
    }

    let password_hash = hash_password(form.password).await?;
    let row = users::ActiveModel {
        username: Set(username.as_str().to_owned()),
        display_name: Set(display_name.as_str().to_owned()),
        display_name_folded: Set(display_name.as_str().to_lowercase()),
        password_hash: Set(password_hash),
        created_at: Set(Utc::now()),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(row) => Ok(User::from(row)),
        // Someone took the name between our check and the insert.
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(username_taken())
        }
        Err(error) => Err(error.into()),
    }
}

/// Everything wrong with a new password and its confirmation, reported against the given
/// field names: the shared length and confirmation rules, the common-password list (which
/// only the server has), and the account's own names (`personal`: the username and the
/// display name), which are the first thing anyone guesses.
fn new_password_errors(
    password: &str,
    confirm: &str,
    personal: [&str; 2],
    field: &str,
    confirm_field: &str,
) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = check_new_password(password, confirm)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|mut error| {
            error.field = if error.field == "password" {
                field.to_owned()
            } else {
                confirm_field.to_owned()
            };
            error
        })
        .collect();
    if errors.iter().any(|e| e.field == field) {
        return errors;
    }
    if is_common(password) {
        errors.push(FieldError::new(
            field,
            "This password is too common. Choose one that is harder to guess.",
        ));
    } else if contains_personal(password, personal) {
        errors.push(FieldError::new(
            field,
            "The password must not contain your username or display name.",
        ));
    }
    errors
}

/// Names shorter than this are not looked for in passwords: "Al" would refuse half of them.
const PERSONAL_MIN_CHARS: usize = 3;

/// Whether `password` contains one of the `names` (ignoring letter case, and the spaces of a
/// display name: "Ann Seller" is found in "annseller2026").
fn contains_personal(password: &str, names: [&str; 2]) -> bool {
    let password = password.to_lowercase();
    names.iter().any(|name| {
        let name = name.trim().to_lowercase();
        let joined: String = name.split_whitespace().collect();
        [name, joined].iter().any(|form| {
            form.chars().count() >= PERSONAL_MIN_CHARS && password.contains(form.as_str())
        })
    })
}

/// Changes `user`'s password after checking the current one. Returns the user with the new
/// hash, which the caller puts in the current session (every other session then stops
/// matching and is signed out).
///
/// # Errors
/// [`AccountsError::Invalid`] for a wrong current password (`current_password`) or an
/// unacceptable new one (`new_password`, `new_password_confirm`).
pub async fn change_password(
    db: &impl ConnectionTrait,
    user: &User,
    current: String,
    new: String,
    confirm: String,
) -> Result<User, AccountsError> {
    let mut errors = new_password_errors(
        &new,
        &confirm,
        [user.username.as_str(), user.display_name.as_str()],
        "new_password",
        "new_password_confirm",
    );
    let stored = Some(user.password_hash.clone()).filter(|hash| hash != NO_PASSWORD);
    if !verify_password(current, stored).await? {
        errors.insert(
            0,
            FieldError::new("current_password", "Your current password is not this one."),
        );
    }
    if !errors.is_empty() {
        return Err(AccountsError::Invalid(errors));
    }
    let password_hash = hash_password(new).await?;
    let updated = users::ActiveModel {
        id: Set(user.id.0),
        password_hash: Set(password_hash),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(User::from(updated))
}

/// `user`'s own settings.
///
/// # Errors
/// The database failed, or the user no longer exists.
pub async fn settings(
    db: &impl ConnectionTrait,
    user: UserId,
) -> Result<AccountSettings, AccountsError> {
    let row = users::Entity::find_by_id(user.0)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("user {}", user.0)))?;
    Ok(AccountSettings {
        read_receipts: row.read_receipts,
    })
}

/// Stores `user`'s settings.
///
/// # Errors
/// The database failed, or the user no longer exists.
pub async fn update_settings(
    db: &impl ConnectionTrait,
    user: UserId,
    settings: AccountSettings,
) -> Result<AccountSettings, AccountsError> {
    let row = users::ActiveModel {
        id: Set(user.0),
        read_receipts: Set(settings.read_receipts),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(AccountSettings {
        read_receipts: row.read_receipts,
    })
}

fn username_taken() -> AccountsError {
    AccountsError::Invalid(vec![FieldError::new(
        "username",
        "This username is already taken.",
    )])
}

/// The account with this id, if any.
pub async fn find(db: &impl ConnectionTrait, user: UserId) -> Result<Option<User>, DbErr> {
    Ok(users::Entity::find_by_id(user.0)
        .one(db)
        .await?
        .map(User::from))
}

/// The account with this username, if any.
pub async fn find_by_username(
    db: &impl ConnectionTrait,
    username: &Username,
) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find()
        .filter(users::Column::Username.eq(username.as_str()))
        .one(db)
        .await
}

/// People whose username or display name contains `query` (case-insensitively), the
/// searcher excluded, in username order.
pub async fn search(
    db: &impl ConnectionTrait,
    searcher: UserId,
    query: &str,
) -> Result<Vec<UserView>, AccountsError> {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    if query.chars().count() > SEARCH_MAX_CHARS {
        return Err(AccountsError::Invalid(vec![FieldError::new(
            "query",
            format!("Search at most {SEARCH_MAX_CHARS} characters."),
        )]));
    }
    // No name contains one, and PostgreSQL refuses NUL in text outright.
    if query.chars().any(char::is_control) {
        return Err(AccountsError::Invalid(vec![FieldError::new(
            "query",
            "Search must not contain control characters.",
        )]));
    }
    // `%` and `_` typed by the user are literal characters, not wildcards.
    let escaped = query
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let rows = users::Entity::find()
        .filter(
            Condition::any()
                .add(Expr::col(users::Column::Username).like(LikeExpr::new(&pattern).escape('\\')))
                .add(
                    Expr::col(users::Column::DisplayNameFolded)
                        .like(LikeExpr::new(&pattern).escape('\\')),
                ),
        )
        .filter(users::Column::Id.ne(searcher.0))
        .filter(users::Column::Username.ne(MARKETPLACE_USERNAME))
        .order_by_asc(users::Column::Username)
        .limit(SEARCH_LIMIT)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|row| User::from(row).view()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password_error(password: &str) -> Option<String> {
        new_password_errors(
            password,
            password,
            ["ann.seller", "Ann Seller"],
            "password",
            "password_confirm",
        )
        .into_iter()
        .next()
        .map(|error| error.message)
    }

    #[test]
    fn passwords_must_not_contain_the_account_names() {
        for personal in [
            "ann.seller",
            "ANN.SELLER!",
            "my ann.seller pw",
            "Ann Seller 2026",
            "annseller2026",
        ] {
            assert_eq!(
                password_error(personal).as_deref(),
                Some("The password must not contain your username or display name."),
                "{personal}"
            );
        }
        assert_eq!(password_error("correct horse battery"), None);
        // A two-letter name is not looked for.
        let short =
            new_password_errors("al-the-builder", "al-the-builder", ["alx", "Al"], "p", "c");
        assert!(short.is_empty(), "{short:?}");
    }
}
