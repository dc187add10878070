//! The consensus log on disk, under the real driver and PBFT cores: nodes restart from what
//! their logs replay to, a crash at any byte leaves a log that replays to a state the node may
//! resume from, damage to synced data is refused rather than cut, and what the log writes per
//! committed block (the figures of ADR 0007).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::Path;

use aegis_consensus::DurableState;
use aegis_consensus::pbft::{Pbft, PbftPersisted, PbftRecord};
use aegis_engine::log_format::{FrameKind, scan};
use aegis_engine::{FileLog, LogError};
use aegis_testkit::cluster::{Cluster, pbft_config};
use aegis_testkit::{CHAIN, client_key, genesis, signed_tx, tx, validator_key};

type FileCluster = Cluster<FileLog<PbftPersisted>>;

fn file_cluster(dir: &Path, n: usize, checkpoint_interval: u64) -> FileCluster {
    let g = genesis(n, ((n - 1) / 3) as u32, checkpoint_interval, 4);
    Cluster::with_logs(&g, |i| {
        FileLog::open(dir.join(format!("node{i}")).join("consensus"))
            .unwrap()
            .0
    })
}

fn commit_rounds(cluster: &mut FileCluster, rounds: u64, first_nonce: u64) {
    for round in 0..rounds {
        cluster.submit(vec![tx(first_nonce + round)]);
        cluster.deliver_all(|_, _, _| true);
    }
}

#[test]
fn nodes_restart_from_their_log_files_and_keep_committing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = file_cluster(dir.path(), 4, 3);
    commit_rounds(&mut cluster, 8, 1);
    for i in 0..4 {
        assert_eq!(cluster.height(i), 8, "node {i}");
        // What a step decided without sending anything may wait for the next sync; a clean
        // stop syncs it.
        cluster.run(i, aegis_engine::Driver::close);
        assert_eq!(
            cluster.logged_state(i),
            cluster.core(i).persisted(),
            "node {i}'s log file replays to its core's state"
        );
    }
    cluster.restart(1);
    cluster.restart(0);
    assert_eq!(cluster.core(1).persisted(), cluster.logged_state(1));
    commit_rounds(&mut cluster, 4, 100);
    let tip = cluster.committed(2).last().unwrap().0.hash();
    for i in 0..4 {
        assert_eq!(cluster.height(i), 12, "node {i}");
        assert_eq!(cluster.committed(i).last().unwrap().0.hash(), tip);
    }
}

/// The state after each intact frame of a log's bytes.
fn states_by_frame(bytes: &[u8]) -> Vec<PbftPersisted> {
    let found = scan(bytes).unwrap();
    let mut states = Vec::new();
    let mut state: Option<PbftPersisted> = None;
    for frame in &found.frames {
        match frame.kind {
            FrameKind::Snapshot => state = Some(borsh::from_slice(frame.payload).unwrap()),
            FrameKind::Records => {
                let records: Vec<PbftRecord> = borsh::from_slice(frame.payload).unwrap();
                state
                    .as_mut()
                    .unwrap()
                    .apply(frame.sequence, &records)
                    .unwrap();
            }
        }
        states.push(state.clone().unwrap());
    }
    states
}

fn open_and_replay(dir: &Path) -> Result<Option<PbftPersisted>, LogError> {
    let (log, _) = FileLog::<PbftPersisted>::open(dir)?;
    log.replay()
}

