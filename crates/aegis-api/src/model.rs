//! The client API's JSON bodies, as this crate's own types: their serde form is what goes
//! over the wire and their `ToSchema` derive is what the OpenAPI document says, so the two
//! cannot drift. Hashes, keys, signatures and payloads are lowercase hex, as in
//! `docs/encoding.md`.

use aegis_storage::StoredBlock;
use aegis_types::{
    BlockHeader, CommitCertificate, CommitSignature, Hash, MerkleProof, PublicKey, Signature,
    Transaction, TxBody, ValidatorId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;

/// A 32-byte value (hash, id, key) in hex.
pub const HEX32_PATTERN: &str = "^[0-9a-fA-F]{64}$";
/// A 64-byte signature in hex.
pub const HEX64_PATTERN: &str = "^[0-9a-fA-F]{128}$";

/// A signed transaction in its JSON form (`docs/encoding.md`): accepted by
/// `POST /v1/transactions` and returned by the reads. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Transaction)]
pub struct TransactionJson {
    /// Layout version, 1.
    #[schema(example = 1)]
    pub version: u8,
    /// The chain's id from its genesis (at most 64 bytes).
    #[schema(example = "aegis-testnet")]
    pub chain_id: String,
    /// The client's Ed25519 public key.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub sender: PublicKey,
    /// Client-chosen; makes otherwise identical transactions distinct.
    #[schema(example = 42)]
    pub nonce: u64,
    /// Application data (at most 65,536 bytes), hex.
    #[serde(with = "aegis_types::encoding::hex_bytes")]
    #[schema(value_type = String, pattern = "^([0-9a-fA-F]{2})*$", example = "68656c6c6f")]
    pub payload: Vec<u8>,
    /// Ed25519 signature over `"AEGIS/tx/v1" || borsh(body)`.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{128}$")]
    pub signature: Signature,
}

impl From<&Transaction> for TransactionJson {
    fn from(tx: &Transaction) -> TransactionJson {
        TransactionJson {
            version: tx.body.version,
            chain_id: tx.body.chain_id.clone(),
            sender: tx.body.sender,
            nonce: tx.body.nonce,
            payload: tx.body.payload.clone(),
            signature: tx.signature,
        }
    }
}

impl From<TransactionJson> for Transaction {
    fn from(json: TransactionJson) -> Transaction {
        Transaction {
            body: TxBody {
                version: json.version,
                chain_id: json.chain_id,
                sender: json.sender,
                nonce: json.nonce,
                payload: json.payload,
            },
            signature: json.signature,
        }
    }
}

/// Where a transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TxStatus {
    /// In the mempool, waiting to be committed.
    Pending,
    /// In a committed block.
    Committed,
}

/// 202: the transaction is pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The transaction id: SHA-256 of its signing bytes.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub id: Hash,
    /// Always `pending`.
    pub status: TxStatus,
}

/// Always `rejected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RejectedStatus {
    Rejected,
}

/// One refused element of a submitted array: the error body a single submission would have
/// got, with its HTTP status and, for a full mempool, when to retry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Rejected {
    /// Always `rejected`.
    pub status: RejectedStatus,
    /// The status a single submission of this element would have got (400, 409, 413, 422,
    /// 503).
    #[schema(example = 409)]
    pub http_status: u16,
    #[serde(flatten)]
    pub error: ErrorBody,
    /// Seconds to wait before submitting it again (a full mempool only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// The answer for one element of a submitted array, in the array's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Accepted(Accepted),
    Rejected(Rejected),
}

/// An RFC 9162 inclusion proof of a transaction id under the block's `tx_root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = InclusionProof)]
pub struct ProofJson {
    /// The transaction's position in the block, from 0.
    pub index: u64,
    /// The block's transaction count (must equal the header's `tx_count`).
    pub leaf_count: u64,
    /// Sibling hashes from the leaf up to the root, hex.
    #[schema(value_type = Vec<String>)]
    pub path: Vec<Hash>,
}

impl From<MerkleProof> for ProofJson {
    fn from(proof: MerkleProof) -> ProofJson {
        ProofJson {
            index: proof.index,
            leaf_count: proof.leaf_count,
            path: proof.path,
        }
    }
}

/// `GET /v1/transactions/{id}`: a pending or committed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = TransactionStatus)]
pub struct TransactionStatusJson {
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub id: Hash,
    pub status: TxStatus,
    pub transaction: TransactionJson,
    /// Height of its block (committed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Its position in the block, from 0 (committed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Hash of its block (committed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9a-fA-F]{64}$")]
    pub block_hash: Option<Hash>,
    /// Inclusion proof under the block's `tx_root` (committed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<ProofJson>,
}

