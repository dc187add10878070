//! The normal case (§4.2): PRE-PREPARE, PREPARE and COMMIT with quorums of 2f + 1, the
//! view gate that holds messages for a view about to start, the watermark window, and
//! execution in sequence order, where each batch becomes the block at its height (ADR 0003).

use std::collections::BTreeSet;

use aegis_types::{Block, CommitCertificate, CommitSignature, Hash, ValidatorId};

use super::Pbft;
use super::config::MAX_FUTURE_VIEW_DISTANCE;
use super::messages::{
    self, Batch, Checkpoint, Commit, PbftMessage, PrePrepare, Prepare, PreparedCert,
};
#[cfg(feature = "planted-bugs")]
use super::planted::{self, PlantedBug};
use super::reject::RejectReason;
use super::state::{Slot, Status};
use crate::{Effect, Outgoing};

impl Pbft {
    pub(super) fn on_message(
        &mut self,
        from: ValidatorId,
        message: PbftMessage,
    ) -> Result<(), RejectReason> {
        if self.config.validators.get(from).is_none() {
            return Err(RejectReason::UnknownSender);
        }
        if from == self.config.me {
            return Err(RejectReason::FromSelf);
        }
        match message {
            PbftMessage::PrePrepare(pp) => self.on_pre_prepare(from, pp),
            PbftMessage::Prepare(p) => self.on_prepare(from, p),
            PbftMessage::Commit(c) => self.on_commit(from, c),
            PbftMessage::Checkpoint(c) => self.on_checkpoint(from, c),
            PbftMessage::ViewChange(vc) => self.on_view_change(from, vc),
            PbftMessage::NewView(nv) => self.on_new_view(from, nv),
        }
    }

    /// Normal-case messages are processed only in the view the replica runs (§4.2); those
    /// for a view about to start are held in a bounded buffer, stale ones refused.
    /// Returns `Ok(true)` when the message should be processed now. Called only once the
    /// message's signature has verified: a stale one may raise the behind hint and have the
    /// NEW-VIEW forwarded to its sender.
    pub(super) fn view_gate(
        &mut self,
        from: ValidatorId,
        view: u64,
        message: &PbftMessage,
    ) -> Result<bool, RejectReason> {
        if view < self.view {
            if let PbftMessage::Commit(c) = message
                && c.seq > self.last_executed
            {
                // Others committed in an older view while this replica left it: a hint that
                // it is behind (checked by sync, which only accepts certified blocks).
                self.note_behind(c.seq);
            }
            // The signature has verified (see above): no need to check it again.
            self.forward_new_view(from, |_| true)?;
            return Err(RejectReason::StaleView {
                view,
                current: self.view,
            });
        }
        if view == self.view && self.status == Status::Normal {
            return Ok(true);
        }
        if view - self.view > MAX_FUTURE_VIEW_DISTANCE {
            return Err(RejectReason::FutureView {
                view,
                current: self.view,
            });
        }
        if self.future.iter().any(|(f, m)| *f == from && m == message) {
            return Err(RejectReason::Duplicate);
        }
        if self.future.len() >= self.config.max_future_messages {
            self.future.pop_front();
        }
        self.future.push_back((from, message.clone()));
        Ok(false)
    }

    /// Refuses a sequence number outside (h, H] (§4.2). An out-of-window message still says
    /// something if it is authentic: a sender below the window gets the stable checkpoint
    /// proof, one above it hints that this replica has fallen behind. `authentic` checks the
    /// sender's signature; it runs only when one of those would follow, so a forged message
    /// changes nothing (not even a hint) and costs at most one verification.
    pub(super) fn check_window(
        &mut self,
        from: ValidatorId,
        seq: u64,
        authentic: impl FnOnce(&Pbft) -> bool,
    ) -> Result<(), RejectReason> {
        let (low, high) = (self.low_watermark(), self.high_watermark());
        if seq > low && seq <= high {
            return Ok(());
        }
        let useful = if seq <= low {
            self.proof_forward_due(from)
        } else {
            self.hint_would_rise(seq - 1)
        };
        if useful {
            if !authentic(self) {
                return Err(RejectReason::BadSignature);
            }
            if seq <= low {
                self.forward_stable_proof(from);
            } else {
                // The sender works above this replica's window: it has fallen behind.
                self.note_behind(seq - 1);
            }
        }
        Err(RejectReason::OutOfWindow { seq, low, high })
    }

    /// The log entry for `seq` in the current view, created or moved to it as needed.
    pub(super) fn slot_mut(&mut self, seq: u64) -> &mut Slot {
        let view = self.view;
        let slot = self
            .slots
            .entry(seq)
            .or_insert_with(|| Slot::new(seq, view));
        slot.enter_view(view);
        slot
    }

