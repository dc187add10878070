//! PBFT's invariants, checked on every step from what honest nodes persist (their consensus
//! log, as it replays) and send, with the paper's quorums and the checker's own signature
//! code ([`super::paper`]). Each violation starts with the checker's name:
//!
//! - `prepared:` every prepared certificate an honest node holds is one (§4.2), and no two
//!   honest nodes prepared different batches for one (view, sequence number) (§4.2's
//!   invariant: prepared(m, v, n, i) and prepared(m', v, n, j) imply D(m) = D(m')).
//! - `commit:` an honest node's COMMIT names the block its own PREPARE's batch becomes (the
//!   PRE-PREPARE's for the primary) at that height after its previous block (ADR 0003).
//! - `checkpoint:` every stable checkpoint an honest node adopts carries a quorum of valid
//!   CHECKPOINTs for the block honest nodes committed there (§4.3), and its own CHECKPOINTs
//!   name its own blocks.
//! - `view-change:` every VIEW-CHANGE an honest node sends is valid and reports every prepared
//!   certificate it holds above its checkpoint (§4.4).
//! - `new-view:` every NEW-VIEW an honest node accepts is one §4.4 allows, recomputed here, and
//!   keeps every request committed in an earlier view above its min-s.
//! - `left-view:` after sending VIEW-CHANGE for view v, an honest node sends no PRE-PREPARE,
//!   PREPARE or COMMIT of an older view, even after a restart (§4.4: it stops accepting them).

use std::collections::{BTreeMap, BTreeSet};

use aegis_consensus::Role;
use aegis_consensus::pbft::config::DEFAULT_TX_DEDUP_WINDOW_BLOCKS;
use aegis_consensus::pbft::{
    Batch, Commit, NewView, Pbft, PbftMessage, PbftPersisted, PbftTimer, ViewChange,
};
use aegis_types::{Block, CommitCertificate, Hash, Signature, Transaction, ValidatorId};

use super::paper::{self, Params};
use crate::protocol::{Invariants, World};
use crate::quorum::SignatureMemo;

/// What the checker already looked at in one node's durable state.
#[derive(Debug, Default)]
struct Seen {
    stable: Option<(u64, Hash)>,
    new_view: Option<Signature>,
    /// The PRE-PREPARE signature of each slot's accepted batch.
    pre_prepares: BTreeMap<u64, Signature>,
    /// Each slot's prepared certificate: its view and PRE-PREPARE signature.
    certs: BTreeMap<u64, (u64, Signature)>,
    executed: BTreeSet<u64>,
}

/// PBFT's invariant checkers (see the module documentation).
#[derive(Debug, Default)]
pub struct PbftInvariants {
    memo: SignatureMemo,
    seen: BTreeMap<usize, Seen>,
    /// (view, sequence) -> the batch digest an honest node prepared there, and which node.
    prepared: BTreeMap<(u64, u64), (Hash, usize)>,
    /// Batches honest nodes accepted, by digest.
    batches: BTreeMap<Hash, Batch>,
    /// (node, view, sequence) -> the digest the node voted for: its PREPARE, or as the
    /// primary its PRE-PREPARE.
    voted: BTreeMap<(usize, u64, u64), Hash>,
    /// The highest view each honest node sent a VIEW-CHANGE for.
    left: BTreeMap<usize, u64>,
    /// Sequence number -> the batch digest an honest node executed there, and the timestamp
    /// of the block before it (two batches that differ only in a timestamp older than the
    /// parent's become the same block: the block is stamped with the later of the two).
    executed: BTreeMap<u64, (Hash, Option<u64>)>,
    /// Sequence number -> the lowest view of a commit certificate for it.
    commit_view: BTreeMap<u64, u64>,
    /// (view, NEW-VIEW signature) -> min-s and the digest O orders at each sequence number, for
    /// every NEW-VIEW an honest node accepted.
    new_views: BTreeMap<(u64, [u8; 64]), AcceptedNewView>,
}

/// min-s of an accepted NEW-VIEW and the digest its O orders at each sequence number.
type AcceptedNewView = (u64, BTreeMap<u64, Hash>);

fn params<'a>(world: &World<'a>) -> Params<'a> {
    let scenario = world.scenario;
    Params {
        chain_id: world.chain_id,
        validators: world.validators,
        f: scenario.max_faulty(),
        checkpoint_interval: scenario.checkpoint_interval,
        log_window: (2 * scenario.checkpoint_interval).max(u64::from(scenario.pipeline_depth)),
        genesis_hash: world.genesis_hash,
    }
}

