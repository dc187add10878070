//! The monitoring port: `GET <metrics_path>` (Prometheus/OpenMetrics text of the node's
//! registry) and `GET /status` (JSON: ledger height, storage, sync status, P2P peers).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::{ApiError, NodeStatus};

/// The metrics route at `metrics_path` (a missing leading `/` is added) and `/status`.
pub fn router(status: Arc<NodeStatus>, metrics_path: &str) -> Router {
    let path = if metrics_path.starts_with('/') {
        metrics_path.to_owned()
    } else {
        format!("/{metrics_path}")
    };
    Router::new()
        .route(&path, get(metrics))
        .route("/status", get(node_status))
        .with_state(status)
}

async fn metrics(State(status): State<Arc<NodeStatus>>) -> Result<Response, ApiError> {
    let text = status
        .metrics()
        .encode_text()
        .map_err(|error| ApiError::Internal(format!("encode the metrics: {error}")))?;
    Ok((
        [(header::CONTENT_TYPE, aegis_telemetry::METRICS_CONTENT_TYPE)],
        text,
    )
        .into_response())
}

async fn node_status(State(status): State<Arc<NodeStatus>>) -> Response {
    let network = status.network();
    let ledger = status.ledger();
    let peers = network.peers();
    let body = json!({
        "node_id": status.node_id(),
        "validator_id": network.validator_id().map(|id| id.0),
        "public_key": network.public_key().to_hex(),
        "block_height": ledger.height(),
        "storage": ledger.fault().map_or_else(|| json!("ok"), |fault| json!({ "fault": fault })),
        "sync_status": status.sync_status(peers.len()),
        "consensus": "not running",
        "uptime_seconds": status.uptime_seconds(),
        "p2p": {
            "listen": network.local_addr().to_string(),
            "peers": peers.len(),
            "validators": status.validator_count(),
            "banned_ips": network.banned_count(),
            "messages_received": status.messages_received(),
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
