//! How a Raft leader replicates: appends bounded in entries and in bytes, a returning follower
//! brought up to date without waiting for a heartbeat, commits made known at once, answers
//! of an older term refused, and no sync asked for while the leader is up to date.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod raft_support;

use aegis_consensus::Effect;
use aegis_consensus::raft::config::{MAX_APPEND_BYTES, MAX_ENTRIES_PER_APPEND};
use aegis_consensus::raft::{AppendEntries, AppendResponse, RaftMessage, RejectReason};
use aegis_consensus::{Input, raft::RaftRole};
use aegis_testkit::{GenesisBuilder, client_key, signed_tx};
use aegis_types::{ConsensusAlgorithm, Genesis, Transaction};
use raft_support::*;

fn net_of(g: &Genesis) -> Net {
    Net::new((0..3).map(|i| config(g, i)).collect())
}

fn payload_tx(nonce: u64, bytes: usize) -> Transaction {
    signed_tx(&client_key(), CHAIN, nonce, vec![7; bytes])
}

/// Node 2 is down (holding block 1) while node 0 commits one block per element of `blocks`;
/// then it returns.
/// Returns every append node 0 sent it with entries, until it holds what the others hold.
fn appends_to_a_returning_follower(
    g: &Genesis,
    blocks: Vec<Vec<Transaction>>,
) -> Vec<AppendEntries> {
    let mut net = net_of(g);
    net.elect(0);
    // Node 2 holds block 1: below it is the genesis, which only sync brings.
    net.propose(0, vec![tx(1_000_000)]);
    net.deliver_everything();
    net.crash(2);
    let count = blocks.len() as u64 + 1;
    for txs in blocks {
        net.propose(0, txs);
        net.deliver_everything();
    }
    assert_eq!(net.node(0).committed_height(), count);
    net.history = Some(Vec::new());
    net.restart(2);
    net.run_for(4 * HEARTBEAT_MS, |_, _, _| true);
    assert_eq!(net.node(2).committed_height(), count, "node 2 caught up");
    net.assert_agreement(g);
    let history = net.history.take().unwrap();
    history
        .iter()
        .filter(|(i, _)| *i == 0)
        .flat_map(|(_, effects)| appends(effects, 3, id(0)))
        .filter(|(to, a)| to.0 == 2 && !a.entries.is_empty())
        .map(|(_, a)| a)
        .collect()
}

/// Three Raft validators whose blocks hold up to 80 transactions (about 5 MB at the largest
/// payload).
fn big_blocks_genesis() -> Genesis {
    GenesisBuilder::new(3)
        .algorithm(ConsensusAlgorithm::Raft)
        .max_byzantine_nodes(0)
        .max_block_txs(80)
        .pipeline_depth(4)
        .build()
}

fn encoded_len(append: &AppendEntries) -> usize {
    append
        .entries
        .iter()
        .map(|b| borsh::object_length(b).unwrap())
        .sum()
}

/// A follower 100 blocks behind (all still in the leader's memory) gets them in appends of
/// at most `MAX_ENTRIES_PER_APPEND` entries, as many as fit: the first carries exactly that
/// many (blocks of a 2 KB transaction: far from the byte bound).
#[test]
fn appends_carry_at_most_and_up_to_their_bound_of_entries() {
    let g = genesis(3);
    let blocks = (0..100).map(|n| vec![payload_tx(n, 2_000)]).collect();
    let appends = appends_to_a_returning_follower(&g, blocks);
    let sizes: Vec<usize> = appends.iter().map(|a| a.entries.len()).collect();
    assert!(
        sizes.iter().all(|n| *n <= MAX_ENTRIES_PER_APPEND),
        "{sizes:?}"
    );
    assert_eq!(
        sizes.iter().max(),
        Some(&MAX_ENTRIES_PER_APPEND),
        "{sizes:?}"
    );
    assert!(sizes.iter().sum::<usize>() >= 100, "{sizes:?}");
}

/// Blocks of about 5 MB each: two would pass `MAX_APPEND_BYTES`, so each goes alone (one
/// block always goes, whatever its size, or nothing would).
#[test]
fn appends_carry_at_most_their_bound_of_bytes() {
    let g = big_blocks_genesis();
    let blocks = (0..3)
        .map(|b| (0..80).map(|n| payload_tx(b * 100 + n, 64_000)).collect())
        .collect();
    let appends = appends_to_a_returning_follower(&g, blocks);
    assert!(!appends.is_empty());
    for append in &appends {
        assert_eq!(append.entries.len(), 1);
        assert!(encoded_len(append) > MAX_APPEND_BYTES / 2);
    }
}

