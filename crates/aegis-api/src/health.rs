//! `GET /health` on the API port: the node's liveness for load balancers and the operator
//! guide's health checker. 200 `healthy`, or 503 `unhealthy` while the ledger has a fault
//! (the reason is in `storage`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::NodeStatus;

/// The `/health` route.
pub fn router(status: Arc<NodeStatus>) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(status)
}

async fn health(State(status): State<Arc<NodeStatus>>) -> Response {
    let peers = status.network().peer_count();
    let fault = status.ledger().fault();
    let body = json!({
        "status": if fault.is_some() { "unhealthy" } else { "healthy" },
        "node_id": status.node_id(),
        "peers": peers,
        "block_height": status.ledger().height(),
        "sync_status": status.sync_status(peers),
        "uptime_seconds": status.uptime_seconds(),
        "storage": fault.as_deref().unwrap_or("ok"),
    });
    let code = if fault.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(body)).into_response()
}
