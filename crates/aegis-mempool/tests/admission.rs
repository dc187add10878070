//! One test per rule of `docs/mempool.md`: each refusal, the bounds, FIFO batches, the
//! recently committed window and the advised wait of a full pool.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test setup and helpers fail the test loudly"
)]

mod common;

use std::collections::BTreeSet;

use aegis_mempool::{
    Admission, ConfigError, Mempool, MempoolConfig, RETRY_AFTER_DEFAULT_MS, RETRY_AFTER_MAX_MS,
    RETRY_AFTER_MIN_MS, Refusal, TX_FIXED_ENCODED_BYTES, encoded_len,
};
use aegis_types::encoding::encode;
use aegis_types::tx::MAX_CHAIN_ID_BYTES;
use aegis_types::{Hash, MAX_TX_PAYLOAD_BYTES, Transaction, TxError};
use common::{CHAIN, client, forged, other_chain, signed};

/// Encoded size of a transaction of `common` with this payload length.
fn size(payload_len: usize) -> usize {
    TX_FIXED_ENCODED_BYTES + CHAIN.len() + payload_len
}

fn pool(config: MempoolConfig) -> Mempool {
    Mempool::new(config, CHAIN).unwrap()
}

fn default_pool() -> Mempool {
    pool(MempoolConfig::default())
}

fn accepted(tx: &Transaction) -> Admission {
    Admission::Accepted { id: tx.id() }
}

fn ids(txs: &[Transaction]) -> Vec<Hash> {
    txs.iter().map(Transaction::id).collect()
}

// ---------------------------------------------------------------- acceptance

#[test]
fn a_valid_transaction_is_accepted_and_visible() {
    let mut pool = default_pool();
    let tx = signed(1, 1, 100);
    assert_eq!(pool.admit_one(tx.clone(), 0), accepted(&tx));
    assert!(pool.contains(&tx.id()));
    assert_eq!(pool.get(&tx.id()), Some(&tx));
    assert_eq!(pool.len(), 1);
    assert!(!pool.is_empty());
    assert_eq!(pool.bytes(), encode(&tx).len());
    assert_eq!(pool.bytes(), size(100));
    assert_eq!(encoded_len(&tx), size(100));
}

#[test]
fn a_new_pool_refuses_an_invalid_config() {
    let config = MempoolConfig {
        max_transactions: 0,
        ..MempoolConfig::default()
    };
    assert_eq!(
        Mempool::new(config, CHAIN).unwrap_err(),
        ConfigError::Zero {
            field: "max_transactions"
        }
    );
}

// ---------------------------------------------------------------- rule 1: structure

#[test]
fn a_wrong_version_is_malformed() {
    let mut body = common::body(1, 1, 8);
    body.version = 2;
    let tx = client(1).sign_transaction(body);
    assert_eq!(
        default_pool().admit_one(tx, 0),
        Admission::Refused(Refusal::Malformed(TxError::Version(2)))
    );
}

#[test]
fn another_chain_is_malformed() {
    let tx = other_chain(1, 1);
    assert_eq!(
        default_pool().admit_one(tx, 0),
        Admission::Refused(Refusal::Malformed(TxError::WrongChain {
            expected: CHAIN.to_owned(),
            found: "another-chain".to_owned()
        }))
    );
}

#[test]
fn a_chain_id_too_long_is_malformed() {
    let mut body = common::body(1, 1, 8);
    body.chain_id = "c".repeat(MAX_CHAIN_ID_BYTES + 1);
    let tx = client(1).sign_transaction(body);
    assert_eq!(
        default_pool().admit_one(tx, 0),
        Admission::Refused(Refusal::Malformed(TxError::ChainIdTooLong {
            len: MAX_CHAIN_ID_BYTES + 1,
            max: MAX_CHAIN_ID_BYTES
        }))
    );
}

#[test]
fn a_payload_above_the_protocol_limit_is_malformed() {
    let tx = signed(1, 1, MAX_TX_PAYLOAD_BYTES + 1);
    assert_eq!(
        default_pool().admit_one(tx, 0),
        Admission::Refused(Refusal::Malformed(TxError::PayloadTooLarge {
            len: MAX_TX_PAYLOAD_BYTES + 1,
            max: MAX_TX_PAYLOAD_BYTES
        }))
    );
}

