//! The parts of the Raft core beyond the paper's scenarios: persist-then-send, the leader's
//! own durability, votes kept across restarts, commit certificates (an entry carried over from
//! an earlier term is certified with votes of the current one), catching up through sync,
//! duplicate transactions, refused input, and random schedules that keep Election Safety,
//! agreement and valid certificates.

mod raft_support;

use aegis_consensus::raft::{
    AppendEntries, AppendResponse, CommittedTip, RaftEffect, RaftMessage, RaftPersisted, RaftRole,
    RaftTimer, RejectReason, RequestVote, VoteResponse, VoteSignature,
};
use aegis_consensus::{Effect, Input};
use aegis_types::{Block, Signature};
use raft_support::*;

fn net(n: usize) -> (aegis_types::Genesis, Net) {
    let g = genesis(n);
    let configs = (0..n).map(|i| config(&g, i)).collect();
    (g, Net::new(configs))
}

/// The term, the vote and the entries are durable before any message that depends on them
/// leaves. Every step of every test checks it (`Node` panics on a message sent directly
/// while a persist that asked for a sync is not acknowledged); here a leader's append waits
/// for its entry, a heartbeat waits while the entry is not durable, and leaves at once, with
/// no persist of its own, once it is.
#[test]
fn messages_wait_for_the_durable_state_they_may_depend_on() {
    let g = genesis(3);
    let mut leader = Node::new(config(&g, 0));
    leader.start();
    leader.fire(RaftTimer::Election);
    let vote = |pre_vote| VoteResponse {
        term: 1,
        candidate: id(0),
        granted: true,
        pre_vote,
    };
    assert_eq!(leader.core.role(), RaftRole::PreCandidate);
    leader.deliver(1, RaftMessage::Vote(vote(true)));
    assert_eq!(leader.core.role(), RaftRole::Candidate);
    let effects = leader.deliver(1, RaftMessage::Vote(vote(false)));
    assert_eq!(leader.core.role(), RaftRole::Leader);
    // The followers answer the first appends, so the leader replicates to them.
    leader.accept(&effects, 3, |_| true);
    leader.auto_persist = false;
    let effects = leader.propose(vec![tx(1)]);
    let sequence = effects
        .iter()
        .find_map(|e| match e {
            Effect::Persist {
                sequence,
                must_sync: true,
                messages,
                ..
            } if !messages.is_empty() => Some(*sequence),
            _ => None,
        })
        .expect("the appends wait inside the persist of the entry");
    let heartbeat = leader.fire(RaftTimer::Heartbeat);
    assert!(
        heartbeat.iter().all(|e| !matches!(e, Effect::Send(_))),
        "the entry is not durable yet: {heartbeat:?}"
    );
    leader.step(Input::Persisted {
        up_to: sequence + 1,
    });
    let heartbeat = leader.fire(RaftTimer::Heartbeat);
    assert!(heartbeat.iter().any(|e| matches!(e, Effect::Send(_))));
    assert!(
        !heartbeat
            .iter()
            .any(|e| matches!(e, Effect::Persist { .. })),
        "nothing to persist, nothing to wait for: {heartbeat:?}"
    );

    // In a whole run, both kinds occur.
    let (_, mut net) = net(3);
    net.elect(0);
    for nonce in 0..5 {
        net.propose(0, vec![tx(nonce)]);
        net.deliver_everything();
    }
    net.run_for(ELECTION_MS, |_, _, _| true);
    let (direct, held): (usize, usize) = (0..3)
        .map(|i| (net.node(i).sent_directly, net.node(i).sent_after_persist))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(
        direct > 10 && held > 10,
        "{direct} sent directly, {held} after a persist"
    );
}

/// A lone leader counts itself towards the majority only once the driver says its entry is
/// durable (`Input::Persisted`).
#[test]
fn a_lone_leader_commits_only_once_its_own_log_is_durable() {
    let g = genesis(1);
    let mut node = Node::new(config(&g, 0));
    node.auto_persist = false;
    node.start();
    let effects = node.fire(RaftTimer::Election);
    assert_eq!(node.core.role(), RaftRole::Leader);
    let up_to = |effects: &[_]| {
        effects.iter().rev().find_map(|e| match e {
            Effect::Persist { sequence, .. } => Some(*sequence),
            _ => None,
        })
    };
    node.step(Input::Persisted {
        up_to: up_to(&effects).unwrap(),
    });
    let effects = node.propose(vec![tx(1)]);
    assert_eq!(node.core.last_entry().0, 1);
    assert_eq!(node.committed_height(), 0, "not durable yet");
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Persist {
            must_sync: true,
            ..
        }
    )));
    let effects = node.step(Input::Persisted {
        up_to: up_to(&effects).unwrap(),
    });
    assert_eq!(node.committed_height(), 1);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::CommitBlock { block, .. } if block.height() == 1))
    );
}

