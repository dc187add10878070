//! Practical Byzantine Fault Tolerance (Castro & Liskov, OSDI '99; signatures as in TOCS
//! 2002) as a pure state machine.
//!
//! - Normal case (§4.2, [`normal_case`]): PRE-PREPARE, PREPARE, COMMIT with quorums of
//!   2f + 1; one sequence number orders one batch, which becomes the block at that height; up
//!   to `pipeline_depth` sequence numbers are in flight inside the watermark window.
//! - Batching ([`proposing`]): the primary asks the driver for the oldest pending
//!   transactions ([`crate::Effect::ProposalWanted`]); every replica keeps only the ids of
//!   pending transactions, for its request timer.
//! - Garbage collection (§4.3, [`checkpoints`]): a CHECKPOINT every K blocks, stable with a
//!   quorum, moves the low watermark and drops the log below it.
//! - View changes (§4.4, liveness §4.5.2, [`view_change`]): VIEW-CHANGE with the stable
//!   checkpoint and prepared certificates, NEW-VIEW with O recomputed and checked by every
//!   backup ([`verification`]), timeouts doubling with each failed view ([`timers`]), the
//!   f + 1 rule to join a view change.
//! - Blocks are chained at execution time (ADR 0003): the COMMIT signs the block hash, so a
//!   quorum of COMMITs is the block's commit certificate. Certified blocks from peers catch a
//!   replica up ([`sync`]).
//! - Durability ([`journal`]): each step hands out only the records of what changed
//!   ([`PbftRecord`]); replayed onto a snapshot they give [`PbftPersisted`] back.

pub mod config;
pub mod messages;

mod checkpoints;
mod journal;
mod normal_case;
mod proposing;
mod reject;
mod replica;
mod state;
mod sync;
mod timers;
mod verification;
mod view_change;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use aegis_crypto::SecretKey;
use aegis_types::{Hash, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

pub use crate::verifier::{Ed25519, MAX_REMEMBERED_SIGNATURES, Remembered, SignatureCheck};
pub use config::{ConfigError, PbftConfig};
pub use messages::{
    Batch, Checkpoint, CheckpointProof, Commit, NewView, PbftMessage, PrePrepare, Prepare,
    PreparedCert, ViewChange,
};
pub use reject::{BatchFault, RejectReason, SyncFault};
pub use state::{PbftPersisted, PbftRecord, PersistedSlot, Status};

use crate::{CoreStatus, Effect, Env, Input, Outgoing, Protocol, Role};
use journal::Journal;
use state::Slot;

/// Most verified VIEW-CHANGE digests remembered, so a NEW-VIEW does not verify them again.
const MAX_VERIFIED_VIEW_CHANGES: usize = 64;

/// PBFT's timers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub enum PbftTimer {
    /// Request timeout: pending work and no execution for `progress_timeout_ms` (§4.4).
    Progress,
    /// No NEW-VIEW within T after a quorum asked for the view (§4.5.2).
    ViewChange,
    /// Periodic retransmission of unfinished work.
    Retransmit,
}

pub type PbftEffect = Effect<PbftMessage, PbftRecord, PbftTimer, RejectReason>;
pub type PbftInput = Input<PbftMessage, PbftTimer>;

/// Why a core cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PbftError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the secret key does not belong to validator {0}")]
    KeyMismatch(ValidatorId),
}

/// Effects being gathered during one step.
#[derive(Debug, Default)]
struct Outbox {
    /// CommitBlock, Rejected and notices: carried out first.
    first: Vec<PbftEffect>,
    /// Messages that commit this replica: sent only after the state is persisted.
    signed: Vec<Outgoing<PbftMessage>>,
    /// Retransmissions and forwarded certificates.
    plain: Vec<Outgoing<PbftMessage>>,
    /// Timers, sync requests and proposal requests.
    last: Vec<PbftEffect>,
    /// The stable checkpoint moved: the consensus log may be compacted.
    compact: bool,
}

/// One PBFT replica.
#[derive(Debug)]
pub struct Pbft {
    config: PbftConfig,
    key: SecretKey,
    verifier: Arc<dyn SignatureCheck>,
    now_ms: u64,

    // Durable state (see `PbftPersisted`).
    view: u64,
    status: Status,
    failed_views: u32,
    stable: CheckpointProof,
    last_executed: u64,
    last_hash: Hash,
    last_timestamp_ms: u64,
    recent_txs: VecDeque<(u64, Vec<Hash>)>,
    recent_ids: BTreeSet<Hash>,
    slots: BTreeMap<u64, Slot>,
    own_view_change: Option<ViewChange>,
    latest_new_view: Option<NewView>,
    persist_sequence: u64,
    /// What the records handed out so far describe.
    journal: Journal,

