//! PreVote and CheckQuorum (Ongaro's thesis, §9.6 and §6.2, as etcd-io/raft implements them):
//! a node cut off from the others does not raise its term and depose a healthy leader when
//! it returns; a leader that lost its majority steps down; a follower that hears its leader
//! ignores requests to vote in a newer term.

mod raft_support;

use aegis_consensus::Effect;
use aegis_consensus::raft::{RaftMessage, RaftRole, RaftTimer, RejectReason, RequestVote};
use raft_support::*;

fn net(n: usize, paper: bool) -> (aegis_types::Genesis, Net) {
    let g = genesis(n);
    let configs = (0..n)
        .map(|i| {
            if paper {
                paper_config(&g, i)
            } else {
                config(&g, i)
            }
        })
        .collect();
    (g, Net::new(configs))
}

fn cut_off(node: usize) -> impl Fn(usize, usize, &RaftMessage) -> bool {
    move |from, to, _| from != node && to != node
}

/// Thesis §9.6: "a server that has been partitioned from the cluster ... would time out and
/// start an election with a higher term" and depose the leader when it returns; with PreVote
/// it first asks whether it could win, cannot, and keeps its term.
#[test]
fn a_node_cut_off_keeps_its_term_and_does_not_depose_the_leader_when_it_returns() {
    let (g, mut net) = net(3, false);
    net.elect(0);
    net.propose(0, vec![tx(1)]);
    net.deliver_everything();
    let term = net.core(0).term();
    net.run_for(10 * ELECTION_MS, cut_off(2));
    assert_eq!(net.core(2).term(), term, "pre-votes raise no term");
    assert_ne!(net.core(2).role(), RaftRole::Leader);
    net.run_for(3 * ELECTION_MS, |_, _, _| true);
    assert_eq!(net.core(0).role(), RaftRole::Leader);
    assert_eq!(net.core(0).term(), term, "the leader was not deposed");
    assert_eq!(net.core(2).leader(), Some(id(0)));
    assert_eq!(
        net.node(2).committed_height(),
        net.node(0).committed_height()
    );
    net.assert_agreement(&g);
}

/// The same scenario without PreVote and CheckQuorum (the paper's Raft): the returning node's
/// higher term deposes the leader. This is what §9.6 prevents.
#[test]
fn without_pre_vote_the_returning_node_disrupts_the_cluster() {
    let (_, mut net) = net(3, true);
    net.elect(0);
    let term = net.core(0).term();
    net.run_for(10 * ELECTION_MS, cut_off(2));
    assert!(
        net.core(2).term() > term + 3,
        "the isolated node kept campaigning"
    );
    net.run_for(5 * ELECTION_MS, |_, _, _| true);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1);
    assert!(
        leaders[0].0 > term,
        "a new term after the disruption: {leaders:?}"
    );
}

/// Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
/// round of heartbeats to a majority of its cluster"; the majority elects another.
#[test]
fn a_leader_that_loses_its_majority_steps_down() {
    let (g, mut net) = net(3, false);
    net.elect(0);
    let term = net.core(0).term();
    net.run_for(3 * ELECTION_MS, cut_off(0));
    assert_eq!(net.core(0).role(), RaftRole::Follower, "stepped down");
    assert_eq!(net.core(0).leader(), None);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1);
    assert!(leaders[0].0 > term && leaders[0].1 != 0);
    net.run_for(2 * ELECTION_MS, |_, _, _| true);
    net.propose(leaders[0].1, vec![tx(2)]);
    net.run_for(ELECTION_MS, |_, _, _| true);
    assert_eq!(
        net.node(0).committed_height(),
        net.node(leaders[0].1).committed_height()
    );
    net.assert_agreement(&g);
}

/// Thesis §9.6: "if a server receives a RequestVote request within the minimum election
/// timeout of hearing from a current leader, it does not update its term or grant its vote."
#[test]
fn a_follower_that_hears_its_leader_ignores_requests_to_vote_in_a_newer_term() {
    let (_, mut net) = net(3, false);
    net.elect(0);
    let term = net.core(1).term();
    let before = net.core(1).persisted();
    for pre_vote in [true, false] {
        let request = RequestVote {
            term: term + 1,
            last_index: 100,
            last_term: term,
            pre_vote,
        };
        let effects = net.run(
            1,
            aegis_consensus::Input::Message {
                from: id(2),
                message: RaftMessage::RequestVote(request),
            },
        );
        assert!(effects.iter().any(|e| matches!(
            e,
            Effect::Rejected {
                reason: RejectReason::LeaderLease { .. },
                ..
            }
        )));
        assert!(messages(&effects, 3, id(1)).is_empty(), "no answer");
    }
    assert_eq!(net.core(1).persisted(), before, "no term, no vote");
    assert_eq!(net.core(1).leader(), Some(id(0)));
}

