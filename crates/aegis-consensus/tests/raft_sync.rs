//! What a Raft node does with blocks committed elsewhere and with committed ids: sync asked
//! for at most once per heartbeat interval and height, a synced block of the node's own term
//! that keeps its leader, a leader that refuses a synced block conflicting with its log, and
//! ids remembered for exactly the deduplication window; and the configuration checks.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod raft_support;

use aegis_consensus::Input;
use aegis_consensus::raft::RaftEffect;
use aegis_consensus::raft::{
    CatchUp, ConfigError, RaftConfig, RaftMessage, RaftRole, RaftTimer, RejectReason, SyncFault,
};
use aegis_types::Block;
use raft_support::*;

fn catch_up(term: u64, committed: u64) -> RaftMessage {
    RaftMessage::CatchUp(CatchUp { term, committed })
}

/// Hands `node` the synced `block`, certified by nodes 0 and 2 in `term`.
fn sync(node: &mut Node, block: Block, term: u64) -> Vec<RaftEffect> {
    let cert = certificate(&block, term, &[0, 2]);
    node.step(Input::SyncedBlock {
        block,
        certificate: cert,
    })
}

/// A sync for the same height is asked for again only once a heartbeat interval has passed
/// (exactly then, not before); a sync for a new height is asked for at once.
#[test]
fn sync_is_asked_once_per_height_and_heartbeat_interval() {
    let g = genesis(3);
    let mut follower = Node::restore(config(&g, 1), state(&g, 3, None, &[]));
    follower.start();
    let start = follower.now_ms;
    let effects = follower.deliver(0, catch_up(3, 5));
    assert_eq!(sync_requested(&effects), Some(1));
    let effects = follower.deliver(0, catch_up(3, 5));
    assert_eq!(sync_requested(&effects), None, "again at once");
    follower.now_ms = start + HEARTBEAT_MS - 1;
    let effects = follower.deliver(0, catch_up(3, 5));
    assert_eq!(sync_requested(&effects), None, "again within the interval");
    follower.now_ms = start + HEARTBEAT_MS;
    let effects = follower.deliver(0, catch_up(3, 5));
    assert_eq!(
        sync_requested(&effects),
        Some(1),
        "once the interval passed"
    );
    // Block 1 arrives: the next sync, for height 2, is asked for at once.
    let effects = sync(&mut follower, chain(&g, &[3]).remove(0), 3);
    assert_eq!(rejections(&effects), vec![]);
    assert_eq!(follower.committed_height(), 1);
    let effects = follower.deliver(0, catch_up(3, 5));
    assert_eq!(sync_requested(&effects), Some(2));
}

/// A follower that syncs a block of its own term (its leader's) keeps following that
/// leader: the block says nothing new about the term.
#[test]
fn a_synced_block_of_the_current_term_keeps_the_leader() {
    let g = genesis(3);
    let mut follower = Node::restore(config(&g, 1), state(&g, 3, None, &[]));
    follower.start();
    follower.deliver(0, catch_up(3, 1));
    assert_eq!(follower.core.leader(), Some(id(0)));
    let effects = sync(&mut follower, chain(&g, &[3]).remove(0), 3);
    assert_eq!(rejections(&effects), vec![]);
    assert_eq!(follower.committed_height(), 1);
    assert_eq!(
        (follower.core.term(), follower.core.leader()),
        (3, Some(id(0)))
    );
    // A block of a later term moves the term on, and the leader is no longer known.
    sync(&mut follower, chain(&g, &[3, 4]).remove(1), 4);
    assert_eq!((follower.core.term(), follower.core.leader()), (4, None));
}

/// Leader Completeness (§5.4): a leader holds every committed entry, so a certified block
/// that conflicts with its log is refused, and its log stays as it is.
#[test]
fn a_leader_refuses_a_synced_block_that_conflicts_with_its_log() {
    let g = genesis(3);
    let configs = (0..3).map(|i| config(&g, i)).collect();
    let states = vec![
        state(&g, 5, None, &[5]),
        state(&g, 5, None, &[]),
        state(&g, 5, None, &[]),
    ];
    let mut net = Net::restored(configs, states);
    let deadline = net.core(0).timer_deadline(RaftTimer::Election).unwrap();
    net.now_ms = net.now_ms.max(deadline);
    net.run(0, Input::Timer(RaftTimer::Election));
    // Votes are delivered, appends are not: block 1 (term 5) stays uncommitted.
    net.deliver_all(|_, _, m| !matches!(m, RaftMessage::Append(_)));
    assert_eq!(net.core(0).role(), RaftRole::Leader);
    assert_eq!(net.node(0).committed_height(), 0);
    let before = net.node(0).log_terms();
    assert_eq!(before[0], 5);
    let other = chain(&g, &[4]).remove(0);
    let cert = certificate(&other, 4, &[1, 2]);
    let effects = net.run(
        0,
        Input::SyncedBlock {
            block: other,
            certificate: cert,
        },
    );
    assert_eq!(
        rejections(&effects),
        vec![RejectReason::BadSyncedBlock(
            SyncFault::ConflictsWithLeaderLog
        )]
    );
    assert_eq!(net.node(0).log_terms(), before);
    assert_eq!(net.node(0).committed_height(), 0);
    assert_eq!(net.core(0).role(), RaftRole::Leader);
}