/// §5.2 with Figure 2's persistent state: a node that voted and restarts from what it
/// persisted does not vote again in that term.
#[test]
fn a_restarted_node_remembers_its_vote() {
    let g = genesis(3);
    let mut node = Node::new(paper_config(&g, 0));
    node.start();
    let request = |term| RequestVote {
        term,
        last_index: 0,
        last_term: 0,
        pre_vote: false,
    };
    node.deliver(1, RaftMessage::RequestVote(request(5)));
    assert_eq!(node.core.voted_for(), Some(id(1)));
    let mut restarted = Node::restore(paper_config(&g, 0), node.durable.clone());
    restarted.start();
    let effects = restarted.deliver(2, RaftMessage::RequestVote(request(5)));
    let sent = messages(&effects, 3, id(0));
    assert_eq!(
        sent,
        vec![(
            id(2),
            RaftMessage::Vote(VoteResponse {
                term: 5,
                candidate: id(2),
                granted: false,
                pre_vote: false
            })
        )]
    );
}

/// An entry of an earlier term that a new leader carries over is committed through the new
/// leader's own entry, and its certificate holds votes of the new term (§5.4.2): block 1 was
/// made in term 1, its certificate says view 2, and it verifies like any other.
#[test]
fn a_carried_over_entry_is_certified_with_votes_of_the_new_term() {
    let (g, mut net) = net(3);
    net.elect(0);
    net.propose(0, vec![tx(1)]);
    // Only node 1 receives the entry, and its answer is lost.
    net.deliver_all(|from, to, _| from == 0 && to == 1);
    assert_eq!(net.core(1).last_entry(), (1, 1));
    assert_eq!(net.node(0).committed_height(), 0);
    net.crash(0);
    net.run_for(4 * ELECTION_MS, |_, _, _| true);
    assert_eq!(net.leaders().len(), 1);
    let (term, leader) = net.leaders()[0];
    assert_eq!(leader, 1, "only node 1 has the longer log");
    let ledger = &net.node(1).ledger;
    assert!(ledger.len() >= 2, "the entry and the leader's empty block");
    let (block, certificate) = &ledger[0];
    assert_eq!(block.tx_ids(), vec![tx(1).id()]);
    assert_eq!(block.header.view, 1);
    assert_eq!(certificate.view, term);
    assert_eq!(ledger[1].0.header.view, term);
    assert!(ledger[1].0.txs.is_empty());
    net.assert_agreement(&g);
    // The old leader comes back and takes the same chain.
    net.restart(0);
    net.run_for(2 * ELECTION_MS, |_, _, _| true);
    assert_eq!(net.node(0).ledger.len(), net.node(1).ledger.len());
    net.assert_agreement(&g);
}

/// A follower that needs blocks the leader no longer holds in memory (here: both others
/// restarted meanwhile) is told to catch up, syncs them with their certificates from a
/// ledger, then follows again.
#[test]
fn a_follower_behind_the_leaders_memory_catches_up_through_sync() {
    let (g, mut net) = net(3);
    net.elect(0);
    net.crash(2);
    for nonce in 0..6 {
        net.propose(0, vec![tx(nonce)]);
        net.deliver_everything();
    }
    let height = net.node(0).committed_height();
    assert_eq!(height, 6);
    let history = leaders_restart_then_node_2_returns(&mut net);
    let catch_up = history.iter().any(|(_, effects)| {
        messages(effects, 3, id(0))
            .iter()
            .chain(messages(effects, 3, id(1)).iter())
            .any(|(to, m)| to.0 == 2 && matches!(m, RaftMessage::CatchUp(_)))
    });
    assert!(catch_up, "the leader told node 2 to catch up");
    assert!(
        history
            .iter()
            .any(|(i, effects)| *i == 2 && sync_requested(effects) == Some(1))
    );
    assert!(net.node(2).committed_height() >= height);
    let leader = net.leaders()[0].1;
    net.propose(leader, vec![tx(100)]);
    net.run_for(ELECTION_MS, |_, _, _| true);
    assert_eq!(
        net.node(2).committed_height(),
        net.node(leader).committed_height()
    );
    net.assert_agreement(&g);
}

/// The same with a gap of one: node 2 holds the block just above its tip but never got its
/// certificate, and the leader, restarted since, holds no certificate at all. Appends alone
/// would never bring that certificate, so the leader tells node 2 to catch up.
#[test]
fn a_follower_one_certificate_behind_a_restarted_leader_catches_up_through_sync() {
    let (g, mut net) = net(3);
    net.elect(0);
    net.propose(0, vec![tx(1)]);
    net.deliver_everything();
    net.propose(0, vec![tx(2)]);
    net.deliver_all(|_, to, m| {
        !(to == 2 && matches!(m, RaftMessage::Append(a) if !a.certificates.is_empty()))
    });
    assert_eq!(net.node(0).committed_height(), 2);
    assert_eq!(net.node(2).committed_height(), 1);
    assert_eq!(net.node(2).log_terms().len(), 2, "node 2 holds block 2");
    net.crash(2);
    let history = leaders_restart_then_node_2_returns(&mut net);
    let leader = net.leaders()[0].1;
    let catch_up = history.iter().any(|(i, effects)| {
        messages(effects, 3, id(*i))
            .iter()
            .any(|(to, m)| to.0 == 2 && matches!(m, RaftMessage::CatchUp(_)))
    });
    assert!(catch_up, "the leader told node 2 to catch up");
    assert_eq!(net.node(2).committed_height(), 2);
    net.propose(leader, vec![tx(3)]);
    net.run_for(ELECTION_MS, |_, _, _| true);
    assert_eq!(net.node(2).committed_height(), 3);
    net.assert_agreement(&g);
}

