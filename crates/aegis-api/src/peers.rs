//! `GET /v1/peers`: the genesis validators as this node sees them (itself, connected or
//! not, with the last ping's round trip), and the quorum a block needs. The explorer page
//! shows it, and checks certificate signatures with the keys it lists.

use std::sync::Arc;

use aegis_types::ValidatorId;
use axum::Json;
use axum::extract::State;

use crate::model::{PeerState, PeersJson, ValidatorPeerJson};
use crate::routes::ClientApi;

#[utoipa::path(
    get,
    path = "/v1/peers",
    tag = "meta",
    responses(
        (status = 200, description = "Every genesis validator (name, key, whether this node is connected to it), how many are connected, and the quorum.", body = PeersJson),
    )
)]
pub async fn peers(State(api): State<Arc<ClientApi>>) -> Json<PeersJson> {
    let status = &api.status;
    let network = status.network();
    let connected = network.peers();
    let me = network.validator_id();
    let validators = status
        .validator_members()
        .iter()
        .enumerate()
        .map(|(index, (name, public_key))| {
            // Validator sets hold at most MAX_VALIDATORS (1024) members: indices fit u16.
            let id = ValidatorId(u16::try_from(index).unwrap_or(u16::MAX));
            let peer = connected.iter().find(|peer| peer.id == id);
            let state = if me == Some(id) {
                PeerState::Myself
            } else if peer.is_some() {
                PeerState::Connected
            } else {
                PeerState::Disconnected
            };
            ValidatorPeerJson {
                validator_id: id.0,
                name: name.clone(),
                public_key: *public_key,
                state,
                direction: peer.map(|peer| peer.direction.label()),
                rtt_ms: peer
                    .and_then(|peer| peer.rtt)
                    .map(|rtt| rtt.as_secs_f64() * 1000.0),
            }
        })
        .collect();
    Json(PeersJson {
        node_id: status.node_id().to_owned(),
        connected: connected.len(),
        quorum: status.quorum(),
        validators,
    })
}