/// A crash may leave any prefix of what was appended since the last sync, and garbage after
/// it. (The file itself, with its first snapshot, only ever appears whole: a compaction writes
/// a temporary file, syncs it and renames it into place.) Cut the log of a real run at every
/// byte after its snapshot, with and without garbage after the cut: it always opens, and
/// replays to the state after the last intact frame, one the node can be rebuilt from.
#[test]
fn a_crash_at_any_byte_replays_to_the_state_after_the_last_whole_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = file_cluster(dir.path(), 4, 100);
    commit_rounds(&mut cluster, 2, 1);
    cluster.run(1, aegis_engine::Driver::close);
    let path = dir.path().join("node1/consensus/consensus.log");
    let bytes = std::fs::read(&path).unwrap();
    let states = states_by_frame(&bytes);
    let boundaries: Vec<usize> = scan(&bytes)
        .unwrap()
        .frames
        .iter()
        .map(|f| f.offset + aegis_engine::log_format::frame_len(f.payload.len()))
        .collect();
    assert!(states.len() >= 5, "a snapshot and several record frames");
    assert_eq!(states.last(), Some(&cluster.core(1).persisted()));
    let g = genesis(4, 1, 100, 4);
    let mut restorable = std::collections::BTreeSet::new();
    let work = tempfile::tempdir().unwrap();
    for cut in boundaries[0]..=bytes.len() {
        for garbage in [&[][..], &[0x02, 0xff, 0x00, 0x13, 0x37][..]] {
            let case = work.path().join(format!("cut{cut}-{}", garbage.len()));
            std::fs::create_dir_all(&case).unwrap();
            let mut torn = bytes[..cut].to_vec();
            torn.extend_from_slice(garbage);
            std::fs::write(case.join("consensus.log"), &torn).unwrap();
            let replayed =
                open_and_replay(&case).unwrap_or_else(|error| panic!("cut at {cut}: {error}"));
            let whole = boundaries.iter().filter(|end| **end <= cut).count();
            let expected = whole.checked_sub(1).map(|last| states[last].clone());
            assert_eq!(replayed, expected, "cut at byte {cut}");
            if let Some(state) = replayed
                && restorable.insert(whole)
            {
                Pbft::restore(pbft_config(&g, 1), validator_key(1), state).unwrap();
            }
            std::fs::remove_dir_all(&case).unwrap();
        }
    }
    assert_eq!(restorable.len(), states.len());
}

#[test]
fn damage_to_a_frame_that_was_synced_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = file_cluster(dir.path(), 4, 100);
    commit_rounds(&mut cluster, 2, 1);
    let path = dir.path().join("node2/consensus/consensus.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let frames = scan(&bytes).unwrap().frames;
    assert!(frames.len() > 3);
    let victim = frames[1].offset + aegis_engine::log_format::FRAME_HEADER_BYTES;
    bytes[victim] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let error = open_and_replay(path.parent().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("damaged frame at byte") && error.contains("consensus.log"),
        "{error}"
    );
    // A foreign file is refused with what it is not.
    std::fs::write(&path, b"definitely not a consensus log").unwrap();
    let error = open_and_replay(path.parent().unwrap())
        .unwrap_err()
        .to_string();
    assert!(error.contains("not an AEGIS consensus log"), "{error}");
}

/// What the consensus log writes per committed block, against what writing the whole state
/// per persist (with a file sync, a rename and a directory sync each time) cost before. The
/// figures are printed for ADR 0007; the test holds the new log to a fraction of the old cost.
#[test]
fn the_log_writes_a_fraction_of_the_whole_state_per_block() {
    let rounds = 40u64;
    for workload in [
        "one block at a time",
        "one block at a time, batched",
        "pipelined, batched",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = file_cluster(dir.path(), 4, 10);
        cluster.measure_full_state = true;
        let client = client_key();
        let txs = |round: u64| {
            (0..10)
                .map(|k| signed_tx(&client, CHAIN, round * 10 + k, vec![0xab; 256]))
                .collect::<Vec<_>>()
        };
        match workload {
            "one block at a time" => {
                for round in 0..rounds {
                    cluster.submit(txs(round));
                    cluster.deliver_all(|_, _, _| true);
                }
            }
            "one block at a time, batched" => {
                for round in 0..rounds {
                    cluster.submit(txs(round));
                    cluster.deliver_batched();
                }
            }
            _ => {
                // Everything at once: the primary keeps four blocks in flight.
                cluster.submit((0..rounds).flat_map(txs).collect());
                cluster.deliver_batched();
            }
        }
        let nodes = cluster.len() as u64;
        let blocks = cluster.height(0);
        assert_eq!(blocks, rounds);
        let (mut bytes, mut syncs, mut persists) = (0, 0, 0);
        for i in 0..cluster.len() {
            let stats = cluster.driver(i).log().stats();
            bytes += stats.written_bytes;
            syncs += stats.syncs;
            persists += cluster.driver(i).stats().persists;
        }
        let per_block = |total: u64| total as f64 / (nodes * blocks) as f64;
        let old_bytes = cluster.full_state_bytes;
        let old_syncs = 3 * persists;
        println!(
            "{workload}: {blocks} blocks of 10 x 256 B transactions, per node and block: \
             before {:.0} bytes and {:.1} syncs, after {:.0} bytes and {:.1} syncs",
            per_block(old_bytes),
            per_block(old_syncs),
            per_block(bytes),
            per_block(syncs),
        );
        assert!(bytes * 4 < old_bytes, "{bytes} vs {old_bytes}");
        assert!(syncs * 2 < old_syncs, "{syncs} vs {old_syncs}");
    }
}
