//! How PBFT's Byzantine nodes misbehave. Each runs the real core; these functions rewrite,
//! drop or add to what it sends.
//!
//! - An equivocating primary shows each peer one of two batches, drawn afresh on every
//!   (re)transmission, so some peers receive both versions of one slot.
//! - Conflicting votes: each PREPARE and COMMIT goes out in one of two versions per peer.
//! - Colluders (at most f in random runs, f + 1 in the test that breaks agreement) push every
//!   quorum to its edge: a colluding primary splits the honest nodes between two batches and
//!   every colluder votes for both; under an honest primary colluders vote towards only some
//!   honest nodes; their VIEW-CHANGEs hide what they prepared, or claim a stable checkpoint or
//!   a prepared certificate they cannot prove (a correct replica refuses those); and a
//!   colluding new primary builds its NEW-VIEW from the VIEW-CHANGEs that preserve least,
//!   first probing with one VIEW-CHANGE too few.
//! - A censoring primary re-signs its own proposals without the transactions of half the
//!   clients; the request timers of the others must replace it.

use std::collections::BTreeMap;
use std::sync::Arc;

use aegis_consensus::pbft::{
    Batch, Checkpoint, CheckpointProof, Commit, NewView, PbftMessage, PrePrepare, Prepare,
    PreparedCert, ViewChange,
};
use aegis_types::{Hash, PublicKey, ValidatorId};

use super::paper;
use crate::protocol::{Adversary, Transmission};
use crate::quorum;
use crate::scenario::Behavior;

/// Junk messages a flooding node sends per tick.
const FLOOD_PER_TICK: usize = 12;

pub(super) fn misbehave(
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
                    <aegis_consensus::pbft::Pbft as crate::SimProtocol>::corrupt_signature(
                        &mut copy,
                    );
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
            // Drawn per peer and per (re)transmission: a retransmitted PRE-PREPARE may bring
            // a peer the other version of a slot it already accepted.
            targets
                .iter()
                .map(|to| {
                    let chosen = if adversary.chance(500) {
                        &message
                    } else {
                        &other
                    };
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
            targets
                .iter()
                .map(|to| match &conflicting {
                    Some(c) if adversary.chance(500) => (from, *to, c.clone()),
                    _ => (from, *to, message.clone()),
                })
                .collect()
        }
        Behavior::Colluding => colluding(adversary, from, &targets, message),
        Behavior::Censoring => match &message {
            // Its own proposals, re-signed without the censored transactions.
            PbftMessage::PrePrepare(pp) if pp.batch.view == pp.view => {
                let mut batch = pp.batch.clone();
                batch.txs = batch
                    .txs
                    .iter()
                    .filter(|tx| !Behavior::censors(&tx.id()))
                    .cloned()
                    .collect();
                let key = &adversary.keys[from];
                let pp = PrePrepare::new_signed(adversary.chain_id, key, pp.view, pp.seq, batch);
                all(&PbftMessage::PrePrepare(pp))
            }
            _ => all(&message),
        },
    }
}

