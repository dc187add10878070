//! Garbage collection (§4.3): a CHECKPOINT every K blocks, stable with a quorum of matching
//! votes, moves the low watermark and drops the log below it; the proof is forwarded to peers
//! still working below it.

use std::collections::BTreeMap;

use aegis_types::{Hash, ValidatorId};

use super::Pbft;
use super::config::MAX_PENDING_CHECKPOINTS;
use super::messages::{self, Checkpoint, CheckpointProof, PbftMessage};
use super::reject::RejectReason;
use crate::Outgoing;

impl Pbft {
    pub(super) fn on_checkpoint(
        &mut self,
        from: ValidatorId,
        c: Checkpoint,
    ) -> Result<(), RejectReason> {
        // CHECKPOINTs are self-certifying and may be forwarded (a stable proof sent to a
        // lagging peer), so the vote counts for its signer, not for the peer that relayed it.
        let voter = c.from;
        if self.config.validators.get(voter).is_none() {
            return Err(RejectReason::UnknownSender);
        }
        if c.seq == 0 || !c.seq.is_multiple_of(self.config.checkpoint_interval) {
            return Err(RejectReason::NotACheckpoint { seq: c.seq });
        }
        // Votes above the high watermark are kept too (in a bounded map): a stable proof
        // far ahead is how a lagging replica learns where the others are (§4.3).
        let low = self.low_watermark();
        let bytes = messages::checkpoint_bytes(&self.config.chain_id, c.seq, &c.block_hash, voter);
        if c.seq <= low {
            // The relaying peer works below the stable checkpoint: send it the proof, but
            // only for a genuine vote (a forged one must not buy a reply).
            if self.proof_forward_due(from) {
                if !self.verify_from(voter, &bytes, &c.signature) {
                    return Err(RejectReason::BadSignature);
                }
                self.forward_stable_proof(from);
            }
            return Err(RejectReason::OutOfWindow {
                seq: c.seq,
                low,
                high: self.high_watermark(),
            });
        }
        if let Some(existing) = self
            .checkpoints
            .get(&c.seq)
            .and_then(|votes| votes.get(&voter))
        {
            if existing.block_hash == c.block_hash {
                return Err(RejectReason::Duplicate);
            }
            if !self.verify_from(voter, &bytes, &c.signature) {
                return Err(RejectReason::BadSignature);
            }
            return Err(RejectReason::ConflictingVote {
                view: self.view,
                seq: c.seq,
            });
        }
        if !self.verify_from(voter, &bytes, &c.signature) {
            return Err(RejectReason::BadSignature);
        }
        let seq = c.seq;
        self.insert_checkpoint(c);
        if seq > self.last_executed {
            let votes = self.checkpoints.get(&seq).map_or(0, BTreeMap::len);
            if votes >= self.config.weak_quorum() {
                // f + 1 replicas, so at least one honest, executed past this replica.
                self.note_behind(seq);
            }
        }
        self.check_stable(seq);
        self.maybe_propose();
        Ok(())
    }

    /// Adds a CHECKPOINT vote, keeping at most `MAX_PENDING_CHECKPOINTS` sequence numbers:
    /// when full, the one with the fewest votes goes (the highest among equals), so a
    /// Byzantine validator's lone votes cannot crowd out a proof that is arriving.
    pub(super) fn insert_checkpoint(&mut self, checkpoint: Checkpoint) {
        let seq = checkpoint.seq;
        self.checkpoints
            .entry(seq)
            .or_default()
            .insert(checkpoint.from, checkpoint);
        while self.checkpoints.len() > MAX_PENDING_CHECKPOINTS {
            let victim = self
                .checkpoints
                .iter()
                .filter(|(s, _)| **s != seq)
                .min_by_key(|(s, votes)| (votes.len(), std::cmp::Reverse(**s)))
                .map(|(s, _)| *s);
            match victim {
                Some(victim) => {
                    self.checkpoints.remove(&victim);
                }
                None => break,
            }
        }
    }

    /// §4.3: a checkpoint with a quorum of matching votes is stable.
    pub(super) fn check_stable(&mut self, seq: u64) {
        if seq <= self.stable.seq {
            return;
        }
        let Some(votes) = self.checkpoints.get(&seq) else {
            return;
        };
        let mut by_hash: BTreeMap<Hash, Vec<Checkpoint>> = BTreeMap::new();
        for vote in votes.values() {
            by_hash
                .entry(vote.block_hash)
                .or_default()
                .push(vote.clone());
        }
        let quorum = self.config.quorum();
        #[cfg(feature = "planted-bugs")]
        let quorum = super::planted::checkpoint_quorum(quorum, self.config.weak_quorum());
        if let Some((block_hash, checkpoints)) =
            by_hash.into_iter().find(|(_, votes)| votes.len() >= quorum)
        {
            self.adopt_stable(CheckpointProof {
                seq,
                block_hash,
                checkpoints,
            });
        }
    }

    /// Moves the low watermark and discards the log below it (§4.3).
    pub(super) fn adopt_stable(&mut self, proof: CheckpointProof) {
        if proof.seq <= self.stable.seq {
            return;
        }
        let seq = proof.seq;
        self.stable = proof;
        self.slots.retain(|s, _| *s > seq);
        self.checkpoints.retain(|s, _| *s > seq);
        self.out.compact = true;
        if self.last_executed < seq {
            self.note_behind(seq);
            self.request_sync();
        }
    }

    /// Whether `forward_stable_proof(to)` would send anything now.
    pub(super) fn proof_forward_due(&self, to: ValidatorId) -> bool {
        !self.stable.checkpoints.is_empty()
            && self.proof_forwarded_ms.get(&to).is_none_or(|last| {
                self.now_ms >= last.saturating_add(self.config.retransmit_interval_ms)
            })
    }

    /// Sends the stable checkpoint's signed CHECKPOINT messages to a peer still working
    /// below it (§4.3: the proof lets it move its watermarks and fetch what it lacks).
    /// Rate limited per peer. Callers check first that the message that asked for it is
    /// authentic.
    pub(super) fn forward_stable_proof(&mut self, to: ValidatorId) {
        if !self.proof_forward_due(to) {
            return;
        }
        self.proof_forwarded_ms.insert(to, self.now_ms);
        for checkpoint in &self.stable.checkpoints {
            if checkpoint.from != to {
                self.out.plain.push(Outgoing::To(
                    to,
                    PbftMessage::Checkpoint(checkpoint.clone()),
                ));
            }
        }
    }
}
