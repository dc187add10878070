//! `POST /v1/transactions` (one transaction or an array) and `GET /v1/transactions/{id}`.
//!
//! A submitted transaction gets exactly one answer: pending (202), or refused with the
//! reason. The checks, in order: the body (size 413, JSON 400, array length 413), each
//! transaction's JSON form (400), the ledger (409 for an id already committed, however long
//! ago), then the node's mempool (`docs/mempool.md`: 400/422 structure and chain, 413 size,
//! 409 replay of a pending or recently committed id, 503 full with `Retry-After`, 422 bad
//! signature). Nothing is stored unless the mempool accepts it.

use std::sync::Arc;
use std::time::Duration;

use aegis_mempool::{Admission, Refusal};
use aegis_types::{Hash, MerkleProof, Transaction, TxError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ErrorBody, retry_after_seconds};
use crate::model::{
    Accepted, BatchItem, Rejected, RejectedStatus, TransactionJson, TransactionStatusJson, TxStatus,
};
use crate::routes::{ClientApi, storage_error};
use crate::{ApiError, NodeApi};

/// What `POST /v1/transactions` accepts: one transaction, or an array of them (documented
/// only; the handler reads the JSON itself to answer each element).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SubmitRequest {
    One(TransactionJson),
    Many(Vec<TransactionJson>),
}

/// What `POST /v1/transactions` answers with 202: one result, or one per element of a
/// submitted array, in order (documented only).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SubmitResponse {
    One(Accepted),
    Many(Vec<BatchItem>),
}

/// Submit one transaction, or an array of them.
#[utoipa::path(
    post,
    path = "/v1/transactions",
    tag = "transactions",
    request_body(
        content = SubmitRequest,
        description = "One transaction in its JSON form, or a JSON array of at most `max_batch_transactions` (default 100) of them."
    ),
    responses(
        (status = 202, description = "One transaction: it is pending. An array: one result per element, in order, each `{\"id\", \"status\": \"pending\"}` or `{\"status\": \"rejected\", \"http_status\", \"error\", \"message\", \"id\"?, \"retry_after\"?}`; `Retry-After` is set when an element was refused for a full mempool.", body = SubmitResponse,
            headers(("Location" = String, description = "`/v1/transactions/{id}` (one transaction only)"))),
        (status = 400, description = "Not JSON, not a transaction, an empty array, or a malformed transaction.", body = ErrorBody),
        (status = 409, description = "A transaction with this id is pending or committed already; `id` names it.", body = ErrorBody),
        (status = 413, description = "Body over `max_body_bytes`, array over `max_batch_transactions`, or a transaction over its size limit.", body = ErrorBody),
        (status = 422, description = "Wrong chain id, unsupported version, or a signature that does not verify.", body = ErrorBody),
        (status = 503, description = "The mempool is full (with `Retry-After`), or the node is starting or stopping.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn submit(
    State(api): State<Arc<ClientApi>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| body_error(&rejection, api.limits.max_body_bytes))?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("the body is not JSON: {error}")))?;
    match value {
        Value::Array(items) => submit_many(&api, items).await,
        item @ Value::Object(_) => submit_one(&api, item).await,
        _ => Err(ApiError::BadRequest(
            "expected a transaction (a JSON object) or a JSON array of transactions".into(),
        )),
    }
}

async fn submit_one(api: &ClientApi, item: Value) -> Result<Response, ApiError> {
    let transaction = parse_transaction(item)?;
    let node = api.status.require_node()?;
    check_not_committed(api, &transaction.id()).await?;
    let admissions = admit(node.as_ref(), vec![transaction]).await?;
    match admissions.into_iter().next() {
        Some(Admission::Accepted { id }) => Ok(accepted(id)),
        Some(Admission::Refused(refusal)) => Err(refusal_error(refusal)),
        None => Err(ApiError::Internal(
            "the node gave no answer for a transaction".into(),
        )),
    }
}

