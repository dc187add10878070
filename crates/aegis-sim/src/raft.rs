//! Raft in the simulator: how a core is built from the scenario, what its messages promise,
//! and Raft's own invariants (Ongaro & Ousterhout, USENIX ATC 2014, figure 3), checked on
//! every step of every node:
//!
//! - Election Safety: at most one leader per term.
//! - Log Matching: two entries with the same index and term hold the same block (blocks are
//!   hash-chained, so the logs are then identical up to that index).
//! - Leader Completeness: a block committed in term U is in the log (or ledger) of every
//!   leader of a term after U. The term a block was committed in is its certificate's `view`:
//!   the commit votes of the leader's current term (§5.4.2).
//!
//! State Machine Safety is the common agreement checker, and every other protocol-neutral
//! checker runs too (certificates with the checker's own quorum arithmetic at f = 0, a
//! majority; one statement per slot; the consensus log's replay; liveness). Raft tolerates
//! crashes only: a random Raft run has no Byzantine node, every other fault stays, including
//! crashes aimed at a leader's new entry and at a vote (its own as a candidate, or one
//! granted to another) and the slow phases. The planted bug
//! [`crate::Scenario::forget_vote_on_restart`] makes a restarted node forget whom it voted
//! for; the vote checker (one granted vote per node and term, even across restarts) and
//! Election Safety catch it.

use std::collections::BTreeMap;

use aegis_consensus::raft::{Raft, RaftConfig, RaftMessage, RaftPersisted, RaftRecord, RaftRole};
use aegis_types::{Block, CommitCertificate, ConsensusAlgorithm, Hash, ValidatorId};

use crate::protocol::{
    Adversary, CoreSetup, Invariants, Moment, SimProtocol, Statement, Transmission, World,
};
use crate::scenario::{Behavior, Scenario};

/// The heartbeat interval is this fraction of the scenario's message timeout (500 ms by
/// default: a heartbeat every 100 ms), the election timeout is its progress timeout.
const HEARTBEATS_PER_MESSAGE_TIMEOUT: u64 = 5;

impl SimProtocol for Raft {
    const ALGORITHM: ConsensusAlgorithm = ConsensusAlgorithm::Raft;
    const MIN_VALIDATORS: usize = 3;

    type Invariants = RaftInvariants;

    const CHECK_LEADER_ACKNOWLEDGED: bool = true;

    fn genesis_byzantine(_validators: usize) -> usize {
        0
    }

    fn random_byzantine(_validators: usize) -> usize {
        0
    }

    /// Raft's timing requirement (§5.6): broadcast time well below the election timeout. A
    /// slow phase that PBFT gets (one-way delays past the 500 ms message timeout) would leave
    /// no time for an election: pre-vote and vote take two round trips. Raft's slow phases keep
    /// their times but their delays land between the heartbeat interval and a fifth of the
    /// election timeout (110 to 200 ms by default): heartbeats overtake each other and
    /// followers hear their leader late, yet a leader can still be elected and commit.
    fn fit_random(scenario: &mut Scenario) {
        let heartbeat_ms = (scenario.message_timeout_ms / HEARTBEATS_PER_MESSAGE_TIMEOUT).max(1);
        let low = heartbeat_ms + 10;
        let high = (scenario.progress_timeout_ms / 5).max(low + 1);
        for phase in &mut scenario.slow_phases {
            let spread = phase.max_delay_ms.saturating_sub(phase.min_delay_ms);
            phase.min_delay_ms = low + phase.min_delay_ms % (high - low);
            phase.max_delay_ms = (phase.min_delay_ms + spread).min(high);
        }
    }

    fn build(setup: CoreSetup<'_>, restored: Option<RaftPersisted>) -> Result<Raft, String> {
        let scenario = setup.scenario;
        let heartbeat_ms = (scenario.message_timeout_ms / HEARTBEATS_PER_MESSAGE_TIMEOUT).max(1);
        let config = RaftConfig::from_genesis(
            setup.genesis,
            ValidatorId(setup.node as u16),
            heartbeat_ms,
            scenario.progress_timeout_ms.max(heartbeat_ms + 1),
        )
        .map_err(|error| error.to_string())?;
        let core = match restored {
            Some(mut state) => {
                if scenario.forget_vote_on_restart {
                    state.voted_for = None;
                }
                Raft::restore(config, setup.key, state)
            }
            None => Raft::new(config, setup.key),
        }
        .map_err(|error| error.to_string())?;
        Ok(core.with_verifier(setup.verifier))
    }

