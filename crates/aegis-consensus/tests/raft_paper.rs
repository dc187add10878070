//! The scenarios of the Raft paper (Ongaro & Ousterhout, USENIX ATC 2014), after
//! etcd-io/raft's `raft_paper_test.go` (mirrored by raft-rs's `test_raft_paper.rs`), written
//! anew for this core: each test states the sentence of the paper it checks and its section.
//! These run the paper's Raft (no PreVote, no CheckQuorum); `raft_prevote_checkquorum.rs`
//! covers those.
//!
//! Where this core differs from etcd's, the test says so: a log entry is a block (index =
//! height, term = the header's `view`), an entry is committed when a majority's commit votes
//! of the current term make its certificate, and a new leader appends an empty block only
//! when it holds entries it cannot prove committed.

mod raft_support;

use aegis_consensus::raft::{
    AppendEntries, AppendResponse, CommittedTip, RaftMessage, RaftPersisted, RaftRecord, RaftRole,
    RaftTimer, RejectReason, RequestVote, VoteResponse, VoteSignature,
};
use aegis_consensus::{Effect, Input};
use aegis_types::{CommitVote, ValidatorId};
use raft_support::*;

/// Node 0 of `n`, paper rules, restored from `state` and started.
fn node(n: usize, state: RaftPersisted) -> Node {
    let g = genesis(n);
    let mut node = Node::restore(paper_config(&g, 0), state);
    node.start();
    node
}

/// Node 0 of `n` with the log of `terms` in `term`, made leader of the next term by the votes
/// of every peer.
fn leader(n: usize, term: u64, terms: &[u64]) -> Node {
    let g = genesis(n);
    let mut node = node(n, state(&g, term, None, terms));
    node.fire(RaftTimer::Election);
    for peer in 1..n {
        if node.core.role() == RaftRole::Leader {
            break;
        }
        let vote = VoteResponse {
            term: node.core.term(),
            candidate: id(0),
            granted: true,
            pre_vote: false,
        };
        node.deliver(peer, RaftMessage::Vote(vote));
    }
    assert_eq!(node.core.role(), RaftRole::Leader);
    node
}

/// A leader whose followers answered its first appends, so they replicate from its last entry.
fn settled_leader(n: usize) -> Node {
    let mut node = leader(n, 0, &[]);
    settle(&mut node, n);
    node
}

fn settle(node: &mut Node, n: usize) {
    let effects = node.fire(RaftTimer::Heartbeat);
    node.accept(&effects, n, |_| true);
}

fn heartbeat(term: u64) -> AppendEntries {
    AppendEntries {
        term,
        prev_index: 0,
        prev_term: 0,
        entries: Vec::new(),
        leader_commit: 0,
        certificates: Vec::new(),
    }
}

/// §5.1: "If one server's current term is smaller than the other's, then it updates its
/// current term to the larger value. If a candidate or leader discovers that its term is out
/// of date, it immediately reverts to follower state."
#[test]
fn follower_candidate_and_leader_update_their_term_from_a_message() {
    let g = genesis(3);
    let mut follower = node(3, state(&g, 1, None, &[]));
    let mut candidate = node(3, state(&g, 0, None, &[]));
    candidate.fire(RaftTimer::Election);
    assert_eq!(candidate.core.role(), RaftRole::Candidate);
    let mut leader = leader(3, 0, &[]);
    for (name, node) in [
        ("follower", &mut follower),
        ("candidate", &mut candidate),
        ("leader", &mut leader),
    ] {
        node.deliver(2, RaftMessage::Append(heartbeat(2)));
        assert_eq!(node.core.term(), 2, "{name}");
        assert_eq!(node.core.role(), RaftRole::Follower, "{name}");
        assert_eq!(node.core.leader(), Some(ValidatorId(2)), "{name}");
    }
    // Any message of a newer term does it, an answer too.
    let mut leader = self::leader(3, 0, &[]);
    let answer = AppendResponse {
        term: 5,
        success: false,
        index: 0,
        hint: 0,
        committed: 0,
        votes: Vec::new(),
    };
    leader.deliver(1, RaftMessage::AppendResponse(answer));
    assert_eq!(
        (leader.core.term(), leader.core.role()),
        (5, RaftRole::Follower)
    );
}