impl Invariants<Pbft> for PbftInvariants {
    fn persisted(&mut self, world: &World<'_>, node: usize, state: &PbftPersisted) -> Vec<String> {
        let params = params(world);
        let mut found = Vec::new();
        let mut seen = self.seen.remove(&node).unwrap_or_default();
        let stable = (state.stable.seq, state.stable.block_hash);
        if seen.stable != Some(stable) {
            seen.stable = Some(stable);
            if let Err(why) = paper::check_checkpoint_proof(&mut self.memo, &params, &state.stable)
            {
                found.push(format!(
                    "checkpoint: node {node} adopted stable checkpoint {}: {why}",
                    stable.0
                ));
            }
            if stable.0 > 0
                && world
                    .canonical
                    .get(&stable.0)
                    .is_some_and(|h| *h != stable.1)
            {
                found.push(format!(
                    "checkpoint: node {node} adopted a stable checkpoint at {} for another block than honest nodes committed",
                    stable.0
                ));
            }
        }
        let new_view = state.latest_new_view.as_ref().map(|nv| nv.signature);
        if seen.new_view != new_view {
            seen.new_view = new_view;
            if let Some(nv) = &state.latest_new_view {
                found.extend(self.accepted_new_view(&params, node, nv));
            }
        }
        seen.pre_prepares.retain(|seq, _| *seq > stable.0);
        seen.executed.retain(|seq| *seq > stable.0);
        let mut certs = BTreeMap::new();
        for slot in &state.slots {
            if let Some(pp) = &slot.pre_prepare
                && seen.pre_prepares.get(&slot.seq) != Some(&pp.signature)
            {
                seen.pre_prepares.insert(slot.seq, pp.signature);
                self.batches
                    .entry(paper::batch_digest(&pp.batch))
                    .or_insert_with(|| pp.batch.clone());
            }
            if let Some(cert) = &slot.prepared {
                let key = (cert.pre_prepare.view, cert.pre_prepare.signature);
                if seen.certs.get(&slot.seq) != Some(&key) {
                    found.extend(self.new_prepared(&params, node, cert));
                }
                certs.insert(slot.seq, key);
            }
            if let Some((digest, _)) = slot.executed
                && seen.executed.insert(slot.seq)
                && !self.executed.contains_key(&slot.seq)
            {
                let parent_timestamp_ms = world.block_timestamp_ms(slot.seq - 1);
                self.executed
                    .insert(slot.seq, (digest, parent_timestamp_ms));
                found.extend(self.preserved(slot.seq));
            }
        }
        seen.certs = certs;
        self.seen.insert(node, seen);
        found
    }

    fn sent(
        &mut self,
        world: &World<'_>,
        node: usize,
        message: &PbftMessage,
        first: bool,
    ) -> Vec<String> {
        let params = params(world);
        let mut found = Vec::new();
        let normal_view = match message {
            PbftMessage::PrePrepare(pp) => {
                if params.primary(pp.view) == node {
                    self.voted
                        .entry((node, pp.view, pp.seq))
                        .or_insert_with(|| paper::batch_digest(&pp.batch));
                }
                Some(pp.view)
            }
            PbftMessage::Prepare(p) => {
                self.voted.entry((node, p.view, p.seq)).or_insert(p.digest);
                Some(p.view)
            }
            PbftMessage::Commit(c) => {
                if first {
                    found.extend(self.commit_matches_prepare(world, node, c));
                }
                Some(c.view)
            }
            PbftMessage::Checkpoint(c) => {
                let own = usize::from(c.from.0) == node;
                if own && first && world.block_hash(c.seq) != Some(c.block_hash) {
                    found.push(format!(
                        "checkpoint: node {node}'s CHECKPOINT for {} names another block than its ledger's",
                        c.seq
                    ));
                }
                None
            }
            PbftMessage::ViewChange(vc) => {
                let left = self.left.entry(node).or_default();
                *left = (*left).max(vc.new_view);
                if first {
                    found.extend(self.sent_view_change(&params, node, vc));
                }
                None
            }
            PbftMessage::NewView(nv) if params.primary(nv.view) == node => {
                for pp in &nv.pre_prepares {
                    self.voted
                        .entry((node, pp.view, pp.seq))
                        .or_insert_with(|| paper::batch_digest(&pp.batch));
                }
                None
            }
            // Forwarded to a peer in an older view: the primary's statement, not this node's.
            PbftMessage::NewView(_) => None,
        };
        if let Some(view) = normal_view
            && let Some(left) = self.left.get(&node)
            && view < *left
        {
            found.push(format!(
                "left-view: node {node} sent a {} of view {view} after its VIEW-CHANGE for view {left}",
                message.kind()
            ));
        }
        found
    }

