//! PBFT messages (Castro & Liskov, OSDI '99 §4; signatures as in the TOCS 2002 variant) and
//! their signing bytes.
//!
//! Every message is signed by its author, so certificates (prepared certificates, checkpoint
//! proofs, view changes inside a new view) can be forwarded and checked by anyone. A COMMIT's
//! signature is exactly `sign_commit_vote(from, CommitVote::new(chain, seq, view, block_hash))`,
//! so a quorum of COMMITs is an [`aegis_types::CommitCertificate`] as it stands.

use std::sync::Arc;

use aegis_crypto::SecretKey;
use aegis_types::encoding::{tagged_bytes, tagged_digest};
use aegis_types::{
    Block, CommitSignature, CommitVote, Hash, PublicKey, Signature, Transaction, ValidatorId,
};
use borsh::{BorshDeserialize, BorshSerialize};

/// Domain tags of the PBFT signing bytes; a signature over one kind never verifies as another.
pub const TAG_BATCH: &[u8] = b"AEGIS/pbft/batch/v1";
pub const TAG_PRE_PREPARE: &[u8] = b"AEGIS/pbft/pre-prepare/v1";
pub const TAG_PREPARE: &[u8] = b"AEGIS/pbft/prepare/v1";
pub const TAG_CHECKPOINT: &[u8] = b"AEGIS/pbft/checkpoint/v1";
pub const TAG_VIEW_CHANGE: &[u8] = b"AEGIS/pbft/view-change/v1";
pub const TAG_NEW_VIEW: &[u8] = b"AEGIS/pbft/new-view/v1";

/// What one sequence number orders: PBFT's request batch (§4.2 "batching"). The block at that
/// height is built from it at execution time, when the previous block's hash is known (ADR
/// 0003): `Block::new(chain, seq, prev_hash, key(proposer), view, timestamp_ms, txs')` where
/// `txs'` drops transactions already committed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Batch {
    /// The primary that proposed it.
    pub proposer: ValidatorId,
    /// The view it was first proposed in (kept when a new view re-proposes it).
    pub view: u64,
    /// The proposer's clock.
    pub timestamp_ms: u64,
    /// Shared, never copied: one batch is held by its slot's pre-prepare, the slot's prepared
    /// certificate and this replica's VIEW-CHANGE until the next stable checkpoint. Encoded
    /// exactly as a `Vec` (a length, then the transactions).
    pub txs: Arc<[Transaction]>,
}

impl Batch {
    /// PBFT's request digest `d`.
    pub fn digest(&self) -> Hash {
        tagged_digest(TAG_BATCH, self)
    }

    /// The ids of its transactions, in order.
    pub fn tx_ids(&self) -> Arc<[Hash]> {
        self.txs.iter().map(Transaction::id).collect()
    }

    /// The block this batch becomes at `height` after the block `prev_hash` (stamped at
    /// `parent_timestamp_ms`), keeping only transactions for which `keep` (given each one's
    /// position in the batch) says yes (duplicates of committed ones are dropped). Its
    /// timestamp is the batch's, but never before its parent's: a batch carried into a new
    /// view may be older than a null request ordered before it, and block timestamps never
    /// run backwards.
    pub fn to_block(
        &self,
        chain_id: &str,
        height: u64,
        (prev_hash, parent_timestamp_ms): (Hash, u64),
        proposer: PublicKey,
        mut keep: impl FnMut(usize, &Transaction) -> bool,
    ) -> Block {
        let txs = self
            .txs
            .iter()
            .enumerate()
            .filter(|(index, tx)| keep(*index, tx))
            .map(|(_, tx)| tx.clone())
            .collect();
        Block::new(
            chain_id,
            height,
            prev_hash,
            proposer,
            self.view,
            self.timestamp_ms.max(parent_timestamp_ms),
            txs,
        )
    }
}

