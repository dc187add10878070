//! The driver's ordering contract, on the real PBFT core with in-memory I/O: messages that
//! commit the node wait for the sync of the records they depend on; a crash before the sync
//! sends nothing and forgets the records; committed blocks reach the ledger before the log
//! claims them; the leader's batches come from the mempool, which answers every submission.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use aegis_consensus::pbft::{Pbft, PbftMessage};
use aegis_consensus::{Outgoing, Role};
use aegis_engine::memory::{ManualClock, MemoryIo, MemoryLedger, MemoryLog, Notices, Outbox};
use aegis_engine::{ConsensusLog, Driver, DriverConfig, Ledger, Parts};
use aegis_mempool::{Admission, Mempool, MempoolConfig, Refusal};
use aegis_testkit::cluster::pbft_config;
use aegis_testkit::{genesis, tx, validator_key};

type MemoryDriver = Driver<Pbft, MemoryIo<Pbft>>;

fn primary() -> MemoryDriver {
    let g = genesis(4, 1, 10, 4);
    let core = Pbft::new(pbft_config(&g, 0), validator_key(0)).unwrap();
    let parts = Parts {
        transport: Outbox::default(),
        log: MemoryLog::new(),
        ledger: MemoryLedger::new(),
        clock: ManualClock::new(1_000, 0),
        observer: Notices::default(),
    };
    let mempool = Mempool::new(MempoolConfig::default(), g.chain_id.clone()).unwrap();
    let mut driver: MemoryDriver = Driver::new(core, parts, mempool, DriverConfig::default());
    driver.start().unwrap();
    driver.transport_mut().messages.clear();
    assert_eq!(driver.status().role, Role::Leader);
    driver
}

fn pre_prepares(driver: &mut MemoryDriver) -> Vec<u64> {
    driver
        .transport_mut()
        .messages
        .iter()
        .filter_map(|m| match m {
            Outgoing::All(PbftMessage::PrePrepare(pp)) => Some(pp.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pre_prepare_leaves_only_after_the_sync_of_its_records() {
    let mut driver = primary();
    let syncs = driver.log().syncs;
    let admissions = driver.submit(vec![tx(1)]).unwrap();
    assert!(matches!(admissions[..], [Admission::Accepted { .. }]));
    assert!(pre_prepares(&mut driver).is_empty(), "held until the sync");
    assert!(driver.needs_sync());
    assert!(driver.log().unsynced_bytes() > 0);
    driver.flush().unwrap();
    assert_eq!(pre_prepares(&mut driver), vec![1]);
    assert_eq!(driver.log().syncs, syncs + 1, "one sync for the step");
    assert_eq!(driver.log().durable(), Some(&driver.core().persisted()));
}

#[test]
fn a_crash_before_the_sync_sends_nothing_and_the_restart_does_not_remember_the_slot() {
    let mut driver = primary();
    driver.submit(vec![tx(1)]).unwrap();
    let (_, mut parts) = driver.into_parts();
    assert!(
        parts.transport.messages.is_empty(),
        "nothing left before the sync"
    );
    parts.log.crash();
    let restored = parts.log.load().unwrap().expect("the first snapshot");
    assert!(
        restored.slots.is_empty(),
        "the unsynced pre-prepare is gone"
    );
}

#[test]
fn one_sync_covers_every_step_since_the_last_flush() {
    let mut driver = primary();
    let syncs = driver.log().syncs;
    for nonce in 1..=3 {
        driver.submit(vec![tx(nonce)]).unwrap();
    }
    driver.flush().unwrap();
    assert_eq!(pre_prepares(&mut driver), vec![1, 2, 3]);
    assert_eq!(driver.log().syncs, syncs + 1);
}

#[test]
fn the_mempool_answers_every_submission_and_the_leader_proposes_each_transaction_once() {
    let mut driver = primary();
    let first = driver.submit(vec![tx(1), tx(2)]).unwrap();
    assert!(first.iter().all(Admission::is_accepted));
    let again = driver.submit(vec![tx(1)]).unwrap();
    assert!(matches!(
        again[..],
        [Admission::Refused(Refusal::AlreadyPending { .. })]
    ));
    driver.flush().unwrap();
    assert_eq!(pre_prepares(&mut driver), vec![1], "both in one batch");
    // Nothing new: no second batch with the same transactions.
    driver.submit(vec![]).unwrap();
    driver.clock_mut().now_ms += 10_000;
    driver.tick().unwrap();
    driver.flush().unwrap();
    let seqs = pre_prepares(&mut driver);
    assert!(
        seqs.iter().all(|seq| *seq == 1),
        "only retransmissions: {seqs:?}"
    );
    assert_eq!(driver.mempool().len(), 2);
    assert_eq!(driver.ledger().height().unwrap(), 0);
}
