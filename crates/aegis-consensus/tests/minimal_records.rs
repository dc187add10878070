//! Each step hands out only what changed (ADR 0007): a correct replica writes a slot's
//! PRE-PREPARE once per view, never rewrites a slot whole, and never drops a slot by record
//! (a stable checkpoint says that). The replay checks prove the records are right; this one
//! proves they are small, through pipelining, checkpoints and a view change.

#![allow(clippy::unwrap_used, reason = "test setup fails the test loudly")]

mod common;

use std::collections::BTreeMap;

use aegis_consensus::pbft::{PbftPersisted, PbftRecord, PbftTimer};
use aegis_engine::memory::MemoryLog;
use aegis_engine::{ConsensusLog, IoError};
use aegis_testkit::cluster::{Cluster, TestLog};
use common::{genesis, tx};

/// A memory log that also keeps every record appended to it.
#[derive(Debug, Default)]
struct RecordingLog {
    inner: MemoryLog<PbftPersisted>,
    records: Vec<PbftRecord>,
}

impl ConsensusLog<PbftPersisted> for RecordingLog {
    fn append(&mut self, sequence: u64, records: Vec<PbftRecord>) -> Result<(), IoError> {
        self.records.extend(records.iter().cloned());
        self.inner.append(sequence, records)
    }

    fn sync(&mut self) -> Result<(), IoError> {
        self.inner.sync()
    }

    fn compact(&mut self, snapshot: &PbftPersisted) -> Result<(), IoError> {
        self.inner.compact(snapshot)
    }

    fn load(&mut self) -> Result<Option<PbftPersisted>, IoError> {
        self.inner.load()
    }

    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn unsynced_bytes(&self) -> u64 {
        self.inner.unsynced_bytes()
    }
}

impl TestLog for RecordingLog {
    fn crash(mut self) -> Self {
        MemoryLog::crash(&mut self.inner);
        self
    }

    fn durable_state(&self) -> Option<PbftPersisted> {
        self.inner.durable().cloned()
    }
}

#[test]
fn records_say_only_what_changed() {
    let g = genesis(4, 1, 2, 3);
    let mut cluster: Cluster<RecordingLog> = Cluster::with_logs(&g, |_| RecordingLog::default());
    for nonce in 1..=7 {
        cluster.submit(vec![tx(nonce)]);
        cluster.deliver_all(|_, _, _| true);
    }
    // The primary of view 0 goes quiet with work pending: view 1 takes over.
    cluster.submit(vec![tx(8)]);
    cluster.deliver_all(|from, _, _| from != 0);
    for i in 1..4 {
        cluster.fire(i, PbftTimer::Progress, 10_000);
    }
    cluster.deliver_all(|_, _, _| true);
    for nonce in 9..=12 {
        cluster.submit(vec![tx(nonce)]);
        cluster.deliver_all(|_, _, _| true);
    }
    assert!(cluster.height(1) >= 11, "height {}", cluster.height(1));
    assert_eq!(cluster.core(1).view(), 1);
    for i in 0..4 {
        let records = &cluster.driver(i).log().records;
        let mut pre_prepares: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        let mut checkpoints: BTreeMap<u64, usize> = BTreeMap::new();
        for record in records {
            match record {
                PbftRecord::FullSlot(slot) => panic!("node {i} rewrote slot {} whole", slot.seq),
                PbftRecord::DropSlot { seq } => panic!("node {i} dropped slot {seq} by record"),
                PbftRecord::PrePrepare(pp) => {
                    *pre_prepares.entry((pp.seq, pp.view)).or_default() += 1;
                }
                PbftRecord::OwnCheckpoint(c) => *checkpoints.entry(c.seq).or_default() += 1,
                // A prepared certificate names the slot's PRE-PREPARE (`Prepared`); it is
                // written whole only when it holds another one (from an earlier view), which
                // this run, with no batch in flight at the view change, never has.
                PbftRecord::PreparedCert(cert) => panic!(
                    "node {i} wrote the prepared certificate of slot {} whole",
                    cert.pre_prepare.seq
                ),
                // A stable checkpoint drops the ones at and below it; an honest run has no
                // other reason to drop one.
                PbftRecord::DropCheckpoint { seq } => {
                    panic!("node {i} dropped its checkpoint {seq} by record")
                }
                _ => {}
            }
        }
        for ((seq, view), count) in pre_prepares {
            assert_eq!(
                count, 1,
                "node {i} wrote the PRE-PREPARE of ({view}, {seq}) {count} times"
            );
        }
        assert!(!checkpoints.is_empty(), "node {i} wrote its checkpoints");
        for (seq, count) in checkpoints {
            assert_eq!(
                count, 1,
                "node {i} wrote its CHECKPOINT {seq} {count} times"
            );
        }
        assert!(
            records.iter().any(|r| matches!(r, PbftRecord::Stable(_))),
            "node {i} saw stable checkpoints"
        );
    }
}
