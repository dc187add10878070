//! Waiting on a condition with a deadline: tests never sleep for a guessed time, they poll
//! what they wait for and fail with what they waited for once the deadline passes.
//!
//! These waits block the thread; async tests use `wait_async` (feature `tokio`),
//! which has the same functions and sleeps on tokio's timer instead.

use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a wait is for, as its panic message names it: a `&str` or a `String`, or a closure
/// that writes the description when the deadline passes, so the message can show the state
/// the test saw last (a log file, counters).
pub trait Awaited {
    /// The description, made once the wait has timed out.
    fn describe(self) -> String;
}

impl Awaited for &str {
    fn describe(self) -> String {
        self.to_owned()
    }
}

impl Awaited for String {
    fn describe(self) -> String {
        self
    }
}

impl<F: FnOnce() -> String> Awaited for F {
    fn describe(self) -> String {
        self()
    }
}

/// The panic of a wait that ran out of time.
pub(crate) fn timed_out(timeout: Duration, what: impl Awaited) -> ! {
    panic!(
        "timed out after {timeout:?} waiting for {}",
        what.describe()
    )
}

/// Polls `condition` every [`POLL_INTERVAL`] until it holds, and returns the time right
/// after the check that saw it hold (it became true before that); panics naming `what` once
/// `timeout` has passed.
pub fn wait_until(
    timeout: Duration,
    what: impl Awaited,
    mut condition: impl FnMut() -> bool,
) -> Instant {
    let started = Instant::now();
    loop {
        if condition() {
            return Instant::now();
        }
        if started.elapsed() >= timeout {
            timed_out(timeout, what);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `probe` until it gives a value, and returns it; panics naming `what` at the deadline.
pub fn wait_for<T>(
    timeout: Duration,
    what: impl Awaited,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let mut found = None;
    wait_until(timeout, what, || {
        found = probe();
        found.is_some()
    });
    found.expect("the condition held")
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn returns_once_the_condition_holds() {
        let polls = Cell::new(0);
        let before = Instant::now();
        let held_at = wait_until(Duration::from_secs(5), "three polls", || {
            polls.set(polls.get() + 1);
            polls.get() == 3
        });
        assert_eq!(polls.get(), 3);
        assert!(held_at - before >= 2 * POLL_INTERVAL);
        let mut left = 2;
        let value = wait_for(Duration::from_secs(5), "a value", || {
            left -= 1;
            (left == 0).then_some("found")
        });
        assert_eq!(value, "found");
    }

    #[test]
    fn the_panic_names_what_was_awaited_as_seen_at_the_deadline() {
        let polls = Cell::new(0);
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(
                Duration::from_millis(50),
                || format!("ready after {} polls", polls.get()),
                || {
                    polls.set(polls.get() + 1);
                    false
                },
            )
        }))
        .unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.starts_with("timed out after 50ms waiting for ready after "));
        assert!(message.ends_with(&format!("after {} polls", polls.get())));
    }
}
