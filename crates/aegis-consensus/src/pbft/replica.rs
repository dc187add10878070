//! Bookkeeping every part of the replica shares: the watermarks (§4.3), the timeout backoff
//! (§4.5.2), signature checks against the validator set, timers, the behind hint that asks
//! for sync, and turning a step's gathered effects into the ordered list the driver runs.

use aegis_types::ValidatorId;

use super::config::MAX_BACKOFF_EXPONENT;
use super::messages::PbftMessage;
use super::{Pbft, PbftEffect, PbftTimer};
use crate::{Effect, Outgoing};

impl Pbft {
    pub(super) fn low_watermark(&self) -> u64 {
        self.stable.seq
    }

    pub(super) fn high_watermark(&self) -> u64 {
        self.stable.seq.saturating_add(self.config.log_window())
    }

    pub(super) fn backoff(&self, base_ms: u64) -> u64 {
        let exponent = self.failed_views.min(MAX_BACKOFF_EXPONENT);
        #[cfg(feature = "planted-bugs")]
        let exponent = super::planted::backoff_exponent(exponent);
        base_ms
            .saturating_mul(1u64 << exponent)
            .min(self.config.max_timeout_ms.max(base_ms))
    }

    pub(super) fn verify_from(
        &self,
        who: ValidatorId,
        bytes: &[u8],
        signature: &aegis_types::Signature,
    ) -> bool {
        match self.config.validators.get(who) {
            Some(validator) => self
                .verifier
                .verify(&validator.public_key, bytes, signature),
            None => false,
        }
    }

    pub(super) fn send_signed(&mut self, message: Outgoing<PbftMessage>) {
        self.out.signed.push(message);
    }

    pub(super) fn set_timer(&mut self, timer: PbftTimer, deadline_ms: u64) {
        self.timers.insert(timer, deadline_ms);
        self.out.last.push(Effect::SetTimer { timer, deadline_ms });
    }

    pub(super) fn cancel_timer(&mut self, timer: PbftTimer) {
        if self.timers.remove(&timer).is_some() {
            self.out.last.push(Effect::CancelTimer { timer });
        }
    }

    /// Raises the behind hint to `seq`, at most one log window past the high watermark: one
    /// message, even authentic, can only say that much; further gaps are learned from
    /// checkpoint votes, which move the watermarks. The hint only triggers `RequestSync`
    /// (sync accepts certified blocks only); it never changes protocol state.
    pub(super) fn note_behind(&mut self, seq: u64) {
        let bound = self
            .high_watermark()
            .saturating_add(self.config.log_window());
        self.behind_hint = self.behind_hint.max(seq.min(bound));
    }

    /// Whether `note_behind(seq)` would raise the hint.
    pub(super) fn hint_would_rise(&self, seq: u64) -> bool {
        seq.min(
            self.high_watermark()
                .saturating_add(self.config.log_window()),
        ) > self.behind_hint
    }

    pub(super) fn request_sync(&mut self) {
        let due = self.last_sync_request_ms.is_none_or(|last| {
            self.now_ms >= last.saturating_add(self.config.retransmit_interval_ms)
        });
        if due {
            self.last_sync_request_ms = Some(self.now_ms);
            self.out.last.push(Effect::RequestSync {
                from_height: self.last_executed + 1,
            });
        }
    }

    pub(super) fn finish(&mut self) -> Vec<PbftEffect> {
        self.check_invariants();
        let out = std::mem::take(&mut self.out);
        let mut effects = out.first;
        let mut journal = std::mem::take(&mut self.journal);
        let records = journal.diff(self);
        self.journal = journal;
        if !records.is_empty() || !out.signed.is_empty() {
            self.persist_sequence += 1;
            effects.push(Effect::Persist {
                sequence: self.persist_sequence,
                records,
                must_sync: !out.signed.is_empty(),
                messages: out.signed,
                compact: out.compact,
            });
        }
        effects.extend(out.plain.into_iter().map(Effect::Send));
        effects.extend(out.last);
        effects
    }

    /// What holds after every step (TigerBeetle's assertions on invariants): the log stays
    /// inside the watermarks (§4.3), execution never passes the stable checkpoint's... other
    /// side, and the bounded queues stay bounded. A broken invariant is a bug, never bad input.
    fn check_invariants(&self) {
        let (low, high) = (self.low_watermark(), self.high_watermark());
        debug_assert!(
            self.slots.keys().all(|seq| *seq > low && *seq <= high),
            "slots {:?} outside the watermarks ({low}, {high}]",
            self.slots.keys().collect::<Vec<_>>()
        );
        debug_assert!(
            self.stable.seq <= high && self.view_changes.len() <= self.config.validators.len()
        );
        assert!(self.future.len() <= self.config.max_future_messages);
        assert!(self.pending.len() <= self.config.max_pending_txs);
        debug_assert_eq!(self.pending.len(), self.pending_by_age.len());
        assert!(self.checkpoints.len() <= super::config::MAX_PENDING_CHECKPOINTS);
        // Memory: an executed block lives in the ledger, not in its slot as well.
        debug_assert!(
            self.slots
                .range(..=self.last_executed)
                .all(|(_, slot)| slot.candidate.is_none()),
            "an executed slot keeps its candidate block"
        );
        debug_assert!(
            self.slots.values().all(|slot| slot.tx_ids.len()
                == slot
                    .durable
                    .pre_prepare
                    .as_ref()
                    .map_or(0, |pp| pp.batch.txs.len())),
            "a slot's transaction ids are not those of its batch"
        );
    }
}
