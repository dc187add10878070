//! Running a node's network side: the P2P layer plus its HTTP endpoints.
//!
//! Until the consensus engine is wired in, this is what `aegis run` does: listen and keep
//! the validator mesh, and serve
//!
//! - `GET <metrics_path>` (default `/metrics`) and `GET /status` on `monitoring.metrics_port`;
//! - `GET /health` on `api.port`, JSON with an `X-Response-Time` header.
//!
//! The engine, when it exists, takes the [`Inbox`] and the [`P2pNetwork`] handle from
//! [`RunningNode`] instead of the placeholder drain started here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Identity, Inbox, P2pConfig, P2pError, P2pMetrics, P2pNetwork};

/// Where an HTTP endpoint listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpListen {
    pub host: String,
    pub port: u16,
}

/// Everything [`start`] needs.
#[derive(Debug)]
pub struct NodeOptions {
    /// The node's name (`node.id`), shown in `/status`.
    pub node_id: String,
    pub identity: Identity,
    pub p2p: P2pConfig,
    /// `monitoring.metrics_port` (with its host); `None` when monitoring is disabled.
    pub monitoring: Option<HttpListen>,
    /// `monitoring.metrics_path`, such as `/metrics`.
    pub metrics_path: String,
    /// `api.host`/`api.port`, for `/health`; `None` to not serve it here.
    pub api: Option<HttpListen>,
    /// The node's registry; the P2P metrics are registered into it.
    pub metrics: Arc<aegis_telemetry::Metrics>,
    /// What the node knows of its ledger, shown in `/status` and `/health`.
    pub ledger: Arc<LedgerStatus>,
    /// Drain received messages (nothing else consumes them yet). Set to false when an
    /// engine takes [`RunningNode::take_inbox`].
    pub drain_inbox: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    P2p(#[from] P2pError),
    #[error("listen on {address} for {what}: {error}")]
    Http {
        what: &'static str,
        address: String,
        error: std::io::Error,
    },
}

/// A running node; dropping it does not stop it, [`shutdown`](Self::shutdown) does.
#[derive(Debug)]
pub struct RunningNode {
    pub network: P2pNetwork,
    /// Where `/metrics` and `/status` are served.
    pub metrics_addr: Option<SocketAddr>,
    /// Where `/health` is served.
    pub api_addr: Option<SocketAddr>,
    inbox: Option<Inbox>,
    shutdown: CancellationToken,
}

impl RunningNode {
    /// The received-message stream, for an engine (only if `drain_inbox` was false).
    pub fn take_inbox(&mut self) -> Option<Inbox> {
        self.inbox.take()
    }

    pub fn shutdown(&self) {
        self.shutdown.cancel();
        self.network.shutdown();
    }
}

/// The ledger's state as the HTTP endpoints report it, updated by whoever owns the store
/// (the binary probes it periodically). A storage fault makes `/health` answer 503
/// `unhealthy` with the reason, until the fault clears.
#[derive(Debug, Default)]
pub struct LedgerStatus {
    height: AtomicU64,
    fault: std::sync::Mutex<Option<String>>,
}

impl LedgerStatus {
    pub fn set_height(&self, height: u64) {
        self.height.store(height, Ordering::Relaxed);
    }

    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Relaxed)
    }

    /// Records a storage fault (`Some(reason)`) or its end (`None`).
    pub fn set_fault(&self, fault: Option<String>) {
        if let Ok(mut slot) = self.fault.lock() {
            *slot = fault;
        }
    }

    pub fn fault(&self) -> Option<String> {
        self.fault.lock().ok().and_then(|slot| slot.clone())
    }
}

struct StatusState {
    ledger: Arc<LedgerStatus>,
    node_id: String,
    network: P2pNetwork,
    metrics: Arc<aegis_telemetry::Metrics>,
    validators: usize,
    quorum: usize,
    started: Instant,
    received: Arc<AtomicU64>,
}