    fn stepped(
        &mut self,
        world: &World<'_>,
        node: usize,
        core: &Pbft,
        next_deadline: Option<u64>,
    ) -> Vec<String> {
        let params = params(world);
        let status = aegis_consensus::Protocol::status(core);
        let mut found = Vec::new();
        let mut expect = |what: &str, ok: bool| {
            if !ok {
                found.push(format!(
                    "core: node {node}'s {what} disagrees with its state"
                ));
            }
        };
        let primary = params.primary(core.view()) == node;
        let normal = core.status() == aegis_consensus::pbft::Status::Normal;
        expect("view", status.epoch == core.view());
        expect("primary", core.is_primary() == primary);
        let role = match (normal, primary) {
            (false, _) => Role::Electing,
            (true, true) => Role::Leader,
            (true, false) => Role::Follower,
        };
        expect("role", status.role == role);
        let leader = normal.then(|| ValidatorId(params.primary(core.view()) as u16));
        expect("leader", status.leader == leader);
        expect(
            "height",
            core.last_committed() == (status.height, status.last_hash)
                && world.block_hash(status.height) == Some(status.last_hash),
        );
        expect("pending count", core.pending_txs() == status.pending);
        let earliest = [
            PbftTimer::Progress,
            PbftTimer::ViewChange,
            PbftTimer::Retransmit,
        ]
        .into_iter()
        .filter_map(|timer| core.timer_deadline(timer))
        .min();
        expect("earliest timer", earliest == next_deadline);
        found
    }

    fn committed(
        &mut self,
        _world: &World<'_>,
        _node: usize,
        block: &Block,
        certificate: &CommitCertificate,
    ) -> Vec<String> {
        let height = block.height();
        if self
            .commit_view
            .get(&height)
            .is_some_and(|view| *view <= certificate.view)
        {
            return Vec::new();
        }
        self.commit_view.insert(height, certificate.view);
        self.preserved(height)
    }
}

impl PbftInvariants {
    /// A prepared certificate that appeared in an honest node's durable state.
    fn new_prepared(
        &mut self,
        params: &Params<'_>,
        node: usize,
        cert: &aegis_consensus::pbft::PreparedCert,
    ) -> Vec<String> {
        let mut found = Vec::new();
        let (view, seq) = (cert.pre_prepare.view, cert.pre_prepare.seq);
        if let Err(why) = paper::check_prepared_cert(&mut self.memo, params, cert) {
            found.push(format!(
                "prepared: node {node} holds an invalid prepared certificate: {why}"
            ));
        }
        let digest = paper::batch_digest(&cert.pre_prepare.batch);
        self.batches
            .entry(digest)
            .or_insert_with(|| cert.pre_prepare.batch.clone());
        match self.prepared.get(&(view, seq)) {
            Some((other, by)) if *other != digest => found.push(format!(
                "prepared: honest nodes {by} and {node} prepared different batches for view {view}, sequence {seq}"
            )),
            Some(_) => {}
            None => {
                self.prepared.insert((view, seq), (digest, node));
            }
        }
        found
    }

    /// The block `batch` becomes at `height` on top of the acting node's chain, built here
    /// from ADR 0003's rule: transactions the last `DEFAULT_TX_DEDUP_WINDOW_BLOCKS` blocks
    /// committed, and repeats within the batch, are dropped; the block's timestamp is the
    /// batch's, but never before its parent's.
    fn expected_block(world: &World<'_>, batch: &Batch, height: u64) -> Option<Hash> {
        let prev = world.block_hash(height.checked_sub(1)?)?;
        let parent_timestamp_ms = world.block_timestamp_ms(height - 1)?;
        let proposer = world
            .validators
            .validators()
            .get(usize::from(batch.proposer.0))
            .map_or(aegis_types::PublicKey([0; 32]), |v| v.public_key);
        let oldest = height.saturating_sub(DEFAULT_TX_DEDUP_WINDOW_BLOCKS);
        let mut seen = BTreeSet::new();
        let txs: Vec<Transaction> = batch
            .txs
            .iter()
            .filter(|tx| {
                let id = tx.id();
                let recent = world
                    .tx_heights
                    .get(&id)
                    .is_some_and(|h| *h >= oldest && *h < height);
                !recent && seen.insert(id)
            })
            .cloned()
            .collect();
        let block = Block::new(
            world.chain_id,
            height,
            prev,
            proposer,
            batch.view,
            batch.timestamp_ms.max(parent_timestamp_ms),
            txs,
        );
        Some(block.hash())
    }

