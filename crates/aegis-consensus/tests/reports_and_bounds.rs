//! The parts of a replica whose mistakes never fork a chain, so the simulator's safety
//! checkers cannot see them (cargo-mutants found each one surviving; docs/consensus.md,
//! "Mutation testing"): what a replica says about itself (status, accessors, names for logs
//! and metrics), why it refuses what it refuses, its bounded queues, the hints that make it
//! ask for sync, its configuration, and the buffer of messages for a view about to start.

#![allow(clippy::unwrap_used, reason = "test setup fails the test loudly")]

mod common;

use std::sync::Arc;

use aegis_consensus::pbft::{
    Checkpoint, Commit, ConfigError, Pbft, PbftEffect, PbftMessage, PbftTimer, Prepare,
    RejectReason, Status,
};
use aegis_consensus::{DurableState, Effect, Input, Outgoing, Protocol, Role};
use aegis_types::{Hash, ValidatorId};
use common::{CHAIN, Cluster, config, env, genesis, key, tx};

const START_MS: u64 = 1_000;

fn started(i: usize, k: u64) -> Pbft {
    let g = genesis(4, 1, k, 4);
    let mut pbft = Pbft::new(config(&g, i), key(i)).unwrap();
    let _ = pbft.step(env(START_MS), Input::Start);
    pbft
}

fn deliver(pbft: &mut Pbft, now_ms: u64, from: usize, message: PbftMessage) -> Vec<PbftEffect> {
    pbft.step(
        env(now_ms),
        Input::Message {
            from: ValidatorId(from as u16),
            message,
        },
    )
}

fn rejected(effects: &[PbftEffect]) -> Vec<RejectReason> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Validator `from`'s VIEW-CHANGE for `new_view` with the genesis as its stable checkpoint.
fn genesis_view_change(
    g: &aegis_types::Genesis,
    from: usize,
    new_view: u64,
    prepared: Vec<aegis_consensus::pbft::PreparedCert>,
) -> aegis_consensus::pbft::ViewChange {
    let proof = aegis_consensus::pbft::CheckpointProof {
        seq: 0,
        block_hash: g.hash(),
        checkpoints: Vec::new(),
    };
    let id = ValidatorId(from as u16);
    aegis_consensus::pbft::ViewChange::new_signed(CHAIN, &key(from), id, new_view, proof, prepared)
}

fn checkpoint(from: usize, seq: u64, hash: Hash) -> PbftMessage {
    PbftMessage::Checkpoint(Checkpoint::new_signed(
        CHAIN,
        &key(from),
        ValidatorId(from as u16),
        seq,
        hash,
    ))
}

// ------------------------------------------------------------------ names and status

#[test]
fn roles_and_message_kinds_have_stable_names() {
    assert_eq!(Role::Leader.as_str(), "leader");
    assert_eq!(Role::Follower.as_str(), "follower");
    assert_eq!(Role::Electing.as_str(), "electing");
    let hash = Hash::digest(b"x");
    let k = key(1);
    let me = ValidatorId(1);
    let kinds = [
        (
            PbftMessage::Prepare(Prepare::new_signed(CHAIN, &k, me, 0, 1, hash)),
            "prepare",
        ),
        (
            PbftMessage::Commit(Commit::new_signed(CHAIN, &k, me, 0, 1, hash)),
            "commit",
        ),
        (checkpoint(1, 2, hash), "checkpoint"),
    ];
    for (message, kind) in kinds {
        assert_eq!(message.kind(), kind);
    }
}

/// What a replica says about itself follows its state: view, status, role, leader, pending
/// work, timers.
#[test]
fn status_and_accessors_follow_the_replica() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit_to(1, vec![tx(1), tx(2)]);
    let backup = cluster.core(1);
    assert_eq!(backup.view(), 0);
    assert_eq!(backup.pending_txs(), 2);
    let status = backup.status();
    assert_eq!(status, Status::Normal);
    let core_status = Protocol::status(backup);
    assert_eq!(core_status.role, Role::Follower);
    assert_eq!(core_status.leader, Some(ValidatorId(0)));
    assert_eq!(core_status.pending, 2);
    assert!(!backup.is_primary());
    assert!(
        backup.timer_deadline(PbftTimer::Progress).is_some(),
        "pending work arms the request timer"
    );
    assert_eq!(
        Protocol::status(cluster.core(0)).role,
        Role::Leader,
        "validator 0 leads view 0"
    );
    // The backups suspect the primary: a view change is running.
    cluster.fire(1, PbftTimer::Progress, 10_000);
    let changing = cluster.core(1);
    assert_eq!(changing.view(), 1);
    assert_eq!(changing.status(), Status::ViewChanging);
    let core_status = Protocol::status(changing);
    assert_eq!(core_status.role, Role::Electing);
    assert_eq!(core_status.leader, None);
    assert_eq!(core_status.epoch, 1);
    assert_eq!(changing.timer_deadline(PbftTimer::Progress), None);
}

/// The fingerprints the property tests compare tell different states apart.
#[test]
fn state_fingerprints_change_with_the_state() {
    let mut a = started(1, 10);
    let before = a.state_fingerprint();
    let protocol_before = a.protocol_fingerprint();
    let _ = a.step(
        env(START_MS + 1),
        Input::TransactionsPending(vec![Hash::digest(b"tx")]),
    );
    assert_ne!(before, a.state_fingerprint());
    assert_ne!(protocol_before, a.protocol_fingerprint());
}

// ----------------------------------------------------------------------- configuration

#[test]
fn configuration_derives_the_retransmit_interval_and_refuses_zeros() {
    let g = genesis(4, 1, 10, 4);
    let config =
        aegis_consensus::pbft::PbftConfig::from_genesis(&g, ValidatorId(1), 2_000, 800).unwrap();
    assert_eq!(config.retransmit_interval_ms, 200, "message timeout / 4");
    assert_eq!(config.max_timeout_ms, 800 * 16);
    let mut zero = config.clone();
    zero.progress_timeout_ms = 0;
    assert_eq!(
        zero.validate(),
        Err(ConfigError::Zero {
            field: "progress_timeout_ms"
        })
    );
    let mut no_window = config.clone();
    no_window.tx_dedup_window_blocks = 0;
    assert_eq!(
        no_window.validate(),
        Err(ConfigError::Zero {
            field: "tx_dedup_window_blocks"
        })
    );
    let mut stranger = config;
    stranger.me = ValidatorId(9);
    assert_eq!(
        stranger.validate(),
        Err(ConfigError::UnknownSelf(ValidatorId(9)))
    );
}

// ----------------------------------------------------------------------- checkpoints

/// §4.3: checkpoints come every K sequence numbers; a vote for another number is refused.
#[test]
fn checkpoint_votes_off_the_interval_are_refused() {
    let mut pbft = started(1, 2);
    for seq in [0, 3] {
        let effects = deliver(&mut pbft, START_MS + 1, 2, checkpoint(2, seq, Hash::ZERO));
        assert_eq!(
            rejected(&effects),
            vec![RejectReason::NotACheckpoint { seq }]
        );
    }
}

/// A repeated vote is a duplicate; a different vote for the same number is evidence of a
/// Byzantine validator, but only when its signature holds.
#[test]
fn checkpoint_duplicates_and_conflicts_are_told_apart() {
    let mut pbft = started(1, 2);
    let first = checkpoint(2, 2, Hash::digest(b"a"));
    let _ = deliver(&mut pbft, START_MS + 1, 2, first.clone());
    let effects = deliver(&mut pbft, START_MS + 2, 2, first);
    assert_eq!(rejected(&effects), vec![RejectReason::Duplicate]);
    let effects = deliver(
        &mut pbft,
        START_MS + 3,
        2,
        checkpoint(2, 2, Hash::digest(b"b")),
    );
    assert_eq!(
        rejected(&effects),
        vec![RejectReason::ConflictingVote { view: 0, seq: 2 }]
    );
    let mut forged = Checkpoint::new_signed(CHAIN, &key(3), ValidatorId(2), 2, Hash::ZERO);
    forged.from = ValidatorId(2);
    let effects = deliver(&mut pbft, START_MS + 4, 2, PbftMessage::Checkpoint(forged));
    assert_eq!(rejected(&effects), vec![RejectReason::BadSignature]);
}

/// f + 1 CHECKPOINTs above the executed height mean an honest replica executed past this
/// one: it asks for sync at its next retransmission tick; f of them do not.
#[test]
fn f_plus_one_checkpoints_above_the_height_ask_for_sync() {
    let mut pbft = started(1, 2);
    let hash = Hash::digest(b"later");
    let _ = deliver(&mut pbft, START_MS + 1, 2, checkpoint(2, 4, hash));
    assert_eq!(pbft.behind_hint(), 0, "one vote (f) may be a liar");
    let _ = deliver(&mut pbft, START_MS + 2, 3, checkpoint(3, 4, hash));
    assert_eq!(pbft.behind_hint(), 4, "f + 1 votes");
    let interval = pbft.config().retransmit_interval_ms;
    let effects = pbft.step(
        env(START_MS + interval + 1),
        Input::Timer(PbftTimer::Retransmit),
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::RequestSync { from_height: 1 })),
        "{effects:?}"
    );
}

