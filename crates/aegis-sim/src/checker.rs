//! The checkers, fed from what every node's driver puts out: agreement, no gaps and hash
//! links, commit certificates that verify offline, validity (only submitted transactions, each
//! at most once per chain), honest nodes never signing two statements for one slot (even
//! across restarts), and liveness after the network heals.

use aegis_crypto::verify_commit_certificate;
use aegis_types::{Block, CommitCertificate};

use crate::cluster::Sim;
use crate::protocol::{Invariants, SimProtocol};

impl<P: SimProtocol> Sim<P> {
    /// Honest nodes never sign two different statements for one slot, even across restarts.
    pub(crate) fn record_statement(&mut self, node: usize, message: &P::Message) {
        for statement in P::statements(message) {
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
                }
            }
        }
    }

    /// The protocol's own invariants on honest node `i`'s core after a step.
    pub(crate) fn check_stepped(&mut self, i: usize) {
        if self.nodes[i].behavior.is_some() {
            return;
        }
        let Some(driver) = self.nodes[i].driver.as_ref() else {
            return;
        };
        for violation in self.invariants.stepped(i, driver.core()) {
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
        for violation in self.invariants.committed(i, block, certificate) {
            self.violation(violation);
        }
        if !self.verified_certs.contains(&hash) {
            let ok = certificate.block_hash == hash
                && certificate.height == height
                && verify_commit_certificate(certificate, &self.chain_id, &self.validators).is_ok();
            if ok {
                self.verified_certs.insert(hash);
            } else {
                self.violation(format!(
                    "certificate: node {i}'s block {height} carries a certificate that does not verify"
                ));
            }
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
        }
    }
}
