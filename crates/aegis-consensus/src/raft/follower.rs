//! The follower's side of log replication (§5.3): the consistency check, deleting a
//! conflicting suffix, appending, committing with the leader's certificates, and the commit
//! votes returned for what this node holds durably.

use aegis_types::{CommitCertificate, CommitVote, Hash};

use super::config::{
    MAX_CERTIFICATES_PER_APPEND, MAX_ENTRIES_PER_APPEND, MAX_UNCOMMITTED_ENTRIES,
    MAX_VOTES_PER_RESPONSE,
};
use super::log::LogEntry;
use super::messages::{AppendEntries, AppendResponse, CatchUp, RaftMessage, VoteSignature};
use super::reject::{EntryFault, RejectReason};
use super::{Raft, RaftRole};
use aegis_types::ValidatorId;

impl Raft {
    pub(super) fn on_append(&mut self, from: ValidatorId, append: AppendEntries) {
        if append.term < self.term {
            self.reject(
                Some(from),
                RejectReason::StaleTerm {
                    term: append.term,
                    current: self.term,
                },
            );
            // Thesis §9.6 with CheckQuorum: answering tells a stale leader the newer term.
            let hint = self.log.last_index();
            return self.answer_append(from, false, append.prev_index, hint);
        }
        if let Err(fault) = self.check_entries(&append) {
            return self.reject(Some(from), RejectReason::BadEntries(fault));
        }
        if self.role == RaftRole::Leader && append.term == self.term {
            // Election Safety (§5.2) says this cannot happen; refuse rather than follow.
            return self.reject(Some(from), RejectReason::TwoLeaders { term: self.term });
        }
        let grown = (append.prev_index + append.entries.len() as u64)
            .saturating_sub(self.log.committed().height);
        // A log that becomes a leader's gets one more entry (the empty block of its term).
        if grown > (MAX_UNCOMMITTED_ENTRIES - 1) as u64 {
            return self.reject(
                Some(from),
                RejectReason::LogFull {
                    entries: grown as usize,
                    max: MAX_UNCOMMITTED_ENTRIES - 1,
                },
            );
        }
        self.follow(from, append.term);
        let committed = self.log.committed();
        // §5.3: "Reply false if log doesn't contain an entry at prevLogIndex whose term
        // matches prevLogTerm". Below the committed tip every entry matches: the leader holds
        // every committed entry (§5.4).
        if append.prev_index > self.log.last_index() {
            let hint = self.log.last_index();
            return self.answer_append(from, false, append.prev_index, hint);
        }
        if append.prev_index >= committed.height
            && self.log.term_at(append.prev_index) != Some(append.prev_term)
        {
            let hint = self.conflict_hint(append.prev_index, append.prev_term);
            return self.answer_append(from, false, append.prev_index, hint);
        }
        if !self.links_to_log(&append) {
            return self.reject(
                Some(from),
                RejectReason::BadEntries(EntryFault::WrongParent { index: 0 }),
            );
        }
        let matched = append.prev_index + append.entries.len() as u64;
        for block in append.entries {
            let index = block.height();
            if index <= self.log.committed().height {
                continue;
            }
            let entry = LogEntry::new(block);
            match self.log.hash_at(index) {
                Some(hash) if hash == entry.hash => continue,
                // §5.3: "If an existing entry conflicts with a new one (same index but
                // different terms), delete the existing entry and all that follow it".
                Some(_) => self.truncate_log(index),
                None => {}
            }
            self.log.append(entry);
        }
        self.apply_certificates(from, &append.certificates);
        // When the log ends in an entry of this term, all of it came from this term's
        // leader and matches the leader's log; otherwise only up to the append's last entry.
        let index = if self.log.last_term() == self.term {
            self.log.last_index()
        } else {
            matched.max(self.log.committed().height)
        };
        self.answer_append(from, true, index, append.leader_commit);
    }

    /// The structure of an append, before anything changes: entries contiguous after
    /// `prev_index`, chained to each other, of terms between `prev_term` and the message's,
    /// well formed and of this chain; bounded counts.
    fn check_entries(&self, append: &AppendEntries) -> Result<(), EntryFault> {
        if append.entries.len() > MAX_ENTRIES_PER_APPEND
            || append.certificates.len() > MAX_CERTIFICATES_PER_APPEND
        {
            return Err(EntryFault::TooMany {
                max: MAX_ENTRIES_PER_APPEND.max(MAX_CERTIFICATES_PER_APPEND),
            });
        }
        let mut previous: Option<(Hash, u64)> = None;
        let mut term_floor = append.prev_term;
        for (index, block) in append.entries.iter().enumerate() {
            if block.height() != append.prev_index + index as u64 + 1 {
                return Err(EntryFault::NotContiguous { index });
            }
            let term = block.header.view;
            if term > append.term || term < term_floor {
                return Err(EntryFault::BadTerm { index });
            }
            term_floor = term;
            if let Some((prev_hash, _)) = previous
                && block.header.prev_hash != prev_hash
            {
                return Err(EntryFault::WrongParent { index });
            }
            let malformed = block.header.chain_id != self.config.chain_id
                || block.txs.len() > self.config.max_block_txs as usize
                || self
                    .config
                    .validators
                    .id_of(&block.header.proposer)
                    .is_none()
                || block.check_structure().is_err();
            if malformed {
                return Err(EntryFault::Malformed { index });
            }
            previous = Some((block.hash(), term));
        }
        if append.prev_term > append.term {
            return Err(EntryFault::BadTerm { index: 0 });
        }
        Ok(())
    }

