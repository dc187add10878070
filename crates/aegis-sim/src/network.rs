//! The simulated network: what honest and Byzantine nodes put on the wire, partitions, drops,
//! duplicates, reordering and slow phases, and block sync served by a random peer.

use aegis_consensus::{CoreStatus, Outgoing};
use aegis_types::{Block, CommitCertificate};

use crate::Sim;
use crate::cluster::{Event, SimDriver};
use crate::protocol::{Adversary, SimProtocol, Transmission};
use crate::scenario::{Behavior, SlowPhase};

/// Most blocks one sync reply carries.
const MAX_SYNC_BLOCKS: usize = 16;

impl<P: SimProtocol> Sim<P> {
    pub(crate) fn partitioned(&self, a: usize, b: usize) -> bool {
        if self.healed {
            return false;
        }
        self.scenario.partitions.iter().any(|p| {
            p.at_ms <= self.now_ms
                && self.now_ms < p.heal_ms
                && p.side.contains(&a) != p.side.contains(&b)
        })
    }

    fn slow_phase(&self) -> Option<SlowPhase> {
        self.scenario
            .slow_phases
            .iter()
            .find(|p| p.at_ms <= self.now_ms && self.now_ms < p.until_ms)
            .cloned()
    }

    /// A message a node's driver sent: honest nodes' go to the checkers and the wire,
    /// Byzantine nodes' through their behaviour first.
    pub(crate) fn send(&mut self, from: usize, outgoing: Outgoing<P::Message>) {
        let (targets, message): (Vec<usize>, P::Message) = match outgoing {
            Outgoing::To(to, message) => (vec![usize::from(to.0)], message),
            Outgoing::All(message) => (
                (0..self.nodes.len()).filter(|j| *j != from).collect(),
                message,
            ),
        };
        match self.nodes[from].behavior {
            None => {
                self.check_sent(from, &message);
                for to in targets {
                    self.transmit(from, to, message.clone());
                }
            }
            Some(behavior) => {
                let sent = self.with_adversary(from, |adversary| {
                    P::misbehave(adversary, from, behavior, targets, message)
                });
                for (from, to, message) in sent {
                    self.transmit(from, to, message);
                }
            }
        }
    }

    pub(crate) fn with_adversary<T>(
        &mut self,
        node: usize,
        act: impl FnOnce(&mut Adversary<'_, P::Message>) -> T,
    ) -> T {
        let behaviors: Vec<Option<Behavior>> = self.nodes.iter().map(|n| n.behavior).collect();
        let status: Vec<Option<CoreStatus>> = self
            .nodes
            .iter()
            .map(|n| n.driver.as_ref().map(SimDriver::status))
            .collect();
        let mut memory = std::mem::take(&mut self.nodes[node].memory);
        let result = act(&mut Adversary {
            scenario: &self.scenario,
            keys: &self.keys,
            chain_id: &self.chain_id,
            validators: &self.validators,
            genesis_hash: self.genesis_hash,
            behaviors: &behaviors,
            status: &status,
            rng: &mut self.rng,
            memory: &mut memory,
        });
        self.nodes[node].memory = memory;
        result
    }

    pub(crate) fn byzantine_tick(&mut self, node: usize) {
        let Some(behavior) = self.nodes[node].behavior else {
            return;
        };
        let sent: Vec<Transmission<P::Message>> = self.with_adversary(node, |adversary| {
            P::byzantine_tick(adversary, node, behavior)
        });
        for (from, to, message) in sent {
            self.transmit(from, to, message);
        }
    }

    /// Puts one message on the wire with the scenario's faults.
    pub(crate) fn transmit(&mut self, from: usize, to: usize, message: P::Message) {
        if to >= self.nodes.len() || to == from {
            return;
        }
        if self.partitioned(from, to) {
            self.trace(|| format!("cut {from}->{to} {}", P::describe(&message)));
            return;
        }
        if let Some(phase) = self.slow_phase() {
            // Slow but reliable: every message arrives, late.
            let span = phase.max_delay_ms.saturating_sub(phase.min_delay_ms);
            let delay = phase.min_delay_ms + self.below(span + 1);
            self.schedule(self.now_ms + delay, Event::Deliver { to, from, message });
            return;
        }
        let faults = self.scenario.network.clone();
        if !self.healed && self.chance(faults.drop_per_mille) {
            self.trace(|| format!("drop {from}->{to} {}", P::describe(&message)));
            return;
        }
        let copies = if !self.healed && self.chance(faults.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = faults.min_delay_ms
                + self.below(faults.max_delay_ms.saturating_sub(faults.min_delay_ms) + 1);
            if !self.healed && self.chance(faults.reorder_per_mille) {
                delay += self.below(10 * faults.max_delay_ms + 1);
            }
            self.schedule(
                self.now_ms + delay,
                Event::Deliver {
                    to,
                    from,
                    message: message.clone(),
                },
            );
        }
    }

    pub(crate) fn serve_sync(&mut self, node: usize, from_height: u64) {
        let peers: Vec<usize> = (0..self.nodes.len())
            .filter(|p| {
                *p != node && self.nodes[*p].driver.is_some() && !self.partitioned(node, *p)
            })
            .collect();
        if peers.is_empty() {
            return;
        }
        let peer = peers[self.below(peers.len() as u64) as usize];
        let start = from_height.saturating_sub(1) as usize;
        let Some(driver) = self.nodes[peer].driver.as_ref() else {
            return;
        };
        let mut blocks: Vec<(Block, CommitCertificate)> = driver
            .ledger()
            .blocks()
            .iter()
            .skip(start)
            .take(MAX_SYNC_BLOCKS)
            .cloned()
            .collect();
        if blocks.is_empty() {
            return;
        }
        if self.nodes[peer].behavior == Some(Behavior::InvalidSignatures) {
            for (_, certificate) in &mut blocks {
                for signature in &mut certificate.signatures {
                    signature.signature.0[0] ^= 1;
                }
            }
        }
        let count = blocks.len();
        self.trace(|| format!("sync {peer}->{node} {count} blocks from height {from_height}"));
        let delay = 20 + self.below(100);
        self.schedule(self.now_ms + delay, Event::Synced { node, blocks });
    }
}
