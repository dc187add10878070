//! The leader's side of log replication (§5.3) and commitment (§5.4.2): AppendEntries to
//! each follower from its nextIndex, heartbeats, the answers, and the commit certificates
//! built from the followers' commit votes.

use aegis_types::{CommitCertificate, CommitSignature, CommitVote, ValidatorId};

use super::config::{MAX_APPEND_BYTES, MAX_CERTIFICATES_PER_APPEND, MAX_ENTRIES_PER_APPEND};
use super::messages::{AppendEntries, AppendResponse, CatchUp, RaftMessage, VoteSignature};
use super::reject::RejectReason;
use super::{Raft, RaftTimer};

impl Raft {
    /// Sends `to` what it lacks: entries from its nextIndex (at most a message's worth, when
    /// its flow control allows), the certificates of blocks it has not committed, the
    /// leader's commit. When the entry before its nextIndex has left this node's memory, a
    /// [`CatchUp`] instead. With `always` false, nothing goes out when there is nothing new.
    pub(super) fn send_append(&mut self, to: ValidatorId, always: bool) {
        let Some(mut progress) = self.progress.get(&to).copied() else {
            return;
        };
        let committed = self.log.committed().height;
        let prev_index = progress.next - 1;
        let first_certificate = self.log.first_available();
        let missing_certificates = progress
            .committed
            .is_some_and(|c| c < committed && c + 1 < first_certificate);
        let Some(prev_term) = self
            .log
            .term_at(prev_index)
            .filter(|_| !missing_certificates)
        else {
            if always || progress.may_send() {
                let catch_up = CatchUp {
                    term: self.term,
                    committed,
                };
                self.send_durable(to, RaftMessage::CatchUp(catch_up));
                progress.sent(prev_index);
                self.progress.insert(to, progress);
            }
            return;
        };
        let mut entries = Vec::new();
        if progress.may_send() {
            let mut bytes = 0;
            for index in progress.next..=self.log.last_index() {
                let Some(entry) = self.log.block(index) else {
                    break;
                };
                let full = entries.len() >= MAX_ENTRIES_PER_APPEND
                    || (!entries.is_empty() && bytes + entry.bytes > MAX_APPEND_BYTES);
                if full {
                    break;
                }
                bytes += entry.bytes;
                entries.push(entry.block.clone());
            }
        }
        let last_sent = prev_index + entries.len() as u64;
        // Certificates for what it holds (or will, with these entries) and has not committed,
        // each once; a heartbeat sends again what it may have lost.
        let known = progress.committed.unwrap_or(progress.matched);
        let certificates_from = if always {
            known
        } else {
            known.max(progress.certificates_sent)
        } + 1;
        let certificates: Vec<CommitCertificate> = (certificates_from..=committed.min(last_sent))
            .take(MAX_CERTIFICATES_PER_APPEND)
            .filter_map(|height| self.log.retained(height).map(|(_, c)| c.clone()))
            .collect();
        if !always && entries.is_empty() && certificates.is_empty() {
            return;
        }
        if let Some(last) = certificates.last() {
            progress.certificates_sent = progress.certificates_sent.max(last.height);
        }
        let append = AppendEntries {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            leader_commit: committed,
            certificates,
        };
        self.send_durable(to, RaftMessage::Append(append));
        progress.sent(last_sent);
        self.progress.insert(to, progress);
    }

    /// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log
    /// entries) to all followers in order to maintain their authority"; here they also carry
    /// whatever a follower still lacks.
    pub(super) fn on_heartbeat(&mut self) {
        if !self.is_leader() {
            return;
        }
        let deadline = self
            .now_ms
            .saturating_add(self.config.heartbeat_interval_ms);
        self.set_timer(RaftTimer::Heartbeat, deadline);
        let peers: Vec<ValidatorId> = self.progress.keys().copied().collect();
        for peer in peers {
            if let Some(progress) = self.progress.get_mut(&peer) {
                progress.heartbeat();
            }
            self.send_append(peer, true);
        }
    }

