//! Rate limits: how often one client may try to sign in or sign up, how fast one user may send
//! messages and upload files, how fast one connection may send typing signals and receipts,
//! and when a connection has misbehaved enough to be closed.
//!
//! Limits use governor's GCRA limiters (a token bucket that refills continuously): a quota of
//! N per period allows a burst of N, then one more every period / N. Over a limit the request is
//! refused before any work is done (no password is hashed, nothing is stored) with
//! [`AppError::RateLimited`], which says when to retry; other clients are unaffected.
//!
//! Sign-in is limited per *(username, client address)* pair, so a stranger guessing a seller's
//! password spends only their own budget and never locks the seller out; a correct sign-in
//! gives the pair its whole budget back. Each address also has a budget of its own (five
//! pairs' worth, for an office behind one address). A username tried from many addresses at
//! once is slowed down: past ten pairs' worth a minute, from everywhere together, each
//! attempt waits for room (and is refused when the wait would pass a few seconds), which
//! bounds how fast a password can be guessed however many addresses an attacker has. The
//! owner is not held up: an address the username has signed in from lately skips that queue.
//!
//! Addresses are compared as [`address_key`] makes them: an IPv4 address written as IPv6
//! (`::ffff:203.0.113.5`) is the IPv4 one, and an IPv6 address counts by its /64, the block
//! one subscriber gets, so that taking a fresh address from it buys nothing.
//!
//! Messages are limited per user, across all of their connections; with Redis, across every
//! instance too ([`SharedLimiter`]), so opening more sockets never multiplies the budget.
//! Server API requests are limited per API key, the same way.
//!
//! Two parts live in files of their own: [`typing`], which typing signals are relayed, and
//! [`forgettable`], the keyed limiter a correct sign-in resets.

mod forgettable;
mod typing;

use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use governor::{
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::{
    error::AppError,
    model::{ConversationId, UserId},
};
use forgettable::ForgettableLimiter;
use typing::TypingRelay;
pub use typing::TypingVerdict;

/// The configurable quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sign-in attempts per minute for one username from one client address.
    pub logins_per_minute: NonZeroU32,
    /// Registrations per hour per client address.
    pub registrations_per_hour: NonZeroU32,
    /// Messages per minute per user, all of their connections together.
    pub messages_per_minute: NonZeroU32,
    /// Typing signals per minute per WebSocket connection (the browser sends at most 30); the
    /// rest are dropped.
    pub typing_per_minute: NonZeroU32,
    /// File uploads per minute per user.
    pub uploads_per_minute: NonZeroU32,
    /// Delivery and read receipts per minute per WebSocket connection (the browser sends at
    /// most one per message received and one per message scrolled into view).
    pub receipts_per_minute: NonZeroU32,
    /// Server API requests per minute per API key.
    pub api_requests_per_minute: NonZeroU32,
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
            api_requests_per_minute: NonZeroU32::MIN.saturating_add(5999),
        }
    }
}

/// How many sign-in pairs' worth one client address may try per minute.
const LOGINS_PER_ADDRESS_FACTOR: u32 = 5;
/// How many pairs' worth of attempts a username takes per minute, from everywhere together,
/// before each further attempt is slowed down.
const LOGINS_PER_USERNAME_FACTOR: u32 = 10;
/// The longest an attempt for a username under attack waits for room before it is refused.
const LOGIN_SLOWDOWN_AT_MOST: Duration = Duration::from_secs(3);
/// How long an address where a username signed in stays familiar to it (it then skips the
/// username's queue).
const FAMILIAR_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Invalid frames a connection may send in a burst (refilling one a second) before it is
/// closed: a client bug shows up as a few error frames, a flood as a closed socket.
const INVALID_FRAMES_BURST: u32 = 10;
/// Refusals for going over a rate limit a connection may collect per minute before it is
/// closed: the browser waits when told to, so only a client that ignores the answers
/// collects more.
const REFUSALS_PER_MINUTE: u32 = 20;