/// With node 2 down: nodes 0 and 1 restart (forgetting every committed block they held in
/// memory) and elect a leader; then node 2 returns. Returns every step's effects from its
/// return on.
fn leaders_restart_then_node_2_returns(net: &mut Net) -> Vec<(usize, Vec<RaftEffect>)> {
    net.crash(0);
    net.crash(1);
    net.restart(0);
    net.restart(1);
    net.run_for(4 * ELECTION_MS, |_, _, _| true);
    assert_eq!(net.leaders().len(), 1);
    net.history = Some(Vec::new());
    net.restart(2);
    net.run_for(2 * ELECTION_MS, |_, _, _| true);
    net.history.take().unwrap_or_default()
}

/// A certified block from sync wins over an uncommitted entry that conflicts with it.
#[test]
fn a_synced_block_replaces_a_conflicting_uncommitted_entry() {
    let g = genesis(3);
    let mut node = Node::restore(config(&g, 2), state(&g, 1, None, &[1, 1]));
    node.start();
    let other = chain(&g, &[2]);
    let effects = node.step(Input::SyncedBlock {
        block: other[0].clone(),
        certificate: certificate(&other[0], 2, &[0, 1]),
    });
    assert!(!effects.iter().any(|e| matches!(e, Effect::Rejected { .. })));
    assert_eq!(node.committed_height(), 1);
    assert_eq!(node.ledger[0].0, other[0]);
    assert!(
        node.core.uncommitted_entries().is_empty(),
        "the conflicting suffix is gone"
    );
    assert_eq!(node.core.term(), 2, "a block of term 2 means term 2 exists");
}

/// A synced block is the body a peer serves beside a certificate whose signatures cover only
/// the header: a body that does not match its header, or another well-formed block served
/// with the certificate, is refused and nothing of it is kept (the same checks as PBFT's,
/// where cargo-mutants found them untested).
#[test]
fn a_synced_body_that_does_not_match_its_header_is_refused() {
    use aegis_consensus::raft::SyncFault;
    use aegis_types::Block;

    let g = genesis(3);
    let mut node = Node::restore(config(&g, 2), state(&g, 1, None, &[]));
    node.start();
    let made = |txs| Block::new(&g.chain_id, 1, g.hash(), key(0).public_key(), 1, 1, txs);
    let block = made(vec![tx(1), tx(2)]);
    let certificate = certificate(&block, 1, &[0, 1]);
    let mut refused = |block: Block| -> Vec<RejectReason> {
        node.step(Input::SyncedBlock {
            block,
            certificate: certificate.clone(),
        })
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Rejected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
    };
    let mut tampered = block.clone();
    tampered.txs[1] = tx(9);
    assert_eq!(
        refused(tampered),
        vec![RejectReason::BadSyncedBlock(SyncFault::Malformed)]
    );
    assert_eq!(
        refused(made(vec![tx(9)])),
        vec![RejectReason::BadSyncedBlock(SyncFault::CertificateMismatch)]
    );
    assert_eq!(refused(block.clone()), vec![]);
    assert_eq!(node.committed_height(), 1);
    assert_eq!(node.ledger[0].0, block);
}

/// A transaction in the log or in a recent block is never ordered again.
#[test]
fn a_transaction_is_ordered_once() {
    let (_, mut net) = net(3);
    net.elect(0);
    net.propose(0, vec![tx(1), tx(2)]);
    net.propose(0, vec![tx(2), tx(3)]);
    net.deliver_everything();
    net.propose(0, vec![tx(1), tx(3)]);
    net.deliver_everything();
    let ids: Vec<_> = net
        .node(0)
        .ledger
        .iter()
        .flat_map(|(b, _)| b.tx_ids())
        .collect();
    assert_eq!(ids, vec![tx(1).id(), tx(2).id(), tx(3).id()]);
}

/// Refused input changes nothing: an append whose entries do not chain, a forged commit
/// vote, a certificate that does not verify.
#[test]
fn refused_input_changes_nothing() {
    let g = genesis(3);
    let mut follower = Node::restore(paper_config(&g, 1), state(&g, 1, None, &[]));
    follower.start();
    let mut blocks = chain(&g, &[1, 1]);
    blocks[1].header.prev_hash = g.hash();
    let before = follower.core.state_fingerprint();
    let append = AppendEntries {
        term: 1,
        prev_index: 0,
        prev_term: 0,
        entries: blocks,
        leader_commit: 0,
        certificates: Vec::new(),
    };
    let effects = follower.deliver(0, RaftMessage::Append(append));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Rejected {
            reason: RejectReason::BadEntries(_),
            ..
        }
    )));
    assert_eq!(follower.core.state_fingerprint(), before);

    // A certificate with a forged signature: the entry is taken, not committed.
    let blocks = chain(&g, &[1]);
    let mut bad = certificate(&blocks[0], 1, &[0, 2]);
    bad.signatures[1].signature = Signature([7; 64]);
    let append = AppendEntries {
        term: 1,
        prev_index: 0,
        prev_term: 0,
        entries: blocks,
        leader_commit: 1,
        certificates: vec![bad],
    };
    let effects = follower.deliver(0, RaftMessage::Append(append));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Rejected {
            reason: RejectReason::BadCertificate { height: 1 },
            ..
        }
    )));
    assert_eq!(follower.committed_height(), 0);

    // A leader refuses a forged commit vote.
    let (_, mut net) = net(3);
    net.elect(0);
    net.propose(0, vec![tx(1)]);
    let answer = AppendResponse {
        term: 1,
        success: true,
        index: 1,
        hint: 0,
        committed: 0,
        votes: vec![VoteSignature {
            height: 1,
            signature: Signature([9; 64]),
        }],
    };
    let effects = net.run(
        0,
        Input::Message {
            from: id(1),
            message: RaftMessage::AppendResponse(answer),
        },
    );
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Rejected {
            reason: RejectReason::BadVote { height: 1, .. },
            ..
        }
    )));
    assert_eq!(net.node(0).committed_height(), 0);
}