    /// The entry for `seq` if it already belongs to the current view.
    pub(super) fn current_slot(&self, seq: u64) -> Option<&Slot> {
        self.slots
            .get(&seq)
            .filter(|slot| slot.durable.view == self.view)
    }

    pub(super) fn on_pre_prepare(
        &mut self,
        from: ValidatorId,
        pp: PrePrepare,
    ) -> Result<(), RejectReason> {
        let primary = self.config.primary(pp.view);
        if from != primary {
            return Err(RejectReason::NotPrimary {
                view: pp.view,
                primary,
            });
        }
        let digest = pp.batch.digest();
        self.check_window(from, pp.seq, |me| {
            let bytes = messages::pre_prepare_bytes(&me.config.chain_id, pp.view, pp.seq, &digest);
            me.verify_from(from, &bytes, &pp.signature)
        })?;
        let bytes = messages::pre_prepare_bytes(&self.config.chain_id, pp.view, pp.seq, &digest);
        let existing = self
            .current_slot(pp.seq)
            .and_then(|s| s.durable.pre_prepare.as_ref());
        #[cfg(feature = "planted-bugs")]
        let existing = planted::forget(PlantedBug::ReplaceConflictingPrePrepare, existing);
        if let Some(existing) = existing
            && pp.view == self.view
        {
            if existing.batch.digest() == digest {
                return Err(RejectReason::Duplicate);
            }
            if !self.verify_from(from, &bytes, &pp.signature) {
                return Err(RejectReason::BadSignature);
            }
            return Err(RejectReason::Equivocation {
                view: pp.view,
                seq: pp.seq,
            });
        }
        let message = PbftMessage::PrePrepare(pp);
        let PbftMessage::PrePrepare(pp) = &message else {
            return Ok(());
        };
        if !self.verify_from(from, &bytes, &pp.signature) {
            return Err(RejectReason::BadSignature);
        }
        if !self.view_gate(from, pp.view, &message)? {
            return Ok(());
        }
        let tx_ids = self.check_batch(&pp.batch, pp.view, pp.seq, from)?;
        let PbftMessage::PrePrepare(pp) = message else {
            return Ok(());
        };
        let seq = pp.seq;
        let me = self.config.me;
        let chain_id = self.config.chain_id.clone();
        let view = self.view;
        let own = Prepare::new_signed(&chain_id, &self.key, me, view, seq, digest);
        let slot = self.slot_mut(seq);
        slot.set_pre_prepare(pp, digest, tx_ids);
        let mut prepare = None;
        if me != primary && slot.durable.sent_prepare.is_none() {
            slot.durable.sent_prepare = Some(digest);
            slot.prepares.insert(me, own.clone());
            prepare = Some(own);
        }
        if let Some(p) = prepare {
            self.send_signed(Outgoing::All(PbftMessage::Prepare(p)));
        }
        self.refresh_progress_timer(false);
        self.advance(seq);
        Ok(())
    }

    pub(super) fn on_prepare(&mut self, from: ValidatorId, p: Prepare) -> Result<(), RejectReason> {
        if p.from != from {
            return Err(RejectReason::SenderMismatch { claimed: p.from });
        }
        if from == self.config.primary(p.view) {
            return Err(RejectReason::PrepareFromPrimary);
        }
        self.check_window(from, p.seq, |me| {
            let bytes =
                messages::prepare_bytes(&me.config.chain_id, p.view, p.seq, &p.digest, from);
            me.verify_from(from, &bytes, &p.signature)
        })?;
        if p.view == self.view
            && let Some(existing) = self.current_slot(p.seq).and_then(|s| s.prepares.get(&from))
        {
            if existing.digest == p.digest {
                return Err(RejectReason::Duplicate);
            }
            let bytes =
                messages::prepare_bytes(&self.config.chain_id, p.view, p.seq, &p.digest, from);
            if !self.verify_from(from, &bytes, &p.signature) {
                return Err(RejectReason::BadSignature);
            }
            return Err(RejectReason::ConflictingVote {
                view: p.view,
                seq: p.seq,
            });
        }
        let bytes = messages::prepare_bytes(&self.config.chain_id, p.view, p.seq, &p.digest, from);
        if !self.verify_from(from, &bytes, &p.signature) {
            return Err(RejectReason::BadSignature);
        }
        let message = PbftMessage::Prepare(p);
        let PbftMessage::Prepare(p) = &message else {
            return Ok(());
        };
        if !self.view_gate(from, p.view, &message)? {
            return Ok(());
        }
        let PbftMessage::Prepare(p) = message else {
            return Ok(());
        };
        let seq = p.seq;
        self.slot_mut(seq).prepares.insert(from, p);
        self.advance(seq);
        Ok(())
    }