/// At most `MAX_PENDING_CHECKPOINTS` sequence numbers are kept; a Byzantine validator's lone
/// votes go first, so a quorum arriving after a flood of them still becomes stable.
#[test]
fn lone_checkpoint_votes_cannot_crowd_out_a_quorum() {
    let mut pbft = started(1, 2);
    for k in 2..=20 {
        let _ = deliver(&mut pbft, START_MS + k, 0, checkpoint(0, 2 * k, Hash::ZERO));
    }
    let real = Hash::digest(b"real");
    for (k, from) in [2, 3, 0].into_iter().enumerate() {
        let _ = deliver(
            &mut pbft,
            START_MS + 100 + k as u64,
            from,
            checkpoint(from, 2, real),
        );
    }
    assert_eq!(
        pbft.stable_checkpoint(),
        2,
        "the quorum for 2 survived the flood"
    );
}

/// All `MAX_PENDING_CHECKPOINTS` (8) sequence numbers keep their votes while none is full.
#[test]
fn eight_checkpoints_in_progress_keep_their_votes() {
    let mut pbft = started(1, 2);
    let hash = |seq: u64| Hash::digest(&seq.to_le_bytes());
    let mut now = START_MS;
    for seq in (2..=16).step_by(2) {
        for from in [2, 3] {
            now += 1;
            let _ = deliver(&mut pbft, now, from, checkpoint(from, seq, hash(seq)));
        }
    }
    assert_eq!(pbft.stable_checkpoint(), 0, "two votes are not a quorum");
    let _ = deliver(&mut pbft, now + 1, 0, checkpoint(0, 14, hash(14)));
    assert_eq!(
        pbft.stable_checkpoint(),
        14,
        "the votes for 14 were all kept"
    );
}

// ------------------------------------------------------------------ the view gate's buffer

/// §4.4: a replica still waiting for the NEW-VIEW of view v keeps the PRE-PREPARE, PREPAREs
/// and COMMITs of v that arrive first, and uses them once the NEW-VIEW installs v: it
/// prepares, commits and executes without any retransmission.
#[test]
fn messages_for_a_view_about_to_start_count_once_it_starts() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1)]);
    let is_new_view = |m: &PbftMessage| matches!(m, PbftMessage::NewView(_));
    // View 0's primary is cut off; view 1's NEW-VIEW never arrives; view 2 is led by 2.
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    cluster.deliver_all(|from, _, m| from != 0 && !(from == 1 && is_new_view(m)));
    for i in [0, 2, 3] {
        cluster.fire(i, PbftTimer::ViewChange, 20_000);
    }
    // Everyone but 3 hears view 2's NEW-VIEW: they order and execute tx 1 while 3 keeps
    // what they send it.
    cluster.deliver_all(|_, to, m| !(to == 3 && is_new_view(m)));
    assert_eq!(cluster.height(2), 1);
    assert_eq!(cluster.height(3), 0);
    assert_eq!(cluster.core(3).view(), 2);
    let nv = cluster.logged_state(2).latest_new_view.unwrap();
    cluster.run(3, |d| d.deliver(ValidatorId(2), PbftMessage::NewView(nv)));
    assert_eq!(cluster.height(3), 1, "the kept COMMITs of view 2 count");
    let slot = cluster
        .logged_state(3)
        .slots
        .into_iter()
        .find(|s| s.seq == 1)
        .unwrap();
    assert_eq!(slot.view, 2);
    assert!(
        slot.sent_commit.is_some(),
        "the kept PRE-PREPARE and PREPAREs prepared it"
    );
}

// --------------------------------------------------------------- stable checkpoints

/// §4.3: a new stable checkpoint discards the votes at and below it, not the votes for later
/// checkpoints that are still arriving.
#[test]
fn a_stable_checkpoint_keeps_the_votes_for_later_ones() {
    let mut pbft = started(1, 2);
    let (two, four) = (Hash::digest(b"2"), Hash::digest(b"4"));
    let mut now = START_MS;
    for from in [2, 3] {
        now += 1;
        let _ = deliver(&mut pbft, now, from, checkpoint(from, 4, four));
    }
    for from in [0, 2, 3] {
        now += 1;
        let _ = deliver(&mut pbft, now, from, checkpoint(from, 2, two));
    }
    assert_eq!(pbft.stable_checkpoint(), 2);
    let _ = deliver(&mut pbft, now + 1, 0, checkpoint(0, 4, four));
    assert_eq!(
        pbft.stable_checkpoint(),
        4,
        "the two earlier votes for 4 were kept"
    );
}

/// Adopting a stable checkpoint above what it executed makes a replica ask for the blocks at
/// once; one at its own height asks for nothing.
#[test]
fn adopting_a_stable_checkpoint_asks_for_sync_only_when_behind() {
    let mut behind = started(1, 2);
    let hash = Hash::digest(b"2");
    let mut asked = 0;
    for (k, from) in [0, 2, 3].into_iter().enumerate() {
        let effects = deliver(
            &mut behind,
            START_MS + 1 + k as u64,
            from,
            checkpoint(from, 2, hash),
        );
        asked += effects
            .iter()
            .filter(|e| matches!(e, Effect::RequestSync { from_height: 1 }))
            .count();
    }
    assert_eq!(behind.stable_checkpoint(), 2);
    assert_eq!(asked, 1, "behind at 0 with a stable checkpoint at 2");

    // A cluster that executes blocks 1 and 2 itself never asks.
    let g = genesis(4, 1, 2, 1);
    let mut cluster = Cluster::new(&g);
    for nonce in 1..=2 {
        cluster.submit(vec![tx(nonce)]);
        cluster.deliver_all(|_, _, _| true);
    }
    assert_eq!(cluster.core(1).stable_checkpoint(), 2);
    let sync_requests: usize = (0..4)
        .map(|i| cluster.driver(i).transport().sync_requests.len())
        .sum();
    assert_eq!(sync_requests, 0);
}

/// A replica working below the stable checkpoint gets the proof: the quorum's CHECKPOINTs,
/// all but its own.
#[test]
fn a_lagging_sender_gets_the_stable_proof_from_the_others() {
    let g = genesis(4, 1, 2, 1);
    let mut cluster = Cluster::new(&g);
    for nonce in 1..=3 {
        cluster.submit(vec![tx(nonce)]);
        cluster.deliver_all(|_, _, _| true);
    }
    let mut node = cluster.take_core(1);
    assert_eq!(node.stable_checkpoint(), 2);
    let stale = PbftMessage::Commit(Commit::new_signed(
        CHAIN,
        &key(2),
        ValidatorId(2),
        0,
        1,
        Hash::ZERO,
    ));
    let effects = deliver(&mut node, 50_000, 2, stale);
    let forwarded: Vec<ValidatorId> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(aegis_consensus::Outgoing::To(
                ValidatorId(2),
                PbftMessage::Checkpoint(c),
            )) => Some(c.from),
            _ => None,
        })
        .collect();
    assert!(forwarded.len() >= 2, "{forwarded:?}");
    assert!(!forwarded.contains(&ValidatorId(2)), "{forwarded:?}");
}

// ------------------------------------------------------------------- refusal reasons

/// A repeated vote is a duplicate; a different vote for the same slot is evidence of a
/// Byzantine validator (logged as such), but only when its signature holds.
#[test]
fn repeated_and_conflicting_votes_are_told_apart() {
    let mut pbft = started(1, 10);
    let (a, b) = (Hash::digest(b"a"), Hash::digest(b"b"));
    let k2 = key(2);
    let me2 = ValidatorId(2);
    let prepare: &dyn Fn(Hash) -> PbftMessage =
        &|d| PbftMessage::Prepare(Prepare::new_signed(CHAIN, &k2, me2, 0, 1, d));
    let commit: &dyn Fn(Hash) -> PbftMessage =
        &|h| PbftMessage::Commit(Commit::new_signed(CHAIN, &k2, me2, 0, 1, h));
    let forged = |message: PbftMessage| match message {
        PbftMessage::Prepare(mut p) => {
            p.signature.0[0] ^= 1;
            PbftMessage::Prepare(p)
        }
        PbftMessage::Commit(mut c) => {
            c.signature.0[0] ^= 1;
            PbftMessage::Commit(c)
        }
        other => other,
    };
    let mut now = START_MS;
    for vote in [prepare, commit] {
        now += 1;
        assert_eq!(rejected(&deliver(&mut pbft, now, 2, vote(a))), vec![]);
        assert_eq!(
            rejected(&deliver(&mut pbft, now + 1, 2, vote(a))),
            vec![RejectReason::Duplicate]
        );
        let conflict = rejected(&deliver(&mut pbft, now + 2, 2, vote(b)));
        assert_eq!(
            conflict,
            vec![RejectReason::ConflictingVote { view: 0, seq: 1 }]
        );
        assert!(aegis_consensus::Reject::is_byzantine_evidence(&conflict[0]));
        assert_eq!(
            rejected(&deliver(&mut pbft, now + 3, 2, forged(vote(b)))),
            vec![RejectReason::BadSignature]
        );
        now += 10;
    }
}

