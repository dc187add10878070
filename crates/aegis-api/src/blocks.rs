//! `GET /v1/blocks/{height}` and `GET /v1/blocks/latest`: a committed block with its
//! header, transactions and commit certificate, read from the ledger.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use crate::ApiError;
use crate::error::ErrorBody;
use crate::model::BlockJson;
use crate::routes::{ClientApi, storage_error};

/// The committed block at a height (blocks start at 1; 0 is the genesis).
#[utoipa::path(
    get,
    path = "/v1/blocks/{height}",
    tag = "blocks",
    params(("height" = u64, Path, description = "Block height, from 1")),
    responses(
        (status = 200, description = "The block, its header, transactions and commit certificate.", body = BlockJson),
        (status = 400, description = "Not a height.", body = ErrorBody),
        (status = 404, description = "No block at this height (yet).", body = ErrorBody),
    )
)]
pub async fn get_block(
    State(api): State<Arc<ClientApi>>,
    height: Result<Path<String>, PathRejection>,
) -> Result<Json<BlockJson>, ApiError> {
    let Path(text) = height.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let height: u64 = text.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "a block height is a whole number from 1, or `latest`; got {:?}",
            crate::server::cut(&text, 64)
        ))
    })?;
    if height == 0 {
        return Err(ApiError::NotFound(
            "height 0 is the genesis, which is not a block; blocks start at 1".into(),
        ));
    }
    block_at(&api, height).await
}

/// The most recently committed block.
#[utoipa::path(
    get,
    path = "/v1/blocks/latest",
    tag = "blocks",
    responses(
        (status = 200, description = "The block, its header, transactions and commit certificate.", body = BlockJson),
        (status = 404, description = "No block is committed yet.", body = ErrorBody),
    )
)]
pub async fn latest_block(State(api): State<Arc<ClientApi>>) -> Result<Json<BlockJson>, ApiError> {
    let ledger = api.status.require_ledger()?;
    match ledger.tip().await.map_err(storage_error)? {
        Some(tip) => block_at(&api, tip.height).await,
        None => Err(ApiError::NotFound("no block is committed yet".into())),
    }
}

async fn block_at(api: &ClientApi, height: u64) -> Result<Json<BlockJson>, ApiError> {
    let ledger = api.status.require_ledger()?;
    match ledger
        .block_by_height(height)
        .await
        .map_err(storage_error)?
    {
        Some(stored) => Ok(Json(BlockJson::from(&stored))),
        None => {
            let tip = ledger.height().await.map_err(storage_error)?;
            Err(ApiError::NotFound(format!(
                "no block at height {height}; the chain's height is {tip}"
            )))
        }
    }
}
