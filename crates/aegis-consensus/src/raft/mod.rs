//! Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", USENIX
//! ATC 2014; PreVote and CheckQuorum from Ongaro's thesis, 2014, §9.6 and §6.2) as a pure
//! state machine behind [`crate::Protocol`]: n >= 2f + 1 validators tolerate f crashed ones.
//!
//! - Leader election (§5.2, [`election`]): randomized election timeouts drawn from
//!   [`crate::Env::entropy`] in [T, 2T); PreVote, so a node cut off from the others does not
//!   raise its term and depose a healthy leader when it returns; CheckQuorum, so a leader that
//!   lost its majority steps down and a follower that hears its leader ignores vote requests
//!   (the lease). The election restriction (§5.4.1): a vote only for an up-to-date log.
//! - Log replication (§5.3, [`replication`] on the leader, [`follower`]): a log entry is a
//!   block the leader cuts from the mempool ([`proposing`]); AppendEntries carries blocks, the
//!   consistency check uses (index, term) = (height, header `view`), and blocks are
//!   hash-chained, so matching entries also match by hash.
//! - Commitment and certificates (§5.3, §5.4.2): a follower signs a `CommitVote` (height,
//!   term as `view`, block hash) for every entry it holds durably, once its log ends in an
//!   entry of the current term; the leader commits a block when a majority of such votes
//!   (its own included once its log is durable) make its commit certificate, exactly what
//!   `aegis verify` and sync check for PBFT. An entry of an earlier term is thereby committed
//!   only through an entry of the current term (§5.4.2): a new leader with entries it cannot
//!   prove committed appends an empty block of its own term first (§8).
//! - Durability ([`journal`]): term, vote and entries are records of the consensus log, and
//!   every message that depends on them leaves only once they are durable (the driver's
//!   persist-then-send). The leader learns that its own entries are durable from
//!   [`crate::Input::Persisted`]. Committed blocks leave the log for the ledger.
//! - Catching up ([`sync`]): committed blocks with their certificates, from peers' ledgers,
//!   stand in for InstallSnapshot (§7).

pub mod config;
pub mod messages;

mod election;
mod follower;
mod journal;
mod log;
mod progress;
mod proposing;
mod reject;
mod replication;
mod state;
mod sync;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use aegis_crypto::SecretKey;
use aegis_types::{Hash, Signature, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

pub use config::{ConfigError, RaftConfig};
pub use messages::{
    AppendEntries, AppendResponse, CatchUp, RaftMessage, RequestVote, VoteResponse, VoteSignature,
};
pub use progress::Progress;
pub use reject::{EntryFault, RejectReason, SyncFault};
pub use state::{CommittedTip, RaftPersisted, RaftRecord};

use crate::verifier::{Ed25519, SignatureCheck};
use crate::{CoreStatus, Effect, Env, Input, Outgoing, Protocol, Role};
use journal::Journal;
use log::RaftLog;

/// Raft's timers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub enum RaftTimer {
    /// A follower or candidate heard from no leader for a randomized election timeout (§5.2).
    Election,
    /// The leader's heartbeat: AppendEntries to every follower (§5.2), resending what was lost.
    Heartbeat,
    /// The leader checks that a majority answered within the last election timeout (§6.2).
    CheckQuorum,
}

/// The part a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RaftRole {
    Follower,
    /// Asking whether it could win an election, without raising its term (thesis §9.6).
    PreCandidate,
    Candidate,
    Leader,
}

pub type RaftEffect = Effect<RaftMessage, RaftRecord, RaftTimer, RejectReason>;
pub type RaftInput = Input<RaftMessage, RaftTimer>;

/// Why a core cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RaftError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the secret key does not belong to validator {0}")]
    KeyMismatch(ValidatorId),
    #[error("the restored log does not chain to its committed tip")]
    BrokenLog,
}

/// Effects being gathered during one step.
#[derive(Debug, Default)]
struct Outbox {
    /// CommitBlock, Rejected and notices: carried out first.
    first: Vec<RaftEffect>,
    /// Messages that leave only once this step's records (and all before) are durable.
    durable: Vec<Outgoing<RaftMessage>>,
    /// Messages that promise nothing durable (pre-votes).
    plain: Vec<Outgoing<RaftMessage>>,
    /// Timers, sync requests and proposal requests.
    last: Vec<RaftEffect>,
}