/// §4.2: a backup accepts one PRE-PREPARE per view and sequence number; a second, different
/// one is the primary equivocating.
#[test]
fn a_second_pre_prepare_for_a_slot_is_equivocation() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit_to(0, vec![tx(1)]);
    let first = common::queued_pre_prepare(&cluster, 1);
    let mut backup = cluster.take_core(1);
    assert_eq!(
        rejected(&deliver(
            &mut backup,
            START_MS,
            0,
            PbftMessage::PrePrepare(first.clone())
        )),
        vec![]
    );
    assert_eq!(
        rejected(&deliver(
            &mut backup,
            START_MS + 1,
            0,
            PbftMessage::PrePrepare(first.clone())
        )),
        vec![RejectReason::Duplicate]
    );
    let mut batch = first.batch.clone();
    batch.timestamp_ms += 1;
    let other = aegis_consensus::pbft::PrePrepare::new_signed(CHAIN, &key(0), 0, first.seq, batch);
    let mut forged = other.clone();
    forged.signature.0[0] ^= 1;
    assert_eq!(
        rejected(&deliver(
            &mut backup,
            START_MS + 2,
            0,
            PbftMessage::PrePrepare(forged)
        )),
        vec![RejectReason::BadSignature]
    );
    assert_eq!(
        rejected(&deliver(
            &mut backup,
            START_MS + 3,
            0,
            PbftMessage::PrePrepare(other)
        )),
        vec![RejectReason::Equivocation {
            view: 0,
            seq: first.seq
        }]
    );
}

/// §4.2: the primary's PRE-PREPARE stands for its prepare, so it sends no PREPARE of its own,
/// and each backup sends exactly one PREPARE per slot. Extra PREPAREs never fork a chain, so
/// only a test that counts them sees them.
#[test]
fn the_primary_sends_no_prepare_and_each_backup_one_per_slot() {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    let prepares: RefCell<BTreeMap<(usize, u64, u64), usize>> = RefCell::new(BTreeMap::new());
    let record = |from: usize, _to: usize, message: &PbftMessage| {
        if let PbftMessage::Prepare(p) = message {
            // A PREPARE is broadcast: count it once per sender, view and slot, not per
            // receiver.
            *prepares
                .borrow_mut()
                .entry((from, p.view, p.seq))
                .or_default() += 1;
        }
        true
    };
    for round in 0..3u64 {
        cluster.submit_to(0, vec![tx(100 + round)]);
        cluster.deliver_all(record);
    }
    for i in 0..4 {
        assert_eq!(cluster.height(i), 3, "node {i} committed every block");
    }
    let prepares = prepares.into_inner();
    assert!(
        prepares.keys().all(|(from, _, _)| *from != 0),
        "the primary (node 0) sent a PREPARE: {prepares:?}"
    );
    for backup in 1..4 {
        for seq in 1..=3 {
            let copies = prepares.get(&(backup, 0, seq)).copied().unwrap_or(0);
            // One broadcast reaches three peers.
            assert_eq!(
                copies, 3,
                "backup {backup} sent {copies} PREPARE copies for slot {seq}"
            );
        }
    }
}

/// §4.3: a replica sends its CHECKPOINT every `checkpoint_interval` blocks and at no other
/// height. Off-interval votes are refused by the others, so extra ones never fork a chain
/// (cargo-mutants: `&&` to `||` in the rule that decides it survived every other test).
#[test]
fn checkpoints_are_sent_only_at_the_interval() {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    let g = genesis(4, 1, 2, 4);
    let mut cluster = Cluster::new(&g);
    let checkpoints: RefCell<BTreeSet<(usize, u64)>> = RefCell::new(BTreeSet::new());
    let record = |from: usize, _to: usize, message: &PbftMessage| {
        if let PbftMessage::Checkpoint(c) = message {
            checkpoints.borrow_mut().insert((from, c.seq));
        }
        true
    };
    for block in 0..5u64 {
        cluster.submit_to(0, vec![tx(200 + block)]);
        cluster.deliver_all(record);
    }
    for i in 0..4 {
        assert_eq!(cluster.height(i), 5, "node {i} committed every block");
        assert_eq!(cluster.core(i).stable_checkpoint(), 4, "node {i}");
    }
    let expected: BTreeSet<(usize, u64)> = (0..4).flat_map(|i| [(i, 2), (i, 4)]).collect();
    assert_eq!(checkpoints.into_inner(), expected);
}

/// §4.5.2: view-change timeouts double with each view that fails in a row, and executing a
/// block in the new view ends the run, so the next failure waits the base timeout again
/// (cargo-mutants: the reset's `status == Normal` to `!=` survived every other test: a
/// timeout left doubled is liveness tuning the simulator's checks cannot see).
#[test]
fn executing_in_the_new_view_resets_the_run_of_failed_views() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(300)]);
    // Node 0, the primary of view 0, is silent; the others time out and move to view 1.
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    for i in 1..4 {
        assert_eq!(cluster.core(i).persisted().failed_views, 1, "node {i}");
    }
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        assert_eq!(cluster.core(i).view(), 1, "node {i}");
        assert_eq!(cluster.height(i), 1, "node {i} executed in view 1");
        assert_eq!(
            cluster.core(i).persisted().failed_views,
            0,
            "node {i} still counts view 0 as failed after executing in view 1"
        );
    }
}

/// A synced block is the body a peer serves beside a certificate, and the certificate's
/// signatures cover only the header: a body that does not match its header (other
/// transactions, so another Merkle root), or a block of another chain, is refused as
/// malformed, and another block served with the certificate is refused as not the one it
/// certifies, before anything of either is kept (cargo-mutants: `||` to `&&` in each of
/// those checks survived every other test).
#[test]
fn a_synced_body_that_does_not_match_its_header_is_refused() {
    use aegis_consensus::pbft::SyncFault;

    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit_to(0, vec![tx(400), tx(401)]);
    // Node 3 hears nothing: it falls behind and has to sync block 1.
    cluster.deliver_all(|_, to, _| to != 3);
    assert_eq!(cluster.height(0), 1);
    assert_eq!(cluster.height(3), 0);
    let (block, certificate) = cluster.committed(0)[0].clone();
    let mut behind = cluster.take_core(3);
    let sync = |pbft: &mut Pbft, block: aegis_types::Block| {
        rejected(&pbft.step(
            env(START_MS + 10),
            Input::SyncedBlock {
                block,
                certificate: certificate.clone(),
            },
        ))
    };
    let malformed = vec![RejectReason::BadSyncedBlock(SyncFault::Malformed)];

    // Another transaction in place of one of the body's: same count, same chain.
    let mut tampered = block.clone();
    tampered.txs[1] = tx(999);
    assert!(tampered.header.chain_id == block.header.chain_id);
    assert_eq!(sync(&mut behind, tampered), malformed);
    // A transaction dropped from the body.
    let mut shortened = block.clone();
    shortened.txs.pop();
    assert_eq!(sync(&mut behind, shortened), malformed);
    // The same body under a header of another chain.
    let mut other_chain = block.clone();
    other_chain.header.chain_id = "another-chain".into();
    assert_eq!(sync(&mut behind, other_chain), malformed);
    // A whole other block at that height and on that parent, well formed, served with the
    // real block's certificate: the certificate names another hash.
    let forged = aegis_types::Block::new(
        &block.header.chain_id,
        block.height(),
        block.header.prev_hash,
        block.header.proposer,
        block.header.view,
        block.header.timestamp_ms,
        vec![tx(999)],
    );
    assert_eq!(
        sync(&mut behind, forged),
        vec![RejectReason::BadSyncedBlock(SyncFault::CertificateMismatch)]
    );
    assert_eq!(
        behind.last_committed().0,
        0,
        "nothing of a refused block is kept"
    );

    // The block as committed is taken.
    assert_eq!(sync(&mut behind, block.clone()), vec![]);
    assert_eq!(behind.last_committed(), (1, block.hash()));
}

/// §4.4: the request timer runs only while a replica waits for something (a transaction not
/// executed, or a batch pre-prepared and not executed); an idle replica never suspects its
/// primary however long it waits (cargo-mutants: `has_pending_work` returning `true`, and
/// the guards around it, survived every other test: an idle network changing views every
/// timeout never forks a chain).
#[test]
fn an_idle_replica_never_suspects_its_primary() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(500)]);
    cluster.deliver_all(|_, _, _| true);
    for i in 0..4 {
        assert_eq!(cluster.height(i), 1, "node {i}");
        assert_eq!(
            cluster.core(i).timer_deadline(PbftTimer::Progress),
            None,
            "node {i} is idle with its request timer armed"
        );
    }
    // Much later: the retransmission timer fires, and with it every timer then due.
    for i in 0..4 {
        cluster.fire(i, PbftTimer::Retransmit, 1_000_000);
    }
    cluster.deliver_all(|_, _, _| true);
    for i in 0..4 {
        assert_eq!(cluster.core(i).view(), 0, "node {i} left view 0 while idle");
        assert_eq!(cluster.core(i).status(), Status::Normal, "node {i}");
    }
}

