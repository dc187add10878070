//! Waiting on a condition with a deadline: tests never sleep for a guessed time, they poll
//! what they wait for and fail with what they waited for once the deadline passes.

use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `condition` until it holds, and returns how long that took; panics naming `what`
/// once `timeout` has passed.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if condition() {
            return started.elapsed();
        }
        if started.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `probe` until it gives a value, and returns it; panics naming `what` at the deadline.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    wait_until(timeout, what, || {
        found = probe();
        found.is_some()
    });
    found.expect("the condition held")
}