/// One Raft node.
#[derive(Debug)]
pub struct Raft {
    config: RaftConfig,
    key: SecretKey,
    verifier: Arc<dyn SignatureCheck>,
    now_ms: u64,
    entropy: u64,

    // Durable state (see `RaftPersisted`).
    term: u64,
    voted_for: Option<ValidatorId>,
    log: RaftLog,
    recent_txs: VecDeque<(u64, Vec<Hash>)>,
    recent_ids: BTreeSet<Hash>,
    /// The sequence of the last `Effect::Persist`, and of the last one with records (what a
    /// replayed log says: persists with messages only leave nothing in the log).
    persist_sequence: u64,
    logged_sequence: u64,
    /// The last persist with records that must be synced, and the last one the driver said
    /// is durable.
    sync_wanted_sequence: u64,
    acknowledged_sequence: u64,
    /// What the records handed out so far describe.
    journal: Journal,

    // Volatile state.
    role: RaftRole,
    leader: Option<ValidatorId>,
    /// (Pre-)votes of the current campaign, this node's own included.
    votes: BTreeMap<ValidatorId, bool>,
    /// The leader's view of each follower.
    progress: BTreeMap<ValidatorId, Progress>,
    /// The leader's commit votes of the current term, by height above the committed one.
    commit_votes: BTreeMap<u64, BTreeMap<ValidatorId, Signature>>,
    /// This node's own commit votes of the current term (Ed25519 is deterministic: a memo,
    /// not a promise), by height: the block hash and the signature.
    signed_votes: BTreeMap<u64, (Hash, Signature)>,
    /// The log is durable up to this index (the driver said so through `Persisted`).
    durable_index: u64,
    /// (persist sequence, last index then) for persists not yet known to be durable.
    persist_marks: VecDeque<(u64, u64)>,
    /// Followers heard from since the last CheckQuorum (§6.2).
    recent_active: BTreeSet<ValidatorId>,
    /// When this follower last heard from its leader (the lease of §9.6).
    leader_heard_ms: Option<u64>,
    /// Ids of transactions the mempool holds and no committed block has; at most
    /// `max_pending_txs`.
    pending: BTreeSet<Hash>,
    /// The driver answered a proposal request with nothing: ask again only after new
    /// transactions, a commit or a new term.
    proposal_exhausted: bool,
    /// A batch was asked for in this step (reset at every step).
    proposal_asked: bool,
    /// New certificates wait for the AppendEntries of the block asked for (the driver answers
    /// a proposal request at once), or go out on their own if none comes.
    certificates_owed: bool,
    timers: BTreeMap<RaftTimer, u64>,
    /// Rate limit of sync requests, and the height they start from.
    last_sync_request: Option<(u64, u64)>,
    /// The highest committed height peers spoke of (a hint for `/status`, never protocol
    /// state).
    network_height: u64,

    out: Outbox,
}

impl Raft {
    /// A node starting from the genesis.
    pub fn new(config: RaftConfig, key: SecretKey) -> Result<Raft, RaftError> {
        let state = RaftPersisted::genesis(config.genesis_hash);
        Raft::restore(config, key, state)
    }