/// A block header, every field of `docs/encoding.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = BlockHeader)]
pub struct HeaderJson {
    pub version: u8,
    pub chain_id: String,
    pub height: u64,
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub prev_hash: Hash,
    /// RFC 9162 Merkle root of the transaction ids.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub tx_root: Hash,
    pub tx_count: u32,
    /// The proposer's public key.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub proposer: PublicKey,
    /// PBFT view (Raft term) of the proposal.
    pub view: u64,
    /// The proposer's clock, Unix milliseconds.
    pub timestamp_ms: u64,
}

impl From<&BlockHeader> for HeaderJson {
    fn from(header: &BlockHeader) -> HeaderJson {
        HeaderJson {
            version: header.version,
            chain_id: header.chain_id.clone(),
            height: header.height,
            prev_hash: header.prev_hash,
            tx_root: header.tx_root,
            tx_count: header.tx_count,
            proposer: header.proposer,
            view: header.view,
            timestamp_ms: header.timestamp_ms,
        }
    }
}

/// One validator's signature in a commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = CommitSignature)]
pub struct SignatureJson {
    /// The validator's index in the genesis `validators` list.
    #[schema(value_type = u16)]
    pub validator: ValidatorId,
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{128}$")]
    pub signature: Signature,
}

impl From<&CommitSignature> for SignatureJson {
    fn from(signature: &CommitSignature) -> SignatureJson {
        SignatureJson {
            validator: signature.validator,
            signature: signature.signature,
        }
    }
}

/// A commit certificate: a quorum of validators' signatures over
/// `"AEGIS/commit-vote/v1" || borsh({version, chain_id, height, view, block_hash})`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = CommitCertificate)]
pub struct CertificateJson {
    pub height: u64,
    pub view: u64,
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub block_hash: Hash,
    /// Sorted by validator index, one per validator.
    pub signatures: Vec<SignatureJson>,
}

impl From<&CommitCertificate> for CertificateJson {
    fn from(certificate: &CommitCertificate) -> CertificateJson {
        CertificateJson {
            height: certificate.height,
            view: certificate.view,
            block_hash: certificate.block_hash,
            signatures: certificate.signatures.iter().map(Into::into).collect(),
        }
    }
}

/// `GET /v1/blocks/{height}`: a committed block with its certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Block)]
pub struct BlockJson {
    /// The block hash: SHA-256 of `"AEGIS/block-header/v1" || borsh(header)`.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub hash: Hash,
    pub header: HeaderJson,
    /// In block order.
    pub transactions: Vec<TransactionJson>,
    pub certificate: CertificateJson,
}

impl From<&StoredBlock> for BlockJson {
    fn from(stored: &StoredBlock) -> BlockJson {
        BlockJson {
            hash: stored.block.hash(),
            header: (&stored.block.header).into(),
            transactions: stored.block.txs.iter().map(Into::into).collect(),
            certificate: (&stored.certificate).into(),
        }
    }
}

/// The data of one `block` event of `GET /v1/events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = BlockEvent)]
pub struct BlockEventJson {
    pub height: u64,
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub hash: Hash,
    pub tx_count: u32,
    /// The ids of its transactions, in block order.
    #[schema(value_type = Vec<String>)]
    pub tx_ids: Vec<Hash>,
}

/// One check of `/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

/// The node's overall health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every check passes.
    Healthy,
    /// A check warns: the node serves, but something needs attention (200).
    Degraded,
    /// A check fails: do not send traffic here (503).
    Unhealthy,
}

impl HealthStatus {
    pub fn of(worst: CheckStatus) -> HealthStatus {
        match worst {
            CheckStatus::Pass => HealthStatus::Healthy,
            CheckStatus::Warn => HealthStatus::Degraded,
            CheckStatus::Fail => HealthStatus::Unhealthy,
        }
    }
}

