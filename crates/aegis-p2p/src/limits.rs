//! Per-IP abuse limits: a token bucket on new connections and failure counting with bans.
//! Time comes in as an argument so the rules are tested without sleeping. Every map has a
//! named bound so a flood from many addresses cannot grow memory without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// Connections closed without sending a byte (port probes, health checks) allowed per
/// address within `failure_window`; each one beyond counts as an authentication failure,
/// so a source that keeps opening and closing connections is banned like any other.
pub const SILENT_CONNECTIONS_ALLOWED: u32 = 10;

/// Most addresses tracked by each table. Past it, stale entries are swept; if all are live,
/// the new address is treated as if it had a fresh entry that is not kept (rate limit) or
/// its failure is not counted (bans): honest peers keep working and memory stays bounded.
pub const MAX_TRACKED_IPS: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token bucket per IP: `burst_size` tokens, refilled at `requests_per_minute`.
#[derive(Debug)]
pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub fn new(config: &RateLimitConfig) -> RateLimiter {
        RateLimiter {
            capacity: f64::from(config.burst_size.max(1)),
            per_second: f64::from(config.requests_per_minute) / 60.0,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `ip`; false if it has none left.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_TRACKED_IPS {
            self.sweep(now);
            if self.buckets.len() >= MAX_TRACKED_IPS {
                return true;
            }
        }
        let capacity = self.capacity;
        let per_second = self.per_second;
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets that have refilled completely (they hold no information).
    pub fn sweep(&mut self, now: Instant) {
        let capacity = self.capacity;
        let per_second = self.per_second;
        self.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_second < capacity
        });
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// What recording a failure led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; `failures` so far in the window.
    Counted { failures: u32 },
    /// This failure reached `max_failures`: the address is now banned for `duration`.
    Banned { duration: Duration },
    /// Not tracked (limits disabled, or the table is full of live entries).
    Ignored,
}

/// Authentication failures per IP, and the bans they lead to.
#[derive(Debug)]
pub struct BanList {
    enabled: bool,
    max_failures: u32,
    window: Duration,
    block_duration: Duration,
    failures: HashMap<IpAddr, (u32, Instant)>,
    silent: HashMap<IpAddr, (u32, Instant)>,
    banned: HashMap<IpAddr, Instant>,
    /// The bans changed since [`BanList::take_changed`] last said so (they are persisted).
    changed: bool,
}

impl BanList {
    pub fn new(config: &RateLimitConfig) -> BanList {
        BanList {
            enabled: config.enabled,
            max_failures: config.max_failures.max(1),
            window: config.failure_window,
            block_duration: config.block_duration,
            failures: HashMap::new(),
            silent: HashMap::new(),
            banned: HashMap::new(),
            changed: false,
        }
    }

    /// Whether bans apply at all (`security.rate_limiting.enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Restores a ban read back from disk: `ip` stays banned for `remaining` from `now`, but
    /// never longer than `block_duration` (a shortened setting, or a clock that went back,
    /// does not make a ban outlast it). Ignored when bans are off, the ban has run out or
    /// the table is full; returns whether it was restored.
    pub fn restore(&mut self, ip: IpAddr, remaining: Duration, now: Instant) -> bool {
        let remaining = remaining.min(self.block_duration);
        if !self.enabled || remaining.is_zero() {
            return false;
        }
        if !self.banned.contains_key(&ip) && self.banned.len() >= MAX_TRACKED_IPS {
            return false;
        }
        self.banned.insert(ip, now + remaining);
        true
    }

    /// The live bans with the time each has left at `now`.
    pub fn bans(&self, now: Instant) -> Vec<(IpAddr, Duration)> {
        self.banned
            .iter()
            .filter(|(_, until)| now < **until)
            .map(|(ip, until)| (*ip, until.saturating_duration_since(now)))
            .collect()
    }