    /// Raft messages are not forwarded: every statement is its sender's.
    fn statements(message: &RaftMessage, sender: usize, _validators: usize) -> Vec<Statement> {
        match message {
            // One vote per term (§5.2), even across restarts: the vote names its candidate.
            RaftMessage::Vote(vote) if vote.granted && !vote.pre_vote => vec![Statement {
                signer: sender,
                kind: "vote",
                epoch: vote.term,
                slot: 0,
                digest: Hash::digest(&vote.candidate.0.to_le_bytes()),
            }],
            // One commit vote per height and term. Ed25519 signs deterministically, so two
            // signatures differ exactly when the blocks they vouch for do.
            RaftMessage::AppendResponse(response) => response
                .votes
                .iter()
                .map(|vote| Statement {
                    signer: sender,
                    kind: "commit-vote",
                    epoch: response.term,
                    slot: vote.height,
                    digest: Hash::digest(&vote.signature.0),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn moment(&self, node: usize, record: &RaftRecord) -> Option<Moment> {
        match record {
            // A leader appends only its own entries.
            RaftRecord::Append(_) if self.role() == RaftRole::Leader => Some(Moment::Proposing),
            RaftRecord::HardState {
                voted_for: Some(candidate),
                ..
            } => Some(if usize::from(candidate.0) == node {
                Moment::LeavingEpoch
            } else {
                Moment::EnteringEpoch
            }),
            _ => None,
        }
    }

    fn describe(message: &RaftMessage) -> String {
        let short = |hash: &Hash| format!("{:02x}{:02x}{:02x}", hash.0[0], hash.0[1], hash.0[2]);
        match message {
            RaftMessage::RequestVote(m) => format!(
                "{} t{} last ({}, t{})",
                if m.pre_vote {
                    "PRE-VOTE"
                } else {
                    "REQUEST-VOTE"
                },
                m.term,
                m.last_index,
                m.last_term
            ),
            RaftMessage::Vote(m) => format!(
                "{} t{} for {} {}",
                if m.pre_vote { "PRE-VOTE-REPLY" } else { "VOTE" },
                m.term,
                m.candidate.0,
                if m.granted { "granted" } else { "refused" }
            ),
            RaftMessage::Append(m) => format!(
                "APPEND t{} prev ({}, t{}) entries {:?} commit {} ({} certificates)",
                m.term,
                m.prev_index,
                m.prev_term,
                m.entries
                    .iter()
                    .map(|b| (b.height(), short(&b.hash())))
                    .collect::<Vec<_>>(),
                m.leader_commit,
                m.certificates.len()
            ),
            RaftMessage::AppendResponse(m) => format!(
                "APPEND-REPLY t{} {} index {} hint {} committed {} votes {:?}",
                m.term,
                if m.success { "ok" } else { "refused" },
                m.index,
                m.hint,
                m.committed,
                m.votes.iter().map(|v| v.height).collect::<Vec<_>>()
            ),
            RaftMessage::CatchUp(m) => format!("CATCH-UP t{} committed {}", m.term, m.committed),
        }
    }

    fn stable_height(&self) -> u64 {
        self.committed().height
    }

    fn durable_summary(state: &RaftPersisted) -> (u64, u64) {
        (state.term, state.committed.height)
    }

    fn corrupt_signature(message: &mut RaftMessage) {
        match message {
            RaftMessage::AppendResponse(response) => {
                if let Some(vote) = response.votes.first_mut() {
                    vote.signature.0[0] ^= 0x01;
                }
            }
            RaftMessage::Append(append) => {
                if let Some(signature) = append
                    .certificates
                    .first_mut()
                    .and_then(|c| c.signatures.first_mut())
                {
                    signature.signature.0[0] ^= 0x01;
                }
            }
            RaftMessage::RequestVote(_) | RaftMessage::Vote(_) | RaftMessage::CatchUp(_) => {}
        }
    }

    /// Raft's Byzantine nodes (hand-built scenarios only) remember nothing.
    fn observe(
        _adversary: &mut Adversary<'_, RaftMessage>,
        _node: usize,
        _behavior: Behavior,
        _message: &RaftMessage,
    ) {
    }

    /// Raft runs have no Byzantine node; a hand-built scenario that names one gets a node
    /// that only stays silent or passes its messages on unchanged.
    fn misbehave(
        _adversary: &mut Adversary<'_, RaftMessage>,
        from: usize,
        behavior: Behavior,
        targets: Vec<usize>,
        message: RaftMessage,
    ) -> Vec<Transmission<RaftMessage>> {
        if behavior == Behavior::Silent {
            return Vec::new();
        }
        targets
            .into_iter()
            .map(|to| (from, to, message.clone()))
            .collect()
    }

    fn byzantine_tick(
        _adversary: &mut Adversary<'_, RaftMessage>,
        _node: usize,
        _behavior: Behavior,
    ) -> Vec<Transmission<RaftMessage>> {
        Vec::new()
    }
}

/// Raft's invariants over a whole run (see the module documentation).
#[derive(Debug, Default)]
pub struct RaftInvariants {
    /// The node that led each term.
    leaders: BTreeMap<u64, usize>,
    /// The block of every (index, term) any node's log held.
    entries: BTreeMap<(u64, u64), Hash>,
    /// Every committed block: height -> (the term it was committed in, its hash).
    committed: BTreeMap<u64, (u64, Hash)>,
}

impl RaftInvariants {
    fn log_matching(&mut self, node: usize, index: u64, term: u64, hash: Hash) -> Option<String> {
        match self.entries.get(&(index, term)) {
            Some(known) if *known != hash => Some(format!(
                "log matching: node {node} holds another block at index {index} of term {term} \
                 ({hash:?}, elsewhere {known:?})"
            )),
            Some(_) => None,
            None => {
                self.entries.insert((index, term), hash);
                None
            }
        }
    }
}

impl Invariants<Raft> for RaftInvariants {
    fn stepped(
        &mut self,
        _world: &World<'_>,
        node: usize,
        core: &Raft,
        _next_deadline: Option<u64>,
    ) -> Vec<String> {
        let mut violations = Vec::new();
        let term = core.term();
        let tip = core.committed();
        let uncommitted = core.uncommitted_entries();
        if tip.height > 0 {
            violations.extend(self.log_matching(node, tip.height, tip.term, tip.hash));
        }
        for (index, entry_term, hash) in &uncommitted {
            violations.extend(self.log_matching(node, *index, *entry_term, *hash));
        }
        if core.role() != RaftRole::Leader {
            return violations;
        }
        match self.leaders.get(&term) {
            Some(leader) if *leader != node => violations.push(format!(
                "election safety: nodes {leader} and {node} both lead term {term}"
            )),
            Some(_) => {}
            None => {
                self.leaders.insert(term, node);
            }
        }
        // Leader Completeness: every block committed in an earlier term is in this leader's
        // log (the ledger below `tip`, the common agreement checker covers).
        for (height, (commit_term, hash)) in self.committed.range(tip.height + 1..) {
            if *commit_term >= term {
                continue;
            }
            let held = uncommitted
                .iter()
                .find(|(index, _, _)| index == height)
                .map(|(_, _, h)| *h);
            if held != Some(*hash) {
                violations.push(format!(
                    "leader completeness: node {node} leads term {term} without block {height} \
                     committed in term {commit_term}"
                ));
            }
        }
        violations
    }

    fn committed(
        &mut self,
        _world: &World<'_>,
        node: usize,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Vec<String> {
        let height = block.height();
        let hash = block.hash();
        let mut violations = Vec::new();
        violations.extend(self.log_matching(node, height, block.header.view, hash));
        // The first certificate seen is the commit (a later one for the same block, from
        // another leader's votes, names a later term).
        let entry = self
            .committed
            .entry(height)
            .or_insert((certificate.view, hash));
        entry.0 = entry.0.min(certificate.view);
        violations
    }
}
