//! Why a Raft message or synced block was refused.

use aegis_types::ValidatorId;

use crate::Reject;

/// The reason an input was refused. Refusing never changes the protocol state (a stale
/// message may still be answered, so its sender learns the newer term).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("sender is not in the validator set")]
    UnknownSender,
    #[error("message from this node itself")]
    FromSelf,
    #[error("message of term {term}, node is in term {current}")]
    StaleTerm { term: u64, current: u64 },
    #[error("vote request for term {term} while the leader's lease holds")]
    LeaderLease { term: u64 },
    #[error("another leader in this leader's term {term}")]
    TwoLeaders { term: u64 },
    #[error("invalid entries: {0}")]
    BadEntries(EntryFault),
    #[error("{entries} uncommitted entries would exceed the log's bound of {max}")]
    LogFull { entries: usize, max: usize },
    #[error("bad commit vote from {from} for height {height}")]
    BadVote { from: ValidatorId, height: u64 },
    #[error("invalid commit certificate for height {height}")]
    BadCertificate { height: u64 },
    #[error("synced block: {0}")]
    BadSyncedBlock(SyncFault),
}

/// What is wrong with the entries of an AppendEntries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryFault {
    #[error("entry {index} is not at height prev_index + {index} + 1")]
    NotContiguous { index: usize },
    #[error("entry {index} does not link to the entry before it")]
    WrongParent { index: usize },
    #[error("entry {index} has a term above the message's or below the entry before it")]
    BadTerm { index: usize },
    #[error("entry {index} is malformed or for another chain")]
    Malformed { index: usize },
    #[error("more than {max} entries or certificates")]
    TooMany { max: usize },
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
    #[error("conflicts with the leader's own log")]
    ConflictsWithLeaderLog,
}

impl Reject for RejectReason {
    /// `bad_synced_block` is evidence only for `ConflictsWithLeaderLog`.
    const LABELS: &'static [(&'static str, bool)] = &[
        ("unknown_sender", false),
        ("from_self", false),
        ("stale_term", false),
        ("leader_lease", false),
        ("two_leaders", true),
        ("bad_entries", true),
        ("log_full", false),
        ("bad_vote", true),
        ("bad_certificate", true),
        ("bad_synced_block", true),
    ];

    fn label(&self) -> &'static str {
        match self {
            RejectReason::UnknownSender => "unknown_sender",
            RejectReason::FromSelf => "from_self",
            RejectReason::StaleTerm { .. } => "stale_term",
            RejectReason::LeaderLease { .. } => "leader_lease",
            RejectReason::TwoLeaders { .. } => "two_leaders",
            RejectReason::BadEntries(_) => "bad_entries",
            RejectReason::LogFull { .. } => "log_full",
            RejectReason::BadVote { .. } => "bad_vote",
            RejectReason::BadCertificate { .. } => "bad_certificate",
            RejectReason::BadSyncedBlock(_) => "bad_synced_block",
        }
    }

    /// Raft assumes no Byzantine validator, but a correct one never sends a bad signature,
    /// a malformed entry or a certificate that does not verify: those are logged as evidence.
    fn is_byzantine_evidence(&self) -> bool {
        matches!(
            self,
            RejectReason::BadEntries(_)
                | RejectReason::TwoLeaders { .. }
                | RejectReason::BadVote { .. }
                | RejectReason::BadCertificate { .. }
                | RejectReason::BadSyncedBlock(SyncFault::ConflictsWithLeaderLog)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_lists_every_variant_and_marks_the_evidence() {
        let id = ValidatorId(1);
        let all = [
            RejectReason::UnknownSender,
            RejectReason::FromSelf,
            RejectReason::StaleTerm {
                term: 0,
                current: 1,
            },
            RejectReason::LeaderLease { term: 1 },
            RejectReason::TwoLeaders { term: 1 },
            RejectReason::BadEntries(EntryFault::TooMany { max: 1 }),
            RejectReason::LogFull { entries: 2, max: 1 },
            RejectReason::BadVote {
                from: id,
                height: 1,
            },
            RejectReason::BadCertificate { height: 1 },
            RejectReason::BadSyncedBlock(SyncFault::WrongParent),
        ];
        let labels: Vec<&str> = all.iter().map(Reject::label).collect();
        let listed: Vec<&str> = RejectReason::LABELS.iter().map(|(l, _)| *l).collect();
        assert_eq!(labels, listed);
        let conflict = RejectReason::BadSyncedBlock(SyncFault::ConflictsWithLeaderLog);
        for reason in all.iter().chain([&conflict]) {
            if reason.is_byzantine_evidence() {
                assert!(
                    RejectReason::LABELS.contains(&(reason.label(), true)),
                    "{reason:?}"
                );
            }
        }
        // Exactly what a correct validator never sends is evidence; a stale term, a lease,
        // a full log or a synced block from the wrong parent happen to honest nodes.
        let evidence: Vec<&str> = all
            .iter()
            .chain([&conflict])
            .filter(|r| r.is_byzantine_evidence())
            .map(Reject::label)
            .collect();
        assert_eq!(
            evidence,
            [
                "two_leaders",
                "bad_entries",
                "bad_vote",
                "bad_certificate",
                "bad_synced_block"
            ]
        );
    }
}
