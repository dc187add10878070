//! Castro & Liskov, "Practical Byzantine Fault Tolerance" (OSDI '99), checked on a cluster of
//! real cores with every message delivered in order.

mod common;

use std::sync::Arc;

use aegis_consensus::pbft::{PbftMessage, PbftTimer, RejectReason, Status};
use aegis_consensus::{Effect, Outgoing, Protocol};
use aegis_crypto::verify_commit_certificate;
use aegis_engine::memory::Notice;
use common::{Cluster, genesis, sent, tx};

/// Reference: §4.2 (normal-case operation): pre-prepare, prepare, commit; every replica
/// executes the request, and the COMMIT signatures form a certificate checkable offline.
#[test]
fn n4_normal_case_commits_a_block_with_a_verifiable_certificate() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1), tx(2)]);
    cluster.deliver_all(|_, _, _| true);
    let set = g.validator_set().unwrap();
    for i in 0..4 {
        assert_eq!(cluster.height(i), 1, "node {i}");
        let (block, cert) = &cluster.committed(i)[0];
        assert_eq!(
            block.header.prev_hash,
            g.hash(),
            "block 1 links to the genesis"
        );
        assert_eq!(block.txs.len(), 2);
        assert_eq!(cert.block_hash, block.hash());
        verify_commit_certificate(cert, &g.chain_id, &set).unwrap();
        assert!(cert.signatures.len() >= set.quorum());
    }
    assert_eq!(cluster.committed(0)[0].0, cluster.committed(3)[0].0);
}

/// A network of one validator (f = 0): nobody answers the primary, whose own pre-prepare is
/// a prepared certificate and whose own commit is a quorum; it commits alone, pipelined.
#[test]
fn n1_single_validator_commits_alone() {
    let g = genesis(1, 0, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1), tx(2)]);
    cluster.deliver_all(|_, _, _| true);
    assert_eq!(cluster.height(0), 1);
    for nonce in 3..=6 {
        cluster.submit_to(0, vec![tx(nonce)]);
    }
    cluster.deliver_all(|_, _, _| true);
    let set = g.validator_set().unwrap();
    let committed = cluster.committed(0);
    assert!(committed.len() >= 2, "{} blocks", committed.len());
    let txs: usize = committed.iter().map(|(block, _)| block.txs.len()).sum();
    assert_eq!(txs, 6);
    for (block, cert) in committed {
        assert_eq!(cert.block_hash, block.hash());
        verify_commit_certificate(cert, &g.chain_id, &set).unwrap();
    }
}

/// Reference: §4.2 and §5.1 (batching, several requests in flight): the primary pre-prepares
/// sequence numbers up to `pipeline_depth` ahead of the last executed one without waiting.
#[test]
fn n4_primary_pipelines_up_to_pipeline_depth() {
    let g = genesis(4, 1, 10, 3);
    let mut cluster = Cluster::new(&g);
    for nonce in 1..=5 {
        // Each transaction arrives alone, so each becomes its own batch.
        cluster.submit_to(0, vec![tx(nonce)]);
    }
    let pre_prepares: Vec<u64> = cluster
        .queue
        .iter()
        .filter_map(|(from, to, m)| match m {
            PbftMessage::PrePrepare(pp) if *from == 0 && *to == 1 => Some(pp.seq),
            _ => None,
        })
        .collect();
    assert_eq!(pre_prepares, vec![1, 2, 3], "bounded by pipeline_depth = 3");
    for i in 1..4 {
        cluster.submit_to(i, (1..=5).map(tx).collect());
    }
    cluster.deliver_all(|_, _, _| true);
    for i in 0..4 {
        // Slots 1-3 hold one transaction each; the two left wait for a free slot and share it.
        assert_eq!(cluster.height(i), 4, "node {i}");
        let txs: usize = cluster.committed(i).iter().map(|(b, _)| b.txs.len()).sum();
        assert_eq!(txs, 5);
    }
    let chain = &cluster.committed(1);
    for pair in chain.windows(2) {
        assert_eq!(pair[1].0.header.prev_hash, pair[0].0.hash(), "hash chain");
    }
}

