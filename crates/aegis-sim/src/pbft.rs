//! PBFT in the simulator: how a core is built from the scenario, what its messages promise,
//! and how its Byzantine nodes misbehave (equivocating primary, conflicting votes, bad
//! signatures, replays, floods, colluders).

use aegis_consensus::pbft::{
    Batch, Checkpoint, Commit, Pbft, PbftConfig, PbftMessage, PbftPersisted, PrePrepare, Prepare,
};
use aegis_types::{Hash, PublicKey, ValidatorId};

use crate::protocol::{Adversary, CoreSetup, NoInvariants, SimProtocol, Statement, Transmission};
use crate::scenario::Behavior;

/// Junk messages a flooding node sends per tick.
const FLOOD_PER_TICK: usize = 12;

impl SimProtocol for Pbft {
    const ALGORITHM: aegis_types::ConsensusAlgorithm = aegis_types::ConsensusAlgorithm::Pbft;
    const MIN_VALIDATORS: usize = 4;

    type Invariants = NoInvariants;

    fn genesis_byzantine(validators: usize) -> usize {
        validators.saturating_sub(1) / 3
    }

    fn random_byzantine(validators: usize) -> usize {
        validators.saturating_sub(1) / 3
    }

    fn build(setup: CoreSetup<'_>, restored: Option<PbftPersisted>) -> Result<Pbft, String> {
        let scenario = setup.scenario;
        let mut config = PbftConfig::from_genesis(
            setup.genesis,
            ValidatorId(setup.node as u16),
            scenario.progress_timeout_ms,
            scenario.message_timeout_ms,
        )
        .map_err(|error| error.to_string())?;
        config.retransmit_interval_ms = scenario.message_timeout_ms / 2;
        let core = match restored {
            Some(state) => Pbft::restore(config, setup.key, state),
            None => Pbft::new(config, setup.key),
        }
        .map_err(|error| error.to_string())?;
        Ok(core.with_verifier(setup.verifier))
    }

    fn statements(message: &PbftMessage) -> Vec<Statement> {
        let (kind, epoch, slot, digest) = match message {
            // A NEW-VIEW re-proposes batches of older views under the new primary's signature;
            // only the primary's own batches are its statements.
            PbftMessage::PrePrepare(pp) if pp.batch.view == pp.view => {
                ("pre-prepare", pp.view, pp.seq, pp.batch.digest())
            }
            PbftMessage::Prepare(p) => ("prepare", p.view, p.seq, p.digest),
            PbftMessage::Commit(c) => ("commit", c.view, c.seq, c.block_hash),
            PbftMessage::Checkpoint(c) => ("checkpoint", 0, c.seq, c.block_hash),
            PbftMessage::NewView(nv) => (
                "new-view",
                nv.view,
                0,
                Hash::digest(&aegis_types::encoding::encode(nv)),
            ),
            _ => return Vec::new(),
        };
        vec![Statement {
            kind,
            epoch,
            slot,
            digest,
        }]
    }

    fn stable_height(&self) -> u64 {
        self.stable_checkpoint()
    }

    fn durable_summary(state: &PbftPersisted) -> (u64, u64) {
        (state.view, state.stable.seq)
    }

    fn corrupt_signature(message: &mut PbftMessage) {
        let signature = match message {
            PbftMessage::PrePrepare(m) => &mut m.signature,
            PbftMessage::Prepare(m) => &mut m.signature,
            PbftMessage::Commit(m) => &mut m.signature,
            PbftMessage::Checkpoint(m) => &mut m.signature,
            PbftMessage::ViewChange(m) => &mut m.signature,
            PbftMessage::NewView(m) => &mut m.signature,
        };
        signature.0[0] ^= 0x01;
    }

    fn misbehave(
        adversary: &mut Adversary<'_, PbftMessage>,
        from: usize,
        behavior: Behavior,
        targets: Vec<usize>,
        message: PbftMessage,
    ) -> Vec<Transmission<PbftMessage>> {
        let all = |message: &PbftMessage| -> Vec<Transmission<PbftMessage>> {
            targets
                .iter()
                .map(|to| (from, *to, message.clone()))
                .collect()
        };
        match behavior {
            Behavior::Silent => Vec::new(),
            Behavior::Replay | Behavior::Flood => {
                if behavior == Behavior::Replay {
                    adversary.remember(message.clone());
                }
                all(&message)
            }
            Behavior::InvalidSignatures => {
                let mut out = Vec::new();
                for to in &targets {
                    let mut copy = message.clone();
                    if adversary.chance(500) {
                        Pbft::corrupt_signature(&mut copy);
                    }
                    out.push((from, *to, copy));
                }
                out
            }
            Behavior::EquivocatingPrimary => {
                let PbftMessage::PrePrepare(pp) = &message else {
                    return all(&message);
                };
                let other = PbftMessage::PrePrepare(variant(adversary, pp));
                let half = targets.len() / 2;
                targets
                    .iter()
                    .enumerate()
                    .map(|(k, to)| {
                        let chosen = if k < half { &message } else { &other };
                        (from, *to, chosen.clone())
                    })
                    .collect()
            }
            Behavior::ConflictingVotes => {
                let key = &adversary.keys[from];
                let me = ValidatorId(from as u16);
                let chain_id = adversary.chain_id;
                let conflicting = match &message {
                    PbftMessage::Prepare(p) => Some(PbftMessage::Prepare(Prepare::new_signed(
                        chain_id,
                        key,
                        me,
                        p.view,
                        p.seq,
                        Hash::digest(&p.digest.0),
                    ))),
                    PbftMessage::Commit(c) => Some(PbftMessage::Commit(Commit::new_signed(
                        chain_id,
                        key,
                        me,
                        c.view,
                        c.seq,
                        Hash::digest(&c.block_hash.0),
                    ))),
                    _ => None,
                };
                let half = targets.len() / 2;
                targets
                    .iter()
                    .enumerate()
                    .map(|(k, to)| match (&conflicting, k < half) {
                        (Some(c), false) => (from, *to, c.clone()),
                        _ => (from, *to, message.clone()),
                    })
                    .collect()
            }
            Behavior::Colluding => colluding(adversary, from, &targets, message),
            Behavior::Censoring => match &message {
                // Its own proposals, re-signed without the censored transactions.
                PbftMessage::PrePrepare(pp) if pp.batch.view == pp.view => {
                    let mut batch = pp.batch.clone();
                    batch.txs.retain(|tx| !Behavior::censors(&tx.id()));
                    let key = &adversary.keys[from];
                    let pp =
                        PrePrepare::new_signed(adversary.chain_id, key, pp.view, pp.seq, batch);
                    all(&PbftMessage::PrePrepare(pp))
                }
                _ => all(&message),
            },
        }
    }

