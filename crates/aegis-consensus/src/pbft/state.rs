//! What a PBFT replica persists, the records that change it, and its log entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use aegis_types::{Block, Hash, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

use crate::{DurableState, ReplayError};

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
    /// Timestamp of the last executed block (the next block is never stamped before it).
    pub last_timestamp_ms: u64,
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
    /// The ids of the pre-prepared batch's transactions, in order, computed once (empty
    /// without a pre-prepare).
    pub(crate) tx_ids: Arc<[Hash]>,
}

impl Slot {
    pub(crate) fn new(seq: u64, view: u64) -> Slot {
        Slot {
            durable: PersistedSlot::empty(seq, view),
            digest: None,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            candidate: None,
            tx_ids: Arc::from([]),
        }
    }

    pub(crate) fn restore(durable: PersistedSlot) -> Slot {
        let digest = durable.pre_prepare.as_ref().map(|pp| pp.batch.digest());
        let tx_ids = durable
            .pre_prepare
            .as_ref()
            .map_or_else(|| Arc::from([]), |pp| pp.batch.tx_ids());
        Slot {
            durable,
            digest,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            candidate: None,
            tx_ids,
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
            self.tx_ids = Arc::from([]);
        }
    }

    /// Logs `pre_prepare`, whose batch's digest and transaction ids the caller has computed
    /// already (once per batch: both hash every transaction).
    pub(crate) fn set_pre_prepare(
        &mut self,
        pre_prepare: PrePrepare,
        digest: Hash,
        tx_ids: Arc<[Hash]>,
    ) {
        debug_assert_eq!(digest, pre_prepare.batch.digest());
        debug_assert_eq!(tx_ids, pre_prepare.batch.tx_ids());
        self.digest = Some(digest);
        self.tx_ids = tx_ids;
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

/// One change to [`PbftPersisted`], as the core hands it out in [`crate::Effect::Persist`].
/// Records are small except where the protocol's own messages are big (a batch is written once,
/// with its PRE-PREPARE; a prepared certificate names the slot's PRE-PREPARE instead of
/// repeating it). Replaying them in order onto a snapshot gives the state after the last one
/// (see [`DurableState::apply`]).
#[allow(
    clippy::large_enum_variant,
    reason = "records are moved into the log once and never stored in bulk"
)]
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum PbftRecord {
    /// The view, the status and the run of failed views.
    View {
        view: u64,
        status: Status,
        failed_views: u32,
    },
    /// A new stable checkpoint: the log below it is dropped, with own checkpoints at or below it.
    Stable(CheckpointProof),
    /// Blocks executed since the last record: the last executed height and hash, the
    /// transaction ids of each new block, and the lowest height whose ids are still remembered.
    Executed {
        height: u64,
        hash: Hash,
        timestamp_ms: u64,
        blocks: Vec<(u64, Vec<Hash>)>,
        keep_from: u64,
    },
    /// A slot's small fields: created, or moved to `view` (which forgets the older view's
    /// pre-prepare and promises, §4.4), then the promises of `view` set as given.
    Slot {
        seq: u64,
        view: u64,
        sent_prepare: Option<Hash>,
        sent_commit: Option<Hash>,
        executed: Option<(Hash, Hash)>,
    },
    /// The PRE-PREPARE accepted for its slot in its view (the slot exists in that view).
    PrePrepare(PrePrepare),
    /// The slot prepared its current PRE-PREPARE with these PREPAREs.
    Prepared {
        seq: u64,
        prepares: Vec<Prepare>,
    },
    /// A prepared certificate for another PRE-PREPARE than the slot's current one, whole.
    PreparedCert(PreparedCert),
    /// A slot replaced whole (a change the records above cannot say).
    FullSlot(PersistedSlot),
    DropSlot {
        seq: u64,
    },
    OwnViewChange(Option<ViewChange>),
    LatestNewView(Option<NewView>),
    /// This replica's CHECKPOINT message (replaces any earlier one for that sequence number).
    OwnCheckpoint(Checkpoint),
    DropCheckpoint {
        seq: u64,
    },
}

impl DurableState for PbftPersisted {
    type Record = PbftRecord;