    /// A node restarted from the state its consensus log replays to.
    pub fn restore(
        config: RaftConfig,
        key: SecretKey,
        state: RaftPersisted,
    ) -> Result<Raft, RaftError> {
        config.validate()?;
        let me = config.me;
        if config.validators.get(me).map(|v| v.public_key) != Some(key.public_key()) {
            return Err(RaftError::KeyMismatch(me));
        }
        let log = RaftLog::new(state.committed, state.entries);
        if !log.is_chained() {
            return Err(RaftError::BrokenLog);
        }
        let last_index = log.last_index();
        let mut raft = Raft {
            config,
            key,
            verifier: Arc::new(Ed25519),
            now_ms: 0,
            entropy: 0,
            term: state.term,
            voted_for: state.voted_for,
            log,
            recent_ids: state
                .recent_txs
                .iter()
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect(),
            recent_txs: state.recent_txs.into_iter().collect(),
            persist_sequence: state.persist_sequence,
            logged_sequence: state.persist_sequence,
            // Everything replayed is durable.
            sync_wanted_sequence: state.persist_sequence,
            acknowledged_sequence: state.persist_sequence,
            journal: Journal::default(),
            role: RaftRole::Follower,
            leader: None,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            commit_votes: BTreeMap::new(),
            signed_votes: BTreeMap::new(),
            // Everything a restarted node replayed is durable.
            durable_index: last_index,
            persist_marks: VecDeque::new(),
            recent_active: BTreeSet::new(),
            leader_heard_ms: None,
            pending: BTreeSet::new(),
            proposal_exhausted: false,
            proposal_asked: false,
            certificates_owed: false,
            timers: BTreeMap::new(),
            last_sync_request: None,
            network_height: 0,
            out: Outbox::default(),
        };
        raft.journal = Journal::of(&raft);
        Ok(raft)
    }

    /// Replaces the signature checker (same answers, maybe faster or shared).
    pub fn with_verifier(mut self, verifier: Arc<dyn SignatureCheck>) -> Raft {
        self.verifier = verifier;
        self
    }

    pub fn config(&self) -> &RaftConfig {
        &self.config
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn voted_for(&self) -> Option<ValidatorId> {
        self.voted_for
    }

    pub fn role(&self) -> RaftRole {
        self.role
    }

    /// The leader of the current term, when known.
    pub fn leader(&self) -> Option<ValidatorId> {
        self.leader
    }

    /// Index and term of the last log entry.
    pub fn last_entry(&self) -> (u64, u64) {
        (self.log.last_index(), self.log.last_term())
    }

    /// (index, term, block hash) of every uncommitted entry, oldest first.
    pub fn uncommitted_entries(&self) -> Vec<(u64, u64, Hash)> {
        self.log
            .entries()
            .map(|e| (e.index(), e.term(), e.hash))
            .collect()
    }

    /// The term of the entry at `index`, when the log still knows it.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term_at(index)
    }

    /// The last committed block.
    pub fn committed(&self) -> CommittedTip {
        self.log.committed()
    }

    /// The highest index of the log known to be durable.
    pub fn durable_index(&self) -> u64 {
        self.durable_index
    }

    /// The leader's view of `follower`.
    pub fn progress(&self, follower: ValidatorId) -> Option<Progress> {
        self.progress.get(&follower).copied()
    }

    /// The highest committed height peers spoke of, or this node's own when higher: how far
    /// the network is, for `/status` and readiness.
    pub fn network_height(&self) -> u64 {
        self.network_height.max(self.log.committed().height)
    }

    /// Ids of pending transactions the core tracks.
    pub fn pending_txs(&self) -> usize {
        self.pending.len()
    }

    /// When `timer` fires next, if it is armed.
    pub fn timer_deadline(&self, timer: RaftTimer) -> Option<u64> {
        self.timers.get(&timer).copied()
    }

    /// Everything a restart needs, as it is now.
    pub fn persisted(&self) -> RaftPersisted {
        let committed = self.log.committed();
        RaftPersisted {
            term: self.term,
            voted_for: self.voted_for,
            committed,
            recent_txs: self.recent_txs.iter().cloned().collect(),
            entries: self.log.entries().map(|e| e.block.clone()).collect(),
            persist_sequence: self.logged_sequence,
        }
    }