/// A rate limit kept outside this process (in Redis), shared by every instance, for limits
/// that must not multiply with the number of instances a user's connections reach.
#[async_trait::async_trait]
pub trait SharedLimiter: Send + Sync + 'static {
    /// Counts one event for `key` against `quota`: `Ok(Ok(()))` when allowed, `Ok(Err(wait))`
    /// when over it (`wait` until the next is allowed).
    ///
    /// # Errors
    /// The store could not be asked; the caller falls back to this instance's own limiter.
    async fn check(&self, key: &str, quota: Quota) -> Result<Result<(), Duration>, String>;
}

/// The limiters shared by every request.
pub struct RateLimits {
    limits: Limits,
    logins_by_pair: ForgettableLimiter<(String, IpAddr)>,
    logins_by_address: DefaultKeyedRateLimiter<IpAddr>,
    logins_by_username: DefaultKeyedRateLimiter<String>,
    /// (username, address) pairs that signed in lately, and when.
    familiar: Mutex<std::collections::HashMap<(String, IpAddr), Instant>>,
    registrations_by_address: DefaultKeyedRateLimiter<IpAddr>,
    uploads_by_user: DefaultKeyedRateLimiter<UserId>,
    /// Messages per user on this instance: the limit itself without Redis, the fallback while
    /// Redis can't be asked.
    messages_by_user: DefaultKeyedRateLimiter<UserId>,
    /// Server API requests per key on this instance (as `messages_by_user`).
    api_by_key: DefaultKeyedRateLimiter<i64>,
    shared: Option<Arc<dyn SharedLimiter>>,
    /// When the shared limiter last failed: for [`SHARED_RETRY_AFTER`] after that, this
    /// instance counts alone rather than make every message wait for a store that is down.
    shared_failed_at: Mutex<Option<Instant>>,
    typing: TypingRelay,
}