    // Volatile state, rebuilt from peers after a restart.
    /// CHECKPOINT votes above the stable checkpoint, own included.
    checkpoints: BTreeMap<u64, BTreeMap<ValidatorId, Checkpoint>>,
    /// Each validator's highest valid VIEW-CHANGE (at most n entries).
    view_changes: BTreeMap<ValidatorId, ViewChange>,
    verified_view_changes: VecDeque<Hash>,
    /// Ids of transactions the mempool holds, with when this replica learned of them (the
    /// request timer's work, §4.4); at most `max_pending_txs`.
    pending: BTreeMap<Hash, u64>,
    /// The same ids by arrival (then id), oldest first.
    pending_by_age: BTreeSet<(u64, Hash)>,
    /// The transaction the request timer watches (§4.4), if any.
    watched: Option<Hash>,
    future: VecDeque<(ValidatorId, PbftMessage)>,
    timers: BTreeMap<PbftTimer, u64>,

    // Hints, rate limits and per-step flags: bookkeeping, not protocol state.
    behind_hint: u64,
    last_sync_request_ms: Option<u64>,
    executed_at_last_tick: u64,
    new_view_forwarded_ms: BTreeMap<ValidatorId, u64>,
    proof_forwarded_ms: BTreeMap<ValidatorId, u64>,
    /// A batch was asked for in this step (reset at every step).
    proposal_asked: bool,

    out: Outbox,
}

impl Pbft {
    /// A replica starting from the genesis.
    pub fn new(config: PbftConfig, key: SecretKey) -> Result<Pbft, PbftError> {
        let state = PbftPersisted::genesis(config.genesis_hash);
        Pbft::restore(config, key, state)
    }

    /// A replica restarted from the state it last persisted.
    pub fn restore(
        config: PbftConfig,
        key: SecretKey,
        state: PbftPersisted,
    ) -> Result<Pbft, PbftError> {
        config.validate()?;
        let me = config.me;
        let expected = config.validators.get(me).map(|v| v.public_key);
        if expected != Some(key.public_key()) {
            return Err(PbftError::KeyMismatch(me));
        }
        let mut pbft = Pbft {
            key,
            verifier: Arc::new(Ed25519),
            now_ms: 0,
            view: state.view,
            status: state.status,
            failed_views: state.failed_views,
            stable: state.stable,
            last_executed: state.last_executed,
            last_hash: state.last_hash,
            last_timestamp_ms: state.last_timestamp_ms,
            recent_ids: state
                .recent_txs
                .iter()
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect(),
            recent_txs: state.recent_txs.into_iter().collect(),
            slots: BTreeMap::new(),
            own_view_change: None,
            latest_new_view: state.latest_new_view,
            persist_sequence: state.persist_sequence,
            journal: Journal::default(),
            checkpoints: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            verified_view_changes: VecDeque::new(),
            pending: BTreeMap::new(),
            pending_by_age: BTreeSet::new(),
            watched: None,
            future: VecDeque::new(),
            timers: BTreeMap::new(),
            behind_hint: 0,
            last_sync_request_ms: None,
            executed_at_last_tick: state.last_executed,
            new_view_forwarded_ms: BTreeMap::new(),
            proof_forwarded_ms: BTreeMap::new(),
            proposal_asked: false,
            out: Outbox::default(),
            config,
        };
        for durable in state.slots {
            let mut slot = Slot::restore(durable);
            // Ed25519 signatures are deterministic: re-signing what was promised yields the
            // very messages sent before the crash, ready for retransmission.
            let (seq, view) = (slot.durable.seq, slot.durable.view);
            let chain_id = &pbft.config.chain_id;
            if let Some(digest) = slot.durable.sent_prepare {
                let p = Prepare::new_signed(chain_id, &pbft.key, me, view, seq, digest);
                slot.prepares.insert(me, p);
            }
            if let Some(block_hash) = slot.durable.sent_commit {
                let c = Commit::new_signed(chain_id, &pbft.key, me, view, seq, block_hash);
                slot.commits.insert(me, c);
            }
            pbft.slots.insert(seq, slot);
        }
        if let Some(vc) = &state.own_view_change {
            pbft.view_changes.insert(me, vc.clone());
        }
        pbft.own_view_change = state.own_view_change;
        for checkpoint in state.own_checkpoints {
            pbft.checkpoints
                .entry(checkpoint.seq)
                .or_default()
                .insert(checkpoint.from, checkpoint);
        }
        pbft.journal = Journal::of(&pbft);
        Ok(pbft)
    }

    /// Replaces the signature checker (same answers, maybe faster or shared).
    pub fn with_verifier(mut self, verifier: Arc<dyn SignatureCheck>) -> Pbft {
        self.verifier = verifier;
        self
    }

    pub fn config(&self) -> &PbftConfig {
        &self.config
    }