/// §4.2 with the ledger's rules: a backup prepares a batch only if it is one an honest
/// primary could propose. Each fault below is a PRE-PREPARE correctly signed by the primary
/// and refused with its reason, and the backup sends no PREPARE for it (cargo-mutants:
/// `check_batch` replaced by `Ok(())` survived every other test: no test, and no simulated
/// Byzantine primary, proposed an invalid batch).
#[test]
fn a_backup_refuses_every_invalid_batch() {
    use aegis_consensus::pbft::{BatchFault, PrePrepare};

    // A backup that has just received the primary's honest PRE-PREPARE for slot 1, fresh
    // for each case (the same one every time: the cluster is deterministic).
    let fresh = || {
        let g = genesis(4, 1, 10, 4);
        let mut cluster = Cluster::new(&g);
        cluster.submit_to(0, vec![tx(600), tx(601)]);
        let honest = common::queued_pre_prepare(&cluster, 1);
        (honest, cluster.take_core(1))
    };
    let check = |edit: &dyn Fn(&mut aegis_consensus::pbft::Batch)| {
        let (honest, mut backup) = fresh();
        let mut batch = honest.batch.clone();
        edit(&mut batch);
        let pp = PrePrepare::new_signed(CHAIN, &key(0), 0, honest.seq, batch);
        let effects = deliver(
            &mut backup,
            honest.batch.timestamp_ms,
            0,
            PbftMessage::PrePrepare(pp),
        );
        let prepared = common::sent(&effects).iter().any(|o| {
            matches!(
                o,
                Outgoing::All(PbftMessage::Prepare(_)) | Outgoing::To(_, PbftMessage::Prepare(_))
            )
        });
        let refused = rejected(&effects);
        assert_eq!(
            prepared,
            refused.is_empty(),
            "PREPARE sent: {prepared}, refused: {refused:?}"
        );
        refused
    };
    let invalid = |fault| vec![RejectReason::InvalidBatch(fault)];

    // The honest batch itself is accepted.
    assert_eq!(check(&|_| {}), vec![]);
    assert_eq!(
        check(&|b| b.proposer = ValidatorId(2)),
        invalid(BatchFault::WrongProposer)
    );
    assert_eq!(check(&|b| b.view = 7), invalid(BatchFault::WrongProposer));
    assert_eq!(
        check(&|b| Arc::make_mut(&mut b.txs)[1].signature.0[5] ^= 1),
        invalid(BatchFault::BadTxSignature(1))
    );
    assert_eq!(
        check(&|b| Arc::make_mut(&mut b.txs)[1] = b.txs[0].clone()),
        invalid(BatchFault::DuplicateTx(1))
    );
    assert_eq!(
        check(&|b| Arc::make_mut(&mut b.txs)[0].body.chain_id = "another-chain".into()),
        invalid(BatchFault::MalformedTx(0))
    );
    // Stamped exactly the allowed skew ahead of the backup's clock is fine; a millisecond
    // more is not.
    let skew = aegis_consensus::pbft::config::MAX_PROPOSAL_CLOCK_SKEW_MS;
    assert_eq!(check(&|b| b.timestamp_ms += skew), vec![]);
    assert_eq!(
        check(&|b| b.timestamp_ms += skew + 1),
        invalid(BatchFault::TimestampAhead {
            ahead_ms: skew + 1,
            max_ms: skew
        })
    );
    assert!(matches!(
        check(&|b| b.timestamp_ms += 3_600_000).as_slice(),
        [RejectReason::InvalidBatch(
            BatchFault::TimestampAhead { .. }
        )]
    ));
    assert!(matches!(
        check(&|b| b.txs = (0..11).map(|n| tx(700 + n)).collect()).as_slice(),
        [RejectReason::InvalidBatch(BatchFault::TooManyTxs {
            count: 11,
            max: 10
        })]
    ));
}

#[test]
fn a_batch_stamped_before_its_parent_block_is_refused() {
    use aegis_consensus::pbft::{BatchFault, PrePrepare};

    // The primary proposes block 1 at 10 s and block 2 at 20 s; block 1 is either still in
    // flight at the backup (only its PRE-PREPARE delivered) or executed everywhere.
    let scenario = |parent_executed: bool| {
        let g = genesis(4, 1, 10, 4);
        let mut cluster = Cluster::new(&g);
        cluster.now_ms = 10_000;
        cluster.submit_to(0, vec![tx(800)]);
        let first = common::queued_pre_prepare(&cluster, 1);
        assert_eq!((first.seq, first.batch.timestamp_ms), (1, 10_000));
        if parent_executed {
            cluster.deliver_all(|_, _, _| true);
            assert!((0..4).all(|i| cluster.height(i) == 1));
        } else {
            cluster.queue.clear();
        }
        cluster.now_ms = 20_000;
        cluster.submit_to(0, vec![tx(801)]);
        let second = common::queued_pre_prepare(&cluster, 1);
        assert_eq!(second.seq, 2);
        let mut backup = cluster.take_core(1);
        if !parent_executed {
            let effects = deliver(&mut backup, 20_000, 0, PbftMessage::PrePrepare(first));
            assert_eq!(rejected(&effects), vec![]);
        }
        (backup, second)
    };
    let stamped = |parent_executed, timestamp_ms| {
        let (mut backup, second) = scenario(parent_executed);
        let mut batch = second.batch.clone();
        batch.timestamp_ms = timestamp_ms;
        let pp = PrePrepare::new_signed(CHAIN, &key(0), 0, 2, batch);
        rejected(&deliver(
            &mut backup,
            20_000,
            0,
            PbftMessage::PrePrepare(pp),
        ))
    };
    let before_parent = vec![RejectReason::InvalidBatch(
        BatchFault::TimestampBeforeParent {
            timestamp_ms: 9_999,
            parent_ms: 10_000,
        },
    )];
    for parent_executed in [false, true] {
        assert_eq!(stamped(parent_executed, 9_999), before_parent);
        // The same millisecond as its parent is allowed: block time never goes backwards.
        assert_eq!(stamped(parent_executed, 10_000), vec![]);
    }
}

#[test]
fn a_view_change_is_judged_by_its_checkpoint_proof() {
    use aegis_consensus::pbft::{CheckpointProof, ViewChange};
    let genesis_hash = genesis(4, 1, 10, 4).hash();
    let block_hash = Hash([7; 32]);
    let signed = |from: usize, seq: u64, hash: Hash| {
        Checkpoint::new_signed(CHAIN, &key(from), ValidatorId(from as u16), seq, hash)
    };
    // Node 1 receives node 2's VIEW-CHANGE for view 1 carrying `proof`.
    let judged = |proof: CheckpointProof| {
        let mut replica = started(1, 10);
        let vc = ViewChange::new_signed(CHAIN, &key(2), ValidatorId(2), 1, proof, Vec::new());
        rejected(&deliver(
            &mut replica,
            START_MS,
            2,
            PbftMessage::ViewChange(vc),
        ))
    };
    let proof = |seq, block_hash, checkpoints| CheckpointProof {
        seq,
        block_hash,
        checkpoints,
    };
    let bad = vec![RejectReason::BadCheckpointProof];

    // At sequence 0 the only proof is the genesis itself, with no votes.
    assert_eq!(judged(proof(0, genesis_hash, vec![])), vec![]);
    assert_eq!(judged(proof(0, block_hash, vec![])), bad);
    assert_eq!(
        judged(proof(0, genesis_hash, vec![signed(0, 0, genesis_hash)])),
        bad
    );
    // Above it: a quorum (3 of 4) up to every validator, in order, all for the same block.
    let votes = |from: &[usize]| from.iter().map(|&i| signed(i, 10, block_hash)).collect();
    assert_eq!(judged(proof(10, block_hash, votes(&[0, 1, 2]))), vec![]);
    assert_eq!(judged(proof(10, block_hash, votes(&[0, 1, 2, 3]))), vec![]);
    assert_eq!(judged(proof(10, block_hash, votes(&[0, 2]))), bad);
    assert_eq!(judged(proof(10, block_hash, votes(&[0, 2, 2]))), bad);
    assert_eq!(judged(proof(10, block_hash, votes(&[2, 1, 0]))), bad);
    assert_eq!(judged(proof(10, block_hash, votes(&[0, 1, 2, 3, 3]))), bad);
    // Off the checkpoint interval, or a vote for another sequence or block.
    let off: Vec<_> = [0, 1, 2]
        .iter()
        .map(|&i| signed(i, 5, block_hash))
        .collect();
    assert_eq!(judged(proof(5, block_hash, off)), bad);
    let mut mixed: Vec<_> = votes(&[0, 1]);
    mixed.push(signed(2, 10, genesis_hash));
    assert_eq!(judged(proof(10, block_hash, mixed)), bad);
    // A forged signature.
    let mut forged: Vec<Checkpoint> = votes(&[0, 1, 2]);
    forged[1].signature.0[0] ^= 1;
    assert_eq!(judged(proof(10, block_hash, forged)), bad);
}

