//! Rate limits: how often one client address or one username may try to sign in or sign up,
//! and how fast one WebSocket connection may send messages, typing signals and receipts.
//!
//! Limits use governor's GCRA limiters (a token bucket that refills continuously): a quota of
//! N per period allows a burst of N, then one more every period / N. Over a limit the request is
//! refused before any work is done (no password is hashed, nothing is stored) with
//! [`AppError::RateLimited`], which says when to retry; other clients are unaffected.

use std::{hash::Hash, net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::{error::AppError, model::UserId};

/// The configurable quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sign-in attempts per minute, per client address and per username.
    pub logins_per_minute: NonZeroU32,
    /// Registrations per hour per client address.
    pub registrations_per_hour: NonZeroU32,
    /// Messages per minute per WebSocket connection.
    pub messages_per_minute: NonZeroU32,
    /// Typing signals per minute per WebSocket connection (the browser sends at most 30).
    pub typing_per_minute: NonZeroU32,
    /// File uploads per minute per user.
    pub uploads_per_minute: NonZeroU32,
    /// Delivery and read receipts per minute per WebSocket connection (the browser sends at
    /// most one per message received and one per message scrolled into view).
    pub receipts_per_minute: NonZeroU32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            logins_per_minute: NonZeroU32::MIN.saturating_add(9),
            registrations_per_hour: NonZeroU32::MIN.saturating_add(19),
            messages_per_minute: NonZeroU32::MIN.saturating_add(119),
            typing_per_minute: NonZeroU32::MIN.saturating_add(59),
            uploads_per_minute: NonZeroU32::MIN.saturating_add(59),
            receipts_per_minute: NonZeroU32::MIN.saturating_add(599),
        }
    }
}

/// The limiters shared by every request.
pub struct RateLimits {
    limits: Limits,
    logins_by_address: DefaultKeyedRateLimiter<IpAddr>,
    logins_by_username: DefaultKeyedRateLimiter<String>,
    registrations_by_address: DefaultKeyedRateLimiter<IpAddr>,
    uploads_by_user: DefaultKeyedRateLimiter<UserId>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            logins_by_address: RateLimiter::keyed(Quota::per_minute(limits.logins_per_minute)),
            logins_by_username: RateLimiter::keyed(Quota::per_minute(limits.logins_per_minute)),
            registrations_by_address: RateLimiter::keyed(Quota::per_hour(
                limits.registrations_per_hour,
            )),
            uploads_by_user: RateLimiter::keyed(Quota::per_minute(limits.uploads_per_minute)),
        }
    }

    /// Counts a sign-in attempt from `address` for `username` (as typed, case-folded).
    ///
    /// # Errors
    /// [`AppError::RateLimited`] if either the address or the username is over its quota.
    pub fn login(&self, address: IpAddr, username: &str) -> Result<(), AppError> {
        check_key(&self.logins_by_address, &address)?;
        check_key(
            &self.logins_by_username,
            &username.trim().to_ascii_lowercase(),
        )
    }

    /// Counts a registration from `address`.
    ///
    /// # Errors
    /// [`AppError::RateLimited`] if the address is over its quota.
    pub fn register(&self, address: IpAddr) -> Result<(), AppError> {
        check_key(&self.registrations_by_address, &address)
    }

    /// Limiters for one new WebSocket connection.
    pub fn connection(&self) -> ConnectionLimits {
        ConnectionLimits {
            messages: RateLimiter::direct(Quota::per_minute(self.limits.messages_per_minute)),
            typing: RateLimiter::direct(Quota::per_minute(self.limits.typing_per_minute)),
            receipts: RateLimiter::direct(Quota::per_minute(self.limits.receipts_per_minute)),
        }
    }

    /// Counts an upload by `user`.
    ///
    /// # Errors
    /// [`AppError::RateLimited`] if the user is over their quota.
    pub fn upload(&self, user: UserId) -> Result<(), AppError> {
        check_key(&self.uploads_by_user, &user)
    }

    /// Forgets keys whose buckets are full again, so memory stays bounded by recent clients.
    pub fn forget_idle(&self) {
        self.logins_by_address.retain_recent();
        self.logins_by_username.retain_recent();
        self.registrations_by_address.retain_recent();
        self.uploads_by_user.retain_recent();
    }
}

/// One connection's limiters.
pub struct ConnectionLimits {
    messages: DefaultDirectRateLimiter,
    typing: DefaultDirectRateLimiter,
    receipts: DefaultDirectRateLimiter,
}

impl ConnectionLimits {
    /// Counts a message; `Err` holds how long to wait.
    ///
    /// # Errors
    /// The time until the next message is allowed.
    pub fn message(&self) -> Result<(), Duration> {
        check(&self.messages)
    }

    /// Counts a typing signal; `Err` holds how long to wait.
    ///
    /// # Errors
    /// The time until the next typing signal is allowed.
    pub fn typing(&self) -> Result<(), Duration> {
        check(&self.typing)
    }

    /// Counts a delivery or read receipt; `Err` holds how long to wait.
    ///
    /// # Errors
    /// The time until the next receipt is allowed.
    pub fn receipt(&self) -> Result<(), Duration> {
        check(&self.receipts)
    }
}

fn check(limiter: &DefaultDirectRateLimiter) -> Result<(), Duration> {
    limiter
        .check()
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

fn check_key<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), AppError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        AppError::RateLimited {
            retry_after_secs: retry_after_secs(wait),
        }
    })
}

/// Whole seconds to wait, rounded up, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn limits(n: u32) -> Limits {
        let n = NonZeroU32::new(n).unwrap();
        Limits {
            logins_per_minute: n,
            registrations_per_hour: n,
            messages_per_minute: n,
            typing_per_minute: n,
            uploads_per_minute: n,
            receipts_per_minute: n,
        }
    }

    #[test]
    fn logins_are_limited_per_address_and_per_username() {
        let limits = RateLimits::new(limits(2));
        let home = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let cafe = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert!(limits.login(home, "ann").is_ok());
        assert!(limits.login(home, "bob").is_ok());
        // The address is spent, whatever the username.
        let refused = limits.login(home, "carol").unwrap_err();
        assert!(
            matches!(refused, AppError::RateLimited { retry_after_secs } if retry_after_secs >= 1)
        );
        // Another address may try ann once more, then ann is spent everywhere (any case).
        assert!(limits.login(cafe, "ANN").is_ok());
        assert!(limits.login(cafe, " ann ").is_err());
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let limits = RateLimits::new(limits(1));
        let home = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(limits.register(home).is_ok());
        assert!(limits.register(home).is_err());
    }

    #[test]
    fn each_connection_has_its_own_budget() {
        let limits = RateLimits::new(limits(3));
        let first = limits.connection();
        for _ in 0..3 {
            assert!(first.message().is_ok());
        }
        let wait = first.message().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(first.typing().is_ok(), "typing has a budget of its own");
        assert!(
            limits.connection().message().is_ok(),
            "a new connection starts full"
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