#[test]
fn the_largest_valid_transaction_fits_the_default_bound() {
    let mut body = common::body(1, 1, MAX_TX_PAYLOAD_BYTES);
    body.chain_id = "c".repeat(MAX_CHAIN_ID_BYTES);
    let tx = client(1).sign_transaction(body.clone());
    let mut pool = Mempool::new(MempoolConfig::default(), body.chain_id).unwrap();
    assert_eq!(pool.admit_one(tx.clone(), 0), accepted(&tx));
}

// ---------------------------------------------------------------- rule 2: size

#[test]
fn a_transaction_above_the_configured_size_is_too_large() {
    let mut pool = pool(MempoolConfig {
        max_transaction_bytes: size(100),
        ..MempoolConfig::default()
    });
    let fits = signed(1, 1, 100);
    assert_eq!(pool.admit_one(fits.clone(), 0), accepted(&fits));
    assert_eq!(
        pool.admit_one(signed(1, 2, 101), 0),
        Admission::Refused(Refusal::TooLarge {
            bytes: size(101),
            max_bytes: size(100)
        })
    );
}

// ---------------------------------------------------------------- rule 3: replays

#[test]
fn a_committed_transaction_resubmitted_is_refused() {
    let mut pool = default_pool();
    let tx = signed(1, 1, 8);
    assert!(pool.admit_one(tx.clone(), 0).is_accepted());
    assert_eq!(pool.remove_committed(&[tx.id()], 100), 1);
    assert!(!pool.contains(&tx.id()));
    assert!(pool.is_recently_committed(&tx.id()));
    assert_eq!(
        pool.admit_one(tx.clone(), 200),
        Admission::Refused(Refusal::RecentlyCommitted { id: tx.id() })
    );
}

#[test]
fn an_id_committed_elsewhere_is_refused_too() {
    // Committed in a block another validator proposed: never pending here.
    let mut pool = default_pool();
    let tx = signed(1, 1, 8);
    assert_eq!(pool.remove_committed(&[tx.id()], 0), 0);
    assert_eq!(
        pool.admit_one(tx.clone(), 1),
        Admission::Refused(Refusal::RecentlyCommitted { id: tx.id() })
    );
}

#[test]
fn the_recent_window_forgets_the_oldest_first() {
    let mut pool = pool(MempoolConfig {
        recent_committed: 3,
        ..MempoolConfig::default()
    });
    let txs: Vec<Transaction> = (1..=4).map(|nonce| signed(1, nonce, 8)).collect();
    for (n, tx) in txs.iter().enumerate() {
        pool.remove_committed(&[tx.id()], n as u64);
    }
    assert_eq!(pool.recent_committed_len(), 3);
    // The first id was forgotten: it can be admitted again (the ledger, not this window, is
    // the final word on replays that old).
    assert_eq!(pool.admit_one(txs[0].clone(), 10), accepted(&txs[0]));
    for tx in &txs[1..] {
        assert_eq!(
            pool.admit_one(tx.clone(), 10),
            Admission::Refused(Refusal::RecentlyCommitted { id: tx.id() })
        );
    }
}

// ---------------------------------------------------------------- rule 4, 5, 8: duplicates

#[test]
fn a_pending_transaction_resubmitted_is_already_pending() {
    let mut pool = default_pool();
    let tx = signed(1, 1, 8);
    assert!(pool.admit_one(tx.clone(), 0).is_accepted());
    assert_eq!(
        pool.admit_one(tx.clone(), 1),
        Admission::Refused(Refusal::AlreadyPending { id: tx.id() })
    );
    assert_eq!(pool.len(), 1);
}

#[test]
fn a_duplicate_inside_one_submission_is_already_pending() {
    let mut pool = default_pool();
    let tx = signed(1, 1, 8);
    let other = signed(2, 1, 8);
    let results = pool.admit(vec![tx.clone(), other.clone(), tx.clone()], 0);
    assert_eq!(
        results,
        vec![
            accepted(&tx),
            accepted(&other),
            Admission::Refused(Refusal::AlreadyPending { id: tx.id() })
        ]
    );
    assert_eq!(pool.len(), 2);
}

