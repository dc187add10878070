//! Checks of what peers send beyond their own signature: proposed batches, checkpoint
//! proofs, prepared certificates and VIEW-CHANGE messages (§4.4), and transaction signatures
//! in one batch verification.

use std::collections::BTreeSet;
use std::sync::Arc;

use aegis_types::encoding::encode;
use aegis_types::{Hash, Transaction, ValidatorId};

use aegis_types::genesis::MAX_BLOCK_BYTES;

use super::config::MAX_PROPOSAL_CLOCK_SKEW_MS;
use super::messages::{self, Batch, CheckpointProof, PreparedCert, ViewChange};
use super::reject::{BatchFault, RejectReason};
use super::{MAX_VERIFIED_VIEW_CHANGES, Pbft};

impl Pbft {
    /// What a backup checks before it prepares a batch the primary proposed for `seq`: the
    /// proposer and view, the block's count and byte bounds, a timestamp not before its
    /// parent's and not more than [`MAX_PROPOSAL_CLOCK_SKEW_MS`] ahead of this replica's
    /// clock, and every transaction well formed, signed, not repeated and not already
    /// committed.
    pub(super) fn check_batch(
        &self,
        batch: &Batch,
        view: u64,
        seq: u64,
        from: ValidatorId,
    ) -> Result<Arc<[Hash]>, RejectReason> {
        if batch.proposer != from || batch.view != view {
            return Err(RejectReason::InvalidBatch(BatchFault::WrongProposer));
        }
        let bytes: usize = batch.txs.iter().map(Transaction::encoded_len).sum();
        if bytes > MAX_BLOCK_BYTES {
            return Err(RejectReason::InvalidBatch(BatchFault::TooManyBytes {
                bytes,
                max: MAX_BLOCK_BYTES,
            }));
        }
        let ahead_by = batch.timestamp_ms.saturating_sub(self.now_ms);
        if ahead_by > MAX_PROPOSAL_CLOCK_SKEW_MS {
            return Err(RejectReason::InvalidBatch(BatchFault::TimestampAhead {
                ahead_ms: ahead_by,
                max_ms: MAX_PROPOSAL_CLOCK_SKEW_MS,
            }));
        }
        if let Some(parent) = self.parent_timestamp(seq)
            && batch.timestamp_ms < parent
        {
            return Err(RejectReason::InvalidBatch(
                BatchFault::TimestampBeforeParent {
                    timestamp_ms: batch.timestamp_ms,
                    parent_ms: parent,
                },
            ));
        }
        let ids: Vec<Hash> = batch.txs.iter().map(Transaction::id).collect();
        if let Some(index) = ids.iter().position(|id| self.recent_ids.contains(id)) {
            return Err(RejectReason::InvalidBatch(BatchFault::AlreadyCommitted(
                index,
            )));
        }
        self.check_txs(&batch.txs, &ids)?;
        Ok(ids.into())
    }

    /// The timestamp the block before `seq` is known to carry at least: the last executed
    /// block's, or the batch pre-prepared at `seq - 1` in this view.
    pub(super) fn parent_timestamp(&self, seq: u64) -> Option<u64> {
        let parent = seq.checked_sub(1)?;
        if parent == self.last_executed {
            return Some(self.last_timestamp_ms);
        }
        self.current_slot(parent)
            .and_then(|slot| slot.durable.pre_prepare.as_ref())
            .map(|pp| pp.batch.timestamp_ms.max(self.last_timestamp_ms))
    }

    /// `ids[i]` is `txs[i].id()`.
    pub(super) fn check_txs(&self, txs: &[Transaction], ids: &[Hash]) -> Result<(), RejectReason> {
        if txs.len() > self.config.max_block_txs as usize {
            return Err(RejectReason::InvalidBatch(BatchFault::TooManyTxs {
                count: txs.len(),
                max: self.config.max_block_txs,
            }));
        }
        let mut seen = BTreeSet::new();
        for (index, tx) in txs.iter().enumerate() {
            if tx.check_structure(&self.config.chain_id).is_err() {
                return Err(RejectReason::InvalidBatch(BatchFault::MalformedTx(index)));
            }
            let id = ids.get(index).copied().unwrap_or_else(|| tx.id());
            if !seen.insert(id) {
                return Err(RejectReason::InvalidBatch(BatchFault::DuplicateTx(index)));
            }
        }
        if let Err(bad) = self.verifier.verify_transactions(txs, ids) {
            let index = bad.first().copied().unwrap_or(0);
            return Err(RejectReason::InvalidBatch(BatchFault::BadTxSignature(
                index,
            )));
        }
        Ok(())
    }

