//! Serving a router: binding the listener, the accept loop with its connection bounds
//! ([`ConnectionLimits`]: header read timeout, header buffer, open connections), what every
//! response gets (`X-Response-Time`, JSON 404 and 405 answers from [`ApiError`]), and
//! graceful shutdown with a bound.
//!
//! The accept loop is this crate's own (over hyper's HTTP/1 connection) rather than
//! `axum::serve`, which sets no header read timeout: a client that sends its headers a
//! byte at a time would otherwise hold its connection for as long as it likes (slowloris).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::ApiError;
use crate::limits::{ConnectionLimits, MIN_HEADER_BUFFER_BYTES};

/// How long a stopping server waits for requests in flight before it drops them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest request path echoed back in a 404 or 405 message; longer ones are cut.
pub const MAX_ECHOED_PATH_BYTES: usize = 256;
/// Pause after a failed `accept` (such as running out of file descriptors) before the
/// next, so the loop does not spin while the condition lasts.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

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
            aegis_telemetry::warn!(
                endpoint = self.what,
                grace_ms = grace.as_millis() as u64,
                "HTTP requests still running at shutdown; dropping them"
            );
            // Dropping the accept loop's task drops its connections' tasks with it.
            self.task.abort();
        }
    }
}

/// Binds `listen` and serves `router` on it until `shutdown` is cancelled, with the default
/// [`ConnectionLimits`]. `what` names the endpoint in errors and logs. Unknown routes answer
/// 404 and known routes with another method 405, both as [`ApiError`] JSON; every response
/// gets `X-Response-Time`.
pub async fn serve(
    what: &'static str,
    listen: &HttpListen,
    router: Router,
    shutdown: CancellationToken,
) -> Result<HttpServer, ServeError> {
    let router = with_fallbacks(router);
    serve_with(what, listen, router, shutdown, ConnectionLimits::default()).await
}

/// The JSON 404 (unknown route) and 405 (known route, other method) answers. Call it after
/// the last route and before the layers that must see those answers too.
pub fn with_fallbacks(router: Router) -> Router {
    // The 405 fallback applies to the routes registered so far, so it comes last.
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Binds `listen` and serves `router` (routes, fallbacks and layers complete) on it until
/// `shutdown` is cancelled, within `limits`. Adds `X-Response-Time` to every response.
pub async fn serve_with(
    what: &'static str,
    listen: &HttpListen,
    router: Router,
    shutdown: CancellationToken,
    limits: ConnectionLimits,
) -> Result<HttpServer, ServeError> {
    let address = listen.address();
    let error = |error| ServeError {
        what,
        address: address.clone(),
        error,
    };
    let listener = TcpListener::bind(&address).await.map_err(error)?;
    let local_addr = listener.local_addr().map_err(error)?;
    let router = router.layer(middleware::from_fn(response_time));
    let limits = ConnectionLimits {
        header_buffer_bytes: limits.header_buffer_bytes.max(MIN_HEADER_BUFFER_BYTES),
        max_connections: limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        ..limits
    };
    let task = tokio::spawn(accept_loop(what, listener, router, shutdown, limits));
    aegis_telemetry::info!(address = %local_addr, endpoint = what, "HTTP endpoint listening");
    Ok(HttpServer {
        what,
        local_addr,
        task,
    })
}

/// Accepts connections while fewer than `max_connections` are open, until `shutdown`;
/// then closes the port and waits for the open connections to finish.
async fn accept_loop(
    what: &'static str,
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: ConnectionLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    aegis_telemetry::warn!(%error, endpoint = what, "HTTP accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        // Reap finished connections so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_connection(
            stream,
            remote,
            router.clone(),
            limits,
            shutdown.clone(),
            slot,
        ));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection: HTTP/1.1 with keep-alive, the head read within
/// `header_read_timeout` into a buffer of at most `header_buffer_bytes`. On shutdown an
/// idle connection is closed at once and a busy one after its response.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    // Latency matters more than packet count for small JSON answers; best effort.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let mut router = router.clone();
        async move {
            let response: Result<Response, Infallible> =
                tower_service::Service::call(&mut router, request).await;
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.header_buffer_bytes);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Timeouts, resets and malformed requests: the client's business.
        aegis_telemetry::debug!(%error, %remote, "HTTP connection ended with an error");
    }
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
pub(crate) fn cut(text: &str, max_bytes: usize) -> String {
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