    /// The protocol state as text, for tests that compare it before and after an input.
    pub fn state_fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.persisted(),
            self.role,
            self.leader,
            self.votes,
            self.progress,
            self.commit_votes.keys().collect::<Vec<_>>(),
            self.pending,
            self.timers
        )
    }

    fn is_leader(&self) -> bool {
        self.role == RaftRole::Leader
    }

    fn set_timer(&mut self, timer: RaftTimer, deadline_ms: u64) {
        self.timers.insert(timer, deadline_ms);
        self.out.last.push(Effect::SetTimer { timer, deadline_ms });
    }

    fn cancel_timer(&mut self, timer: RaftTimer) {
        if self.timers.remove(&timer).is_some() {
            self.out.last.push(Effect::CancelTimer { timer });
        }
    }

    fn send_durable(&mut self, to: ValidatorId, message: RaftMessage) {
        self.out.durable.push(Outgoing::To(to, message));
    }

    fn reject(&mut self, from: Option<ValidatorId>, reason: RejectReason) {
        self.out.first.push(Effect::Rejected { from, reason });
    }

    fn on_message(&mut self, from: ValidatorId, message: RaftMessage) {
        if from == self.config.me {
            return self.reject(Some(from), RejectReason::FromSelf);
        }
        if self.config.validators.get(from).is_none() {
            return self.reject(Some(from), RejectReason::UnknownSender);
        }
        let committed = match &message {
            RaftMessage::Append(m) => m.leader_commit,
            RaftMessage::AppendResponse(m) => m.committed,
            RaftMessage::CatchUp(m) => m.committed,
            RaftMessage::RequestVote(_) | RaftMessage::Vote(_) => 0,
        };
        self.network_height = self.network_height.max(committed);
        match message {
            RaftMessage::RequestVote(m) => self.on_request_vote(from, m),
            RaftMessage::Vote(m) => self.on_vote(from, m),
            RaftMessage::Append(m) => self.on_append(from, m),
            RaftMessage::AppendResponse(m) => self.on_append_response(from, m),
            RaftMessage::CatchUp(m) => self.on_catch_up(from, m),
        }
    }

    fn on_timer(&mut self, timer: RaftTimer) {
        match self.timers.get(&timer) {
            Some(deadline) if *deadline <= self.now_ms => {
                self.timers.remove(&timer);
            }
            // Not armed, or fired early: ignore.
            _ => return,
        }
        match timer {
            RaftTimer::Election => self.on_election_timeout(),
            RaftTimer::Heartbeat => self.on_heartbeat(),
            RaftTimer::CheckQuorum => self.on_check_quorum(),
        }
    }

    /// The driver made every persist up to `up_to` durable: so is the log as it was then.
    fn on_persisted(&mut self, up_to: u64) {
        self.acknowledged_sequence = self.acknowledged_sequence.max(up_to);
        while let Some(&(sequence, last_index)) = self.persist_marks.front() {
            if sequence > up_to {
                break;
            }
            self.durable_index = self.durable_index.max(last_index);
            self.persist_marks.pop_front();
        }
        if self.is_leader() {
            self.try_commit();
        }
    }

    /// Gathers the step's effects: notices first, then the records of what changed with the
    /// messages that wait for them, then the rest.
    fn finish(&mut self) -> Vec<RaftEffect> {
        self.check_invariants();
        let out = std::mem::take(&mut self.out);
        let mut effects = out.first;
        let mut journal = std::mem::take(&mut self.journal);
        let committed_before = journal.committed_height();
        let records = journal.diff(self);
        self.journal = journal;
        // Term, vote and entries are synced before anything that depends on them, even when
        // no message waits (a lone leader commits on its own durability); a commit record
        // alone can wait, the ledger holds the block.
        let must_sync = records
            .iter()
            .any(|r| !matches!(r, RaftRecord::Committed { .. }));
        // Messages wait for a sync only when something they may depend on is not durable
        // yet: this step's term, vote or entries, this step's commits (an answer says the
        // committed height, and the match may reach entries that went straight to the
        // ledger: they wait for the ledger's flush, or a crash loses what the leader was
        // told), or an earlier step's the driver has not acknowledged. Otherwise they leave
        // at once (a heartbeat, a certificate, an answer that vouches only for synced
        // entries).
        let committed_now = records
            .iter()
            .any(|r| matches!(r, RaftRecord::Committed { .. }));
        let mut durable = out.durable;
        let mut plain = out.plain;
        if !must_sync && !committed_now && self.sync_wanted_sequence <= self.acknowledged_sequence {
            plain.append(&mut durable);
        }
        if !records.is_empty() || !durable.is_empty() {
            self.persist_sequence += 1;
            if !records.is_empty() {
                self.logged_sequence = self.persist_sequence;
            }
            if must_sync {
                self.sync_wanted_sequence = self.persist_sequence;
            }
            let log_changed = records
                .iter()
                .any(|r| matches!(r, RaftRecord::Append(_) | RaftRecord::Truncate { .. }));
            if log_changed {
                if self.persist_marks.len() >= config::MAX_PERSIST_MARKS {
                    self.persist_marks.pop_front();
                }
                self.persist_marks
                    .push_back((self.persist_sequence, self.log.last_index()));
            }
            // The log may be rewritten from a snapshot each time the committed height passes
            // a checkpoint: the state shrank, as at PBFT's stable checkpoints.
            let interval = self.config.compaction_interval_blocks;
            let compact = self.log.committed().height / interval > committed_before / interval;
            effects.push(Effect::Persist {
                sequence: self.persist_sequence,
                records,
                must_sync,
                messages: durable,
                compact,
            });
        }
        effects.extend(plain.into_iter().map(Effect::Send));
        effects.extend(out.last);
        effects
    }

    /// What holds after every step (TigerBeetle's assertions on invariants). A broken
    /// invariant is a bug, never bad input.
    fn check_invariants(&self) {
        debug_assert!(self.log.is_chained(), "the log chains to its committed tip");
        assert!(
            self.log.last_term() <= self.term,
            "an entry of term {} above the current term {}",
            self.log.last_term(),
            self.term
        );
        assert!(self.log.uncommitted() <= config::MAX_UNCOMMITTED_ENTRIES);
        assert!(self.pending.len() <= self.config.max_pending_txs);
        assert!(self.persist_marks.len() <= config::MAX_PERSIST_MARKS);
        assert!(
            self.is_leader() || self.progress.is_empty() && self.commit_votes.is_empty(),
            "only a leader tracks followers and commit votes"
        );
        assert!(
            self.role != RaftRole::Leader || self.voted_for == Some(self.config.me),
            "a leader voted for itself in its term"
        );
        debug_assert!(
            self.commit_votes
                .keys()
                .all(|h| *h > self.log.committed().height && *h <= self.log.last_index())
        );
        debug_assert!(
            self.signed_votes
                .keys()
                .all(|h| *h > self.log.committed().height && *h <= self.log.last_index()),
            "the votes this node signed are for uncommitted entries of its log"
        );
    }
}