/// A restored log that does not chain to its committed tip is refused at start.
#[test]
fn a_log_that_does_not_chain_is_refused() {
    let g = genesis(3);
    let blocks = chain(&g, &[1, 1]);
    let state = RaftPersisted {
        committed: CommittedTip::of(&blocks[0], blocks[0].hash()),
        entries: vec![blocks[0].clone()],
        ..RaftPersisted::genesis(g.hash())
    };
    let result = aegis_consensus::raft::Raft::restore(config(&g, 0), key(0), state);
    assert!(matches!(
        result,
        Err(aegis_consensus::raft::RaftError::BrokenLog)
    ));
    // Each fault alone: a block at the right height that links elsewhere, a block that links
    // to the tip at the wrong height, a term that goes down along a well linked chain.
    let proposer = key(0).public_key();
    let elsewhere = aegis_types::Hash::digest(b"elsewhere");
    let broken = [
        vec![Block::new(
            &g.chain_id,
            1,
            elsewhere,
            proposer,
            1,
            1,
            Vec::new(),
        )],
        vec![Block::new(
            &g.chain_id,
            2,
            g.hash(),
            proposer,
            1,
            2,
            Vec::new(),
        )],
        chain(&g, &[2, 1]),
    ];
    for entries in broken {
        let state = RaftPersisted {
            term: 2,
            entries,
            ..RaftPersisted::genesis(g.hash())
        };
        let result = aegis_consensus::raft::Raft::restore(config(&g, 0), key(0), state.clone());
        assert!(
            matches!(result, Err(aegis_consensus::raft::RaftError::BrokenLog)),
            "{:?} restored",
            state.entries
        );
    }
    let sound = RaftPersisted {
        term: 2,
        entries: chain(&g, &[1, 2]),
        ..RaftPersisted::genesis(g.hash())
    };
    assert!(aegis_consensus::raft::Raft::restore(config(&g, 0), key(0), sound).is_ok());
}

/// SplitMix64, the tests' own seeded randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random schedules: messages dropped, nodes crashed and restarted (at most a minority down),
/// partitions that heal, proposals to any node. Throughout: at most one leader per term
/// (`Net` asserts it), ledgers agree and every certificate verifies; after the network heals,
/// a new transaction commits everywhere.
#[test]
fn random_schedules_keep_safety_and_recover() {
    for n in [3usize, 5] {
        for seed in 0..60u64 {
            let (g, mut net) = net(n);
            let mut rng = Rng(seed * 1_000 + n as u64);
            let mut nonce = 0;
            let mut blocked: Option<usize> = None;
            for _ in 0..60 {
                match rng.below(10) {
                    0 => {
                        let down = net.nodes.iter().filter(|x| x.is_none()).count();
                        let i = rng.below(n as u64) as usize;
                        if net.nodes[i].is_some() && down < (n - 1) / 2 {
                            net.crash(i);
                        } else if net.nodes[i].is_none() {
                            net.restart(i);
                        }
                    }
                    1 => blocked = Some(rng.below(n as u64) as usize),
                    2 => blocked = None,
                    3..=5 => {
                        let i = rng.below(n as u64) as usize;
                        if net.nodes[i].is_some() {
                            nonce += 1;
                            net.propose(i, vec![tx(nonce)]);
                        }
                    }
                    _ => {}
                }
                // Drop one queued message in 5 to 25, deterministically.
                let drop_one_in = 5 + rng.below(20);
                let queued = std::mem::take(&mut net.queue);
                net.queue = queued
                    .into_iter()
                    .filter(|_| !rng.below(drop_one_in).is_multiple_of(drop_one_in))
                    .collect();
                let keep = |from: usize, to: usize, _: &RaftMessage| {
                    blocked.is_none_or(|b| from != b && to != b)
                };
                net.advance(rng.below(ELECTION_MS / 2));
                net.deliver_all(keep);
                net.assert_agreement(&g);
            }
            for i in 0..n {
                if net.nodes[i].is_none() {
                    net.restart(i);
                }
            }
            net.run_for(6 * ELECTION_MS, |_, _, _| true);
            let leaders = net.leaders();
            assert_eq!(
                leaders.len(),
                1,
                "seed {seed} n {n}: one leader after healing"
            );
            let leader = leaders[0].1;
            net.propose(leader, vec![tx(1_000_000 + seed)]);
            net.run_for(2 * ELECTION_MS, |_, _, _| true);
            let height = net.node(leader).committed_height();
            for i in 0..n {
                assert_eq!(
                    net.node(i).committed_height(),
                    height,
                    "seed {seed} n {n} node {i}"
                );
            }
            let last = &net.node(leader).ledger.last().unwrap().0;
            assert!(
                net.node(leader)
                    .ledger
                    .iter()
                    .any(|(b, _)| b.tx_ids().contains(&tx(1_000_000 + seed).id())),
                "seed {seed}: the new transaction committed (last block {})",
                last.height()
            );
            // Every transaction at most once.
            let mut ids: Vec<_> = net
                .node(leader)
                .ledger
                .iter()
                .flat_map(|(b, _)| b.tx_ids())
                .collect();
            let total = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!(
                ids.len(),
                total,
                "seed {seed}: a transaction committed twice"
            );
            net.assert_agreement(&g);
        }
    }
}

