//! Property tests over random sequences of admissions, batches and commits, checked against a
//! plain model (a list of pending ids in arrival order and a list of recently committed ids):
//!
//! - the pool never exceeds its bounds, and `bytes()` is the sum of the pending sizes;
//! - every input gets exactly one answer, and the answer is the one its rule calls for;
//! - admitted ids come out of batches in admission order, and taking batches removes nothing;
//! - an id is never admitted while it is in the recently committed window.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test setup and helpers fail the test loudly"
)]

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::sync::OnceLock;

use aegis_mempool::{
    Admission, Mempool, MempoolConfig, RETRY_AFTER_MAX_MS, RETRY_AFTER_MIN_MS, Refusal,
};
use aegis_types::encoding::encode;
use aegis_types::{Hash, Transaction};
use proptest::prelude::*;

use common::{CHAIN, forged, other_chain, signed};

/// Small bounds, so that random sequences hit every one of them often.
const CONFIG: MempoolConfig = MempoolConfig {
    max_transactions: 6,
    max_bytes: 1_500,
    max_transaction_bytes: 450,
    recent_committed: 5,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    /// Same body (so same id) as a valid sample, corrupted signature.
    Forged,
    WrongChain,
}

#[derive(Debug)]
struct Sample {
    tx: Transaction,
    kind: Kind,
    id: Hash,
    size: usize,
}

/// Every transaction the tests submit, signed once: sixteen bodies of sizes from 123 to 530
/// bytes (three above `max_transaction_bytes`), a forged copy of every third, and two for
/// another chain.
fn universe() -> &'static [Sample] {
    static UNIVERSE: OnceLock<Vec<Sample>> = OnceLock::new();
    UNIVERSE.get_or_init(|| {
        let sample = |tx: Transaction, kind| Sample {
            id: tx.id(),
            size: encode(&tx).len(),
            tx,
            kind,
        };
        let mut samples = Vec::new();
        for n in 0..16u64 {
            let client = u8::try_from(n % 4).unwrap() + 1;
            let payload_len = usize::try_from(n * 37 % 420).unwrap();
            samples.push(sample(signed(client, n, payload_len), Kind::Valid));
            if n % 3 == 0 {
                samples.push(sample(forged(client, n, payload_len), Kind::Forged));
            }
        }
        samples.push(sample(other_chain(1, 100), Kind::WrongChain));
        samples.push(sample(other_chain(2, 101), Kind::WrongChain));
        samples
    })
}

#[derive(Debug, Clone)]
enum Op {
    /// Submit these samples as one submission.
    Admit(Vec<usize>),
    /// Take one batch, with the pending ids picked by the mask's bits in flight.
    Batch {
        in_flight_mask: u64,
        max_transactions: usize,
        max_bytes: usize,
    },
    /// Take one batch whose byte budget is exactly the size of the oldest `count` pending.
    BatchExactFit(usize),
    /// Take batches one after another, each excluding those before, until none is left.
    DrainInBatches { max_transactions: usize },
    /// Commit the oldest pending ids.
    CommitOldest(usize),
    /// Commit these samples' ids, pending or not.
    CommitAny(Vec<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    let samples = universe().len();
    prop_oneof![
        4 => prop::collection::vec(0..samples, 0..=6).prop_map(Op::Admit),
        1 => (any::<u64>(), 0..8usize, 0..2_000usize).prop_map(
            |(in_flight_mask, max_transactions, max_bytes)| Op::Batch {
                in_flight_mask,
                max_transactions,
                max_bytes,
            }
        ),
        1 => (0..8usize).prop_map(Op::BatchExactFit),
        1 => (1..4usize).prop_map(|max_transactions| Op::DrainInBatches { max_transactions }),
        2 => (0..4usize).prop_map(Op::CommitOldest),
        1 => prop::collection::vec(0..samples, 0..4).prop_map(Op::CommitAny),
    ]
}

/// What the pool should hold.
#[derive(Debug, Default)]
struct Model {
    /// Pending (id, size), oldest first.
    pending: Vec<(Hash, usize)>,
    /// Recently committed ids, oldest first.
    recent: VecDeque<Hash>,
}

impl Model {
    fn is_pending(&self, id: &Hash) -> bool {
        self.pending.iter().any(|(pending, _)| pending == id)
    }

    fn bytes(&self) -> usize {
        self.pending.iter().map(|(_, size)| size).sum()
    }