#[test]
fn a_view_change_carries_its_prepared_certificates_in_order_within_its_window() {
    use aegis_consensus::pbft::{Batch, PrePrepare, PreparedCert};

    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit_to(0, vec![tx(900)]);
    let batch = common::queued_pre_prepare(&cluster, 1).batch;
    // A prepared certificate of view 0 for `seq`: the primary's PRE-PREPARE and two PREPAREs.
    let cert_of = |seq: u64, batch: &Batch| {
        let pre_prepare = PrePrepare::new_signed(CHAIN, &key(0), 0, seq, batch.clone());
        let digest = batch.digest();
        let prepares = [1, 2]
            .iter()
            .map(|&i| Prepare::new_signed(CHAIN, &key(i), ValidatorId(i as u16), 0, seq, digest))
            .collect();
        PreparedCert {
            pre_prepare,
            prepares,
        }
    };
    let judged_certs = |prepared: Vec<PreparedCert>| {
        let mut replica = started(1, 10);
        let vc = genesis_view_change(&g, 2, 1, prepared);
        rejected(&deliver(
            &mut replica,
            START_MS,
            2,
            PbftMessage::ViewChange(vc),
        ))
    };
    let judged = |seqs: &[u64]| judged_certs(seqs.iter().map(|&s| cert_of(s, &batch)).collect());
    let bad = vec![RejectReason::BadViewChange(
        "prepared certificates out of order or window",
    )];

    // The window above the stable checkpoint (0) is 2 x the checkpoint interval (10).
    assert_eq!(judged(&[1, 2]), vec![]);
    assert_eq!(judged(&[1, 20]), vec![]);
    assert_eq!(judged(&[2, 1]), bad);
    assert_eq!(judged(&[1, 1]), bad);
    assert_eq!(judged(&[0]), bad);
    assert_eq!(judged(&[21]), bad);

    // A certificate for a batch no block may hold (11 transactions, the genesis allows 10),
    // however well signed, is refused.
    let mut oversized = batch.clone();
    oversized.txs = (0..11).map(|n| tx(950 + n)).collect();
    assert_eq!(
        judged_certs(vec![cert_of(1, &oversized)]),
        vec![RejectReason::BadPreparedCert { seq: 1 }]
    );
    // Its PREPAREs: 2f from distinct backups in ascending order, each for the PRE-PREPARE's
    // view, sequence number and digest. (view, seq, digest) of each, from validators `from`.
    let with_prepares = |votes: &[(usize, u64, u64, Hash)]| {
        let mut cert = cert_of(1, &batch);
        cert.prepares = votes
            .iter()
            .map(|&(i, view, seq, digest)| {
                Prepare::new_signed(CHAIN, &key(i), ValidatorId(i as u16), view, seq, digest)
            })
            .collect();
        judged_certs(vec![cert])
    };
    let d = batch.digest();
    let bad_cert = vec![RejectReason::BadPreparedCert { seq: 1 }];
    assert_eq!(with_prepares(&[(1, 0, 1, d), (2, 0, 1, d)]), vec![]);
    assert_eq!(
        with_prepares(&[(1, 0, 1, d), (2, 0, 1, d), (3, 0, 1, d)]),
        vec![]
    );
    assert_eq!(
        with_prepares(&[(2, 0, 1, d), (1, 0, 1, d)]),
        bad_cert,
        "order"
    );
    assert_eq!(
        with_prepares(&[(1, 0, 1, d), (1, 0, 1, d)]),
        bad_cert,
        "twice"
    );
    assert_eq!(
        with_prepares(&[(0, 0, 1, d), (1, 0, 1, d)]),
        bad_cert,
        "primary"
    );
    assert_eq!(
        with_prepares(&[(1, 0, 1, d), (2, 1, 1, d)]),
        bad_cert,
        "view"
    );
    assert_eq!(
        with_prepares(&[(1, 0, 1, d), (2, 0, 2, d)]),
        bad_cert,
        "seq"
    );
    let other = Hash([3; 32]);
    assert_eq!(
        with_prepares(&[(1, 0, 1, d), (2, 0, 1, other)]),
        bad_cert,
        "digest"
    );
    assert_eq!(with_prepares(&[(1, 0, 1, d)]), bad_cert, "too few");

    let mut largest = batch.clone();
    largest.txs = (0..10).map(|n| tx(950 + n)).collect();
    assert_eq!(judged_certs(vec![cert_of(1, &largest)]), vec![]);
}

#[test]
fn the_window_of_recently_committed_ids_keeps_its_length() {
    use aegis_consensus::pbft::config::DEFAULT_TX_DEDUP_WINDOW_BLOCKS as WINDOW;

    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    let blocks = WINDOW + 40;
    for n in 0..blocks {
        cluster.submit_to(0, vec![tx(10_000 + n)]);
        cluster.deliver_all(|_, _, _| true);
    }
    assert_eq!(cluster.height(1), blocks);
    // The ids of the last WINDOW blocks, and no more, are remembered.
    let recent = cluster.core(1).persisted().recent_txs;
    let heights: Vec<u64> = recent.iter().map(|(h, _)| *h).collect();
    assert_eq!(heights, (blocks - WINDOW + 1..=blocks).collect::<Vec<_>>());
}

#[test]
fn a_batch_over_the_byte_bound_is_refused() {
    use aegis_consensus::pbft::{BatchFault, PrePrepare};
    use aegis_testkit::{GenesisBuilder, client_key, signed_tx};
    use aegis_types::Transaction;
    use aegis_types::genesis::MAX_BLOCK_BYTES;

    let g = GenesisBuilder::new(4)
        .max_byzantine_nodes(1)
        .checkpoint_interval(10)
        .max_block_txs(1_000)
        .pipeline_depth(4)
        .build();
    // A backup that has just received the primary's PRE-PREPARE for slot 1, fresh each time.
    let fresh = || {
        let mut cluster = Cluster::new(&g);
        cluster.submit_to(0, vec![tx(950)]);
        (
            common::queued_pre_prepare(&cluster, 1),
            cluster.take_core(1),
        )
    };

    // Transactions of about 60 KB whose encodings add up to exactly MAX_BLOCK_BYTES.
    let payload = |nonce: u64, bytes: usize| signed_tx(&client_key(), CHAIN, nonce, vec![9; bytes]);
    let base = payload(0, 0).encoded_len();
    let per = base + 60_000;
    let full = MAX_BLOCK_BYTES / per - 1;
    let rest = MAX_BLOCK_BYTES - full * per - 2 * base;
    let mut txs: Vec<Transaction> = (0..full as u64).map(|n| payload(1 + n, 60_000)).collect();
    txs.push(payload(5_000, rest / 2));
    let at_bound = |extra: usize| {
        let mut txs = txs.clone();
        txs.push(payload(5_001, rest - rest / 2 + extra));
        txs
    };
    let total = |txs: &[Transaction]| txs.iter().map(Transaction::encoded_len).sum::<usize>();
    assert_eq!(total(&at_bound(0)), MAX_BLOCK_BYTES);

    let judged = |txs: Vec<Transaction>| {
        let (honest, mut backup) = fresh();
        let mut batch = honest.batch.clone();
        batch.txs = txs.into();
        let pp = PrePrepare::new_signed(CHAIN, &key(0), 0, honest.seq, batch);
        rejected(&deliver(
            &mut backup,
            honest.batch.timestamp_ms,
            0,
            PbftMessage::PrePrepare(pp),
        ))
    };
    assert_eq!(judged(at_bound(0)), vec![]);
    assert_eq!(
        judged(at_bound(1)),
        vec![RejectReason::InvalidBatch(BatchFault::TooManyBytes {
            bytes: MAX_BLOCK_BYTES + 1,
            max: MAX_BLOCK_BYTES
        })]
    );
}