async fn submit_many(api: &ClientApi, items: Vec<Value>) -> Result<Response, ApiError> {
    let limit = api.limits.max_batch_transactions;
    if items.is_empty() {
        return Err(ApiError::BadRequest(
            "the array is empty; submit at least one transaction".into(),
        ));
    }
    if items.len() > limit {
        return Err(ApiError::TooLarge(format!(
            "the array has {} transactions, at most {limit} per request",
            items.len()
        )));
    }
    let node = api.status.require_node()?;
    // One slot per element: its early refusal, or `None` for its place among the
    // transactions handed to the node (whose answers come back in the same order).
    let mut answers: Vec<Option<ApiError>> = Vec::with_capacity(items.len());
    let parsed: Vec<Result<(Hash, Transaction), ApiError>> = items
        .into_iter()
        .map(|item| parse_transaction(item).map(|tx| (tx.id(), tx)))
        .collect();
    // One ledger lookup for the whole array: committed ids are conflicts.
    let ids: Vec<Hash> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().map(|(id, _)| *id))
        .collect();
    let ledger = api.status.require_ledger()?;
    let mut locations = ledger
        .committed_locations(&ids)
        .await
        .map_err(storage_error)?
        .into_iter();
    let mut candidates = Vec::with_capacity(ids.len());
    for item in parsed {
        match item {
            Err(error) => answers.push(Some(error)),
            Ok((id, transaction)) => match locations.next().flatten() {
                Some((height, index)) => {
                    answers.push(Some(committed_conflict(&id, height, index)));
                }
                None => {
                    answers.push(None);
                    candidates.push(transaction);
                }
            },
        }
    }
    let mut admissions = admit(node.as_ref(), candidates).await?.into_iter();
    let mut results = Vec::with_capacity(answers.len());
    let mut retry_after: Option<Duration> = None;
    for early in answers {
        let answer = match early {
            Some(error) => Err(error),
            None => match admissions.next() {
                Some(Admission::Accepted { id }) => Ok(id),
                Some(Admission::Refused(refusal)) => Err(refusal_error(refusal)),
                None => Err(ApiError::Internal(
                    "the node gave fewer answers than transactions".into(),
                )),
            },
        };
        results.push(match answer {
            Ok(id) => BatchItem::Accepted(Accepted {
                id,
                status: TxStatus::Pending,
            }),
            Err(error) => {
                let after = error.retry_after();
                retry_after = retry_after.max(after);
                BatchItem::Rejected(Rejected {
                    status: RejectedStatus::Rejected,
                    http_status: error.status().as_u16(),
                    error: error.body(),
                    retry_after: after.map(retry_after_seconds),
                })
            }
        });
    }
    let mut response = (StatusCode::ACCEPTED, Json(results)).into_response();
    if let Some(after) = retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_seconds(after)),
        );
    }
    Ok(response)
}

/// Submits to the node and checks it answered once per transaction.
async fn admit(
    node: &dyn NodeApi,
    transactions: Vec<Transaction>,
) -> Result<Vec<Admission>, ApiError> {
    if transactions.is_empty() {
        return Ok(Vec::new());
    }
    let count = transactions.len();
    let admissions = node.submit(transactions).await?;
    if admissions.len() != count {
        return Err(ApiError::Internal(format!(
            "the node answered {} of {count} transactions",
            admissions.len()
        )));
    }
    Ok(admissions)
}

/// 409 when the ledger holds a transaction with this id, however old.
async fn check_not_committed(api: &ClientApi, id: &Hash) -> Result<(), ApiError> {
    let ledger = api.status.require_ledger()?;
    match ledger.transaction(id).await.map_err(storage_error)? {
        Some(stored) => Err(committed_conflict(id, stored.height, stored.index)),
        None => Ok(()),
    }
}

/// The 409 for a transaction the ledger holds.
fn committed_conflict(id: &Hash, height: u64, index: u32) -> ApiError {
    ApiError::Conflict {
        id: id.to_hex(),
        message: format!("transaction {id} is already committed, at height {height} index {index}"),
    }
}

fn parse_transaction(item: Value) -> Result<Transaction, ApiError> {
    serde_json::from_value::<TransactionJson>(item)
        .map(Transaction::from)
        .map_err(|error| ApiError::BadRequest(format!("not a transaction: {error}")))
}

/// 202 with the id, and where to follow it.
fn accepted(id: Hash) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            status: TxStatus::Pending,
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/transactions/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The HTTP answer to a mempool refusal (`docs/mempool.md`, admission rules).
pub fn refusal_error(refusal: Refusal) -> ApiError {
    let message = refusal.to_string();
    match refusal {
        Refusal::Malformed(TxError::WrongChain { .. } | TxError::Version(_)) => {
            ApiError::Unprocessable(message)
        }
        Refusal::Malformed(TxError::PayloadTooLarge { .. }) | Refusal::TooLarge { .. } => {
            ApiError::TooLarge(message)
        }
        Refusal::Malformed(TxError::ChainIdTooLong { .. }) => ApiError::BadRequest(message),
        Refusal::BadSignature { .. } => ApiError::Unprocessable(message),
        Refusal::AlreadyPending { id } | Refusal::RecentlyCommitted { id } => ApiError::Conflict {
            id: id.to_hex(),
            message,
        },
        Refusal::Full { retry_after_ms } => ApiError::Unavailable {
            message,
            retry_after: Some(Duration::from_millis(retry_after_ms)),
        },
    }
}

