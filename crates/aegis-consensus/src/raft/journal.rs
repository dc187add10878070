//! What changed since the last persist: the records of [`RaftRecord`], computed by comparing
//! the durable state with a summary of what the records handed out so far describe (raft-rs
//! `Ready`: the hard state only when it moved, then only the new entries). Comparing, rather
//! than noting changes where they happen, means no code path can change the term, the vote or
//! the log and forget to persist it; the tests replay the records and compare the result with
//! [`Raft::persisted`].

use std::collections::VecDeque;

use aegis_types::{Hash, ValidatorId};

use super::Raft;
use super::state::{CommittedTip, RaftRecord};

/// The durable state as the records so far describe it; entries by (index, hash). The
/// default is a placeholder until [`Journal::of`] describes a restored or new node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Journal {
    hard_state: (u64, Option<ValidatorId>),
    committed: Option<CommittedTip>,
    entries: VecDeque<(u64, Hash)>,
}

impl Journal {
    /// A journal that already describes `raft`'s state (after a restore, or at genesis).
    pub(crate) fn of(raft: &Raft) -> Journal {
        Journal {
            hard_state: (raft.term, raft.voted_for),
            committed: Some(raft.log.committed()),
            entries: raft.log.entries().map(|e| (e.index(), e.hash)).collect(),
        }
    }

    /// The committed height the records so far describe.
    pub(crate) fn committed_height(&self) -> u64 {
        self.committed.map_or(0, |tip| tip.height)
    }

    /// The records that bring the described state to `raft`'s, in replay order; afterwards
    /// the journal describes `raft`'s state.
    pub(crate) fn diff(&mut self, raft: &Raft) -> Vec<RaftRecord> {
        let mut records = Vec::new();
        let hard_state = (raft.term, raft.voted_for);
        if self.hard_state != hard_state {
            records.push(RaftRecord::HardState {
                term: raft.term,
                voted_for: raft.voted_for,
            });
            self.hard_state = hard_state;
        }
        let committed = raft.log.committed();
        let before = self.committed.map_or(0, |tip| tip.height);
        if self.committed != Some(committed) {
            debug_assert!(committed.height > before, "the committed tip only moves up");
            records.push(RaftRecord::Committed {
                tip: committed,
                blocks: raft
                    .recent_txs
                    .iter()
                    .filter(|(height, _)| *height > before)
                    .cloned()
                    .collect(),
                keep_from: raft
                    .recent_txs
                    .front()
                    .map_or(committed.height + 1, |(height, _)| *height),
            });
            // Replay drops as many entries from the front as blocks were committed.
            let dropped = (committed.height - before) as usize;
            self.entries.drain(..dropped.min(self.entries.len()));
            self.committed = Some(committed);
        }
        // The first index where the described log and the real one differ.
        let mut first_new = None;
        for (offset, entry) in raft.log.entries().enumerate() {
            let described = self.entries.get(offset).copied();
            if described != Some((entry.index(), entry.hash)) {
                first_new = Some((offset, entry.index()));
                break;
            }
        }
        let real = raft.log.uncommitted();
        match first_new {
            Some((offset, from)) => {
                if self.entries.len() > offset {
                    records.push(RaftRecord::Truncate { from });
                    self.entries.truncate(offset);
                }
                for entry in raft.log.entries().skip(offset) {
                    records.push(RaftRecord::Append(entry.block.clone()));
                    self.entries.push_back((entry.index(), entry.hash));
                }
            }
            None if self.entries.len() > real => {
                let from = committed.height + real as u64 + 1;
                records.push(RaftRecord::Truncate { from });
                self.entries.truncate(real);
            }
            None => {}
        }
        records
    }
}