#[test]
fn a_forged_copy_does_not_shadow_a_genuine_one_in_the_same_submission() {
    let mut pool = default_pool();
    let bad = forged(1, 1, 8);
    let good = signed(1, 1, 8);
    assert_eq!(bad.id(), good.id());
    let results = pool.admit(vec![bad.clone(), good.clone(), bad.clone()], 0);
    assert_eq!(
        results,
        vec![
            Admission::Refused(Refusal::BadSignature {
                sender: bad.body.sender
            }),
            accepted(&good),
            // An exact copy of a refused input shares its verdict.
            Admission::Refused(Refusal::BadSignature {
                sender: bad.body.sender
            }),
        ]
    );
    assert_eq!(pool.get(&good.id()), Some(&good));
}

#[test]
fn a_pending_id_is_already_pending_whatever_its_signature() {
    // The id covers the body only; the pending copy was verified, so a forged resubmission
    // changes nothing and costs no verification.
    let mut pool = default_pool();
    let good = signed(1, 1, 8);
    assert!(pool.admit_one(good.clone(), 0).is_accepted());
    assert_eq!(
        pool.admit_one(forged(1, 1, 8), 1),
        Admission::Refused(Refusal::AlreadyPending { id: good.id() })
    );
    assert_eq!(pool.get(&good.id()), Some(&good));
}

// ---------------------------------------------------------------- rule 7: signatures

#[test]
fn a_bad_signature_is_refused_and_the_rest_of_the_batch_admitted() {
    let mut pool = default_pool();
    let txs = vec![
        signed(1, 1, 8),
        forged(2, 1, 8),
        signed(3, 1, 8),
        forged(4, 1, 8),
    ];
    let results = pool.admit(txs.clone(), 0);
    assert_eq!(
        results,
        vec![
            accepted(&txs[0]),
            Admission::Refused(Refusal::BadSignature {
                sender: client(2).public_key()
            }),
            accepted(&txs[2]),
            Admission::Refused(Refusal::BadSignature {
                sender: client(4).public_key()
            }),
        ]
    );
    assert_eq!(pool.len(), 2);
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let mut tx = signed(1, 1, 8);
    tx.signature = client(2).sign(&tx.body.signing_bytes());
    assert_eq!(
        default_pool().admit_one(tx.clone(), 0),
        Admission::Refused(Refusal::BadSignature {
            sender: tx.body.sender
        })
    );
}

// ---------------------------------------------------------------- rule 6: capacity

#[test]
fn the_pool_is_bounded_by_count() {
    let mut pool = pool(MempoolConfig {
        max_transactions: 3,
        ..MempoolConfig::default()
    });
    let txs: Vec<Transaction> = (1..=4).map(|nonce| signed(1, nonce, 8)).collect();
    let results = pool.admit(txs.clone(), 0);
    assert_eq!(
        results[..3],
        [accepted(&txs[0]), accepted(&txs[1]), accepted(&txs[2])]
    );
    assert_eq!(
        results[3],
        Admission::Refused(Refusal::Full {
            retry_after_ms: RETRY_AFTER_DEFAULT_MS
        })
    );
    assert_eq!(pool.len(), 3);
    // Room again once one is committed.
    pool.remove_committed(&[txs[0].id()], 1);
    assert_eq!(pool.admit_one(txs[3].clone(), 2), accepted(&txs[3]));
}

#[test]
fn the_pool_is_bounded_by_bytes() {
    let mut pool = pool(MempoolConfig {
        max_bytes: size(100) * 2 + size(50),
        max_transaction_bytes: size(100),
        ..MempoolConfig::default()
    });
    let big = [signed(1, 1, 100), signed(1, 2, 100), signed(1, 3, 100)];
    let small = signed(1, 4, 50);
    let results = pool.admit(vec![big[0].clone(), big[1].clone(), big[2].clone()], 0);
    assert!(results[0].is_accepted() && results[1].is_accepted());
    assert!(matches!(
        results[2],
        Admission::Refused(Refusal::Full { .. })
    ));
    // A smaller one still fits exactly.
    assert_eq!(pool.admit_one(small.clone(), 0), accepted(&small));
    assert_eq!(pool.bytes(), pool.config().max_bytes);
}

