//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the API port, derived from the
//! handlers' annotations and the types of [`crate::model`]. `docs/api.md` describes the same
//! routes for people; tests keep the three (router, document, page) in agreement.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::ClientApi;
use crate::{ApiError, blocks, chain, events, explorer, health, model, peers, transactions};

/// The document's description of the API port.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "AEGIS client API",
        description = "Submit transactions to an AEGIS node and read committed blocks, transactions with their inclusion proofs, and a stream of commits. JSON forms follow docs/encoding.md; docs/api.md has examples. Every error answer is `{\"error\", \"message\"}` with a stable `error` code.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        health::health,
        transactions::submit,
        transactions::get_transaction,
        blocks::latest_block,
        blocks::get_block,
        events::events,
        openapi_json,
        chain::node_info,
        peers::peers,
        explorer::index,
        explorer::asset,
    ),
    components(schemas(
        ErrorBody,
        model::TransactionJson,
        model::Accepted,
        model::Rejected,
        model::BatchItem,
        model::TransactionStatusJson,
        model::ProofJson,
        model::BlockJson,
        model::HeaderJson,
        model::CertificateJson,
        model::SignatureJson,
        model::BlockEventJson,
        model::HealthJson,
        model::NodeInfoJson,
        model::PeersJson,
        model::ValidatorPeerJson,
        model::PeerState,
        transactions::SubmitRequest,
        transactions::SubmitResponse,
    )),
    tags(
        (name = "transactions", description = "Submitting and following transactions"),
        (name = "blocks", description = "Committed blocks with their certificates"),
        (name = "events", description = "A stream of committed blocks"),
        (name = "health", description = "Health and readiness"),
        (name = "meta", description = "This document, the node's chain and its peers"),
        (name = "explorer", description = "The block explorer page for people, served by the node"),
    ),
    modifiers(&EveryRouteMayRefuse)
)]
pub struct ApiDoc;

/// The answers any route may give before its handler runs (the limits of
/// [`crate::limits`]), added to every operation.
struct EveryRouteMayRefuse;

impl Modify for EveryRouteMayRefuse {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorResponse")))
                        .build(),
                )
                .build()
        };
        let common = [
            (
                "408",
                error(
                    "The request was not read and answered within `request_timeout`; the connection is closed.",
                ),
            ),
            (
                "413",
                error("The body is over `max_body_bytes` (or a bound inside it)."),
            ),
            (
                "429",
                error(
                    "Over the per-IP rate limit (`security.rate_limiting`); `Retry-After` says when to retry. `/health` is exempt.",
                ),
            ),
            (
                "431",
                error("The request target and headers are over `max_header_bytes`."),
            ),
            (
                "500",
                error("A fault of the node; its log has the details."),
            ),
            (
                "503",
                error(
                    "The node cannot serve this now (too many requests in progress, ledger unavailable, starting or stopping).",
                ),
            ),
        ];
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                add_missing(operation, &common);
            }
        }
    }
}

fn add_missing(operation: &mut Operation, common: &[(&str, utoipa::openapi::Response)]) {
    let responses: &mut BTreeMap<String, RefOr<utoipa::openapi::Response>> =
        &mut operation.responses.responses;
    for (status, response) in common {
        responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::T(response.clone()));
    }
}

/// The document as JSON, built once.
pub fn document() -> Result<&'static str, ApiError> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            ApiDoc::openapi()
                .to_pretty_json()
                .map_err(|error| error.to_string())
        })
        .as_deref()
        .map_err(|error| ApiError::Internal(format!("encode the OpenAPI document: {error}")))
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API.", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(State(_api): State<Arc<ClientApi>>) -> Result<Response, ApiError> {
    let document = document()?;
    Ok(([(header::CONTENT_TYPE, "application/json")], document).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_route_of_the_table() {
        let document: serde_json::Value = serde_json::from_str(document().unwrap()).unwrap();
        if let Ok(path) = std::env::var("AEGIS_DUMP_OPENAPI") {
            std::fs::write(path, document.to_string()).unwrap();
        }
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = document["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|key| ["get", "post", "put", "delete", "patch"].contains(&key.as_str()))
                    .map(|method| (method.to_uppercase(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut served: Vec<(String, String)> = crate::routes::api_routes()
            .iter()
            .map(|route| (route.method.to_string(), route.path.to_owned()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }
}