/// Reference: §4.3 (garbage collection): a checkpoint every K requests becomes stable with
/// 2f + 1 matching CHECKPOINT messages and moves the low watermark.
#[test]
fn n4_checkpoint_becomes_stable_and_moves_the_low_watermark() {
    let g = genesis(4, 1, 2, 1);
    let mut cluster = Cluster::new(&g);
    for nonce in 1..=5 {
        cluster.submit(vec![tx(nonce)]);
        cluster.deliver_all(|_, _, _| true);
    }
    for i in 0..4 {
        assert_eq!(cluster.height(i), 5);
        assert_eq!(cluster.core(i).stable_checkpoint(), 4, "node {i}");
        let persisted = cluster.core(i).persisted();
        assert!(
            persisted.slots.iter().all(|s| s.seq > 4),
            "log below h discarded"
        );
        assert!(persisted.stable.checkpoints.len() >= 3);
    }
}

/// Reference: §4.4 (view changes) and §4.5.2: backups whose request timer expires move to
/// view 1; its primary (node 1) sends NEW-VIEW and the request commits there.
#[test]
fn n4_silent_primary_is_replaced_by_a_view_change() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1)]);
    // Node 0, the primary of view 0, is silent.
    cluster.deliver_all(|from, _, _| from != 0);
    assert_eq!(cluster.height(1), 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        assert_eq!(cluster.core(i).view(), 1, "node {i}");
        assert_eq!(cluster.core(i).status(), Status::Normal);
        assert_eq!(cluster.height(i), 1, "node {i} committed in view 1");
        assert_eq!(cluster.committed(i)[0].1.view, 1);
    }
    assert!(
        cluster.notices[2]
            .iter()
            .any(|n| matches!(n, Notice::LeaderChanged { epoch: 1, .. }))
    );
}

/// Reference: §4.4: a request prepared in view 0 survives the view change with the same
/// digest (the new primary's O carries the prepared certificate's batch).
#[test]
fn n4_prepared_request_survives_view_change() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1)]);
    // Prepares flow, but every COMMIT is lost: the request is prepared, not committed.
    cluster.deliver_all(|_, _, m| !matches!(m, PbftMessage::Commit(_)));
    let digest = cluster.core(2).persisted().slots[0]
        .prepared
        .as_ref()
        .unwrap()
        .pre_prepare
        .batch
        .digest();
    for i in 0..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    cluster.deliver_all(|_, _, _| true);
    for i in 0..4 {
        assert_eq!(cluster.height(i), 1);
        assert_eq!(cluster.core(i).view(), 1);
    }
    let slot = cluster.core(3).persisted().slots[0].clone();
    assert_eq!(slot.pre_prepare.unwrap().batch.digest(), digest);
}

/// Reference: §4.2 (a replica accepts one pre-prepare per view and sequence number) and the
/// durability rule of ADR 0003: a replica restarted from its persisted state keeps refusing
/// a second, different pre-prepare for a slot it already prepared.
#[test]
fn n4_restarted_backup_never_prepares_two_batches_for_one_slot() {
    use aegis_consensus::pbft::{Batch, Pbft, PrePrepare};
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1)]);
    let pp = common::queued_pre_prepare(&cluster, 1);
    cluster.run(1, |d| {
        d.deliver(
            aegis_types::ValidatorId(0),
            PbftMessage::PrePrepare(pp.clone()),
        )
    });
    // The PREPARE left only once the consensus log held the promise.
    let persisted = cluster.logged_state(1);
    assert_eq!(persisted.slots[0].sent_prepare, Some(pp.batch.digest()));
    assert_eq!(
        persisted,
        cluster.core(1).persisted(),
        "the log replays to the core's state"
    );
    // Crash and restart from exactly what the log replays to.
    let mut restarted = Pbft::restore(common::config(&g, 1), common::key(1), persisted).unwrap();
    let _ = restarted.step(common::env(2_000), aegis_consensus::Input::Start);
    let other = PrePrepare::new_signed(
        &g.chain_id,
        &common::key(0),
        0,
        1,
        Batch {
            proposer: aegis_types::ValidatorId(0),
            view: 0,
            timestamp_ms: 5,
            txs: Arc::from([tx(9)]),
        },
    );
    let effects = restarted.step(
        common::env(2_001),
        aegis_consensus::Input::Message {
            from: aegis_types::ValidatorId(0),
            message: PbftMessage::PrePrepare(other),
        },
    );
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Rejected {
            reason: RejectReason::Equivocation { view: 0, seq: 1 },
            ..
        }
    )));
    assert!(
        sent(&effects)
            .iter()
            .all(|o| !matches!(o, Outgoing::All(PbftMessage::Prepare(_))))
    );
}
