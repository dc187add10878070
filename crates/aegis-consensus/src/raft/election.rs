//! Leader election (§5.2) with the election restriction (§5.4.1), PreVote (thesis §9.6) and
//! CheckQuorum with the leader lease (thesis §6.2, §9.6), as etcd-io/raft implements them.

use std::collections::BTreeMap;

use aegis_types::ValidatorId;

use super::messages::{RaftMessage, RequestVote, VoteResponse};
use super::progress::Progress;
use super::reject::RejectReason;
use super::{Raft, RaftRole, RaftTimer};
use crate::{Effect, Outgoing};

impl Raft {
    /// §5.2: "When servers start up, they begin as followers"; a restarted node knows no
    /// leader until one speaks to it.
    pub(super) fn on_start(&mut self) {
        self.role = RaftRole::Follower;
        self.leader = None;
        self.leader_heard_ms = None;
        self.arm_election_timer();
    }

    /// §5.2: "election timeouts are chosen randomly from a fixed interval", here [T, 2T) with
    /// T = `election_timeout_ms`, from the driver's entropy (a seed replays it).
    pub(super) fn randomized_election_timeout_ms(&self) -> u64 {
        let base = self.config.election_timeout_ms;
        base + self.entropy % base
    }

    pub(super) fn arm_election_timer(&mut self) {
        let deadline = self
            .now_ms
            .saturating_add(self.randomized_election_timeout_ms());
        self.set_timer(RaftTimer::Election, deadline);
    }

    pub(super) fn on_election_timeout(&mut self) {
        if self.is_leader() {
            return;
        }
        if self.config.pre_vote {
            self.pre_campaign();
        } else {
            self.campaign();
        }
    }

    /// Thesis §9.6: ask for pre-votes for the next term without raising this node's own, so
    /// a node that cannot win (cut off, or behind) never disrupts the cluster.
    fn pre_campaign(&mut self) {
        self.role = RaftRole::PreCandidate;
        self.set_leader(None);
        self.votes = BTreeMap::from([(self.config.me, true)]);
        self.arm_election_timer();
        let request = RequestVote {
            term: self.term + 1,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            pre_vote: true,
        };
        self.out
            .plain
            .push(Outgoing::All(RaftMessage::RequestVote(request)));
        if self.granted_by_quorum() {
            self.campaign();
        }
    }

    /// §5.2: "a follower increments its current term and transitions to candidate state. It
    /// then votes for itself and issues RequestVote RPCs in parallel"; the requests leave
    /// only once the new term and the vote are durable.
    pub(super) fn campaign(&mut self) {
        self.advance_term(self.term + 1);
        self.voted_for = Some(self.config.me);
        self.role = RaftRole::Candidate;
        self.set_leader(None);
        self.votes = BTreeMap::from([(self.config.me, true)]);
        self.out
            .first
            .push(Effect::LeaderSuspected { epoch: self.term });
        self.arm_election_timer();
        let request = RequestVote {
            term: self.term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            pre_vote: false,
        };
        self.out
            .durable
            .push(Outgoing::All(RaftMessage::RequestVote(request)));
        if self.granted_by_quorum() {
            self.become_leader();
        }
    }

    fn granted_by_quorum(&self) -> bool {
        self.votes.values().filter(|granted| **granted).count() >= self.config.quorum()
    }

    fn refused_by_quorum(&self) -> bool {
        let refused = self.votes.values().filter(|granted| !**granted).count();
        refused > self.config.validators.len() - self.config.quorum()
    }

    /// §5.1: a newer term resets the vote. Own commit votes were for the old term.
    pub(super) fn advance_term(&mut self, term: u64) {
        assert!(term > self.term, "terms only increase");
        self.term = term;
        self.voted_for = None;
        self.signed_votes.clear();
    }

    fn set_leader(&mut self, leader: Option<ValidatorId>) {
        if leader != self.leader {
            self.leader = leader;
            if let Some(leader) = leader {
                self.out.first.push(Effect::LeaderChanged {
                    epoch: self.term,
                    leader,
                });
            }
        }
        if leader.is_none() {
            self.leader_heard_ms = None;
        }
    }

    /// Becomes (or stays) a follower in `term`, of `leader` when known (§5.1: "If a candidate
    /// or leader discovers that its term is out of date, it immediately reverts to follower").
    pub(super) fn become_follower(&mut self, term: u64, leader: Option<ValidatorId>) {
        if term > self.term {
            self.advance_term(term);
        }
        if self.is_leader() {
            self.cancel_timer(RaftTimer::Heartbeat);
            self.cancel_timer(RaftTimer::CheckQuorum);
        }
        self.role = RaftRole::Follower;
        self.progress.clear();
        self.commit_votes.clear();
        self.recent_active.clear();
        self.votes.clear();
        self.set_leader(leader);
        self.arm_election_timer();
    }

    /// A message from the leader of `term`: follow it, restart the election timer, and
    /// renew the lease.
    pub(super) fn follow(&mut self, leader: ValidatorId, term: u64) {
        if term > self.term || self.role != RaftRole::Follower || self.leader != Some(leader) {
            self.become_follower(term, Some(leader));
        } else {
            self.arm_election_timer();
        }
        self.leader_heard_ms = Some(self.now_ms);
    }

