//! Block sync over P2P (tag `SYNC`). A node that is behind (its core saw higher checkpoints,
//! its peers claim higher heads, or it restarted with less than they have) fetches committed
//! blocks with their commit certificates from its peers: several ranges in flight from
//! several peers ([`fetch`]), each reply checked as a whole (one batch verification of every
//! certificate against the genesis validators) before a block reaches the engine, which
//! stores them through the group committer in large transactions. A peer that serves an
//! invalid block is counted, logged and left out of sync; the range goes to another peer.
//!
//! A validator that lost its consensus log does not vote until it has caught up past every
//! slot it could have signed before ([`fence`]).

pub mod fence;
pub mod fetch;

use aegis_p2p::{Message, P2pNetwork, tags};
use aegis_telemetry::debug;
use aegis_types::{Block, CommitCertificate, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

pub use fence::VoteFence;
pub use fetch::{SyncHandle, Syncer};

/// Most blocks one sync request asks for and one reply carries.
pub const MAX_SYNC_BLOCKS: u32 = 64;
/// Most bytes of blocks one reply carries (well under the smallest frame limit a production
/// configuration uses; a reply stops before the block that would pass it).
pub const MAX_SYNC_REPLY_BYTES: usize = 8 * 1024 * 1024;

/// A sync message.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncMessage {
    /// Send me committed blocks from `from_height` on, at most `max_blocks` (0: only tell me
    /// your head).
    Request { from_height: u64, max_blocks: u32 },
    /// The answer to a request: the server's ledger height (`head`) and committed blocks from
    /// `from_height` on, consecutive, with their certificates (none when it has none of them,
    /// or when only the head was asked for).
    Blocks {
        from_height: u64,
        head: u64,
        blocks: Vec<(Block, CommitCertificate)>,
    },
}

/// Answers `from`'s request from the ledger: always the head, and at most
/// [`MAX_SYNC_BLOCKS`] blocks and [`MAX_SYNC_REPLY_BYTES`] bytes.
pub async fn serve(
    store: aegis_storage::SqlStore,
    network: P2pNetwork,
    from: ValidatorId,
    from_height: u64,
    max_blocks: u32,
) {
    use aegis_storage::Ledger as _;
    let head = match store.height().await {
        Ok(head) => head,
        Err(error) => {
            debug!(peer_id = %from, from_height, error = %error, "Sync request not served");
            return;
        }
    };
    let mut blocks = Vec::new();
    let count = u64::from(max_blocks.min(MAX_SYNC_BLOCKS));
    if count > 0 && from_height >= 1 && from_height <= head {
        let last = from_height.saturating_add(count - 1).min(head);
        let stored = match store.blocks(from_height, last).await {
            Ok(stored) => stored,
            Err(error) => {
                debug!(peer_id = %from, from_height, error = %error, "Sync request not served");
                return;
            }
        };
        let max_bytes = MAX_SYNC_REPLY_BYTES.min(network.max_payload_bytes());
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
    }
    let reply = aegis_types::encoding::encode(&SyncMessage::Blocks {
        from_height,
        head,
        blocks,
    });
    if let Err(error) = network.send(from, Message::bulk(tags::SYNC, reply)).await {
        debug!(peer_id = %from, error = %error, "Sync reply not sent");
    }
}
