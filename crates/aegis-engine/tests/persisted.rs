//! The driver tells a core that asks for it which persists are durable
//! (`Protocol::ACKNOWLEDGE_PERSISTED`, `Input::Persisted`): only after the sync that made
//! them so, never for records no sync covered, and what the core does on hearing it is
//! flushed in the same call. A core that did not ask never hears of it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::fmt;

use aegis_consensus::{
    CoreStatus, DurableState, Effect, EffectOf, Env, Input, InputOf, Outgoing, Protocol,
    ReplayError, Role,
};
use aegis_engine::memory::{ManualClock, MemoryIo, MemoryLedger, MemoryLog, Notices, Outbox};
use aegis_engine::{ConsensusLog, Driver, DriverConfig, Parts};
use aegis_mempool::{Mempool, MempoolConfig};
use aegis_types::{Hash, ValidatorId};
use borsh::{BorshDeserialize, BorshSerialize};

#[derive(Clone, Debug, Default, PartialEq, BorshSerialize, BorshDeserialize)]
struct Applied(Vec<u8>);

impl DurableState for Applied {
    type Record = u8;

    fn apply(&mut self, _sequence: u64, records: &[u8]) -> Result<(), ReplayError> {
        self.0.extend_from_slice(records);
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("never")
    }
}

impl aegis_consensus::Reject for Never {
    const LABELS: &'static [(&'static str, bool)] = &[("never", false)];

    fn label(&self) -> &'static str {
        "never"
    }

    fn is_byzantine_evidence(&self) -> bool {
        false
    }
}

/// A core that persists one record per message it receives (with a message of its own and
/// `must_sync` when the message is 1, with neither otherwise), and
/// on its first acknowledgement persists once more with a message, as Raft's leader answers
/// its own durability.
#[derive(Debug, Default)]
struct Stub<const ACK: bool> {
    applied: Applied,
    sequence: u64,
    acknowledged: Vec<u64>,
}

impl<const ACK: bool> Stub<ACK> {
    fn persist(&mut self, record: u8, message: bool) -> EffectOf<Self> {
        self.sequence += 1;
        self.applied.0.push(record);
        Effect::Persist {
            sequence: self.sequence,
            records: vec![record],
            must_sync: message,
            messages: if message {
                vec![Outgoing::To(ValidatorId(1), record)]
            } else {
                Vec::new()
            },
            compact: false,
        }
    }
}

impl<const ACK: bool> Protocol for Stub<ACK> {
    type Message = u8;
    type Persisted = Applied;
    type Timer = u8;
    type Reject = Never;

    const ACKNOWLEDGE_PERSISTED: bool = ACK;

    fn step(&mut self, _env: Env, input: InputOf<Self>) -> Vec<EffectOf<Self>> {
        match input {
            Input::Message { message, .. } => {
                let record = self.applied.0.len() as u8 + 1;
                vec![self.persist(record, message == 1)]
            }
            Input::Persisted { up_to } => {
                let first = self.acknowledged.is_empty();
                self.acknowledged.push(up_to);
                if first {
                    vec![self.persist(100, true)]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    fn snapshot(&self) -> Applied {
        self.applied.clone()
    }

    fn status(&self) -> CoreStatus {
        CoreStatus {
            height: 0,
            last_hash: Hash::digest(b""),
            epoch: 0,
            leader: None,
            role: Role::Follower,
            pending: 0,
        }
    }

    fn id(&self) -> ValidatorId {
        ValidatorId(0)
    }
}

fn driver<const ACK: bool>() -> Driver<Stub<ACK>, MemoryIo<Stub<ACK>>> {
    let parts = Parts {
        transport: Outbox::default(),
        log: MemoryLog::new(),
        ledger: MemoryLedger::new(),
        clock: ManualClock::new(1_000, 0),
        observer: Notices::default(),
    };
    let mempool = Mempool::new(MempoolConfig::default(), "c").unwrap();
    let mut driver = Driver::new(Stub::default(), parts, mempool, DriverConfig::default());
    driver.start().unwrap();
    driver
}

fn persist<const ACK: bool>(driver: &mut Driver<Stub<ACK>, MemoryIo<Stub<ACK>>>, message: bool) {
    driver.deliver(ValidatorId(1), u8::from(message)).unwrap();
}

#[test]
fn a_core_hears_of_durability_only_after_the_sync_and_its_answer_is_flushed_too() {
    let mut driver = driver::<true>();
    persist(&mut driver, true);
    assert!(driver.core().acknowledged.is_empty(), "nothing synced yet");
    assert!(
        driver.transport_mut().messages.is_empty(),
        "held for the sync"
    );
    let syncs = driver.log().syncs;
    driver.flush().unwrap();
    assert_eq!(
        driver.core().acknowledged,
        vec![1, 2],
        "the sync, then the answer's sync"
    );
    assert_eq!(driver.log().syncs, syncs + 2);
    let sent: Vec<u8> = driver
        .transport_mut()
        .messages
        .drain(..)
        .map(|m| match m {
            Outgoing::To(_, m) | Outgoing::All(m) => m,
        })
        .collect();
    assert_eq!(sent, vec![1, 100], "the answer left in the same flush");
    assert_eq!(driver.log().durable(), Some(&driver.core().applied));
}

#[test]
fn records_no_sync_covered_are_not_acknowledged() {
    let mut driver = driver::<true>();
    persist(&mut driver, true);
    driver.flush().unwrap();
    assert_eq!(driver.core().acknowledged, vec![1, 2]);
    // No message waits and nothing asks for a sync: the record stays buffered.
    persist(&mut driver, false);
    driver.flush().unwrap();
    assert!(driver.log().unsynced_bytes() > 0);
    assert_eq!(
        driver.core().acknowledged,
        vec![1, 2],
        "sequence 3 is not durable"
    );
    persist(&mut driver, true);
    driver.flush().unwrap();
    assert_eq!(
        driver.core().acknowledged,
        vec![1, 2, 4],
        "one sync covered 3 and 4"
    );
}

#[test]
fn a_core_that_did_not_ask_never_hears_of_it() {
    let mut driver = driver::<false>();
    persist(&mut driver, true);
    let steps = driver.stats().steps;
    driver.flush().unwrap();
    assert!(driver.core().acknowledged.is_empty());
    assert_eq!(driver.stats().steps, steps, "no extra step");
}