    pub(super) fn on_commit(&mut self, from: ValidatorId, c: Commit) -> Result<(), RejectReason> {
        if c.from != from {
            return Err(RejectReason::SenderMismatch { claimed: c.from });
        }
        self.check_window(from, c.seq, |me| {
            let bytes = messages::commit_bytes(&me.config.chain_id, c.view, c.seq, c.block_hash);
            me.verify_from(from, &bytes, &c.signature)
        })?;
        let bytes = messages::commit_bytes(&self.config.chain_id, c.view, c.seq, c.block_hash);
        if c.view == self.view
            && let Some(existing) = self.current_slot(c.seq).and_then(|s| s.commits.get(&from))
        {
            if existing.block_hash == c.block_hash {
                return Err(RejectReason::Duplicate);
            }
            if !self.verify_from(from, &bytes, &c.signature) {
                return Err(RejectReason::BadSignature);
            }
            return Err(RejectReason::ConflictingVote {
                view: c.view,
                seq: c.seq,
            });
        }
        if !self.verify_from(from, &bytes, &c.signature) {
            return Err(RejectReason::BadSignature);
        }
        let message = PbftMessage::Commit(c);
        let PbftMessage::Commit(c) = &message else {
            return Ok(());
        };
        if !self.view_gate(from, c.view, &message)? {
            return Ok(());
        }
        let PbftMessage::Commit(c) = message else {
            return Ok(());
        };
        let seq = c.seq;
        self.slot_mut(seq).commits.insert(from, c);
        self.advance(seq);
        Ok(())
    }

    /// Prepared, committed, executed: everything that may follow new votes at `seq`.
    pub(super) fn advance(&mut self, seq: u64) {
        self.try_prepare_and_commit(seq);
        self.try_execute();
    }

    /// §4.2: prepared(m, v, n, i) once the pre-prepare and 2f matching PREPAREs from distinct
    /// backups are logged; then multicast COMMIT. The COMMIT names the block hash, known once
    /// the previous block is executed (ADR 0003).
    pub(super) fn try_prepare_and_commit(&mut self, seq: u64) {
        if self.status != Status::Normal {
            return;
        }
        let view = self.view;
        let primary = self.config.primary(view);
        let need_prepares = self.config.quorum() - 1;
        #[cfg(feature = "planted-bugs")]
        let need_prepares = planted::one_fewer(PlantedBug::PrepareQuorumOffByOne, need_prepares);
        let next_height = self.last_executed + 1;
        let last_hash = self.last_hash;
        let me = self.config.me;
        let chain_id = self.config.chain_id.clone();
        let Some(mut slot) = self.slots.remove(&seq) else {
            return;
        };
        let mut commit = None;
        if slot.durable.view == view
            && let (Some(pp), Some(digest)) = (slot.durable.pre_prepare.clone(), slot.digest)
        {
            if !slot.prepared_in(view) {
                let matching: Vec<Prepare> = slot
                    .prepares
                    .values()
                    .filter(|p| p.digest == digest && p.from != primary)
                    .cloned()
                    .collect();
                if matching.len() >= need_prepares {
                    slot.durable.prepared = Some(PreparedCert {
                        pre_prepare: pp.clone(),
                        prepares: matching,
                    });
                }
            }
            if slot.prepared_in(view) && slot.durable.sent_commit.is_none() {
                let block_hash = match slot.durable.executed {
                    Some((executed_digest, hash)) if executed_digest == digest => Some(hash),
                    Some(_) => None,
                    None if seq == next_height => {
                        self.candidate_block(&mut slot, last_hash).map(|b| b.hash())
                    }
                    None => None,
                };
                if let Some(block_hash) = block_hash {
                    let c = Commit::new_signed(&chain_id, &self.key, me, view, seq, block_hash);
                    slot.durable.sent_commit = Some(block_hash);
                    slot.commits.insert(me, c.clone());
                    commit = Some(c);
                }
            }
        }
        self.slots.insert(seq, slot);
        if let Some(c) = commit {
            self.send_signed(Outgoing::All(PbftMessage::Commit(c)));
        }
    }

