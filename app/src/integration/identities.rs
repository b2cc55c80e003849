//! The people of the marketplace: Parley accounts linked to the marketplace's own, found by the
//! marketplace's id for them (its *external id*).
//!
//! The link never changes: an external id names one Parley account for good. The name, e-mail
//! and role are the marketplace's to keep up to date (each sign-in and each `PUT` of the user
//! rewrites them); the Parley username is chosen once, when the account is made, from the
//! preferred one if it is free. Such accounts have no password: they sign in through the
//! marketplace only ([`crate::accounts::NO_PASSWORD`]).

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, SqlErr,
};

use crate::{
    accounts::{MARKETPLACE_USERNAME, NO_PASSWORD, find_by_username},
    entity::users,
    model::{DisplayName, FieldError, UserId, UserView, Username},
};

/// The display name of the marketplace's own account, on its notices.
const MARKETPLACE_NAME: &str = "Marketplace";

/// Longest external id, in characters.
pub const EXTERNAL_ID_MAX_CHARS: usize = 128;
/// Longest e-mail address (RFC 5321's limit on a path).
const EMAIL_MAX_CHARS: usize = 254;
/// Usernames tried with a numeric suffix before giving up on the preferred one.
const USERNAME_ATTEMPTS: u32 = 20;

/// What can go wrong here.
#[derive(Debug, thiserror::Error)]
pub enum IdentitiesError {
    #[error("invalid user details")]
    Invalid(Vec<FieldError>),
    #[error("database error")]
    Database(#[from] DbErr),
}

/// The marketplace's id for a person: 1 to 128 characters, none of them control characters,
/// compared exactly (no case folding, no trimming: it is the marketplace's, not ours).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalId(String);

impl ExternalId {
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(input: &str) -> Result<Self, String> {
        let length = input.chars().count();
        if !(1..=EXTERNAL_ID_MAX_CHARS).contains(&length) {
            return Err(format!(
                "An external id is 1 to {EXTERNAL_ID_MAX_CHARS} characters long."
            ));
        }
        if input.chars().any(char::is_control) {
            return Err("An external id must not contain control characters.".into());
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's role on the marketplace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Seller,
    Customer,
}

impl Role {
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(input: &str) -> Result<Self, String> {
        match input {
            "seller" => Ok(Self::Seller),
            "customer" => Ok(Self::Customer),
            _ => Err("The role is \"seller\" or \"customer\".".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seller => "seller",
            Self::Customer => "customer",
        }
    }
}

/// An e-mail address as the marketplace gives it: checked for shape only (one `@` between a
/// local part and a domain with a dot, no spaces), since the marketplace vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn parse(input: &str) -> Result<Self, String> {
        let address = input.trim();
        let shaped = address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
        if address.chars().count() > EMAIL_MAX_CHARS {
            return Err(format!(
                "An e-mail address is at most {EMAIL_MAX_CHARS} characters long."
            ));
        }
        if !shaped || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("This is not an e-mail address.".into());
        }
        Ok(Self(address.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the marketplace says about a person, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: DisplayName,
    /// The Parley username wished for, used when the account is made.
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub role: Option<Role>,
}

impl Profile {
    /// Checks every field, and reports every bad one at once (named `name`, `username`,
    /// `email`, `role`).
    ///
    /// # Errors
    /// One [`FieldError`] per bad field.
    pub fn parse(
        name: &str,
        username: Option<&str>,
        email: Option<&str>,
        role: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = checked(&mut errors, "name", DisplayName::parse(name));
        let username = username.and_then(|u| checked(&mut errors, "username", Username::parse(u)));
        let email = email.and_then(|e| checked(&mut errors, "email", Email::parse(e)));
        let role = role.and_then(|r| checked(&mut errors, "role", Role::parse(r)));
        match name {
            Some(name) if errors.is_empty() => Ok(Self {
                name,
                username,
                email,
                role,
            }),
            _ => Err(errors),
        }
    }
}

/// The value, or `None` with its error noted against `field`.
fn checked<T>(errors: &mut Vec<FieldError>, field: &str, parsed: Result<T, String>) -> Option<T> {
    parsed
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

/// A Parley account linked to the marketplace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: UserId,
    pub external_id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: Option<Role>,
}

impl Identity {
    /// The identity of a linked account's row; `None` for one of Parley's own accounts.
    fn of(row: users::Model) -> Option<Self> {
        Some(Self {
            id: UserId(row.id),
            external_id: row.external_id?,
            username: row.username,
            display_name: row.display_name,
            email: row.email,
            role: row.role.as_deref().and_then(|r| Role::parse(r).ok()),
        })
    }
}

/// An account found or made by [`provision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub identity: Identity,
    /// Whether it was made just now.
    pub created: bool,
}

/// The account linked to `external`, made if there is none, with `profile`'s name, e-mail and
/// role.
///
/// # Errors
/// The database failed.
pub async fn provision(
    db: &impl ConnectionTrait,
    external: &ExternalId,
    profile: &Profile,
) -> Result<Provisioned, IdentitiesError> {
    if let Some(row) = find_row(db, external).await? {
        return Ok(Provisioned {
            identity: update(db, row, profile).await?,
            created: false,
        });
    }
    match insert(db, external, profile).await {
        Ok(identity) => Ok(Provisioned {
            identity,
            created: true,
        }),
        // Made at the same moment by another request (a sign-in and a `PUT` racing): the
        // link is unique, so theirs is the one; bring it up to date.
        Err(IdentitiesError::Database(error))
            if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
        {
            let row = find_row(db, external)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound(external.as_str().to_owned()))?;
            Ok(Provisioned {
                identity: update(db, row, profile).await?,
                created: false,
            })
        }
        Err(error) => Err(error),
    }
}

/// The account linked to `external`, if there is one.
///
/// # Errors
/// The database failed.
pub async fn find(
    db: &impl ConnectionTrait,
    external: &ExternalId,
) -> Result<Option<Identity>, DbErr> {
    Ok(find_row(db, external).await?.and_then(Identity::of))
}

/// The external ids of those of `people` who are linked to the marketplace, in one query.
///
/// # Errors
/// The database failed.
pub async fn external_ids(
    db: &impl ConnectionTrait,
    people: impl IntoIterator<Item = UserId>,
) -> Result<HashMap<UserId, String>, DbErr> {
    let ids: Vec<i64> = people.into_iter().map(|user| user.0).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(users::Entity::find()
        .filter(users::Column::Id.is_in(ids))
        .filter(users::Column::ExternalId.is_not_null())
        .all(db)
        .await?
        .into_iter()
        .filter_map(|row| Some((UserId(row.id), row.external_id?)))
        .collect())
}

/// The account the marketplace's notices (system messages) are written by, made the first
/// time one is sent. It has no password and no conversations of its own, and people search
/// never finds it.
///
/// # Errors
/// The database failed.
pub async fn marketplace(db: &impl ConnectionTrait) -> Result<UserView, DbErr> {
    let find = || {
        users::Entity::find()
            .filter(users::Column::Username.eq(MARKETPLACE_USERNAME))
            .one(db)
    };
    let row = match find().await? {
        Some(row) => row,
        None => {
            let row = users::ActiveModel {
                username: Set(MARKETPLACE_USERNAME.to_owned()),
                display_name: Set(MARKETPLACE_NAME.to_owned()),
                display_name_folded: Set(MARKETPLACE_NAME.to_lowercase()),
                password_hash: Set(NO_PASSWORD.to_owned()),
                created_at: Set(crate::conversations::now()),
                read_receipts: Set(false),
                ..Default::default()
            };
            match row.insert(db).await {
                Ok(row) => row,
                // Made at the same moment for another notice.
                Err(error)
                    if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
                {
                    find().await?.ok_or(error)?
                }
                Err(error) => return Err(error),
            }
        }
    };
    Ok(UserView {
        id: UserId(row.id),
        username: row.username,
        display_name: row.display_name,
    })
}

async fn find_row(
    db: &impl ConnectionTrait,
    external: &ExternalId,
) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find()
        .filter(users::Column::ExternalId.eq(external.as_str()))
        .one(db)
        .await
}

async fn update(
    db: &impl ConnectionTrait,
    row: users::Model,
    profile: &Profile,
) -> Result<Identity, IdentitiesError> {
    let name = profile.name.as_str();
    let unchanged = row.display_name == name
        && row.email.as_deref() == profile.email.as_ref().map(Email::as_str)
        && row.role.as_deref() == profile.role.map(Role::as_str);
    let row = if unchanged {
        row
    } else {
        users::ActiveModel {
            id: Set(row.id),
            display_name: Set(name.to_owned()),
            display_name_folded: Set(name.to_lowercase()),
            email: Set(profile.email.as_ref().map(|e| e.as_str().to_owned())),
            role: Set(profile.role.map(|r| r.as_str().to_owned())),
            ..Default::default()
        }
        .update(db)
        .await?
    };
    Identity::of(row).ok_or_else(|| DbErr::RecordNotFound("linked account".into()).into())
}

async fn insert(
    db: &impl ConnectionTrait,
    external: &ExternalId,
    profile: &Profile,
) -> Result<Identity, IdentitiesError> {
    let base = profile
        .username
        .as_ref()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_else(|| username_from(profile.name.as_str()));
    let name = profile.name.as_str();
    for attempt in 1..=USERNAME_ATTEMPTS + 1 {
        let candidate = candidate_username(&base, attempt, external);
        let Ok(username) = Username::parse(&candidate) else {
            continue;
        };
        if find_by_username(db, &username).await?.is_some() {
            continue;
        }
        let row = users::ActiveModel {
            username: Set(username.as_str().to_owned()),
            display_name: Set(name.to_owned()),
            display_name_folded: Set(name.to_lowercase()),
            password_hash: Set(NO_PASSWORD.to_owned()),
            created_at: Set(crate::conversations::now()),
            read_receipts: Set(true),
            external_id: Set(Some(external.as_str().to_owned())),
            email: Set(profile.email.as_ref().map(|e| e.as_str().to_owned())),
            role: Set(profile.role.map(|r| r.as_str().to_owned())),
            ..Default::default()
        };
        match row.insert(db).await {
            Ok(row) => {
                return Identity::of(row)
                    .ok_or_else(|| DbErr::RecordNotFound("linked account".into()).into());
            }
            // The username was taken meanwhile: try the next one. The external id taken
            // meanwhile is the caller's to handle.
            Err(error)
                if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                    && find_by_username(db, &username).await?.is_some()
                    && find_row(db, external).await?.is_none() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(IdentitiesError::Invalid(vec![FieldError::new(
        "username",
        "No free username could be found for this user; give another `username`.",
    )]))
}

/// The `attempt`-th username to try: the base itself, then `base-2`, `base-3`…, and last one
/// made from a hash of the external id, which is all but certainly free.
fn candidate_username(base: &str, attempt: u32, external: &ExternalId) -> String {
    let stem: String = base.chars().take(26).collect();
    match attempt {
        1 => base.to_owned(),
        n if n <= USERNAME_ATTEMPTS => format!("{stem}-{n}"),
        _ => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            external.hash(&mut hasher);
            format!("{stem}-{:05x}", hasher.finish() % 0x10_0000)
        }
    }
}

/// A username made from a display name: its ASCII letters and digits in lower case, spaces
/// and other separators as dots ("Ann Seller" → `ann.seller`); `user` when too little is left.
fn username_from(name: &str) -> String {
    let mut username = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            username.push(c.to_ascii_lowercase());
        } else if !username.is_empty() && !username.ends_with('.') {
            username.push('.');
        }
    }
    let username: String = username.trim_end_matches('.').chars().take(32).collect();
    if username.chars().count() < 3 {
        "user".to_owned()
    } else {
        username
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

    fn profile(name: &str, username: Option<&str>) -> Profile {
        Profile::parse(name, username, Some("ann@shop.example"), Some("seller")).unwrap()
    }

    fn external(id: &str) -> ExternalId {
        ExternalId::parse(id).unwrap()
    }

    #[test]
    fn fields_are_checked_and_all_reported() {
        let errors =
            Profile::parse("", Some("a b"), Some("not-an-address"), Some("admin")).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "username", "email", "role"]);
        assert!(ExternalId::parse("").is_err());
        assert!(ExternalId::parse(&"x".repeat(129)).is_err());
        assert!(ExternalId::parse("a\nb").is_err());
        assert_eq!(ExternalId::parse(" U-1 ").unwrap().as_str(), " U-1 ");
        for bad in [
            "a@b",
            "@shop.example",
            "a b@shop.example",
            "a@@shop.example",
            "a@.x",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Email::parse(" a@shop.example ").unwrap().as_str(),
            "a@shop.example"
        );
    }

    #[test]
    fn usernames_are_made_from_names() {
        assert_eq!(username_from("Ann Seller"), "ann.seller");
        assert_eq!(username_from("  Zoë's  Shop!  "), "zo.s.shop");
        assert_eq!(username_from("Ω"), "user");
        assert_eq!(username_from(&"a".repeat(40)).len(), 32);
    }

    #[tokio::test]
    async fn the_link_is_made_once_and_the_profile_follows_the_marketplace() {
        let db = database().await;
        let first = provision(&db, &external("u-1"), &profile("Ann Seller", None))
            .await
            .unwrap();
        assert!(first.created);
        assert_eq!(first.identity.username, "ann.seller");
        assert_eq!(first.identity.role, Some(Role::Seller));

        let renamed = Profile::parse("Ann S.", Some("other.name"), None, Some("customer")).unwrap();
        let again = provision(&db, &external("u-1"), &renamed).await.unwrap();
        assert!(!again.created);
        assert_eq!(again.identity.id, first.identity.id);
        // The username stays; the rest is the marketplace's.
        assert_eq!(again.identity.username, "ann.seller");
        assert_eq!(again.identity.display_name, "Ann S.");
        assert_eq!(again.identity.email, None);
        assert_eq!(again.identity.role, Some(Role::Customer));
        assert_eq!(
            find(&db, &external("u-1")).await.unwrap(),
            Some(again.identity.clone())
        );
        assert_eq!(find(&db, &external("U-1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_taken_username_gets_a_suffix() {
        let db = database().await;
        let ann = provision(&db, &external("u-1"), &profile("Ann", Some("ann")))
            .await
            .unwrap();
        let other = provision(&db, &external("u-2"), &profile("Ann", Some("ann")))
            .await
            .unwrap();
        assert_eq!(ann.identity.username, "ann");
        assert_eq!(other.identity.username, "ann-2");
    }

    #[tokio::test]
    async fn linked_accounts_have_no_password_to_sign_in_with() {
        let db = database().await;
        let ann = provision(&db, &external("u-1"), &profile("Ann", Some("ann")))
            .await
            .unwrap();
        let row = users::Entity::find_by_id(ann.identity.id.0)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.password_hash, NO_PASSWORD);
    }
}
