//! AEGIS HTTP: every endpoint a node serves over HTTP.
//!
//! This crate owns:
//!
//! - **The API port** (`api.host`/`api.port`, 8080): `GET /health` ([`health`]) with its
//!   readiness thresholds, and the client API: `POST /v1/transactions` and
//!   `GET /v1/transactions/{id}` ([`transactions`]), `GET /v1/blocks/{height}` and
//!   `/v1/blocks/latest` ([`blocks`]), `GET /v1/events` (Server-Sent Events, [`events`]),
//!   `GET /v1/openapi.json` ([`openapi`]), `GET /v1/node` ([`chain`]) and `GET /v1/peers`
//!   ([`peers`]); and the block explorer page at `GET /` with its assets under
//!   `/explorer/` ([`explorer`]). The routes are one table ([`routes`]); the JSON bodies are
//!   this crate's own types ([`model`]). `docs/api.md` describes them.
//! - **The monitoring port** (`monitoring.host`/`monitoring.metrics_port`, 9090):
//!   `GET <metrics_path>` (OpenMetrics or classic text, negotiated) and `GET /status`
//!   ([`monitoring`]).
//! - **Errors** ([`error`]): one type, [`ApiError`], for every error answer, mapped to its
//!   status, headers and JSON body `{"error": "<stable code>", "message": "<text>"}` in one
//!   place. Unknown routes answer 404 and wrong methods 405 with that body.
//! - **Limits** ([`limits`], [`rate_limit`]): body and header size, request time, requests
//!   in progress, open connections, array length, event streams, per-IP rate; each with a
//!   named default ([`ApiLimits`]).
//! - **Serving** ([`server`]): the accept loop with its connection bounds (header read
//!   timeout against slow clients), `X-Response-Time` on every response, graceful shutdown
//!   bounded by [`SHUTDOWN_GRACE`].
//!
//! What the endpoints serve is passed in, never global: an `Arc<`[`NodeStatus`]`>` (the
//! P2P handle, the [`LedgerStatus`] the binary's probe updates, the metrics registry, and
//! once attached the committed ledger and the running node as a [`NodeApi`]), built by the
//! node's wiring in the `aegis` binary. This crate runs no P2P, storage or consensus of its
//! own.

pub mod blocks;
pub mod chain;
pub mod error;
pub mod events;
pub mod explorer;
pub mod health;
pub mod limits;
pub mod model;
pub mod monitoring;
pub mod node;
pub mod openapi;
pub mod peers;
pub mod rate_limit;
pub mod routes;
pub mod server;
mod state;
pub mod transactions;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use limits::{ApiLimits, ConnectionLimits, LimitsError};
pub use node::{CommittedBlock, ConsensusView, NodeApi, NodeFuture, SyncState};
pub use rate_limit::RateLimit;
pub use server::{HttpListen, HttpServer, SHUTDOWN_GRACE, ServeError, serve, serve_with};
pub use state::{LedgerStatus, NodeStatus};

/// Where and what [`start`] serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// `api.host`/`api.port`, for [`api_router`]; `None` to not serve it.
    pub api: Option<HttpListen>,
    /// `monitoring.host`/`monitoring.metrics_port`; `None` when monitoring is disabled.
    pub monitoring: Option<HttpListen>,
    /// `monitoring.metrics_path`, such as `/metrics`.
    pub metrics_path: String,
}

/// Every route of the API port, with its limits; event streams end when `shutdown` is
/// cancelled.
pub fn api_router(
    status: Arc<NodeStatus>,
    limits: ApiLimits,
    shutdown: CancellationToken,
) -> Router {
    routes::router(status, limits, shutdown)
}

/// Every route of the monitoring port.
pub fn monitoring_router(status: Arc<NodeStatus>, metrics_path: &str) -> Router {
    monitoring::router(status, metrics_path)
}

/// The node's running HTTP servers. Dropping this does not stop them; [`stop`](Self::stop)
/// or [`shutdown`](Self::shutdown) does.
#[derive(Debug)]
pub struct HttpEndpoints {
    /// Where `/metrics` and `/status` are served.
    pub metrics_addr: Option<SocketAddr>,
    /// Where `/health` is served.
    pub api_addr: Option<SocketAddr>,
    servers: Vec<HttpServer>,
    shutdown: CancellationToken,
}

impl HttpEndpoints {
    /// Stops accepting connections; requests in flight finish in the background.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops accepting connections and waits for requests in flight, each server for at
    /// most [`SHUTDOWN_GRACE`].
    pub async fn stop(self) {
        self.shutdown.cancel();
        for server in self.servers {
            server.stopped(SHUTDOWN_GRACE).await;
        }
    }
}

/// Starts the monitoring server, then the API server, as `options` asks, with the default
/// [`ApiLimits`]. If one cannot start, the other is stopped and the error says which and
/// where.
pub async fn start(
    options: HttpOptions,
    status: Arc<NodeStatus>,
) -> Result<HttpEndpoints, ServeError> {
    start_with(options, ApiLimits::default(), status).await
}

/// [`start`] with the API port's `limits` (from `api.*` and `security.rate_limiting`).
/// Limits that fail [`ApiLimits::validate`] are refused before anything listens.
pub async fn start_with(
    options: HttpOptions,
    limits: ApiLimits,
    status: Arc<NodeStatus>,
) -> Result<HttpEndpoints, ServeError> {
    if let Err(error) = limits.validate() {
        return Err(ServeError {
            what: "api",
            address: options
                .api
                .as_ref()
                .map_or_else(String::new, HttpListen::address),
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, error.to_string()),
        });
    }
    let HttpOptions {
        api,
        monitoring,
        metrics_path,
    } = options;
    let shutdown = CancellationToken::new();
    let mut servers = Vec::new();
    let mut metrics_addr = None;
    let mut api_addr = None;
    let started = async {
        if let Some(listen) = monitoring {
            let router =
                server::with_fallbacks(monitoring_router(Arc::clone(&status), &metrics_path));
            let limits = ConnectionLimits::default();
            let server =
                serve_with("monitoring", &listen, router, shutdown.clone(), limits).await?;
            metrics_addr = Some(server.local_addr());
            servers.push(server);
        }
        if let Some(listen) = api {
            let router = api_router(Arc::clone(&status), limits, shutdown.clone());
            let connections = limits.connection_limits();
            let server = serve_with("api", &listen, router, shutdown.clone(), connections).await?;
            api_addr = Some(server.local_addr());
            servers.push(server);
        }
        Ok::<(), ServeError>(())
    }
    .await;
    if let Err(error) = started {
        shutdown.cancel();
        return Err(error);
    }
    Ok(HttpEndpoints {
        metrics_addr,
        api_addr,
        servers,
        shutdown,
    })
}
