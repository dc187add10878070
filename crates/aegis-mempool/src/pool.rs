//! The pool: pending transactions in arrival order, their admission, batches for the
//! proposer, and removal on commit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aegis_crypto::BatchVerifier;
use aegis_types::{Hash, PublicKey, Transaction, TxError};

use crate::config::{ConfigError, MempoolConfig};
use crate::drain::DrainMeter;
use crate::recent::RecentIds;
use crate::size::encoded_len;

/// The answer to one submitted transaction. [`Mempool::admit`] gives exactly one per input,
/// in input order.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The transaction is pending under this id.
    Accepted { id: Hash },
    /// The transaction was not taken, for this reason.
    Refused(Refusal),
}

impl Admission {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Admission::Accepted { .. })
    }
}

/// Why a transaction was not admitted. Each variant is one rule of `docs/mempool.md`; the API
/// maps them to statuses (suggested: `Malformed` 400, or 422 for a wrong chain or version,
/// or 413 for `TxError::PayloadTooLarge`; `TooLarge` 413; `BadSignature` 422;
/// `AlreadyPending` and `RecentlyCommitted` 409 with the id; `Full` 503 with `Retry-After`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A structural rule is broken: version, chain id or payload size.
    #[error("malformed transaction: {0}")]
    Malformed(TxError),
    /// The canonical encoding is larger than `max_transaction_bytes`.
    #[error("transaction is {bytes} bytes encoded, above the limit of {max_bytes} bytes")]
    TooLarge { bytes: usize, max_bytes: usize },
    /// The signature does not verify under the sender's key (or the key is no valid point).
    #[error("signature does not verify under the sender's key {sender}")]
    BadSignature { sender: PublicKey },
    /// A transaction with this id is pending already (or was accepted earlier in the same
    /// submission).
    #[error("transaction {id} is already pending")]
    AlreadyPending { id: Hash },
    /// A transaction with this id was committed recently; resubmitting it is a replay.
    #[error("transaction {id} was committed recently")]
    RecentlyCommitted { id: Hash },
    /// The pool has no room for the transaction now; this is the advised wait.
    #[error("mempool is full, retry after {retry_after_ms} ms")]
    Full { retry_after_ms: u64 },
}

/// One pending transaction with what the pool keeps about it.
#[derive(Debug, Clone)]
struct Pending {
    transaction: Transaction,
    size_bytes: usize,
    arrival: u64,
    /// When it was admitted (the caller's clock), for [`Mempool::waiting`].
    admitted_ms: u64,
}

/// The bounded pool of pending transactions. See the crate documentation for who calls what.
#[derive(Clone)]
pub struct Mempool {
    config: MempoolConfig,
    chain_id: String,
    /// Pending transactions by id.
    pending: BTreeMap<Hash, Pending>,
    /// Ids of the pending transactions by arrival number: iteration is first-in first-out.
    arrivals: BTreeMap<u64, Hash>,
    /// The arrival number the next admitted transaction gets.
    next_arrival: u64,
    /// Sum of the pending transactions' encoded sizes.
    bytes: usize,
    recent: RecentIds,
    drain: DrainMeter,
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pending transactions themselves would drown any log line; counts say enough.
        f.debug_struct("Mempool")
            .field("config", &self.config)
            .field("chain_id", &self.chain_id)
            .field("len", &self.pending.len())
            .field("bytes", &self.bytes)
            .field("next_arrival", &self.next_arrival)
            .field("recent_committed", &self.recent.len())
            .field("drain", &self.drain)
            .finish()
    }
}

/// What the first pass of [`Mempool::admit`] decided about one input.
#[derive(Debug)]
enum Screened {
    /// Refused without signature verification.
    Refused(Refusal),
    /// Passed the cheap rules; `check` is its signature's index in the batch verifier.
    Candidate {
        id: Hash,
        size_bytes: usize,
        check: usize,
    },
}

/// The first pass's running state over one submission.
#[derive(Debug, Default)]
struct Screening {
    verifier: BatchVerifier,
    /// Queued checks by id and signature: an identical copy shares the first one's check.
    checks: BTreeMap<(Hash, [u8; 64]), usize>,
    /// Room held for the candidates so far, so that all of them fit if all verify.
    reserved_transactions: usize,
    reserved_bytes: usize,
}

