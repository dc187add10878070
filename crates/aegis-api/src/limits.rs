//! The API port's bounds, and the middleware that enforces the per-request ones.
//!
//! Every limit has a named default. Connection-level bounds (how long a client may take to
//! send its headers, how large the header buffer may grow, how many connections are open)
//! are applied by the server's accept loop ([`crate::server`]); the per-request ones here,
//! in this order: header size (431), per-IP rate (429), requests in progress (503), body
//! size (413, before reading a body that announces its length), then the request time
//! (408) around the handler, which includes reading the body. A handler that panics
//! answers 500 instead of dropping the connection.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use tokio::sync::Semaphore;

use crate::ApiError;
use crate::rate_limit::{RateLimit, RateLimiter};

/// Default largest request body: `api.max_request_size`'s default (`1MB`, 1 MiB). It holds
/// the largest transaction (65,536 payload bytes are 131,072 hex digits) several times over.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default largest request head: the request target plus every header name and value.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default time a client has to send a request's headers, and then separately to have the
/// request (body included) read and answered. A slow client is cut off at this bound.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default requests being handled at once; more are answered 503 at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// Default open connections per port; more wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default most transactions in one `POST /v1/transactions` array.
pub const DEFAULT_MAX_BATCH_TRANSACTIONS: usize = 100;
/// Default open `GET /v1/events` streams; more are answered 503.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 256;
/// Default interval of the keep-alive comment on an idle event stream: well under the idle
/// timeouts of common proxies and load balancers (60 s).
pub const DEFAULT_EVENT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Largest `max_batch_transactions` accepted: one submission's signatures are verified in
/// one batch, and a request should not hold the mempool for long.
pub const MAX_BATCH_TRANSACTIONS_LIMIT: usize = 1_000;
/// Smallest `max_header_bytes` accepted: below it ordinary browsers' requests fail.
pub const MIN_HEADER_BYTES: usize = 1024;
/// Largest `max_header_bytes` accepted.
pub const MAX_HEADER_BYTES_LIMIT: usize = 1024 * 1024;
/// The connection's read buffer is this many times `max_header_bytes` (at least hyper's
/// minimum of 8 KiB): heads between the two bounds get a JSON 431 from the middleware,
/// larger ones hyper's bare 431 before any handler runs.
pub const HEADER_BUFFER_FACTOR: usize = 4;
/// Hyper refuses read buffers smaller than this.
pub const MIN_HEADER_BUFFER_BYTES: usize = 8 * 1024;
/// Shortest request timeout accepted.
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(100);
/// Shortest keep-alive interval accepted (a stream of comments only would be a flood).
pub const MIN_EVENT_KEEP_ALIVE: Duration = Duration::from_millis(100);

const _: () = assert!(DEFAULT_MAX_BATCH_TRANSACTIONS <= MAX_BATCH_TRANSACTIONS_LIMIT);
const _: () = assert!(MIN_HEADER_BYTES <= DEFAULT_MAX_HEADER_BYTES);
const _: () = assert!(DEFAULT_MAX_HEADER_BYTES <= MAX_HEADER_BYTES_LIMIT);
// The default body holds at least one transaction of the largest payload, hex-encoded.
const _: () = assert!(DEFAULT_MAX_BODY_BYTES > 2 * aegis_types::MAX_TX_PAYLOAD_BYTES + 1024);

/// The API port's limits. The binary fills them from the configuration (`api.*` and
/// `security.rate_limiting`); [`Default`] gives the named defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Largest request body (`api.max_request_size`), 413 above it.
    pub max_body_bytes: usize,
    /// Largest request head (target and headers), 431 above it.
    pub max_header_bytes: usize,
    /// Time to send the headers, and time to read the body and answer; 408 (or the
    /// connection closed, for headers) past it.
    pub request_timeout: Duration,
    /// Requests handled at once; 503 above it.
    pub max_concurrent_requests: usize,
    /// Connections open at once on the port; more wait to be accepted.
    pub max_connections: usize,
    /// Most transactions in one submitted array; 413 above it.
    pub max_batch_transactions: usize,
    /// `GET /v1/events` streams open at once; 503 above it.
    pub max_event_streams: usize,
    /// Interval of the keep-alive comment on an idle event stream.
    pub event_keep_alive: Duration,
    /// Per-IP request rate; 429 above it. `/health` is exempt (load balancers poll it).
    pub rate_limit: RateLimit,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_batch_transactions: DEFAULT_MAX_BATCH_TRANSACTIONS,
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
            event_keep_alive: DEFAULT_EVENT_KEEP_ALIVE,
            rate_limit: RateLimit::default(),
        }
    }
}

