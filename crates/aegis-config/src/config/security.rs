//! `security:`: connection rate limits, bans and the node's TLS identity.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::file::{RateLimitingFile, SecurityFile, SecurityTlsFile};

use super::checker::{Checker, up_to};

/// `security.rate_limiting.requests_per_minute`: new connections from one IP; a thousand a
/// second is no limit at all.
pub const SECURITY_REQUESTS_PER_MINUTE_RANGE: RangeInclusive<u64> = 1..=60_000;
/// `security.rate_limiting.burst_size`: connections one IP may open at once.
pub const SECURITY_BURST_SIZE_RANGE: RangeInclusive<u64> = 1..=10_000;
/// `security.rate_limiting.block_duration`: a ban of more than a week belongs in the
/// firewall, where an operator can see and lift it.
pub const SECURITY_BLOCK_DURATION_RANGE: RangeInclusive<Duration> =
    up_to(Duration::from_secs(7 * 24 * 3600));
/// `security.rate_limiting.max_failures`: failed authentications before a ban; more than a
/// thousand in ten minutes is an attack, not a misconfigured peer.
pub const SECURITY_MAX_FAILURES_RANGE: RangeInclusive<u64> = 1..=1000;

/// `security:` — abuse limits and the node's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityConfig {
    pub rate_limiting: RateLimitConfig,
    pub tls: NodeTlsConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub requests_per_minute: u32,
    pub burst_size: u32,
    /// How long an address stays banned after `max_failures` failures.
    pub block_duration: Duration,
    pub max_failures: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The network's CA bundle, when peers' certificates are issued by a CA.
    pub ca_file: Option<PathBuf>,
}

pub(super) fn build_security(ck: &mut Checker<'_, '_>, file: SecurityFile) -> SecurityConfig {
    let SecurityFile { rate_limiting, tls } = file;
    let RateLimitingFile {
        enabled,
        requests_per_minute,
        burst_size,
        block_duration,
        max_failures,
    } = rate_limiting;
    let SecurityTlsFile {
        cert_file,
        key_file,
        ca_file,
    } = tls;
    SecurityConfig {
        rate_limiting: RateLimitConfig {
            enabled,
            requests_per_minute: ck.int(
                "security.rate_limiting.requests_per_minute",
                requests_per_minute,
                SECURITY_REQUESTS_PER_MINUTE_RANGE,
            ),
            burst_size: ck.int(
                "security.rate_limiting.burst_size",
                burst_size,
                SECURITY_BURST_SIZE_RANGE,
            ),
            block_duration: ck.seconds(
                "security.rate_limiting.block_duration",
                block_duration,
                SECURITY_BLOCK_DURATION_RANGE,
            ),
            max_failures: ck.int(
                "security.rate_limiting.max_failures",
                max_failures,
                SECURITY_MAX_FAILURES_RANGE,
            ),
        },
        tls: NodeTlsConfig {
            cert_file: ck.path("security.tls.cert_file", &cert_file),
            key_file: ck.path("security.tls.key_file", &key_file),
            ca_file: ca_file
                .filter(|ca| !ca.trim().is_empty())
                .map(|ca| ck.path("security.tls.ca_file", &ca)),
        },
    }
}