#[test]
fn a_full_pool_refuses_before_verifying_signatures() {
    let mut pool = pool(MempoolConfig {
        max_transactions: 1,
        ..MempoolConfig::default()
    });
    assert!(pool.admit_one(signed(1, 1, 8), 0).is_accepted());
    assert!(matches!(
        pool.admit_one(forged(2, 1, 8), 0),
        Admission::Refused(Refusal::Full { .. })
    ));
}

#[test]
fn unverified_inputs_hold_room_and_exact_copies_do_not() {
    // A forged input takes room while its signature is unchecked, so the input behind it is
    // refused as full even though, in the end, only one was accepted: capacity is judged
    // before verification so that a full pool costs no signature work.
    let mut pool = pool(MempoolConfig {
        max_transactions: 2,
        ..MempoolConfig::default()
    });
    let good = signed(1, 1, 8);
    let results = pool.admit(
        vec![good.clone(), good.clone(), forged(2, 1, 8), signed(3, 1, 8)],
        0,
    );
    assert_eq!(results[0], accepted(&good));
    // The exact copy holds no room.
    assert_eq!(
        results[1],
        Admission::Refused(Refusal::AlreadyPending { id: good.id() })
    );
    assert!(matches!(
        results[2],
        Admission::Refused(Refusal::BadSignature { .. })
    ));
    assert!(matches!(
        results[3],
        Admission::Refused(Refusal::Full { .. })
    ));
    assert_eq!(pool.len(), 1);
}

// ---------------------------------------------------------------- retry-after

fn full_pool_of_two() -> (Mempool, Vec<Transaction>) {
    let mut pool = pool(MempoolConfig {
        max_transactions: 2,
        ..MempoolConfig::default()
    });
    let txs: Vec<Transaction> = (1..=6).map(|nonce| signed(1, nonce, 8)).collect();
    let results = pool.admit(txs[..2].to_vec(), 0);
    assert!(results.iter().all(Admission::is_accepted));
    (pool, txs)
}

fn retry_after(admission: Admission) -> u64 {
    match admission {
        Admission::Refused(Refusal::Full { retry_after_ms }) => retry_after_ms,
        other => panic!("expected Full, got {other:?}"),
    }
}

#[test]
fn retry_after_is_the_default_before_any_drain_is_observed() {
    let (mut pool, txs) = full_pool_of_two();
    assert_eq!(
        retry_after(pool.admit_one(txs[2].clone(), 0)),
        RETRY_AFTER_DEFAULT_MS
    );
}

#[test]
fn retry_after_follows_the_observed_drain_rate() {
    let (mut pool, txs) = full_pool_of_two();
    // Start mark at t = 0 (a block of someone else's transactions), then one of ours drains
    // by t = 4 s: a rate of one transaction per 4 s.
    pool.remove_committed(&[signed(9, 1, 8).id()], 0);
    pool.remove_committed(&[txs[0].id()], 4_000);
    assert!(pool.admit_one(txs[2].clone(), 4_000).is_accepted());
    // Full again; one more must drain: 4 s.
    assert_eq!(retry_after(pool.admit_one(txs[3].clone(), 4_000)), 4_000);
    // Each refused input of a later submission asks for one place beyond the full pool
    // (refused inputs hold no room), and by t = 8 s the observed rate has halved: 8 s.
    let results = pool.admit(txs[3..6].to_vec(), 8_000);
    for result in results {
        assert_eq!(retry_after(result), 8_000);
    }
}

#[test]
fn retry_after_is_clamped_to_its_bounds() {
    let (mut pool, txs) = full_pool_of_two();
    // A very fast drain: the minimum.
    pool.remove_committed(&[], 0);
    pool.remove_committed(&[txs[0].id()], 1);
    assert!(pool.admit_one(txs[2].clone(), 1).is_accepted());
    assert_eq!(
        retry_after(pool.admit_one(txs[3].clone(), 1)),
        RETRY_AFTER_MIN_MS
    );
    // Commits that drain nothing from this pool for a while: the maximum.
    let (mut stalled, txs) = full_pool_of_two();
    let many: Vec<Hash> = (0..20u64).map(|n| signed(9, n, 0).id()).collect();
    stalled.remove_committed(&many[..10], 0);
    stalled.remove_committed(&many[10..20], 10_000);
    assert_eq!(
        retry_after(stalled.admit_one(txs[2].clone(), 10_000)),
        RETRY_AFTER_MAX_MS
    );
}

