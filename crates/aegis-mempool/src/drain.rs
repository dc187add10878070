//! How fast the pool drains, as observed from the commits it was told about, and from that
//! how long a refused client should wait before retrying.
//!
//! The pool is pure, so it cannot watch a clock: every `remove_committed` call brings the
//! caller's `now_ms` and is recorded as one sample (when, how many transactions and bytes left
//! the pool). The rule, with the samples taken at most [`DRAIN_HORIZON_MS`] before `now_ms`
//! (and at most [`DRAIN_SAMPLES_MAX`] of them):
//!
//! - fewer than two samples, or no time between the oldest and now: no rate is known, answer
//!   [`RETRY_AFTER_DEFAULT_MS`];
//! - otherwise the rate is what the samples after the oldest removed (the oldest one only marks
//!   where the observation starts: what it removed drained before it), divided by the time
//!   from the oldest to `now_ms`, for transactions and for bytes separately;
//! - the wait is the longer of `excess_transactions / transaction rate` and
//!   `excess_bytes / byte rate` (rounded up; an excess with a zero rate waits the maximum);
//! - clamped to [`RETRY_AFTER_MIN_MS`]..=[`RETRY_AFTER_MAX_MS`].

use std::collections::VecDeque;

/// Shortest wait ever advised, so that clients of a nearly drained pool do not spin.
pub const RETRY_AFTER_MIN_MS: u64 = 1_000;
/// Longest wait ever advised, so that a stalled or slow chain never tells clients to go away
/// for good.
pub const RETRY_AFTER_MAX_MS: u64 = 60_000;
/// The wait advised while no drain rate is known (no or one recent commit).
pub const RETRY_AFTER_DEFAULT_MS: u64 = 5_000;
/// How far back commits count towards the drain rate.
pub const DRAIN_HORIZON_MS: u64 = 60_000;
/// How many commit samples are remembered at most.
pub const DRAIN_SAMPLES_MAX: usize = 32;

const _: () = assert!(0 < RETRY_AFTER_MIN_MS);
const _: () = assert!(RETRY_AFTER_MIN_MS <= RETRY_AFTER_DEFAULT_MS);
const _: () = assert!(RETRY_AFTER_DEFAULT_MS <= RETRY_AFTER_MAX_MS);
// A rate needs a start sample and at least one after it.
const _: () = assert!(DRAIN_SAMPLES_MAX >= 2);

/// One `remove_committed` call: when, and how much left the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DrainSample {
    at_ms: u64,
    transactions: u64,
    bytes: u64,
}

/// The last [`DRAIN_SAMPLES_MAX`] commit samples, oldest first, with non-decreasing times.
#[derive(Debug, Clone, Default)]
pub struct DrainMeter {
    samples: VecDeque<DrainSample>,
}

impl DrainMeter {
    pub fn new() -> DrainMeter {
        DrainMeter::default()
    }

    /// Records that `transactions` transactions of `bytes` bytes left the pool at `now_ms`.
    /// A time earlier than the last sample's (a clock that stepped back) counts as the last
    /// sample's time, so samples stay ordered.
    pub fn record(&mut self, now_ms: u64, transactions: u64, bytes: u64) {
        let at_ms = self
            .samples
            .back()
            .map_or(now_ms, |last| now_ms.max(last.at_ms));
        if self.samples.len() == DRAIN_SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back(DrainSample {
            at_ms,
            transactions,
            bytes,
        });
        assert!(self.samples.len() <= DRAIN_SAMPLES_MAX);
    }

    /// How long to wait, from `now_ms`, until `excess_transactions` transactions and
    /// `excess_bytes` bytes have drained (the module documentation gives the rule).
    pub fn retry_after_ms(&self, now_ms: u64, excess_transactions: u64, excess_bytes: u64) -> u64 {
        let mut window = self
            .samples
            .iter()
            .skip_while(|sample| now_ms.saturating_sub(sample.at_ms) > DRAIN_HORIZON_MS);
        let Some(oldest) = window.next() else {
            return RETRY_AFTER_DEFAULT_MS;
        };
        let span_ms = now_ms.saturating_sub(oldest.at_ms);
        let (mut drained_transactions, mut drained_bytes, mut later) = (0u64, 0u64, 0usize);
        for sample in window {
            drained_transactions = drained_transactions.saturating_add(sample.transactions);
            drained_bytes = drained_bytes.saturating_add(sample.bytes);
            later += 1;
        }
        if later == 0 || span_ms == 0 {
            return RETRY_AFTER_DEFAULT_MS;
        }
        let wait_ms = wait_ms(excess_transactions, drained_transactions, span_ms).max(wait_ms(
            excess_bytes,
            drained_bytes,
            span_ms,
        ));
        wait_ms.clamp(RETRY_AFTER_MIN_MS, RETRY_AFTER_MAX_MS)
    }
}