/// A leader that restarted holds no committed block in memory; a follower that returns
/// behind it is told to catch up as soon as it answers the first heartbeat, not one
/// heartbeat later, and is up to date before the clock moves again.
#[test]
fn a_returning_follower_is_told_to_catch_up_on_its_first_answer() {
    let g = genesis(3);
    let mut net = net_of(&g);
    net.elect(0);
    net.crash(2);
    for nonce in 0..3 {
        net.propose(0, vec![tx(nonce)]);
        net.deliver_everything();
    }
    net.crash(0);
    net.restart(0);
    net.run_for(4 * ELECTION_MS, |_, _, _| true);
    let leader = net.leaders()[0].1;
    let height = net.node(leader).committed_height();
    net.restart(2);
    let deadline = net
        .core(leader)
        .timer_deadline(aegis_consensus::raft::RaftTimer::Heartbeat)
        .unwrap();
    net.advance(deadline - net.now_ms);
    net.deliver_everything();
    assert_eq!(net.node(2).committed_height(), height);
    net.assert_agreement(&g);
}

/// Once a block commits and nothing else is proposed, the leader sends its certificate at
/// once: followers commit before any heartbeat.
#[test]
fn followers_learn_a_commit_without_waiting_for_a_heartbeat() {
    let g = genesis(3);
    let mut net = net_of(&g);
    net.elect(0);
    net.propose(0, vec![tx(1)]);
    net.deliver_everything();
    for i in 0..3 {
        assert_eq!(net.node(i).committed_height(), 1, "node {i}");
    }
}

/// An answer of an older term is refused for that (§5.1) and changes nothing; an answer
/// that shows the follower up to date asks for no sync.
#[test]
fn answers_of_an_older_term_are_refused_and_an_up_to_date_one_asks_no_sync() {
    let g = genesis(3);
    let mut net = net_of(&g);
    net.elect(0);
    net.propose(0, vec![tx(1)]);
    net.deliver_everything();
    let term = net.core(0).term();
    let stale = AppendResponse {
        term: term - 1,
        success: true,
        index: 1,
        hint: 1,
        committed: 1,
        ..current_answer(&mut net)
    };
    let effects = net.run(
        0,
        Input::Message {
            from: id(1),
            message: RaftMessage::AppendResponse(stale),
        },
    );
    assert!(
        rejections(&effects)
            .iter()
            .any(|r| matches!(r, RejectReason::StaleTerm { .. })),
        "{effects:?}"
    );
    let answer = current_answer(&mut net);
    assert_eq!(answer.committed, net.node(0).committed_height());
    let effects = net.run(
        0,
        Input::Message {
            from: id(1),
            message: RaftMessage::AppendResponse(answer),
        },
    );
    assert!(rejections(&effects).is_empty(), "{effects:?}");
    assert_eq!(sync_requested(&effects), None);
    assert_eq!(net.core(0).role(), RaftRole::Leader);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::RequestSync { .. }))
    );
}

/// Node 1's answer to the leader's next heartbeat.
fn current_answer(net: &mut Net) -> AppendResponse {
    let deadline = net
        .core(0)
        .timer_deadline(aegis_consensus::raft::RaftTimer::Heartbeat)
        .unwrap();
    net.advance(deadline - net.now_ms);
    let queued: Vec<_> = net.queue.drain(..).collect();
    let (_, _, heartbeat) = queued
        .into_iter()
        .find(|(from, to, m)| *from == 0 && *to == 1 && matches!(m, RaftMessage::Append(_)))
        .expect("a heartbeat to node 1");
    let effects = net.run(
        1,
        Input::Message {
            from: id(0),
            message: heartbeat,
        },
    );
    net.queue.clear();
    append_responses(&effects, 3, id(1))
        .pop()
        .expect("node 1 answers")
}

/// Two blocks of exactly half the byte bound each fill one append exactly: the bound is
/// inclusive.
#[test]
fn an_append_may_carry_exactly_its_byte_bound() {
    let g = big_blocks_genesis();
    let half = MAX_APPEND_BYTES / 2;
    // 64 transactions of 65,000 bytes and one sized so that the block is exactly `half`.
    let block_of = |first_nonce: u64| {
        let mut txs: Vec<Transaction> = (0..64)
            .map(|n| payload_tx(first_nonce + n, 65_000))
            .collect();
        let len = |txs: &[Transaction]| {
            let block = aegis_types::Block::new(
                CHAIN,
                1,
                aegis_types::Hash::ZERO,
                key(0).public_key(),
                1,
                1,
                txs.to_vec(),
            );
            borsh::object_length(&block).unwrap()
        };
        txs.push(payload_tx(first_nonce + 64, 0));
        let last = half - len(&txs);
        txs.pop();
        txs.push(payload_tx(first_nonce + 64, last));
        assert_eq!(len(&txs), half);
        txs
    };
    let appends = appends_to_a_returning_follower(&g, vec![block_of(0), block_of(100)]);
    assert!(
        appends
            .iter()
            .any(|a| a.entries.len() == 2 && encoded_len(a) == MAX_APPEND_BYTES),
        "{:?}",
        appends
            .iter()
            .map(|a| (a.entries.len(), encoded_len(a)))
            .collect::<Vec<_>>()
    );
}