/// The reasons a follower gives for refusing an append, checked one fault at a time (each
/// alone, so that no other check can refuse it in its place), and the bounds taken exactly:
/// entries and certificates per append, the uncommitted log's length.
#[test]
fn each_fault_of_an_append_is_refused_for_itself() {
    use aegis_consensus::raft::EntryFault;
    use aegis_consensus::raft::config::{
        MAX_CERTIFICATES_PER_APPEND, MAX_ENTRIES_PER_APPEND, MAX_UNCOMMITTED_ENTRIES,
    };
    use aegis_types::Block;

    let g = genesis(3);
    // One fresh follower (term 1, empty log) per append; the reasons it refused for, and
    // whether its state stayed as it was.
    let refusals = |append: AppendEntries| {
        let mut follower = Node::restore(paper_config(&g, 1), state(&g, 1, None, &[]));
        follower.start();
        let before = follower.core.state_fingerprint();
        let effects = follower.deliver(0, RaftMessage::Append(append));
        let reasons = rejections(&effects);
        if !reasons.is_empty() {
            assert_eq!(follower.core.state_fingerprint(), before, "{reasons:?}");
        }
        reasons
    };
    let append = |term: u64, entries: Vec<Block>| AppendEntries {
        term,
        prev_index: 0,
        prev_term: 0,
        entries,
        leader_commit: 0,
        certificates: Vec::new(),
    };
    let bad = |fault: EntryFault| vec![RejectReason::BadEntries(fault)];
    // A block at height 1 after the genesis, by validator `proposer`, of `chain`.
    let block = |chain: &str, proposer: usize, txs: Vec<aegis_types::Transaction>| {
        Block::new(chain, 1, g.hash(), key(proposer).public_key(), 1, 1, txs)
    };

    // Well formed: taken.
    assert_eq!(refusals(append(2, chain(&g, &[1, 2]))), vec![]);
    // An entry's term above the message's, alone (terms never fall along the entries).
    assert_eq!(
        refusals(append(1, chain(&g, &[1, 2]))),
        bad(EntryFault::BadTerm { index: 1 })
    );
    // An entry's term below the one before it, alone (both within the message's term).
    assert_eq!(
        refusals(append(2, chain(&g, &[2, 1]))),
        bad(EntryFault::BadTerm { index: 1 })
    );
    // Each way to be malformed, alone.
    let tx_of = |nonce: u64| aegis_testkit::tx(nonce);
    assert_eq!(
        refusals(append(1, vec![block("another-chain", 0, Vec::new())])),
        bad(EntryFault::Malformed { index: 0 })
    );
    let max = g.consensus.max_block_txs as u64;
    assert_eq!(
        refusals(append(
            1,
            vec![block(CHAIN, 0, (0..max).map(tx_of).collect())]
        )),
        vec![],
        "a block of exactly max_block_txs transactions is taken"
    );
    assert_eq!(
        refusals(append(
            1,
            vec![block(CHAIN, 0, (0..=max).map(tx_of).collect())]
        )),
        bad(EntryFault::Malformed { index: 0 })
    );
    assert_eq!(
        refusals(append(1, vec![block(CHAIN, 9, Vec::new())])),
        bad(EntryFault::Malformed { index: 0 })
    );
    let mut torn = block(CHAIN, 0, vec![tx_of(1)]);
    torn.header.tx_count = 2;
    assert_eq!(
        refusals(append(1, vec![torn])),
        bad(EntryFault::Malformed { index: 0 })
    );

    // Entries per append: exactly the bound is taken, one more refused.
    let terms = vec![1; MAX_ENTRIES_PER_APPEND + 1];
    assert_eq!(
        refusals(append(1, chain(&g, &terms[..MAX_ENTRIES_PER_APPEND]))),
        vec![]
    );
    let too_many = bad(EntryFault::TooMany {
        max: MAX_ENTRIES_PER_APPEND.max(MAX_CERTIFICATES_PER_APPEND),
    });
    assert_eq!(refusals(append(1, chain(&g, &terms))), too_many);
    // Certificates per append, alone: exactly the bound is not refused for its count (each
    // certificate is then judged on its own), one more is.
    let entries = chain(&g, &[1]);
    let certificate = certificate(&entries[0], 1, &[0, 1]);
    let with_certificates = |count: usize| AppendEntries {
        certificates: vec![certificate.clone(); count],
        ..append(1, entries.clone())
    };
    assert!(
        !refusals(with_certificates(MAX_CERTIFICATES_PER_APPEND))
            .iter()
            .any(|r| matches!(r, RejectReason::BadEntries(EntryFault::TooMany { .. })))
    );
    assert_eq!(
        refusals(with_certificates(MAX_CERTIFICATES_PER_APPEND + 1)),
        too_many
    );

    // The uncommitted log may grow to MAX_UNCOMMITTED_ENTRIES - 1 entries (a new leader adds
    // one): an append reaching that is answered (here "no match", the follower's log is
    // empty), one reaching one more is refused as a full log, with both figures.
    let far = |last: u64| AppendEntries {
        term: 1,
        prev_index: last - 1,
        prev_term: 1,
        entries: vec![Block::new(
            CHAIN,
            last,
            g.hash(),
            key(0).public_key(),
            1,
            last,
            Vec::new(),
        )],
        leader_commit: 0,
        certificates: Vec::new(),
    };
    let limit = (MAX_UNCOMMITTED_ENTRIES - 1) as u64;
    assert_eq!(refusals(far(limit)), vec![]);
    assert_eq!(
        refusals(far(limit + 1)),
        vec![RejectReason::LogFull {
            entries: MAX_UNCOMMITTED_ENTRIES,
            max: MAX_UNCOMMITTED_ENTRIES - 1,
        }]
    );
}