/// How long the instance counts messages on its own after the shared limiter failed, before
/// asking it again.
const SHARED_RETRY_AFTER: Duration = Duration::from_secs(5);

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("limits", &self.limits)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Limiters of this instance alone.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            logins_by_pair: ForgettableLimiter::new(Quota::per_minute(limits.logins_per_minute)),
            logins_by_address: RateLimiter::keyed(Quota::per_minute(
                limits
                    .logins_per_minute
                    .saturating_mul(NonZeroU32::MIN.saturating_add(LOGINS_PER_ADDRESS_FACTOR - 1)),
            )),
            logins_by_username: RateLimiter::keyed(Quota::per_minute(
                limits
                    .logins_per_minute
                    .saturating_mul(NonZeroU32::MIN.saturating_add(LOGINS_PER_USERNAME_FACTOR - 1)),
            )),
            familiar: Mutex::default(),
            registrations_by_address: RateLimiter::keyed(Quota::per_hour(
                limits.registrations_per_hour,
            )),
            uploads_by_user: RateLimiter::keyed(Quota::per_minute(limits.uploads_per_minute)),
            messages_by_user: RateLimiter::keyed(Quota::per_minute(limits.messages_per_minute)),
            api_by_key: RateLimiter::keyed(Quota::per_minute(limits.api_requests_per_minute)),
            shared: None,
            shared_failed_at: Mutex::new(None),
            typing: TypingRelay::default(),
        }
    }

    /// Limiters whose per-user message limit is kept in `shared`, for every instance.
    pub fn with_shared(limits: Limits, shared: Arc<dyn SharedLimiter>) -> Self {
        Self {
            shared: Some(shared),
            ..Self::new(limits)
        }
    }

    /// Counts a sign-in attempt from `address` for `username` (as typed, case-folded),
    /// waiting a little first when the username is being tried from many places at once.
    ///
    /// # Errors
    /// [`AppError::RateLimited`] if this address is over its quota, for this username or for
    /// all of them together, or (from an address the username has not signed in from) when
    /// the username's attempts from everywhere would need a longer wait.
    pub async fn login(&self, address: IpAddr, username: &str) -> Result<(), AppError> {
        let pair = (username.trim().to_ascii_lowercase(), address_key(address));
        check_key(&self.logins_by_address, &pair.1)?;
        self.logins_by_pair.check(&pair).map_err(rate_limited)?;
        if self.is_familiar(&pair) {
            return Ok(());
        }
        match check(self.logins_by_username.check_key(&pair.0)) {
            Ok(()) => Ok(()),
            Err(wait) if wait <= LOGIN_SLOWDOWN_AT_MOST => {
                // Every waiting attempt asks again once room is due; those that find none
                // (others took it) are refused, so the username's attempts never go faster
                // than its budget refills.
                tokio::time::sleep(wait).await;
                check(self.logins_by_username.check_key(&pair.0)).map_err(rate_limited)
            }
            Err(wait) => Err(rate_limited(wait)),
        }
    }

    /// A correct password was given from `address` for `username`: that pair's failures are
    /// forgotten, and the address becomes familiar to the username.
    pub fn login_succeeded(&self, address: IpAddr, username: &str) {
        let pair = (username.trim().to_ascii_lowercase(), address_key(address));
        self.logins_by_pair.forget(&pair);
        self.familiar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pair, Instant::now());
    }

    fn is_familiar(&self, pair: &(String, IpAddr)) -> bool {
        self.familiar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pair)
            .is_some_and(|since| since.elapsed() < FAMILIAR_FOR)
    }

    /// Counts a registration from `address`.
    ///
    /// # Errors
    /// [`AppError::RateLimited`] if the address is over its quota.
    pub fn register(&self, address: IpAddr) -> Result<(), AppError> {
        check_key(&self.registrations_by_address, &address_key(address))
    }

    /// Counts a message from `user`, on any of their connections.
    ///
    /// # Errors
    /// The time until the user's next message is allowed.
    pub async fn message(&self, user: UserId) -> Result<(), Duration> {
        let quota = Quota::per_minute(self.limits.messages_per_minute);
        if let Some(verdict) = self.check_shared(&format!("messages:{user}"), quota).await {
            return verdict;
        }
        check(self.messages_by_user.check_key(&user))
    }

    /// Counts a server API request made with the API key `key_id`, on any instance.
    ///
    /// # Errors
    /// [`AppError::RateLimited`] if the key is over its quota.
    pub async fn api_request(&self, key_id: i64) -> Result<(), AppError> {
        let quota = Quota::per_minute(self.limits.api_requests_per_minute);
        let verdict = match self.check_shared(&format!("api:{key_id}"), quota).await {
            Some(verdict) => verdict,
            None => check(self.api_by_key.check_key(&key_id)),
        };
        verdict.map_err(rate_limited)
    }

    /// Asks the shared limiter, if there is one and it answers: `None` means "count on this
    /// instance" (no Redis, or Redis failing, which is logged once until it answers again).
    async fn check_shared(&self, key: &str, quota: Quota) -> Option<Result<(), Duration>> {
        let shared = self.shared.as_ref().filter(|_| self.shared_usable())?;
        match shared.check(key, quota).await {
            Ok(verdict) => {
                if self.lock_shared_failed().take().is_some() {
                    tracing::info!("the shared rate limits answer again");
                }
                Some(verdict)
            }
            Err(error) => {
                if self.lock_shared_failed().replace(Instant::now()).is_none() {
                    tracing::warn!(
                        %error,
                        "the shared rate limits can't be asked; each instance counts on its \
                         own meanwhile"
                    );
                }
                None
            }
        }
    }

    /// Whether to ask the shared limiter: yes, unless it failed moments ago.
    fn shared_usable(&self) -> bool {
        self.lock_shared_failed()
            .is_none_or(|failed| failed.elapsed() >= SHARED_RETRY_AFTER)
    }

    fn lock_shared_failed(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.shared_failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Limiters for one new WebSocket connection.
    pub fn connection(&self) -> ConnectionLimits {
        ConnectionLimits {
            typing: RateLimiter::direct(Quota::per_minute(self.limits.typing_per_minute)),
            receipts: RateLimiter::direct(Quota::per_minute(self.limits.receipts_per_minute)),
            invalid: RateLimiter::direct(
                Quota::per_second(NonZeroU32::MIN)
                    .allow_burst(NonZeroU32::MIN.saturating_add(INVALID_FRAMES_BURST - 1)),
            ),
            refusals: RateLimiter::direct(Quota::per_minute(
                NonZeroU32::MIN.saturating_add(REFUSALS_PER_MINUTE - 1),
            )),
        }
    }

    /// What to do with a typing signal from `user` in a conversation (see [`TypingRelay`]).
    pub fn typing(
        &self,
        user: UserId,
        conversation: ConversationId,
        active: bool,
    ) -> TypingVerdict {
        self.typing
            .decide(user, conversation, active, Instant::now())
    }

    /// At the time a [`TypingVerdict::StopAt`] named: whether the stop is still to be relayed.
    pub fn typing_stop_due(&self, user: UserId, conversation: ConversationId) -> bool {
        self.typing.stop_due(user, conversation, Instant::now())
    }

    /// The user stopped typing in a conversation without a signal saying so (they sent a
    /// message, or a connection closed): whether the other side still saw them typing.
    pub fn typing_stopped(&self, user: UserId, conversation: ConversationId) -> bool {
        self.typing.stopped(user, conversation)
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
        self.logins_by_pair.retain_recent();
        self.logins_by_address.retain_recent();
        self.logins_by_username.retain_recent();
        self.familiar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, since| since.elapsed() < FAMILIAR_FOR);
        self.registrations_by_address.retain_recent();
        self.uploads_by_user.retain_recent();
        self.messages_by_user.retain_recent();
        self.api_by_key.retain_recent();
        self.typing.forget_idle(Instant::now());
    }
}