/// A limit the server cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("API limit {field}: {problem}")]
pub struct LimitsError {
    pub field: &'static str,
    pub problem: String,
}

impl ApiLimits {
    /// Checks every field against its bounds.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let error = |field, problem: String| Err(LimitsError { field, problem });
        for (field, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("max_connections", self.max_connections),
            ("max_batch_transactions", self.max_batch_transactions),
            ("max_event_streams", self.max_event_streams),
        ] {
            if value == 0 {
                return error(field, "must be at least 1".into());
            }
        }
        if self.max_batch_transactions > MAX_BATCH_TRANSACTIONS_LIMIT {
            return error(
                "max_batch_transactions",
                format!("at most {MAX_BATCH_TRANSACTIONS_LIMIT}"),
            );
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES_LIMIT).contains(&self.max_header_bytes) {
            return error(
                "max_header_bytes",
                format!("from {MIN_HEADER_BYTES} to {MAX_HEADER_BYTES_LIMIT}"),
            );
        }
        if self.event_keep_alive < MIN_EVENT_KEEP_ALIVE {
            return error(
                "event_keep_alive",
                format!("at least {} ms", MIN_EVENT_KEEP_ALIVE.as_millis()),
            );
        }
        if self.request_timeout < MIN_REQUEST_TIMEOUT {
            return error(
                "request_timeout",
                format!("at least {} ms", MIN_REQUEST_TIMEOUT.as_millis()),
            );
        }
        if self.rate_limit.enabled && self.rate_limit.requests_per_minute == 0 {
            return error(
                "rate_limit.requests_per_minute",
                "must be at least 1 when rate limiting is enabled".into(),
            );
        }
        // Tokio's semaphores hold at most this many permits.
        if self.max_concurrent_requests.max(self.max_connections) > Semaphore::MAX_PERMITS {
            return error(
                "max_connections",
                format!("at most {}", Semaphore::MAX_PERMITS),
            );
        }
        Ok(())
    }

    /// The connection-level bounds for the server's accept loop.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.request_timeout,
            header_buffer_bytes: (self.max_header_bytes * HEADER_BUFFER_FACTOR)
                .max(MIN_HEADER_BUFFER_BYTES),
            max_connections: self.max_connections,
        }
    }
}

/// What the accept loop bounds for every connection of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has to send a complete request head (also an idle keep-alive
    /// connection's time to start its next request); the connection is closed past it.
    pub header_read_timeout: Duration,
    /// Largest read buffer, which holds a request head (hyper answers a bare 431 past it).
    pub header_buffer_bytes: usize,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    /// The bounds of the monitoring port, and of the API port with [`ApiLimits::default`].
    fn default() -> ConnectionLimits {
        ApiLimits::default().connection_limits()
    }
}

/// The state of [`guard`]: the limits, the rate limiter and the requests in progress.
#[derive(Debug)]
pub struct Guard {
    limits: ApiLimits,
    rate: Mutex<RateLimiter>,
    rate_checks: AtomicU64,
    in_progress: Arc<Semaphore>,
}

/// Paths the rate limit does not apply to.
const RATE_EXEMPT_PATHS: [&str; 1] = ["/health"];

/// How often the rate limiter's table is swept of refilled buckets, counted in requests.
const RATE_SWEEP_EVERY_REQUESTS: u64 = 4096;

impl Guard {
    pub fn new(limits: ApiLimits) -> Arc<Guard> {
        Arc::new(Guard {
            limits,
            rate: Mutex::new(RateLimiter::new(limits.rate_limit)),
            rate_checks: AtomicU64::new(0),
            in_progress: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        })
    }