// ---------------------------------------------------------------- batches for the proposer

#[test]
fn batches_come_in_arrival_order_and_stay_pending() {
    let mut pool = default_pool();
    let txs: Vec<Transaction> = (1..=5).map(|n| signed(n as u8, 10 - n, 8)).collect();
    // Two submissions; arrival order is submission order, then input order.
    let _ = pool.admit(txs[..2].to_vec(), 0);
    let _ = pool.admit(txs[2..].to_vec(), 1);
    assert_eq!(ids(&pool.next_batch(10, usize::MAX)), ids(&txs));
    assert_eq!(ids(&pool.next_batch(3, usize::MAX)), ids(&txs[..3]));
    assert_eq!(pool.len(), 5, "taking a batch removes nothing");
    assert_eq!(
        pool.iter().map(Transaction::id).collect::<Vec<_>>(),
        ids(&txs)
    );
    pool.remove_committed(&ids(&txs[..2]), 2);
    assert_eq!(ids(&pool.next_batch(10, usize::MAX)), ids(&txs[2..]));
}

#[test]
fn a_batch_skips_what_is_in_flight() {
    let mut pool = default_pool();
    let txs: Vec<Transaction> = (1..=5).map(|nonce| signed(1, nonce, 8)).collect();
    let _ = pool.admit(txs.clone(), 0);
    let first = pool.next_batch(2, usize::MAX);
    assert_eq!(ids(&first), ids(&txs[..2]));
    let mut in_flight: BTreeSet<Hash> = ids(&first).into_iter().collect();
    let second = pool.next_batch_excluding(&in_flight, 2, usize::MAX);
    assert_eq!(ids(&second), ids(&txs[2..4]));
    in_flight.extend(ids(&second));
    // A view change abandons the first proposal: the caller drops it from its in-flight set.
    for id in ids(&first) {
        in_flight.remove(&id);
    }
    assert_eq!(
        ids(&pool.next_batch_excluding(&in_flight, 10, usize::MAX)),
        vec![txs[0].id(), txs[1].id(), txs[4].id()]
    );
}

#[test]
fn a_batch_stops_at_the_first_transaction_that_does_not_fit() {
    let mut pool = default_pool();
    let txs = vec![signed(1, 1, 100), signed(1, 2, 200), signed(1, 3, 10)];
    let _ = pool.admit(txs.clone(), 0);
    // Room for the first and the third, not the second: the batch stops, keeping FIFO order.
    let batch = pool.next_batch(10, size(100) + size(10) + 50);
    assert_eq!(ids(&batch), ids(&txs[..1]));
    assert_eq!(
        pool.next_batch(10, size(100) - 1).len(),
        1,
        "passes over the first two"
    );
    assert!(pool.next_batch(0, usize::MAX).is_empty());
    assert!(pool.next_batch(10, 0).is_empty());
}

#[test]
fn a_transaction_larger_than_any_batch_does_not_block_the_rest() {
    let mut pool = default_pool();
    let txs = vec![signed(1, 1, 500), signed(1, 2, 10), signed(1, 3, 10)];
    let _ = pool.admit(txs.clone(), 0);
    let batch = pool.next_batch(10, size(400));
    assert_eq!(ids(&batch), ids(&txs[1..]));
}

#[test]
fn bytes_are_given_back_on_commit() {
    let mut pool = default_pool();
    let txs = vec![signed(1, 1, 100), signed(1, 2, 200)];
    let _ = pool.admit(txs.clone(), 0);
    assert_eq!(pool.bytes(), size(100) + size(200));
    // An unknown id and a repeated id change nothing more.
    let removed = pool.remove_committed(&[txs[1].id(), signed(2, 1, 8).id(), txs[1].id()], 1);
    assert_eq!(removed, 1);
    assert_eq!(pool.bytes(), size(100));
    pool.remove_committed(&[txs[0].id()], 2);
    assert_eq!((pool.len(), pool.bytes()), (0, 0));
}

