//! Out-of-window and stale messages carry hints: a sender above the window says this replica
//! is behind (it then asks for sync), a sender below it or in an older view gets the stable
//! checkpoint proof or the NEW-VIEW. Only an authentic message may do that: a forged one
//! (wrong or garbage signature) changes nothing and gets no reply. An authentic hint is
//! bounded, and only ever triggers `RequestSync`.

#![allow(clippy::unwrap_used, reason = "test setup fails the test loudly")]

mod common;

use aegis_consensus::pbft::{
    CheckpointProof, Commit, Pbft, PbftEffect, PbftMessage, PbftTimer, Prepare, RejectReason,
    ViewChange,
};
use aegis_consensus::{Effect, Input, Protocol};
use aegis_types::{Hash, Signature, ValidatorId};
use common::{CHAIN, Cluster, config, env, genesis, key, tx};

const START_MS: u64 = 1_000;

fn idle_node() -> Pbft {
    let g = genesis(4, 1, 4, 4);
    let mut pbft = Pbft::new(config(&g, 1), key(1)).unwrap();
    let _ = pbft.step(env(START_MS), Input::Start);
    pbft
}

/// A PREPARE from validator 2 at `seq`, signed by `signer`.
fn prepare(signer: usize, seq: u64) -> PbftMessage {
    PbftMessage::Prepare(Prepare::new_signed(
        CHAIN,
        &key(signer),
        ValidatorId(2),
        0,
        seq,
        Hash::digest(b"batch"),
    ))
}

/// A COMMIT from validator 2 at `seq` with a garbage signature.
fn garbage_commit(seq: u64) -> PbftMessage {
    let mut c = Commit::new_signed(CHAIN, &key(2), ValidatorId(2), 0, seq, Hash::ZERO);
    c.signature = Signature([0x5a; 64]);
    PbftMessage::Commit(c)
}

fn only_rejections(effects: &[PbftEffect]) -> bool {
    effects.iter().all(|e| matches!(e, Effect::Rejected { .. }))
}

fn sync_requests(effects: &[PbftEffect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::RequestSync { .. }))
        .count()
}

/// Fires the retransmit timer `ticks` times on an idle replica; counts RequestSync effects.
fn tick(pbft: &mut Pbft, ticks: u64) -> usize {
    let interval = pbft.config().retransmit_interval_ms;
    (1..=ticks)
        .map(|k| {
            let effects = pbft.step(
                env(START_MS + k * interval + 1),
                Input::Timer(PbftTimer::Retransmit),
            );
            sync_requests(&effects)
        })
        .sum()
}

#[test]
fn forged_high_seq_prepare_and_commit_trigger_no_sync_and_no_send() {
    let mut pbft = idle_node();
    let before = pbft.state_fingerprint();
    let forged = [
        prepare(3, 1_000_000), // signed by another validator's key
        prepare(3, u64::MAX),
        garbage_commit(1_000_000),
        garbage_commit(u64::MAX),
    ];
    for (i, message) in forged.into_iter().enumerate() {
        let effects = pbft.step(
            env(START_MS + 1 + i as u64),
            Input::Message {
                from: ValidatorId(2),
                message,
            },
        );
        assert!(
            effects.iter().any(|e| matches!(
                e,
                Effect::Rejected {
                    reason: RejectReason::BadSignature,
                    ..
                }
            )),
            "{effects:?}"
        );
        assert!(
            only_rejections(&effects),
            "no Send, no persist: {effects:?}"
        );
    }
    assert_eq!(pbft.behind_hint(), 0);
    assert_eq!(before, pbft.state_fingerprint(), "no soft state moved");
    assert_eq!(tick(&mut pbft, 10), 0, "no RequestSync, ever");
}

#[test]
fn authentic_high_seq_message_asks_for_sync_with_a_bounded_hint() {
    let mut pbft = idle_node();
    let effects = pbft.step(
        env(START_MS + 1),
        Input::Message {
            from: ValidatorId(2),
            message: prepare(2, u64::MAX),
        },
    );
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Rejected {
                reason: RejectReason::OutOfWindow { .. },
                ..
            }
        )),
        "{effects:?}"
    );
    assert!(only_rejections(&effects), "{effects:?}");
    // The window is (0, 8]; one message may point at most one more window ahead.
    let window = pbft.config().log_window();
    assert!(pbft.behind_hint() > 0);
    assert!(
        pbft.behind_hint() <= 2 * window,
        "hint {} not bounded",
        pbft.behind_hint()
    );
    assert!(
        tick(&mut pbft, 1) >= 1,
        "an authentic hint still asks for sync"
    );
}