/// §5.1: "If a server receives a request with a stale term number, it rejects the request."
/// (etcd ignores it; this core answers, so the stale sender learns the newer term.)
#[test]
fn a_request_with_a_stale_term_is_rejected_and_changes_nothing() {
    let g = genesis(3);
    let mut node = node(3, state(&g, 2, None, &[]));
    let before = node.core.persisted();
    let append = AppendEntries {
        entries: chain(&g, &[1]),
        ..heartbeat(1)
    };
    let effects = node.deliver(1, RaftMessage::Append(append));
    assert_eq!(
        node.core.persisted(),
        before,
        "no entry taken, no term moved"
    );
    assert_eq!(node.core.leader(), None);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Rejected {
            reason: RejectReason::StaleTerm {
                term: 1,
                current: 2
            },
            ..
        }
    )));
    let answers = append_responses(&effects, 3, node.id());
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].term, answers[0].success), (2, false));
}

/// §5.2: "When servers start up, they begin as followers."
#[test]
fn servers_start_as_followers() {
    let mut node = Node::new(paper_config(&genesis(3), 0));
    let effects = node.start();
    assert_eq!(node.core.role(), RaftRole::Follower);
    assert_eq!(node.core.leader(), None);
    assert!(node.core.timer_deadline(RaftTimer::Election).is_some());
    assert!(messages(&effects, 3, node.id()).is_empty());
}

/// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to
/// all followers in order to maintain their authority."
#[test]
fn the_leader_broadcasts_heartbeats() {
    let mut leader = settled_leader(3);
    for nonce in 0..3 {
        leader.propose(vec![tx(nonce)]);
    }
    settle(&mut leader, 3);
    let committed = leader.committed_height();
    let effects = leader.fire(RaftTimer::Heartbeat);
    let sent = appends(&effects, 3, leader.id());
    let to: Vec<u16> = sent.iter().map(|(to, _)| to.0).collect();
    assert_eq!(to, vec![1, 2]);
    for (_, append) in sent {
        assert!(append.entries.is_empty(), "nothing new to carry");
        assert_eq!(append.term, 1);
        assert_eq!(append.leader_commit, committed);
    }
    assert_eq!(
        leader.core.timer_deadline(RaftTimer::Heartbeat),
        Some(leader.now_ms + HEARTBEAT_MS),
        "and again one interval later"
    );
}

/// §5.2: "If a follower receives no communication over a period of time called the election
/// timeout, then it ... begins an election ... increments its current term and transitions to
/// candidate state. It then votes for itself and issues RequestVote RPCs in parallel"; and a
/// candidate that neither wins nor loses "will time out and start a new election by
/// incrementing its term". The requests leave only with the new term and vote persisted.
#[test]
fn a_follower_or_candidate_that_times_out_starts_an_election() {
    let g = genesis(3);
    let mut follower = node(3, state(&g, 1, None, &[]));
    let mut candidate = node(3, state(&g, 0, None, &[]));
    candidate.fire(RaftTimer::Election);
    assert_eq!(candidate.core.term(), 1);
    for node in [&mut follower, &mut candidate] {
        let effects = node.fire(RaftTimer::Election);
        assert_eq!(node.core.term(), 2);
        assert_eq!(node.core.role(), RaftRole::Candidate);
        assert_eq!(node.core.voted_for(), Some(ValidatorId(0)));
        let persist = effects
            .iter()
            .find_map(|e| match e {
                Effect::Persist {
                    records,
                    messages,
                    must_sync,
                    ..
                } => Some((records, messages, *must_sync)),
                _ => None,
            })
            .expect("a persist");
        assert_eq!(
            persist.0,
            &vec![RaftRecord::HardState {
                term: 2,
                voted_for: Some(ValidatorId(0))
            }]
        );
        assert!(persist.2, "synced before anything depends on it");
        let requests = messages(&effects, 3, node.id());
        let expected = RequestVote {
            term: 2,
            last_index: 0,
            last_term: 0,
            pre_vote: false,
        };
        assert_eq!(
            requests,
            vec![
                (ValidatorId(1), RaftMessage::RequestVote(expected.clone())),
                (ValidatorId(2), RaftMessage::RequestVote(expected)),
            ]
        );
        assert_eq!(persist.1.len(), 1, "the request waits for the persist");
    }
}