/// Thesis §9.6: pre-votes are refused to a node whose log is behind, and change nothing at
/// anyone: terms stay until a node that could win campaigns.
#[test]
fn a_node_whose_log_is_behind_gets_no_pre_votes_and_moves_no_term() {
    let (g, mut net) = net(3, false);
    net.elect(0);
    // Node 2 misses two blocks.
    for nonce in 0..2 {
        net.propose(0, vec![tx(nonce)]);
        net.deliver_all(cut_off(2));
    }
    let term = net.core(0).term();
    net.crash(0);
    // Node 2 times out first and asks; node 1 refuses (its log is longer).
    net.now_ms = net
        .core(2)
        .timer_deadline(RaftTimer::Election)
        .unwrap()
        .max(net.now_ms);
    net.run(2, aegis_consensus::Input::Timer(RaftTimer::Election));
    let voter_before = net.core(1).persisted();
    // Node 1 still heard its leader within the timeout: move past its lease first.
    net.now_ms += ELECTION_MS;
    net.deliver_everything();
    assert_eq!(
        net.core(1).persisted(),
        voter_before,
        "a pre-vote changes nothing"
    );
    assert_eq!(
        net.core(2).term(),
        term,
        "no majority of pre-votes: no new term"
    );
    net.run_for(5 * ELECTION_MS, |_, _, _| true);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1);
    assert_eq!(leaders[0].1, 1, "only the node with the longer log can win");
    assert_eq!(
        net.node(2).committed_height(),
        net.node(1).committed_height()
    );
    net.assert_agreement(&g);
}

/// The lease lasts exactly one election timeout from the last message of the leader: a vote
/// request in a newer term is refused a millisecond before it ends and answered from its
/// end on, even before this follower's own (randomized, later) election timer fires.
#[test]
fn a_followers_lease_ends_one_election_timeout_after_it_last_heard_its_leader() {
    use aegis_consensus::raft::{AppendEntries, VoteResponse};
    let g = genesis(3);
    let follower_after = |silence_ms: u64| {
        let mut follower = Node::restore(config(&g, 1), state(&g, 1, None, &[]));
        follower.start();
        let heartbeat = AppendEntries {
            term: 1,
            prev_index: 0,
            prev_term: 0,
            entries: Vec::new(),
            leader_commit: 0,
            certificates: Vec::new(),
        };
        follower.deliver(0, RaftMessage::Append(heartbeat));
        assert_eq!(follower.core.leader(), Some(id(0)));
        follower.now_ms += silence_ms;
        let request = RequestVote {
            term: 2,
            last_index: 0,
            last_term: 0,
            pre_vote: false,
        };
        let effects = follower.deliver(2, RaftMessage::RequestVote(request));
        let leased = effects.iter().any(|e| {
            matches!(
                e,
                Effect::Rejected {
                    reason: RejectReason::LeaderLease { term: 2 },
                    ..
                }
            )
        });
        let granted = messages(&effects, 3, id(1))
            .into_iter()
            .any(|(_, m)| matches!(m, RaftMessage::Vote(VoteResponse { granted: true, .. })));
        (leased, granted)
    };
    assert_eq!(follower_after(ELECTION_MS - 1), (true, false));
    assert_eq!(follower_after(ELECTION_MS), (false, true));
}

/// A follower that learns its leader within its current term (it voted, or restarted, in
/// that term) records it: the leader is known, announced, and the lease runs.
#[test]
fn a_follower_learns_the_leader_of_its_current_term() {
    use aegis_consensus::raft::AppendEntries;
    let g = genesis(3);
    let mut follower = Node::restore(config(&g, 1), state(&g, 2, None, &[]));
    follower.start();
    assert_eq!(follower.core.leader(), None);
    let heartbeat = AppendEntries {
        term: 2,
        prev_index: 0,
        prev_term: 0,
        entries: Vec::new(),
        leader_commit: 0,
        certificates: Vec::new(),
    };
    let effects = follower.deliver(0, RaftMessage::Append(heartbeat));
    assert_eq!(follower.core.leader(), Some(id(0)));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::LeaderChanged { epoch: 2, leader } if *leader == id(0)
        )),
        "{effects:?}"
    );
    // The lease holds off newer terms only: a request of this term is judged as §5.2 says
    // (this follower learned the leader without voting, so it may still vote once).
    let request = RequestVote {
        term: 2,
        last_index: 0,
        last_term: 0,
        pre_vote: false,
    };
    let effects = follower.deliver(2, RaftMessage::RequestVote(request));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Rejected { .. })),
        "{effects:?}"
    );
    assert_eq!(follower.core.voted_for(), Some(id(2)));
}

