//! Catching up: blocks fetched from peers with their commit certificates, checked against the
//! validator set and executed in order; and what a (re)started replica does first.

use aegis_crypto::verify_commit_certificate;
use aegis_types::{Block, CommitCertificate};

use super::messages::PbftMessage;
use super::reject::{RejectReason, SyncFault};
use super::state::Status;
use super::{Pbft, PbftTimer};
use crate::Outgoing;

impl Pbft {
    pub(super) fn on_synced_block(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
    ) -> Result<(), RejectReason> {
        let next = self.last_executed + 1;
        let height = block.height();
        if height != next {
            return Err(RejectReason::BadSyncedBlock(SyncFault::NotNext {
                height,
                next,
            }));
        }
        if block.check_structure().is_err() || block.header.chain_id != self.config.chain_id {
            return Err(RejectReason::BadSyncedBlock(SyncFault::Malformed));
        }
        if block.header.prev_hash != self.last_hash {
            return Err(RejectReason::BadSyncedBlock(SyncFault::WrongParent));
        }
        let hash = block.hash();
        if certificate.height != height || certificate.block_hash != hash {
            return Err(RejectReason::BadSyncedBlock(SyncFault::CertificateMismatch));
        }
        if verify_commit_certificate(&certificate, &self.config.chain_id, &self.config.validators)
            .is_err()
        {
            return Err(RejectReason::BadSyncedBlock(SyncFault::BadCertificate));
        }
        let last_hash = self.last_hash;
        if let Some(mut slot) = self.slots.remove(&height) {
            if let Some(digest) = slot.digest
                && self.candidate_block(&mut slot, last_hash).map(|b| b.hash()) == Some(hash)
            {
                slot.durable.executed = Some((digest, hash));
            }
            // The synced block goes to the ledger: no copy of it stays in the slot.
            slot.candidate = None;
            self.slots.insert(height, slot);
        }
        self.commit_block(block, certificate, false);
        self.try_prepare_and_commit(height + 1);
        self.try_execute();
        Ok(())
    }

    pub(super) fn on_start(&mut self) {
        let deadline = self
            .now_ms
            .saturating_add(self.config.retransmit_interval_ms);
        self.set_timer(PbftTimer::Retransmit, deadline);
        match self.status {
            Status::ViewChanging => {
                if let Some(vc) = &self.own_view_change {
                    self.out
                        .plain
                        .push(Outgoing::All(PbftMessage::ViewChange(vc.clone())));
                }
                self.after_view_change_vote();
            }
            Status::Normal => {
                self.restart_progress_timer();
                self.maybe_propose();
            }
        }
    }
}
