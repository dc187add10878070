//! Peer exchange: the validator addresses a node sends its peers, and learning from theirs
//! (only keys of the genesis validator set, bounded by [`MAX_EXCHANGED_PEERS`]).

use std::time::Instant;

use aegis_types::PublicKey;
use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;

use super::{Inner, LOG_TARGET, MAX_EXCHANGED_PEERS};
use crate::book::{MAX_ADDRESS_LEN, Source};

#[derive(BorshSerialize, BorshDeserialize)]
struct PeerList {
    peers: Vec<(String, [u8; 32])>,
}

impl Inner {
    pub(super) fn peer_list_for(&self, recipient: &PublicKey) -> Bytes {
        let state = self.lock();
        let mut peers: Vec<(String, [u8; 32])> = state
            .book
            .known()
            .into_iter()
            .filter(|(_, key)| key != recipient)
            .map(|(address, key)| (address, key.0))
            .collect();
        peers.truncate(MAX_EXCHANGED_PEERS);
        Bytes::from(borsh::to_vec(&PeerList { peers }).unwrap_or_default())
    }

    pub(super) fn learn_peers(&self, from: &PublicKey, payload: &[u8]) -> Result<(), String> {
        let list =
            PeerList::try_from_slice(payload).map_err(|_| "malformed peer list".to_string())?;
        if list.peers.len() > MAX_EXCHANGED_PEERS {
            return Err(format!("peer list of {} entries", list.peers.len()));
        }
        let own = self.identity.public_key();
        let now = Instant::now();
        let mut state = self.lock();
        for (address, key) in list.peers {
            let key = PublicKey(key);
            if key == own || key == *from || address.len() > MAX_ADDRESS_LEN {
                continue;
            }
            if self.identity.validators().id_of(&key).is_none() {
                continue;
            }
            if state
                .book
                .learn(address.clone(), key, Source::Exchange, now)
            {
                aegis_telemetry::debug!(
                    target: LOG_TARGET,
                    %address,
                    "Learned peer address from peer exchange"
                );
            }
        }
        Ok(())
    }
}
