//! Practical Byzantine Fault Tolerance (Castro & Liskov, OSDI '99; signatures as in TOCS
//! 2002) as a pure state machine.
//!
//! - Normal case (§4.2): PRE-PREPARE, PREPARE, COMMIT with quorums of 2f + 1; one sequence
//!   number orders one batch, which becomes the block at that height; up to
//!   `pipeline_depth` sequence numbers are in flight inside the watermark window.
//! - Garbage collection (§4.3): a CHECKPOINT every K blocks, stable with a quorum, moves the
//!   low watermark and drops the log below it.
//! - View changes (§4.4, liveness §4.5.2): VIEW-CHANGE with the stable checkpoint and prepared
//!   certificates, NEW-VIEW with O recomputed and checked by every backup, timeouts doubling
//!   with each failed view, the f + 1 rule to join a view change.
//! - Blocks are chained at execution time (ADR 0003): the COMMIT signs the block hash, so a
//!   quorum of COMMITs is the block's commit certificate.

pub mod config;
pub mod messages;
mod reject;
mod state;
mod verifier;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use aegis_crypto::{SecretKey, verify_commit_certificate};
use aegis_types::encoding::encode;
use aegis_types::{Block, CommitCertificate, CommitSignature, Hash, Transaction, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};
use std::sync::Arc;

pub use config::{ConfigError, PbftConfig};
pub use messages::{
    Batch, Checkpoint, CheckpointProof, Commit, NewView, PbftMessage, PrePrepare, Prepare,
    PreparedCert, ViewChange,
};
pub use reject::{BatchFault, RejectReason, SyncFault};
pub use state::{PbftPersisted, PersistedSlot, Status};
pub use verifier::{Ed25519, SignatureCheck};

use crate::{Effect, Env, Input, Outgoing, Protocol};
use config::{MAX_BACKOFF_EXPONENT, MAX_FUTURE_VIEW_DISTANCE, MAX_PENDING_CHECKPOINTS};
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

pub type PbftEffect = Effect<PbftMessage, PbftPersisted, PbftTimer, RejectReason>;
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
    /// Timers and sync requests.
    last: Vec<PbftEffect>,
    dirty: bool,
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
    recent_txs: VecDeque<(u64, Vec<Hash>)>,
    recent_ids: BTreeSet<Hash>,
    slots: BTreeMap<u64, Slot>,
    own_view_change: Option<ViewChange>,
    latest_new_view: Option<NewView>,
    persist_sequence: u64,

    // Volatile state, rebuilt from peers after a restart.
    /// CHECKPOINT votes above the stable checkpoint, own included.
    checkpoints: BTreeMap<u64, BTreeMap<ValidatorId, Checkpoint>>,
    /// Each validator's highest valid VIEW-CHANGE (at most n entries).
    view_changes: BTreeMap<ValidatorId, ViewChange>,
    verified_view_changes: VecDeque<Hash>,
    pool: BTreeMap<Hash, Transaction>,
    pool_order: VecDeque<Hash>,
    future: VecDeque<(ValidatorId, PbftMessage)>,
    timers: BTreeMap<PbftTimer, u64>,

    // Hints and rate limits: bookkeeping, not protocol state.
    behind_hint: u64,
    last_sync_request_ms: Option<u64>,
    executed_at_last_tick: u64,
    new_view_forwarded_ms: BTreeMap<ValidatorId, u64>,
    proof_forwarded_ms: BTreeMap<ValidatorId, u64>,

    out: Outbox,
}

impl Pbft {
    /// A replica starting from the genesis.
    pub fn new(config: PbftConfig, key: SecretKey) -> Result<Pbft, PbftError> {
        config.validate()?;
        let me = config.me;
        let expected = config.validators.get(me).map(|v| v.public_key);
        if expected != Some(key.public_key()) {
            return Err(PbftError::KeyMismatch(me));
        }
        let genesis_hash = config.genesis_hash;
        Ok(Pbft {
            key,
            verifier: Arc::new(Ed25519),
            now_ms: 0,
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
            recent_txs: VecDeque::new(),
            recent_ids: BTreeSet::new(),
            slots: BTreeMap::new(),
            own_view_change: None,
            latest_new_view: None,
            persist_sequence: 0,
            checkpoints: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            verified_view_changes: VecDeque::new(),
            pool: BTreeMap::new(),
            pool_order: VecDeque::new(),
            future: VecDeque::new(),
            timers: BTreeMap::new(),
            behind_hint: 0,
            last_sync_request_ms: None,
            executed_at_last_tick: 0,
            new_view_forwarded_ms: BTreeMap::new(),
            proof_forwarded_ms: BTreeMap::new(),
            out: Outbox::default(),
            config,
        })
    }

    /// A replica restarted from the state it last persisted.
    pub fn restore(
        config: PbftConfig,
        key: SecretKey,
        state: PbftPersisted,
    ) -> Result<Pbft, PbftError> {
        let mut pbft = Pbft::new(config, key)?;
        pbft.view = state.view;
        pbft.status = state.status;
        pbft.failed_views = state.failed_views;
        pbft.stable = state.stable;
        pbft.last_executed = state.last_executed;
        pbft.last_hash = state.last_hash;
        pbft.recent_ids = state
            .recent_txs
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        pbft.recent_txs = state.recent_txs.into_iter().collect();
        let me = pbft.config.me;
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
            pbft.view_changes.insert(pbft.config.me, vc.clone());
        }
        pbft.own_view_change = state.own_view_change;
        pbft.latest_new_view = state.latest_new_view;
        for checkpoint in state.own_checkpoints {
            pbft.checkpoints
                .entry(checkpoint.seq)
                .or_default()
                .insert(checkpoint.from, checkpoint);
        }
        pbft.persist_sequence = state.persist_sequence;
        pbft.executed_at_last_tick = pbft.last_executed;
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