impl Protocol for Raft {
    type Message = RaftMessage;
    type Persisted = RaftPersisted;
    type Timer = RaftTimer;
    type Reject = RejectReason;

    const ACKNOWLEDGE_PERSISTED: bool = true;

    fn step(&mut self, env: Env, input: RaftInput) -> Vec<RaftEffect> {
        // Time never runs backwards inside the core, even if the driver's clock does.
        self.now_ms = self.now_ms.max(env.now_ms);
        self.entropy = env.entropy;
        if self.certificates_owed && !matches!(input, Input::Proposal(_)) {
            // The proposal that was to carry them did not come first.
            self.send_owed_certificates();
        }
        self.proposal_asked = false;
        match input {
            Input::Start => self.on_start(),
            Input::Message { from, message } => self.on_message(from, message),
            Input::Timer(timer) => self.on_timer(timer),
            Input::TransactionsPending(ids) => self.on_transactions_pending(ids),
            Input::Proposal(txs) => self.on_proposal(txs),
            Input::Persisted { up_to } => self.on_persisted(up_to),
            Input::SyncedBlock { block, certificate } => {
                if let Err(reason) = self.on_synced_block(block, certificate) {
                    self.reject(None, reason);
                }
            }
        }
        self.finish()
    }

    fn snapshot(&self) -> RaftPersisted {
        self.persisted()
    }

    fn status(&self) -> CoreStatus {
        let committed = self.log.committed();
        let role = match self.role {
            RaftRole::Leader => Role::Leader,
            RaftRole::Follower => Role::Follower,
            RaftRole::PreCandidate | RaftRole::Candidate => Role::Electing,
        };
        CoreStatus {
            height: committed.height,
            last_hash: committed.hash,
            epoch: self.term,
            leader: self.leader,
            role,
            pending: self.pending.len(),
        }
    }

    fn id(&self) -> ValidatorId {
        self.config.me
    }
}
