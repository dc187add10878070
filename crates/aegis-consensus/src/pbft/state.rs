//! What a PBFT replica persists, and its log entries.

use std::collections::BTreeMap;

use aegis_types::{Block, Hash, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

use super::messages::{
    Checkpoint, CheckpointProof, Commit, NewView, PrePrepare, Prepare, PreparedCert, ViewChange,
};

/// Whether the replica runs the normal case or is changing views (§4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum Status {
    Normal,
    /// The replica has sent VIEW-CHANGE for its current `view` and waits for NEW-VIEW.
    ViewChanging,
}

/// The durable part of one log entry: what this replica accepted and promised at `seq`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PersistedSlot {
    pub seq: u64,
    /// The view `pre_prepare`, `sent_prepare` and `sent_commit` belong to.
    pub view: u64,
    pub pre_prepare: Option<PrePrepare>,
    /// Digest this replica sent PREPARE for in `view`.
    pub sent_prepare: Option<Hash>,
    /// Block hash this replica sent COMMIT for in `view`.
    pub sent_commit: Option<Hash>,
    /// The prepared certificate of the highest view (reported in VIEW-CHANGE).
    pub prepared: Option<PreparedCert>,
    /// Batch digest and block hash, once executed from this entry.
    pub executed: Option<(Hash, Hash)>,
}

/// Everything a PBFT replica must find again after a crash (stored under `data/consensus/`).
/// Received votes of others are not in it: losing them costs retransmissions, not safety.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PbftPersisted {
    pub view: u64,
    pub status: Status,
    /// Views that failed in a row; timeouts are multiplied by 2^this.
    pub failed_views: u32,
    pub stable: CheckpointProof,
    pub last_executed: u64,
    pub last_hash: Hash,
    /// Transaction ids of recent blocks, oldest first, to drop re-proposed duplicates.
    pub recent_txs: Vec<(u64, Vec<Hash>)>,
    pub slots: Vec<PersistedSlot>,
    pub own_view_change: Option<ViewChange>,
    /// The NEW-VIEW that installed `view`, forwarded to peers that lag behind.
    pub latest_new_view: Option<NewView>,
    /// Own CHECKPOINT messages above the stable checkpoint.
    pub own_checkpoints: Vec<Checkpoint>,
    pub persist_sequence: u64,
}

/// A log entry in memory: the durable part plus the votes received for `view`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) durable: PersistedSlot,
    /// Digest of `durable.pre_prepare`'s batch.
    pub(crate) digest: Option<Hash>,
    pub(crate) prepares: BTreeMap<ValidatorId, Prepare>,
    pub(crate) commits: BTreeMap<ValidatorId, Commit>,
    /// The block the pre-prepared batch becomes, once its predecessor is known.
    pub(crate) candidate: Option<Block>,
}

impl Slot {
    pub(crate) fn new(seq: u64, view: u64) -> Slot {
        Slot {
            durable: PersistedSlot {
                seq,
                view,
                pre_prepare: None,
                sent_prepare: None,
                sent_commit: None,
                prepared: None,
                executed: None,
            },
            digest: None,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            candidate: None,
        }
    }

    pub(crate) fn restore(durable: PersistedSlot) -> Slot {
        let digest = durable.pre_prepare.as_ref().map(|pp| pp.batch.digest());
        Slot {
            durable,
            digest,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            candidate: None,
        }
    }

    /// Moves the entry to a later view: votes of the old view no longer count (§4.4), but the
    /// prepared certificate and the execution record stay.
    pub(crate) fn enter_view(&mut self, view: u64) {
        if self.durable.view < view {
            self.durable.view = view;
            self.durable.pre_prepare = None;
            self.durable.sent_prepare = None;
            self.durable.sent_commit = None;
            self.digest = None;
            self.prepares.clear();
            self.commits.clear();
            self.candidate = None;
        }
    }

    pub(crate) fn set_pre_prepare(&mut self, pre_prepare: PrePrepare) {
        self.digest = Some(pre_prepare.batch.digest());
        self.durable.pre_prepare = Some(pre_prepare);
        self.candidate = None;
    }

    pub(crate) fn prepared_in(&self, view: u64) -> bool {
        self.durable
            .prepared
            .as_ref()
            .is_some_and(|cert| cert.pre_prepare.view == view)
    }
}