/// ⟨PRE-PREPARE, v, n, d⟩ signed by the primary of `view`, with the batch attached (§4.2).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PrePrepare {
    pub view: u64,
    pub seq: u64,
    pub batch: Batch,
    pub signature: Signature,
}

/// ⟨PREPARE, v, n, d, i⟩ (§4.2).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Prepare {
    pub view: u64,
    pub seq: u64,
    pub digest: Hash,
    pub from: ValidatorId,
    pub signature: Signature,
}

/// ⟨COMMIT, v, n, D(m), i⟩ (§4.2). Names the block hash rather than the batch digest so its
/// signature is a commit-certificate entry.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Commit {
    pub view: u64,
    pub seq: u64,
    pub block_hash: Hash,
    pub from: ValidatorId,
    pub signature: Signature,
}

/// ⟨CHECKPOINT, n, d, i⟩ (§4.3); the state digest is the hash of block `seq`, which commits
/// to the whole chain.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub block_hash: Hash,
    pub from: ValidatorId,
    pub signature: Signature,
}

/// A stable checkpoint's proof: a quorum of matching CHECKPOINT messages (§4.3). Sequence 0
/// is the genesis and needs no signatures.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CheckpointProof {
    pub seq: u64,
    pub block_hash: Hash,
    pub checkpoints: Vec<Checkpoint>,
}

/// A prepared certificate P_m (§4.4): the pre-prepare and a quorum minus one of matching
/// PREPAREs from distinct backups.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PreparedCert {
    pub pre_prepare: PrePrepare,
    pub prepares: Vec<Prepare>,
}

/// ⟨VIEW-CHANGE, v+1, n, C, P, i⟩ (§4.4).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ViewChange {
    pub new_view: u64,
    pub checkpoint: CheckpointProof,
    /// At most one per sequence number above the checkpoint, ascending.
    pub prepared: Vec<PreparedCert>,
    pub from: ValidatorId,
    pub signature: Signature,
}

/// ⟨NEW-VIEW, v+1, V, O⟩ (§4.4). `pre_prepares` is O, each signed by the new primary.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct NewView {
    pub view: u64,
    pub view_changes: Vec<ViewChange>,
    pub pre_prepares: Vec<PrePrepare>,
    pub signature: Signature,
}

/// Every PBFT message.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum PbftMessage {
    PrePrepare(PrePrepare),
    Prepare(Prepare),
    Commit(Commit),
    Checkpoint(Checkpoint),
    ViewChange(ViewChange),
    NewView(NewView),
}

impl PbftMessage {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PbftMessage::PrePrepare(_) => "pre_prepare",
            PbftMessage::Prepare(_) => "prepare",
            PbftMessage::Commit(_) => "commit",
            PbftMessage::Checkpoint(_) => "checkpoint",
            PbftMessage::ViewChange(_) => "view_change",
            PbftMessage::NewView(_) => "new_view",
        }
    }
}

pub(crate) fn pre_prepare_bytes(chain_id: &str, view: u64, seq: u64, digest: &Hash) -> Vec<u8> {
    tagged_bytes(TAG_PRE_PREPARE, &(chain_id, view, seq, digest))
}

pub(crate) fn prepare_bytes(
    chain_id: &str,
    view: u64,
    seq: u64,
    digest: &Hash,
    from: ValidatorId,
) -> Vec<u8> {
    tagged_bytes(TAG_PREPARE, &(chain_id, view, seq, digest, from))
}

pub(crate) fn commit_bytes(chain_id: &str, view: u64, seq: u64, block_hash: Hash) -> Vec<u8> {
    CommitVote::new(chain_id, seq, view, block_hash).signing_bytes()
}

pub(crate) fn checkpoint_bytes(
    chain_id: &str,
    seq: u64,
    block_hash: &Hash,
    from: ValidatorId,
) -> Vec<u8> {
    tagged_bytes(TAG_CHECKPOINT, &(chain_id, seq, block_hash, from))
}

