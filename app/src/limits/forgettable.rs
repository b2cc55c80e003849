//! A keyed rate limiter that can give one key its whole budget back: a correct sign-in resets
//! its (username, address) pair, which governor's own keyed store cannot do.

use std::{hash::Hash, sync::Arc, time::Duration};

use dashmap::DashMap;
use governor::{
    Quota, RateLimiter,
    clock::DefaultClock,
    nanos::Nanos,
    state::{InMemoryState, StateStore, keyed::ShrinkableKeyedStateStore},
};

use super::check;

/// A keyed limiter whose keys can be reset one by one (governor's own store can't reach a
/// single key): the state is a [`DashMap`] shared between the limiter and this handle.
pub(super) struct ForgettableLimiter<K: Hash + Eq + Clone> {
    store: SharedStore<K>,
    limiter: RateLimiter<K, SharedStore<K>, DefaultClock>,
}

impl<K: Hash + Eq + Clone> ForgettableLimiter<K> {
    pub(super) fn new(quota: Quota) -> Self {
        let store = SharedStore(Arc::new(DashMap::new()));
        Self {
            limiter: RateLimiter::new(quota, store.clone(), DefaultClock::default()),
            store,
        }
    }

    pub(super) fn check(&self, key: &K) -> Result<(), Duration> {
        check(self.limiter.check_key(key))
    }

    /// Gives `key` its whole budget back.
    pub(super) fn forget(&self, key: &K) {
        self.store.0.remove(key);
    }

    pub(super) fn retain_recent(&self) {
        self.limiter.retain_recent();
    }
}

/// The state of a [`ForgettableLimiter`]: governor's `DashMap` store, behind an `Arc`.
struct SharedStore<K: Hash + Eq + Clone>(Arc<DashMap<K, InMemoryState>>);

impl<K: Hash + Eq + Clone> Clone for SharedStore<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: Hash + Eq + Clone> StateStore for SharedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for SharedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