/// §5.3's conflict hint: a follower whose entry at `prev_index` has another term answers with
/// the highest index at or below it whose term is at most the leader's `prev_term`, or its
/// committed height when there is none.
#[test]
fn a_conflicting_follower_hints_the_last_entry_of_a_term_the_leader_may_share() {
    let g = genesis(3);
    let hint = |terms: &[u64], prev_index: u64, prev_term: u64| {
        let mut follower = Node::restore(paper_config(&g, 1), state(&g, 3, None, terms));
        follower.start();
        let append = AppendEntries {
            term: 3,
            prev_index,
            prev_term,
            entries: Vec::new(),
            leader_commit: 0,
            certificates: Vec::new(),
        };
        let effects = follower.deliver(0, RaftMessage::Append(append));
        let answers = append_responses(&effects, 3, id(1));
        assert_eq!(answers.len(), 1, "{effects:?}");
        assert!(!answers[0].success);
        answers[0].hint
    };
    // Terms 1 1 2 2: the leader's entry 4 is of term 1, so the follower's last term-1 entry.
    assert_eq!(hint(&[1, 1, 2, 2], 4, 1), 2);
    // The leader's entry 3 is of term 3, above every entry here: entry 3 itself.
    assert_eq!(hint(&[1, 1, 2, 2], 3, 3), 3);
    // No entry of a term at most the leader's: back to the committed height (the genesis).
    assert_eq!(hint(&[2, 2], 2, 1), 0);
}

/// A leader that backs up below a follower's committed tip (it does not know how far the
/// follower committed) re-sends entries the follower no longer holds: the follower skips
/// them and links the first new one to its committed tip.
#[test]
fn entries_at_or_below_the_committed_tip_are_skipped_not_checked_against_a_compacted_log() {
    let g = genesis(3);
    let blocks = chain(&g, &[1, 1, 1]);
    let persisted = RaftPersisted {
        term: 1,
        committed: CommittedTip {
            height: 2,
            hash: blocks[1].hash(),
            term: 1,
            timestamp_ms: blocks[1].header.timestamp_ms,
        },
        ..RaftPersisted::genesis(g.hash())
    };
    let mut follower = Node::restore(paper_config(&g, 1), persisted);
    follower.start();
    let append = AppendEntries {
        term: 1,
        prev_index: 1,
        prev_term: 1,
        entries: blocks[1..].to_vec(),
        leader_commit: 2,
        certificates: Vec::new(),
    };
    let effects = follower.deliver(0, RaftMessage::Append(append));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Rejected { .. })),
        "{effects:?}"
    );
    assert_eq!(follower.log_terms(), vec![1]);
    let answers = append_responses(&effects, 3, id(1));
    assert!(answers.len() == 1 && answers[0].success && answers[0].index == 3);
}

/// Deleting a conflicting suffix (§5.3) also forgets that it was durable: until the
/// replacing entries are synced, only the entries before the conflict count as durable (what
/// this follower may report and vote for).
#[test]
fn a_truncated_suffix_is_no_longer_counted_durable() {
    let g = genesis(3);
    let mut follower = Node::restore(paper_config(&g, 1), state(&g, 1, None, &[1, 1, 1]));
    follower.start();
    assert_eq!(follower.core.durable_index(), 3);
    follower.auto_persist = false;
    let append = AppendEntries {
        term: 2,
        prev_index: 1,
        prev_term: 1,
        entries: chain(&g, &[1, 2, 2])[1..].to_vec(),
        leader_commit: 0,
        certificates: Vec::new(),
    };
    let effects = follower.deliver(0, RaftMessage::Append(append));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Rejected { .. })),
        "{effects:?}"
    );
    assert_eq!(follower.log_terms(), vec![1, 2, 2]);
    assert_eq!(follower.core.durable_index(), 1);
    // The sync of that persist makes the replacing entries durable, and not before.
    let sequence = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist { sequence, .. } => Some(*sequence),
            _ => None,
        })
        .max()
        .expect("the replacing entries are persisted");
    follower.step(Input::Persisted {
        up_to: sequence - 1,
    });
    assert_eq!(follower.core.durable_index(), 1);
    follower.step(Input::Persisted { up_to: sequence });
    assert_eq!(follower.core.durable_index(), 3);
}