/// Starts the P2P layer and the HTTP endpoints.
pub async fn start(options: NodeOptions) -> Result<RunningNode, NodeError> {
    let NodeOptions {
        node_id,
        identity,
        p2p,
        monitoring,
        metrics_path,
        api,
        metrics,
        ledger,
        drain_inbox,
    } = options;
    let validators = identity.validators().len();
    let quorum = identity.validators().quorum();
    let p2p_metrics = P2pMetrics::new();
    p2p_metrics.register(&metrics);
    let (network, inbox) = P2pNetwork::start(p2p, identity, p2p_metrics).await?;
    let shutdown = CancellationToken::new();
    let received = Arc::new(AtomicU64::new(0));
    let inbox = if drain_inbox {
        let received = Arc::clone(&received);
        let stop = shutdown.clone();
        let mut inbox = inbox;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    message = inbox.recv() => match message {
                        Some(_) => { received.fetch_add(1, Ordering::Relaxed); }
                        None => break,
                    },
                }
            }
        });
        None
    } else {
        Some(inbox)
    };
    let state = Arc::new(StatusState {
        ledger,
        node_id,
        network: network.clone(),
        metrics,
        validators,
        quorum,
        started: Instant::now(),
        received,
    });
    let metrics_addr = match monitoring {
        Some(listen) => {
            let path = if metrics_path.starts_with('/') {
                metrics_path
            } else {
                format!("/{metrics_path}")
            };
            let router = Router::new()
                .route(&path, get(metrics_handler))
                .route("/status", get(status_handler))
                .with_state(Arc::clone(&state));
            Some(serve("monitoring", &listen, router, shutdown.clone()).await?)
        }
        None => None,
    };
    let api_addr = match api {
        Some(listen) => {
            let router = Router::new()
                .route("/health", get(health_handler))
                .with_state(Arc::clone(&state));
            Some(serve("api", &listen, router, shutdown.clone()).await?)
        }
        None => None,
    };
    Ok(RunningNode {
        network,
        metrics_addr,
        api_addr,
        inbox,
        shutdown,
    })
}

async fn serve(
    what: &'static str,
    listen: &HttpListen,
    router: Router,
    shutdown: CancellationToken,
) -> Result<SocketAddr, NodeError> {
    let address = if listen.host.contains(':') {
        format!("[{}]:{}", listen.host, listen.port)
    } else {
        format!("{}:{}", listen.host, listen.port)
    };
    let error = |error| NodeError::Http {
        what,
        address: address.clone(),
        error,
    };
    let listener = TcpListener::bind(&address).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    let router = router.layer(middleware::from_fn(response_time));
    tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = result {
            tracing::error!(%error, endpoint = what, "HTTP server failed");
        }
    });
    tracing::info!(address = %local, endpoint = what, "HTTP endpoint listening");
    Ok(local)
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

async fn metrics_handler(State(state): State<Arc<StatusState>>) -> Response {
    match state.metrics.encode_text() {
        Ok(text) => (
            [(header::CONTENT_TYPE, aegis_telemetry::METRICS_CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// `sync_status` from what the node can observe without consensus: `isolated` with no
/// peers, `connecting` below a quorum of validators, `idle` with a quorum connected
/// (nothing to sync past genesis until consensus runs).
fn sync_status(state: &StatusState, peers: usize) -> &'static str {
    let reachable = peers + usize::from(state.network.validator_id().is_some());
    if state.validators > 1 && peers == 0 {
        "isolated"
    } else if reachable < state.quorum {
        "connecting"
    } else {
        "idle"
    }
}

async fn status_handler(State(state): State<Arc<StatusState>>) -> Response {
    let peers = state.network.peers();
    let body = json!({
        "node_id": state.node_id,
        "validator_id": state.network.validator_id().map(|id| id.0),
        "public_key": state.network.public_key().to_hex(),
        "block_height": state.ledger.height(),
        "storage": state.ledger.fault().map_or_else(|| json!("ok"), |fault| json!({ "fault": fault })),
        "sync_status": sync_status(&state, peers.len()),
        "consensus": "not running",
        "uptime_seconds": state.started.elapsed().as_secs(),
        "p2p": {
            "listen": state.network.local_addr().to_string(),
            "peers": peers.len(),
            "validators": state.validators,
            "banned_ips": state.network.banned_count(),
            "messages_received": state.received.load(Ordering::Relaxed),
            "connected": peers.iter().map(|p| json!({
                "validator_id": p.id.0,
                "name": p.name,
                "direction": p.direction.label(),
                "remote": p.remote_addr.to_string(),
                "rtt_ms": p.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                "queued": p.queued,
            })).collect::<Vec<_>>(),
        },
    });
    axum::Json(body).into_response()
}

async fn health_handler(State(state): State<Arc<StatusState>>) -> Response {
    let peers = state.network.peer_count();
    let fault = state.ledger.fault();
    let body = json!({
        "status": if fault.is_some() { "unhealthy" } else { "healthy" },
        "node_id": state.node_id,
        "peers": peers,
        "block_height": state.ledger.height(),
        "sync_status": sync_status(&state, peers),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "storage": fault.as_deref().unwrap_or("ok"),
    });
    let code = if fault.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(body)).into_response()
}