pub(crate) fn view_change_bytes(
    chain_id: &str,
    new_view: u64,
    checkpoint: &CheckpointProof,
    prepared: &[PreparedCert],
    from: ValidatorId,
) -> Vec<u8> {
    tagged_bytes(
        TAG_VIEW_CHANGE,
        &(chain_id, new_view, checkpoint, prepared, from),
    )
}

pub(crate) fn new_view_bytes(
    chain_id: &str,
    view: u64,
    view_changes: &[ViewChange],
    pre_prepares: &[PrePrepare],
) -> Vec<u8> {
    tagged_bytes(TAG_NEW_VIEW, &(chain_id, view, view_changes, pre_prepares))
}

/// Signing helpers. The core signs with them; the simulator's Byzantine nodes use them to
/// forge well-signed but conflicting messages.
impl PrePrepare {
    pub fn new_signed(chain_id: &str, key: &SecretKey, view: u64, seq: u64, batch: Batch) -> Self {
        let digest = batch.digest();
        PrePrepare::signed_with_digest(chain_id, key, (view, seq), batch, digest)
    }

    /// The same, for a caller that has the batch's digest already (it hashes every
    /// transaction).
    pub fn signed_with_digest(
        chain_id: &str,
        key: &SecretKey,
        (view, seq): (u64, u64),
        batch: Batch,
        digest: Hash,
    ) -> Self {
        debug_assert_eq!(digest, batch.digest());
        let signature = key.sign(&pre_prepare_bytes(chain_id, view, seq, &digest));
        PrePrepare {
            view,
            seq,
            batch,
            signature,
        }
    }
}

impl Prepare {
    pub fn new_signed(
        chain_id: &str,
        key: &SecretKey,
        from: ValidatorId,
        view: u64,
        seq: u64,
        digest: Hash,
    ) -> Self {
        let signature = key.sign(&prepare_bytes(chain_id, view, seq, &digest, from));
        Prepare {
            view,
            seq,
            digest,
            from,
            signature,
        }
    }
}

impl Commit {
    pub fn new_signed(
        chain_id: &str,
        key: &SecretKey,
        from: ValidatorId,
        view: u64,
        seq: u64,
        block_hash: Hash,
    ) -> Self {
        let CommitSignature { signature, .. } =
            key.sign_commit_vote(from, &CommitVote::new(chain_id, seq, view, block_hash));
        Commit {
            view,
            seq,
            block_hash,
            from,
            signature,
        }
    }
}

impl Checkpoint {
    pub fn new_signed(
        chain_id: &str,
        key: &SecretKey,
        from: ValidatorId,
        seq: u64,
        block_hash: Hash,
    ) -> Self {
        let signature = key.sign(&checkpoint_bytes(chain_id, seq, &block_hash, from));
        Checkpoint {
            seq,
            block_hash,
            from,
            signature,
        }
    }
}

impl ViewChange {
    pub fn new_signed(
        chain_id: &str,
        key: &SecretKey,
        from: ValidatorId,
        new_view: u64,
        checkpoint: CheckpointProof,
        prepared: Vec<PreparedCert>,
    ) -> Self {
        let signature = key.sign(&view_change_bytes(
            chain_id,
            new_view,
            &checkpoint,
            &prepared,
            from,
        ));
        ViewChange {
            new_view,
            checkpoint,
            prepared,
            from,
            signature,
        }
    }
}

impl NewView {
    pub fn new_signed(
        chain_id: &str,
        key: &SecretKey,
        view: u64,
        view_changes: Vec<ViewChange>,
        pre_prepares: Vec<PrePrepare>,
    ) -> Self {
        let signature = key.sign(&new_view_bytes(
            chain_id,
            view,
            &view_changes,
            &pre_prepares,
        ));
        NewView {
            view,
            view_changes,
            pre_prepares,
            signature,
        }
    }
}