pub(super) fn byzantine_tick(
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
                    0 => {
                        PbftMessage::Prepare(Prepare::new_signed(chain_id, &key, me, v, seq, junk))
                    }
                    1 => PbftMessage::Commit(Commit::new_signed(chain_id, &key, me, v, seq, junk)),
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
                            txs: Arc::from([]),
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

/// A second, well-signed pre-prepare for the same slot.
fn variant(adversary: &Adversary<'_, PbftMessage>, pp: &PrePrepare) -> PrePrepare {
    let mut batch = pp.batch.clone();
    batch.timestamp_ms += 1;
    let key = &adversary.keys[usize::from(batch.proposer.0)];
    PrePrepare::new_signed(adversary.chain_id, key, pp.view, pp.seq, batch)
}

fn is_colluder(adversary: &Adversary<'_, PbftMessage>, node: usize) -> bool {
    adversary.behaviors.get(node).copied().flatten() == Some(Behavior::Colluding)
}

fn colluding(
    adversary: &mut Adversary<'_, PbftMessage>,
    from: usize,
    targets: &[usize],
    message: PbftMessage,
) -> Vec<Transmission<PbftMessage>> {
    let n = adversary.behaviors.len();
    let vote_view = match &message {
        PbftMessage::Prepare(p) => Some(p.view),
        PbftMessage::Commit(c) => Some(c.view),
        _ => None,
    };
    match &message {
        PbftMessage::PrePrepare(pp) if pp.batch.view == pp.view => split(adversary, from, pp),
        PbftMessage::ViewChange(vc) => {
            let rewritten = match adversary.below(4) {
                0 => forge_checkpoint(adversary, vc),
                1 => forge_prepared(adversary, vc),
                _ => hide(adversary, vc),
            };
            targets
                .iter()
                .map(|to| (from, *to, PbftMessage::ViewChange(rewritten.clone())))
                .collect()
        }
        PbftMessage::NewView(nv) => new_view(adversary, from, targets, nv),
        _ => match vote_view {
            // The split already carried the colluders' votes for both batches.
            Some(view) if is_colluder(adversary, quorum::primary(view, n)) => Vec::new(),
            // Under an honest primary, vote towards some honest nodes only: a slot then
            // prepares or commits at as few honest nodes as the quorums allow.
            Some(_) => targets
                .iter()
                .filter(|_| adversary.chance(500))
                .map(|to| (from, *to, message.clone()))
                .collect(),
            None => targets
                .iter()
                .map(|to| (from, *to, message.clone()))
                .collect(),
        },
    }
}

/// The colluders' split: the honest nodes are cut in two halves, each shown its own batch,
/// and every colluder prepares and commits both.
fn split(
    adversary: &mut Adversary<'_, PbftMessage>,
    from: usize,
    pp: &PrePrepare,
) -> Vec<Transmission<PbftMessage>> {
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
                let p = Prepare::new_signed(adversary.chain_id, key, id, pp.view, pp.seq, digest);
                out.push((*c, *to, PbftMessage::Prepare(p)));
            }
            let commit = Commit::new_signed(adversary.chain_id, key, id, pp.view, pp.seq, block);
            out.push((*c, *to, PbftMessage::Commit(commit)));
        }
    }
    out
}

/// A colluder's VIEW-CHANGE with its prepared certificates left out (still well signed).
fn hide(adversary: &Adversary<'_, PbftMessage>, vc: &ViewChange) -> ViewChange {
    let key = &adversary.keys[usize::from(vc.from.0)];
    ViewChange::new_signed(
        adversary.chain_id,
        key,
        vc.from,
        vc.new_view,
        vc.checkpoint.clone(),
        Vec::new(),
    )
}

/// A colluder's VIEW-CHANGE claiming the next stable checkpoint, for a block nobody
/// committed, proven only by the colluders' CHECKPOINTs: fewer than a quorum.
fn forge_checkpoint(adversary: &Adversary<'_, PbftMessage>, vc: &ViewChange) -> ViewChange {
    let seq = vc.checkpoint.seq + adversary.scenario.checkpoint_interval;
    let block_hash = Hash::digest(&seq.to_le_bytes());
    let checkpoints = adversary
        .nodes_with(Some(Behavior::Colluding))
        .into_iter()
        .map(|c| {
            let id = ValidatorId(c as u16);
            Checkpoint::new_signed(adversary.chain_id, &adversary.keys[c], id, seq, block_hash)
        })
        .collect();
    let checkpoint = CheckpointProof {
        seq,
        block_hash,
        checkpoints,
    };
    let key = &adversary.keys[usize::from(vc.from.0)];
    ViewChange::new_signed(
        adversary.chain_id,
        key,
        vc.from,
        vc.new_view,
        checkpoint,
        Vec::new(),
    )
}

/// A colluder's VIEW-CHANGE reporting, above its checkpoint, an empty batch "prepared" in the
/// latest earlier view a colluder led, with PREPAREs from the other colluders only: fewer
/// than a quorum.
fn forge_prepared(adversary: &Adversary<'_, PbftMessage>, vc: &ViewChange) -> ViewChange {
    let n = adversary.behaviors.len();
    let led = (0..vc.new_view)
        .rev()
        .find(|view| is_colluder(adversary, quorum::primary(*view, n)));
    let Some(view) = led else {
        return hide(adversary, vc);
    };
    let primary = quorum::primary(view, n);
    let seq = vc.checkpoint.seq + 1;
    let batch = Batch {
        proposer: ValidatorId(primary as u16),
        view,
        timestamp_ms: 0,
        txs: Arc::from([]),
    };
    let digest = batch.digest();
    let pre_prepare = PrePrepare::new_signed(
        adversary.chain_id,
        &adversary.keys[primary],
        view,
        seq,
        batch,
    );
    let prepares = adversary
        .nodes_with(Some(Behavior::Colluding))
        .into_iter()
        .filter(|c| *c != primary)
        .map(|c| {
            let id = ValidatorId(c as u16);
            Prepare::new_signed(
                adversary.chain_id,
                &adversary.keys[c],
                id,
                view,
                seq,
                digest,
            )
        })
        .collect();
    let key = &adversary.keys[usize::from(vc.from.0)];
    ViewChange::new_signed(
        adversary.chain_id,
        key,
        vc.from,
        vc.new_view,
        vc.checkpoint.clone(),
        vec![PreparedCert {
            pre_prepare,
            prepares,
        }],
    )
}