#[test]
fn the_request_timer_watches_the_oldest_transaction_waited_for() {
    let g = genesis(4, 1, 10, 4);
    let timeout = config(&g, 1).progress_timeout_ms;
    let mut cluster = Cluster::new(&g);
    let deadline =
        |cluster: &Cluster, i: usize| cluster.core(i).timer_deadline(PbftTimer::Progress);
    let (a, b, c) = (tx(1_001), tx(1_002), tx(1_003));

    // Node 1 waits for A from 10 s: its timer runs from then.
    cluster.now_ms = 10_000;
    cluster.submit_to(1, vec![a.clone()]);
    assert_eq!(deadline(&cluster, 1), Some(10_000 + timeout));
    // B arrives later: A is still the oldest, the timer is not restarted.
    cluster.now_ms = 11_000;
    cluster.submit_to(1, vec![b.clone()]);
    assert_eq!(deadline(&cluster, 1), Some(10_000 + timeout));
    // A executes at 12 s: the timer restarts for B, now the oldest.
    cluster.now_ms = 12_000;
    cluster.submit_to(0, vec![a]);
    cluster.deliver_all(|_, _, _| true);
    assert_eq!(cluster.height(1), 1);
    assert_eq!(deadline(&cluster, 1), Some(12_000 + timeout));
    // C is ordered while B is left out: executing others' transactions restarts nothing,
    // so a primary that censors B is still suspected on time.
    cluster.now_ms = 13_000;
    cluster.submit_to(1, vec![c.clone()]);
    cluster.submit_to(0, vec![c]);
    cluster.deliver_all(|_, _, _| true);
    assert_eq!(cluster.height(1), 2);
    assert_eq!(deadline(&cluster, 1), Some(12_000 + timeout));

    // Node 2 waits for no transaction, and is idle.
    assert_eq!(deadline(&cluster, 2), None);
    // A PREPARE alone (no PRE-PREPARE yet) is no work waited for.
    cluster.now_ms = 14_000;
    cluster.submit_to(0, vec![tx(1_004)]);
    let pre_prepare = common::queued_pre_prepare(&cluster, 2);
    let only = |kind: &'static str| {
        move |from: usize, to: usize, m: &PbftMessage| to == 2 && from != 2 && m.kind() == kind
    };
    let prepares_first = cluster.queue.clone();
    cluster.queue.clear();
    cluster.run(3, |d| {
        d.deliver(ValidatorId(0), PbftMessage::PrePrepare(pre_prepare.clone()))
    });
    cluster.deliver_all(only("prepare"));
    assert_eq!(
        deadline(&cluster, 2),
        None,
        "a PREPARE alone armed the request timer"
    );
    // Its PRE-PREPARE is: a batch pre-prepared and not executed, with nothing waited for.
    cluster.queue = prepares_first;
    cluster.deliver_all(only("pre_prepare"));
    assert_eq!(deadline(&cluster, 2), Some(14_000 + timeout));
    // A second one later does not restart it.
    cluster.now_ms = 15_000;
    cluster.submit_to(0, vec![tx(1_005)]);
    cluster.deliver_all(only("pre_prepare"));
    assert_eq!(deadline(&cluster, 2), Some(14_000 + timeout));
    // Retransmission completes everything (node 1's timer for B, long due, moves the
    // network to view 1, whose primary orders B): nothing is waited for, no timer is armed.
    cluster.now_ms = 16_000;
    for i in 0..4 {
        cluster.fire(i, PbftTimer::Retransmit, 16_000);
        cluster.deliver_all(|_, _, _| true);
    }
    for i in 0..4 {
        cluster.fire(i, PbftTimer::Retransmit, 17_000);
        cluster.deliver_all(|_, _, _| true);
    }
    for i in 0..4 {
        assert_eq!(cluster.height(i), 5, "node {i}");
        assert_eq!(deadline(&cluster, i), None, "node {i}");
    }

    // Votes for a slot whose PRE-PREPARE never came are no work waited for either: once
    // block 1 executes, node 2 (which never saw block 2's PRE-PREPARE) stops its timer.
    let mut cluster = Cluster::new(&g);
    cluster.now_ms = 20_000;
    cluster.submit_to(0, vec![tx(1_006)]);
    cluster.submit_to(0, vec![tx(1_007)]);
    cluster.deliver_all(|_, to, m| {
        !(to == 2 && matches!(m, PbftMessage::PrePrepare(pp) if pp.seq == 2))
    });
    assert_eq!((cluster.height(1), cluster.height(2)), (2, 1));
    assert_eq!(deadline(&cluster, 2), None);
}

#[test]
fn no_request_timer_runs_during_a_view_change() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    // Node 2 waits for a transaction from 1 s: its request timer runs.
    cluster.submit_to(2, vec![tx(1_100)]);
    assert!(
        cluster
            .core(2)
            .timer_deadline(PbftTimer::Progress)
            .is_some()
    );
    // At 1.5 s two others (f + 1) move to view 1, and node 2 joins them.
    cluster.now_ms = 1_500;
    for from in [1, 3] {
        let id = ValidatorId(from as u16);
        let vc = genesis_view_change(&g, from, 1, vec![]);
        cluster.run(2, |d| d.deliver(id, PbftMessage::ViewChange(vc)));
    }
    let state = |cluster: &Cluster| (cluster.core(2).view(), cluster.core(2).status());
    assert_eq!(state(&cluster), (1, Status::ViewChanging));
    // Only the view-change timer runs now, also after another transaction arrives: a
    // stuck view change is moved on by it alone (so `on_timer`'s `status == Normal` test
    // for the request timer never decides anything; docs/consensus.md).
    cluster.submit_to(2, vec![tx(1_101)]);
    assert_eq!(cluster.core(2).timer_deadline(PbftTimer::Progress), None);
    assert!(
        cluster
            .core(2)
            .timer_deadline(PbftTimer::ViewChange)
            .is_some()
    );
    assert_eq!(state(&cluster), (1, Status::ViewChanging));
}

/// The Persist effects of `effects`: (sequence, records, must_sync, messages).
fn persists(effects: &[PbftEffect]) -> Vec<(u64, usize, bool, usize)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist {
                sequence,
                records,
                must_sync,
                messages,
                ..
            } => Some((*sequence, records.len(), *must_sync, messages.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_step_persists_what_it_changed_and_numbers_each_persist() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit_to(0, vec![tx(1_200)]);
    let pre_prepare = common::queued_pre_prepare(&cluster, 1);
    let digest = pre_prepare.batch.digest();
    let mut backup = cluster.take_core(1);
    let prepare = |from: usize| {
        PbftMessage::Prepare(Prepare::new_signed(
            CHAIN,
            &key(from),
            ValidatorId(from as u16),
            0,
            1,
            digest,
        ))
    };
    let mut sequences = Vec::new();

    // Another backup's PREPARE before the PRE-PREPARE: recorded, nothing signed, so it is
    // persisted without a sync and sends nothing.
    let effects = deliver(&mut backup, START_MS, 2, prepare(2));
    let [(sequence, records, false, 0)] = persists(&effects)[..] else {
        panic!("{effects:?}");
    };
    assert!(records > 0);
    sequences.push(sequence);
    // The same PREPARE again changes nothing: nothing to persist.
    let effects = deliver(&mut backup, START_MS, 2, prepare(2));
    assert_eq!(persists(&effects), vec![], "{effects:?}");
    // The PRE-PREPARE: this backup signs its PREPARE, persisted and synced before it is
    // sent.
    let effects = deliver(
        &mut backup,
        START_MS,
        0,
        PbftMessage::PrePrepare(pre_prepare),
    );
    let [(sequence, _, true, sent)] = persists(&effects)[..] else {
        panic!("{effects:?}");
    };
    assert!(sent > 0);
    sequences.push(sequence);
    // Each persist carries the next number.
    assert_eq!(sequences.len(), 2, "{sequences:?}");
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0] + 1),
        "{sequences:?}"
    );
}

#[test]
fn the_primary_does_not_retransmit_what_it_executed() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1_300)]);
    cluster.deliver_all(|_, _, _| true);
    // Block 2 is pre-prepared but its PRE-PREPARE is lost.
    cluster.submit_to(0, vec![tx(1_301)]);
    cluster.queue.clear();
    assert_eq!(cluster.height(0), 1);
    let due = cluster
        .core(0)
        .timer_deadline(PbftTimer::Retransmit)
        .unwrap();
    cluster.fire(0, PbftTimer::Retransmit, due);
    let retransmitted: Vec<u64> = cluster
        .queue
        .iter()
        .filter_map(|(_, _, m)| match m {
            PbftMessage::PrePrepare(pp) => Some(pp.seq),
            _ => None,
        })
        .collect();
    // Block 2's PRE-PREPARE to each backup, never block 1's.
    assert_eq!(retransmitted, vec![2, 2, 2]);
}

#[test]
fn a_synced_parent_lets_the_prepared_slot_above_it_commit_at_once() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    let seq_of = |m: &PbftMessage| match m {
        PbftMessage::PrePrepare(pp) => pp.seq,
        PbftMessage::Prepare(p) => p.seq,
        PbftMessage::Commit(c) => c.seq,
        _ => 0,
    };
    // Node 3 hears nothing of block 1, and everything of block 2: it prepares block 2 but
    // cannot build it (nor COMMIT it) without its parent.
    cluster.submit_to(0, vec![tx(1_400)]);
    cluster.submit_to(0, vec![tx(1_401)]);
    cluster.deliver_all(|_, to, m| to != 3 || seq_of(m) != 1);
    assert_eq!((cluster.height(0), cluster.height(3)), (2, 0));
    let (block, certificate) = cluster.committed(0)[0].clone();
    let mut behind = cluster.take_core(3);
    // Block 1 arrives by sync: in the same step node 3 commits block 2.
    let effects = behind.step(
        env(START_MS + 10),
        Input::SyncedBlock { block, certificate },
    );
    let commits: Vec<u64> = common::sent(&effects)
        .iter()
        .filter_map(|o| match o {
            Outgoing::All(PbftMessage::Commit(c)) => Some(c.seq),
            _ => None,
        })
        .collect();
    assert_eq!(commits, vec![2], "{effects:?}");
}