/// The core's reports: a timer fired before its deadline (a stale wake-up from the driver)
/// is ignored; a leader that steps down cancels its own timers; the pending transactions
/// are counted; the state fingerprint the "changes nothing" tests compare follows the state.
#[test]
fn timers_reports_and_fingerprints_follow_the_state() {
    let g = genesis(3);
    let mut follower = Node::restore(paper_config(&g, 1), state(&g, 1, None, &[]));
    follower.start();
    let before = follower.core.state_fingerprint();
    let deadline = follower
        .core
        .timer_deadline(RaftTimer::Election)
        .expect("a follower's election timer runs");
    assert!(deadline > follower.now_ms);
    follower.step(Input::Timer(RaftTimer::Election));
    assert_eq!(
        follower.core.role(),
        RaftRole::Follower,
        "fired early: ignored"
    );
    assert_eq!(follower.core.state_fingerprint(), before);
    follower.fire(RaftTimer::Election);
    assert_eq!(follower.core.role(), RaftRole::Candidate);
    assert_ne!(follower.core.state_fingerprint(), before);

    let (_, mut net) = net(3);
    let leader = net.elect(0);
    assert!(
        net.core(leader)
            .timer_deadline(RaftTimer::Heartbeat)
            .is_some()
    );
    assert_eq!(net.core(leader).pending_txs(), 0);
    net.propose(leader, vec![tx(1), tx(2)]);
    assert_eq!(net.core(leader).pending_txs(), 2);
    let term = net.core(leader).term();
    net.run(
        leader,
        Input::Message {
            from: id(1),
            message: RaftMessage::CatchUp(aegis_consensus::raft::CatchUp {
                term: term + 1,
                committed: 0,
            }),
        },
    );
    assert_eq!(net.core(leader).role(), RaftRole::Follower);
    assert_eq!(net.core(leader).timer_deadline(RaftTimer::Heartbeat), None);
}

/// The leader's certificates may start below what this follower already committed (the
/// leader does not know): those are skipped and the next ones commit.
#[test]
fn certificates_below_the_committed_tip_are_skipped_and_the_rest_commit() {
    let g = genesis(3);
    let blocks = chain(&g, &[1, 1]);
    let mut follower = Node::restore(paper_config(&g, 1), state(&g, 1, None, &[]));
    follower.start();
    let first = AppendEntries {
        term: 1,
        prev_index: 0,
        prev_term: 0,
        entries: blocks.clone(),
        leader_commit: 1,
        certificates: vec![certificate(&blocks[0], 1, &[0, 1])],
    };
    follower.deliver(0, RaftMessage::Append(first));
    assert_eq!(follower.committed_height(), 1);
    let again = AppendEntries {
        term: 1,
        prev_index: 2,
        prev_term: 1,
        entries: Vec::new(),
        leader_commit: 2,
        certificates: vec![
            certificate(&blocks[0], 1, &[0, 1]),
            certificate(&blocks[1], 1, &[0, 1]),
        ],
    };
    let effects = follower.deliver(0, RaftMessage::Append(again));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Rejected { .. })),
        "{effects:?}"
    );
    assert_eq!(follower.committed_height(), 2);
}

/// A follower holding the leader's log votes for exactly the entries above the leader's
/// commit, up to the append's match: none the leader already committed.
#[test]
fn commit_votes_cover_exactly_the_entries_above_the_leaders_commit() {
    let g = genesis(3);
    let mut follower = Node::restore(paper_config(&g, 1), state(&g, 1, None, &[1, 1, 1]));
    follower.start();
    let append = AppendEntries {
        term: 1,
        prev_index: 3,
        prev_term: 1,
        entries: Vec::new(),
        leader_commit: 1,
        certificates: Vec::new(),
    };
    let effects = follower.deliver(0, RaftMessage::Append(append));
    let answers = append_responses(&effects, 3, id(1));
    assert_eq!(answers.len(), 1, "{effects:?}");
    let heights: Vec<u64> = answers[0].votes.iter().map(|v| v.height).collect();
    assert_eq!(heights, vec![2, 3]);
}