/// A replica with a stable checkpoint at 4 (interval 2, five blocks executed).
fn cluster_with_stable_checkpoint() -> Cluster {
    let g = genesis(4, 1, 2, 1);
    let mut cluster = Cluster::new(&g);
    for nonce in 1..=5 {
        cluster.submit(vec![tx(nonce)]);
        cluster.deliver_all(|_, _, _| true);
    }
    assert_eq!(cluster.core(1).stable_checkpoint(), 4);
    cluster
}

#[test]
fn forged_stale_commit_and_checkpoint_get_no_stable_proof() {
    let mut cluster = cluster_with_stable_checkpoint();
    let mut node = cluster.take_core(1);
    let node = &mut node;
    let before = node.state_fingerprint();
    let mut forged_checkpoint = aegis_consensus::pbft::Checkpoint::new_signed(
        CHAIN,
        &key(2),
        ValidatorId(2),
        2,
        Hash::ZERO,
    );
    forged_checkpoint.signature = Signature([7; 64]);
    for message in [
        garbage_commit(1),
        prepare(0, 2),
        PbftMessage::Checkpoint(forged_checkpoint),
    ] {
        let effects = node.step(
            env(50_000),
            Input::Message {
                from: ValidatorId(2),
                message,
            },
        );
        assert!(only_rejections(&effects), "no proof forwarded: {effects:?}");
    }
    assert_eq!(before, node.state_fingerprint());
    // The genuine stale vote does get the proof (three CHECKPOINTs, minus its own).
    let genuine = PbftMessage::Commit(Commit::new_signed(
        CHAIN,
        &key(2),
        ValidatorId(2),
        0,
        1,
        Hash::ZERO,
    ));
    let effects = node.step(
        env(50_001),
        Input::Message {
            from: ValidatorId(2),
            message: genuine,
        },
    );
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Send(aegis_consensus::Outgoing::To(
                ValidatorId(2),
                PbftMessage::Checkpoint(_)
            ))
        )),
        "{effects:?}"
    );
}

#[test]
fn forged_stale_view_change_gets_no_new_view() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1)]);
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    cluster.deliver_all(|from, _, _| from != 0);
    assert_eq!(cluster.core(2).view(), 1);
    let view_change = |signer: usize| {
        let genesis_proof = CheckpointProof {
            seq: 0,
            block_hash: g.hash(),
            checkpoints: Vec::new(),
        };
        PbftMessage::ViewChange(ViewChange::new_signed(
            CHAIN,
            &key(signer),
            ValidatorId(3),
            1,
            genesis_proof,
            Vec::new(),
        ))
    };
    let mut node = cluster.take_core(2);
    let node = &mut node;
    let before = node.state_fingerprint();
    let effects = node.step(
        env(20_000),
        Input::Message {
            from: ValidatorId(3),
            message: view_change(0),
        },
    );
    assert!(
        only_rejections(&effects),
        "no NEW-VIEW forwarded: {effects:?}"
    );
    assert_eq!(before, node.state_fingerprint());
    let effects = node.step(
        env(20_001),
        Input::Message {
            from: ValidatorId(3),
            message: view_change(3),
        },
    );
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Send(aegis_consensus::Outgoing::To(
                ValidatorId(3),
                PbftMessage::NewView(_)
            ))
        )),
        "the genuine lagging sender gets the NEW-VIEW: {effects:?}"
    );
}

#[test]
fn a_message_just_above_the_window_hints_the_block_before_it() {
    let mut pbft = idle_node();
    let high = pbft.config().log_window();
    // A PREPARE for the first sequence number above the window (0, 8]: its sender has
    // reached block 8 at least, not 9.
    let _ = pbft.step(
        env(START_MS + 1),
        Input::Message {
            from: ValidatorId(2),
            message: prepare(2, high + 1),
        },
    );
    assert_eq!(pbft.behind_hint(), high);
    // The same again, signed by another key: it would not raise the hint, so its signature
    // is not even checked (no work spent on it), and it is refused as out of the window.
    let effects = pbft.step(
        env(START_MS + 1),
        Input::Message {
            from: ValidatorId(2),
            message: prepare(3, high + 1),
        },
    );
    let reasons: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(
        matches!(reasons[..], [RejectReason::OutOfWindow { .. }]),
        "{reasons:?}"
    );
    // A later one two above: block 9, not 10; a lower one never lowers the hint.
    for (seq, hint) in [(high + 2, high + 1), (high + 1, high + 1)] {
        let _ = pbft.step(
            env(START_MS + 2),
            Input::Message {
                from: ValidatorId(2),
                message: prepare(2, seq),
            },
        );
        assert_eq!(pbft.behind_hint(), hint, "after seq {seq}");
    }
}