    pub fn view(&self) -> u64 {
        self.view
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn is_primary(&self) -> bool {
        self.config.primary(self.view) == self.config.me
    }

    pub fn stable_checkpoint(&self) -> u64 {
        self.stable.seq
    }

    /// Ids of pending transactions the request timer tracks.
    pub fn pending_txs(&self) -> usize {
        self.pending.len()
    }

    /// When `timer` fires next, if it is armed.
    pub fn timer_deadline(&self, timer: PbftTimer) -> Option<u64> {
        self.timers.get(&timer).copied()
    }

    /// Height and hash of the last executed block.
    pub fn last_committed(&self) -> (u64, Hash) {
        (self.last_executed, self.last_hash)
    }

    /// Every piece of protocol state, as text: the property tests compare it before and after
    /// a rejected message. Leaves out hints, rate limits and caches (see
    /// [`Pbft::state_fingerprint`]).
    pub fn protocol_fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.persisted(),
            self.slots,
            self.checkpoints,
            self.view_changes,
            self.pending,
            self.future,
            self.timers
        )
    }

    /// All the state a message can change, as text: the protocol state plus the soft state
    /// (the behind hint, sync and forwarding rate limits, the verified VIEW-CHANGE memo). Only
    /// the clock is left out. A message that fails its signature check leaves all of it
    /// unchanged; an authentic message refused as out of window or stale may move the soft
    /// state only (property tested).
    pub fn state_fingerprint(&self) -> String {
        format!(
            "{}|hint {}|sync {:?}|tick {}|nv {:?}|proof {:?}|vc {:?}",
            self.protocol_fingerprint(),
            self.behind_hint,
            self.last_sync_request_ms,
            self.executed_at_last_tick,
            self.new_view_forwarded_ms,
            self.proof_forwarded_ms,
            self.verified_view_changes
        )
    }

    /// The highest height authentic evidence says others reached (0 when there is none):
    /// while it is above the executed height and nothing executes, the replica asks for sync.
    /// A hint, never protocol state.
    pub fn behind_hint(&self) -> u64 {
        self.behind_hint
    }

    /// Everything a restart needs, as it is now.
    pub fn persisted(&self) -> PbftPersisted {
        let me = self.config.me;
        PbftPersisted {
            view: self.view,
            status: self.status,
            failed_views: self.failed_views,
            stable: self.stable.clone(),
            last_executed: self.last_executed,
            last_hash: self.last_hash,
            last_timestamp_ms: self.last_timestamp_ms,
            recent_txs: self.recent_txs.iter().cloned().collect(),
            slots: self
                .slots
                .values()
                .map(|slot| slot.durable.clone())
                .collect(),
            own_view_change: self.own_view_change.clone(),
            latest_new_view: self.latest_new_view.clone(),
            own_checkpoints: self
                .checkpoints
                .values()
                .filter_map(|votes| votes.get(&me).cloned())
                .collect(),
            persist_sequence: self.persist_sequence,
        }
    }
}

/// The view a normal-case message belongs to.
fn message_view(message: &PbftMessage) -> Option<u64> {
    match message {
        PbftMessage::PrePrepare(pp) => Some(pp.view),
        PbftMessage::Prepare(p) => Some(p.view),
        PbftMessage::Commit(c) => Some(c.view),
        _ => None,
    }
}

impl Protocol for Pbft {
    type Message = PbftMessage;
    type Persisted = PbftPersisted;
    type Timer = PbftTimer;
    type Reject = RejectReason;

    fn step(&mut self, env: Env, input: PbftInput) -> Vec<PbftEffect> {
        // Time never runs backwards inside the core, even if the driver's clock does.
        self.now_ms = self.now_ms.max(env.now_ms);
        self.proposal_asked = false;
        match input {
            Input::Start => self.on_start(),
            Input::Message { from, message } => {
                if let Err(reason) = self.on_message(from, message) {
                    self.out.first.push(Effect::Rejected {
                        from: Some(from),
                        reason,
                    });
                }
            }
            Input::Timer(timer) => self.on_timer(timer),
            Input::TransactionsPending(ids) => self.on_transactions_pending(ids),
            Input::Proposal(txs) => self.on_proposal(txs),
            Input::Persisted { .. } => {}
            Input::SyncedBlock { block, certificate } => {
                if let Err(reason) = self.on_synced_block(block, certificate) {
                    self.out.first.push(Effect::Rejected { from: None, reason });
                }
            }
        }
        self.finish()
    }

    fn snapshot(&self) -> PbftPersisted {
        self.persisted()
    }

    fn status(&self) -> CoreStatus {
        let leader = self.config.primary(self.view);
        let role = match self.status {
            Status::ViewChanging => Role::Electing,
            Status::Normal if leader == self.config.me => Role::Leader,
            Status::Normal => Role::Follower,
        };
        CoreStatus {
            height: self.last_executed,
            last_hash: self.last_hash,
            epoch: self.view,
            leader: (self.status == Status::Normal).then_some(leader),
            role,
            pending: self.pending.len(),
        }
    }

    fn id(&self) -> ValidatorId {
        self.config.me
    }
}
