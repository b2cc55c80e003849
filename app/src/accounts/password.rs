//! Argon2id password hashing, always on a blocking thread.
//!
//! Hashing is deliberately slow and CPU-bound (about 19 MiB and two passes per hash, the OWASP
//! parameters that the argon2 crate uses by default). On the async runtime it would stall every
//! other request on that worker, so both functions move the work to `spawn_blocking`.

use std::{collections::HashSet, num::NonZero, sync::LazyLock, thread::available_parallelism};

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use tokio::sync::{Semaphore, SemaphorePermit};

use super::AccountsError;

/// Hashes computed at once, at most one per core. More would only queue for the CPU while
/// each held its 19 MiB (a burst of sign-ups once left the server holding gigabytes), so the
/// rest wait here, where waiting costs nothing.
static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(available_parallelism().map_or(2, NonZero::get)));

async fn hashing_turn() -> Result<SemaphorePermit<'static>, AccountsError> {
    HASHING
        .acquire()
        .await
        .map_err(|error| AccountsError::Hashing(error.to_string()))
}

/// The common-password list, loaded once.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// Whether `password` is on the list of common passwords (in any letter case).
pub fn is_common(password: &str) -> bool {
    COMMON_PASSWORDS.contains(password.to_lowercase().as_str())
}

/// A hash of a password nobody has, verified against when a username does not exist so that
/// an unknown username takes as long to refuse as a wrong password.
static DUMMY_HASH: LazyLock<Result<String, String>> =
    LazyLock::new(|| hash_blocking("parley-dummy-password-never-matches"));

fn hash_blocking(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

/// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) with a fresh
/// random salt.
///
/// # Errors
/// [`AccountsError::Hashing`] if argon2 fails or the blocking task is lost.
pub async fn hash_password(password: String) -> Result<String, AccountsError> {
    let _turn = hashing_turn().await?;
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|error| AccountsError::Hashing(error.to_string()))?
        .map_err(AccountsError::Hashing)
}

/// Whether `password` matches `stored`; with `stored = None` it does the same work against a
/// dummy hash and returns `false`.
///
/// # Errors
/// [`AccountsError::Hashing`] if the blocking task is lost or the dummy hash can't be made.
pub async fn verify_password(
    password: String,
    stored: Option<String>,
) -> Result<bool, AccountsError> {
    let _turn = hashing_turn().await?;
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match &stored {
            Some(hash) => (hash.as_str(), true),
            None => (
                DUMMY_HASH
                    .as_deref()
                    .map_err(|error| AccountsError::Hashing(error.clone()))?,
                false,
            ),
        };
        // A stored hash that does not parse can never match; treat it as a wrong password.
        let Ok(parsed) = PasswordHash::new(hash) else {
            return Ok(false);
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(real && matches)
    })
    .await
    .map_err(|error| AccountsError::Hashing(error.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_salted() {
        let first = hash_password("correct horse".into()).await.unwrap();
        let second = hash_password("correct horse".into()).await.unwrap();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(
            first, second,
            "two hashes of one password must differ by salt"
        );
    }

    #[test]
    fn common_passwords_are_recognised_in_any_case() {
        assert!(is_common("password1"));
        assert!(is_common("PassWord1"));
        assert!(is_common("iloveyou"));
        assert!(!is_common("correct horse battery"));
        assert!(COMMON_PASSWORDS.len() > 8_000);
    }

    #[tokio::test]
    async fn verify_accepts_the_password_and_nothing_else() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password("correct horse".into(), None).await.unwrap());
    }
}