    fn ids(&self) -> Vec<Hash> {
        self.pending.iter().map(|(id, _)| *id).collect()
    }

    fn commit(&mut self, ids: &[Hash]) -> usize {
        let before = self.pending.len();
        for id in ids {
            if !self.recent.contains(id) {
                if self.recent.len() == CONFIG.recent_committed {
                    self.recent.pop_front();
                }
                self.recent.push_back(*id);
            }
            self.pending.retain(|(pending, _)| pending != id);
        }
        before - self.pending.len()
    }

    /// The batch rule of `next_batch_excluding`, restated over the model.
    fn batch(
        &self,
        in_flight: &BTreeSet<Hash>,
        max_transactions: usize,
        max_bytes: usize,
    ) -> Vec<Hash> {
        let mut batch = Vec::new();
        let mut used = 0;
        for (id, size) in self
            .pending
            .iter()
            .filter(|(id, _)| !in_flight.contains(id))
        {
            if batch.len() >= max_transactions {
                break;
            }
            if *size > max_bytes {
                continue;
            }
            if used + size > max_bytes {
                break;
            }
            used += size;
            batch.push(*id);
        }
        batch
    }
}

fn ids(txs: &[Transaction]) -> Vec<Hash> {
    txs.iter().map(Transaction::id).collect()
}

/// Submits `indices` and checks each answer against the rule that applies to its input.
fn admit(
    pool: &mut Mempool,
    model: &mut Model,
    indices: &[usize],
    now_ms: u64,
) -> Result<(), TestCaseError> {
    let samples = universe();
    let pending_before: BTreeSet<Hash> = model.ids().into_iter().collect();
    let (count_before, bytes_before) = (model.pending.len(), model.bytes());
    // Room the pool may have held for earlier inputs of this submission: at most one place
    // per input that got past the cheap rules.
    let (mut held_count, mut held_bytes) = (0usize, 0usize);
    let inputs: Vec<Transaction> = indices.iter().map(|&i| samples[i].tx.clone()).collect();
    let results = pool.admit(inputs, now_ms);
    prop_assert_eq!(results.len(), indices.len(), "one answer per input");
    for (&index, result) in indices.iter().zip(results) {
        let sample = &samples[index];
        let id = sample.id;
        if sample.kind == Kind::WrongChain {
            prop_assert!(
                matches!(result, Admission::Refused(Refusal::Malformed(_))),
                "{result:?}"
            );
        } else if sample.size > CONFIG.max_transaction_bytes {
            prop_assert_eq!(
                result,
                Admission::Refused(Refusal::TooLarge {
                    bytes: sample.size,
                    max_bytes: CONFIG.max_transaction_bytes
                })
            );
        } else if model.recent.contains(&id) {
            prop_assert_eq!(
                result,
                Admission::Refused(Refusal::RecentlyCommitted { id })
            );
        } else if pending_before.contains(&id) {
            prop_assert_eq!(result, Admission::Refused(Refusal::AlreadyPending { id }));
        } else {
            match result {
                Admission::Accepted { id: accepted } => {
                    prop_assert_eq!(accepted, id);
                    prop_assert_eq!(sample.kind, Kind::Valid);
                    prop_assert!(!model.is_pending(&id), "admitted twice");
                    prop_assert!(!model.recent.contains(&id), "replay admitted");
                    model.pending.push((id, sample.size));
                    held_count += 1;
                    held_bytes += sample.size;
                }
                Admission::Refused(Refusal::AlreadyPending { id: pending }) => {
                    // Accepted earlier in this same submission.
                    prop_assert_eq!(pending, id);
                    prop_assert!(model.is_pending(&id));
                    held_count += 1;
                    held_bytes += sample.size;
                }
                Admission::Refused(Refusal::BadSignature { sender }) => {
                    prop_assert_eq!(sample.kind, Kind::Forged);
                    prop_assert_eq!(sender, sample.tx.body.sender);
                    held_count += 1;
                    held_bytes += sample.size;
                }
                Admission::Refused(Refusal::Full { retry_after_ms }) => {
                    prop_assert!(
                        (RETRY_AFTER_MIN_MS..=RETRY_AFTER_MAX_MS).contains(&retry_after_ms)
                    );
                    prop_assert!(
                        count_before + held_count + 1 > CONFIG.max_transactions
                            || bytes_before + held_bytes + sample.size > CONFIG.max_bytes,
                        "refused as full with room: {count_before}+{held_count} txs, \
                         {bytes_before}+{held_bytes}+{} bytes",
                        sample.size
                    );
                }
                other => prop_assert!(false, "unexpected answer {other:?} for {sample:?}"),
            }
        }
    }
    Ok(())
}

fn check_invariants(pool: &Mempool, model: &Model) -> Result<(), TestCaseError> {
    prop_assert!(pool.len() <= CONFIG.max_transactions);
    prop_assert!(pool.bytes() <= CONFIG.max_bytes);
    prop_assert!(pool.recent_committed_len() <= CONFIG.recent_committed);
    prop_assert_eq!(pool.len(), model.pending.len());
    prop_assert_eq!(pool.bytes(), model.bytes());
    let encoded: usize = pool.iter().map(|tx| encode(tx).len()).sum();
    prop_assert_eq!(pool.bytes(), encoded);
    let in_order: Vec<Hash> = pool.iter().map(Transaction::id).collect();
    prop_assert_eq!(&in_order, &model.ids());
    prop_assert_eq!(ids(&pool.next_batch(usize::MAX, usize::MAX)), model.ids());
    prop_assert_eq!(pool.recent_committed_len(), model.recent.len());
    for id in &model.recent {
        prop_assert!(pool.is_recently_committed(id));
        prop_assert!(!pool.contains(id));
    }
    for sample in universe() {
        prop_assert_eq!(pool.contains(&sample.id), model.is_pending(&sample.id));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_sequences_keep_every_rule(
        ops in prop::collection::vec((op(), 0..5_000u64), 1..40)
    ) {
        let mut pool = Mempool::new(CONFIG, CHAIN).unwrap();
        let mut model = Model::default();
        let mut now_ms = 0u64;
        for (op, step_ms) in ops {
            now_ms += step_ms;
            match op {
                Op::Admit(indices) => admit(&mut pool, &mut model, &indices, now_ms)?,
                Op::Batch { in_flight_mask, max_transactions, max_bytes } => {
                    let in_flight: BTreeSet<Hash> = model
                        .ids()
                        .into_iter()
                        .enumerate()
                        .filter(|(n, _)| in_flight_mask & (1 << (n % 64)) != 0)
                        .map(|(_, id)| id)
                        .collect();
                    let batch = pool.next_batch_excluding(&in_flight, max_transactions, max_bytes);
                    prop_assert!(batch.len() <= max_transactions);
                    prop_assert!(batch.iter().map(|tx| encode(tx).len()).sum::<usize>() <= max_bytes);
                    prop_assert!(batch.iter().all(|tx| !in_flight.contains(&tx.id())));
                    prop_assert_eq!(
                        ids(&batch),
                        model.batch(&in_flight, max_transactions, max_bytes)
                    );
                }
                Op::BatchExactFit(count) => {
                    let oldest: Vec<(Hash, usize)> =
                        model.pending.iter().take(count).copied().collect();
                    let max_bytes = oldest.iter().map(|(_, size)| size).sum();
                    let batch = pool.next_batch(usize::MAX, max_bytes);
                    let expected: Vec<Hash> = oldest.iter().map(|(id, _)| *id).collect();
                    prop_assert_eq!(ids(&batch), expected, "budget {}", max_bytes);
                }
                Op::DrainInBatches { max_transactions } => {
                    let mut in_flight = BTreeSet::new();
                    let mut taken = Vec::new();
                    for _ in 0..=CONFIG.max_transactions {
                        let batch = pool.next_batch_excluding(
                            &in_flight,
                            max_transactions,
                            CONFIG.max_transaction_bytes,
                        );
                        if batch.is_empty() {
                            break;
                        }
                        prop_assert!(batch.len() <= max_transactions);
                        in_flight.extend(ids(&batch));
                        taken.extend(ids(&batch));
                    }
                    prop_assert_eq!(taken, model.ids(), "batches in admission order");
                }
                Op::CommitOldest(count) => {
                    let committed: Vec<Hash> = model.ids().into_iter().take(count).collect();
                    let removed = pool.remove_committed(&committed, now_ms);
                    prop_assert_eq!(removed, model.commit(&committed));
                }
                Op::CommitAny(indices) => {
                    let committed: Vec<Hash> =
                        indices.iter().map(|&i| universe()[i].id).collect();
                    let removed = pool.remove_committed(&committed, now_ms);
                    prop_assert_eq!(removed, model.commit(&committed));
                }
            }
            check_invariants(&pool, &model)?;
        }
    }
}