    /// The block a slot's batch becomes after `prev_hash`, built once and kept in the slot
    /// (callers that need only its hash borrow it; execution takes it).
    pub(super) fn candidate_block<'s>(
        &self,
        slot: &'s mut Slot,
        prev_hash: Hash,
    ) -> Option<&'s Block> {
        let built = slot
            .candidate
            .as_ref()
            .is_some_and(|block| block.header.prev_hash == prev_hash);
        if !built {
            let pp = slot.durable.pre_prepare.as_ref()?;
            let block = self.build_block(&pp.batch, &slot.tx_ids, slot.durable.seq, prev_hash);
            slot.candidate = Some(block);
        }
        slot.candidate.as_ref()
    }

    /// The block `batch` (whose transactions' ids are `ids`) becomes at `height`.
    pub(super) fn build_block(
        &self,
        batch: &Batch,
        ids: &[Hash],
        height: u64,
        prev_hash: Hash,
    ) -> Block {
        let proposer = self
            .config
            .validators
            .get(batch.proposer)
            .map(|v| v.public_key)
            .unwrap_or(aegis_types::PublicKey([0; 32]));
        let mut seen = BTreeSet::new();
        let recent = &self.recent_ids;
        // Every caller builds on the last executed block, whose timestamp this is.
        let parent = (prev_hash, self.last_timestamp_ms);
        batch.to_block(
            &self.config.chain_id,
            height,
            parent,
            proposer,
            |index, tx| {
                let id = ids.get(index).copied().unwrap_or_else(|| tx.id());
                !recent.contains(&id) && seen.insert(id)
            },
        )
    }

    /// §4.2: committed-local once 2f + 1 matching COMMITs are logged; execute in sequence
    /// order. The COMMITs of one view for the block hash form its certificate.
    pub(super) fn try_execute(&mut self) {
        loop {
            let seq = self.last_executed + 1;
            let last_hash = self.last_hash;
            let quorum = self.config.quorum();
            let Some(mut slot) = self.slots.remove(&seq) else {
                return;
            };
            let candidate = self.candidate_block(&mut slot, last_hash).map(Block::hash);
            let ready = match (candidate, slot.digest) {
                (Some(hash), Some(digest)) => {
                    let signatures: Vec<CommitSignature> = slot
                        .commits
                        .values()
                        .filter(|c| c.block_hash == hash && c.view == slot.durable.view)
                        .map(|c| CommitSignature {
                            validator: c.from,
                            signature: c.signature,
                        })
                        .collect();
                    (signatures.len() >= quorum).then(|| {
                        let certificate = CommitCertificate {
                            height: seq,
                            view: slot.durable.view,
                            block_hash: hash,
                            signatures,
                        };
                        (digest, certificate)
                    })
                }
                _ => None,
            };
            // The block goes to the ledger; the slot keeps its batch (for VIEW-CHANGE) until
            // the next stable checkpoint, but not a second copy of it.
            let Some(((digest, certificate), block)) = ready.and_then(|ready| {
                // Ready means the candidate was just built or found.
                slot.candidate.take().map(|block| (ready, block))
            }) else {
                self.slots.insert(seq, slot);
                return;
            };
            slot.durable.executed = Some((digest, certificate.block_hash));
            let in_current_view = slot.durable.view == self.view;
            self.slots.insert(seq, slot);
            self.commit_block(block, certificate, in_current_view);
            self.try_prepare_and_commit(seq + 1);
        }
    }

    /// Records an executed block and does what follows: the checkpoint every K blocks
    /// (§4.3), the pending ids, the progress timer.
    pub(super) fn commit_block(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
        in_current_view: bool,
    ) {
        let height = block.height();
        let hash = certificate.block_hash;
        // Callers execute in order (try_execute) or check the height (sync): a decided height
        // is always the next one, and a certificate always names its block.
        assert_eq!(
            height,
            self.last_executed + 1,
            "decided heights run without gaps"
        );
        assert_eq!(
            block.header.prev_hash, self.last_hash,
            "a decided block links to the last"
        );
        debug_assert_eq!(certificate.height, height);
        debug_assert_eq!(hash, block.hash());
        let ids = block.tx_ids();
        for id in &ids {
            self.recent_ids.insert(*id);
            self.remove_pending(id);
        }
        self.recent_txs.push_back((height, ids));
        while let Some((oldest, _)) = self.recent_txs.front() {
            if oldest + self.config.tx_dedup_window_blocks > height {
                break;
            }
            if let Some((_, old_ids)) = self.recent_txs.pop_front() {
                for id in old_ids {
                    self.recent_ids.remove(&id);
                }
            }
        }
        self.last_executed = height;
        self.last_hash = hash;
        self.last_timestamp_ms = block.header.timestamp_ms;
        self.out
            .first
            .push(Effect::CommitBlock { block, certificate });
        if in_current_view && self.status == Status::Normal {
            // §4.5.2: executing in the new view ends the run of failed views.
            self.failed_views = 0;
        }
        if height.is_multiple_of(self.config.checkpoint_interval) && height > self.stable.seq {
            let me = self.config.me;
            let checkpoint =
                Checkpoint::new_signed(&self.config.chain_id, &self.key, me, height, hash);
            self.insert_checkpoint(checkpoint.clone());
            self.send_signed(Outgoing::All(PbftMessage::Checkpoint(checkpoint)));
            self.check_stable(height);
        }
        self.refresh_progress_timer(true);
        self.maybe_propose();
    }
}
