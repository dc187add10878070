//! Per-IP request rate limit of the API port (`security.rate_limiting`): a token bucket per
//! client address, `burst_size` tokens refilled at `requests_per_minute`. Time comes in as
//! an argument so the rule is tested without sleeping. The table of addresses has a named
//! bound, so a flood from many addresses cannot grow memory without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most client addresses tracked at once. Past it, buckets that have refilled are dropped;
/// if every tracked address is still live, a new address is let through untracked: honest
/// clients keep working and memory stays bounded (the connection bound still applies).
pub const MAX_TRACKED_CLIENTS: usize = 65_536;

/// The per-IP limit, from `security.rate_limiting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// When false, no request is limited.
    pub enabled: bool,
    /// Sustained requests per minute from one IP address (at least 1 when enabled).
    pub requests_per_minute: u32,
    /// Requests one address may send in a burst above the sustained rate.
    pub burst_size: u32,
    /// Whether clients on the node's own host (127.0.0.0/8, ::1) are exempt: a reverse
    /// proxy in front of the API, the operator's tools and `aegis devnet` talk from there,
    /// and a proxy limits its own clients.
    pub exempt_loopback: bool,
}

impl Default for RateLimit {
    /// The guide's defaults: 100 requests a minute with bursts of 20.
    fn default() -> RateLimit {
        RateLimit {
            enabled: true,
            requests_per_minute: 100,
            burst_size: 20,
            exempt_loopback: true,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The token buckets of the client addresses seen recently.
#[derive(Debug)]
pub struct RateLimiter {
    enabled: bool,
    exempt_loopback: bool,
    capacity: f64,
    per_second: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            enabled: limit.enabled && limit.requests_per_minute > 0,
            exempt_loopback: limit.exempt_loopback,
            capacity: f64::from(limit.burst_size.max(1)),
            per_second: f64::from(limit.requests_per_minute) / 60.0,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `ip`: `Ok` if it had one, else how long until it has.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if !self.enabled || (self.exempt_loopback && ip.is_loopback()) {
            return Ok(());
        }
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_TRACKED_CLIENTS {
            self.sweep(now);
            if self.buckets.len() >= MAX_TRACKED_CLIENTS {
                return Ok(());
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
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(Duration::from_secs_f64(wait.min(3600.0)))
        }
    }

    /// Drops the buckets that have refilled completely (they hold no information).
    pub fn sweep(&mut self, now: Instant) {
        let capacity = self.capacity;
        let per_second = self.per_second;
        self.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_second < capacity
        });
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimit {
            enabled: true,
            requests_per_minute: per_minute,
            burst_size: burst,
            exempt_loopback: false,
        })
    }

    #[test]
    fn a_burst_passes_then_the_client_waits_for_the_next_token() {
        let mut limiter = limiter(60, 3);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip, now), Ok(()));
        }
        let wait = limiter.check(ip, now).unwrap_err();
        assert!(wait > Duration::from_millis(990) && wait <= Duration::from_secs(1));
        // Half a token later, half the wait is left.
        let wait = limiter
            .check(ip, now + Duration::from_millis(500))
            .unwrap_err();
        assert!(wait > Duration::from_millis(490) && wait <= Duration::from_millis(500));
        assert_eq!(limiter.check(ip, now + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn addresses_have_their_own_buckets() {
        let mut limiter = limiter(60, 1);
        let now = Instant::now();
        assert_eq!(limiter.check([10, 0, 0, 1].into(), now), Ok(()));
        assert!(limiter.check([10, 0, 0, 1].into(), now).is_err());
        assert_eq!(limiter.check([10, 0, 0, 2].into(), now), Ok(()));
    }

    #[test]
    fn loopback_clients_are_exempt_unless_told_otherwise() {
        let mut exempt = RateLimiter::new(RateLimit {
            exempt_loopback: true,
            ..RateLimit {
                enabled: true,
                requests_per_minute: 1,
                burst_size: 1,
                exempt_loopback: true,
            }
        });
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(exempt.check([127, 0, 0, 1].into(), now), Ok(()));
            assert_eq!(
                exempt.check(std::net::Ipv6Addr::LOCALHOST.into(), now),
                Ok(())
            );
        }
        assert_eq!(exempt.check([10, 0, 0, 1].into(), now), Ok(()));
        assert!(exempt.check([10, 0, 0, 1].into(), now).is_err());
        let mut strict = limiter(1, 1);
        assert_eq!(strict.check([127, 0, 0, 1].into(), now), Ok(()));
        assert!(strict.check([127, 0, 0, 1].into(), now).is_err());
    }

    #[test]
    fn disabled_limits_nothing() {
        let mut limiter = RateLimiter::new(RateLimit {
            enabled: false,
            requests_per_minute: 1,
            burst_size: 1,
            exempt_loopback: false,
        });
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(limiter.check([10, 0, 0, 1].into(), now), Ok(()));
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood_of_addresses() {
        let mut limiter = limiter(60, 5);
        let now = Instant::now();
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 1000) {
            let ip: IpAddr = std::net::Ipv4Addr::from(i).into();
            assert_eq!(limiter.check(ip, now), Ok(()));
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED_CLIENTS);
        // Once their buckets refill, the old entries make room again.
        let later = now + Duration::from_secs(60);
        assert_eq!(limiter.check([192, 0, 2, 1].into(), later), Ok(()));
        assert_eq!(limiter.tracked(), 1);
    }
}