/// A CATCH-UP (the leader no longer holds what this node needs) is judged by its term like
/// any message of a leader: from an older term it is refused and changes nothing; from a
/// newer one it is followed; a leader refuses one of its own term (two leaders).
#[test]
fn a_catch_up_is_judged_by_its_term() {
    use aegis_consensus::raft::CatchUp;
    let g = genesis(3);
    let catch_up = |term: u64| RaftMessage::CatchUp(CatchUp { term, committed: 0 });

    let mut follower = Node::restore(paper_config(&g, 1), state(&g, 2, None, &[]));
    follower.start();
    let effects = follower.deliver(0, catch_up(1));
    assert_eq!(
        rejections(&effects),
        vec![RejectReason::StaleTerm {
            term: 1,
            current: 2
        }]
    );
    assert_eq!((follower.core.term(), follower.core.leader()), (2, None));
    let effects = follower.deliver(0, catch_up(3));
    assert_eq!(rejections(&effects), vec![]);
    assert_eq!(
        (follower.core.term(), follower.core.leader()),
        (3, Some(id(0)))
    );
    // Nothing committed beyond this node's tip: no sync; something: a sync, and the
    // network's height (for `/status`) is what the leader said.
    assert_eq!(sync_requested(&effects), None, "{effects:?}");
    assert_eq!(follower.core.network_height(), 0);
    let effects = follower.deliver(
        0,
        RaftMessage::CatchUp(CatchUp {
            term: 3,
            committed: 5,
        }),
    );
    assert!(sync_requested(&effects).is_some(), "{effects:?}");
    assert_eq!(follower.core.network_height(), 5);

    let (_, mut net) = net(3);
    let leader = net.elect(0);
    let term = net.core(leader).term();
    // A leader keeps a progress for each follower, none for itself.
    assert!(net.core(leader).progress(id(1)).is_some());
    assert!(net.core(leader).progress(id(leader)).is_none());
    let effects = net.run(
        leader,
        Input::Message {
            from: id(1),
            message: catch_up(term),
        },
    );
    assert_eq!(
        rejections(&effects),
        vec![RejectReason::TwoLeaders { term }]
    );
    assert_eq!(net.core(leader).role(), RaftRole::Leader);
    let effects = net.run(
        leader,
        Input::Message {
            from: id(1),
            message: catch_up(term + 1),
        },
    );
    assert_eq!(rejections(&effects), vec![]);
    assert_eq!(net.core(leader).role(), RaftRole::Follower);
    assert_eq!(net.core(leader).leader(), Some(id(1)));
    assert!(net.core(leader).progress(id(1)).is_none());
}

/// Each persist that changed the log is remembered with the log's length, so an
/// acknowledgement of an older persist makes exactly that much durable while a later one is
/// still in flight; and the persist of the step whose commit passes a multiple of the
/// compaction interval, and only that one, lets the driver compact the consensus log.
#[test]
fn acknowledged_persists_and_compaction_points_are_exact() {
    let g = genesis(3);
    let blocks = chain(&g, &[1, 1, 1]);
    let persists = |effects: &[aegis_consensus::raft::RaftEffect]| -> Vec<(u64, bool)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Persist {
                    sequence, compact, ..
                } => Some((*sequence, *compact)),
                _ => None,
            })
            .collect()
    };
    let append = |prev: usize, entries: &[aegis_types::Block], commit: &[usize]| {
        RaftMessage::Append(AppendEntries {
            term: 1,
            prev_index: prev as u64,
            prev_term: u64::from(prev > 0),
            entries: entries.to_vec(),
            leader_commit: commit.last().map_or(0, |h| *h as u64),
            certificates: commit
                .iter()
                .map(|h| certificate(&blocks[h - 1], 1, &[0, 1]))
                .collect(),
        })
    };

    let mut follower = Node::restore(paper_config(&g, 1), state(&g, 1, None, &[]));
    follower.start();
    follower.auto_persist = false;
    let first = persists(&follower.deliver(0, append(0, &blocks[..1], &[])));
    let second = persists(&follower.deliver(0, append(1, &blocks[1..2], &[])));
    assert_eq!(follower.core.durable_index(), 0);
    follower.step(Input::Persisted { up_to: first[0].0 });
    assert_eq!(follower.core.durable_index(), 1, "the older persist alone");
    follower.step(Input::Persisted { up_to: second[0].0 });
    assert_eq!(follower.core.durable_index(), 2);

    let mut config = paper_config(&g, 1);
    config.compaction_interval_blocks = 2;
    let mut follower = Node::restore(config, state(&g, 1, None, &[]));
    follower.start();
    follower.deliver(0, append(0, &blocks, &[]));
    let compacts = |effects: Vec<_>| persists(&effects).iter().any(|(_, compact)| *compact);
    assert!(
        !compacts(follower.deliver(0, append(3, &[], &[1]))),
        "height 1"
    );
    assert!(
        compacts(follower.deliver(0, append(3, &[], &[2]))),
        "height 2"
    );
    assert!(
        !compacts(follower.deliver(0, append(3, &[], &[3]))),
        "height 3"
    );
    assert_eq!(follower.committed_height(), 3);
}

/// A leader never stamps a block before its parent, whatever its own clock says (block
/// timestamps never run backwards): here the last entry is stamped far ahead of the clock.
#[test]
fn a_leaders_blocks_are_never_stamped_before_their_parent() {
    let g = genesis(1);
    let ahead = aegis_types::Block::new(
        &g.chain_id,
        1,
        g.hash(),
        key(0).public_key(),
        1,
        5_000_000,
        Vec::new(),
    );
    let persisted = RaftPersisted {
        term: 1,
        entries: vec![ahead.clone()],
        ..RaftPersisted::genesis(g.hash())
    };
    let mut node = Node::restore(paper_config(&g, 0), persisted);
    node.start();
    node.fire(RaftTimer::Election);
    assert_eq!(node.core.role(), RaftRole::Leader);
    assert!(node.now_ms < 5_000_000);
    assert_eq!(
        node.committed_height(),
        2,
        "a lone validator commits at once"
    );
    assert_eq!(node.ledger[0].0.hash(), ahead.hash());
    assert!(node.ledger[1].0.header.timestamp_ms >= 5_000_000);
}