    /// The first entry this node does not yet hold as committed links to what precedes it
    /// here (after the consistency check this holds in Raft; a bug must not splice chains).
    fn links_to_log(&self, append: &AppendEntries) -> bool {
        let committed = self.log.committed().height;
        let Some(first) = append.entries.iter().find(|b| b.height() > committed) else {
            return true;
        };
        let before = first.height() - 1;
        // The entry before it is the committed tip or passed the consistency check.
        self.log.hash_at(before) == Some(first.header.prev_hash)
    }

    /// §5.3's optimisation (as etcd's `findConflictByTerm`): the highest index at or below
    /// `index` whose term is at most `term`, so the leader skips a conflicting term at once.
    fn conflict_hint(&self, index: u64, term: u64) -> u64 {
        let committed = self.log.committed().height;
        let mut candidate = index.min(self.log.last_index());
        while candidate > committed {
            if self.log.term_at(candidate).is_some_and(|t| t <= term) {
                return candidate;
            }
            candidate -= 1;
        }
        committed
    }

    /// Deletes entries from `from` on, and forgets that they were durable.
    pub(super) fn truncate_log(&mut self, from: u64) {
        self.log.truncate_from(from);
        let last = from - 1;
        self.durable_index = self.durable_index.min(last);
        for mark in &mut self.persist_marks {
            mark.1 = mark.1.min(last);
        }
        self.signed_votes.retain(|height, _| *height < from);
    }

    /// Commits the blocks the leader's certificates prove, in order, for entries this node
    /// holds with the same hash.
    fn apply_certificates(&mut self, from: ValidatorId, certificates: &[CommitCertificate]) {
        for certificate in certificates {
            let next = self.log.committed().height + 1;
            if certificate.height < next {
                continue;
            }
            let Some(entry) = self.log.entry(certificate.height) else {
                break;
            };
            if certificate.height != next {
                break;
            }
            if certificate.block_hash != entry.hash || !self.certificate_verifies(certificate) {
                return self.reject(
                    Some(from),
                    RejectReason::BadCertificate {
                        height: certificate.height,
                    },
                );
            }
            self.commit_entry(certificate.clone());
        }
    }

    /// Answers the leader, once this node's log is durable: the match (or the refusal), the
    /// committed height, and on success the commit votes for the entries above the leader's
    /// commit, when this log ends in an entry of the current term (see `AppendResponse`).
    fn answer_append(&mut self, to: ValidatorId, success: bool, index: u64, hint_or_commit: u64) {
        let committed = self.log.committed().height;
        let mut votes = Vec::new();
        let hint = if success {
            let leader_commit = hint_or_commit;
            if self.log.last_term() == self.term {
                let from = leader_commit.max(committed) + 1;
                let until = self.log.last_index().min(index);
                for height in (from..=until).take(MAX_VOTES_PER_RESPONSE) {
                    if let Some(hash) = self.log.entry(height).map(|e| e.hash) {
                        let signature = self.own_vote(height, hash);
                        votes.push(VoteSignature { height, signature });
                    }
                }
            }
            0
        } else {
            hint_or_commit
        };
        let answer = AppendResponse {
            term: self.term,
            success,
            index,
            hint,
            committed,
            votes,
        };
        self.send_durable(to, RaftMessage::AppendResponse(answer));
    }

    /// This node's commit vote for the block `hash` at `height` in the current term.
    /// Ed25519 is deterministic, so the memo only saves time.
    pub(super) fn own_vote(&mut self, height: u64, hash: Hash) -> aegis_types::Signature {
        if let Some((known, signature)) = self.signed_votes.get(&height)
            && *known == hash
        {
            return *signature;
        }
        let vote = CommitVote::new(&self.config.chain_id, height, self.term, hash);
        let signature = self.key.sign_commit_vote(self.config.me, &vote).signature;
        self.signed_votes.insert(height, (hash, signature));
        signature
    }

    /// The leader has no longer the entries this node needs: fetch the committed blocks.
    pub(super) fn on_catch_up(&mut self, from: ValidatorId, catch_up: CatchUp) {
        if catch_up.term < self.term {
            self.reject(
                Some(from),
                RejectReason::StaleTerm {
                    term: catch_up.term,
                    current: self.term,
                },
            );
            let hint = self.log.last_index();
            return self.answer_append(from, false, 0, hint);
        }
        if self.role == RaftRole::Leader && catch_up.term == self.term {
            return self.reject(Some(from), RejectReason::TwoLeaders { term: self.term });
        }
        self.follow(from, catch_up.term);
        if catch_up.committed > self.log.committed().height {
            self.request_sync();
        }
        let hint = self.log.last_index();
        self.answer_append(from, false, 0, hint);
    }
}
