//! View changes (§4.4, liveness §4.5.2): VIEW-CHANGE with the stable checkpoint and the
//! prepared certificates, NEW-VIEW with O recomputed and checked by every backup, the f + 1
//! rule to join a view change, and forwarding the NEW-VIEW to peers left in an older view.

use std::collections::BTreeMap;
use std::sync::Arc;

use aegis_types::{Hash, ValidatorId};

use super::config::MAX_BACKOFF_EXPONENT;
use super::messages::{
    self, Batch, CheckpointProof, NewView, PbftMessage, PrePrepare, Prepare, PreparedCert,
    ViewChange,
};
#[cfg(feature = "planted-bugs")]
use super::planted::{self, PlantedBug};
use super::reject::{BatchFault, RejectReason};
use super::state::Status;
use super::{Pbft, PbftTimer, message_view};
use crate::{Effect, Outgoing};

impl Pbft {
    /// §4.4: suspect the primary, move to `target` and multicast VIEW-CHANGE with the stable
    /// checkpoint and every prepared certificate above it.
    pub(super) fn start_view_change(&mut self, target: u64) {
        if target <= self.view {
            return;
        }
        self.view = target;
        self.status = Status::ViewChanging;
        self.failed_views = (self.failed_views + 1).min(MAX_BACKOFF_EXPONENT);
        let prepared: Vec<PreparedCert> = self
            .slots
            .range(self.stable.seq + 1..)
            .filter_map(|(_, slot)| slot.durable.prepared.clone())
            .collect();
        #[cfg(feature = "planted-bugs")]
        let prepared = planted::skip_executed(prepared, self.last_executed);
        let me = self.config.me;
        let vc = ViewChange::new_signed(
            &self.config.chain_id,
            &self.key,
            me,
            target,
            self.stable.clone(),
            prepared,
        );
        self.own_view_change = Some(vc.clone());
        self.view_changes.insert(me, vc.clone());
        self.send_signed(Outgoing::All(PbftMessage::ViewChange(vc)));
        #[cfg(feature = "planted-bugs")]
        planted::send_early(PlantedBug::ViewChangeSentBeforePersist, &mut self.out);
        self.cancel_timer(PbftTimer::Progress);
        self.cancel_timer(PbftTimer::ViewChange);
        self.future
            .retain(|(_, m)| message_view(m).is_none_or(|v| v >= target));
        self.out
            .first
            .push(Effect::LeaderSuspected { epoch: target });
        self.after_view_change_vote();
    }

    pub(super) fn after_view_change_vote(&mut self) {
        if self.status != Status::ViewChanging {
            return;
        }
        // §4.5.2: the timer starts only once 2f + 1 replicas asked to leave the old view, so
        // a replica alone cannot run ahead through views. A VIEW-CHANGE for a later view
        // counts too: its sender left the old view as well, and only its latest VIEW-CHANGE
        // is still being retransmitted (without this, replicas split across two views after
        // a crash could each wait forever for a quorum that no longer exists).
        let leaving = self
            .view_changes
            .values()
            .filter(|vc| vc.new_view >= self.view)
            .count();
        if leaving >= self.config.quorum() && !self.timers.contains_key(&PbftTimer::ViewChange) {
            let deadline = self
                .now_ms
                .saturating_add(self.backoff(self.config.view_change_timeout_ms));
            self.set_timer(PbftTimer::ViewChange, deadline);
        }
        let for_this_view = self
            .view_changes
            .values()
            .filter(|vc| vc.new_view == self.view)
            .count();
        if for_this_view >= self.config.quorum() && self.is_primary() {
            self.make_new_view();
        }
    }

    pub(super) fn on_view_change(
        &mut self,
        from: ValidatorId,
        vc: ViewChange,
    ) -> Result<(), RejectReason> {
        if vc.from != from {
            return Err(RejectReason::SenderMismatch { claimed: vc.from });
        }
        if vc.new_view < self.view || (vc.new_view == self.view && self.status == Status::Normal) {
            // The sender lags: help it with the NEW-VIEW that installed this view, if its
            // VIEW-CHANGE is really its own (the outer signature; the certificates inside do
            // not matter for this reply).
            self.forward_new_view(from, |me| {
                let bytes = messages::view_change_bytes(
                    &me.config.chain_id,
                    vc.new_view,
                    &vc.checkpoint,
                    &vc.prepared,
                    vc.from,
                );
                me.verify_from(from, &bytes, &vc.signature)
            })?;
            return Err(RejectReason::StaleView {
                view: vc.new_view,
                current: self.view,
            });
        }
        if let Some(existing) = self.view_changes.get(&from) {
            if *existing == vc {
                return Err(RejectReason::Duplicate);
            }
            if existing.new_view >= vc.new_view {
                return Err(RejectReason::StaleView {
                    view: vc.new_view,
                    current: existing.new_view,
                });
            }
        }
        self.verify_view_change(&vc)?;
        self.view_changes.insert(from, vc);
        // §4.5.2: f + 1 replicas ask for later views, so at least one honest one timed out:
        // join the smallest of those views without waiting for our own timer.
        let higher: Vec<u64> = self
            .view_changes
            .values()
            .map(|vc| vc.new_view)
            .filter(|v| *v > self.view)
            .collect();
        if higher.len() >= self.config.weak_quorum()
            && let Some(smallest) = higher.iter().min().copied()
        {
            self.start_view_change(smallest);
            return Ok(());
        }
        self.after_view_change_vote();
        Ok(())
    }

