//! The checkers, fed on every step from what every node's driver persists and puts out:
//! agreement, no gaps and hash links, commit certificates that verify offline (with the
//! checker's own quorum and signature code, [`crate::quorum`]), validity (only submitted
//! transactions, each at most once per chain), honest nodes never signing two statements for
//! one slot (even across restarts), liveness after the network heals, and the protocol's own
//! invariants ([`crate::protocol::Invariants`]) on every honest sync and message.

use std::collections::BTreeMap;

use aegis_types::{Block, CommitCertificate, Hash, ValidatorSet};

use crate::cluster::{Node, Sim};
use crate::protocol::{Invariants, SimProtocol, World};
use crate::quorum;
use crate::scenario::Scenario;

/// What the protocol invariants see, for `node` (none while it is down).
fn world_of<'a, P: SimProtocol>(
    scenario: &'a Scenario,
    chain_id: &'a str,
    genesis_hash: Hash,
    validators: &'a ValidatorSet,
    node: &'a Node<P>,
    canonical: &'a BTreeMap<u64, Hash>,
) -> Option<World<'a>> {
    let driver = node.driver.as_ref()?;
    Some(World {
        scenario,
        chain_id,
        genesis_hash,
        validators,
        blocks: driver.ledger().blocks(),
        tx_heights: &node.tx_heights,
        canonical,
    })
}

impl<P: SimProtocol> Sim<P> {
    /// An honest node's outgoing message: it never signs two different statements for one
    /// slot, even across restarts; then the protocol's invariants look at it.
    pub(crate) fn check_sent(&mut self, node: usize, message: &P::Message) {
        let mut first = false;
        for statement in P::statements(message, node, self.nodes.len()) {
            if statement.signer != node {
                // Forwarded: the signer's statement, checked when the signer sent it.
                continue;
            }
            let key = (node, statement.kind, statement.epoch, statement.slot);
            match self.statements.get(&key) {
                Some(previous) if *previous != statement.digest => {
                    self.violation(format!(
                        "equivocation: honest node {node} sent two different {} messages for view {}, sequence {}",
                        statement.kind, statement.epoch, statement.slot
                    ));
                }
                Some(_) => {}
                None => {
                    self.statements.insert(key, statement.digest);
                    first = true;
                }
            }
        }
        let found = match world_of(
            &self.scenario,
            &self.chain_id,
            self.genesis_hash,
            &self.validators,
            &self.nodes[node],
            &self.canonical,
        ) {
            Some(world) => self.invariants.sent(&world, node, message, first),
            None => Vec::new(),
        };
        for violation in found {
            self.violation(violation);
        }
    }

    /// An honest node's core after a step, through what it says about itself.
    pub(crate) fn check_core(&mut self, node: usize) {
        if self.nodes[node].behavior.is_some() {
            return;
        }
        let Some(world) = world_of(
            &self.scenario,
            &self.chain_id,
            self.genesis_hash,
            &self.validators,
            &self.nodes[node],
            &self.canonical,
        ) else {
            return;
        };
        let Some(driver) = self.nodes[node].driver.as_ref() else {
            return;
        };
        let found = self
            .invariants
            .stepped(&world, node, driver.core(), driver.next_deadline());
        for violation in found {
            self.violation(violation);
        }
    }

    /// An honest node's durable state, each time its consensus log synced.
    pub(crate) fn check_persisted(&mut self, node: usize) {
        let Some(syncs) = self.nodes[node].driver.as_ref().map(|d| d.log().syncs) else {
            return;
        };
        if self.nodes[node].behavior.is_some() || self.nodes[node].checked_syncs == syncs {
            return;
        }
        self.nodes[node].checked_syncs = syncs;
        let Some(world) = world_of(
            &self.scenario,
            &self.chain_id,
            self.genesis_hash,
            &self.validators,
            &self.nodes[node],
            &self.canonical,
        ) else {
            return;
        };
        let Some(state) = self.nodes[node]
            .driver
            .as_ref()
            .and_then(|driver| driver.log().durable())
        else {
            return;
        };
        let found = self.invariants.persisted(&world, node, state);
        for violation in found {
            self.violation(violation);
        }
    }

