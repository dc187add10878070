//! The log in memory: the committed tip, the entries above it (durable), and a bounded window
//! of recently committed blocks with their certificates (volatile), from which the leader
//! brings lagging followers up to date.
//!
//! An entry is a block: its index is the height, its term the header's `view`. Entries are
//! hash-chained, so two logs that hold the same block at an index agree on every entry before
//! it; the Log Matching Property (§5.3) is then a property of the chain as well.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use aegis_types::{Block, CommitCertificate, Hash};

use super::config::{RETAINED_COMMITTED_BLOCKS, RETAINED_COMMITTED_BYTES};
use super::state::CommittedTip;

/// A block in the log, with its hash and encoded size computed once, and its transactions'
/// ids once asked for (a leader checks every new batch against the ids in its log).
#[derive(Clone, Debug)]
pub(crate) struct LogEntry {
    pub(crate) block: Block,
    pub(crate) hash: Hash,
    pub(crate) bytes: usize,
    tx_ids: OnceLock<Arc<[Hash]>>,
}

/// Entries are equal when their blocks are: the id cache is not part of the value.
impl PartialEq for LogEntry {
    fn eq(&self, other: &LogEntry) -> bool {
        (&self.block, self.hash, self.bytes) == (&other.block, other.hash, other.bytes)
    }
}

impl Eq for LogEntry {}

impl LogEntry {
    pub(crate) fn new(block: Block) -> LogEntry {
        let hash = block.hash();
        let bytes = borsh::object_length(&block).unwrap_or(usize::MAX);
        LogEntry {
            block,
            hash,
            bytes,
            tx_ids: OnceLock::new(),
        }
    }

    /// An entry whose block's transaction ids the caller computed already.
    pub(crate) fn with_tx_ids(block: Block, ids: Arc<[Hash]>) -> LogEntry {
        debug_assert_eq!(*ids, *block.tx_ids());
        let entry = LogEntry::new(block);
        // A fresh cell: it takes the ids.
        let _ = entry.tx_ids.set(ids);
        entry
    }

    /// The ids of the block's transactions, in order, computed on first use.
    pub(crate) fn tx_ids(&self) -> &Arc<[Hash]> {
        self.tx_ids.get_or_init(|| self.block.tx_ids().into())
    }

    pub(crate) fn term(&self) -> u64 {
        self.block.header.view
    }

    pub(crate) fn index(&self) -> u64 {
        self.block.height()
    }
}

/// The log; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RaftLog {
    committed: CommittedTip,
    entries: VecDeque<LogEntry>,
    /// Committed blocks ending at `committed.height`, contiguous, oldest first.
    retained: VecDeque<(LogEntry, CommitCertificate)>,
    retained_bytes: usize,
}

impl RaftLog {
    /// A log from what was persisted; the caller checks [`RaftLog::is_chained`] (a damaged
    /// or foreign state is an error, not a panic).
    pub(crate) fn new(committed: CommittedTip, entries: Vec<Block>) -> RaftLog {
        RaftLog {
            committed,
            entries: entries.into_iter().map(LogEntry::new).collect(),
            retained: VecDeque::new(),
            retained_bytes: 0,
        }
    }

    pub(crate) fn committed(&self) -> CommittedTip {
        self.committed
    }

    pub(crate) fn entries(&self) -> impl DoubleEndedIterator<Item = &LogEntry> {
        self.entries.iter()
    }

