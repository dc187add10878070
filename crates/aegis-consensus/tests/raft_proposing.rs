//! How a Raft leader asks for batches: once per step (every step of every test checks it, in
//! `raft_support`), not again after the mempool answered that it has nothing until something
//! new is pending, never more than `pipeline_depth` blocks ahead of its commits, and only
//! while it leads.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod raft_support;

use aegis_consensus::raft::{RaftEffect, RaftInput, RaftTimer};
use aegis_consensus::{Effect, Input};
use aegis_types::Transaction;
use raft_support::*;

fn net(n: usize) -> (aegis_types::Genesis, Net) {
    let g = genesis(n);
    let configs = (0..n).map(|i| config(&g, i)).collect();
    (g, Net::new(configs))
}

fn asks(effects: &[RaftEffect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::ProposalWanted { .. }))
        .count()
}

fn pending(nonce: u64) -> RaftInput {
    Input::TransactionsPending(vec![tx(nonce).id()])
}

/// Asked, answered with nothing: the leader does not ask again on later steps (a heartbeat,
/// its own timer) until a transaction is reported pending again.
#[test]
fn after_an_empty_answer_the_leader_asks_again_only_for_new_transactions() {
    let (_, mut net) = net(3);
    net.elect(0);
    net.deliver_everything();
    assert_eq!(asks(&net.run(0, pending(1))), 1);
    let effects = net.run(0, Input::Proposal(Vec::new()));
    assert_eq!(asks(&effects), 0);
    net.history = Some(Vec::new());
    let deadline = net.core(0).timer_deadline(RaftTimer::Heartbeat).unwrap();
    net.advance(deadline - net.now_ms);
    net.deliver_everything();
    let history = net.history.take().unwrap();
    assert!(history.iter().any(|(i, _)| *i == 0), "node 0 stepped");
    assert!(
        history.iter().all(|(_, effects)| asks(effects) == 0),
        "nothing new is pending: no ask"
    );
    assert_eq!(asks(&net.run(0, pending(2))), 1);
}

/// With its followers silent, the leader appends `pipeline_depth` blocks (4 here) and no
/// more, however many batches it is handed.
#[test]
fn the_leader_keeps_at_most_pipeline_depth_blocks_uncommitted() {
    let (_, mut net) = net(3);
    net.elect(0);
    net.deliver_everything();
    for nonce in 0..6 {
        net.propose(0, vec![tx(nonce)]);
    }
    assert_eq!(net.core(0).uncommitted_entries().len(), 4);
    let effects = net.run(0, Input::Proposal(vec![tx(99)]));
    assert_eq!(asks(&effects), 0);
    assert_eq!(net.core(0).uncommitted_entries().len(), 4);
    assert_eq!(net.node(0).committed_height(), 0);
}

/// A batch handed to a follower is not its to order: nothing is appended or sent.
#[test]
fn a_follower_appends_nothing_it_is_handed() {
    let (_, mut net) = net(3);
    net.elect(0);
    net.deliver_everything();
    let txs: Vec<Transaction> = vec![tx(1), tx(2)];
    let effects = net.run(1, Input::Proposal(txs));
    assert!(net.core(1).uncommitted_entries().is_empty());
    assert!(messages(&effects, 3, id(1)).is_empty(), "{effects:?}");
    assert_eq!(asks(&effects), 0);
}
