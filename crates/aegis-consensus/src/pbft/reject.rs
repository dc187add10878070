//! Why a PBFT message or synced block was refused.

use aegis_types::ValidatorId;

use crate::Reject;

/// The reason a message was refused. Refusing never changes protocol state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("sender is not in the validator set")]
    UnknownSender,
    #[error("message names validator {claimed} but came from another peer")]
    SenderMismatch { claimed: ValidatorId },
    #[error("message from this node itself")]
    FromSelf,
    #[error("bad signature")]
    BadSignature,
    #[error("message for view {view}, node is in view {current}")]
    StaleView { view: u64, current: u64 },
    #[error("message for view {view} is too far ahead of view {current}")]
    FutureView { view: u64, current: u64 },
    #[error("only the primary of view {view} ({primary}) may send this")]
    NotPrimary { view: u64, primary: ValidatorId },
    #[error("the primary does not send PREPARE")]
    PrepareFromPrimary,
    #[error("sequence {seq} outside the watermarks ({low}, {high}]")]
    OutOfWindow { seq: u64, low: u64, high: u64 },
    #[error("duplicate")]
    Duplicate,
    #[error(
        "byzantine: conflicting pre-prepare for view {view}, sequence {seq} (equivocating primary)"
    )]
    Equivocation { view: u64, seq: u64 },
    #[error("byzantine: validator voted twice in view {view} for sequence {seq}")]
    ConflictingVote { view: u64, seq: u64 },
    #[error("invalid batch: {0}")]
    InvalidBatch(BatchFault),
    #[error("invalid checkpoint proof")]
    BadCheckpointProof,
    #[error("invalid prepared certificate for sequence {seq}")]
    BadPreparedCert { seq: u64 },
    #[error("invalid view change: {0}")]
    BadViewChange(&'static str),
    #[error("invalid new view: {0}")]
    BadNewView(&'static str),
    #[error("checkpoint sequence {seq} is not a multiple of the interval")]
    NotACheckpoint { seq: u64 },
    #[error("synced block: {0}")]
    BadSyncedBlock(SyncFault),
}

/// What is wrong with a proposed batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchFault {
    #[error("{count} transactions exceed max_block_txs {max}")]
    TooManyTxs { count: usize, max: u32 },
    #[error("proposer or view does not match the pre-prepare")]
    WrongProposer,
    #[error("transaction {0} is malformed")]
    MalformedTx(usize),
    #[error("transaction {0} has a bad signature")]
    BadTxSignature(usize),
    #[error("transaction {0} repeats an earlier one in the batch")]
    DuplicateTx(usize),
    #[error("a null request must carry no transactions")]
    NonEmptyNull,
    #[error("{bytes} bytes of transactions exceed the block limit of {max}")]
    TooManyBytes { bytes: usize, max: usize },
    #[error("timestamp {ahead_ms} ms ahead of this replica's clock (at most {max_ms})")]
    TimestampAhead { ahead_ms: u64, max_ms: u64 },
    #[error("timestamp {timestamp_ms} before its parent's {parent_ms}")]
    TimestampBeforeParent { timestamp_ms: u64, parent_ms: u64 },
    #[error("transaction {0} is already committed")]
    AlreadyCommitted(usize),
}

/// What is wrong with a synced block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncFault {
    #[error("height {height} is not the next one ({next})")]
    NotNext { height: u64, next: u64 },
    #[error("does not link to the previous block")]
    WrongParent,
    #[error("certificate does not match the block")]
    CertificateMismatch,
    #[error("certificate does not verify")]
    BadCertificate,
    #[error("block is malformed")]
    Malformed,
}

impl Reject for RejectReason {
    const LABELS: &'static [(&'static str, bool)] = &[
        ("unknown_sender", false),
        ("sender_mismatch", false),
        ("from_self", false),
        ("bad_signature", true),
        ("stale_view", false),
        ("future_view", false),
        ("not_primary", false),
        ("prepare_from_primary", false),
        ("out_of_window", false),
        ("duplicate", false),
        ("equivocation", true),
        ("conflicting_vote", true),
        ("invalid_batch", true),
        ("bad_checkpoint_proof", true),
        ("bad_prepared_cert", true),
        ("bad_view_change", true),
        ("bad_new_view", true),
        ("not_a_checkpoint", false),
        ("bad_synced_block", false),
    ];

    fn label(&self) -> &'static str {
        match self {
            RejectReason::UnknownSender => "unknown_sender",
            RejectReason::SenderMismatch { .. } => "sender_mismatch",
            RejectReason::FromSelf => "from_self",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::StaleView { .. } => "stale_view",
            RejectReason::FutureView { .. } => "future_view",
            RejectReason::NotPrimary { .. } => "not_primary",
            RejectReason::PrepareFromPrimary => "prepare_from_primary",
            RejectReason::OutOfWindow { .. } => "out_of_window",
            RejectReason::Duplicate => "duplicate",
            RejectReason::Equivocation { .. } => "equivocation",
            RejectReason::ConflictingVote { .. } => "conflicting_vote",
            RejectReason::InvalidBatch(_) => "invalid_batch",
            RejectReason::BadCheckpointProof => "bad_checkpoint_proof",
            RejectReason::BadPreparedCert { .. } => "bad_prepared_cert",
            RejectReason::BadViewChange(_) => "bad_view_change",
            RejectReason::BadNewView(_) => "bad_new_view",
            RejectReason::NotACheckpoint { .. } => "not_a_checkpoint",
            RejectReason::BadSyncedBlock(_) => "bad_synced_block",
        }
    }

    /// Whether the reason is evidence of a Byzantine validator (logged with the word
    /// "byzantine"), as opposed to staleness or loss.
    fn is_byzantine_evidence(&self) -> bool {
        matches!(
            self,
            RejectReason::BadSignature
                | RejectReason::Equivocation { .. }
                | RejectReason::ConflictingVote { .. }
                | RejectReason::InvalidBatch(_)
                | RejectReason::BadCheckpointProof
                | RejectReason::BadPreparedCert { .. }
                | RejectReason::BadViewChange(_)
                | RejectReason::BadNewView(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_lists_every_variant_with_its_evidence_flag() {
        let id = ValidatorId(1);
        let all = [
            RejectReason::UnknownSender,
            RejectReason::SenderMismatch { claimed: id },
            RejectReason::FromSelf,
            RejectReason::BadSignature,
            RejectReason::StaleView {
                view: 0,
                current: 1,
            },
            RejectReason::FutureView {
                view: 9,
                current: 1,
            },
            RejectReason::NotPrimary {
                view: 0,
                primary: id,
            },
            RejectReason::PrepareFromPrimary,
            RejectReason::OutOfWindow {
                seq: 0,
                low: 1,
                high: 2,
            },
            RejectReason::Duplicate,
            RejectReason::Equivocation { view: 0, seq: 1 },
            RejectReason::ConflictingVote { view: 0, seq: 1 },
            RejectReason::InvalidBatch(BatchFault::WrongProposer),
            RejectReason::BadCheckpointProof,
            RejectReason::BadPreparedCert { seq: 1 },
            RejectReason::BadViewChange("x"),
            RejectReason::BadNewView("x"),
            RejectReason::NotACheckpoint { seq: 1 },
            RejectReason::BadSyncedBlock(SyncFault::WrongParent),
        ];
        let listed: Vec<(&str, bool)> = all
            .iter()
            .map(|r| (r.label(), r.is_byzantine_evidence()))
            .collect();
        assert_eq!(listed, RejectReason::LABELS);
    }
}
