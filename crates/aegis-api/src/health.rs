//! `GET /health` on the API port: the node's health for load balancers and the operator
//! guide's health checker, and readiness with `?min_peers=N&max_blocks_behind=M`.
//!
//! Four checks, each `pass`, `warn` or `fail`; the worst gives the status: all `pass` is
//! `healthy`, a `warn` is `degraded` (200: the node serves, something needs attention), a
//! `fail` is `unhealthy` (503: send no traffic here).
//!
//! - `storage` fails while the ledger has a fault.
//! - `consensus` fails while an attached engine is not running (starting or stopping).
//! - `peers` fails below `min_peers`, and warns when an engine runs but fewer than a quorum
//!   of validators is reachable (it cannot commit).
//! - `sync` fails more than `max_blocks_behind` blocks behind the network, and warns while
//!   an engine syncs or has stalled.
//!
//! Without an engine (a node that only stores and relays) peers and sync are reported but do
//! not degrade the node: there is nothing for them to hold up.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ErrorBody;
use crate::model::{
    CheckStatus, ConsensusCheck, HealthChecks, HealthJson, HealthStatus, PeersCheck, StorageCheck,
    SyncCheck,
};
use crate::routes::ClientApi;
use crate::{ApiError, NodeStatus, SyncState};

/// The readiness thresholds of a `/health` request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthQuery {
    /// Fail with fewer connected validators than this.
    pub min_peers: Option<usize>,
    /// Fail further than this many blocks behind the network.
    pub max_blocks_behind: Option<u64>,
}

impl HealthQuery {
    /// Reads `min_peers=N&max_blocks_behind=M` (either, both or none). Anything else is
    /// refused, so a misspelt threshold is not silently ignored by a readiness probe.
    pub fn parse(query: Option<&str>) -> Result<HealthQuery, ApiError> {
        let mut parsed = HealthQuery::default();
        for pair in query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| ApiError::BadRequest(format!("{what} must be a whole number")))
            };
            match name {
                "min_peers" => {
                    parsed.min_peers =
                        Some(usize::try_from(number("min_peers")?).unwrap_or(usize::MAX));
                }
                "max_blocks_behind" => {
                    parsed.max_blocks_behind = Some(number("max_blocks_behind")?);
                }
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown query parameter {:?}; /health takes min_peers and max_blocks_behind",
                        crate::server::cut(name, 64)
                    )));
                }
            }
        }
        Ok(parsed)
    }
}

/// The node's health; with thresholds, its readiness.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    params(
        ("min_peers" = Option<usize>, Query, description = "Readiness: 503 with fewer connected validators"),
        ("max_blocks_behind" = Option<u64>, Query, description = "Readiness: 503 further behind the network's height"),
    ),
    responses(
        (status = 200, description = "Healthy or degraded. `X-Response-Time` gives the time taken.", body = HealthJson),
        (status = 400, description = "An unknown or malformed query parameter.", body = ErrorBody),
        (status = 503, description = "Unhealthy, or not ready by the thresholds given.", body = HealthJson),
    )
)]
pub async fn health(
    State(api): State<Arc<ClientApi>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = HealthQuery::parse(query.as_deref())?;
    let report = report(&api.status, query);
    let code = if report.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok((code, Json(report)).into_response())
}

/// The health report of `status` against the thresholds of `query`.
pub fn report(status: &NodeStatus, query: HealthQuery) -> HealthJson {
    let network = status.network();
    let peers = network.peer_count();
    let fault = status.ledger().fault();
    let view = status.node().map(|node| node.consensus());
    let block_height = view
        .as_ref()
        .map_or(0, |view| view.height)
        .max(status.ledger().height());

    let storage = StorageCheck {
        status: if fault.is_some() {
            CheckStatus::Fail
        } else {
            CheckStatus::Pass
        },
        block_height,
        fault: fault.clone(),
    };

    let reachable = peers + usize::from(network.validator_id().is_some());
    let below_quorum = status.validator_count() > 1 && reachable < status.quorum();
    let (peers_status, peers_message) = match query.min_peers {
        Some(min) if peers < min => (
            CheckStatus::Fail,
            Some(format!(
                "{peers} validators connected, fewer than min_peers {min}"
            )),
        ),
        _ if view.is_some() && below_quorum => (
            CheckStatus::Warn,
            Some(format!(
                "{reachable} of the {} validators reachable, fewer than the quorum of {}: nothing can commit",
                status.validator_count(),
                status.quorum()
            )),
        ),
        _ => (CheckStatus::Pass, None),
    };
    let peers_check = PeersCheck {
        status: peers_status,
        connected: peers,
        validators: status.validator_count(),
        quorum: status.quorum(),
        min_peers: query.min_peers,
        message: peers_message,
    };

    let consensus = match &view {
        None => ConsensusCheck {
            status: CheckStatus::Pass,
            running: false,
            view: None,
            primary: None,
            message: Some("no consensus engine runs in this process".into()),
        },
        Some(view) => ConsensusCheck {
            status: if view.running {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            running: view.running,
            view: Some(view.view),
            primary: view.primary.clone(),
            message: (!view.running).then(|| "the consensus engine is not running".to_owned()),
        },
    };

    let sync_status = match &view {
        Some(view) => view.sync.as_str(),
        None => status.sync_status(peers),
    };
    let blocks_behind = view
        .as_ref()
        .map_or(0, |view| view.network_height.saturating_sub(view.height));
    let sync = SyncCheck {
        status: match (query.max_blocks_behind, &view) {
            (Some(max), _) if blocks_behind > max => CheckStatus::Fail,
            (_, Some(view)) if view.sync != SyncState::Synced => CheckStatus::Warn,
            _ => CheckStatus::Pass,
        },
        sync_status: sync_status.to_owned(),
        blocks_behind,
        max_blocks_behind: query.max_blocks_behind,
    };

    let worst = [
        storage.status,
        peers_check.status,
        consensus.status,
        sync.status,
    ]
    .into_iter()
    .max()
    .unwrap_or(CheckStatus::Pass);
    HealthJson {
        status: HealthStatus::of(worst),
        checks: HealthChecks {
            storage,
            peers: peers_check,
            consensus,
            sync,
        },
        node_id: status.node_id().to_owned(),
        peers,
        block_height,
        sync_status: sync_status.to_owned(),
        uptime_seconds: status.uptime_seconds(),
        storage: fault.unwrap_or_else(|| "ok".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn readiness_thresholds_are_read_and_anything_else_refused() {
        assert_eq!(HealthQuery::parse(None).unwrap(), HealthQuery::default());
        assert_eq!(
            HealthQuery::parse(Some("min_peers=2&max_blocks_behind=10")).unwrap(),
            HealthQuery {
                min_peers: Some(2),
                max_blocks_behind: Some(10),
            }
        );
        assert_eq!(
            HealthQuery::parse(Some("max_blocks_behind=0&")).unwrap(),
            HealthQuery {
                min_peers: None,
                max_blocks_behind: Some(0),
            }
        );
        for bad in [
            "min_peer=2",
            "min_peers=-1",
            "min_peers=",
            "max_blocks_behind=x",
        ] {
            let error = HealthQuery::parse(Some(bad)).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