    /// A block node `i` handed to its ledger.
    pub(crate) fn check_commit(
        &mut self,
        i: usize,
        block: &Block,
        certificate: &CommitCertificate,
    ) {
        let height = block.height();
        let hash = block.hash();
        let honest = self.nodes[i].behavior.is_none();
        let have = self.nodes[i].checked_height;
        if height <= have {
            // Re-committed after a restart (the ledger refuses a different block).
            if honest && self.canonical.get(&height).is_some_and(|h| *h != hash) {
                self.violation(format!(
                    "agreement: node {i} re-committed a different block at height {height}"
                ));
            }
            return;
        }
        self.nodes[i].checked_height = height;
        if !honest {
            return;
        }
        if height != have + 1 {
            self.violation(format!(
                "gap: node {i} committed height {height} after {have}"
            ));
        }
        let expected_prev = match height.checked_sub(1).filter(|h| *h > 0) {
            None => Some(self.genesis_hash),
            Some(previous) => self.nodes[i].driver.as_ref().and_then(|driver| {
                driver
                    .ledger()
                    .blocks()
                    .get(previous as usize - 1)
                    .map(|(b, _)| b.hash())
            }),
        };
        if expected_prev != Some(block.header.prev_hash) {
            self.violation(format!(
                "chain: node {i}'s block {height} does not link to its block {have}"
            ));
        }
        match self.canonical.get(&height) {
            Some(existing) if *existing != hash => {
                self.violation(format!(
                    "agreement: fork at height {height}: honest nodes committed different blocks (node {i} has {hash:?}, another {existing:?})"
                ));
            }
            Some(_) => {}
            None => {
                self.canonical.insert(height, hash);
            }
        }
        // Every certificate, whoever built it: the memo makes each signature cost one
        // verification per run.
        let checked = if certificate.block_hash != hash || certificate.height != height {
            Err("it names another block".to_owned())
        } else {
            quorum::check_commit_certificate(
                &mut self.memo,
                certificate,
                &self.chain_id,
                &self.validators,
                P::genesis_byzantine(self.validators.len()),
            )
        };
        if let Err(why) = checked {
            self.violation(format!(
                "certificate: node {i}'s block {height} carries a certificate that does not verify: {why}"
            ));
        }
        for tx in &block.txs {
            let id = tx.id();
            if !self.submitted.contains(&id) {
                self.violation(format!(
                    "validity: node {i} committed a transaction nobody submitted at height {height}"
                ));
            }
            if let Some(first) = self.nodes[i].tx_heights.insert(id, height) {
                self.violation(format!(
                    "validity: node {i} committed transaction {id:?} twice (heights {first} and {height})"
                ));
            }
        }
        let found = match world_of(
            &self.scenario,
            &self.chain_id,
            self.genesis_hash,
            &self.validators,
            &self.nodes[i],
            &self.canonical,
        ) {
            Some(world) => self.invariants.committed(&world, i, block, certificate),
            None => Vec::new(),
        };
        for violation in found {
            self.violation(violation);
        }
        if !self.probe.is_empty() {
            self.check_liveness();
        }
    }

    pub(crate) fn check_liveness(&mut self) {
        if self.outcome.liveness_ms.is_some() || self.probe.is_empty() {
            return;
        }
        let done = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].behavior.is_none())
            .all(|i| {
                self.probe
                    .iter()
                    .all(|id| self.nodes[i].tx_heights.contains_key(id))
            });
        if done {
            self.outcome.liveness_ms = Some(self.now_ms);
            if P::CHECK_LEADER_ACKNOWLEDGED {
                self.check_leader_acknowledged();
            }
        }
    }

    /// Every transaction the leader admitted before the probe was submitted is committed on
    /// every honest node once the probe is: the leader proposes its mempool oldest first, so
    /// nothing it acknowledged was silently dropped on the way.
    fn check_leader_acknowledged(&mut self) {
        let leader = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].behavior.is_none())
            .filter_map(|i| Some((i, self.nodes[i].driver.as_ref()?.status())))
            .filter(|(_, status)| status.role == aegis_consensus::Role::Leader)
            .max_by_key(|(_, status)| status.epoch)
            .map(|(i, _)| i);
        let Some(leader) = leader else {
            return;
        };
        let probe_submitted_ms = self.scenario.heal_ms + 100;
        let mut missing = Vec::new();
        for (id, admitted_ms) in &self.nodes[leader].acknowledged {
            if *admitted_ms > probe_submitted_ms {
                continue;
            }
            self.outcome.acknowledged_checked += 1;
            for (i, node) in self.nodes.iter().enumerate() {
                if node.behavior.is_none() && !node.tx_heights.contains_key(id) {
                    missing.push((*id, i));
                }
            }
        }
        for (id, node) in missing.into_iter().take(3) {
            self.violation(format!(
                "acknowledged: transaction {id:?}, admitted by leader node {leader} before the probe, is not committed on node {node} when the probe is"
            ));
        }
    }
}