/// §5.2: a candidate "wins an election if it receives votes from a majority of the servers
/// in the full cluster for the same term"; it returns to follower when a majority refuses,
/// and stays candidate otherwise.
#[test]
fn one_round_of_request_vote_wins_loses_or_stays_undecided() {
    // (cluster size, votes received, role after).
    type Case = (usize, &'static [(usize, bool)], RaftRole);
    let cases: &[Case] = &[
        (1, &[], RaftRole::Leader),
        (3, &[(1, true), (2, true)], RaftRole::Leader),
        (3, &[(1, true)], RaftRole::Leader),
        (
            5,
            &[(1, true), (2, true), (3, true), (4, true)],
            RaftRole::Leader,
        ),
        (5, &[(1, true), (2, true), (3, true)], RaftRole::Leader),
        (5, &[(1, true), (2, true)], RaftRole::Leader),
        (3, &[(1, false), (2, false)], RaftRole::Follower),
        (
            5,
            &[(1, false), (2, false), (3, false), (4, false)],
            RaftRole::Follower,
        ),
        (
            5,
            &[(1, true), (2, false), (3, false), (4, false)],
            RaftRole::Follower,
        ),
        (3, &[], RaftRole::Candidate),
        (5, &[(1, true)], RaftRole::Candidate),
        (5, &[(1, false), (2, false)], RaftRole::Candidate),
        (5, &[], RaftRole::Candidate),
    ];
    for (case, (n, votes, role)) in cases.iter().enumerate() {
        let g = genesis(*n);
        let mut node = node(*n, state(&g, 0, None, &[]));
        node.fire(RaftTimer::Election);
        for (from, granted) in votes.iter() {
            if node.core.role() != RaftRole::Candidate {
                break;
            }
            let vote = VoteResponse {
                term: 1,
                candidate: id(0),
                granted: *granted,
                pre_vote: false,
            };
            node.deliver(*from, RaftMessage::Vote(vote));
        }
        assert_eq!(node.core.role(), *role, "case {case}");
        assert_eq!(node.core.term(), 1, "case {case}");
    }
}

/// §5.2: "Each server will vote for at most one candidate in a given term, on a
/// first-come-first-served basis."
#[test]
fn a_follower_votes_for_at_most_one_candidate_per_term() {
    let cases = [
        (None, 1, true),
        (None, 2, true),
        (Some(1), 1, true),
        (Some(2), 2, true),
        (Some(1), 2, false),
        (Some(2), 1, false),
    ];
    for (case, (voted_for, candidate, granted)) in cases.into_iter().enumerate() {
        let g = genesis(3);
        let mut node = node(3, state(&g, 1, voted_for, &[]));
        let request = RequestVote {
            term: 1,
            last_index: 0,
            last_term: 0,
            pre_vote: false,
        };
        let effects = node.deliver(candidate, RaftMessage::RequestVote(request));
        let expected = VoteResponse {
            term: 1,
            candidate: id(candidate),
            granted,
            pre_vote: false,
        };
        assert_eq!(
            messages(&effects, 3, node.id()),
            vec![(ValidatorId(candidate as u16), RaftMessage::Vote(expected))],
            "case {case}"
        );
        let now_voted = if granted { Some(candidate) } else { voted_for };
        assert_eq!(node.core.voted_for(), now_voted.map(id), "case {case}");
    }
}

/// §5.2: "While waiting for votes, a candidate may receive an AppendEntries RPC from another
/// server claiming to be leader. If the leader's term ... is at least as large as the
/// candidate's current term, then the candidate recognizes the leader as legitimate and
/// returns to follower state."
#[test]
fn a_candidate_falls_back_to_follower_for_a_leader_of_its_term_or_later() {
    for term in [1, 2] {
        let g = genesis(3);
        let mut node = node(3, state(&g, 0, None, &[]));
        node.fire(RaftTimer::Election);
        assert_eq!(node.core.role(), RaftRole::Candidate);
        node.deliver(1, RaftMessage::Append(heartbeat(term)));
        assert_eq!(node.core.role(), RaftRole::Follower, "term {term}");
        assert_eq!(node.core.term(), term);
        assert_eq!(node.core.leader(), Some(ValidatorId(1)));
    }
}

/// A configuration with a short election timeout, to count its values.
fn short_timeouts(n: usize, i: usize) -> aegis_consensus::raft::RaftConfig {
    aegis_consensus::raft::RaftConfig {
        election_timeout_ms: 10,
        heartbeat_interval_ms: 1,
        ..paper_config(&genesis(n), i)
    }
}

/// §5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed interval
/// (e.g., 150-300ms)": here [T, 2T), drawn from the driver's entropy.
#[test]
fn election_timeouts_are_randomized_over_t_to_2t() {
    for as_candidate in [false, true] {
        let mut node = Node::new(short_timeouts(3, 0));
        node.start();
        let mut seen = [false; 10];
        for round in 0..500u64 {
            if as_candidate {
                node.fire(RaftTimer::Election);
            } else {
                let term = node.core.term() + 1;
                node.deliver(
                    1 + (round % 2) as usize,
                    RaftMessage::Append(heartbeat(term)),
                );
            }
            let timeout = node.core.timer_deadline(RaftTimer::Election).unwrap() - node.now_ms;
            assert!((10..20).contains(&timeout), "{timeout} outside [T, 2T)");
            seen[(timeout - 10) as usize] = true;
        }
        assert!(
            seen.iter().all(|s| *s),
            "every value of [T, 2T) occurs: {seen:?}"
        );
    }
}

/// §5.2: randomized timeouts spread out the servers "so that in most cases only a single
/// server will time out". With T = 10 ticks, at most 30% of rounds see two or more of five
/// servers time out first together (etcd's bound).
#[test]
fn in_most_rounds_a_single_server_times_out_first() {
    for as_candidate in [false, true] {
        let mut nodes: Vec<Node> = (0..5).map(|i| Node::new(short_timeouts(5, i))).collect();
        for node in &mut nodes {
            node.start();
        }
        let mut conflicts = 0;
        for round in 0..1000u64 {
            for (i, node) in nodes.iter_mut().enumerate() {
                node.now_ms = 1_000 + round * 100;
                if as_candidate {
                    node.now_ms = node
                        .now_ms
                        .max(node.core.timer_deadline(RaftTimer::Election).unwrap());
                    node.step(Input::Timer(RaftTimer::Election));
                } else {
                    let term = node.core.term() + 1;
                    node.deliver((i + 1) % 5, RaftMessage::Append(heartbeat(term)));
                }
            }
            let deadlines: Vec<u64> = nodes
                .iter()
                .map(|n| n.core.timer_deadline(RaftTimer::Election).unwrap() - n.now_ms)
                .collect();
            let first = deadlines.iter().min().unwrap();
            if deadlines.iter().filter(|d| *d == first).count() > 1 {
                conflicts += 1;
            }
        }
        assert!(conflicts <= 300, "{conflicts} rounds of 1000 with a tie");
    }
}

/// §5.3: "The leader appends the command to its log as a new entry, then issues
/// AppendEntries RPCs in parallel to each of the other servers"; "When sending an
/// AppendEntries RPC, the leader includes the index and term of the entry in its log that
/// immediately precedes the new entries." The entry is written to stable storage before the
/// messages leave.
#[test]
fn the_leader_appends_a_proposal_and_replicates_it() {
    let mut leader = settled_leader(3);
    let (last, _) = leader.core.last_entry();
    let effects = leader.propose(vec![tx(1)]);
    assert_eq!(leader.core.last_entry(), (last + 1, 1));
    assert_eq!(leader.committed_height(), last);
    let (records, held) = effects
        .iter()
        .find_map(|e| match e {
            Effect::Persist {
                records, messages, ..
            } if !records.is_empty() => Some((records.clone(), messages.clone())),
            _ => None,
        })
        .expect("the entry persisted");
    let RaftRecord::Append(block) = &records[0] else {
        panic!("an append record: {records:?}");
    };
    assert_eq!((block.height(), block.header.view), (last + 1, 1));
    assert_eq!(block.tx_ids(), vec![tx(1).id()]);
    assert_eq!(held.len(), 2, "the appends wait for that persist");
    for (to, append) in appends(&effects, 3, leader.id()) {
        assert!(to.0 == 1 || to.0 == 2);
        assert_eq!(
            (
                append.term,
                append.prev_index,
                append.prev_term,
                append.leader_commit
            ),
            (1, last, leader.core.term_at(last).unwrap(), last)
        );
        assert_eq!(append.entries, vec![block.clone()]);
    }
}

/// §5.3: "When the entry has been safely replicated ... the leader applies the entry to its
/// state machine"; "The leader keeps track of the highest index it knows to be committed, and
/// it includes that index in future AppendEntries RPCs ... so that the other servers
/// eventually find out." Here the commit comes with the entry's certificate.
#[test]
fn the_leader_commits_a_replicated_entry_and_tells_the_followers() {
    let g = genesis(3);
    let mut leader = settled_leader(3);
    let effects = leader.propose(vec![tx(1)]);
    let after = leader.accept(&effects, 3, |_| true);
    assert_eq!(leader.committed_height(), 1);
    let (block, certificate) = &leader.ledger[0];
    assert_eq!(block.tx_ids(), vec![tx(1).id()]);
    assert_eq!((certificate.height, certificate.view), (1, 1));
    aegis_crypto::verify_commit_certificate(certificate, CHAIN, &g.validator_set().unwrap())
        .unwrap();
    let told: Vec<_> = appends(&after, 3, leader.id());
    assert!(!told.is_empty());
    for (_, append) in told {
        assert_eq!(append.leader_commit, 1);
        assert!(append.certificates.iter().any(|c| c == certificate));
    }
}

/// §5.3: "A log entry is committed once the leader that created the entry has replicated it
/// on a majority of the servers."
#[test]
fn an_entry_commits_once_a_majority_holds_it() {
    let cases: &[(usize, &[usize], bool)] = &[
        (1, &[], true),
        (3, &[], false),
        (3, &[1], true),
        (3, &[1, 2], true),
        (5, &[], false),
        (5, &[1], false),
        (5, &[1, 2], true),
        (5, &[1, 2, 3], true),
        (5, &[1, 2, 3, 4], true),
    ];
    for (case, (n, acceptors, committed)) in cases.iter().enumerate() {
        let mut leader = settled_leader(*n);
        let effects = leader.propose(vec![tx(1)]);
        leader.accept(&effects, *n, |to| acceptors.contains(&to));
        assert_eq!(leader.committed_height() == 1, *committed, "case {case}");
    }
}

/// §5.3: "When the leader commits a log entry, it also commits all preceding entries in its
/// log, including entries created by previous leaders." This core commits them through an
/// empty block of the new leader's term, appended when it takes office with entries it
/// cannot prove committed (§5.4.2, §8); with nothing uncommitted it appends none.
#[test]
fn the_leader_commits_the_entries_of_earlier_leaders_with_its_own() {
    let cases: &[&[u64]] = &[&[], &[2], &[1, 2], &[1]];
    for (case, terms) in cases.iter().enumerate() {
        let mut leader = leader(3, 2, terms);
        assert_eq!(leader.core.term(), 3);
        leader.propose(vec![tx(1)]);
        let effects = leader.fire(RaftTimer::Heartbeat);
        leader.accept(&effects, 3, |_| true);
        let mut expected: Vec<u64> = terms.to_vec();
        if !terms.is_empty() {
            expected.push(3);
        }
        expected.push(3);
        assert_eq!(leader.log_terms(), expected, "case {case}");
        assert_eq!(
            leader.committed_height(),
            expected.len() as u64,
            "case {case}"
        );
        let data = &leader.ledger.last().unwrap().0;
        assert_eq!(data.tx_ids(), vec![tx(1).id()], "case {case}");
        for (block, certificate) in &leader.ledger {
            assert_eq!(
                certificate.view, 3,
                "carried over with votes of term 3: {block:?}"
            );
        }
    }
}

/// §5.3: "Once a follower learns that a log entry is committed, it applies the entry to its
/// local state machine (in log order)." A follower learns it from the entry's certificate.
#[test]
fn a_follower_commits_what_the_leaders_certificates_prove() {
    let g = genesis(3);
    for (entries, commit) in [(1usize, 1usize), (2, 2), (2, 1)] {
        let mut follower = node(3, state(&g, 1, None, &[]));
        let blocks = chain(&g, &vec![1; entries]);
        let certificates = blocks[..commit]
            .iter()
            .map(|b| certificate(b, 1, &[1, 2]))
            .collect();
        let append = AppendEntries {
            entries: blocks.clone(),
            leader_commit: commit as u64,
            certificates,
            ..heartbeat(1)
        };
        follower.deliver(1, RaftMessage::Append(append));
        assert_eq!(follower.committed_height(), commit as u64);
        let committed: Vec<_> = follower.ledger.iter().map(|(b, _)| b.clone()).collect();
        assert_eq!(committed, blocks[..commit].to_vec());
    }
}

/// A follower whose log is [1] committed and [2] not, following the leader of term 2.
fn follower_with_committed_entry() -> Node {
    let g = genesis(3);
    let blocks = chain(&g, &[1, 2]);
    let state = RaftPersisted {
        term: 2,
        committed: CommittedTip::of(&blocks[0], blocks[0].hash()),
        entries: vec![blocks[1].clone()],
        ..RaftPersisted::genesis(g.hash())
    };
    let mut node = node(3, state);
    node.deliver(1, RaftMessage::Append(heartbeat(2)));
    node
}

/// §5.3: "If the follower does not find an entry in its log with the same index and term,
/// then it refuses the new entries", and its refusal names what it could match (the §5.3
/// optimisation: the highest index at or before the conflict with a term not above the
/// leader's).
#[test]
fn a_follower_checks_the_entry_before_the_new_ones() {
    // (prev_term, prev_index) -> (success, index, hint).
    // The leader is of term 3, so the follower's last entry (term 2) is not of the current
    // term: a success reports the append's last entry, or the committed height above it.
    let cases = [
        ((0, 0), (true, 1, 0)),
        ((1, 1), (true, 1, 0)),
        ((2, 2), (true, 2, 0)),
        ((1, 2), (false, 2, 1)),
        ((3, 3), (false, 3, 2)),
    ];
    for (case, ((prev_term, prev_index), (success, index, hint))) in cases.into_iter().enumerate() {
        let mut node = follower_with_committed_entry();
        let append = AppendEntries {
            prev_index,
            prev_term,
            ..heartbeat(3)
        };
        let effects = node.deliver(1, RaftMessage::Append(append));
        let answers = append_responses(&effects, 3, node.id());
        assert_eq!(answers.len(), 1, "case {case}");
        let a = &answers[0];
        assert_eq!(
            (a.success, a.index, a.committed),
            (success, index, 1),
            "case {case}"
        );
        if !success {
            assert_eq!(a.hint, hint, "case {case}");
        }
    }
}

/// §5.3: "If an existing entry conflicts with a new one (same index but different terms),
/// delete the existing entry and all that follow it (§5.3). Append any new entries not
/// already in the log." Only what changed is written to stable storage.
#[test]
fn a_follower_deletes_a_conflicting_suffix_and_appends_new_entries() {
    let g = genesis(3);
    // (prev_index, prev_term, the leader's log, log after) with the follower at [1, 2].
    type Case = (u64, u64, &'static [u64], &'static [u64], &'static str);
    let cases: &[Case] = &[
        (2, 2, &[1, 2, 3], &[1, 2, 3], "append"),
        (1, 1, &[1, 3, 4], &[1, 3, 4], "truncate 2, append"),
        (0, 0, &[1], &[1, 2], "nothing"),
        (0, 0, &[3], &[3], "truncate 1, append"),
    ];
    for (prev_index, prev_term, leader_log, after, written) in cases.iter().copied() {
        let mut node = node(3, state(&g, 2, None, &[1, 2]));
        let leader_blocks = chain(&g, leader_log);
        let append = AppendEntries {
            prev_index,
            prev_term,
            entries: leader_blocks[prev_index as usize..].to_vec(),
            ..heartbeat(4)
        };
        let effects = node.deliver(1, RaftMessage::Append(append));
        assert_eq!(node.log_terms(), after.to_vec(), "{written}");
        let records: Vec<String> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Persist { records, .. } => Some(records.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|r| match r {
                RaftRecord::Append(b) => Some("append".to_owned()).filter(|_| b.height() > 0),
                RaftRecord::Truncate { from } => Some(format!("truncate {from}")),
                RaftRecord::HardState { .. } | RaftRecord::Committed { .. } => None,
            })
            .collect();
        let mut expected: Vec<String> = Vec::new();
        match written {
            "append" => expected.push("append".into()),
            "truncate 2, append" => {
                expected.extend(["truncate 2".into(), "append".into(), "append".into()])
            }
            "truncate 1, append" => expected.extend(["truncate 1".into(), "append".into()]),
            _ => {}
        }
        assert_eq!(records, expected, "{written}");
    }
}

/// §5.3, Figure 7: "the leader must find the latest log entry where the two logs agree,
/// delete any entries in the follower's log after that point, and send the follower all of
/// the leader's entries after that point." Each of the figure's followers (a)-(f) ends with
/// the leader's log.
#[test]
fn the_leader_brings_every_follower_of_figure_7_to_its_log() {
    let leader_log: &[u64] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: &[&[u64]] = &[
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (case, follower_log) in followers.iter().enumerate() {
        let g = genesis(3);
        let configs = (0..3).map(|i| paper_config(&g, i)).collect();
        let states = vec![
            state(&g, 8, None, leader_log),
            state(&g, 7, None, follower_log),
            state(&g, 7, None, leader_log),
        ];
        let mut net = Net::restored(configs, states);
        net.elect(0);
        net.propose(0, vec![tx(1)]);
        net.deliver_everything();
        net.run_for(3 * HEARTBEAT_MS, |_, _, _| true);
        assert_eq!(
            net.node(1).log_terms(),
            net.node(0).log_terms(),
            "follower ({})",
            (b'a' + case as u8) as char
        );
        net.assert_agreement(&g);
        assert_eq!(
            net.node(1).committed_height(),
            net.node(0).committed_height()
        );
    }
}

/// §5.4.1: "The RequestVote RPC ... includes information about the candidate's log".
#[test]
fn a_vote_request_carries_the_candidates_last_entry() {
    let g = genesis(3);
    for (terms, term) in [(&[1u64][..], 2u64), (&[1, 2][..], 3)] {
        let mut node = node(3, state(&g, 0, None, &[]));
        let append = AppendEntries {
            entries: chain(&g, terms),
            ..heartbeat(term - 1)
        };
        node.deliver(1, RaftMessage::Append(append));
        let effects = node.fire(RaftTimer::Election);
        let sent = messages(&effects, 3, node.id());
        assert_eq!(sent.len(), 2);
        for (_, message) in sent {
            let RaftMessage::RequestVote(request) = message else {
                panic!("a vote request");
            };
            assert_eq!(request.term, term);
            assert_eq!(request.last_index, terms.len() as u64);
            assert_eq!(request.last_term, *terms.last().unwrap());
        }
    }
}

/// §5.4.1: "The voter denies its vote if its own log is more up-to-date than that of the
/// candidate": "If the logs have last entries with different terms, then the log with the
/// later term is more up-to-date. If the logs end with the same term, then whichever log is
/// longer is more up-to-date."
#[test]
fn a_voter_refuses_a_candidate_whose_log_is_behind() {
    let cases: &[(&[u64], u64, u64, bool)] = &[
        (&[1], 1, 1, true),
        (&[1], 1, 2, true),
        (&[1, 1], 1, 1, false),
        (&[1], 2, 1, true),
        (&[1], 2, 2, true),
        (&[1, 1], 2, 1, true),
        (&[2], 1, 1, false),
        (&[2], 1, 2, false),
        (&[2, 2], 1, 1, false),
        (&[1, 1], 1, 1, false),
    ];
    for (case, (terms, last_term, last_index, granted)) in cases.iter().enumerate() {
        let g = genesis(3);
        let mut node = node(3, state(&g, 2, None, terms));
        let request = RequestVote {
            term: 3,
            last_index: *last_index,
            last_term: *last_term,
            pre_vote: false,
        };
        let effects = node.deliver(1, RaftMessage::RequestVote(request));
        let sent = messages(&effects, 3, node.id());
        assert_eq!(sent.len(), 1, "case {case}");
        let RaftMessage::Vote(vote) = &sent[0].1 else {
            panic!("a vote");
        };
        assert_eq!(vote.granted, *granted, "case {case}");
    }
}

/// §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only
/// log entries from the leader's current term are committed by counting replicas". A
/// follower that matches only entries of earlier terms commits nothing, even with commit
/// votes for them; once it holds the leader's own entry, everything before it commits.
#[test]
fn the_leader_commits_only_through_an_entry_of_its_term() {
    let g = genesis(2);
    for (matched, committed) in [(1u64, 0u64), (2, 0), (3, 3)] {
        let mut leader = leader(2, 2, &[1, 2]);
        assert_eq!(leader.core.term(), 3);
        assert_eq!(
            leader.core.last_entry(),
            (3, 3),
            "the empty block of term 3"
        );
        let blocks: Vec<_> = (1..=3)
            .map(|h| leader.core.uncommitted_entries()[h as usize - 1].2)
            .collect();
        let votes = (1..=matched)
            .map(|height| {
                let vote = CommitVote::new(CHAIN, height, 3, blocks[height as usize - 1]);
                VoteSignature {
                    height,
                    signature: key(1).sign_commit_vote(id(1), &vote).signature,
                }
            })
            .collect();
        let answer = AppendResponse {
            term: 3,
            success: true,
            index: matched,
            hint: 0,
            committed: 0,
            votes,
        };
        leader.deliver(1, RaftMessage::AppendResponse(answer));
        assert_eq!(leader.committed_height(), committed, "match {matched}");
        for (_, certificate) in &leader.ledger {
            aegis_crypto::verify_commit_certificate(
                certificate,
                CHAIN,
                &g.validator_set().unwrap(),
            )
            .unwrap();
        }
    }
}