/// A committed transaction's id is remembered for exactly `tx_dedup_window_blocks` blocks
/// (its own included): proposed again within them it is left out; after them the memory is
/// bounded and the id forgotten (the ledger's own check refuses a repeat from then on).
#[test]
fn committed_ids_are_remembered_for_exactly_the_window() {
    let g = genesis(3);
    let configs: Vec<RaftConfig> = (0..3)
        .map(|i| RaftConfig {
            tx_dedup_window_blocks: 3,
            ..config(&g, i)
        })
        .collect();
    let mut net = Net::new(configs);
    net.elect(0);
    let height = |net: &Net| net.node(0).committed_height();
    let contains = |net: &Net, nonce: u64| {
        net.node(0)
            .ledger
            .iter()
            .filter(|(b, _)| tx_ids(b).contains(&tx(nonce).id()))
            .count()
    };
    let propose = |net: &mut Net, nonce: u64| {
        net.propose(0, vec![tx(nonce)]);
        net.deliver_everything();
    };
    propose(&mut net, 1);
    propose(&mut net, 2);
    propose(&mut net, 3);
    assert_eq!(height(&net), 3);
    propose(&mut net, 1);
    assert_eq!(
        (height(&net), contains(&net, 1)),
        (3, 1),
        "within the window"
    );
    propose(&mut net, 4);
    assert_eq!(height(&net), 4);
    propose(&mut net, 1);
    assert_eq!(
        (height(&net), contains(&net, 1)),
        (5, 2),
        "after the window"
    );
    net.assert_agreement(&g);
    // A window of no block at all is refused: a core always remembers its last block's ids.
    let none = RaftConfig {
        tx_dedup_window_blocks: 0,
        ..config(&g, 0)
    };
    assert_eq!(
        none.validate(),
        Err(ConfigError::Zero {
            field: "tx_dedup_window_blocks"
        })
    );
}

/// A configuration is checked as a whole: each count and interval at least 1, this node among
/// the validators, no Byzantine bound, a pipeline no deeper than a genesis allows (the
/// deepest is accepted), an election timeout longer than the heartbeat interval.
#[test]
fn a_configuration_is_checked_field_by_field() {
    use aegis_types::genesis::MAX_PIPELINE_DEPTH;
    let g = genesis(3);
    let good = config(&g, 0);
    assert_eq!(good.validate(), Ok(()));
    let zero = |field: &'static str, config: RaftConfig| {
        assert_eq!(
            config.validate(),
            Err(ConfigError::Zero { field }),
            "{field}"
        );
    };
    zero(
        "max_block_txs",
        RaftConfig {
            max_block_txs: 0,
            ..good.clone()
        },
    );
    zero(
        "pipeline_depth",
        RaftConfig {
            pipeline_depth: 0,
            ..good.clone()
        },
    );
    zero(
        "max_pending_txs",
        RaftConfig {
            max_pending_txs: 0,
            ..good.clone()
        },
    );
    zero(
        "compaction_interval_blocks",
        RaftConfig {
            compaction_interval_blocks: 0,
            ..good.clone()
        },
    );
    let stranger = RaftConfig {
        me: id(7),
        ..good.clone()
    };
    assert_eq!(stranger.validate(), Err(ConfigError::UnknownSelf(id(7))));
    let deepest = RaftConfig {
        pipeline_depth: MAX_PIPELINE_DEPTH,
        ..good.clone()
    };
    assert_eq!(deepest.validate(), Ok(()));
    let deeper = RaftConfig {
        pipeline_depth: MAX_PIPELINE_DEPTH + 1,
        ..good.clone()
    };
    assert_eq!(
        deeper.validate(),
        Err(ConfigError::PipelineTooDeep(MAX_PIPELINE_DEPTH + 1))
    );
    let hasty = RaftConfig {
        election_timeout_ms: good.heartbeat_interval_ms,
        ..good.clone()
    };
    assert_eq!(
        hasty.validate(),
        Err(ConfigError::ElectionNotAfterHeartbeat {
            election_ms: good.heartbeat_interval_ms,
            heartbeat_ms: good.heartbeat_interval_ms,
        })
    );
    let byzantine = aegis_testkit::GenesisBuilder::new(4)
        .algorithm(aegis_types::ConsensusAlgorithm::Raft)
        .max_byzantine_nodes(1)
        .build();
    assert_eq!(
        RaftConfig::from_genesis(&byzantine, id(0), HEARTBEAT_MS, ELECTION_MS),
        Err(ConfigError::ByzantineBound(1))
    );
}