/// Time to drain `excess` at `drained` per `span_ms`, rounded up.
fn wait_ms(excess: u64, drained: u64, span_ms: u64) -> u64 {
    if excess == 0 {
        return 0;
    }
    if drained == 0 {
        return RETRY_AFTER_MAX_MS;
    }
    let wait = (u128::from(excess) * u128::from(span_ms)).div_ceil(u128::from(drained));
    u64::try_from(wait).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_samples_gives_the_default() {
        let meter = DrainMeter::new();
        assert_eq!(meter.retry_after_ms(10_000, 1, 100), RETRY_AFTER_DEFAULT_MS);
    }

    #[test]
    fn one_sample_gives_the_default() {
        let mut meter = DrainMeter::new();
        meter.record(1_000, 500, 50_000);
        assert_eq!(meter.retry_after_ms(2_000, 1, 100), RETRY_AFTER_DEFAULT_MS);
    }

    #[test]
    fn samples_at_the_current_time_give_the_default() {
        let mut meter = DrainMeter::new();
        meter.record(1_000, 10, 1_000);
        meter.record(1_000, 10, 1_000);
        assert_eq!(meter.retry_after_ms(1_000, 1, 100), RETRY_AFTER_DEFAULT_MS);
    }

    #[test]
    fn wait_is_excess_over_rate() {
        let mut meter = DrainMeter::new();
        // Start mark at 0, then 100 transactions (10 kB) drained by t = 10 s: 10 tx/s, 1 kB/s.
        meter.record(0, 999, 999_999);
        meter.record(5_000, 50, 5_000);
        meter.record(10_000, 50, 5_000);
        // 30 transactions to drain at 10 tx/s: 3 s.
        assert_eq!(meter.retry_after_ms(10_000, 30, 0), 3_000);
        // 20 kB to drain at 1 kB/s: 20 s, longer than the transactions' 3 s.
        assert_eq!(meter.retry_after_ms(10_000, 30, 20_000), 20_000);
        // Time without commits dilutes the rate: at t = 20 s it is 5 tx/s.
        assert_eq!(meter.retry_after_ms(20_000, 30, 0), 6_000);
    }

    #[test]
    fn wait_is_rounded_up() {
        let mut meter = DrainMeter::new();
        meter.record(0, 0, 0);
        meter.record(30_000, 7, 700);
        // One transaction at 7 per 30 s takes 4,285.7 ms: advise 4,286.
        assert_eq!(meter.retry_after_ms(30_000, 1, 0), 4_286);
        assert_eq!(wait_ms(1, 3, 10), 4);
    }

    #[test]
    fn wait_is_clamped_to_its_bounds() {
        let mut meter = DrainMeter::new();
        meter.record(0, 0, 0);
        meter.record(1_000, 1_000, 1_000_000);
        assert_eq!(meter.retry_after_ms(1_000, 1, 1), RETRY_AFTER_MIN_MS);
        assert_eq!(
            meter.retry_after_ms(1_000, 1_000_000, 0),
            RETRY_AFTER_MAX_MS
        );
    }

    #[test]
    fn commits_that_drained_nothing_give_the_maximum() {
        let mut meter = DrainMeter::new();
        meter.record(0, 0, 0);
        meter.record(1_000, 0, 0);
        assert_eq!(meter.retry_after_ms(2_000, 1, 100), RETRY_AFTER_MAX_MS);
    }

    #[test]
    fn samples_beyond_the_horizon_are_ignored() {
        let mut meter = DrainMeter::new();
        meter.record(0, 0, 0);
        meter.record(1_000, 1_000, 1_000_000);
        let later = DRAIN_HORIZON_MS + 1;
        // Only the second sample is within the horizon: no rate.
        assert_eq!(meter.retry_after_ms(later, 1, 1), RETRY_AFTER_DEFAULT_MS);
    }

    #[test]
    fn keeps_at_most_the_sample_bound_and_ordered_times() {
        let mut meter = DrainMeter::new();
        for n in 0..(DRAIN_SAMPLES_MAX as u64 * 2) {
            meter.record(n * 10, 1, 1);
        }
        assert_eq!(meter.samples.len(), DRAIN_SAMPLES_MAX);
        meter.record(0, 1, 1);
        let times: Vec<u64> = meter.samples.iter().map(|s| s.at_ms).collect();
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{times:?}");
    }
}
