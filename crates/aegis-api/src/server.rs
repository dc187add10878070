//! Serving a router: binding the listener, what every response gets (`X-Response-Time`,
//! JSON 404 and 405 answers from [`ApiError`]), and graceful shutdown with a bound.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ApiError;

/// How long a stopping server waits for requests in flight before it drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest request path echoed back in a 404 or 405 message; longer ones are cut.
pub const MAX_ECHOED_PATH_BYTES: usize = 256;

/// Where an HTTP endpoint listens: a host name or IP address (IPv6 without brackets is
/// accepted) and a port (0 for any free one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpListen {
    pub host: String,
    pub port: u16,
}

impl HttpListen {
    /// `host:port`, with an IPv6 address in brackets.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A server could not start.
#[derive(Debug, thiserror::Error)]
#[error("listen on {address} for {what}: {error}")]
pub struct ServeError {
    /// Which endpoint: `api` or `monitoring`.
    pub what: &'static str,
    pub address: String,
    /// Why (in the message, not as a source, so a chain prints it once).
    pub error: std::io::Error,
}

/// One running HTTP server; it stops when the token given to [`serve`] is cancelled.
#[derive(Debug)]
pub struct HttpServer {
    what: &'static str,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has stopped (after its shutdown token was cancelled): open
    /// connections finish their requests for up to `grace`, then are dropped.
    pub async fn stopped(mut self, grace: Duration) {
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            tracing::warn!(
                endpoint = self.what,
                grace_ms = grace.as_millis() as u64,
                "HTTP requests still running at shutdown; dropping them"
            );
            self.task.abort();
        }
    }
}

/// Binds `listen` and serves `router` on it until `shutdown` is cancelled. `what` names the
/// endpoint in errors and logs. Unknown routes answer 404 and known routes with another
/// method 405, both as [`ApiError`] JSON; every response gets `X-Response-Time`.
pub async fn serve(
    what: &'static str,
    listen: &HttpListen,
    router: Router,
    shutdown: CancellationToken,
) -> Result<HttpServer, ServeError> {
    let address = listen.address();
    let error = |error| ServeError {
        what,
        address: address.clone(),
        error,
    };
    let listener = TcpListener::bind(&address).await.map_err(error)?;
    let local_addr = listener.local_addr().map_err(error)?;
    // The 405 fallback applies to the routes registered so far, so it comes last.
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(response_time));
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = result {
            tracing::error!(%error, endpoint = what, "HTTP server failed");
        }
    });
    tracing::info!(address = %local_addr, endpoint = what, "HTTP endpoint listening");
    Ok(HttpServer {
        what,
        local_addr,
        task,
    })
}

/// Adds `X-Response-Time: <ms>ms` to every response (the guide's health checker reads it).
async fn response_time(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut response = next.run(request).await;
    let value = format!("{:.3}ms", started.elapsed().as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("x-response-time", value);
    }
    response
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", echoed_path(&uri)))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", echoed_path(&uri)))
}

/// The request's path, cut to [`MAX_ECHOED_PATH_BYTES`].
fn echoed_path(uri: &Uri) -> String {
    cut(uri.path(), MAX_ECHOED_PATH_BYTES)
}

/// `text` if it has at most `max_bytes` bytes, else its longest prefix that does and ends
/// on a character boundary, followed by `…`.
fn cut(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let listen = |host: &str| HttpListen {
            host: host.into(),
            port: 8080,
        };
        assert_eq!(listen("0.0.0.0").address(), "0.0.0.0:8080");
        assert_eq!(listen("::1").address(), "[::1]:8080");
        assert_eq!(listen("[::1]").address(), "[::1]:8080");
        assert_eq!(listen("localhost").address(), "localhost:8080");
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let short: Uri = "/v1/blocks/7?x=1".parse().unwrap();
        assert_eq!(echoed_path(&short), "/v1/blocks/7");
        let long: Uri = format!("/{}", "a".repeat(1000)).parse().unwrap();
        assert_eq!(
            echoed_path(&long),
            format!("/{}…", "a".repeat(MAX_ECHOED_PATH_BYTES - 1))
        );
        // The two-byte 'é' would straddle the cut at 4 bytes.
        assert_eq!(cut("/abé", 4), "/ab…");
        assert_eq!(cut("/abé", 5), "/abé");
    }
}