    fn apply(&mut self, sequence: u64, records: &[PbftRecord]) -> Result<(), ReplayError> {
        let fail = |detail: String| ReplayError { sequence, detail };
        for record in records {
            match record {
                PbftRecord::View {
                    view,
                    status,
                    failed_views,
                } => {
                    self.view = *view;
                    self.status = *status;
                    self.failed_views = *failed_views;
                }
                PbftRecord::Stable(proof) => {
                    let seq = proof.seq;
                    self.stable = proof.clone();
                    self.slots.retain(|slot| slot.seq > seq);
                    self.own_checkpoints.retain(|c| c.seq > seq);
                }
                PbftRecord::Executed {
                    height,
                    hash,
                    timestamp_ms,
                    blocks,
                    keep_from,
                } => {
                    self.last_executed = *height;
                    self.last_hash = *hash;
                    self.last_timestamp_ms = *timestamp_ms;
                    self.recent_txs.extend(blocks.iter().cloned());
                    self.recent_txs.retain(|(h, _)| h >= keep_from);
                }
                PbftRecord::Slot {
                    seq,
                    view,
                    sent_prepare,
                    sent_commit,
                    executed,
                } => {
                    let slot = self.slot_entry(*seq, *view);
                    if slot.view > *view {
                        return Err(fail(format!(
                            "slot {seq} is in view {}, a record moves it back to view {view}",
                            slot.view
                        )));
                    }
                    if slot.view < *view {
                        slot.view = *view;
                        slot.pre_prepare = None;
                    }
                    slot.sent_prepare = *sent_prepare;
                    slot.sent_commit = *sent_commit;
                    slot.executed = *executed;
                }
                PbftRecord::PrePrepare(pp) => {
                    let slot = self.slot_mut(pp.seq).ok_or_else(|| {
                        fail(format!(
                            "pre-prepare for slot {} that does not exist",
                            pp.seq
                        ))
                    })?;
                    if slot.view != pp.view {
                        return Err(fail(format!(
                            "pre-prepare of view {} for slot {} in view {}",
                            pp.view, pp.seq, slot.view
                        )));
                    }
                    slot.pre_prepare = Some(pp.clone());
                }
                PbftRecord::Prepared { seq, prepares } => {
                    let slot = self.slot_mut(*seq).ok_or_else(|| {
                        fail(format!("prepared certificate for missing slot {seq}"))
                    })?;
                    let pre_prepare = slot.pre_prepare.clone().ok_or_else(|| {
                        fail(format!("slot {seq} prepared without a pre-prepare"))
                    })?;
                    slot.prepared = Some(PreparedCert {
                        pre_prepare,
                        prepares: prepares.clone(),
                    });
                }
                PbftRecord::PreparedCert(cert) => {
                    let seq = cert.pre_prepare.seq;
                    let slot = self.slot_mut(seq).ok_or_else(|| {
                        fail(format!("prepared certificate for missing slot {seq}"))
                    })?;
                    slot.prepared = Some(cert.clone());
                }
                PbftRecord::FullSlot(slot) => {
                    let seq = slot.seq;
                    match self.slots.binary_search_by_key(&seq, |s| s.seq) {
                        Ok(at) => self.slots[at] = slot.clone(),
                        Err(at) => self.slots.insert(at, slot.clone()),
                    }
                }
                PbftRecord::DropSlot { seq } => self.slots.retain(|slot| slot.seq != *seq),
                PbftRecord::OwnViewChange(vc) => self.own_view_change = vc.clone(),
                PbftRecord::LatestNewView(nv) => self.latest_new_view = nv.clone(),
                PbftRecord::OwnCheckpoint(checkpoint) => {
                    let seq = checkpoint.seq;
                    match self.own_checkpoints.binary_search_by_key(&seq, |c| c.seq) {
                        Ok(at) => self.own_checkpoints[at] = checkpoint.clone(),
                        Err(at) => self.own_checkpoints.insert(at, checkpoint.clone()),
                    }
                }
                PbftRecord::DropCheckpoint { seq } => {
                    self.own_checkpoints.retain(|c| c.seq != *seq)
                }
            }
        }
        self.persist_sequence = sequence;
        Ok(())
    }
}

impl PbftPersisted {
    /// The state of a replica that has done nothing yet.
    pub fn genesis(genesis_hash: Hash) -> PbftPersisted {
        PbftPersisted {
            view: 0,
            status: Status::Normal,
            failed_views: 0,
            stable: CheckpointProof {
                seq: 0,
                block_hash: genesis_hash,
                checkpoints: Vec::new(),
            },
            last_executed: 0,
            last_hash: genesis_hash,
            last_timestamp_ms: 0,
            recent_txs: Vec::new(),
            slots: Vec::new(),
            own_view_change: None,
            latest_new_view: None,
            own_checkpoints: Vec::new(),
            persist_sequence: 0,
        }
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut PersistedSlot> {
        let at = self.slots.binary_search_by_key(&seq, |s| s.seq).ok()?;
        self.slots.get_mut(at)
    }

    /// The slot for `seq`, created in `view` when missing (slots stay sorted by sequence).
    fn slot_entry(&mut self, seq: u64, view: u64) -> &mut PersistedSlot {
        let at = match self.slots.binary_search_by_key(&seq, |s| s.seq) {
            Ok(at) => at,
            Err(at) => {
                self.slots.insert(at, PersistedSlot::empty(seq, view));
                at
            }
        };
        &mut self.slots[at]
    }
}

impl PersistedSlot {
    pub(crate) fn empty(seq: u64, view: u64) -> PersistedSlot {
        PersistedSlot {
            seq,
            view,
            pre_prepare: None,
            sent_prepare: None,
            sent_commit: None,
            prepared: None,
            executed: None,
        }
    }
}
