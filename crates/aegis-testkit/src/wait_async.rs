//! The waits of [`crate::wait`] for async tests (feature `tokio`): the same deadlines and
//! messages, sleeping on tokio's timer so the runtime's other tasks run meanwhile.
//!
//! [`wait_until`], [`wait_for`] and [`wait_for_onset`] poll a synchronous condition (a
//! counter, a flag, a file); [`retry_until`] and [`retry_for`] repeat an async operation (a
//! query, a connection, an append) until it gives what the test waits for.

use std::time::{Duration, Instant};

use crate::wait::{Awaited, POLL_INTERVAL, timed_out};

/// Polls `condition` every [`POLL_INTERVAL`] until it holds, and returns the time right
/// after the check that saw it hold (it became true before that); panics naming `what` once
/// `timeout` has passed.
pub async fn wait_until(
    timeout: Duration,
    what: impl Awaited,
    mut condition: impl FnMut() -> bool,
) -> Instant {
    retry_until(timeout, what, async || condition()).await
}

/// Polls `probe` until it gives a value, and returns it; panics naming `what` at the deadline.
pub async fn wait_for<T>(
    timeout: Duration,
    what: impl Awaited,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    retry_for(timeout, what, async || probe()).await
}

/// Like [`wait_until`], but returns the time of the last check that saw `condition` false,
/// or `known_false_at` (a time the caller knows it was false) if none did: the condition
/// became true after the returned instant. With [`wait_until`] for its end, this bounds how
/// long a state lasted from above, whatever the polling delays on a loaded machine.
pub async fn wait_for_onset(
    known_false_at: Instant,
    timeout: Duration,
    what: impl Awaited,
    mut condition: impl FnMut() -> bool,
) -> Instant {
    let mut last_false = known_false_at;
    retry_until(timeout, what, async || {
        let checked = Instant::now();
        let holds = condition();
        if !holds {
            last_false = checked;
        }
        holds
    })
    .await;
    last_false
}

/// Runs `attempt` every [`POLL_INTERVAL`] until it returns true, and returns the time right
/// after the attempt that did; panics naming `what` once `timeout` has passed.
pub async fn retry_until(
    timeout: Duration,
    what: impl Awaited,
    mut attempt: impl AsyncFnMut() -> bool,
) -> Instant {
    let started = Instant::now();
    loop {
        if attempt().await {
            return Instant::now();
        }
        if started.elapsed() >= timeout {
            timed_out(timeout, what);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Runs `attempt` until it gives a value, and returns it; panics naming `what` at the deadline.
pub async fn retry_for<T>(
    timeout: Duration,
    what: impl Awaited,
    mut attempt: impl AsyncFnMut() -> Option<T>,
) -> T {
    let mut found = None;
    retry_until(timeout, what, async || {
        found = attempt().await;
        found.is_some()
    })
    .await;
    found.expect("the attempt succeeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_onset_is_after_the_last_check_that_saw_the_condition_false() {
        let started = Instant::now();
        let mut polls = 0;
        let onset = wait_for_onset(started, Duration::from_secs(5), "three polls", || {
            polls += 1;
            polls == 3
        })
        .await;
        assert!(onset > started);
        let held = wait_until(Duration::from_secs(5), "at once", || true).await;
        assert!(held - onset >= POLL_INTERVAL);
        assert_eq!(
            wait_for_onset(held, Duration::from_secs(5), "at once", || true).await,
            held
        );
    }

    #[tokio::test]
    async fn retries_an_async_attempt_until_it_succeeds() {
        let mut attempts = Vec::new();
        let value = retry_for(Duration::from_secs(5), "the third attempt", async || {
            tokio::task::yield_now().await;
            attempts.push(attempts.len());
            (attempts.len() == 3).then_some(attempts.len())
        })
        .await;
        assert_eq!(value, 3);
        assert_eq!(attempts, [0, 1, 2]);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 40ms waiting for nothing")]
    async fn an_attempt_that_never_succeeds_times_out() {
        retry_until(Duration::from_millis(40), "nothing", async || false).await;
    }
}