    fn check_rate(&self, request: &Request) -> Result<(), ApiError> {
        if RATE_EXEMPT_PATHS.contains(&request.uri().path()) {
            return Ok(());
        }
        let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
            return Ok(());
        };
        let now = Instant::now();
        let sweep = self.rate_checks.fetch_add(1, Ordering::Relaxed) % RATE_SWEEP_EVERY_REQUESTS
            == RATE_SWEEP_EVERY_REQUESTS - 1;
        // A poisoned lock only means a panic elsewhere mid-update of a bucket: still usable.
        let mut rate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        let result = rate.check(peer.ip(), now);
        if sweep {
            rate.sweep(now);
        }
        result.map_err(|retry_after| ApiError::TooManyRequests {
            message: format!(
                "rate limit of {} requests per minute (bursts of {}) exceeded for {}",
                self.limits.rate_limit.requests_per_minute,
                self.limits.rate_limit.burst_size,
                peer.ip()
            ),
            retry_after,
        })
    }
}

/// Size of the request head as counted against `max_header_bytes`: the target, and each
/// header's name, value and the four bytes of `: ` and CRLF.
fn head_bytes(request: &Request) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + target
}

/// The declared body length, when the request says it.
fn content_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The per-request bounds, in the order of the module documentation.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let limits = &guard.limits;
    if head_bytes(&request) > limits.max_header_bytes {
        return ApiError::HeadersTooLarge {
            limit_bytes: limits.max_header_bytes,
        }
        .into_response();
    }
    if let Err(error) = guard.check_rate(&request) {
        return error.into_response();
    }
    let Ok(_permit) = Arc::clone(&guard.in_progress).try_acquire_owned() else {
        return ApiError::Unavailable {
            message: format!(
                "the node is handling its limit of {} requests; retry shortly",
                limits.max_concurrent_requests
            ),
            retry_after: Some(Duration::from_secs(1)),
        }
        .into_response();
    };
    if content_length(&request).is_some_and(|length| length > limits.max_body_bytes as u64) {
        return ApiError::PayloadTooLarge {
            limit_bytes: limits.max_body_bytes,
        }
        .into_response();
    }
    let handled = AssertUnwindSafe(next.run(request)).catch_unwind();
    match tokio::time::timeout(limits.request_timeout, handled).await {
        Ok(Ok(response)) => response,
        Ok(Err(_panic)) => ApiError::Internal("an HTTP handler panicked".into()).into_response(),
        Err(_elapsed) => ApiError::RequestTimeout {
            limit: limits.request_timeout,
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_defaults_are_valid_and_each_bound_is_checked() {
        assert_eq!(ApiLimits::default().validate(), Ok(()));
        let bad = [
            ApiLimits {
                max_body_bytes: 0,
                ..ApiLimits::default()
            },
            ApiLimits {
                max_batch_transactions: MAX_BATCH_TRANSACTIONS_LIMIT + 1,
                ..ApiLimits::default()
            },
            ApiLimits {
                max_header_bytes: MIN_HEADER_BYTES - 1,
                ..ApiLimits::default()
            },
            ApiLimits {
                request_timeout: Duration::from_millis(10),
                ..ApiLimits::default()
            },
            ApiLimits {
                max_event_streams: 0,
                ..ApiLimits::default()
            },
        ];
        for limits in bad {
            assert!(limits.validate().is_err(), "{limits:?}");
        }
    }

    #[test]
    fn the_header_buffer_is_never_below_hypers_minimum() {
        let limits = ApiLimits {
            max_header_bytes: MIN_HEADER_BYTES,
            ..ApiLimits::default()
        };
        assert_eq!(
            limits.connection_limits().header_buffer_bytes,
            MIN_HEADER_BUFFER_BYTES
        );
        assert_eq!(
            ApiLimits::default().connection_limits().header_buffer_bytes,
            DEFAULT_MAX_HEADER_BYTES * HEADER_BUFFER_FACTOR
        );
    }
}
