//! What a Raft node persists (Figure 2's "persistent state on all servers": currentTerm,
//! votedFor, log[]) and the records that change it.
//!
//! Committed entries leave the consensus log: the ledger holds them with their certificates,
//! so the log keeps only the committed tip (height, hash, term) and the entries above it.

use aegis_types::{Block, Hash, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

use crate::{DurableState, ReplayError};

/// The last committed block, as much of it as the log needs: its index and term for the
/// consistency check (§5.3), its hash to link the next entry, its timestamp so the next block
/// is never stamped before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommittedTip {
    pub height: u64,
    pub hash: Hash,
    pub term: u64,
    pub timestamp_ms: u64,
}

impl CommittedTip {
    /// Height 0: the genesis, term 0.
    pub fn genesis(genesis_hash: Hash) -> CommittedTip {
        CommittedTip {
            height: 0,
            hash: genesis_hash,
            term: 0,
            timestamp_ms: 0,
        }
    }

    pub fn of(block: &Block, hash: Hash) -> CommittedTip {
        CommittedTip {
            height: block.height(),
            hash,
            term: block.header.view,
            timestamp_ms: block.header.timestamp_ms,
        }
    }
}

/// Everything a Raft node must find again after a crash (under `data/consensus/`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RaftPersisted {
    /// currentTerm (§5.1).
    pub term: u64,
    /// votedFor in `term` (§5.2): a node that forgot it could vote twice in one term.
    pub voted_for: Option<ValidatorId>,
    pub committed: CommittedTip,
    /// Transaction ids of recent committed blocks, oldest first, so a leader does not order
    /// them again.
    pub recent_txs: Vec<(u64, Vec<Hash>)>,
    /// The log above the committed tip: entry `i` is the block at height
    /// `committed.height + 1 + i`.
    pub entries: Vec<Block>,
    pub persist_sequence: u64,
}

impl RaftPersisted {
    /// A node that never ran: term 0, no vote, an empty log after the genesis.
    pub fn genesis(genesis_hash: Hash) -> RaftPersisted {
        RaftPersisted {
            term: 0,
            voted_for: None,
            committed: CommittedTip::genesis(genesis_hash),
            recent_txs: Vec::new(),
            entries: Vec::new(),
            persist_sequence: 0,
        }
    }

    /// Index of the last entry (the committed height when there is none).
    pub fn last_index(&self) -> u64 {
        self.committed.height + self.entries.len() as u64
    }
}

/// One change to [`RaftPersisted`], as [`crate::Effect::Persist`] carries it (raft-rs
/// `Ready`: the hard state only when it moved, then only the new entries).
#[allow(
    clippy::large_enum_variant,
    reason = "records are moved into the log once and never stored in bulk"
)]
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum RaftRecord {
    /// currentTerm and votedFor.
    HardState {
        term: u64,
        voted_for: Option<ValidatorId>,
    },
    /// Blocks up to `tip` are committed (they are in the ledger): entries up to it leave the
    /// log; `blocks` are the transaction ids of the newly committed ones, and ids of blocks
    /// below `keep_from` are forgotten.
    Committed {
        tip: CommittedTip,
        blocks: Vec<(u64, Vec<Hash>)>,
        keep_from: u64,
    },
    /// Entries at `from` and above are deleted (they conflicted with the leader's, §5.3).
    Truncate { from: u64 },
    /// A new last entry.
    Append(Block),
}

impl DurableState for RaftPersisted {
    type Record = RaftRecord;

    fn apply(&mut self, sequence: u64, records: &[RaftRecord]) -> Result<(), ReplayError> {
        let fail = |detail: String| ReplayError { sequence, detail };
        for record in records {
            match record {
                RaftRecord::HardState { term, voted_for } => {
                    if *term < self.term {
                        return Err(fail(format!(
                            "term moves back from {} to {term}",
                            self.term
                        )));
                    }
                    self.term = *term;
                    self.voted_for = *voted_for;
                }
                RaftRecord::Committed {
                    tip,
                    blocks,
                    keep_from,
                } => {
                    if tip.height <= self.committed.height {
                        return Err(fail(format!(
                            "commit of height {} at or below the committed {}",
                            tip.height, self.committed.height
                        )));
                    }
                    let dropped = (tip.height - self.committed.height) as usize;
                    self.entries.drain(..dropped.min(self.entries.len()));
                    self.committed = *tip;
                    self.recent_txs.extend(blocks.iter().cloned());
                    self.recent_txs.retain(|(height, _)| height >= keep_from);
                }
                RaftRecord::Truncate { from } => {
                    if *from <= self.committed.height {
                        return Err(fail(format!(
                            "truncation from {from} reaches committed height {}",
                            self.committed.height
                        )));
                    }
                    let keep = (from - self.committed.height - 1) as usize;
                    self.entries.truncate(keep);
                }
                RaftRecord::Append(block) => {
                    let expected = self.last_index() + 1;
                    if block.height() != expected {
                        return Err(fail(format!(
                            "entry at height {} appended where {expected} was expected",
                            block.height()
                        )));
                    }
                    self.entries.push(block.clone());
                }
            }
        }
        self.persist_sequence = sequence;
        Ok(())
    }
}