/// A pre-candidate counts each pre-vote answer by its kind and term (thesis §9.6, as etcd
/// does): a grant for the term it would campaign in counts; a refusal from a node already in
/// a newer term sends it back to follow in that term; a refusal in its own term counts
/// against it, and a majority of them ends the pre-campaign; a stale grant (for an earlier
/// pre-campaign) counts for nothing.
#[test]
fn pre_vote_answers_are_counted_by_their_kind_and_term() {
    use aegis_consensus::raft::VoteResponse;
    let g = genesis(3);
    let answer = |term: u64, granted: bool| {
        RaftMessage::Vote(VoteResponse {
            term,
            candidate: id(0),
            granted,
            pre_vote: true,
        })
    };
    // Node 0 in term 1, pre-campaigning for term 2, then the answers from nodes 1 and 2.
    let after = |answers: &[(usize, RaftMessage)]| {
        let mut node = Node::restore(config(&g, 0), state(&g, 1, None, &[]));
        node.start();
        node.fire(RaftTimer::Election);
        assert_eq!(node.core.role(), RaftRole::PreCandidate);
        for (from, message) in answers {
            node.deliver(*from, message.clone());
        }
        (node.core.role(), node.core.term())
    };
    assert_eq!(
        after(&[(1, answer(2, true))]),
        (RaftRole::Candidate, 2),
        "a grant for term 2 makes a majority with its own"
    );
    assert_eq!(
        after(&[(1, answer(2, false))]),
        (RaftRole::Follower, 2),
        "a refusal from term 2"
    );
    assert_eq!(
        after(&[(1, answer(3, false))]),
        (RaftRole::Follower, 3),
        "a refusal from term 3"
    );
    assert_eq!(
        after(&[(1, answer(1, false))]),
        (RaftRole::PreCandidate, 1),
        "one refusal in its own term is not a majority"
    );
    assert_eq!(
        after(&[(1, answer(1, false)), (2, answer(1, false))]),
        (RaftRole::Follower, 1),
        "two refusals of three are"
    );
    assert_eq!(
        after(&[(1, answer(1, true)), (2, answer(1, false))]),
        (RaftRole::PreCandidate, 1),
        "a stale grant is neither a grant nor a refusal"
    );
}

/// A node answers a pre-vote only for a term above its own (the pre-candidate's next one),
/// and a vote request of its own term does not unseat the leader it follows or is.
#[test]
fn requests_of_a_nodes_own_term_change_neither_its_term_nor_its_leader() {
    let g = genesis(3);
    let mut voter = Node::restore(config(&g, 1), state(&g, 2, None, &[]));
    voter.start();
    let pre_vote = RequestVote {
        term: 2,
        last_index: 0,
        last_term: 0,
        pre_vote: true,
    };
    let effects = voter.deliver(2, RaftMessage::RequestVote(pre_vote));
    let granted: Vec<bool> = messages(&effects, 3, id(1))
        .into_iter()
        .filter_map(|(_, m)| match m {
            RaftMessage::Vote(v) => Some(v.granted),
            _ => None,
        })
        .collect();
    assert_eq!(granted, vec![false], "{effects:?}");

    let (_, mut net) = net(3, false);
    let leader = net.elect(0);
    let term = net.core(leader).term();
    let request = RequestVote {
        term,
        last_index: 10,
        last_term: term,
        pre_vote: false,
    };
    net.run(
        leader,
        aegis_consensus::Input::Message {
            from: id(1),
            message: RaftMessage::RequestVote(request),
        },
    );
    assert_eq!(net.core(leader).role(), RaftRole::Leader);
    assert_eq!(net.core(leader).term(), term);
}

/// A candidate counts only the votes of its own term (§5.2): a grant from an earlier term's
/// election is refused as stale, and an answer from a newer term makes it follow that term.
#[test]
fn a_candidate_counts_only_votes_of_its_own_term() {
    use aegis_consensus::raft::VoteResponse;
    let g = genesis(3);
    let vote = |term: u64, granted: bool| {
        RaftMessage::Vote(VoteResponse {
            term,
            candidate: id(0),
            granted,
            pre_vote: false,
        })
    };
    let mut node = Node::restore(paper_config(&g, 0), state(&g, 2, None, &[]));
    node.start();
    node.fire(RaftTimer::Election);
    assert_eq!(
        (node.core.role(), node.core.term()),
        (RaftRole::Candidate, 3)
    );
    let effects = node.deliver(1, vote(2, true));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Rejected {
                reason: RejectReason::StaleTerm {
                    term: 2,
                    current: 3
                },
                ..
            }
        )),
        "{effects:?}"
    );
    assert_eq!(
        (node.core.role(), node.core.term()),
        (RaftRole::Candidate, 3)
    );
    node.deliver(2, vote(4, false));
    assert_eq!(
        (node.core.role(), node.core.term()),
        (RaftRole::Follower, 4)
    );
}