impl Mempool {
    /// An empty pool for the chain `chain_id`, once `config` validates.
    pub fn new(config: MempoolConfig, chain_id: impl Into<String>) -> Result<Mempool, ConfigError> {
        config.validate()?;
        Ok(Mempool {
            config,
            chain_id: chain_id.into(),
            pending: BTreeMap::new(),
            arrivals: BTreeMap::new(),
            next_arrival: 0,
            bytes: 0,
            recent: RecentIds::new(config.recent_committed),
            drain: DrainMeter::new(),
        })
    }

    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// Number of pending transactions (at most `max_transactions`).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sum of the pending transactions' canonical encoded sizes (at most `max_bytes`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of committed ids remembered (at most `recent_committed`).
    pub fn recent_committed_len(&self) -> usize {
        self.recent.len()
    }

    /// Whether `id` is pending: admitted, hence structurally checked and signature-verified,
    /// and not yet committed.
    pub fn contains(&self, id: &Hash) -> bool {
        self.pending.contains_key(id)
    }

    /// The pending transaction with this id.
    pub fn get(&self, id: &Hash) -> Option<&Transaction> {
        self.pending.get(id).map(|pending| &pending.transaction)
    }

    /// Whether `id` is in the window of recently committed ids (a resubmission is refused).
    pub fn is_recently_committed(&self, id: &Hash) -> bool {
        self.recent.contains(id)
    }