    pub fn pending_txs(&self) -> usize {
        self.pool.len()
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
            self.pool_order,
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

    fn low_watermark(&self) -> u64 {
        self.stable.seq
    }

    fn high_watermark(&self) -> u64 {
        self.stable.seq.saturating_add(self.config.log_window())
    }

    fn backoff(&self, base_ms: u64) -> u64 {
        let exponent = self.failed_views.min(MAX_BACKOFF_EXPONENT);
        base_ms
            .saturating_mul(1u64 << exponent)
            .min(self.config.max_timeout_ms.max(base_ms))
    }

    fn verify_from(
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

    fn send_signed(&mut self, message: Outgoing<PbftMessage>) {
        self.out.dirty = true;
        self.out.signed.push(message);
    }

    fn set_timer(&mut self, timer: PbftTimer, deadline_ms: u64) {
        self.timers.insert(timer, deadline_ms);
        self.out.last.push(Effect::SetTimer { timer, deadline_ms });
    }

    fn cancel_timer(&mut self, timer: PbftTimer) {
        if self.timers.remove(&timer).is_some() {
            self.out.last.push(Effect::CancelTimer { timer });
        }
    }

    /// Raises the behind hint to `seq`, at most one log window past the high watermark: one
    /// message, even authentic, can only say that much; further gaps are learned from
    /// checkpoint votes, which move the watermarks. The hint only triggers `RequestSync`
    /// (sync accepts certified blocks only); it never changes protocol state.
    fn note_behind(&mut self, seq: u64) {
        let bound = self
            .high_watermark()
            .saturating_add(self.config.log_window());
        self.behind_hint = self.behind_hint.max(seq.min(bound));
    }

    /// Whether `note_behind(seq)` would raise the hint.
    fn hint_would_rise(&self, seq: u64) -> bool {
        seq.min(
            self.high_watermark()
                .saturating_add(self.config.log_window()),
        ) > self.behind_hint
    }

    fn request_sync(&mut self) {
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

    fn finish(&mut self) -> Vec<PbftEffect> {
        let out = std::mem::take(&mut self.out);
        let mut effects = out.first;
        if out.dirty || !out.signed.is_empty() {
            self.persist_sequence += 1;
            effects.push(Effect::PersistThenSend {
                sequence: self.persist_sequence,
                state: self.persisted(),
                messages: out.signed,
            });
        }
        effects.extend(out.plain.into_iter().map(Effect::Send));
        effects.extend(out.last);
        effects
    }

    // ---------------------------------------------------------------- messages

    fn on_message(&mut self, from: ValidatorId, message: PbftMessage) -> Result<(), RejectReason> {
        if self.config.validators.get(from).is_none() {
            return Err(RejectReason::UnknownSender);
        }
        if from == self.config.me {
            return Err(RejectReason::FromSelf);
        }
        match message {
            PbftMessage::PrePrepare(pp) => self.on_pre_prepare(from, pp),
            PbftMessage::Prepare(p) => self.on_prepare(from, p),
            PbftMessage::Commit(c) => self.on_commit(from, c),
            PbftMessage::Checkpoint(c) => self.on_checkpoint(from, c),
            PbftMessage::ViewChange(vc) => self.on_view_change(from, vc),
            PbftMessage::NewView(nv) => self.on_new_view(from, nv),
        }
    }

    /// Normal-case messages are processed only in the view the replica runs (§4.2); those
    /// for a view about to start are held in a bounded buffer, stale ones refused.
    /// Returns `Ok(true)` when the message should be processed now. Called only once the
    /// message's signature has verified: a stale one may raise the behind hint and have the
    /// NEW-VIEW forwarded to its sender.
    fn view_gate(
        &mut self,
        from: ValidatorId,
        view: u64,
        message: &PbftMessage,
    ) -> Result<bool, RejectReason> {
        if view < self.view {
            if let PbftMessage::Commit(c) = message
                && c.seq > self.last_executed
            {
                // Others committed in an older view while this replica left it: a hint that
                // it is behind (checked by sync, which only accepts certified blocks).
                self.note_behind(c.seq);
            }
            // The signature has verified (see above): no need to check it again.
            self.forward_new_view(from, |_| true)?;
            return Err(RejectReason::StaleView {
                view,
                current: self.view,
            });
        }
        if view == self.view && self.status == Status::Normal {
            return Ok(true);
        }
        if view - self.view > MAX_FUTURE_VIEW_DISTANCE {
            return Err(RejectReason::FutureView {
                view,
                current: self.view,
            });
        }
        if self.future.iter().any(|(f, m)| *f == from && m == message) {
            return Err(RejectReason::Duplicate);
        }
        if self.future.len() >= self.config.max_future_messages {
            self.future.pop_front();
        }
        self.future.push_back((from, message.clone()));
        Ok(false)
    }

    /// Refuses a sequence number outside (h, H] (§4.2). An out-of-window message still says
    /// something if it is authentic: a sender below the window gets the stable checkpoint
    /// proof, one above it hints that this replica has fallen behind. `authentic` checks the
    /// sender's signature; it runs only when one of those would follow, so a forged message
    /// changes nothing (not even a hint) and costs at most one verification.
    fn check_window(
        &mut self,
        from: ValidatorId,
        seq: u64,
        authentic: impl FnOnce(&Pbft) -> bool,
    ) -> Result<(), RejectReason> {
        let (low, high) = (self.low_watermark(), self.high_watermark());
        if seq > low && seq <= high {
            return Ok(());
        }
        let useful = if seq <= low {
            self.proof_forward_due(from)
        } else {
            self.hint_would_rise(seq - 1)
        };
        if useful {
            if !authentic(self) {
                return Err(RejectReason::BadSignature);
            }
            if seq <= low {
                self.forward_stable_proof(from);
            } else {
                // The sender works above this replica's window: it has fallen behind.
                self.note_behind(seq - 1);
            }
        }
        Err(RejectReason::OutOfWindow { seq, low, high })
    }

    /// The log entry for `seq` in the current view, created or moved to it as needed.
    fn slot_mut(&mut self, seq: u64) -> &mut Slot {
        let view = self.view;
        let slot = self
            .slots
            .entry(seq)
            .or_insert_with(|| Slot::new(seq, view));
        slot.enter_view(view);
        slot
    }

    /// The entry for `seq` if it already belongs to the current view.
    fn current_slot(&self, seq: u64) -> Option<&Slot> {
        self.slots
            .get(&seq)
            .filter(|slot| slot.durable.view == self.view)
    }

    fn on_pre_prepare(&mut self, from: ValidatorId, pp: PrePrepare) -> Result<(), RejectReason> {
        let primary = self.config.primary(pp.view);
        if from != primary {
            return Err(RejectReason::NotPrimary {
                view: pp.view,
                primary,
            });
        }
        self.check_window(from, pp.seq, |me| {
            let bytes = messages::pre_prepare_bytes(
                &me.config.chain_id,
                pp.view,
                pp.seq,
                &pp.batch.digest(),
            );
            me.verify_from(from, &bytes, &pp.signature)
        })?;
        let digest = pp.batch.digest();
        let bytes = messages::pre_prepare_bytes(&self.config.chain_id, pp.view, pp.seq, &digest);
        if let Some(existing) = self
            .current_slot(pp.seq)
            .and_then(|s| s.durable.pre_prepare.as_ref())
            && pp.view == self.view
        {
            if existing.batch.digest() == digest {
                return Err(RejectReason::Duplicate);
            }
            if !self.verify_from(from, &bytes, &pp.signature) {
                return Err(RejectReason::BadSignature);
            }
            return Err(RejectReason::Equivocation {
                view: pp.view,
                seq: pp.seq,
            });
        }
        let message = PbftMessage::PrePrepare(pp);
        let PbftMessage::PrePrepare(pp) = &message else {
            return Ok(());
        };
        if !self.verify_from(from, &bytes, &pp.signature) {
            return Err(RejectReason::BadSignature);
        }
        if !self.view_gate(from, pp.view, &message)? {
            return Ok(());
        }
        self.check_batch(&pp.batch, pp.view, from)?;
        let PbftMessage::PrePrepare(pp) = message else {
            return Ok(());
        };
        let seq = pp.seq;
        let me = self.config.me;
        let chain_id = self.config.chain_id.clone();
        let view = self.view;
        let own = Prepare::new_signed(&chain_id, &self.key, me, view, seq, digest);
        let slot = self.slot_mut(seq);
        slot.set_pre_prepare(pp);
        let mut prepare = None;
        if me != primary && slot.durable.sent_prepare.is_none() {
            slot.durable.sent_prepare = Some(digest);
            slot.prepares.insert(me, own.clone());
            prepare = Some(own);
        }
        self.out.dirty = true;
        if let Some(p) = prepare {
            self.send_signed(Outgoing::All(PbftMessage::Prepare(p)));
        }
        self.refresh_progress_timer(false);
        self.advance(seq);
        Ok(())
    }

    fn check_batch(&self, batch: &Batch, view: u64, from: ValidatorId) -> Result<(), RejectReason> {
        if batch.proposer != from || batch.view != view {
            return Err(RejectReason::InvalidBatch(BatchFault::WrongProposer));
        }
        self.check_txs(&batch.txs)
    }

    fn check_txs(&self, txs: &[Transaction]) -> Result<(), RejectReason> {
        if txs.len() > self.config.max_block_txs as usize {
            return Err(RejectReason::InvalidBatch(BatchFault::TooManyTxs {
                count: txs.len(),
                max: self.config.max_block_txs,
            }));
        }
        let mut seen = BTreeSet::new();
        for (index, tx) in txs.iter().enumerate() {
            if tx.check_structure(&self.config.chain_id).is_err() {
                return Err(RejectReason::InvalidBatch(BatchFault::MalformedTx(index)));
            }
            if !seen.insert(tx.id()) {
                return Err(RejectReason::InvalidBatch(BatchFault::DuplicateTx(index)));
            }
        }
        if let Err(bad) = self.verify_txs(txs) {
            let index = bad.first().copied().unwrap_or(0);
            return Err(RejectReason::InvalidBatch(BatchFault::BadTxSignature(
                index,
            )));
        }
        Ok(())
    }

    fn verify_txs(&self, txs: &[Transaction]) -> Result<(), Vec<usize>> {
        let items: Vec<_> = txs
            .iter()
            .map(|tx| (tx.body.sender, tx.body.signing_bytes(), tx.signature))
            .collect();
        self.verifier.verify_batch(&items)
    }

    fn on_prepare(&mut self, from: ValidatorId, p: Prepare) -> Result<(), RejectReason> {
        if p.from != from {
            return Err(RejectReason::SenderMismatch { claimed: p.from });
        }
        if from == self.config.primary(p.view) {
            return Err(RejectReason::PrepareFromPrimary);
        }
        self.check_window(from, p.seq, |me| {
            let bytes =
                messages::prepare_bytes(&me.config.chain_id, p.view, p.seq, &p.digest, from);
            me.verify_from(from, &bytes, &p.signature)
        })?;
        if p.view == self.view
            && let Some(existing) = self.current_slot(p.seq).and_then(|s| s.prepares.get(&from))
        {
            if existing.digest == p.digest {
                return Err(RejectReason::Duplicate);
            }
            let bytes =
                messages::prepare_bytes(&self.config.chain_id, p.view, p.seq, &p.digest, from);
            if !self.verify_from(from, &bytes, &p.signature) {
                return Err(RejectReason::BadSignature);
            }
            return Err(RejectReason::ConflictingVote {
                view: p.view,
                seq: p.seq,
            });
        }
        let bytes = messages::prepare_bytes(&self.config.chain_id, p.view, p.seq, &p.digest, from);
        if !self.verify_from(from, &bytes, &p.signature) {
            return Err(RejectReason::BadSignature);
        }
        let message = PbftMessage::Prepare(p);
        let PbftMessage::Prepare(p) = &message else {
            return Ok(());
        };
        if !self.view_gate(from, p.view, &message)? {
            return Ok(());
        }
        let PbftMessage::Prepare(p) = message else {
            return Ok(());
        };
        let seq = p.seq;
        self.slot_mut(seq).prepares.insert(from, p);
        self.advance(seq);
        Ok(())
    }

    fn on_commit(&mut self, from: ValidatorId, c: Commit) -> Result<(), RejectReason> {
        if c.from != from {
            return Err(RejectReason::SenderMismatch { claimed: c.from });
        }
        self.check_window(from, c.seq, |me| {
            let bytes = messages::commit_bytes(&me.config.chain_id, c.view, c.seq, c.block_hash);
            me.verify_from(from, &bytes, &c.signature)
        })?;
        let bytes = messages::commit_bytes(&self.config.chain_id, c.view, c.seq, c.block_hash);
        if c.view == self.view
            && let Some(existing) = self.current_slot(c.seq).and_then(|s| s.commits.get(&from))
        {
            if existing.block_hash == c.block_hash {
                return Err(RejectReason::Duplicate);
            }
            if !self.verify_from(from, &bytes, &c.signature) {
                return Err(RejectReason::BadSignature);
            }
            return Err(RejectReason::ConflictingVote {
                view: c.view,
                seq: c.seq,
            });
        }
        if !self.verify_from(from, &bytes, &c.signature) {
            return Err(RejectReason::BadSignature);
        }
        let message = PbftMessage::Commit(c);
        let PbftMessage::Commit(c) = &message else {
            return Ok(());
        };
        if !self.view_gate(from, c.view, &message)? {
            return Ok(());
        }
        let PbftMessage::Commit(c) = message else {
            return Ok(());
        };
        let seq = c.seq;
        self.slot_mut(seq).commits.insert(from, c);
        self.advance(seq);
        Ok(())
    }

    /// Prepared, committed, executed: everything that may follow new votes at `seq`.
    fn advance(&mut self, seq: u64) {
        self.try_prepare_and_commit(seq);
        self.try_execute();
    }

    /// §4.2: prepared(m, v, n, i) once the pre-prepare and 2f matching PREPAREs from distinct
    /// backups are logged; then multicast COMMIT. The COMMIT names the block hash, known once
    /// the previous block is executed (ADR 0003).
    fn try_prepare_and_commit(&mut self, seq: u64) {
        if self.status != Status::Normal {
            return;
        }
        let view = self.view;
        let primary = self.config.primary(view);
        let need_prepares = self.config.quorum() - 1;
        let next_height = self.last_executed + 1;
        let last_hash = self.last_hash;
        let me = self.config.me;
        let chain_id = self.config.chain_id.clone();
        let Some(mut slot) = self.slots.remove(&seq) else {
            return;
        };
        let mut commit = None;
        if slot.durable.view == view
            && let (Some(pp), Some(digest)) = (slot.durable.pre_prepare.clone(), slot.digest)
        {
            if !slot.prepared_in(view) {
                let matching: Vec<Prepare> = slot
                    .prepares
                    .values()
                    .filter(|p| p.digest == digest && p.from != primary)
                    .cloned()
                    .collect();
                if matching.len() >= need_prepares {
                    slot.durable.prepared = Some(PreparedCert {
                        pre_prepare: pp.clone(),
                        prepares: matching,
                    });
                    self.out.dirty = true;
                }
            }
            if slot.prepared_in(view) && slot.durable.sent_commit.is_none() {
                let block_hash = match slot.durable.executed {
                    Some((executed_digest, hash)) if executed_digest == digest => Some(hash),
                    Some(_) => None,
                    None if seq == next_height => {
                        self.candidate_block(&mut slot, last_hash).map(|b| b.hash())
                    }
                    None => None,
                };
                if let Some(block_hash) = block_hash {
                    let c = Commit::new_signed(&chain_id, &self.key, me, view, seq, block_hash);
                    slot.durable.sent_commit = Some(block_hash);
                    slot.commits.insert(me, c.clone());
                    commit = Some(c);
                }
            }
        }
        self.slots.insert(seq, slot);
        if let Some(c) = commit {
            self.send_signed(Outgoing::All(PbftMessage::Commit(c)));
        }
    }

    /// The block a slot's batch becomes after `prev_hash`, cached.
    fn candidate_block(&self, slot: &mut Slot, prev_hash: Hash) -> Option<Block> {
        if let Some(block) = &slot.candidate
            && block.header.prev_hash == prev_hash
        {
            return Some(block.clone());
        }
        let pp = slot.durable.pre_prepare.as_ref()?;
        let block = self.build_block(&pp.batch, slot.durable.seq, prev_hash);
        slot.candidate = Some(block.clone());
        Some(block)
    }

    fn build_block(&self, batch: &Batch, height: u64, prev_hash: Hash) -> Block {
        let proposer = self
            .config
            .validators
            .get(batch.proposer)
            .map(|v| v.public_key)
            .unwrap_or(aegis_types::PublicKey([0; 32]));
        let mut seen = BTreeSet::new();
        let recent = &self.recent_ids;
        batch.to_block(&self.config.chain_id, height, prev_hash, proposer, |tx| {
            let id = tx.id();
            !recent.contains(&id) && seen.insert(id)
        })
    }

    /// §4.2: committed-local once 2f + 1 matching COMMITs are logged; execute in sequence
    /// order. The COMMITs of one view for the block hash form its certificate.
    fn try_execute(&mut self) {
        loop {
            let seq = self.last_executed + 1;
            let last_hash = self.last_hash;
            let quorum = self.config.quorum();
            let Some(mut slot) = self.slots.remove(&seq) else {
                return;
            };
            let candidate = self.candidate_block(&mut slot, last_hash);
            let ready = match (candidate, slot.digest) {
                (Some(block), Some(digest)) => {
                    let hash = block.hash();
                    let signatures: Vec<CommitSignature> = slot
                        .commits
                        .values()
                        .filter(|c| c.block_hash == hash && c.view == slot.durable.view)
                        .map(|c| CommitSignature {
                            validator: c.from,
                            signature: c.signature,
                        })
                        .collect();
                    (signatures.len() >= quorum).then(|| {
                        let certificate = CommitCertificate {
                            height: seq,
                            view: slot.durable.view,
                            block_hash: hash,
                            signatures,
                        };
                        (digest, block, certificate)
                    })
                }
                _ => None,
            };
            let Some((digest, block, certificate)) = ready else {
                self.slots.insert(seq, slot);
                return;
            };
            slot.durable.executed = Some((digest, certificate.block_hash));
            let in_current_view = slot.durable.view == self.view;
            self.slots.insert(seq, slot);
            self.commit_block(block, certificate, in_current_view);
            self.try_prepare_and_commit(seq + 1);
        }
    }

    /// Records an executed block and does what follows: the checkpoint every K blocks
    /// (§4.3), the pool, the progress timer.
    fn commit_block(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
        in_current_view: bool,
    ) {
        let height = block.height();
        let hash = certificate.block_hash;
        let ids = block.tx_ids();
        for id in &ids {
            self.recent_ids.insert(*id);
            if self.pool.remove(id).is_some() {
                self.pool_order.retain(|queued| queued != id);
            }
        }
        self.recent_txs.push_back((height, ids));
        while let Some((oldest, _)) = self.recent_txs.front() {
            if oldest + self.config.tx_dedup_window_blocks > height {
                break;
            }
            if let Some((_, old_ids)) = self.recent_txs.pop_front() {
                for id in old_ids {
                    self.recent_ids.remove(&id);
                }
            }
        }
        self.last_executed = height;
        self.last_hash = hash;
        self.out.dirty = true;
        self.out
            .first
            .push(Effect::CommitBlock { block, certificate });
        if in_current_view && self.status == Status::Normal {
            // §4.5.2: executing in the new view ends the run of failed views.
            self.failed_views = 0;
        }
        if height.is_multiple_of(self.config.checkpoint_interval) && height > self.stable.seq {
            let me = self.config.me;
            let checkpoint =
                Checkpoint::new_signed(&self.config.chain_id, &self.key, me, height, hash);
            self.insert_checkpoint(checkpoint.clone());
            self.send_signed(Outgoing::All(PbftMessage::Checkpoint(checkpoint)));
            self.check_stable(height);
        }
        self.refresh_progress_timer(true);
        self.maybe_propose();
    }

    // ------------------------------------------------------------- checkpoints

    fn on_checkpoint(&mut self, from: ValidatorId, c: Checkpoint) -> Result<(), RejectReason> {
        // CHECKPOINTs are self-certifying and may be forwarded (a stable proof sent to a
        // lagging peer), so the vote counts for its signer, not for the peer that relayed it.
        let voter = c.from;
        if self.config.validators.get(voter).is_none() {
            return Err(RejectReason::UnknownSender);
        }
        if c.seq == 0 || !c.seq.is_multiple_of(self.config.checkpoint_interval) {
            return Err(RejectReason::NotACheckpoint { seq: c.seq });
        }
        // Votes above the high watermark are kept too (in a bounded map): a stable proof
        // far ahead is how a lagging replica learns where the others are (§4.3).
        let low = self.low_watermark();
        let bytes = messages::checkpoint_bytes(&self.config.chain_id, c.seq, &c.block_hash, voter);
        if c.seq <= low {
            // The relaying peer works below the stable checkpoint: send it the proof, but
            // only for a genuine vote (a forged one must not buy a reply).
            if self.proof_forward_due(from) {
                if !self.verify_from(voter, &bytes, &c.signature) {
                    return Err(RejectReason::BadSignature);
                }
                self.forward_stable_proof(from);
            }
            return Err(RejectReason::OutOfWindow {
                seq: c.seq,
                low,
                high: self.high_watermark(),
            });
        }
        if let Some(existing) = self
            .checkpoints
            .get(&c.seq)
            .and_then(|votes| votes.get(&voter))
        {
            if existing.block_hash == c.block_hash {
                return Err(RejectReason::Duplicate);
            }
            if !self.verify_from(voter, &bytes, &c.signature) {
                return Err(RejectReason::BadSignature);
            }
            return Err(RejectReason::ConflictingVote {
                view: self.view,
                seq: c.seq,
            });
        }
        if !self.verify_from(voter, &bytes, &c.signature) {
            return Err(RejectReason::BadSignature);
        }
        let seq = c.seq;
        self.insert_checkpoint(c);
        if seq > self.last_executed {
            let votes = self.checkpoints.get(&seq).map_or(0, BTreeMap::len);
            if votes >= self.config.weak_quorum() {
                // f + 1 replicas, so at least one honest, executed past this replica.
                self.note_behind(seq);
            }
        }
        self.check_stable(seq);
        self.maybe_propose();
        Ok(())
    }

    /// Adds a CHECKPOINT vote, keeping at most `MAX_PENDING_CHECKPOINTS` sequence numbers:
    /// when full, the one with the fewest votes goes (the highest among equals), so a
    /// Byzantine validator's lone votes cannot crowd out a proof that is arriving.
    fn insert_checkpoint(&mut self, checkpoint: Checkpoint) {
        let seq = checkpoint.seq;
        self.checkpoints
            .entry(seq)
            .or_default()
            .insert(checkpoint.from, checkpoint);
        while self.checkpoints.len() > MAX_PENDING_CHECKPOINTS {
            let victim = self
                .checkpoints
                .iter()
                .filter(|(s, _)| **s != seq)
                .min_by_key(|(s, votes)| (votes.len(), std::cmp::Reverse(**s)))
                .map(|(s, _)| *s);
            match victim {
                Some(victim) => {
                    self.checkpoints.remove(&victim);
                }
                None => break,
            }
        }
    }

    /// §4.3: a checkpoint with a quorum of matching votes is stable.
    fn check_stable(&mut self, seq: u64) {
        if seq <= self.stable.seq {
            return;
        }
        let Some(votes) = self.checkpoints.get(&seq) else {
            return;
        };
        let mut by_hash: BTreeMap<Hash, Vec<Checkpoint>> = BTreeMap::new();
        for vote in votes.values() {
            by_hash
                .entry(vote.block_hash)
                .or_default()
                .push(vote.clone());
        }
        let quorum = self.config.quorum();
        if let Some((block_hash, checkpoints)) =
            by_hash.into_iter().find(|(_, votes)| votes.len() >= quorum)
        {
            self.adopt_stable(CheckpointProof {
                seq,
                block_hash,
                checkpoints,
            });
        }
    }

    /// Moves the low watermark and discards the log below it (§4.3).
    fn adopt_stable(&mut self, proof: CheckpointProof) {
        if proof.seq <= self.stable.seq {
            return;
        }
        let seq = proof.seq;
        self.stable = proof;
        self.slots.retain(|s, _| *s > seq);
        self.checkpoints.retain(|s, _| *s > seq);
        self.out.dirty = true;
        if self.last_executed < seq {
            self.note_behind(seq);
            self.request_sync();
        }
    }

    // -------------------------------------------------------------- view change

    /// §4.4: suspect the primary, move to `target` and multicast VIEW-CHANGE with the stable
    /// checkpoint and every prepared certificate above it.
    fn start_view_change(&mut self, target: u64) {
        if target <= self.view {
            return;
        }
        self.view = target;
        self.status = Status::ViewChanging;
        self.failed_views = (self.failed_views + 1).min(MAX_BACKOFF_EXPONENT);
        let prepared: Vec<PreparedCert> = self
            .slots
            .range(self.stable.seq + 1..)
            .filter_map(|(_, slot)| slot.durable.prepared.clone())
            .collect();
        let me = self.config.me;
        let vc = ViewChange::new_signed(
            &self.config.chain_id,
            &self.key,
            me,
            target,
            self.stable.clone(),
            prepared,
        );
        self.own_view_change = Some(vc.clone());
        self.view_changes.insert(me, vc.clone());
        self.send_signed(Outgoing::All(PbftMessage::ViewChange(vc)));
        self.cancel_timer(PbftTimer::Progress);
        self.cancel_timer(PbftTimer::ViewChange);
        self.future
            .retain(|(_, m)| message_view(m).is_none_or(|v| v >= target));
        self.out
            .first
            .push(Effect::ViewChangeStarted { view: target });
        self.after_view_change_vote();
    }

    fn after_view_change_vote(&mut self) {
        if self.status != Status::ViewChanging {
            return;
        }
        // §4.5.2: the timer starts only once 2f + 1 replicas asked to leave the old view, so
        // a replica alone cannot run ahead through views. A VIEW-CHANGE for a later view
        // counts too: its sender left the old view as well, and only its latest VIEW-CHANGE
        // is still being retransmitted (without this, replicas split across two views after
        // a crash could each wait forever for a quorum that no longer exists).
        let leaving = self
            .view_changes
            .values()
            .filter(|vc| vc.new_view >= self.view)
            .count();
        if leaving >= self.config.quorum() && !self.timers.contains_key(&PbftTimer::ViewChange) {
            let deadline = self
                .now_ms
                .saturating_add(self.backoff(self.config.view_change_timeout_ms));
            self.set_timer(PbftTimer::ViewChange, deadline);
        }
        let for_this_view = self
            .view_changes
            .values()
            .filter(|vc| vc.new_view == self.view)
            .count();
        if for_this_view >= self.config.quorum() && self.is_primary() {
            self.make_new_view();
        }
    }

    fn on_view_change(&mut self, from: ValidatorId, vc: ViewChange) -> Result<(), RejectReason> {
        if vc.from != from {
            return Err(RejectReason::SenderMismatch { claimed: vc.from });
        }
        if vc.new_view < self.view || (vc.new_view == self.view && self.status == Status::Normal) {
            // The sender lags: help it with the NEW-VIEW that installed this view, if its
            // VIEW-CHANGE is really its own (the outer signature; the certificates inside do
            // not matter for this reply).
            self.forward_new_view(from, |me| {
                let bytes = messages::view_change_bytes(
                    &me.config.chain_id,
                    vc.new_view,
                    &vc.checkpoint,
                    &vc.prepared,
                    vc.from,
                );
                me.verify_from(from, &bytes, &vc.signature)
            })?;
            return Err(RejectReason::StaleView {
                view: vc.new_view,
                current: self.view,
            });
        }
        if let Some(existing) = self.view_changes.get(&from) {
            if *existing == vc {
                return Err(RejectReason::Duplicate);
            }
            if existing.new_view >= vc.new_view {
                return Err(RejectReason::StaleView {
                    view: vc.new_view,
                    current: existing.new_view,
                });
            }
        }
        self.verify_view_change(&vc)?;
        self.view_changes.insert(from, vc);
        // §4.5.2: f + 1 replicas ask for later views, so at least one honest one timed out:
        // join the smallest of those views without waiting for our own timer.
        let higher: Vec<u64> = self
            .view_changes
            .values()
            .map(|vc| vc.new_view)
            .filter(|v| *v > self.view)
            .collect();
        if higher.len() >= self.config.weak_quorum()
            && let Some(smallest) = higher.iter().min().copied()
        {
            self.start_view_change(smallest);
            return Ok(());
        }
        self.after_view_change_vote();
        Ok(())
    }

    fn verify_view_change(&mut self, vc: &ViewChange) -> Result<(), RejectReason> {
        let fingerprint = Hash::digest(&encode(vc));
        if self.verified_view_changes.contains(&fingerprint) {
            return Ok(());
        }
        if self.config.validators.get(vc.from).is_none() {
            return Err(RejectReason::BadViewChange("unknown sender"));
        }
        let bytes = messages::view_change_bytes(
            &self.config.chain_id,
            vc.new_view,
            &vc.checkpoint,
            &vc.prepared,
            vc.from,
        );
        if !self.verify_from(vc.from, &bytes, &vc.signature) {
            return Err(RejectReason::BadSignature);
        }
        self.verify_checkpoint_proof(&vc.checkpoint)?;
        let low = vc.checkpoint.seq;
        let high = low.saturating_add(self.config.log_window());
        let mut previous = low;
        for cert in &vc.prepared {
            let seq = cert.pre_prepare.seq;
            if seq <= previous || seq > high {
                return Err(RejectReason::BadViewChange(
                    "prepared certificates out of order or window",
                ));
            }
            previous = seq;
            self.verify_prepared_cert(cert, vc.new_view)?;
        }
        if self.verified_view_changes.len() >= MAX_VERIFIED_VIEW_CHANGES {
            self.verified_view_changes.pop_front();
        }
        self.verified_view_changes.push_back(fingerprint);
        Ok(())
    }

    fn verify_checkpoint_proof(&self, proof: &CheckpointProof) -> Result<(), RejectReason> {
        if proof.seq == 0 {
            return if proof.checkpoints.is_empty() && proof.block_hash == self.config.genesis_hash {
                Ok(())
            } else {
                Err(RejectReason::BadCheckpointProof)
            };
        }
        if !proof.seq.is_multiple_of(self.config.checkpoint_interval)
            || proof.checkpoints.len() < self.config.quorum()
            || proof.checkpoints.len() > self.config.validators.len()
        {
            return Err(RejectReason::BadCheckpointProof);
        }
        let mut previous: Option<ValidatorId> = None;
        for c in &proof.checkpoints {
            if previous.is_some_and(|p| p >= c.from)
                || c.seq != proof.seq
                || c.block_hash != proof.block_hash
            {
                return Err(RejectReason::BadCheckpointProof);
            }
            previous = Some(c.from);
            let bytes =
                messages::checkpoint_bytes(&self.config.chain_id, c.seq, &c.block_hash, c.from);
            if !self.verify_from(c.from, &bytes, &c.signature) {
                return Err(RejectReason::BadCheckpointProof);
            }
        }
        Ok(())
    }

    /// A prepared certificate (§4.4): a pre-prepare signed by that view's primary and 2f
    /// matching PREPAREs from distinct backups, all from a view before `before_view`.
    fn verify_prepared_cert(
        &self,
        cert: &PreparedCert,
        before_view: u64,
    ) -> Result<(), RejectReason> {
        let pp = &cert.pre_prepare;
        let bad = RejectReason::BadPreparedCert { seq: pp.seq };
        if pp.view >= before_view
            || cert.prepares.len() < self.config.quorum() - 1
            || cert.prepares.len() > self.config.validators.len()
            || pp.batch.txs.len() > self.config.max_block_txs as usize
        {
            return Err(bad);
        }
        let primary = self.config.primary(pp.view);
        let digest = pp.batch.digest();
        let bytes = messages::pre_prepare_bytes(&self.config.chain_id, pp.view, pp.seq, &digest);
        if !self.verify_from(primary, &bytes, &pp.signature) {
            return Err(bad);
        }
        let mut previous: Option<ValidatorId> = None;
        for p in &cert.prepares {
            if previous.is_some_and(|prev| prev >= p.from)
                || p.from == primary
                || p.view != pp.view
                || p.seq != pp.seq
                || p.digest != digest
            {
                return Err(bad);
            }
            previous = Some(p.from);
            let bytes =
                messages::prepare_bytes(&self.config.chain_id, p.view, p.seq, &p.digest, p.from);
            if !self.verify_from(p.from, &bytes, &p.signature) {
                return Err(bad);
            }
        }
        Ok(())
    }

    /// §4.4: the new primary's O. min-s is the latest stable checkpoint in V, max-s the
    /// highest prepared sequence number; each sequence number in between gets the batch of
    /// the prepared certificate with the highest view, or a null request (`None`).
    fn compute_o(view_changes: &[ViewChange]) -> (CheckpointProof, Vec<(u64, Option<Batch>)>) {
        let mut checkpoint: Option<&CheckpointProof> = None;
        for vc in view_changes {
            if checkpoint.is_none_or(|c| vc.checkpoint.seq > c.seq) {
                checkpoint = Some(&vc.checkpoint);
            }
        }
        let Some(checkpoint) = checkpoint.cloned() else {
            return (
                CheckpointProof {
                    seq: 0,
                    block_hash: Hash::ZERO,
                    checkpoints: Vec::new(),
                },
                Vec::new(),
            );
        };
        let min_s = checkpoint.seq;
        let mut chosen: BTreeMap<u64, &PreparedCert> = BTreeMap::new();
        for vc in view_changes {
            for cert in &vc.prepared {
                let seq = cert.pre_prepare.seq;
                if seq <= min_s {
                    continue;
                }
                let better = chosen
                    .get(&seq)
                    .is_none_or(|c| cert.pre_prepare.view > c.pre_prepare.view);
                if better {
                    chosen.insert(seq, cert);
                }
            }
        }
        let max_s = chosen.keys().next_back().copied().unwrap_or(min_s);
        let o = (min_s + 1..=max_s)
            .map(|seq| (seq, chosen.get(&seq).map(|c| c.pre_prepare.batch.clone())))
            .collect();
        (checkpoint, o)
    }

    fn make_new_view(&mut self) {
        let view = self.view;
        let quorum = self.config.quorum();
        let view_changes: Vec<ViewChange> = self
            .view_changes
            .values()
            .filter(|vc| vc.new_view == view)
            .take(quorum)
            .cloned()
            .collect();
        if view_changes.len() < quorum {
            return;
        }
        let (checkpoint, o) = Self::compute_o(&view_changes);
        let me = self.config.me;
        let pre_prepares: Vec<PrePrepare> = o
            .into_iter()
            .map(|(seq, batch)| {
                let batch = batch.unwrap_or(Batch {
                    proposer: me,
                    view,
                    timestamp_ms: self.now_ms,
                    txs: Vec::new(),
                });
                PrePrepare::new_signed(&self.config.chain_id, &self.key, view, seq, batch)
            })
            .collect();
        let nv = NewView::new_signed(
            &self.config.chain_id,
            &self.key,
            view,
            view_changes,
            pre_prepares,
        );
        self.send_signed(Outgoing::All(PbftMessage::NewView(nv.clone())));
        self.install_new_view(nv, checkpoint);
    }

    fn on_new_view(&mut self, from: ValidatorId, nv: NewView) -> Result<(), RejectReason> {
        let primary = self.config.primary(nv.view);
        if from != primary {
            return Err(RejectReason::NotPrimary {
                view: nv.view,
                primary,
            });
        }
        if nv.view < self.view || (nv.view == self.view && self.status == Status::Normal) {
            if self.latest_new_view.as_ref() == Some(&nv) {
                return Err(RejectReason::Duplicate);
            }
            return Err(RejectReason::StaleView {
                view: nv.view,
                current: self.view,
            });
        }
        let bytes = messages::new_view_bytes(
            &self.config.chain_id,
            nv.view,
            &nv.view_changes,
            &nv.pre_prepares,
        );
        if !self.verify_from(from, &bytes, &nv.signature) {
            return Err(RejectReason::BadSignature);
        }
        let quorum = self.config.quorum();
        if nv.view_changes.len() < quorum || nv.view_changes.len() > self.config.validators.len() {
            return Err(RejectReason::BadNewView("not a quorum of view changes"));
        }
        let mut previous: Option<ValidatorId> = None;
        for vc in &nv.view_changes {
            if previous.is_some_and(|p| p >= vc.from) || vc.new_view != nv.view {
                return Err(RejectReason::BadNewView(
                    "view changes not distinct or for another view",
                ));
            }
            previous = Some(vc.from);
        }
        for vc in &nv.view_changes {
            self.verify_view_change(vc)
                .map_err(|_| RejectReason::BadNewView("invalid view change inside"))?;
        }
        let (checkpoint, o) = Self::compute_o(&nv.view_changes);
        if o.len() != nv.pre_prepares.len() {
            return Err(RejectReason::BadNewView(
                "O does not match the view changes",
            ));
        }
        for ((seq, batch), pp) in o.iter().zip(&nv.pre_prepares) {
            if pp.seq != *seq || pp.view != nv.view {
                return Err(RejectReason::BadNewView(
                    "O does not match the view changes",
                ));
            }
            match batch {
                Some(batch) if *batch != pp.batch => {
                    return Err(RejectReason::BadNewView(
                        "O does not match the view changes",
                    ));
                }
                Some(_) => {}
                None => {
                    if !pp.batch.txs.is_empty()
                        || pp.batch.proposer != from
                        || pp.batch.view != nv.view
                    {
                        return Err(RejectReason::InvalidBatch(BatchFault::NonEmptyNull));
                    }
                }
            }
            let bytes = messages::pre_prepare_bytes(
                &self.config.chain_id,
                pp.view,
                pp.seq,
                &pp.batch.digest(),
            );
            if !self.verify_from(from, &bytes, &pp.signature) {
                return Err(RejectReason::BadSignature);
            }
        }
        self.install_new_view(nv, checkpoint);
        Ok(())
    }

    /// §4.4: enter the new view, log O and send PREPAREs for it (backups).
    fn install_new_view(&mut self, nv: NewView, checkpoint: CheckpointProof) {
        let view = nv.view;
        self.view = view;
        self.status = Status::Normal;
        self.own_view_change = None;
        self.view_changes.retain(|_, vc| vc.new_view > view);
        self.cancel_timer(PbftTimer::ViewChange);
        self.adopt_stable(checkpoint);
        let me = self.config.me;
        let primary = self.config.primary(view);
        let chain_id = self.config.chain_id.clone();
        let mut seqs = Vec::new();
        for pp in &nv.pre_prepares {
            let seq = pp.seq;
            if seq <= self.stable.seq {
                continue;
            }
            let digest = pp.batch.digest();
            let own = Prepare::new_signed(&chain_id, &self.key, me, view, seq, digest);
            let slot = self.slot_mut(seq);
            slot.set_pre_prepare(pp.clone());
            let mut prepare = None;
            if me != primary {
                slot.durable.sent_prepare = Some(digest);
                slot.prepares.insert(me, own.clone());
                prepare = Some(own);
            }
            if let Some(p) = prepare {
                self.send_signed(Outgoing::All(PbftMessage::Prepare(p)));
            }
            seqs.push(seq);
        }
        self.latest_new_view = Some(nv);
        self.out.dirty = true;
        self.out.first.push(Effect::ViewChanged { view, primary });
        // Replay what arrived early for this view.
        let buffered = std::mem::take(&mut self.future);
        let mut now = Vec::new();
        for (from, message) in buffered {
            match message_view(&message) {
                Some(v) if v == view => now.push((from, message)),
                Some(v) if v > view => self.future.push_back((from, message)),
                _ => {}
            }
        }
        for (from, message) in now {
            if let Err(reason) = self.on_message(from, message) {
                self.out.first.push(Effect::Rejected { from, reason });
            }
        }
        for seq in seqs {
            self.advance(seq);
        }
        self.try_execute();
        self.maybe_propose();
        self.refresh_progress_timer(true);
    }

    /// Sends the NEW-VIEW that installed the current view to a peer still in an older one;
    /// it is self-certifying, so any replica may forward it. Rate limited per peer, and only
    /// in reply to an authentic message: `authentic` checks the sender's signature and runs
    /// only when a NEW-VIEW would be sent; `Err(BadSignature)` when it fails.
    fn forward_new_view(
        &mut self,
        to: ValidatorId,
        authentic: impl FnOnce(&Pbft) -> bool,
    ) -> Result<(), RejectReason> {
        let Some(nv) = &self.latest_new_view else {
            return Ok(());
        };
        if nv.view != self.view || self.status != Status::Normal {
            return Ok(());
        }
        let due = self.new_view_forwarded_ms.get(&to).is_none_or(|last| {
            self.now_ms >= last.saturating_add(self.config.retransmit_interval_ms)
        });
        if !due {
            return Ok(());
        }
        if !authentic(self) {
            return Err(RejectReason::BadSignature);
        }
        if let Some(nv) = &self.latest_new_view {
            self.new_view_forwarded_ms.insert(to, self.now_ms);
            self.out
                .plain
                .push(Outgoing::To(to, PbftMessage::NewView(nv.clone())));
        }
        Ok(())
    }

    /// Whether `forward_stable_proof(to)` would send anything now.
    fn proof_forward_due(&self, to: ValidatorId) -> bool {
        !self.stable.checkpoints.is_empty()
            && self.proof_forwarded_ms.get(&to).is_none_or(|last| {
                self.now_ms >= last.saturating_add(self.config.retransmit_interval_ms)
            })
    }

    /// Sends the stable checkpoint's signed CHECKPOINT messages to a peer still working
    /// below it (§4.3: the proof lets it move its watermarks and fetch what it lacks).
    /// Rate limited per peer. Callers check first that the message that asked for it is
    /// authentic.
    fn forward_stable_proof(&mut self, to: ValidatorId) {
        if !self.proof_forward_due(to) {
            return;
        }
        self.proof_forwarded_ms.insert(to, self.now_ms);
        for checkpoint in &self.stable.checkpoints {
            if checkpoint.from != to {
                self.out.plain.push(Outgoing::To(
                    to,
                    PbftMessage::Checkpoint(checkpoint.clone()),
                ));
            }
        }
    }

    // ---------------------------------------------------------------- proposing

    fn next_seq(&self) -> u64 {
        let proposed = self
            .slots
            .iter()
            .rev()
            .find(|(_, slot)| slot.durable.view == self.view && slot.durable.pre_prepare.is_some())
            .map_or(0, |(seq, _)| *seq);
        proposed.max(self.last_executed).max(self.stable.seq) + 1
    }

    /// The primary orders pending transactions while the pipeline and the window allow.
    fn maybe_propose(&mut self) {
        if self.status != Status::Normal || !self.is_primary() {
            return;
        }
        loop {
            let seq = self.next_seq();
            if seq > self.last_executed + u64::from(self.config.pipeline_depth)
                || seq > self.high_watermark()
            {
                return;
            }
            let in_flight: BTreeSet<Hash> = self
                .slots
                .range(self.last_executed + 1..)
                .filter(|(_, slot)| slot.durable.view == self.view)
                .filter_map(|(_, slot)| slot.durable.pre_prepare.as_ref())
                .flat_map(|pp| pp.batch.txs.iter().map(Transaction::id))
                .collect();
            let txs: Vec<Transaction> = self
                .pool_order
                .iter()
                .filter(|id| !in_flight.contains(*id))
                .filter_map(|id| self.pool.get(id))
                .take(self.config.max_block_txs as usize)
                .cloned()
                .collect();
            if txs.is_empty() {
                return;
            }
            let batch = Batch {
                proposer: self.config.me,
                view: self.view,
                timestamp_ms: self.now_ms,
                txs,
            };
            let pp =
                PrePrepare::new_signed(&self.config.chain_id, &self.key, self.view, seq, batch);
            self.slot_mut(seq).set_pre_prepare(pp.clone());
            self.send_signed(Outgoing::All(PbftMessage::PrePrepare(pp)));
            self.refresh_progress_timer(false);
        }
    }

    fn on_client_transactions(&mut self, txs: Vec<Transaction>) {
        let fresh: Vec<Transaction> = txs
            .into_iter()
            .filter(|tx| tx.check_structure(&self.config.chain_id).is_ok())
            .filter(|tx| {
                let id = tx.id();
                !self.pool.contains_key(&id) && !self.recent_ids.contains(&id)
            })
            .collect();
        let valid: Vec<Transaction> = match self.verify_txs(&fresh) {
            Ok(()) => fresh,
            Err(bad) => fresh
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !bad.contains(i))
                .map(|(_, tx)| tx)
                .collect(),
        };
        for tx in valid {
            if self.pool.len() >= self.config.max_pending_txs {
                break;
            }
            let id = tx.id();
            if self.pool.insert(id, tx).is_none() {
                self.pool_order.push_back(id);
            }
        }
        self.maybe_propose();
        self.refresh_progress_timer(false);
    }

    // ---------------------------------------------------------------- timers

    fn has_pending_work(&self) -> bool {
        !self.pool.is_empty()
            || self.slots.range(self.last_executed + 1..).any(|(_, slot)| {
                slot.durable.view == self.view && slot.durable.pre_prepare.is_some()
            })
    }

    /// The request timer runs while there is work the primary owes us (§4.4); it restarts on
    /// every execution.
    fn refresh_progress_timer(&mut self, restart: bool) {
        if self.status != Status::Normal {
            return;
        }
        if self.has_pending_work() {
            if restart || !self.timers.contains_key(&PbftTimer::Progress) {
                let deadline = self
                    .now_ms
                    .saturating_add(self.backoff(self.config.progress_timeout_ms));
                self.set_timer(PbftTimer::Progress, deadline);
            }
        } else {
            self.cancel_timer(PbftTimer::Progress);
        }
    }

    fn on_timer(&mut self, timer: PbftTimer) {
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
    fn retransmit(&mut self) {
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

    // ------------------------------------------------------------------- sync

    fn on_synced_block(
        &mut self,
        block: Block,
        certificate: CommitCertificate,
    ) -> Result<(), RejectReason> {
        let next = self.last_executed + 1;
        let height = block.height();
        if height != next {
            return Err(RejectReason::BadSyncedBlock(SyncFault::NotNext {
                height,
                next,
            }));
        }
        if block.check_structure().is_err() || block.header.chain_id != self.config.chain_id {
            return Err(RejectReason::BadSyncedBlock(SyncFault::Malformed));
        }
        if block.header.prev_hash != self.last_hash {
            return Err(RejectReason::BadSyncedBlock(SyncFault::WrongParent));
        }
        let hash = block.hash();
        if certificate.height != height || certificate.block_hash != hash {
            return Err(RejectReason::BadSyncedBlock(SyncFault::CertificateMismatch));
        }
        if verify_commit_certificate(&certificate, &self.config.chain_id, &self.config.validators)
            .is_err()
        {
            return Err(RejectReason::BadSyncedBlock(SyncFault::BadCertificate));
        }
        let last_hash = self.last_hash;
        if let Some(mut slot) = self.slots.remove(&height) {
            if let Some(digest) = slot.digest
                && self.candidate_block(&mut slot, last_hash).map(|b| b.hash()) == Some(hash)
            {
                slot.durable.executed = Some((digest, hash));
            }
            self.slots.insert(height, slot);
        }
        self.commit_block(block, certificate, false);
        self.try_prepare_and_commit(height + 1);
        self.try_execute();
        Ok(())
    }

    fn on_start(&mut self) {
        let deadline = self
            .now_ms
            .saturating_add(self.config.retransmit_interval_ms);
        self.set_timer(PbftTimer::Retransmit, deadline);
        match self.status {
            Status::ViewChanging => {
                if let Some(vc) = &self.own_view_change {
                    self.out
                        .plain
                        .push(Outgoing::All(PbftMessage::ViewChange(vc.clone())));
                }
                self.after_view_change_vote();
            }
            Status::Normal => {
                self.refresh_progress_timer(true);
                self.maybe_propose();
            }
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
        match input {
            Input::Start => self.on_start(),
            Input::Message { from, message } => {
                if let Err(reason) = self.on_message(from, message) {
                    self.out.first.push(Effect::Rejected { from, reason });
                }
            }
            Input::Timer(timer) => self.on_timer(timer),
            Input::ClientTransactions(txs) => self.on_client_transactions(txs),
            Input::Persisted { .. } => {}
            Input::SyncedBlock { block, certificate } => {
                if let Err(reason) = self.on_synced_block(block, certificate) {
                    let from = self.config.me;
                    self.out.first.push(Effect::Rejected { from, reason });
                }
            }
        }
        self.finish()
    }

    fn persisted(&self) -> PbftPersisted {
        let me = self.config.me;
        PbftPersisted {
            view: self.view,
            status: self.status,
            failed_views: self.failed_views,
            stable: self.stable.clone(),
            last_executed: self.last_executed,
            last_hash: self.last_hash,
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

    fn last_committed(&self) -> (u64, Hash) {
        (self.last_executed, self.last_hash)
    }

    fn id(&self) -> ValidatorId {
        self.config.me
    }
}
