//! AEGIS HTTP: every endpoint a node serves over HTTP.
//!
//! This crate owns:
//!
//! - **The API port** (`api.host`/`api.port`, 8080): `GET /health` ([`health`]), JSON with
//!   an `X-Response-Time` header; 503 `unhealthy` while the ledger has a fault. The client
//!   API (transactions, blocks, events, the OpenAPI description) is to be added here as
//!   modules whose routes [`api_router`] merges.
//! - **The monitoring port** (`monitoring.host`/`monitoring.metrics_port`, 9090):
//!   `GET <metrics_path>` and `GET /status` ([`monitoring`]).
//! - **Errors** ([`error`]): one type, [`ApiError`], for every error answer, mapped to its
//!   status, headers and JSON body `{"error": "<stable code>", "message": "<text>"}` in one
//!   place. Unknown routes answer 404 and wrong methods 405 with that body.
//! - **Serving** ([`server`]): binding, `X-Response-Time` on every response, graceful
//!   shutdown bounded by [`SHUTDOWN_GRACE`].
//!
//! What the endpoints report is passed in, never global: an `Arc<`[`NodeStatus`]`>` (the
//! P2P handle, the [`LedgerStatus`] the binary's probe updates, the metrics registry),
//! built by the node's wiring in the `aegis` binary. This crate runs no P2P, storage or
//! consensus of its own.

pub mod error;
pub mod health;
pub mod monitoring;
pub mod node;
pub mod server;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use node::{CommittedBlock, ConsensusView, NodeApi, NodeFuture, SyncState};
pub use server::{HttpListen, HttpServer, SHUTDOWN_GRACE, ServeError, serve};
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

/// Every route of the API port.
pub fn api_router(status: Arc<NodeStatus>) -> Router {
    health::router(status)
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

/// Starts the monitoring server, then the API server, as `options` asks. If one cannot
/// start, the other is stopped and the error says which and where.
pub async fn start(
    options: HttpOptions,
    status: Arc<NodeStatus>,
) -> Result<HttpEndpoints, ServeError> {
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
            let router = monitoring_router(Arc::clone(&status), &metrics_path);
            let server = serve("monitoring", &listen, router, shutdown.clone()).await?;
            metrics_addr = Some(server.local_addr());
            servers.push(server);
        }
        if let Some(listen) = api {
            let router = api_router(Arc::clone(&status));
            let server = serve("api", &listen, router, shutdown.clone()).await?;
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