    /// Whether a ban was added or removed since the last call (and resets that).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Whether `ip` is banned at `now`; a ban that has run out is lifted here.
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.banned.get(&ip) {
            Some(&until) if now < until => true,
            Some(_) => {
                self.banned.remove(&ip);
                self.changed = true;
                false
            }
            None => false,
        }
    }

    /// How long the ban on `ip` lasts from `now`, if it is banned.
    pub fn ban_remaining(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.is_banned(ip, now) {
            self.banned
                .get(&ip)
                .map(|until| until.saturating_duration_since(now))
        } else {
            None
        }
    }

    /// Lifts the ban on `ip` (a validator authenticated from it) and forgets its
    /// failures; true if it was banned.
    pub fn lift(&mut self, ip: IpAddr) -> bool {
        self.failures.remove(&ip);
        self.silent.remove(&ip);
        let lifted = self.banned.remove(&ip).is_some();
        self.changed |= lifted;
        lifted
    }

    /// Records a connection from `ip` that closed without sending a byte; returns how many
    /// did within `failure_window` (this one included), 0 when limits are off or the table
    /// is full of live entries. Past [`SILENT_CONNECTIONS_ALLOWED`] the caller counts it
    /// as a failure.
    pub fn record_silent(&mut self, ip: IpAddr, now: Instant) -> u32 {
        if !self.enabled {
            return 0;
        }
        let window = self.window;
        if !self.silent.contains_key(&ip) && self.silent.len() >= MAX_TRACKED_IPS {
            self.silent
                .retain(|_, (_, first)| now.saturating_duration_since(*first) < window);
            if self.silent.len() >= MAX_TRACKED_IPS {
                return 0;
            }
        }
        let entry = self.silent.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        entry.0
    }

    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> FailureOutcome {
        if !self.enabled {
            return FailureOutcome::Ignored;
        }
        if !self.failures.contains_key(&ip) && self.failures.len() >= MAX_TRACKED_IPS {
            let window = self.window;
            self.failures
                .retain(|_, (_, first)| now.saturating_duration_since(*first) < window);
            if self.failures.len() >= MAX_TRACKED_IPS {
                return FailureOutcome::Ignored;
            }
        }
        let entry = self.failures.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 += 1;
        let failures = entry.0;
        if failures < self.max_failures {
            return FailureOutcome::Counted { failures };
        }
        self.failures.remove(&ip);
        if self.banned.len() >= MAX_TRACKED_IPS {
            self.banned.retain(|_, until| now < *until);
            self.changed = true;
            if self.banned.len() >= MAX_TRACKED_IPS {
                return FailureOutcome::Ignored;
            }
        }
        self.banned.insert(ip, now + self.block_duration);
        self.changed = true;
        FailureOutcome::Banned {
            duration: self.block_duration,
        }
    }

    /// A successful authentication clears the address's failures.
    pub fn record_success(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }

    /// Lifts bans that ran out; returns the addresses released.
    pub fn sweep(&mut self, now: Instant) -> Vec<IpAddr> {
        let expired: Vec<IpAddr> = self
            .banned
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &expired {
            self.banned.remove(ip);
        }
        self.changed |= !expired.is_empty();
        let window = self.window;
        self.failures
            .retain(|_, (_, first)| now.saturating_duration_since(*first) < window);
        self.silent
            .retain(|_, (_, first)| now.saturating_duration_since(*first) < window);
        expired
    }

    pub fn banned_count(&self) -> usize {
        self.banned.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateLimitConfig {
        RateLimitConfig {
            enabled: true,
            requests_per_minute: 60,
            burst_size: 3,
            block_duration: Duration::from_secs(10),
            max_failures: 3,
            failure_window: Duration::from_secs(600),
        }
    }

    #[test]
    fn bucket_allows_a_burst_then_the_sustained_rate() {
        let mut limiter = RateLimiter::new(&config());
        let ip: IpAddr = [203, 0, 113, 45].into();
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow(ip, t0)));
        assert!(!limiter.allow(ip, t0));
        // 60 per minute: one token per second.
        assert!(limiter.allow(ip, t0 + Duration::from_secs(1)));
        assert!(!limiter.allow(ip, t0 + Duration::from_secs(1)));
        // Another address is unaffected.
        assert!(limiter.allow([203, 0, 113, 46].into(), t0));
    }

    #[test]
    fn ban_after_max_failures_and_release_after_block_duration() {
        let mut bans = BanList::new(&config());
        let ip: IpAddr = [203, 0, 113, 45].into();
        let t0 = Instant::now();
        assert_eq!(
            bans.record_failure(ip, t0),
            FailureOutcome::Counted { failures: 1 }
        );
        assert_eq!(
            bans.record_failure(ip, t0),
            FailureOutcome::Counted { failures: 2 }
        );
        assert!(!bans.is_banned(ip, t0));
        assert_eq!(
            bans.record_failure(ip, t0),
            FailureOutcome::Banned {
                duration: Duration::from_secs(10)
            }
        );
        assert!(bans.is_banned(ip, t0 + Duration::from_secs(9)));
        assert_eq!(bans.sweep(t0 + Duration::from_secs(10)), vec![ip]);
        assert!(!bans.is_banned(ip, t0 + Duration::from_secs(10)));
    }

    /// Issue 10, finding 3: connections that send nothing are free only up to a named
    /// number per window; a validator authenticating from the address lifts its ban.
    #[test]
    fn silent_connections_count_past_the_allowance_and_a_ban_can_be_lifted() {
        let mut bans = BanList::new(&config());
        let ip: IpAddr = [203, 0, 113, 45].into();
        let t0 = Instant::now();
        let counts: Vec<u32> = (0..SILENT_CONNECTIONS_ALLOWED + 2)
            .map(|_| bans.record_silent(ip, t0))
            .collect();
        assert_eq!(counts.last(), Some(&(SILENT_CONNECTIONS_ALLOWED + 2)));
        assert_eq!(bans.record_silent(ip, t0 + Duration::from_secs(600)), 1);
        for _ in 0..3 {
            bans.record_failure(ip, t0);
        }
        assert_eq!(
            bans.ban_remaining(ip, t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert!(bans.lift(ip));
        assert!(!bans.is_banned(ip, t0));
        assert!(!bans.lift(ip));
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let mut bans = BanList::new(&config());
        let ip: IpAddr = [203, 0, 113, 45].into();
        let t0 = Instant::now();
        bans.record_failure(ip, t0);
        bans.record_failure(ip, t0);
        let later = t0 + Duration::from_secs(601);
        assert_eq!(
            bans.record_failure(ip, later),
            FailureOutcome::Counted { failures: 1 }
        );
    }

    #[test]
    fn restored_bans_last_what_was_left_capped_at_block_duration_and_changes_are_reported() {
        let mut bans = BanList::new(&config());
        let ip: IpAddr = [203, 0, 113, 45].into();
        let t0 = Instant::now();
        assert!(!bans.take_changed());
        assert!(bans.restore(ip, Duration::from_secs(4), t0));
        assert!(bans.is_banned(ip, t0 + Duration::from_secs(3)));
        assert!(!bans.is_banned(ip, t0 + Duration::from_secs(4)));
        assert!(bans.take_changed(), "the expiry is a change");
        // Longer than block_duration (10 s): capped.
        assert!(bans.restore(ip, Duration::from_secs(3600), t0));
        assert_eq!(bans.bans(t0), vec![(ip, Duration::from_secs(10))]);
        assert!(!bans.restore(ip, Duration::ZERO, t0));
        for _ in 0..3 {
            bans.record_failure([203, 0, 113, 46].into(), t0);
        }
        assert!(bans.take_changed());
        assert!(!bans.take_changed());
        let mut off = BanList::new(&RateLimitConfig {
            enabled: false,
            ..config()
        });
        assert!(
            !off.restore(ip, Duration::from_secs(4), t0),
            "no bans when limits are off"
        );
        assert!(!off.is_banned(ip, t0));
    }
}