    pub(super) fn on_append_response(&mut self, from: ValidatorId, answer: AppendResponse) {
        if answer.term > self.term {
            return self.become_follower(answer.term, None);
        }
        if answer.term < self.term {
            return self.reject(
                Some(from),
                RejectReason::StaleTerm {
                    term: answer.term,
                    current: self.term,
                },
            );
        }
        if !self.is_leader() {
            // An answer to the leader this node was earlier in the term.
            return;
        }
        self.recent_active.insert(from);
        let last_index = self.log.last_index();
        let Some(mut progress) = self.progress.get(&from).copied() else {
            return;
        };
        progress.committed_to(answer.committed, last_index);
        if answer.committed > self.log.committed().height {
            // The follower committed blocks this leader has not: their certificates are in
            // the ledgers.
            self.request_sync();
        }
        let resend = if answer.success {
            progress.succeeded(answer.index.min(last_index));
            true
        } else {
            progress.rejected(answer.index, answer.hint)
        };
        self.progress.insert(from, progress);
        if answer.success {
            self.record_votes(from, &answer.votes);
            self.try_commit();
        }
        if resend {
            self.send_append(from, false);
        }
    }

    /// Keeps the commit votes of `from` for uncommitted entries, each checked once.
    fn record_votes(&mut self, from: ValidatorId, votes: &[VoteSignature]) {
        let Some(key) = self.config.validators.get(from).map(|v| v.public_key) else {
            return;
        };
        let committed = self.log.committed().height;
        for vote in votes.iter().take(super::config::MAX_VOTES_PER_RESPONSE) {
            let Some(hash) = self.log.entry(vote.height).map(|e| e.hash) else {
                continue;
            };
            debug_assert!(vote.height > committed);
            let known = self
                .commit_votes
                .get(&vote.height)
                .and_then(|votes| votes.get(&from));
            if known == Some(&vote.signature) {
                continue;
            }
            let statement = CommitVote::new(&self.config.chain_id, vote.height, self.term, hash);
            if !self
                .verifier
                .verify(&key, &statement.signing_bytes(), &vote.signature)
            {
                return self.reject(
                    Some(from),
                    RejectReason::BadVote {
                        from,
                        height: vote.height,
                    },
                );
            }
            self.commit_votes
                .entry(vote.height)
                .or_default()
                .insert(from, vote.signature);
        }
    }

    /// §5.3/§5.4.2: commits the next entries while a majority of commit votes of the current
    /// term back them. A vote counts when its voter holds an entry of the current term at or
    /// above the height: a follower whose matchIndex says so, the leader once its own log is
    /// durable that far (`Input::Persisted`). So an entry of an earlier term commits only
    /// with one of the current term (§5.4.2, Figure 8). Followers learn of the commit at once,
    /// with the certificates.
    pub(super) fn try_commit(&mut self) {
        let mut committed_any = false;
        // The first entry of the current term: this leader's own, appended after the others.
        let Some(first_own) = self
            .log
            .entries()
            .rev()
            .take_while(|e| e.term() == self.term)
            .last()
            .map(|e| e.index())
        else {
            return;
        };
        loop {
            let height = self.log.committed().height + 1;
            let Some(hash) = self.log.entry(height).map(|e| e.hash) else {
                break;
            };
            let holds_own_entry = height.max(first_own);
            if self.durable_index >= holds_own_entry {
                let signature = self.own_vote(height, hash);
                self.commit_votes
                    .entry(height)
                    .or_default()
                    .insert(self.config.me, signature);
            }
            let me = self.config.me;
            let counted: Vec<CommitSignature> = self
                .commit_votes
                .get(&height)
                .into_iter()
                .flatten()
                .filter(|(voter, _)| {
                    **voter == me
                        || self
                            .progress
                            .get(voter)
                            .is_some_and(|p| p.matched >= holds_own_entry)
                })
                .map(|(validator, signature)| CommitSignature {
                    validator: *validator,
                    signature: *signature,
                })
                .collect();
            if counted.len() < self.config.quorum() {
                break;
            }
            self.commit_votes.remove(&height);
            let signatures = counted;
            let certificate = CommitCertificate {
                height,
                view: self.term,
                block_hash: hash,
                signatures,
            };
            self.commit_entry(certificate);
            committed_any = true;
        }
        if committed_any {
            // Room in the pipeline: when the next block is asked for, its AppendEntries
            // carry the new certificates; otherwise they go out on their own now.
            self.maybe_propose();
            if self.proposal_asked {
                self.certificates_owed = true;
            } else {
                self.send_owed_certificates();
            }
        }
    }

    /// Sends every follower the certificates it has not been sent yet.
    pub(super) fn send_owed_certificates(&mut self) {
        self.certificates_owed = false;
        let peers: Vec<ValidatorId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer, false);
        }
    }
}