#[test]
fn a_synced_block_does_not_end_the_run_of_failed_views() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1_500)]);
    // Node 0, the primary of view 0, is silent; the others move to view 1.
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    // Node 0 is back; node 3 takes part in the view change but hears none of the votes on
    // block 1, which the other three commit in view 1.
    let vote = |m: &PbftMessage| matches!(m, PbftMessage::Prepare(_) | PbftMessage::Commit(_));
    cluster.deliver_all(|_, to, m| !(to == 3 && vote(m)));
    assert_eq!((cluster.height(1), cluster.core(1).view()), (1, 1));
    let behind = cluster.core(3);
    assert_eq!(
        (behind.view(), behind.status(), cluster.height(3)),
        (1, Status::Normal, 0)
    );
    assert_eq!(behind.persisted().failed_views, 1);
    // Block 1 reaches it by sync: the run of failed views ends only when this replica
    // itself takes part in executing in the new view (§4.5.2), not on a synced block.
    let (block, certificate) = cluster.committed(1)[0].clone();
    let mut behind = cluster.take_core(3);
    let effects = behind.step(env(10_010), Input::SyncedBlock { block, certificate });
    assert_eq!(rejected(&effects), vec![]);
    assert_eq!(behind.last_committed().0, 1);
    assert_eq!(behind.persisted().failed_views, 1);
}

#[test]
fn messages_kept_for_a_view_survive_joining_it() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1_600)]);
    let is_new_view = |m: &PbftMessage| matches!(m, PbftMessage::NewView(_));
    let is_view_change = |m: &PbftMessage| matches!(m, PbftMessage::ViewChange(_));
    // View 0's primary is cut off; view 1's NEW-VIEW never arrives.
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    cluster.deliver_all(|from, _, m| from != 0 && !(from == 1 && is_new_view(m)));
    // 0 and 2 give up on view 1; 3 does not (yet), and hears neither their VIEW-CHANGEs nor
    // view 2's NEW-VIEW: it keeps the PRE-PREPARE, PREPAREs and COMMITs of view 2 for later.
    for i in [0, 2] {
        cluster.fire(i, PbftTimer::ViewChange, 20_000);
    }
    let held: Vec<(usize, PbftMessage)> = cluster
        .queue
        .iter()
        .filter(|(_, to, m)| *to == 3 && is_view_change(m))
        .map(|(from, _, m)| (*from, m.clone()))
        .collect();
    assert!(held.len() >= 2, "{held:?}");
    cluster.deliver_all(|_, to, m| !(to == 3 && (is_new_view(m) || is_view_change(m))));
    assert_eq!(cluster.height(2), 1);
    assert_eq!(
        (cluster.core(3).view(), cluster.height(3)),
        (1, 0),
        "node 3 still in view 1"
    );
    // Now their VIEW-CHANGEs for view 2 reach it: f + 1 of them, it joins view 2, and what
    // it kept for view 2 must still be there when the NEW-VIEW comes.
    for (from, vc) in held {
        cluster.run(3, |d| d.deliver(ValidatorId(from as u16), vc));
    }
    assert_eq!(cluster.core(3).view(), 2);
    let nv = cluster.logged_state(2).latest_new_view.unwrap();
    cluster.run(3, |d| d.deliver(ValidatorId(2), PbftMessage::NewView(nv)));
    assert_eq!(cluster.height(3), 1, "the COMMITs kept for view 2 count");
}

#[test]
fn a_new_view_re_proposes_the_batch_prepared_in_the_latest_view() {
    use aegis_consensus::pbft::{Batch, PrePrepare, PreparedCert};

    let g = genesis(4, 1, 10, 4);
    // Slot 1 was prepared in view 0 with batch X (primary 0) and then, after a view change,
    // in view 1 with batch Y (primary 1). View 2's primary (2) must re-propose Y.
    let batch = |proposer: u16, view: u64, nonce: u64| Batch {
        proposer: ValidatorId(proposer),
        view,
        timestamp_ms: START_MS,
        txs: Arc::from([tx(nonce)]),
    };
    let (x, y) = (batch(0, 0, 1_700), batch(1, 1, 1_701));
    let cert = |view: u64, primary: usize, backups: [usize; 2], batch: &Batch| {
        let digest = batch.digest();
        PreparedCert {
            pre_prepare: PrePrepare::new_signed(CHAIN, &key(primary), view, 1, batch.clone()),
            prepares: backups
                .iter()
                .map(|&i| {
                    Prepare::new_signed(CHAIN, &key(i), ValidatorId(i as u16), view, 1, digest)
                })
                .collect(),
        }
    };
    let view_change = |from: usize, prepared: Vec<PreparedCert>| {
        PbftMessage::ViewChange(genesis_view_change(&g, from, 2, prepared))
    };
    // The older certificate arrives first.
    let mut primary = started(2, 10);
    let mut sent = Vec::new();
    for (from, prepared) in [
        (0, vec![cert(0, 0, [1, 2], &x)]),
        (1, vec![cert(1, 1, [2, 3], &y)]),
    ] {
        let effects = deliver(&mut primary, START_MS, from, view_change(from, prepared));
        assert_eq!(rejected(&effects), vec![]);
        sent.extend(common::sent(&effects));
    }
    let new_view = sent
        .iter()
        .find_map(|o| match o {
            Outgoing::All(PbftMessage::NewView(nv)) => Some(nv.clone()),
            _ => None,
        })
        .expect("view 2's primary sends its NEW-VIEW");
    let o: Vec<(u64, Arc<[_]>)> = new_view
        .pre_prepares
        .iter()
        .map(|pp| (pp.seq, pp.batch.txs.clone()))
        .collect();
    assert_eq!(o, vec![(1, y.txs.clone())]);
}

#[test]
fn a_new_view_received_again_is_a_duplicate_not_a_stale_view() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(1_800)]);
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    cluster.deliver_all(|from, _, _| from != 0);
    let nv = cluster.logged_state(1).latest_new_view.unwrap();
    let mut backup = cluster.take_core(2);
    assert_eq!((backup.view(), backup.status()), (1, Status::Normal));
    let again = deliver(&mut backup, 10_010, 1, PbftMessage::NewView(nv));
    assert_eq!(rejected(&again), vec![RejectReason::Duplicate]);
}

#[test]
fn a_backup_refuses_every_forged_new_view() {
    use aegis_consensus::pbft::{Batch, BatchFault, NewView, PrePrepare, PreparedCert, ViewChange};

    let g = genesis(4, 1, 10, 4);
    // View 2 (primary 2): the VIEW-CHANGEs report slot 2 prepared in view 0 with batch X and
    // nothing for slot 1, so O is a null request at 1 and X at 2.
    let x = Batch {
        proposer: ValidatorId(0),
        view: 0,
        timestamp_ms: START_MS,
        txs: Arc::from([tx(1_900)]),
    };
    let cert = {
        let digest = x.digest();
        PreparedCert {
            pre_prepare: PrePrepare::new_signed(CHAIN, &key(0), 0, 2, x.clone()),
            prepares: [1, 2]
                .iter()
                .map(|&i| Prepare::new_signed(CHAIN, &key(i), ValidatorId(i as u16), 0, 2, digest))
                .collect(),
        }
    };
    let view_change =
        |from: usize, new_view: u64| genesis_view_change(&g, from, new_view, vec![cert.clone()]);
    let null = Batch {
        proposer: ValidatorId(2),
        view: 2,
        timestamp_ms: START_MS,
        txs: Arc::from([]),
    };
    let honest_o = || vec![(1, 2, null.clone()), (2, 2, x.clone())];
    let judged = |vcs: Vec<ViewChange>, o: Vec<(u64, u64, Batch)>| {
        let pre_prepares = o
            .into_iter()
            .map(|(seq, view, batch)| PrePrepare::new_signed(CHAIN, &key(2), view, seq, batch))
            .collect();
        let nv = NewView::new_signed(CHAIN, &key(2), 2, vcs, pre_prepares);
        let mut backup = started(1, 10);
        rejected(&deliver(&mut backup, START_MS, 2, PbftMessage::NewView(nv)))
    };
    let quorum = || vec![view_change(0, 2), view_change(1, 2), view_change(3, 2)];
    let bad = |why| vec![RejectReason::BadNewView(why)];
    let mismatch = bad("O does not match the view changes");
    let non_empty_null = vec![RejectReason::InvalidBatch(BatchFault::NonEmptyNull)];

    assert_eq!(judged(quorum(), honest_o()), vec![]);
    // Every validator's VIEW-CHANGE is more than needed, and fine.
    let all = (0..4).map(|i| view_change(i, 2)).collect();
    assert_eq!(judged(all, honest_o()), vec![]);
    // A VIEW-CHANGE for another view among them.
    let mut other_view = quorum();
    other_view[2] = view_change(3, 3);
    assert_eq!(
        judged(other_view, honest_o()),
        bad("view changes not distinct or for another view")
    );
    // O's PRE-PREPAREs: of another view, or another batch than the prepared one.
    assert_eq!(
        judged(quorum(), vec![(1, 2, null.clone()), (2, 1, x.clone())]),
        mismatch
    );
    let mut y = x.clone();
    y.txs = Arc::from([tx(1_901)]);
    assert_eq!(
        judged(quorum(), vec![(1, 2, null.clone()), (2, 2, y)]),
        mismatch
    );
    // The null request: no transactions, proposed by the new primary in the new view.
    for edit in [
        &(|b: &mut Batch| b.txs = Arc::from([tx(1_902)])) as &dyn Fn(&mut Batch),
        &|b: &mut Batch| b.proposer = ValidatorId(0),
        &|b: &mut Batch| b.view = 1,
    ] {
        let mut forged = null.clone();
        edit(&mut forged);
        assert_eq!(
            judged(quorum(), vec![(1, 2, forged), (2, 2, x.clone())]),
            non_empty_null
        );
    }
}

