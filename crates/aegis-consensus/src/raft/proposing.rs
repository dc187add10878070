//! The leader cuts blocks from the mempool: it asks the driver for the oldest pending
//! transactions while fewer than `pipeline_depth` of its entries are uncommitted, and appends
//! each batch as a block of its term (§5.3: "The leader appends the command to its log as a
//! new entry, then issues AppendEntries RPCs in parallel"). Every node tracks the ids of
//! pending transactions; the transactions stay in the mempool.

use std::collections::BTreeSet;

use aegis_types::{Block, Hash, Transaction};

use super::Raft;
use super::log::LogEntry;
use crate::Effect;

impl Raft {
    /// Whether the leader may append another block now.
    fn has_room(&self) -> bool {
        self.is_leader() && self.log.uncommitted() < self.config.pipeline_depth as usize
    }

    /// Asks the driver for a batch when there is room and something to order; once per step
    /// (the driver answers at once with [`crate::Input::Proposal`]).
    pub(super) fn maybe_propose(&mut self) {
        if self.proposal_asked
            || self.proposal_exhausted
            || self.pending.is_empty()
            || !self.has_room()
        {
            return;
        }
        self.proposal_asked = true;
        self.out.last.push(Effect::ProposalWanted {
            max_txs: self.config.max_block_txs,
        });
    }

    /// Orders the batch the driver handed out, leaving out transactions already in the log,
    /// recently committed or repeated. An empty answer means the mempool has nothing more for
    /// now; a batch that was all duplicates asks again.
    pub(super) fn on_proposal(&mut self, txs: Vec<Transaction>) {
        if !self.has_room() || txs.is_empty() {
            self.proposal_exhausted |= txs.is_empty();
            if self.certificates_owed {
                self.send_owed_certificates();
            }
            return;
        }
        let in_log: BTreeSet<Hash> = self
            .log
            .entries()
            .flat_map(|entry| entry.tx_ids().iter().copied())
            .collect();
        let mut seen = BTreeSet::new();
        let (txs, ids): (Vec<Transaction>, Vec<Hash>) = txs
            .into_iter()
            .filter(|tx| tx.check_structure(&self.config.chain_id).is_ok())
            .map(|tx| {
                let id = tx.id();
                (tx, id)
            })
            .filter(|(_, id)| {
                !in_log.contains(id) && !self.recent_ids.contains(id) && seen.insert(*id)
            })
            .take(self.config.max_block_txs as usize)
            .unzip();
        self.proposal_asked = false;
        if !txs.is_empty() {
            self.append_block(txs, ids);
        }
        if self.certificates_owed {
            self.send_owed_certificates();
        }
        self.maybe_propose();
    }

    /// Appends a block of the current term after the last entry (`ids` are its transactions'
    /// ids) and sends it to every follower whose flow control allows.
    pub(super) fn append_block(&mut self, txs: Vec<Transaction>, ids: Vec<Hash>) {
        debug_assert!(self.is_leader());
        let block = Block::new(
            &self.config.chain_id,
            self.log.last_index() + 1,
            self.log.last_hash(),
            self.key.public_key(),
            self.term,
            // Never before the parent, whatever this clock says.
            self.now_ms.max(self.log.last_timestamp_ms()),
            txs,
        );
        self.log.append(LogEntry::with_tx_ids(block, ids.into()));
        let peers: Vec<_> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer, false);
        }
    }

    /// Notes transactions the mempool admitted, up to `max_pending_txs` ids.
    pub(super) fn on_transactions_pending(&mut self, ids: Vec<Hash>) {
        for id in ids {
            if self.pending.len() >= self.config.max_pending_txs {
                break;
            }
            if !self.recent_ids.contains(&id) {
                self.pending.insert(id);
            }
        }
        self.proposal_exhausted = false;
        self.maybe_propose();
    }
}