/// A body that could not be read: too large (413) or broken off (400).
pub fn body_error(rejection: &BytesRejection, limit_bytes: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit_bytes }
    } else {
        ApiError::BadRequest(format!(
            "could not read the body: {}",
            rejection.body_text()
        ))
    }
}

/// A pending or committed transaction; once committed with its block and inclusion proof.
#[utoipa::path(
    get,
    path = "/v1/transactions/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "Transaction id, 64 hex digits")),
    responses(
        (status = 200, description = "Pending, or committed with `height`, `index`, `block_hash` and `proof`.", body = TransactionStatusJson),
        (status = 400, description = "Not a transaction id.", body = ErrorBody),
        (status = 404, description = "Neither pending on this node nor committed.", body = ErrorBody),
    )
)]
pub async fn get_transaction(
    State(api): State<Arc<ClientApi>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TransactionStatusJson>, ApiError> {
    let Path(text) = id.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let id = Hash::from_hex(&text).map_err(|_| {
        ApiError::BadRequest("a transaction id is 64 hexadecimal digits".to_owned())
    })?;
    let ledger = api.status.require_ledger()?;
    if let Some(stored) = ledger.transaction(&id).await.map_err(storage_error)? {
        let block = ledger
            .block_by_height(stored.height)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "transaction {id} is indexed at height {}, which has no block",
                    stored.height
                ))
            })?;
        let proof =
            MerkleProof::build(&block.columns.tx_ids, stored.index as usize).ok_or_else(|| {
                ApiError::Internal(format!(
                    "transaction {id} is indexed at {} of a block of {}",
                    stored.index, block.columns.tx_count
                ))
            })?;
        return Ok(Json(TransactionStatusJson {
            id,
            status: TxStatus::Committed,
            transaction: (&stored.transaction).into(),
            height: Some(stored.height),
            index: Some(stored.index),
            block_hash: Some(block.columns.hash),
            proof: Some(proof.into()),
        }));
    }
    if let Some(node) = api.status.node()
        && let Some(transaction) = node.pending(id).await?
    {
        return Ok(Json(TransactionStatusJson {
            id,
            status: TxStatus::Pending,
            transaction: (&transaction).into(),
            height: None,
            index: None,
            block_hash: None,
            proof: None,
        }));
    }
    Err(ApiError::NotFound(format!(
        "transaction {id} is neither pending on this node nor committed"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn each_refusal_has_the_status_docs_mempool_md_suggests() {
        let id = Hash::digest(b"x");
        let sender = aegis_testkit::client_key().public_key();
        let cases = [
            (
                Refusal::Malformed(TxError::WrongChain {
                    expected: "a".into(),
                    found: "b".into(),
                }),
                422,
            ),
            (Refusal::Malformed(TxError::Version(2)), 422),
            (
                Refusal::Malformed(TxError::PayloadTooLarge { len: 9, max: 8 }),
                413,
            ),
            (
                Refusal::Malformed(TxError::ChainIdTooLong { len: 65, max: 64 }),
                400,
            ),
            (
                Refusal::TooLarge {
                    bytes: 9,
                    max_bytes: 8,
                },
                413,
            ),
            (Refusal::BadSignature { sender }, 422),
            (Refusal::AlreadyPending { id }, 409),
            (Refusal::RecentlyCommitted { id }, 409),
            (
                Refusal::Full {
                    retry_after_ms: 1500,
                },
                503,
            ),
        ];
        for (refusal, status) in cases {
            let text = refusal.to_string();
            let error = refusal_error(refusal);
            assert_eq!(error.status().as_u16(), status, "{text}");
            assert_eq!(error.to_string(), text);
        }
        let full = refusal_error(Refusal::Full {
            retry_after_ms: 1500,
        });
        assert_eq!(full.retry_after(), Some(Duration::from_millis(1500)));
        let replay = refusal_error(Refusal::AlreadyPending { id });
        assert_eq!(replay.body().id, Some(id.to_hex()));
    }
}