#[test]
fn what_was_received_for_a_later_view_survives_installing_this_one() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(2_000)]);
    // View 0's primary is silent; 1, 2 and 3 move to view 1, and node 2 waits for its
    // NEW-VIEW.
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    let is_new_view = |m: &PbftMessage| matches!(m, PbftMessage::NewView(_));
    cluster.deliver_all(|from, to, m| from != 0 && !(to == 2 && is_new_view(m)));
    assert_eq!(
        (cluster.core(2).view(), cluster.core(2).status()),
        (1, Status::ViewChanging)
    );
    let to_view_2 = |from: usize| {
        let id = ValidatorId(from as u16);
        let vc = genesis_view_change(&g, from, 2, Vec::new());
        (id, PbftMessage::ViewChange(vc))
    };
    // Meanwhile node 3 already asks for view 2: one VIEW-CHANGE, not yet f + 1. And a
    // PREPARE of view 2 arrives early: kept for that view.
    let (id, vc) = to_view_2(3);
    cluster.run(2, |d| d.deliver(id, vc));
    assert_eq!(cluster.core(2).view(), 1);
    let early = PbftMessage::Prepare(Prepare::new_signed(
        CHAIN,
        &key(3),
        ValidatorId(3),
        2,
        1,
        Hash([5; 32]),
    ));
    cluster.run(2, |d| d.deliver(ValidatorId(3), early.clone()));
    let kept = |cluster: &Cluster| {
        cluster
            .core(2)
            .protocol_fingerprint()
            .contains(&format!("{early:?}"))
    };
    assert!(kept(&cluster));
    // View 1's NEW-VIEW arrives and is installed.
    let nv = cluster.logged_state(1).latest_new_view.unwrap();
    cluster.run(2, |d| d.deliver(ValidatorId(1), PbftMessage::NewView(nv)));
    assert_eq!(
        (cluster.core(2).view(), cluster.core(2).status()),
        (1, Status::Normal)
    );
    assert!(
        kept(&cluster),
        "the PREPARE of view 2 was dropped on installing view 1"
    );
    // A second VIEW-CHANGE for view 2 makes f + 1 with the one kept: node 2 joins view 2.
    let (id, vc) = to_view_2(0);
    cluster.run(2, |d| d.deliver(id, vc));
    assert_eq!(
        cluster.core(2).view(),
        2,
        "the VIEW-CHANGE for view 2 received before installing view 1 was forgotten"
    );
}

#[test]
fn a_lagging_peer_gets_the_new_view_again_only_after_the_retransmit_interval() {
    let g = genesis(4, 1, 10, 4);
    let interval = config(&g, 2).retransmit_interval_ms;
    let mut cluster = Cluster::new(&g);
    cluster.submit(vec![tx(2_100)]);
    // View 0's primary (0) is cut off while the others move to view 1.
    cluster.deliver_all(|from, to, _| from != 0 && to != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    cluster.deliver_all(|from, to, _| from != 0 && to != 0);
    let mut backup = cluster.take_core(2);
    assert_eq!((backup.view(), backup.status()), (1, Status::Normal));
    // Node 0, still in view 0, sends node 2 a COMMIT of view 0: node 2 tells it about view 1.
    let stale = PbftMessage::Commit(Commit::new_signed(
        CHAIN,
        &key(0),
        ValidatorId(0),
        0,
        1,
        Hash([6; 32]),
    ));
    let forwarded = |backup: &mut Pbft, now_ms: u64| {
        let effects = deliver(backup, now_ms, 0, stale.clone());
        common::sent(&effects)
            .iter()
            .any(|o| matches!(o, Outgoing::To(ValidatorId(0), PbftMessage::NewView(_))))
    };
    assert!(forwarded(&mut backup, 20_000));
    // Not again within the retransmit interval, again once it has passed.
    assert!(!forwarded(&mut backup, 20_000 + interval - 1));
    assert!(forwarded(&mut backup, 20_000 + interval));
}

#[test]
fn the_log_keeps_own_checkpoints_above_a_newly_stable_one() {
    let g = genesis(4, 1, 10, 4);
    let mut cluster = Cluster::new(&g);
    // Twenty blocks, one at a time; node 1 hears no CHECKPOINT until the end, so it signs
    // its own at 10 and 20 with neither stable.
    let mut held = Vec::new();
    for n in 0..20 {
        cluster.submit_to(0, vec![tx(2_200 + n)]);
        while let Some((from, to, m)) = cluster.queue.pop_front() {
            if to == 1 && matches!(m, PbftMessage::Checkpoint(_)) {
                held.push((from, m));
            } else {
                cluster.run(to, |d| d.deliver(ValidatorId(from as u16), m));
            }
        }
    }
    assert_eq!(cluster.height(1), 20);
    let own = |state: &aegis_consensus::pbft::PbftPersisted| {
        state
            .own_checkpoints
            .iter()
            .map(|c| c.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(own(&cluster.core(1).persisted()), vec![10, 20]);
    // The others' CHECKPOINTs for 10 arrive: 10 is stable, its own for 20 is still needed.
    // The records those steps hand out, replayed onto the state before them, give the same
    // (with no compaction in between, as when the log is still small next to its snapshot).
    let mut replayed = cluster.core(1).persisted();
    let mut replica = cluster.take_core(1);
    for (from, m) in held {
        if matches!(&m, PbftMessage::Checkpoint(c) if c.seq == 10) {
            for effect in deliver(&mut replica, START_MS, from, m) {
                if let Effect::Persist {
                    sequence, records, ..
                } = effect
                {
                    replayed.apply(sequence, &records).unwrap();
                }
            }
        }
    }
    assert_eq!(replica.stable_checkpoint(), 10);
    assert_eq!(own(&replica.persisted()), vec![20]);
    assert_eq!(replayed, replica.persisted());
}

#[test]
fn replaying_a_dropped_checkpoint_drops_that_one_only() {
    use aegis_consensus::pbft::{PbftPersisted, PbftRecord};

    let g = genesis(4, 1, 10, 4);
    let own = |seq: u64| Checkpoint::new_signed(CHAIN, &key(1), ValidatorId(1), seq, Hash([8; 32]));
    let mut state = PbftPersisted::genesis(g.hash());
    state
        .apply(
            1,
            &[
                PbftRecord::OwnCheckpoint(own(10)),
                PbftRecord::OwnCheckpoint(own(20)),
                PbftRecord::OwnCheckpoint(own(30)),
            ],
        )
        .unwrap();
    state
        .apply(2, &[PbftRecord::DropCheckpoint { seq: 20 }])
        .unwrap();
    let seqs: Vec<u64> = state.own_checkpoints.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, vec![10, 30]);
    assert_eq!(state.persist_sequence, 2);

    // The same for a slot.
    let slot = |seq| PbftRecord::Slot {
        seq,
        view: 0,
        sent_prepare: None,
        sent_commit: None,
        executed: None,
    };
    state.apply(3, &[slot(1), slot(2), slot(3)]).unwrap();
    state.apply(4, &[PbftRecord::DropSlot { seq: 2 }]).unwrap();
    let seqs: Vec<u64> = state.slots.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, vec![1, 3]);
}

#[test]
fn a_checker_that_only_verifies_one_by_one_names_every_bad_signature_in_a_batch() {
    use aegis_consensus::pbft::SignatureCheck;

    /// A checker with only the one-by-one answer: the batch answer is the trait's own.
    #[derive(Debug)]
    struct OneByOne;
    impl SignatureCheck for OneByOne {
        fn verify(
            &self,
            key: &aegis_types::PublicKey,
            message: &[u8],
            signature: &aegis_types::Signature,
        ) -> bool {
            aegis_consensus::pbft::Ed25519.verify(key, message, signature)
        }
    }
    let items: Vec<_> = (0..4u8)
        .map(|i| {
            let message = vec![i; 8];
            let mut signature = key(1).sign(&message);
            if i % 2 == 1 {
                signature.0[0] ^= 1;
            }
            (key(1).public_key(), message, signature)
        })
        .collect();
    assert_eq!(OneByOne.verify_batch(&items), Err(vec![1, 3]));
    assert_eq!(OneByOne.verify_batch(&items[..1]), Ok(()));
}