    fn commit_matches_prepare(
        &mut self,
        world: &World<'_>,
        node: usize,
        c: &Commit,
    ) -> Vec<String> {
        let Some(digest) = self.voted.get(&(node, c.view, c.seq)).copied() else {
            return vec![format!(
                "commit: node {node} sent COMMIT for view {}, sequence {} without a PREPARE (or PRE-PREPARE) of its own there",
                c.view, c.seq
            )];
        };
        let Some(batch) = self.batches.get(&digest) else {
            return Vec::new();
        };
        match Self::expected_block(world, batch, c.seq) {
            None => vec![format!(
                "commit: node {node} sent COMMIT for sequence {} before storing block {}",
                c.seq,
                c.seq - 1
            )],
            Some(expected) if expected != c.block_hash => vec![format!(
                "commit: node {node}'s COMMIT for view {}, sequence {} names another block than the batch it prepared becomes",
                c.view, c.seq
            )],
            Some(_) => Vec::new(),
        }
    }

    fn sent_view_change(
        &mut self,
        params: &Params<'_>,
        node: usize,
        vc: &ViewChange,
    ) -> Vec<String> {
        let mut found = Vec::new();
        if let Err(why) = paper::check_view_change(&mut self.memo, params, vc) {
            found.push(format!(
                "view-change: honest node {node} sent an invalid VIEW-CHANGE: {why}"
            ));
        }
        let Some(seen) = self.seen.get(&node) else {
            return found;
        };
        let reported: BTreeMap<u64, u64> = vc
            .prepared
            .iter()
            .map(|c| (c.pre_prepare.seq, c.pre_prepare.view))
            .collect();
        for (seq, (view, _)) in seen.certs.range(vc.checkpoint.seq + 1..) {
            if *view < vc.new_view && reported.get(seq).is_none_or(|v| v < view) {
                found.push(format!(
                    "view-change: node {node}'s VIEW-CHANGE for view {} leaves out its prepared certificate for sequence {seq} (view {view})",
                    vc.new_view
                ));
            }
        }
        found
    }

    fn accepted_new_view(&mut self, params: &Params<'_>, node: usize, nv: &NewView) -> Vec<String> {
        match paper::check_new_view(&mut self.memo, params, nv) {
            Err(why) => vec![format!(
                "new-view: node {node} accepted a NEW-VIEW the paper does not allow: {why}"
            )],
            Ok((min_s, o)) => {
                let key = (nv.view, nv.signature.0);
                if self.new_views.contains_key(&key) {
                    return Vec::new();
                }
                for pp in &nv.pre_prepares {
                    self.batches
                        .entry(paper::batch_digest(&pp.batch))
                        .or_insert_with(|| pp.batch.clone());
                }
                self.new_views.insert(key, (min_s, o));
                let seqs: Vec<u64> = self.executed.range(min_s + 1..).map(|(s, _)| *s).collect();
                seqs.into_iter()
                    .flat_map(|seq| self.preserved(seq))
                    .collect()
            }
        }
    }

    /// Whether the batch `digest` becomes the block executed there: the same batch, or one
    /// with the same proposer, view and transactions whose timestamp, like the executed one's,
    /// is clamped to the same value by the parent's.
    fn same_block(
        &self,
        digest: Hash,
        (executed, parent_timestamp_ms): (Hash, Option<u64>),
    ) -> bool {
        if digest == executed {
            return true;
        }
        match (
            self.batches.get(&digest),
            self.batches.get(&executed),
            parent_timestamp_ms,
        ) {
            (Some(a), Some(b), Some(parent)) => {
                a.proposer == b.proposer
                    && a.view == b.view
                    && a.txs == b.txs
                    && a.timestamp_ms.max(parent) == b.timestamp_ms.max(parent)
            }
            _ => false,
        }
    }

    /// §4.4's safety: a request committed in view v at sequence n is in every later NEW-VIEW
    /// whose min-s is below n.
    fn preserved(&self, seq: u64) -> Vec<String> {
        let (Some(executed), Some(view)) = (self.executed.get(&seq), self.commit_view.get(&seq))
        else {
            return Vec::new();
        };
        self.new_views
            .range((view + 1, [0u8; 64])..)
            .filter(|(_, (min_s, _))| seq > *min_s)
            .filter(|(_, (_, o))| !o.get(&seq).is_some_and(|d| self.same_block(*d, *executed)))
            .map(|((new_view, _), _)| {
                format!(
                    "new-view: the NEW-VIEW for view {new_view} does not keep the request committed at sequence {seq} in view {view}"
                )
            })
            .collect()
    }
}
