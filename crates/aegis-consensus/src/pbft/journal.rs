//! What changed since the last persist: the records of [`PbftRecord`], computed by comparing
//! the durable state with a compact summary of what the records handed out so far describe
//! (raft-rs `Ready`: only the hard state that moved and only the new entries).
//!
//! Comparing the whole state with a summary, rather than noting changes where they happen,
//! means no code path that changes durable state can forget to say so: the property tests and
//! the simulator replay the records and compare the result with [`Pbft::persisted`].

use std::collections::BTreeMap;

use aegis_types::{Hash, Signature};

use super::Pbft;
use super::state::{PbftRecord, PersistedSlot, Status};

/// A slot as the records so far describe it; big parts are named by their signatures
/// (Ed25519 is deterministic: a different message has a different signature).
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotSummary {
    view: u64,
    pre_prepare: Option<Signature>,
    sent_prepare: Option<Hash>,
    sent_commit: Option<Hash>,
    /// The prepared certificate's PRE-PREPARE signature and PREPARE count.
    prepared: Option<(Signature, usize)>,
    executed: Option<(Hash, Hash)>,
}

impl SlotSummary {
    fn of(slot: &PersistedSlot) -> SlotSummary {
        SlotSummary {
            view: slot.view,
            pre_prepare: slot.pre_prepare.as_ref().map(|pp| pp.signature),
            sent_prepare: slot.sent_prepare,
            sent_commit: slot.sent_commit,
            prepared: slot
                .prepared
                .as_ref()
                .map(|cert| (cert.pre_prepare.signature, cert.prepares.len())),
            executed: slot.executed,
        }
    }
}

/// The summary of the durable state the records handed out so far describe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Journal {
    view: (u64, Option<Status>, u32),
    stable: (u64, Hash),
    last_executed: (u64, Hash, u64),
    slots: BTreeMap<u64, SlotSummary>,
    own_view_change: Option<Signature>,
    latest_new_view: Option<Signature>,
    own_checkpoints: BTreeMap<u64, Signature>,
}

impl Journal {
    /// A journal that already describes `pbft`'s state (after a restore, or at genesis).
    pub(crate) fn of(pbft: &Pbft) -> Journal {
        let mut journal = Journal::default();
        let _ = journal.diff(pbft);
        journal
    }

    /// The records that bring the described state to `pbft`'s, in replay order; afterwards
    /// the journal describes `pbft`'s state.
    pub(crate) fn diff(&mut self, pbft: &Pbft) -> Vec<PbftRecord> {
        let mut records = Vec::new();
        let view = (pbft.view, Some(pbft.status), pbft.failed_views);
        if self.view != view {
            records.push(PbftRecord::View {
                view: pbft.view,
                status: pbft.status,
                failed_views: pbft.failed_views,
            });
            self.view = view;
        }
        let stable = (pbft.stable.seq, pbft.stable.block_hash);
        if self.stable != stable {
            records.push(PbftRecord::Stable(pbft.stable.clone()));
            self.stable = stable;
            self.slots.retain(|seq, _| *seq > stable.0);
            self.own_checkpoints.retain(|seq, _| *seq > stable.0);
        }
        let executed = (pbft.last_executed, pbft.last_hash, pbft.last_timestamp_ms);
        if self.last_executed != executed {
            let since = self.last_executed.0;
            records.push(PbftRecord::Executed {
                height: pbft.last_executed,
                hash: pbft.last_hash,
                timestamp_ms: pbft.last_timestamp_ms,
                blocks: pbft
                    .recent_txs
                    .iter()
                    .filter(|(height, _)| *height > since)
                    .cloned()
                    .collect(),
                keep_from: pbft
                    .recent_txs
                    .front()
                    .map_or(pbft.last_executed + 1, |(height, _)| *height),
            });
            self.last_executed = executed;
        }
        self.diff_slots(pbft, &mut records);
        self.diff_checkpoints(pbft, &mut records);
        let own_view_change = pbft.own_view_change.as_ref().map(|vc| vc.signature);
        if self.own_view_change != own_view_change {
            records.push(PbftRecord::OwnViewChange(pbft.own_view_change.clone()));
            self.own_view_change = own_view_change;
        }
        let latest_new_view = pbft.latest_new_view.as_ref().map(|nv| nv.signature);
        if self.latest_new_view != latest_new_view {
            records.push(PbftRecord::LatestNewView(pbft.latest_new_view.clone()));
            self.latest_new_view = latest_new_view;
        }
        records
    }