    /// §4.4: the new primary's O. min-s is the latest stable checkpoint in V, max-s the
    /// highest prepared sequence number; each sequence number in between gets the batch of
    /// the prepared certificate with the highest view, or a null request (`None`).
    pub(super) fn compute_o(
        view_changes: &[ViewChange],
    ) -> (CheckpointProof, Vec<(u64, Option<Batch>)>) {
        let mut checkpoint: Option<&CheckpointProof> = None;
        for vc in view_changes {
            let replaces = checkpoint.is_none_or(|c| vc.checkpoint.seq > c.seq);
            #[cfg(feature = "planted-bugs")]
            let replaces =
                planted::min_s_replaces(replaces, vc.checkpoint.seq, checkpoint.map(|c| c.seq));
            if replaces {
                checkpoint = Some(&vc.checkpoint);
            }
        }
        let Some(checkpoint) = checkpoint.cloned() else {
            return (
                CheckpointProof {
                    seq: 0,
                    block_hash: Hash::ZERO,
                    checkpoints: Vec::new(),
                },
                Vec::new(),
            );
        };
        let min_s = checkpoint.seq;
        let mut chosen: BTreeMap<u64, &PreparedCert> = BTreeMap::new();
        for vc in view_changes {
            for cert in &vc.prepared {
                let seq = cert.pre_prepare.seq;
                if seq <= min_s {
                    continue;
                }
                let better = chosen
                    .get(&seq)
                    .is_none_or(|c| cert.pre_prepare.view > c.pre_prepare.view);
                if better {
                    chosen.insert(seq, cert);
                }
            }
        }
        let max_s = chosen.keys().next_back().copied().unwrap_or(min_s);
        let o = (min_s + 1..=max_s)
            .map(|seq| (seq, chosen.get(&seq).map(|c| c.pre_prepare.batch.clone())))
            .collect();
        (checkpoint, o)
    }

    pub(super) fn make_new_view(&mut self) {
        let view = self.view;
        let quorum = self.config.quorum();
        let view_changes: Vec<ViewChange> = self
            .view_changes
            .values()
            .filter(|vc| vc.new_view == view)
            .take(quorum)
            .cloned()
            .collect();
        if view_changes.len() < quorum {
            return;
        }
        let (checkpoint, o) = Self::compute_o(&view_changes);
        let me = self.config.me;
        let pre_prepares: Vec<PrePrepare> = o
            .into_iter()
            .map(|(seq, batch)| {
                let batch = batch.unwrap_or(Batch {
                    proposer: me,
                    view,
                    timestamp_ms: self.now_ms,
                    txs: Arc::from([]),
                });
                PrePrepare::new_signed(&self.config.chain_id, &self.key, view, seq, batch)
            })
            .collect();
        let nv = NewView::new_signed(
            &self.config.chain_id,
            &self.key,
            view,
            view_changes,
            pre_prepares,
        );
        self.send_signed(Outgoing::All(PbftMessage::NewView(nv.clone())));
        self.install_new_view(nv, checkpoint);
    }