    pub(crate) fn uncommitted(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.committed.height + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.committed.term, LogEntry::term)
    }

    pub(crate) fn last_hash(&self) -> Hash {
        self.entries.back().map_or(self.committed.hash, |e| e.hash)
    }

    pub(crate) fn last_timestamp_ms(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.committed.timestamp_ms, |e| e.block.header.timestamp_ms)
    }

    /// The uncommitted entry at `index`.
    pub(crate) fn entry(&self, index: u64) -> Option<&LogEntry> {
        let offset = index.checked_sub(self.committed.height + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// The retained committed block at `index`, with its certificate.
    pub(crate) fn retained(&self, index: u64) -> Option<&(LogEntry, CommitCertificate)> {
        let first = self.retained.front()?.0.index();
        let offset = index.checked_sub(first)?;
        self.retained.get(usize::try_from(offset).ok()?)
    }

    /// The block at `index`, committed (retained) or not.
    pub(crate) fn block(&self, index: u64) -> Option<&LogEntry> {
        self.entry(index)
            .or_else(|| self.retained(index).map(|(entry, _)| entry))
    }

    /// The term of the entry at `index`, when this log still knows it (index 0 is the genesis,
    /// term 0).
    pub(crate) fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.committed.height {
            return Some(self.committed.term);
        }
        self.block(index).map(LogEntry::term)
    }

    /// The hash of the block at `index`, when this log still knows it.
    pub(crate) fn hash_at(&self, index: u64) -> Option<Hash> {
        if index == self.committed.height {
            return Some(self.committed.hash);
        }
        self.block(index).map(|e| e.hash)
    }

    /// The lowest index whose block (and certificate, when committed) this log can send.
    pub(crate) fn first_available(&self) -> u64 {
        self.retained
            .front()
            .map_or(self.committed.height + 1, |(entry, _)| entry.index())
    }

    /// Appends a new last entry. The caller checked that it links to the last one.
    pub(crate) fn append(&mut self, entry: LogEntry) {
        assert_eq!(
            entry.index(),
            self.last_index() + 1,
            "entries are contiguous"
        );
        assert_eq!(
            entry.block.header.prev_hash,
            self.last_hash(),
            "entries chain"
        );
        assert!(
            entry.term() >= self.last_term(),
            "terms never decrease in a log"
        );
        self.entries.push_back(entry);
    }

    /// Deletes the entries at `from` and above (§5.3); committed entries are never deleted.
    pub(crate) fn truncate_from(&mut self, from: u64) {
        assert!(from > self.committed.height, "truncating committed entries");
        let keep = (from - self.committed.height - 1) as usize;
        self.entries.truncate(keep);
    }

    /// The first uncommitted entry is committed with `certificate`: it moves to the retained
    /// window. Returns its block and transaction ids.
    pub(crate) fn commit_next(
        &mut self,
        certificate: CommitCertificate,
    ) -> Option<(Block, Arc<[Hash]>)> {
        let entry = self.entries.pop_front()?;
        assert_eq!(
            certificate.height,
            entry.index(),
            "certificate for the entry"
        );
        assert_eq!(
            certificate.block_hash, entry.hash,
            "certificate for the entry"
        );
        let block = entry.block.clone();
        let ids = Arc::clone(entry.tx_ids());
        self.committed = CommittedTip::of(&entry.block, entry.hash);
        self.retain(entry, certificate);
        Some((block, ids))
    }

    /// A block committed elsewhere (a synced block): the log must hold no entries, or the
    /// caller already deleted them.
    pub(crate) fn commit_synced(&mut self, entry: LogEntry, certificate: CommitCertificate) {
        assert!(
            self.entries.is_empty(),
            "synced block above uncommitted entries"
        );
        assert_eq!(
            entry.index(),
            self.committed.height + 1,
            "synced blocks in order"
        );
        assert_eq!(
            entry.block.header.prev_hash, self.committed.hash,
            "synced block links"
        );
        self.committed = CommittedTip::of(&entry.block, entry.hash);
        self.retain(entry, certificate);
    }

    fn retain(&mut self, entry: LogEntry, certificate: CommitCertificate) {
        self.retained_bytes = self.retained_bytes.saturating_add(entry.bytes);
        self.retained.push_back((entry, certificate));
        while self.retained.len() > RETAINED_COMMITTED_BLOCKS
            || (self.retained_bytes > RETAINED_COMMITTED_BYTES && self.retained.len() > 1)
        {
            if let Some((old, _)) = self.retained.pop_front() {
                self.retained_bytes = self.retained_bytes.saturating_sub(old.bytes);
            }
        }
    }

    /// Whether the entries chain to the committed tip and to each other, with contiguous
    /// indices and terms that never decrease (checked after every step in debug builds).
    pub(crate) fn is_chained(&self) -> bool {
        let mut previous = (
            self.committed.height,
            self.committed.hash,
            self.committed.term,
        );
        for entry in &self.entries {
            if entry.index() != previous.0 + 1
                || entry.block.header.prev_hash != previous.1
                || entry.term() < previous.2
            {
                return false;
            }
            previous = (entry.index(), entry.hash, entry.term());
        }
        let retained_ok = self
            .retained
            .back()
            .is_none_or(|(entry, _)| entry.index() == self.committed.height);
        retained_ok && self.retained.len() <= RETAINED_COMMITTED_BLOCKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_types::{CommitSignature, PublicKey, Signature, ValidatorId};

    fn block(height: u64, prev: Hash, term: u64) -> Block {
        Block::new(
            "c",
            height,
            prev,
            PublicKey([1; 32]),
            term,
            height,
            Vec::new(),
        )
    }

    fn cert(entry: &LogEntry) -> CommitCertificate {
        CommitCertificate {
            height: entry.index(),
            view: entry.term(),
            block_hash: entry.hash,
            signatures: vec![CommitSignature {
                validator: ValidatorId(0),
                signature: Signature([0; 64]),
            }],
        }
    }

    #[test]
    fn append_truncate_commit_and_retain() {
        let genesis = Hash::digest(b"g");
        let mut log = RaftLog::new(CommittedTip::genesis(genesis), Vec::new());
        assert_eq!((log.last_index(), log.last_term()), (0, 0));
        for (height, term) in [(1, 1), (2, 1), (3, 2)] {
            let b = block(height, log.last_hash(), term);
            log.append(LogEntry::new(b));
        }
        assert_eq!((log.last_index(), log.last_term()), (3, 2));
        assert_eq!(log.term_at(2), Some(1));
        log.truncate_from(3);
        assert_eq!(log.last_index(), 2);
        let first = log.entry(1).cloned().unwrap();
        let (committed, ids) = log.commit_next(cert(&first)).unwrap();
        assert_eq!(committed.height(), 1);
        assert_eq!(*ids, *committed.tx_ids());
        assert_eq!(log.committed().height, 1);
        assert_eq!(log.first_available(), 1);
        assert_eq!(log.term_at(1), Some(1));
        assert_eq!(log.hash_at(1), Some(first.hash));
        assert!(log.retained(1).is_some());
        assert!(log.is_chained());
    }

    #[test]
    fn the_retained_window_is_bounded() {
        let mut log = RaftLog::new(CommittedTip::genesis(Hash::digest(b"g")), Vec::new());
        for height in 1..=(RETAINED_COMMITTED_BLOCKS as u64 + 5) {
            let entry = LogEntry::new(block(height, log.last_hash(), 1));
            let c = cert(&entry);
            log.append(entry);
            log.commit_next(c).unwrap();
        }
        assert_eq!(log.first_available(), 6);
        assert!(log.retained(5).is_none());
        assert!(log.is_chained());
    }

    /// The window also holds at most `RETAINED_COMMITTED_BYTES` of blocks (exactly that much
    /// is allowed), but always the newest block, however large, so that it can be sent.
    #[test]
    fn the_retained_window_is_bounded_in_bytes() {
        let mut log = RaftLog::new(CommittedTip::genesis(Hash::digest(b"g")), Vec::new());
        let commit = |log: &mut RaftLog, height: u64, bytes: usize| {
            let mut entry = LogEntry::new(block(height, log.last_hash(), 1));
            entry.bytes = bytes;
            let c = cert(&entry);
            log.append(entry);
            log.commit_next(c).unwrap();
        };
        for height in 1..=5 {
            commit(&mut log, height, RETAINED_COMMITTED_BYTES / 2);
        }
        assert_eq!(log.first_available(), 4, "two halves fill the window");
        assert_eq!(log.retained_bytes, RETAINED_COMMITTED_BYTES);
        commit(&mut log, 6, 2 * RETAINED_COMMITTED_BYTES);
        assert_eq!(log.first_available(), 6, "an oversized newest block stays");
        assert!(log.retained(6).is_some());
        commit(&mut log, 7, 1);
        assert_eq!(log.first_available(), 7);
        assert_eq!(log.retained_bytes, 1);
        assert!(log.is_chained());
    }

    /// The id cache is not part of an entry's value, and given ids are the computed ones.
    #[test]
    fn entries_compare_by_block_whatever_their_id_cache_holds() {
        let b = block(1, Hash::digest(b"g"), 1);
        let fresh = LogEntry::new(b.clone());
        let asked = LogEntry::new(b.clone());
        assert_eq!(asked.tx_ids().len(), 0);
        assert_eq!(fresh, asked);
        let given = LogEntry::with_tx_ids(b.clone(), Arc::from([]));
        assert_eq!(given, fresh);
        assert_ne!(LogEntry::new(block(2, Hash::digest(b"g"), 1)), fresh);
    }
}
