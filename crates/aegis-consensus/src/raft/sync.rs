//! Committing, and catching up: blocks fetched from peers' ledgers with their commit
//! certificates (in place of §7's InstallSnapshot), checked against the validator set and
//! committed in order; blocks the ledger holds but the consensus log does not come the same
//! way at start.

use std::sync::Arc;

use aegis_types::{Block, CommitCertificate, Hash, ValidatorId};

use super::Raft;
use super::log::LogEntry;
use super::reject::{RejectReason, SyncFault};
use crate::Effect;

impl Raft {
    /// Commits the first uncommitted entry with `certificate`.
    pub(super) fn commit_entry(&mut self, certificate: CommitCertificate) {
        if let Some((block, ids)) = self.log.commit_next(certificate.clone()) {
            self.committed_block(block, &ids, certificate);
        }
    }

    /// What follows a commit, whichever way it came: the block goes to the ledger, its
    /// transactions are no longer pending, and their ids are remembered for a while.
    fn committed_block(&mut self, block: Block, ids: &[Hash], certificate: CommitCertificate) {
        let height = block.height();
        debug_assert_eq!(ids, block.tx_ids());
        for id in ids {
            self.pending.remove(id);
        }
        self.recent_ids.extend(ids.iter().copied());
        self.recent_txs.push_back((height, ids.to_vec()));
        let window = self.config.tx_dedup_window_blocks;
        while let Some((oldest, _)) = self.recent_txs.front() {
            if oldest + window > height {
                break;
            }
            if let Some((_, forgotten)) = self.recent_txs.pop_front() {
                for id in forgotten {
                    self.recent_ids.remove(&id);
                }
            }
        }
        self.signed_votes.retain(|h, _| *h > height);
        self.commit_votes.retain(|h, _| *h > height);
        // Room in the pipeline, and transactions the driver handed out are gone.
        self.proposal_exhausted = false;
        self.out
            .first
            .push(Effect::CommitBlock { block, certificate });
    }

    pub(super) fn on_synced_block(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
    ) -> Result<(), RejectReason> {
        let committed = self.log.committed();
        let next = committed.height + 1;
        let height = block.height();
        if height != next {
            return Err(RejectReason::BadSyncedBlock(SyncFault::NotNext {
                height,
                next,
            }));
        }
        if block.header.chain_id != self.config.chain_id || block.check_structure().is_err() {
            return Err(RejectReason::BadSyncedBlock(SyncFault::Malformed));
        }
        if block.header.prev_hash != committed.hash {
            return Err(RejectReason::BadSyncedBlock(SyncFault::WrongParent));
        }
        let entry = LogEntry::new(block);
        if certificate.height != height || certificate.block_hash != entry.hash {
            return Err(RejectReason::BadSyncedBlock(SyncFault::CertificateMismatch));
        }
        if !self.certificate_verifies(&certificate) {
            return Err(RejectReason::BadSyncedBlock(SyncFault::BadCertificate));
        }
        if entry.term() > self.term {
            // A block of a later term than this node has seen: the term moved on, and a log
            // never holds an entry above its node's term.
            self.become_follower(entry.term(), None);
        }
        match self.log.entry(height).map(|e| e.hash) {
            Some(hash) if hash == entry.hash => {
                self.commit_entry(certificate);
                if self.is_leader() {
                    self.try_commit();
                }
                return Ok(());
            }
            Some(_) if self.is_leader() => {
                // Leader Completeness (§5.4) says a leader holds every committed entry.
                return Err(RejectReason::BadSyncedBlock(
                    SyncFault::ConflictsWithLeaderLog,
                ));
            }
            // A certified block wins over an uncommitted entry that conflicts with it.
            Some(_) => self.truncate_log(height),
            None => {}
        }
        let (block, ids) = (entry.block.clone(), Arc::clone(entry.tx_ids()));
        self.log.commit_synced(entry, certificate.clone());
        self.committed_block(block, &ids, certificate);
        Ok(())
    }

    /// Whether `certificate` holds a quorum of distinct validators' valid signatures over its
    /// commit vote (the check of `aegis verify`, through this core's signature checker).
    pub(super) fn certificate_verifies(&self, certificate: &CommitCertificate) -> bool {
        let mut previous: Option<ValidatorId> = None;
        let mut items = Vec::with_capacity(certificate.signatures.len());
        let message = certificate.vote(&self.config.chain_id).signing_bytes();
        for entry in &certificate.signatures {
            if previous.is_some_and(|p| p >= entry.validator) {
                return false;
            }
            previous = Some(entry.validator);
            let Some(validator) = self.config.validators.get(entry.validator) else {
                return false;
            };
            items.push((validator.public_key, message.clone(), entry.signature));
        }
        items.len() >= self.config.quorum() && self.verifier.verify_batch(&items).is_ok()
    }

    /// Asks peers for committed blocks from the next height, at most once per heartbeat
    /// interval for the same height.
    pub(super) fn request_sync(&mut self) {
        let from_height = self.log.committed().height + 1;
        if let Some((at_ms, height)) = self.last_sync_request
            && height == from_height
            && self.now_ms < at_ms.saturating_add(self.config.heartbeat_interval_ms)
        {
            return;
        }
        self.last_sync_request = Some((self.now_ms, from_height));
        self.out.last.push(Effect::RequestSync { from_height });
    }
}