    pub(super) fn verify_view_change(&mut self, vc: &ViewChange) -> Result<(), RejectReason> {
        let fingerprint = Hash::digest(&encode(vc));
        if self.verified_view_changes.contains(&fingerprint) {
            return Ok(());
        }
        if self.config.validators.get(vc.from).is_none() {
            return Err(RejectReason::BadViewChange("unknown sender"));
        }
        let bytes = messages::view_change_bytes(
            &self.config.chain_id,
            vc.new_view,
            &vc.checkpoint,
            &vc.prepared,
            vc.from,
        );
        if !self.verify_from(vc.from, &bytes, &vc.signature) {
            return Err(RejectReason::BadSignature);
        }
        self.verify_checkpoint_proof(&vc.checkpoint)?;
        let low = vc.checkpoint.seq;
        let high = low.saturating_add(self.config.log_window());
        let mut previous = low;
        for cert in &vc.prepared {
            let seq = cert.pre_prepare.seq;
            if seq <= previous || seq > high {
                return Err(RejectReason::BadViewChange(
                    "prepared certificates out of order or window",
                ));
            }
            previous = seq;
            self.verify_prepared_cert(cert, vc.new_view)?;
        }
        if self.verified_view_changes.len() >= MAX_VERIFIED_VIEW_CHANGES {
            self.verified_view_changes.pop_front();
        }
        self.verified_view_changes.push_back(fingerprint);
        Ok(())
    }

    pub(super) fn verify_checkpoint_proof(
        &self,
        proof: &CheckpointProof,
    ) -> Result<(), RejectReason> {
        if proof.seq == 0 {
            return if proof.checkpoints.is_empty() && proof.block_hash == self.config.genesis_hash {
                Ok(())
            } else {
                Err(RejectReason::BadCheckpointProof)
            };
        }
        let quorum = self.config.quorum();
        #[cfg(feature = "planted-bugs")]
        let quorum = super::planted::proof_quorum(quorum);
        if !proof.seq.is_multiple_of(self.config.checkpoint_interval)
            || proof.checkpoints.len() < quorum
            || proof.checkpoints.len() > self.config.validators.len()
        {
            return Err(RejectReason::BadCheckpointProof);
        }
        let mut previous: Option<ValidatorId> = None;
        for c in &proof.checkpoints {
            if previous.is_some_and(|p| p >= c.from)
                || c.seq != proof.seq
                || c.block_hash != proof.block_hash
            {
                return Err(RejectReason::BadCheckpointProof);
            }
            previous = Some(c.from);
            let bytes =
                messages::checkpoint_bytes(&self.config.chain_id, c.seq, &c.block_hash, c.from);
            if !self.verify_from(c.from, &bytes, &c.signature) {
                return Err(RejectReason::BadCheckpointProof);
            }
        }
        Ok(())
    }

    /// A prepared certificate (§4.4): a pre-prepare signed by that view's primary and 2f
    /// matching PREPAREs from distinct backups, all from a view before `before_view`.
    pub(super) fn verify_prepared_cert(
        &self,
        cert: &PreparedCert,
        before_view: u64,
    ) -> Result<(), RejectReason> {
        let pp = &cert.pre_prepare;
        let bad = RejectReason::BadPreparedCert { seq: pp.seq };
        if pp.view >= before_view
            || cert.prepares.len() < self.config.quorum() - 1
            || cert.prepares.len() > self.config.validators.len()
            || pp.batch.txs.len() > self.config.max_block_txs as usize
        {
            return Err(bad);
        }
        let primary = self.config.primary(pp.view);
        let digest = pp.batch.digest();
        let bytes = messages::pre_prepare_bytes(&self.config.chain_id, pp.view, pp.seq, &digest);
        if !self.verify_from(primary, &bytes, &pp.signature) {
            return Err(bad);
        }
        let mut previous: Option<ValidatorId> = None;
        for p in &cert.prepares {
            if previous.is_some_and(|prev| prev >= p.from)
                || p.from == primary
                || p.view != pp.view
                || p.seq != pp.seq
                || p.digest != digest
            {
                return Err(bad);
            }
            previous = Some(p.from);
            let bytes =
                messages::prepare_bytes(&self.config.chain_id, p.view, p.seq, &p.digest, p.from);
            if !self.verify_from(p.from, &bytes, &p.signature) {
                return Err(bad);
            }
        }
        Ok(())
    }
}