/// One connection's limiters, and its record of misbehaviour.
pub struct ConnectionLimits {
    typing: DefaultDirectRateLimiter,
    receipts: DefaultDirectRateLimiter,
    invalid: DefaultDirectRateLimiter,
    refusals: DefaultDirectRateLimiter,
}

impl ConnectionLimits {
    /// Counts a typing signal; `Err` holds how long to wait.
    ///
    /// # Errors
    /// The time until the next typing signal is allowed.
    pub fn typing(&self) -> Result<(), Duration> {
        check(self.typing.check())
    }

    /// Counts a delivery or read receipt; `Err` holds how long to wait.
    ///
    /// # Errors
    /// The time until the next receipt is allowed.
    pub fn receipt(&self) -> Result<(), Duration> {
        check(self.receipts.check())
    }

    /// Counts an invalid frame. `false` once there have been too many in a short time: the
    /// connection is then closed.
    pub fn tolerate_invalid(&self) -> bool {
        self.invalid.check().is_ok()
    }

    /// Counts a frame refused (or dropped) for being over a rate limit. `false` once the
    /// connection keeps going over them: it is then closed.
    pub fn tolerate_refusal(&self) -> bool {
        self.refusals.check().is_ok()
    }
}

/// The address a client counts as, for every per-address limit: an IPv4 address written as
/// IPv6 is the IPv4 one, and an IPv6 address is its /64 (the block one subscriber is given).
pub fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

/// A limiter's answer as the time to wait, if any.
fn check(
    answer: Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
) -> Result<(), Duration> {
    answer.map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

fn check_key<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), AppError> {
    check(limiter.check_key(key)).map_err(rate_limited)
}

