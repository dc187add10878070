//! Timers: the request timer that suspects the primary (§4.4), the view-change timer
//! (§4.5.2), and periodic retransmission of unfinished work (§4.1 assumes retransmission over
//! a lossy network), which also notices when the replica has fallen behind.

use super::messages::PbftMessage;
use super::state::Status;
use super::{Pbft, PbftTimer};
use crate::Outgoing;

impl Pbft {
    pub(super) fn has_pending_work(&self) -> bool {
        !self.pending.is_empty()
            || self.slots.range(self.last_executed + 1..).any(|(_, slot)| {
                slot.durable.view == self.view && slot.durable.pre_prepare.is_some()
            })
    }

    /// The request timer (§4.4): "a backup is waiting for a request if it received a valid
    /// request and has not executed it"; its timer watches one request, stops when that
    /// request executes and restarts for another one it still waits for. Here it watches the
    /// oldest transaction the replica waits for, so executing *other* transactions never
    /// restarts it: a primary that censors one client while ordering the rest is suspected.
    /// With no transaction waiting but batches pre-prepared and not executed, it watches
    /// their progress and restarts on every execution (`executed`).
    pub(super) fn refresh_progress_timer(&mut self, executed: bool) {
        if self.status != Status::Normal {
            return;
        }
        let oldest = self.pending_by_age.first().map(|(_, id)| *id);
        let armed = self.timers.contains_key(&PbftTimer::Progress);
        let restart = match oldest {
            Some(id) => {
                let fresh = self.watched != Some(id);
                self.watched = Some(id);
                fresh || !armed
            }
            None if self.has_pending_work() => {
                self.watched = None;
                executed || !armed
            }
            None => {
                self.watched = None;
                self.cancel_timer(PbftTimer::Progress);
                false
            }
        };
        if restart {
            let deadline = self
                .now_ms
                .saturating_add(self.backoff(self.config.progress_timeout_ms));
            self.set_timer(PbftTimer::Progress, deadline);
        }
    }

    /// Starts the request timer afresh (a new view, a restart): a full timeout for the
    /// oldest transaction still waited for.
    pub(super) fn restart_progress_timer(&mut self) {
        self.watched = None;
        self.cancel_timer(PbftTimer::Progress);
        self.refresh_progress_timer(true);
    }

    pub(super) fn on_timer(&mut self, timer: PbftTimer) {
        match self.timers.get(&timer) {
            Some(deadline) if *deadline <= self.now_ms => {
                self.timers.remove(&timer);
            }
            // Not armed, or fired early: ignore.
            _ => return,
        }
        match timer {
            PbftTimer::Progress => {
                if self.status == Status::Normal && self.has_pending_work() {
                    self.start_view_change(self.view.saturating_add(1));
                }
            }
            PbftTimer::ViewChange => {
                if self.status == Status::ViewChanging {
                    self.start_view_change(self.view.saturating_add(1));
                }
            }
            PbftTimer::Retransmit => self.retransmit(),
        }
    }

    /// Resends what peers may have lost and asks for sync when evidence says this replica
    /// is behind and it made no progress since the last tick.
    pub(super) fn retransmit(&mut self) {
        let deadline = self
            .now_ms
            .saturating_add(self.config.retransmit_interval_ms);
        self.set_timer(PbftTimer::Retransmit, deadline);
        let me = self.config.me;
        let mut messages = Vec::new();
        match self.status {
            Status::ViewChanging => {
                if let Some(vc) = &self.own_view_change {
                    messages.push(PbftMessage::ViewChange(vc.clone()));
                }
            }
            Status::Normal => {
                let primary = self.is_primary();
                for (seq, slot) in self.slots.range(self.stable.seq + 1..) {
                    if slot.durable.view != self.view {
                        continue;
                    }
                    let unexecuted = *seq > self.last_executed;
                    if primary
                        && unexecuted
                        && let Some(pp) = &slot.durable.pre_prepare
                        && pp.batch.view == self.view
                    {
                        messages.push(PbftMessage::PrePrepare(pp.clone()));
                    }
                    if unexecuted && let Some(p) = slot.prepares.get(&me) {
                        messages.push(PbftMessage::Prepare(p.clone()));
                    }
                    if let Some(c) = slot.commits.get(&me) {
                        messages.push(PbftMessage::Commit(c.clone()));
                    }
                }
            }
        }
        for votes in self.checkpoints.values() {
            if let Some(c) = votes.get(&me) {
                messages.push(PbftMessage::Checkpoint(c.clone()));
            }
        }
        self.out
            .plain
            .extend(messages.into_iter().map(Outgoing::All));
        // A commit quorum above the next height means the others executed past us.
        let quorum = self.config.quorum();
        let committed_above = self
            .slots
            .range(self.last_executed + 1..)
            .filter(|(_, slot)| slot.commits.len() >= quorum)
            .map(|(seq, _)| *seq)
            .next_back();
        if let Some(seq) = committed_above {
            self.note_behind(seq);
        }
        if self.behind_hint > self.last_executed && self.last_executed == self.executed_at_last_tick
        {
            self.request_sync();
        }
        self.executed_at_last_tick = self.last_executed;
    }
}