/// A colluding primary's NEW-VIEW: from every VIEW-CHANGE it knows for the view, the colluders'
/// (hiding what they prepared) first, then the honest ones that preserve least, with O
/// recomputed so that honest backups accept it. It first sends one with a VIEW-CHANGE too few,
/// which a correct backup refuses.
fn new_view(
    adversary: &mut Adversary<'_, PbftMessage>,
    from: usize,
    targets: &[usize],
    nv: &NewView,
) -> Vec<Transmission<PbftMessage>> {
    let view = nv.view;
    let n = adversary.behaviors.len();
    let f = (n - 1) / 3;
    // Honest VIEW-CHANGEs are valid (honest nodes only send valid ones); the ones in the
    // core's NEW-VIEW passed its checks.
    let mut known: BTreeMap<u16, ViewChange> = BTreeMap::new();
    let remembered = adversary.memory.iter().filter_map(|m| match m {
        PbftMessage::ViewChange(vc) => Some(vc),
        _ => None,
    });
    // Colluders' own come from the core's NEW-VIEW only: the ones they sent may be forged.
    for vc in &nv.view_changes {
        known.insert(vc.from.0, vc.clone());
    }
    for vc in remembered {
        let honest = adversary
            .behaviors
            .get(usize::from(vc.from.0))
            .copied()
            .flatten()
            .is_none();
        if vc.new_view == view && honest {
            known.entry(vc.from.0).or_insert_with(|| vc.clone());
        }
    }
    let mut chosen: Vec<ViewChange> = Vec::new();
    let mut honest: Vec<ViewChange> = Vec::new();
    for vc in known.into_values() {
        if is_colluder(adversary, usize::from(vc.from.0)) {
            chosen.push(hide(adversary, &vc));
        } else {
            honest.push(vc);
        }
    }
    honest.sort_by_key(|vc| {
        let top_view = vc.prepared.iter().map(|c| c.pre_prepare.view).max();
        (vc.prepared.len(), top_view, vc.from.0)
    });
    chosen.extend(honest);
    let need = quorum::quorum(n, f);
    let timestamp_ms = nv
        .pre_prepares
        .iter()
        .map(|pp| pp.batch.timestamp_ms)
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for size in [need - 1, need] {
        if chosen.len() < size {
            continue;
        }
        let mut v: Vec<ViewChange> = chosen[..size].to_vec();
        v.sort_by_key(|vc| vc.from.0);
        let made = signed_new_view(adversary, from, view, v, timestamp_ms);
        out.extend(
            targets
                .iter()
                .map(|to| (from, *to, PbftMessage::NewView(made.clone()))),
        );
    }
    if chosen.len() < need {
        // Too few VIEW-CHANGEs known to build its own: send the core's as well.
        out.extend(
            targets
                .iter()
                .map(|to| (from, *to, PbftMessage::NewView(nv.clone()))),
        );
    }
    out
}

fn signed_new_view(
    adversary: &Adversary<'_, PbftMessage>,
    primary: usize,
    view: u64,
    view_changes: Vec<ViewChange>,
    timestamp_ms: u64,
) -> NewView {
    let key = &adversary.keys[primary];
    let (_, o) = paper::compute_o(&view_changes);
    let pre_prepares = o
        .into_iter()
        .map(|(seq, batch)| {
            let batch = batch.unwrap_or(Batch {
                proposer: ValidatorId(primary as u16),
                view,
                timestamp_ms,
                txs: Arc::from([]),
            });
            PrePrepare::new_signed(adversary.chain_id, key, view, seq, batch)
        })
        .collect();
    NewView::new_signed(adversary.chain_id, key, view, view_changes, pre_prepares)
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
        .to_block(adversary.chain_id, height, (prev, 0), proposer, |_, _| true)
        .hash()
}