    /// The pending transactions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Transaction> {
        self.arrivals
            .values()
            .filter_map(|id| self.pending.get(id))
            .map(|pending| &pending.transaction)
    }

    /// Admits one transaction: [`Mempool::admit`] of a single input.
    #[must_use = "the submitted transaction gets an answer the client must see"]
    pub fn admit_one(&mut self, transaction: Transaction, now_ms: u64) -> Admission {
        match <[Admission; 1]>::try_from(self.admit(vec![transaction], now_ms)) {
            Ok([result]) => result,
            Err(results) => wrong_result_count(results.len()),
        }
    }

    /// Admits a submission of transactions, returning one [`Admission`] per input in input
    /// order. The rules, checked in this order (the first broken one is the answer):
    ///
    /// 1. structure (`check_structure` with the pool's chain id) → [`Refusal::Malformed`];
    /// 2. encoded size `<= max_transaction_bytes` → [`Refusal::TooLarge`];
    /// 3. id not in the recently committed window → [`Refusal::RecentlyCommitted`];
    /// 4. id not pending → [`Refusal::AlreadyPending`];
    /// 5. an exact copy (same id and signature) of an earlier input of this submission shares
    ///    that input's signature check and, if it verifies, is [`Refusal::AlreadyPending`];
    /// 6. room in the pool, counting room held for the earlier inputs still in the running
    ///    → [`Refusal::Full`] with an advised wait;
    /// 7. signature, all of the submission's verified in one batch → [`Refusal::BadSignature`];
    /// 8. id not accepted earlier in this submission → [`Refusal::AlreadyPending`].
    ///
    /// Rules 1-6 need no cryptography, so a full pool or a replay costs no signature work,
    /// and the work of one submission is bounded by the pool's free room.
    #[must_use = "every submitted transaction gets an answer the client must see"]
    pub fn admit(&mut self, transactions: Vec<Transaction>, now_ms: u64) -> Vec<Admission> {
        let mut screening = Screening::default();
        let screened: Vec<Screened> = transactions
            .iter()
            .map(|transaction| self.screen(transaction, &mut screening, now_ms))
            .collect();
        let checks = screening.verifier.len();
        let mut bad = vec![false; checks];
        if let Err(indices) = screening.verifier.verify() {
            for index in indices {
                assert!(
                    index < checks,
                    "batch verifier named check {index} of {checks}"
                );
                bad[index] = true;
            }
        }
        let results: Vec<Admission> = transactions
            .into_iter()
            .zip(screened)
            .map(|(transaction, screened)| match screened {
                Screened::Refused(refusal) => Admission::Refused(refusal),
                Screened::Candidate {
                    id,
                    size_bytes,
                    check,
                } => {
                    if bad[check] {
                        Admission::Refused(Refusal::BadSignature {
                            sender: transaction.body.sender,
                        })
                    } else if self.pending.contains_key(&id) {
                        Admission::Refused(Refusal::AlreadyPending { id })
                    } else {
                        self.insert(id, transaction, size_bytes, now_ms);
                        Admission::Accepted { id }
                    }
                }
            })
            .collect();
        assert!(self.pending.len() <= self.config.max_transactions);
        assert!(self.bytes <= self.config.max_bytes);
        results
    }

    /// Rules 1-6 of [`Mempool::admit`] for one input; queues its signature if it passes.
    fn screen(
        &self,
        transaction: &Transaction,
        screening: &mut Screening,
        now_ms: u64,
    ) -> Screened {
        if let Err(error) = transaction.check_structure(&self.chain_id) {
            return Screened::Refused(Refusal::Malformed(error));
        }
        let size_bytes = encoded_len(transaction);
        if size_bytes > self.config.max_transaction_bytes {
            return Screened::Refused(Refusal::TooLarge {
                bytes: size_bytes,
                max_bytes: self.config.max_transaction_bytes,
            });
        }
        // The id is the hash of the signing bytes; computing them once serves both.
        let signing_bytes = transaction.body.signing_bytes();
        let id = Hash::digest(&signing_bytes);
        if self.recent.contains(&id) {
            return Screened::Refused(Refusal::RecentlyCommitted { id });
        }
        if self.pending.contains_key(&id) {
            return Screened::Refused(Refusal::AlreadyPending { id });
        }
        let key = (id, transaction.signature.0);
        if let Some(&check) = screening.checks.get(&key) {
            return Screened::Candidate {
                id,
                size_bytes,
                check,
            };
        }
        let transactions_after = self
            .pending
            .len()
            .saturating_add(screening.reserved_transactions)
            .saturating_add(1);
        let bytes_after = self
            .bytes
            .saturating_add(screening.reserved_bytes)
            .saturating_add(size_bytes);
        if transactions_after > self.config.max_transactions || bytes_after > self.config.max_bytes
        {
            let excess_transactions =
                transactions_after.saturating_sub(self.config.max_transactions);
            let excess_bytes = bytes_after.saturating_sub(self.config.max_bytes);
            let retry_after_ms = self.drain.retry_after_ms(
                now_ms,
                u64::try_from(excess_transactions).unwrap_or(u64::MAX),
                u64::try_from(excess_bytes).unwrap_or(u64::MAX),
            );
            return Screened::Refused(Refusal::Full { retry_after_ms });
        }
        let check = screening.verifier.len();
        screening.verifier.queue(
            transaction.body.sender,
            signing_bytes,
            transaction.signature,
        );
        screening.checks.insert(key, check);
        screening.reserved_transactions += 1;
        screening.reserved_bytes += size_bytes;
        Screened::Candidate {
            id,
            size_bytes,
            check,
        }
    }

    fn insert(&mut self, id: Hash, transaction: Transaction, size_bytes: usize, now_ms: u64) {
        // Room was reserved for every candidate in the first pass.
        assert!(self.pending.len() < self.config.max_transactions);
        assert!(self.bytes + size_bytes <= self.config.max_bytes);
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        let previous = self.pending.insert(
            id,
            Pending {
                transaction,
                size_bytes,
                arrival,
                admitted_ms: now_ms,
            },
        );
        assert!(previous.is_none(), "transaction {id} admitted twice");
        self.arrivals.insert(arrival, id);
        self.bytes += size_bytes;
        assert_eq!(self.pending.len(), self.arrivals.len());
    }

    /// The oldest pending transactions, in arrival order, at most `max_transactions` of them
    /// and at most `max_bytes` encoded. Same as [`Mempool::next_batch_excluding`] with nothing
    /// in flight.
    pub fn next_batch(&self, max_transactions: usize, max_bytes: usize) -> Vec<Transaction> {
        self.next_batch_excluding(&BTreeSet::new(), max_transactions, max_bytes)
    }

    /// The batch a proposer orders next: pending transactions in arrival order, skipping the
    /// ids in `in_flight` (those in the proposer's blocks not yet committed), at most
    /// `max_transactions` of them and at most `max_bytes` encoded in total.
    ///
    /// The batch stops at the first transaction that does not fit in the bytes left, so
    /// batches taken one after another (each excluding the ones before) come out in arrival
    /// order. A transaction larger than the whole `max_bytes` is passed over instead, since no
    /// batch of that size could carry it and it must not block those behind it.
    ///
    /// Nothing is removed: transactions leave the pool when [`Mempool::remove_committed`]
    /// reports them. The caller owns the in-flight set, so nothing here needs undoing when a
    /// proposal is abandoned on a view change.
    pub fn next_batch_excluding(
        &self,
        in_flight: &BTreeSet<Hash>,
        max_transactions: usize,
        max_bytes: usize,
    ) -> Vec<Transaction> {
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        for (id, pending) in self
            .arrivals
            .values()
            .filter(|id| !in_flight.contains(*id))
            .filter_map(|id| self.pending.get(id).map(|pending| (id, pending)))
        {
            if batch.len() >= max_transactions {
                break;
            }
            if pending.size_bytes > max_bytes {
                continue;
            }
            if batch_bytes + pending.size_bytes > max_bytes {
                break;
            }
            debug_assert_eq!(pending.transaction.id(), *id);
            batch_bytes += pending.size_bytes;
            batch.push(pending.transaction.clone());
        }
        assert!(batch.len() <= max_transactions && batch_bytes <= max_bytes);
        batch
    }

    /// Pending transactions that have waited: admitted at least `min_age_ms` before
    /// `now_ms`, in arrival order from the arrival number `from` on (a cursor; 0 is the
    /// oldest), at most `max_transactions` of them and at most `max_bytes` encoded. Returns
    /// them and where to continue: `Some(next)` when it stopped at a bound, `None` when it
    /// reached a transaction too young (or the end of the pool), so a new round starts at 0.
    ///
    /// The node re-sends these to the leader: a transaction another validator's full pool
    /// refused, or that a P2P queue dropped, reaches the proposer on a later round.
    pub fn waiting(
        &self,
        from: u64,
        now_ms: u64,
        min_age_ms: u64,
        max_transactions: usize,
        max_bytes: usize,
    ) -> (Vec<Transaction>, Option<u64>) {
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        for (arrival, id) in self.arrivals.range(from..) {
            let Some(pending) = self.pending.get(id) else {
                continue;
            };
            if pending.admitted_ms.saturating_add(min_age_ms) > now_ms {
                return (batch, None);
            }
            if batch.len() >= max_transactions
                || (batch_bytes + pending.size_bytes > max_bytes && !batch.is_empty())
            {
                return (batch, Some(*arrival));
            }
            batch_bytes += pending.size_bytes;
            batch.push(pending.transaction.clone());
        }
        (batch, None)
    }

    /// Reports committed transaction ids (a block's, or any the node learns were committed).
    /// Each is dropped from the pool if pending and remembered in the recently committed
    /// window (the oldest ids forgotten first), so a resubmission is refused as
    /// [`Refusal::RecentlyCommitted`]. `now_ms` dates the call for the drain rate behind
    /// [`Refusal::Full`]'s advised wait. Returns how many pending transactions were dropped.
    pub fn remove_committed(&mut self, ids: &[Hash], now_ms: u64) -> usize {
        let (mut removed, mut removed_bytes) = (0usize, 0usize);
        for id in ids {
            self.recent.insert(*id);
            if let Some(pending) = self.pending.remove(id) {
                let arrival = self.arrivals.remove(&pending.arrival);
                assert_eq!(arrival, Some(*id), "arrival index lost transaction {id}");
                assert!(pending.size_bytes <= self.bytes);
                self.bytes -= pending.size_bytes;
                removed += 1;
                removed_bytes += pending.size_bytes;
            }
        }
        self.drain.record(
            now_ms,
            u64::try_from(removed).unwrap_or(u64::MAX),
            u64::try_from(removed_bytes).unwrap_or(u64::MAX),
        );
        assert_eq!(self.pending.len(), self.arrivals.len());
        assert!(self.pending.is_empty() || self.bytes > 0);
        removed
    }
}

#[cold]
#[allow(
    clippy::panic,
    reason = "admit returns one result per input; any other count is a broken invariant"
)]
fn wrong_result_count(count: usize) -> ! {
    panic!("admit returned {count} results for one transaction");
}
