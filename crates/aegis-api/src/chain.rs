//! `GET /v1/node`: which chain this node serves, so a client can sign transactions for it
//! without the genesis file (the chain id goes into every transaction's signed bytes).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use crate::ApiError;
use crate::model::NodeInfoJson;
use crate::routes::ClientApi;

#[utoipa::path(
    get,
    path = "/v1/node",
    tag = "meta",
    responses(
        (status = 200, description = "The node's id, chain id, consensus algorithm, version and validator count.", body = NodeInfoJson),
        (status = 503, description = "The node has not loaded its genesis yet.", body = crate::error::ErrorBody),
    )
)]
pub async fn node_info(State(api): State<Arc<ClientApi>>) -> Result<Json<NodeInfoJson>, ApiError> {
    let status = &api.status;
    let chain_id = status.chain_id().ok_or_else(|| ApiError::Unavailable {
        message: "the node has not loaded its genesis yet".into(),
        retry_after: None,
    })?;
    Ok(Json(NodeInfoJson {
        node_id: status.node_id().to_owned(),
        chain_id: chain_id.to_owned(),
        algorithm: status.algorithm().unwrap_or("pbft").to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        validators: status.validator_count(),
    }))
}
