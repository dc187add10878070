//! Block sync over P2P (tag `SYNC`): a node that is behind asks a peer for committed blocks
//! from a height on; the peer answers from its ledger with each block's commit certificate.
//! The core accepts a synced block only if its certificate verifies against the genesis
//! validators, so a peer can slow a node down but never feed it a wrong block.

use aegis_p2p::{Message, P2pNetwork, tags};
use aegis_telemetry::debug;
use aegis_types::{Block, CommitCertificate, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

/// Most blocks one sync request asks for and one reply carries.
pub const MAX_SYNC_BLOCKS: u32 = 64;
/// Most bytes of blocks one reply carries (well under the smallest frame limit a production
/// configuration uses; a reply stops before the block that would pass it).
pub const MAX_SYNC_REPLY_BYTES: usize = 8 * 1024 * 1024;

/// A sync message.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncMessage {
    /// Send me committed blocks from `from_height` on, at most `max_blocks`.
    Request { from_height: u64, max_blocks: u32 },
    /// Committed blocks, consecutive, with their certificates.
    Blocks(Vec<(Block, CommitCertificate)>),
}

/// Answers `from`'s request from the ledger (at most [`MAX_SYNC_BLOCKS`] blocks and
/// [`MAX_SYNC_REPLY_BYTES`] bytes); nothing when it has none of them.
pub async fn serve(
    store: aegis_storage::SqlStore,
    network: P2pNetwork,
    from: ValidatorId,
    from_height: u64,
    max_blocks: u32,
) {
    use aegis_storage::Ledger as _;
    let count = u64::from(max_blocks.clamp(1, MAX_SYNC_BLOCKS));
    let last = from_height.saturating_add(count - 1);
    let stored = match store.blocks(from_height.max(1), last).await {
        Ok(stored) => stored,
        Err(error) => {
            debug!(peer_id = %from, from_height, error = %error, "Sync request not served");
            return;
        }
    };
    let max_bytes = MAX_SYNC_REPLY_BYTES.min(network.max_payload_bytes());
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for stored in stored {
        let size = aegis_types::encoding::encode(&stored.block).len()
            + aegis_types::encoding::encode(&stored.certificate).len();
        if bytes + size > max_bytes && !blocks.is_empty() {
            break;
        }
        bytes += size;
        blocks.push((stored.block, stored.certificate));
    }
    if blocks.is_empty() {
        return;
    }
    let reply = aegis_types::encoding::encode(&SyncMessage::Blocks(blocks));
    if let Err(error) = network.send(from, Message::bulk(tags::SYNC, reply)).await {
        debug!(peer_id = %from, error = %error, "Sync reply not sent");
    }
}