fn rate_limited(wait: Duration) -> AppError {
    AppError::RateLimited {
        retry_after_secs: retry_after_secs(wait),
    }
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
            api_requests_per_minute: n,
        }
    }

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const CAFE: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[tokio::test]
    async fn logins_are_limited_per_username_and_address() {
        let limits = RateLimits::new(limits(2));
        assert!(limits.login(HOME, "ann").await.is_ok());
        assert!(limits.login(HOME, "ANN ").await.is_ok());
        // This address is spent for ann (in any case)...
        let refused = limits.login(HOME, "ann").await.unwrap_err();
        assert!(
            matches!(refused, AppError::RateLimited { retry_after_secs } if retry_after_secs >= 1)
        );
        // ...but not for anyone else, and ann may still sign in from elsewhere.
        assert!(limits.login(HOME, "bob").await.is_ok());
        assert!(limits.login(CAFE, "ann").await.is_ok());
    }

    #[tokio::test]
    async fn a_correct_sign_in_gives_the_pair_its_budget_back() {
        let limits = RateLimits::new(limits(3));
        for _ in 0..2 {
            assert!(limits.login(HOME, "ann").await.is_ok());
        }
        limits.login_succeeded(HOME, "Ann");
        for attempt in 0..3 {
            assert!(limits.login(HOME, "ann").await.is_ok(), "attempt {attempt}");
        }
        assert!(limits.login(HOME, "ann").await.is_err());
    }

    #[tokio::test]
    async fn an_address_has_a_budget_of_its_own() {
        let limits = RateLimits::new(limits(1));
        for username in ["a1", "a2", "a3", "a4", "a5"] {
            assert!(limits.login(HOME, username).await.is_ok(), "{username}");
        }
        assert!(
            limits.login(HOME, "a6").await.is_err(),
            "five pairs' worth, then no more"
        );
        assert!(limits.login(CAFE, "a6").await.is_ok());
    }

    /// Attempts for one username from many addresses at once go no faster than its budget
    /// (ten a minute here): the eleventh waits, and is refused when room is further away than
    /// the wait allows; the owner, from an address they signed in from, is not held up.
    #[tokio::test]
    async fn a_username_tried_from_everywhere_is_slowed_down_but_not_its_owner() {
        let limits = RateLimits::new(limits(1));
        limits.login(HOME, "ann").await.unwrap();
        limits.login_succeeded(HOME, "ann");
        for last in 0..9 {
            let address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
            assert!(limits.login(address, "ann").await.is_ok(), "{last}");
        }
        let stranger = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99));
        assert!(matches!(
            limits.login(stranger, "ann").await,
            Err(AppError::RateLimited { .. })
        ));
        assert!(
            limits.login(HOME, "ann").await.is_ok(),
            "the owner is not held up"
        );
    }

    #[test]
    fn addresses_count_as_subscribers_have_them() {
        let mapped: IpAddr = "::ffff:203.0.113.5".parse().unwrap();
        assert_eq!(
            address_key(mapped),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(one), address_key(other), "one /64");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_ne!(address_key(one), address_key(elsewhere));
        assert_eq!(address_key(HOME), HOME);
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let limits = RateLimits::new(limits(1));
        assert!(limits.register(HOME).is_ok());
        assert!(limits.register(HOME).is_err());
    }

    #[tokio::test]
    async fn messages_are_limited_per_user_not_per_connection() {
        let limits = RateLimits::new(limits(3));
        let (ann, bob) = (UserId(1), UserId(2));
        for _ in 0..3 {
            assert!(limits.message(ann).await.is_ok());
        }
        let wait = limits.message(ann).await.unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limits.message(bob).await.is_ok(), "bob has his own budget");
        let connection = limits.connection();
        assert!(
            connection.typing().is_ok(),
            "typing has a budget of its own"
        );
    }

    #[tokio::test]
    async fn api_requests_are_limited_per_key() {
        let limits = RateLimits::new(limits(2));
        assert!(limits.api_request(1).await.is_ok());
        assert!(limits.api_request(1).await.is_ok());
        assert!(matches!(
            limits.api_request(1).await,
            Err(AppError::RateLimited { retry_after_secs }) if retry_after_secs >= 1
        ));
        assert!(
            limits.api_request(2).await.is_ok(),
            "another key, another budget"
        );
    }

    /// A shared store that is down, counting how often it is asked.
    #[derive(Default)]
    struct Unreachable(std::sync::atomic::AtomicU32);

    #[async_trait::async_trait]
    impl SharedLimiter for Unreachable {
        async fn check(&self, _: &str, _: Quota) -> Result<Result<(), Duration>, String> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err("connection refused".into())
        }
    }

    #[tokio::test]
    async fn without_the_shared_store_each_instance_counts_alone() {
        let store = Arc::new(Unreachable::default());
        let limits = RateLimits::with_shared(limits(2), store.clone());
        assert!(limits.message(UserId(1)).await.is_ok());
        assert!(limits.message(UserId(1)).await.is_ok());
        assert!(limits.message(UserId(1)).await.is_err());
        assert_eq!(
            store.0.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "asked once, then left alone for a while"
        );
    }

    #[test]
    fn misbehaving_connections_run_out_of_tolerance() {
        let connection = RateLimits::new(limits(5)).connection();
        for _ in 0..INVALID_FRAMES_BURST {
            assert!(connection.tolerate_invalid());
        }
        assert!(!connection.tolerate_invalid());
        for _ in 0..REFUSALS_PER_MINUTE {
            assert!(connection.tolerate_refusal());
        }
        assert!(!connection.tolerate_refusal());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