/// `storage` in `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct StorageCheck {
    pub status: CheckStatus,
    /// Height of the last stored block.
    pub block_height: u64,
    /// Why the ledger is unavailable (fail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// `peers` in `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PeersCheck {
    pub status: CheckStatus,
    /// Validators connected now.
    pub connected: usize,
    /// Validators in the genesis.
    pub validators: usize,
    /// Validators (this node included) needed to commit.
    pub quorum: usize,
    /// `min_peers` of the request, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_peers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `consensus` in `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConsensusCheck {
    pub status: CheckStatus,
    /// Whether the consensus engine runs in this process.
    pub running: bool,
    /// PBFT view (Raft term), when running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<u64>,
    /// The primary's node id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `sync` in `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SyncCheck {
    pub status: CheckStatus,
    /// As in `/status`: `synced`, `syncing`, `stalled`; without an engine `idle`,
    /// `connecting` or `isolated`.
    pub sync_status: String,
    /// How many blocks the network is ahead of this node (0 when unknown).
    pub blocks_behind: u64,
    /// `max_blocks_behind` of the request, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_blocks_behind: Option<u64>,
}

/// The four checks of `/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct HealthChecks {
    pub storage: StorageCheck,
    pub peers: PeersCheck,
    pub consensus: ConsensusCheck,
    pub sync: SyncCheck,
}

/// `GET /v1/node`: the chain a client signs for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = NodeInfo)]
pub struct NodeInfoJson {
    /// This node's name in the genesis (`node.id`).
    pub node_id: String,
    /// The chain id every transaction must carry.
    pub chain_id: String,
    /// `pbft` or `raft`.
    pub algorithm: String,
    /// The node's version.
    pub version: String,
    /// Validators in the genesis.
    pub validators: usize,
}

/// How a genesis validator stands as seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// This node itself.
    #[serde(rename = "self")]
    Myself,
    /// Connected now (mutually authenticated TLS session).
    Connected,
    /// Not connected now.
    Disconnected,
}

/// One genesis validator in `GET /v1/peers`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = ValidatorPeer)]
pub struct ValidatorPeerJson {
    /// Its index in the genesis `validators` list (certificates name signers by it).
    pub validator_id: u16,
    /// Its name in the genesis.
    pub name: String,
    /// Its Ed25519 public key (checks its certificate signatures).
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{64}$")]
    pub public_key: PublicKey,
    pub state: PeerState,
    /// `inbound` or `outbound` (connected only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    /// Last ping round trip in milliseconds (connected, once one was answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// `GET /v1/peers`: the genesis validators, which of them this node is connected to, and
/// the quorum a block needs.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Peers)]
pub struct PeersJson {
    /// This node's name.
    pub node_id: String,
    /// Validators connected now (this node not counted).
    pub connected: usize,
    /// Commit votes a block needs: `floor((n + f) / 2) + 1`.
    pub quorum: usize,
    /// Every genesis validator, in genesis order.
    pub validators: Vec<ValidatorPeerJson>,
}

/// `GET /health`: 200 when healthy or degraded, 503 when unhealthy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Health)]
pub struct HealthJson {
    /// The worst of the checks: `pass` everywhere is healthy, a `warn` degraded, a `fail`
    /// unhealthy.
    pub status: HealthStatus,
    pub checks: HealthChecks,
    pub node_id: String,
    /// Validators connected now.
    pub peers: usize,
    pub block_height: u64,
    pub sync_status: String,
    pub uptime_seconds: u64,
    /// `ok`, or the storage fault.
    pub storage: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_transaction_json_is_the_ledger_types_json() {
        let tx = aegis_testkit::tx(7);
        let ours = serde_json::to_value(TransactionJson::from(&tx)).unwrap();
        let theirs = serde_json::to_value(&tx).unwrap();
        assert_eq!(ours, theirs);
        let back: TransactionJson = serde_json::from_value(theirs).unwrap();
        assert_eq!(Transaction::from(back), tx);
    }

    #[test]
    fn unknown_transaction_fields_are_refused() {
        let mut json = serde_json::to_value(TransactionJson::from(&aegis_testkit::tx(1))).unwrap();
        json["fee"] = serde_json::json!(1);
        let error = serde_json::from_value::<TransactionJson>(json).unwrap_err();
        assert!(error.to_string().contains("unknown field `fee`"), "{error}");
    }

    #[test]
    fn header_and_certificate_json_match_the_ledger_types_json() {
        let mut fixture = aegis_storage::fixtures::ChainFixture::new(4, "c");
        let (block, certificate) = fixture.next_block(3, 8);
        assert_eq!(
            serde_json::to_value(HeaderJson::from(&block.header)).unwrap(),
            serde_json::to_value(&block.header).unwrap()
        );
        assert_eq!(
            serde_json::to_value(CertificateJson::from(&certificate)).unwrap(),
            serde_json::to_value(&certificate).unwrap()
        );
    }
}