// ---------------------------------------------------------------- one answer per input

#[test]
fn every_input_gets_exactly_one_answer_in_order() {
    let mut pool = pool(MempoolConfig {
        max_transactions: 3,
        max_transaction_bytes: size(200),
        ..MempoolConfig::default()
    });
    let committed = signed(5, 1, 8);
    pool.remove_committed(&[committed.id()], 0);
    let pending = signed(6, 1, 8);
    assert!(pool.admit_one(pending.clone(), 0).is_accepted());
    let good = signed(1, 1, 8);
    let inputs = vec![
        other_chain(1, 1),
        signed(1, 2, 201),
        committed.clone(),
        pending.clone(),
        forged(2, 1, 8),
        good.clone(),
        good.clone(),
        signed(3, 1, 8),
    ];
    let results = pool.admit(inputs.clone(), 1);
    assert_eq!(results.len(), inputs.len());
    assert!(matches!(
        results[0],
        Admission::Refused(Refusal::Malformed(TxError::WrongChain { .. }))
    ));
    assert!(matches!(
        results[1],
        Admission::Refused(Refusal::TooLarge { .. })
    ));
    assert_eq!(
        results[2],
        Admission::Refused(Refusal::RecentlyCommitted { id: committed.id() })
    );
    assert_eq!(
        results[3],
        Admission::Refused(Refusal::AlreadyPending { id: pending.id() })
    );
    assert!(matches!(
        results[4],
        Admission::Refused(Refusal::BadSignature { .. })
    ));
    assert_eq!(results[5], accepted(&good));
    assert_eq!(
        results[6],
        Admission::Refused(Refusal::AlreadyPending { id: good.id() })
    );
    // The forged input held the last free place while unverified.
    assert!(matches!(
        results[7],
        Admission::Refused(Refusal::Full { .. })
    ));
    assert!(pool.admit(Vec::new(), 2).is_empty());
}

#[test]
fn debug_shows_counts_not_transactions() {
    let mut pool = default_pool();
    let _ = pool.admit_one(signed(1, 1, 1_000), 0);
    let text = format!("{pool:?}");
    assert!(text.contains("len: 1"), "{text}");
    assert!(text.len() < 1_000, "{text}");
}

// ---------------------------------------------------------------- waiting (re-sent to the leader)

#[test]
fn waiting_returns_old_enough_transactions_in_rounds_from_a_cursor() {
    let mut pool = default_pool();
    let txs: Vec<Transaction> = (1..=5).map(|n| signed(1, n, 10)).collect();
    // Three admitted at 1000 ms, two at 5000 ms.
    for tx in &txs[..3] {
        assert_eq!(pool.admit_one(tx.clone(), 1_000), accepted(tx));
    }
    for tx in &txs[3..] {
        assert_eq!(pool.admit_one(tx.clone(), 5_000), accepted(tx));
    }
    // At 3000 ms with a 2000 ms age: the first three, two per call.
    let (first, next) = pool.waiting(0, 3_000, 2_000, 2, usize::MAX);
    assert_eq!(ids(&first), ids(&txs[..2]));
    let next = next.unwrap();
    let (second, end) = pool.waiting(next, 3_000, 2_000, 2, usize::MAX);
    assert_eq!(ids(&second), ids(&txs[2..3]));
    assert_eq!(
        end, None,
        "the round ends at the first transaction too young"
    );
    // Committed ones are gone from later rounds; later, the young ones are old enough.
    pool.remove_committed(&ids(&txs[..2]), 6_000);
    let (all, end) = pool.waiting(0, 7_000, 2_000, 10, usize::MAX);
    assert_eq!(ids(&all), ids(&txs[2..]));
    assert_eq!(end, None);
    // The byte bound stops a round too, but never before the first transaction.
    let (one, next) = pool.waiting(0, 7_000, 2_000, 10, 1);
    assert_eq!(ids(&one), ids(&txs[2..3]));
    assert!(next.is_some());
}