    fn byzantine_tick(
        adversary: &mut Adversary<'_, PbftMessage>,
        node: usize,
        behavior: Behavior,
    ) -> Vec<Transmission<PbftMessage>> {
        let n = adversary.behaviors.len() as u64;
        let mut out = Vec::new();
        match behavior {
            Behavior::Replay => {
                for _ in 0..4 {
                    let len = adversary.memory.len() as u64;
                    if len == 0 {
                        break;
                    }
                    let pick = adversary.below(len) as usize;
                    let message = adversary.memory[pick].clone();
                    let to = adversary.below(n) as usize;
                    out.push((node, to, message));
                }
            }
            Behavior::Flood => {
                let view = adversary.status[node].map_or(0, |status| status.epoch);
                let me = ValidatorId(node as u16);
                let key = adversary.keys[node].clone();
                let chain_id = adversary.chain_id;
                for _ in 0..FLOOD_PER_TICK {
                    let to = adversary.below(n) as usize;
                    let seq = adversary.below(40);
                    let v = view + adversary.below(3);
                    let junk = Hash::digest(&adversary.below(u64::MAX).to_le_bytes());
                    let message = match adversary.below(4) {
                        0 => PbftMessage::Prepare(Prepare::new_signed(
                            chain_id, &key, me, v, seq, junk,
                        )),
                        1 => PbftMessage::Commit(Commit::new_signed(
                            chain_id, &key, me, v, seq, junk,
                        )),
                        2 => PbftMessage::Checkpoint(Checkpoint::new_signed(
                            chain_id, &key, me, seq, junk,
                        )),
                        _ => PbftMessage::PrePrepare(PrePrepare::new_signed(
                            chain_id,
                            &key,
                            v,
                            seq,
                            Batch {
                                proposer: me,
                                view: v,
                                timestamp_ms: 0,
                                txs: Vec::new(),
                            },
                        )),
                    };
                    out.push((node, to, message));
                }
            }
            _ => {}
        }
        out
    }
}

/// A second, well-signed pre-prepare for the same slot.
fn variant(adversary: &Adversary<'_, PbftMessage>, pp: &PrePrepare) -> PrePrepare {
    let mut batch = pp.batch.clone();
    batch.timestamp_ms += 1;
    let key = &adversary.keys[usize::from(batch.proposer.0)];
    PrePrepare::new_signed(adversary.chain_id, key, pp.view, pp.seq, batch)
}

/// The colluders' split: the honest nodes are cut in two halves, each shown its own batch,
/// and every colluder prepares and commits both.
fn colluding(
    adversary: &mut Adversary<'_, PbftMessage>,
    from: usize,
    targets: &[usize],
    message: PbftMessage,
) -> Vec<Transmission<PbftMessage>> {
    match &message {
        PbftMessage::Prepare(_) | PbftMessage::Commit(_) => Vec::new(),
        PbftMessage::PrePrepare(pp) if pp.batch.view == pp.view => {
            let colluders = adversary.nodes_with(Some(Behavior::Colluding));
            let honest = adversary.nodes_with(None);
            let prev_hash = adversary.status[from].map_or(adversary.genesis_hash, |s| s.last_hash);
            let halves = [pp.clone(), variant(adversary, pp)];
            let split = honest.len() / 2;
            let mut out = Vec::new();
            for (k, to) in honest.iter().enumerate() {
                let pp = &halves[usize::from(k >= split)];
                out.push((from, *to, PbftMessage::PrePrepare(pp.clone())));
                let digest = pp.batch.digest();
                let block = block_for(adversary, &pp.batch, pp.seq, prev_hash);
                for c in &colluders {
                    let key = &adversary.keys[*c];
                    let id = ValidatorId(*c as u16);
                    if id != adversary.validators.primary(pp.view) {
                        let p = Prepare::new_signed(
                            adversary.chain_id,
                            key,
                            id,
                            pp.view,
                            pp.seq,
                            digest,
                        );
                        out.push((*c, *to, PbftMessage::Prepare(p)));
                    }
                    let commit =
                        Commit::new_signed(adversary.chain_id, key, id, pp.view, pp.seq, block);
                    out.push((*c, *to, PbftMessage::Commit(commit)));
                }
            }
            out
        }
        _ => targets
            .iter()
            .map(|to| (from, *to, message.clone()))
            .collect(),
    }
}

fn block_for(
    adversary: &Adversary<'_, PbftMessage>,
    batch: &Batch,
    height: u64,
    prev: Hash,
) -> Hash {
    let proposer = adversary
        .validators
        .get(batch.proposer)
        .map_or(PublicKey([0; 32]), |v| v.public_key);
    batch
        .to_block(adversary.chain_id, height, (prev, 0), proposer, |_| true)
        .hash()
}
