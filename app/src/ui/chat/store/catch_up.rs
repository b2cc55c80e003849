//! Catching up after a connection dropped: a request made while one runs makes it go round
//! once more, rather than start a second one (the socket task, `live.rs`, does the fetching).
use leptos::prelude::*;

use super::{ChatStore, Inner, Thread};
impl ChatStore {
    /// Asks for a catch-up. Returns `true` if the caller should run it (none was running);
    /// otherwise the running one will go round again.
    pub fn request_catch_up(&self) -> bool {
        let mut start = false;
        self.inner.update_value(|Inner { catch_up: c, .. }| {
            c.requested += 1;
            start = !c.running;
            c.running = true;
        });
        start
    }

    /// How many catch-ups have been asked for so far.
    pub fn catch_up_requests(&self) -> u64 {
        self.inner.with_value(|inner| inner.catch_up.requested)
    }

    /// A catch-up round that started when `handled` had been asked for is done. Returns
    /// `true` if more were asked for meanwhile and it must go round again.
    pub fn finish_catch_up(&self, handled: u64) -> bool {
        let mut again = false;
        self.inner.update_value(|Inner { catch_up: c, .. }| {
            again = c.requested != handled;
            c.running = again;
        });
        again
    }

    /// Whether the open conversation is missing messages it should fetch.
    pub fn needs_catch_up(&self) -> bool {
        self.thread.with_untracked(Thread::has_gap)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn catch_ups_asked_for_while_one_runs_make_it_go_round_again() {
        with_store(|store, _frames| {
            assert!(store.request_catch_up(), "the first request starts one");
            let handled = store.catch_up_requests();
            assert!(!store.request_catch_up(), "a second one is not started");
            assert!(store.finish_catch_up(handled), "the running one goes again");
            let handled = store.catch_up_requests();
            assert!(!store.finish_catch_up(handled));
            assert!(
                store.request_catch_up(),
                "after it is done, a new one may start"
            );
        });
    }
}
