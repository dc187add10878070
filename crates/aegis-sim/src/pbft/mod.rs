//! PBFT in the simulator: how a core is built from the scenario, what its messages promise,
//! which of its steps the fault injector aims crashes at, how its Byzantine nodes misbehave
//! ([`adversary`]), and its own invariants ([`invariants`]), checked with the paper's
//! quorums and the checker's own signature code ([`paper`]).

mod adversary;
pub mod invariants;
pub mod paper;

use aegis_consensus::pbft::{Pbft, PbftConfig, PbftMessage, PbftPersisted, PbftRecord};
use aegis_types::{Hash, ValidatorId};

use crate::protocol::{Adversary, CoreSetup, Moment, SimProtocol, Statement, Transmission};
use crate::quorum;
use crate::scenario::Behavior;
pub use invariants::PbftInvariants;

impl SimProtocol for Pbft {
    const ALGORITHM: aegis_types::ConsensusAlgorithm = aegis_types::ConsensusAlgorithm::Pbft;
    const MIN_VALIDATORS: usize = 4;

    type Invariants = PbftInvariants;

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

    fn statements(message: &PbftMessage, _sender: usize, validators: usize) -> Vec<Statement> {
        let statement = |signer: ValidatorId, kind, epoch, slot, digest| Statement {
            signer: usize::from(signer.0),
            kind,
            epoch,
            slot,
            digest,
        };
        let primary = |view| ValidatorId(quorum::primary(view, validators) as u16);
        match message {
            PbftMessage::PrePrepare(pp) => vec![statement(
                primary(pp.view),
                "pre-prepare",
                pp.view,
                pp.seq,
                paper::batch_digest(&pp.batch),
            )],
            PbftMessage::Prepare(p) => {
                vec![statement(p.from, "prepare", p.view, p.seq, p.digest)]
            }
            PbftMessage::Commit(c) => {
                vec![statement(c.from, "commit", c.view, c.seq, c.block_hash)]
            }
            PbftMessage::Checkpoint(c) => {
                vec![statement(c.from, "checkpoint", 0, c.seq, c.block_hash)]
            }
            PbftMessage::ViewChange(vc) => vec![statement(
                vc.from,
                "view-change",
                vc.new_view,
                0,
                Hash::digest(&aegis_types::encoding::encode(vc)),
            )],
            // A NEW-VIEW promises itself and, under the new primary's signature, each
            // PRE-PREPARE of O: the primary must not order anything else at those numbers.
            PbftMessage::NewView(nv) => {
                let signer = primary(nv.view);
                let mut out = vec![statement(
                    signer,
                    "new-view",
                    nv.view,
                    0,
                    Hash::digest(&aegis_types::encoding::encode(nv)),
                )];
                out.extend(nv.pre_prepares.iter().map(|pp| {
                    statement(
                        signer,
                        "pre-prepare",
                        pp.view,
                        pp.seq,
                        paper::batch_digest(&pp.batch),
                    )
                }));
                out
            }
        }
    }

    fn moment(&self, node: usize, record: &PbftRecord) -> Option<Moment> {
        match record {
            PbftRecord::PrePrepare(pp)
                if usize::from(pp.batch.proposer.0) == node && pp.batch.view == pp.view =>
            {
                Some(Moment::Proposing)
            }
            PbftRecord::OwnViewChange(Some(_)) => Some(Moment::LeavingEpoch),
            PbftRecord::LatestNewView(Some(_)) => Some(Moment::EnteringEpoch),
            _ => None,
        }
    }

    fn describe(message: &PbftMessage) -> String {
        let short = |hash: &Hash| format!("{:02x}{:02x}{:02x}", hash.0[0], hash.0[1], hash.0[2]);
        match message {
            PbftMessage::PrePrepare(pp) => format!(
                "PRE-PREPARE v{} n{} d={} ({} txs, batch of view {})",
                pp.view,
                pp.seq,
                short(&paper::batch_digest(&pp.batch)),
                pp.batch.txs.len(),
                pp.batch.view
            ),
            PbftMessage::Prepare(p) => {
                format!(
                    "PREPARE v{} n{} d={} from {}",
                    p.view,
                    p.seq,
                    short(&p.digest),
                    p.from.0
                )
            }
            PbftMessage::Commit(c) => format!(
                "COMMIT v{} n{} block={} from {}",
                c.view,
                c.seq,
                short(&c.block_hash),
                c.from.0
            ),
            PbftMessage::Checkpoint(c) => format!(
                "CHECKPOINT n{} block={} from {}",
                c.seq,
                short(&c.block_hash),
                c.from.0
            ),
            PbftMessage::ViewChange(vc) => format!(
                "VIEW-CHANGE v{} checkpoint {} prepared {:?} from {}",
                vc.new_view,
                vc.checkpoint.seq,
                vc.prepared
                    .iter()
                    .map(|c| (c.pre_prepare.seq, c.pre_prepare.view))
                    .collect::<Vec<_>>(),
                vc.from.0
            ),
            PbftMessage::NewView(nv) => format!(
                "NEW-VIEW v{} from VIEW-CHANGEs of {:?}, O = {:?}",
                nv.view,
                nv.view_changes
                    .iter()
                    .map(|vc| vc.from.0)
                    .collect::<Vec<_>>(),
                nv.pre_prepares
                    .iter()
                    .map(|pp| (pp.seq, short(&paper::batch_digest(&pp.batch))))
                    .collect::<Vec<_>>()
            ),
        }
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

    fn observe(
        adversary: &mut Adversary<'_, PbftMessage>,
        _node: usize,
        behavior: Behavior,
        message: &PbftMessage,
    ) {
        match behavior {
            Behavior::Replay => adversary.remember(message.clone()),
            // A colluding primary picks the VIEW-CHANGEs of its NEW-VIEW from these.
            Behavior::Colluding if matches!(message, PbftMessage::ViewChange(_)) => {
                adversary.remember(message.clone());
            }
            _ => {}
        }
    }

    fn misbehave(
        adversary: &mut Adversary<'_, PbftMessage>,
        from: usize,
        behavior: Behavior,
        targets: Vec<usize>,
        message: PbftMessage,
    ) -> Vec<Transmission<PbftMessage>> {
        adversary::misbehave(adversary, from, behavior, targets, message)
    }

    fn byzantine_tick(
        adversary: &mut Adversary<'_, PbftMessage>,
        node: usize,
        behavior: Behavior,
    ) -> Vec<Transmission<PbftMessage>> {
        adversary::byzantine_tick(adversary, node, behavior)
    }
}