    fn diff_slots(&mut self, pbft: &Pbft, records: &mut Vec<PbftRecord>) {
        let gone: Vec<u64> = self
            .slots
            .keys()
            .filter(|seq| !pbft.slots.contains_key(seq))
            .copied()
            .collect();
        for seq in gone {
            records.push(PbftRecord::DropSlot { seq });
            self.slots.remove(&seq);
        }
        for (seq, slot) in &pbft.slots {
            let slot = &slot.durable;
            let now = SlotSummary::of(slot);
            let before = self.slots.get(seq);
            if before == Some(&now) {
                continue;
            }
            records.extend(slot_records(before, &now, slot));
            self.slots.insert(*seq, now);
        }
    }

    fn diff_checkpoints(&mut self, pbft: &Pbft, records: &mut Vec<PbftRecord>) {
        let me = pbft.config.me;
        let own: BTreeMap<u64, &super::Checkpoint> = pbft
            .checkpoints
            .iter()
            .filter_map(|(seq, votes)| votes.get(&me).map(|c| (*seq, c)))
            .collect();
        let gone: Vec<u64> = self
            .own_checkpoints
            .keys()
            .filter(|seq| !own.contains_key(seq))
            .copied()
            .collect();
        for seq in gone {
            records.push(PbftRecord::DropCheckpoint { seq });
            self.own_checkpoints.remove(&seq);
        }
        for (seq, checkpoint) in own {
            if self.own_checkpoints.get(&seq) != Some(&checkpoint.signature) {
                records.push(PbftRecord::OwnCheckpoint(checkpoint.clone()));
                self.own_checkpoints.insert(seq, checkpoint.signature);
            }
        }
    }
}

/// The records that turn the slot `before` describes into `slot`.
fn slot_records(
    before: Option<&SlotSummary>,
    now: &SlotSummary,
    slot: &PersistedSlot,
) -> Vec<PbftRecord> {
    // Moving to a later view forgets the pre-prepare and the promises of the older view and
    // keeps the prepared certificate and the execution record (`Slot::enter_view`); anything
    // else that disappears cannot be said incrementally.
    let entering = before.is_none_or(|b| b.view < now.view);
    let forgets = before.is_some_and(|b| {
        b.view > now.view
            || (b.prepared.is_some() && now.prepared.is_none())
            || (b.executed.is_some() && now.executed.is_none())
            || (!entering && b.pre_prepare.is_some() && now.pre_prepare.is_none())
    });
    if forgets {
        return vec![PbftRecord::FullSlot(slot.clone())];
    }
    let mut records = Vec::new();
    let small_changed = before.is_none_or(|b| {
        b.view != now.view
            || b.sent_prepare != now.sent_prepare
            || b.sent_commit != now.sent_commit
            || b.executed != now.executed
    });
    if small_changed {
        records.push(PbftRecord::Slot {
            seq: slot.seq,
            view: slot.view,
            sent_prepare: slot.sent_prepare,
            sent_commit: slot.sent_commit,
            executed: slot.executed,
        });
    }
    let pre_prepare_known = !entering && before.is_some_and(|b| b.pre_prepare == now.pre_prepare);
    if !pre_prepare_known && let Some(pp) = &slot.pre_prepare {
        records.push(PbftRecord::PrePrepare(pp.clone()));
    }
    if before.is_none_or(|b| b.prepared != now.prepared)
        && let Some(cert) = &slot.prepared
    {
        if slot.pre_prepare.as_ref() == Some(&cert.pre_prepare) {
            records.push(PbftRecord::Prepared {
                seq: slot.seq,
                prepares: cert.prepares.clone(),
            });
        } else {
            records.push(PbftRecord::PreparedCert(cert.clone()));
        }
    }
    records
}
