//! The primary orders batches (§4.2 "batching"): it asks the driver for the oldest pending
//! transactions while the pipeline and the watermark window have room, and assigns each batch
//! the next sequence number. Every replica tracks the ids of pending transactions for its
//! request timer (§4.4); the transactions themselves stay in the mempool.

use std::collections::BTreeSet;

use aegis_types::{Hash, Transaction};

use super::messages::{Batch, PbftMessage, PrePrepare};
use super::state::Status;
use super::{Pbft, PbftEffect};
use crate::{Effect, Outgoing};

impl Pbft {
    pub(super) fn next_seq(&self) -> u64 {
        let proposed = self
            .slots
            .iter()
            .rev()
            .find(|(_, slot)| slot.durable.view == self.view && slot.durable.pre_prepare.is_some())
            .map_or(0, |(seq, _)| *seq);
        proposed.max(self.last_executed).max(self.stable.seq) + 1
    }

    /// The sequence number the primary would propose next, when the pipeline and the window
    /// have room for it.
    pub(super) fn proposal_room(&self) -> Option<u64> {
        if self.status != Status::Normal || !self.is_primary() {
            return None;
        }
        let seq = self.next_seq();
        let room = seq <= self.last_executed + u64::from(self.config.pipeline_depth)
            && seq <= self.high_watermark();
        room.then_some(seq)
    }

    /// Ids of the transactions in batches proposed in this view and not executed yet.
    pub(super) fn in_flight(&self) -> BTreeSet<Hash> {
        self.slots
            .range(self.last_executed + 1..)
            .filter(|(_, slot)| slot.durable.view == self.view)
            .filter(|(_, slot)| slot.durable.pre_prepare.is_some())
            .flat_map(|(_, slot)| slot.tx_ids.iter().copied())
            .collect()
    }

    /// The primary asks for a batch when it has room and pending transactions that are not in
    /// flight yet; once per step (the driver answers at once with [`crate::Input::Proposal`]).
    pub(super) fn maybe_propose(&mut self) {
        if self.proposal_asked || self.proposal_room().is_none() {
            return;
        }
        let in_flight = self.in_flight();
        if self.pending.keys().all(|id| in_flight.contains(id)) {
            return;
        }
        self.proposal_asked = true;
        let effect: PbftEffect = Effect::ProposalWanted {
            max_txs: self.config.max_block_txs,
        };
        self.out.last.push(effect);
    }

    /// Orders the batch the driver handed out, leaving out transactions already in flight,
    /// recently committed or repeated; an empty answer ends the asking for this step.
    pub(super) fn on_proposal(&mut self, txs: Vec<Transaction>) {
        let Some(seq) = self.proposal_room() else {
            return;
        };
        let in_flight = self.in_flight();
        let mut seen = BTreeSet::new();
        let (txs, ids): (Vec<Transaction>, Vec<Hash>) = txs
            .into_iter()
            .filter(|tx| tx.check_structure(&self.config.chain_id).is_ok())
            .map(|tx| {
                let id = tx.id();
                (tx, id)
            })
            .filter(|(_, id)| {
                !in_flight.contains(id) && !self.recent_ids.contains(id) && seen.insert(*id)
            })
            .take(self.config.max_block_txs as usize)
            .unzip();
        if txs.is_empty() {
            // Nothing new to order: do not ask again until another input arrives.
            self.proposal_asked = true;
            return;
        }
        let batch = Batch {
            proposer: self.config.me,
            view: self.view,
            // Never before the parent, whatever this clock says (backups refuse that).
            timestamp_ms: self.now_ms.max(self.parent_timestamp(seq).unwrap_or(0)),
            txs: txs.into(),
        };
        let digest = batch.digest();
        let pp = PrePrepare::signed_with_digest(
            &self.config.chain_id,
            &self.key,
            (self.view, seq),
            batch,
            digest,
        );
        self.slot_mut(seq)
            .set_pre_prepare(pp.clone(), digest, ids.into());
        self.send_signed(Outgoing::All(PbftMessage::PrePrepare(pp)));
        #[cfg(feature = "planted-bugs")]
        super::planted::send_early(
            super::planted::PlantedBug::ProposalSentBeforePersist,
            &mut self.out,
        );
        // With one validator (f = 0) no backup will answer: the primary's own pre-prepare
        // is a prepared certificate, and its own commit a quorum.
        self.advance(seq);
        self.refresh_progress_timer(false);
        self.proposal_asked = false;
        self.maybe_propose();
    }

    /// Forgets a pending transaction (it was executed).
    pub(super) fn remove_pending(&mut self, id: &Hash) {
        if let Some(arrived) = self.pending.remove(id) {
            self.pending_by_age.remove(&(arrived, *id));
        }
    }

    /// Notes transactions the mempool admitted, for the request timer, up to
    /// `max_pending_txs` ids (the mempool's own bound, so none is lost in practice).
    pub(super) fn on_transactions_pending(&mut self, ids: Vec<Hash>) {
        for id in ids {
            if self.pending.len() >= self.config.max_pending_txs {
                break;
            }
            if !self.recent_ids.contains(&id) && !self.pending.contains_key(&id) {
                self.pending.insert(id, self.now_ms);
                self.pending_by_age.insert((self.now_ms, id));
            }
        }
        self.maybe_propose();
        self.refresh_progress_timer(false);
    }
}