    /// §5.2: a candidate that wins a majority "becomes leader. It then sends heartbeat
    /// messages to all of the other servers". Entries it cannot prove committed are committed
    /// through an empty block of its own term (§5.4.2, §8), appended at once.
    fn become_leader(&mut self) {
        debug_assert_eq!(self.voted_for, Some(self.config.me));
        self.role = RaftRole::Leader;
        self.votes.clear();
        self.cancel_timer(RaftTimer::Election);
        self.set_leader(Some(self.config.me));
        let last_index = self.log.last_index();
        self.progress = self
            .config
            .peers()
            .map(|peer| (peer, Progress::new(last_index)))
            .collect();
        self.recent_active.clear();
        self.commit_votes.clear();
        self.proposal_exhausted = false;
        let now = self.now_ms;
        self.set_timer(
            RaftTimer::Heartbeat,
            now.saturating_add(self.config.heartbeat_interval_ms),
        );
        if self.config.check_quorum {
            self.set_timer(
                RaftTimer::CheckQuorum,
                now.saturating_add(self.config.election_timeout_ms),
            );
        }
        if self.log.last_index() > self.log.committed().height {
            self.append_block(Vec::new(), Vec::new());
        }
        for peer in self.config.peers().collect::<Vec<_>>() {
            self.send_append(peer, true);
        }
        self.try_commit();
        self.maybe_propose();
    }

    /// Thesis §9.6: while a follower hears from its leader within the election timeout (and
    /// a leader holds its majority, checked by CheckQuorum), it ignores requests to vote in a
    /// newer term.
    fn in_lease(&self) -> bool {
        if !self.config.check_quorum {
            return false;
        }
        match self.role {
            RaftRole::Leader => true,
            RaftRole::Follower => {
                self.leader.is_some()
                    && self.leader_heard_ms.is_some_and(|heard| {
                        self.now_ms < heard.saturating_add(self.config.election_timeout_ms)
                    })
            }
            RaftRole::PreCandidate | RaftRole::Candidate => false,
        }
    }

    pub(super) fn on_request_vote(&mut self, from: ValidatorId, request: RequestVote) {
        if request.term > self.term && self.in_lease() {
            return self.reject(Some(from), RejectReason::LeaderLease { term: request.term });
        }
        let pre_vote = request.pre_vote;
        if request.term < self.term {
            self.reject(
                Some(from),
                RejectReason::StaleTerm {
                    term: request.term,
                    current: self.term,
                },
            );
            let answer = VoteResponse {
                term: self.term,
                candidate: from,
                granted: false,
                pre_vote,
            };
            return self.answer_vote(from, answer);
        }
        // §5.4.1: the candidate's log is at least as up-to-date as this one: a later last
        // term, or the same last term and at least as long.
        let up_to_date = (request.last_term, request.last_index)
            >= (self.log.last_term(), self.log.last_index());
        if pre_vote {
            // Nothing changes here: the pre-vote only says whether this node would vote.
            let granted = request.term > self.term && up_to_date;
            let term = if granted { request.term } else { self.term };
            let answer = VoteResponse {
                term,
                candidate: from,
                granted,
                pre_vote,
            };
            return self.answer_vote(from, answer);
        }
        if request.term > self.term {
            self.become_follower(request.term, None);
        }
        // §5.2: "each server will vote for at most one candidate in a given term, on a
        // first-come-first-served basis".
        let granted = self.voted_for.is_none_or(|v| v == from) && up_to_date;
        if granted {
            self.voted_for = Some(from);
            // §5.2: a follower that grants a vote waits a full election timeout again.
            self.arm_election_timer();
        }
        let answer = VoteResponse {
            term: self.term,
            candidate: from,
            granted,
            pre_vote,
        };
        self.answer_vote(from, answer);
    }

    /// A vote leaves only once the term and the vote it depends on are durable; a pre-vote
    /// promises nothing.
    fn answer_vote(&mut self, to: ValidatorId, answer: VoteResponse) {
        let message = RaftMessage::Vote(answer.clone());
        if answer.pre_vote {
            self.out.plain.push(Outgoing::To(to, message));
        } else {
            self.send_durable(to, message);
        }
    }

    pub(super) fn on_vote(&mut self, from: ValidatorId, answer: VoteResponse) {
        if answer.candidate != self.config.me {
            // An answer meant for another candidate: nothing this node asked.
            return;
        }
        if answer.pre_vote {
            if answer.granted && answer.term == self.term + 1 {
                if self.role == RaftRole::PreCandidate {
                    self.votes.insert(from, true);
                }
            } else if !answer.granted && answer.term > self.term {
                return self.become_follower(answer.term, None);
            } else if !answer.granted && self.role == RaftRole::PreCandidate {
                self.votes.insert(from, false);
            } else {
                return;
            }
            if self.role != RaftRole::PreCandidate {
                return;
            }
            if self.granted_by_quorum() {
                self.campaign();
            } else if self.refused_by_quorum() {
                self.become_follower(self.term, None);
            }
            return;
        }
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
        if self.role != RaftRole::Candidate {
            return;
        }
        self.votes.insert(from, answer.granted);
        if self.granted_by_quorum() {
            self.become_leader();
        } else if self.refused_by_quorum() {
            self.become_follower(self.term, None);
        }
    }

    /// Thesis §6.2: a leader that did not hear from a majority within an election timeout
    /// steps down, so clients look for the real leader elsewhere.
    pub(super) fn on_check_quorum(&mut self) {
        if !self.is_leader() {
            return;
        }
        let active = self.recent_active.len() + 1;
        self.recent_active.clear();
        if active < self.config.quorum() {
            self.become_follower(self.term, None);
            return;
        }
        let deadline = self.now_ms.saturating_add(self.config.election_timeout_ms);
        self.set_timer(RaftTimer::CheckQuorum, deadline);
    }
}
