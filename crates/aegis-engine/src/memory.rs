//! In-memory I/O for the driver: the simulator's and the tests' twins of the node's TLS
//! transport, consensus log file and ledger (tigerbeetle's `src/testing/`). They keep the same
//! contracts, including what a crash loses: [`MemoryLog::crash`] drops records appended since
//! the last sync, [`MemoryLedger::crash`] drops blocks appended since the last flush.

use std::marker::PhantomData;

use aegis_consensus::{DurableState, Outgoing, Protocol};
use aegis_types::{Block, CommitCertificate, ValidatorId};

use crate::io::{Clock, ConsensusLog, Io, IoError, Ledger, Observer, Transport};
use crate::log_format::{FILE_MAGIC, frame_len};

/// A consensus log in memory: the durable state it replays to, plus records not synced yet.
/// It counts the bytes and syncs the file log would write for the same calls.
#[derive(Debug, Clone)]
pub struct MemoryLog<S: DurableState> {
    durable: Option<S>,
    unsynced: Vec<(u64, Vec<S::Record>)>,
    unsynced_bytes: u64,
    size_bytes: u64,
    /// Bytes written and disk syncs, as [`crate::FileLog`] would count them.
    pub written_bytes: u64,
    pub syncs: u64,
    pub compactions: u64,
}

impl<S: DurableState> Default for MemoryLog<S> {
    fn default() -> Self {
        MemoryLog {
            durable: None,
            unsynced: Vec::new(),
            unsynced_bytes: 0,
            size_bytes: 0,
            written_bytes: 0,
            syncs: 0,
            compactions: 0,
        }
    }
}

impl<S: DurableState> MemoryLog<S> {
    pub fn new() -> MemoryLog<S> {
        MemoryLog::default()
    }

    /// The process died: what was not synced is lost.
    pub fn crash(&mut self) {
        self.unsynced.clear();
        self.unsynced_bytes = 0;
    }

    /// The state the durable part replays to.
    pub fn durable(&self) -> Option<&S> {
        self.durable.as_ref()
    }

    /// Records appended since the last sync, oldest first: what a crash now would lose.
    pub fn unsynced_records(&self) -> impl Iterator<Item = &S::Record> {
        self.unsynced.iter().flat_map(|(_, records)| records.iter())
    }
}

fn encoded_len<T: borsh::BorshSerialize>(value: &T) -> Result<u64, IoError> {
    Ok(borsh::to_vec(value)?.len() as u64)
}

impl<S: DurableState> ConsensusLog<S> for MemoryLog<S> {
    fn append(&mut self, sequence: u64, records: Vec<S::Record>) -> Result<(), IoError> {
        self.unsynced_bytes += frame_len(encoded_len(&records)? as usize) as u64;
        self.unsynced.push((sequence, records));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), IoError> {
        let Some(state) = self.durable.as_mut() else {
            return Err("the log has no snapshot yet (compact first)".into());
        };
        for (sequence, records) in self.unsynced.drain(..) {
            state.apply(sequence, &records)?;
        }
        self.size_bytes += self.unsynced_bytes;
        self.written_bytes += self.unsynced_bytes;
        self.unsynced_bytes = 0;
        self.syncs += 1;
        Ok(())
    }

    fn compact(&mut self, snapshot: &S) -> Result<(), IoError> {
        let bytes = (FILE_MAGIC.len() + frame_len(encoded_len(snapshot)? as usize)) as u64;
        self.durable = Some(snapshot.clone());
        self.unsynced.clear();
        self.unsynced_bytes = 0;
        self.size_bytes = bytes;
        self.written_bytes += bytes;
        // File, rename, directory.
        self.syncs += 3;
        self.compactions += 1;
        Ok(())
    }

    fn load(&mut self) -> Result<Option<S>, IoError> {
        Ok(self.durable.clone())
    }

    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn unsynced_bytes(&self) -> u64 {
        self.unsynced_bytes
    }
}

/// A ledger in memory. Appending a block that is already stored is a no-op when it is the
/// same block (a replay after a restart) and an error when it is not.
#[derive(Debug, Clone, Default)]
pub struct MemoryLedger {
    blocks: Vec<(Block, CommitCertificate)>,
    durable: usize,
    /// Blocks appended since [`MemoryLedger::take_appended`] last ran, re-appends included.
    appended: Vec<(Block, CommitCertificate)>,
    pub flushes: u64,
}