    pub(super) fn on_new_view(
        &mut self,
        from: ValidatorId,
        nv: NewView,
    ) -> Result<(), RejectReason> {
        let primary = self.config.primary(nv.view);
        if from != primary {
            return Err(RejectReason::NotPrimary {
                view: nv.view,
                primary,
            });
        }
        if nv.view < self.view || (nv.view == self.view && self.status == Status::Normal) {
            if self.latest_new_view.as_ref() == Some(&nv) {
                return Err(RejectReason::Duplicate);
            }
            return Err(RejectReason::StaleView {
                view: nv.view,
                current: self.view,
            });
        }
        let bytes = messages::new_view_bytes(
            &self.config.chain_id,
            nv.view,
            &nv.view_changes,
            &nv.pre_prepares,
        );
        if !self.verify_from(from, &bytes, &nv.signature) {
            return Err(RejectReason::BadSignature);
        }
        let quorum = self.config.quorum();
        #[cfg(feature = "planted-bugs")]
        let quorum = planted::one_fewer(PlantedBug::NewViewQuorumOffByOne, quorum);
        if nv.view_changes.len() < quorum || nv.view_changes.len() > self.config.validators.len() {
            return Err(RejectReason::BadNewView("not a quorum of view changes"));
        }
        let mut previous: Option<ValidatorId> = None;
        for vc in &nv.view_changes {
            if previous.is_some_and(|p| p >= vc.from) || vc.new_view != nv.view {
                return Err(RejectReason::BadNewView(
                    "view changes not distinct or for another view",
                ));
            }
            previous = Some(vc.from);
        }
        for vc in &nv.view_changes {
            self.verify_view_change(vc)
                .map_err(|_| RejectReason::BadNewView("invalid view change inside"))?;
        }
        let (checkpoint, o) = Self::compute_o(&nv.view_changes);
        if o.len() != nv.pre_prepares.len() {
            return Err(RejectReason::BadNewView(
                "O does not match the view changes",
            ));
        }
        for ((seq, batch), pp) in o.iter().zip(&nv.pre_prepares) {
            if pp.seq != *seq || pp.view != nv.view {
                return Err(RejectReason::BadNewView(
                    "O does not match the view changes",
                ));
            }
            match batch {
                Some(batch) if *batch != pp.batch => {
                    return Err(RejectReason::BadNewView(
                        "O does not match the view changes",
                    ));
                }
                Some(_) => {}
                None => {
                    if !pp.batch.txs.is_empty()
                        || pp.batch.proposer != from
                        || pp.batch.view != nv.view
                    {
                        return Err(RejectReason::InvalidBatch(BatchFault::NonEmptyNull));
                    }
                }
            }
            let bytes = messages::pre_prepare_bytes(
                &self.config.chain_id,
                pp.view,
                pp.seq,
                &pp.batch.digest(),
            );
            if !self.verify_from(from, &bytes, &pp.signature) {
                return Err(RejectReason::BadSignature);
            }
        }
        self.install_new_view(nv, checkpoint);
        Ok(())
    }

    /// §4.4: enter the new view, log O and send PREPAREs for it (backups).
    pub(super) fn install_new_view(&mut self, nv: NewView, checkpoint: CheckpointProof) {
        let view = nv.view;
        self.view = view;
        self.status = Status::Normal;
        self.own_view_change = None;
        self.view_changes.retain(|_, vc| vc.new_view > view);
        self.cancel_timer(PbftTimer::ViewChange);
        self.adopt_stable(checkpoint);
        let me = self.config.me;
        let primary = self.config.primary(view);
        let chain_id = self.config.chain_id.clone();
        let mut seqs = Vec::new();
        for pp in &nv.pre_prepares {
            let seq = pp.seq;
            if seq <= self.stable.seq {
                continue;
            }
            let digest = pp.batch.digest();
            let own = Prepare::new_signed(&chain_id, &self.key, me, view, seq, digest);
            let slot = self.slot_mut(seq);
            slot.set_pre_prepare(pp.clone(), digest, pp.batch.tx_ids());
            let mut prepare = None;
            if me != primary {
                slot.durable.sent_prepare = Some(digest);
                slot.prepares.insert(me, own.clone());
                prepare = Some(own);
            }
            if let Some(p) = prepare {
                self.send_signed(Outgoing::All(PbftMessage::Prepare(p)));
            }
            seqs.push(seq);
        }
        self.latest_new_view = Some(nv);
        self.out.first.push(Effect::LeaderChanged {
            epoch: view,
            leader: primary,
        });
        // Replay what arrived early for this view.
        let buffered = std::mem::take(&mut self.future);
        let mut now = Vec::new();
        for (from, message) in buffered {
            match message_view(&message) {
                Some(v) if v == view => now.push((from, message)),
                Some(v) if v > view => self.future.push_back((from, message)),
                _ => {}
            }
        }
        for (from, message) in now {
            if let Err(reason) = self.on_message(from, message) {
                self.out.first.push(Effect::Rejected {
                    from: Some(from),
                    reason,
                });
            }
        }
        for seq in seqs {
            self.advance(seq);
        }
        self.try_execute();
        self.maybe_propose();
        self.restart_progress_timer();
    }

    /// Sends the NEW-VIEW that installed the current view to a peer still in an older one;
    /// it is self-certifying, so any replica may forward it. Rate limited per peer, and only
    /// in reply to an authentic message: `authentic` checks the sender's signature and runs
    /// only when a NEW-VIEW would be sent; `Err(BadSignature)` when it fails.
    pub(super) fn forward_new_view(
        &mut self,
        to: ValidatorId,
        authentic: impl FnOnce(&Pbft) -> bool,
    ) -> Result<(), RejectReason> {
        let Some(nv) = &self.latest_new_view else {
            return Ok(());
        };
        if nv.view != self.view || self.status != Status::Normal {
            return Ok(());
        }
        let due = self.new_view_forwarded_ms.get(&to).is_none_or(|last| {
            self.now_ms >= last.saturating_add(self.config.retransmit_interval_ms)
        });
        if !due {
            return Ok(());
        }
        if !authentic(self) {
            return Err(RejectReason::BadSignature);
        }
        if let Some(nv) = &self.latest_new_view {
            self.new_view_forwarded_ms.insert(to, self.now_ms);
            self.out
                .plain
                .push(Outgoing::To(to, PbftMessage::NewView(nv.clone())));
        }
        Ok(())
    }
}
