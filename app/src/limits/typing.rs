//! The typing relay: which typing signals reach the other participant, so that a burst of
//! them (from one connection or many) becomes at most one per conversation per throttle
//! interval, and a stop is never lost.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::model::{ConversationId, TYPING_THROTTLE_MS, TYPING_TTL_MS, UserId};

/// What becomes of a typing signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypingVerdict {
    /// Relay it to the other participant now.
    Relay,
    /// Drop it: nothing would change on the other side, or it is too soon after the last.
    Drop,
    /// A stop that came too soon after the last relay: relay it at this time, if it is still
    /// true then (ask [`super::RateLimits::typing_stop_due`]).
    StopAt(Instant),
}

/// Typing signals of each (user, conversation), on this instance: what was last relayed and
/// when. At most one signal is relayed per conversation per [`TYPING_THROTTLE_MS`], whichever
/// of the user's connections sends them; a stop that comes sooner is held until the interval
/// ends, so the indicator still goes away promptly.
#[derive(Default)]
pub(super) struct TypingRelay {
    /// A `std` mutex: held for a map operation, never across `.await`.
    relayed: Mutex<std::collections::HashMap<(UserId, ConversationId), Relayed>>,
}

#[derive(Debug, Clone, Copy)]
struct Relayed {
    at: Instant,
    active: bool,
    /// A stop is waiting for the interval to end.
    stop_held: bool,
    /// Someone will ask [`TypingRelay::stop_due`] when the interval ends (one timer per
    /// interval, however many stops come).
    timer_set: bool,
}

impl Relayed {
    fn now(at: Instant, active: bool) -> Self {
        Self {
            at,
            active,
            stop_held: false,
            timer_set: false,
        }
    }
}

fn throttle() -> Duration {
    Duration::from_millis(u64::from(TYPING_THROTTLE_MS))
}

impl TypingRelay {
    pub(super) fn decide(
        &self,
        user: UserId,
        conversation: ConversationId,
        active: bool,
        now: Instant,
    ) -> TypingVerdict {
        let mut relayed = self.relayed.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = relayed.get_mut(&(user, conversation));
        let Some(last) = entry else {
            if !active {
                // Nothing was relayed, so there is nothing to cancel.
                return TypingVerdict::Drop;
            }
            relayed.insert((user, conversation), Relayed::now(now, active));
            return TypingVerdict::Relay;
        };
        let due = now.saturating_duration_since(last.at) >= throttle();
        match (active, last.active) {
            // Still typing: a held stop is off.
            (true, true) => {
                last.stop_held = false;
                if due {
                    last.at = now;
                    TypingVerdict::Relay
                } else {
                    TypingVerdict::Drop
                }
            }
            (true, false) | (false, true) if due => {
                *last = Relayed::now(now, active);
                TypingVerdict::Relay
            }
            (false, true) => {
                last.stop_held = true;
                if last.timer_set {
                    TypingVerdict::Drop
                } else {
                    last.timer_set = true;
                    TypingVerdict::StopAt(last.at + throttle())
                }
            }
            // Started again too soon after a stop (the next renewal, at most one interval
            // later, is relayed), or a stop when the last word was already a stop.
            (true, false) | (false, false) => TypingVerdict::Drop,
        }
    }

    pub(super) fn stop_due(
        &self,
        user: UserId,
        conversation: ConversationId,
        now: Instant,
    ) -> bool {
        let mut relayed = self.relayed.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(last) = relayed.get_mut(&(user, conversation)) else {
            return false;
        };
        last.timer_set = false;
        if last.active && last.stop_held {
            *last = Relayed::now(now, false);
            true
        } else {
            false
        }
    }

    /// Typing ended without a signal (a message, a closed connection): forgotten, so the next
    /// start is relayed at once (a message is not a typing signal the throttle counts; it has
    /// a rate limit of its own).
    pub(super) fn stopped(&self, user: UserId, conversation: ConversationId) -> bool {
        let mut relayed = self.relayed.lock().unwrap_or_else(PoisonError::into_inner);
        relayed
            .remove(&(user, conversation))
            .is_some_and(|last| last.active)
    }

    /// Forgets conversations where nobody has typed for longer than an indicator lasts.
    pub(super) fn forget_idle(&self, now: Instant) {
        let ttl = Duration::from_millis(u64::from(TYPING_TTL_MS));
        self.relayed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, last| now.saturating_duration_since(last.at) < ttl + throttle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_is_relayed_at_most_once_per_interval() {
        let relay = TypingRelay::default();
        let (ann, chat) = (UserId(1), ConversationId(7));
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(
            relay.decide(ann, chat, false, at(0)),
            TypingVerdict::Drop,
            "nothing to stop"
        );
        assert_eq!(relay.decide(ann, chat, true, at(0)), TypingVerdict::Relay);
        // A burst: renewals, and starts and stops, within the interval.
        let mut relayed = 0;
        let mut held = Vec::new();
        for i in 0..100 {
            match relay.decide(ann, chat, i % 2 == 0, at(10 + i * 10)) {
                TypingVerdict::Relay => relayed += 1,
                TypingVerdict::StopAt(when) => held.push(when),
                TypingVerdict::Drop => {}
            }
        }
        assert_eq!(relayed, 0, "nothing more within the interval");
        // The last word was a stop (i = 99): it is relayed when the interval ends, by the
        // one timer set for it.
        assert_eq!(held, [at(u64::from(TYPING_THROTTLE_MS))]);
        assert!(relay.stop_due(ann, chat, at(2_000)));
        assert!(!relay.stop_due(ann, chat, at(2_001)), "once");
        // A renewal after the interval goes through again.
        assert_eq!(
            relay.decide(ann, chat, true, at(4_001)),
            TypingVerdict::Relay
        );
        // Typing again after a held stop cancels it.
        assert!(matches!(
            relay.decide(ann, chat, false, at(4_100)),
            TypingVerdict::StopAt(_)
        ));
        assert_eq!(
            relay.decide(ann, chat, true, at(4_200)),
            TypingVerdict::Drop
        );
        assert!(!relay.stop_due(ann, chat, at(6_001)));
        // A message (or a closed connection) ends typing without a signal of its own.
        assert!(relay.stopped(ann, chat), "the other side still sees typing");
        assert!(!relay.stopped(ann, chat), "not any more");
        assert_eq!(
            relay.decide(ann, chat, false, at(6_200)),
            TypingVerdict::Drop
        );
        // Typing again straight after a message is shown at once.
        assert_eq!(
            relay.decide(ann, chat, true, at(6_300)),
            TypingVerdict::Relay
        );
        // Another conversation is counted apart.
        assert_eq!(
            relay.decide(ann, ConversationId(8), true, at(8_500)),
            TypingVerdict::Relay
        );
        relay.forget_idle(at(60_000));
        assert!(relay.relayed.lock().unwrap().is_empty());
    }
}