impl MemoryLedger {
    pub fn new() -> MemoryLedger {
        MemoryLedger::default()
    }

    /// The process died: blocks appended since the last flush are lost.
    pub fn crash(&mut self) {
        self.blocks.truncate(self.durable);
        self.appended.clear();
    }

    pub fn blocks(&self) -> &[(Block, CommitCertificate)] {
        &self.blocks
    }

    /// The blocks handed to [`Ledger::append`] since the last call, in order.
    pub fn take_appended(&mut self) -> Vec<(Block, CommitCertificate)> {
        std::mem::take(&mut self.appended)
    }
}

impl Ledger for MemoryLedger {
    fn append(&mut self, block: Block, certificate: CommitCertificate) -> Result<(), IoError> {
        let height = block.height();
        let stored = self.blocks.len() as u64;
        if height == 0 || height > stored + 1 {
            return Err(format!("block {height} does not follow the tip {stored}").into());
        }
        if height <= stored {
            let existing = &self.blocks[height as usize - 1].0;
            if existing.hash() != block.hash() {
                return Err(format!("a different block is stored at height {height}").into());
            }
        } else {
            self.blocks.push((block.clone(), certificate.clone()));
        }
        self.appended.push((block, certificate));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.durable = self.blocks.len();
        self.flushes += 1;
        Ok(())
    }

    fn height(&self) -> Result<u64, IoError> {
        Ok(self.blocks.len() as u64)
    }

    fn block(&self, height: u64) -> Result<Option<(Block, CommitCertificate)>, IoError> {
        Ok(height
            .checked_sub(1)
            .and_then(|index| self.blocks.get(index as usize))
            .cloned())
    }
}

/// A transport that keeps what it was asked to send, for the owner to deliver.
#[derive(Debug, Clone)]
pub struct Outbox<M> {
    pub messages: Vec<Outgoing<M>>,
    pub sync_requests: Vec<u64>,
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Outbox {
            messages: Vec::new(),
            sync_requests: Vec::new(),
        }
    }
}

impl<M> Transport<M> for Outbox<M> {
    fn send(&mut self, message: Outgoing<M>) {
        self.messages.push(message);
    }

    fn request_sync(&mut self, from_height: u64) {
        self.sync_requests.push(from_height);
    }
}

/// A clock set by hand, with a deterministic stream of entropy (SplitMix64 from a seed).
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    pub now_ms: u64,
    state: u64,
}

impl ManualClock {
    pub fn new(now_ms: u64, seed: u64) -> ManualClock {
        ManualClock {
            now_ms,
            state: seed,
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }

    fn entropy(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What a core reported, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice<R> {
    Rejected {
        from: Option<ValidatorId>,
        reason: R,
    },
    LeaderSuspected {
        epoch: u64,
    },
    LeaderChanged {
        epoch: u64,
        leader: ValidatorId,
    },
    Committed {
        height: u64,
    },
}

/// An observer that keeps every notice.
#[derive(Debug, Clone)]
pub struct Notices<P: Protocol> {
    pub notices: Vec<Notice<P::Reject>>,
}

impl<P: Protocol> Default for Notices<P> {
    fn default() -> Self {
        Notices {
            notices: Vec::new(),
        }
    }
}

impl<P: Protocol> Observer<P> for Notices<P> {
    fn rejected(&mut self, from: Option<ValidatorId>, reason: &P::Reject) {
        self.notices.push(Notice::Rejected {
            from,
            reason: reason.clone(),
        });
    }

    fn leader_suspected(&mut self, epoch: u64) {
        self.notices.push(Notice::LeaderSuspected { epoch });
    }

    fn leader_changed(&mut self, epoch: u64, leader: ValidatorId) {
        self.notices.push(Notice::LeaderChanged { epoch, leader });
    }

    fn committed(&mut self, block: &Block, _certificate: &CommitCertificate) {
        self.notices.push(Notice::Committed {
            height: block.height(),
        });
    }
}

/// The in-memory I/O of a driver over `P`.
#[derive(Debug)]
pub struct MemoryIo<P>(PhantomData<fn() -> P>);

impl<P: Protocol> Io<P> for MemoryIo<P> {
    type Transport = Outbox<P::Message>;
    type Log = MemoryLog<P::Persisted>;
    type Ledger = MemoryLedger;
    type Clock = ManualClock;
    type Observer = Notices<P>;
}
