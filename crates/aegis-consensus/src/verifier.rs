//! How a core checks signatures: Ed25519 by default, or a driver-supplied checker with the
//! same answers (the node remembers what it verified, [`Remembered`]; the simulator shares
//! one memoising checker among its nodes). Protocol-neutral: every core takes one.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use aegis_crypto::{BatchVerifier, verify};
use aegis_types::{Hash, PublicKey, Signature, Transaction};

/// Answers whether `signature` is `key`'s signature over `message`. Implementations must
/// give exactly Ed25519's (ZIP-215) answers; they may only be faster.
pub trait SignatureCheck: Debug + Send + Sync {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool;

    /// Checks many at once; returns the indices of the bad ones.
    fn verify_batch(&self, items: &[(PublicKey, Vec<u8>, Signature)]) -> Result<(), Vec<usize>> {
        let bad: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, (key, message, signature))| !self.verify(key, message, signature))
            .map(|(index, _)| index)
            .collect();
        if bad.is_empty() { Ok(()) } else { Err(bad) }
    }

    /// Checks the transactions' signatures at once; returns the indices of the bad ones.
    /// `ids[i]` must be `txs[i].id()` (the SHA-256 of its signing bytes), computed by the
    /// caller: a checker that remembers by digest answers from the ids without encoding and
    /// hashing the transactions again.
    fn verify_transactions(&self, txs: &[Transaction], ids: &[Hash]) -> Result<(), Vec<usize>> {
        let _ = ids;
        let items: Vec<_> = txs
            .iter()
            .map(|tx| (tx.body.sender, tx.body.signing_bytes(), tx.signature))
            .collect();
        self.verify_batch(&items)
    }
}

/// Plain Ed25519 verification through `aegis-crypto`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ed25519;

impl SignatureCheck for Ed25519 {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        verify(key, message, signature).is_ok()
    }

    fn verify_batch(&self, items: &[(PublicKey, Vec<u8>, Signature)]) -> Result<(), Vec<usize>> {
        let mut batch = BatchVerifier::with_capacity(items.len());
        for (key, message, signature) in items {
            batch.queue(*key, message.clone(), *signature);
        }
        batch.verify()
    }
}

/// Most signatures [`Remembered`] keeps as already verified; the oldest are forgotten first.
pub const MAX_REMEMBERED_SIGNATURES: usize = 131_072;

/// SHA-256 of (signer, digest of the signed bytes, signature): 32 bytes per entry instead of
/// the 128 of the triple (kept twice, in the set and the order), so the 131,072 entries take
/// about 10 MB instead of about 38 MB. Finding another triple with the same fingerprint is
/// a SHA-256 second preimage.
type RememberedKey = Hash;

/// Domain of [`fingerprint`].
const FINGERPRINT_TAG: &[u8] = b"aegis/remembered-signature/v1";

fn fingerprint(key: &PublicKey, digest: &Hash, signature: &[u8; 64]) -> RememberedKey {
    Hash::digest_parts(&[FINGERPRINT_TAG, &key.0, &digest.0, signature])
}

/// Ed25519 that never verifies one signature twice: what it verified, and what the driver
/// tells it was verified elsewhere (a transaction the mempool admitted after a batch
/// verification), it answers from memory. A node verifies each transaction's signature once:
/// at admission, not again when the transaction arrives in a proposal. Bounded by
/// [`MAX_REMEMBERED_SIGNATURES`]; only good signatures are remembered, so a forgery is
/// checked (and refused) every time.
#[derive(Debug, Default)]
pub struct Remembered {
    memory: Mutex<RememberedSet>,
}

#[derive(Debug, Default)]
struct RememberedSet {
    known: BTreeSet<RememberedKey>,
    order: VecDeque<RememberedKey>,
}

impl RememberedSet {
    fn insert(&mut self, key: RememberedKey) {
        if self.known.insert(key) {
            self.order.push_back(key);
            while self.order.len() > MAX_REMEMBERED_SIGNATURES {
                if let Some(oldest) = self.order.pop_front() {
                    self.known.remove(&oldest);
                }
            }
        }
    }
}

impl Remembered {
    /// Notes that `signature` by `key` over bytes whose SHA-256 is `digest` verified
    /// (a transaction's `digest` is its id).
    pub fn remember(&self, key: PublicKey, digest: Hash, signature: Signature) {
        let entry = fingerprint(&key, &digest, &signature.0);
        self.lock().insert(entry);
    }

    /// How many signatures are remembered.
    pub fn len(&self) -> usize {
        self.lock().known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RememberedSet> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn known(
        &self,
        key: &PublicKey,
        message: &[u8],
        signature: &Signature,
    ) -> Option<RememberedKey> {
        let entry = fingerprint(key, &Hash::digest(message), &signature.0);
        self.lock().known.contains(&entry).then_some(entry)
    }
}

impl SignatureCheck for Remembered {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        if self.known(key, message, signature).is_some() {
            return true;
        }
        let good = verify(key, message, signature).is_ok();
        if good {
            self.remember(*key, Hash::digest(message), *signature);
        }
        good
    }

    fn verify_batch(&self, items: &[(PublicKey, Vec<u8>, Signature)]) -> Result<(), Vec<usize>> {
        let unknown: Vec<usize> = (0..items.len())
            .filter(|i| {
                let (key, message, signature) = &items[*i];
                self.known(key, message, signature).is_none()
            })
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut batch = BatchVerifier::with_capacity(unknown.len());
        for i in &unknown {
            let (key, message, signature) = &items[*i];
            batch.queue(*key, message.clone(), *signature);
        }
        let bad: Vec<usize> = match batch.verify() {
            Ok(()) => Vec::new(),
            Err(bad) => bad.into_iter().map(|b| unknown[b]).collect(),
        };
        for i in unknown.iter().filter(|i| !bad.contains(i)) {
            let (key, message, signature) = &items[*i];
            self.remember(*key, Hash::digest(message), *signature);
        }
        if bad.is_empty() { Ok(()) } else { Err(bad) }
    }

    /// One lock to find what is known, one batch verification for the rest, one lock to
    /// remember what verified; a transaction's digest is its id, so nothing is hashed again.
    /// A transaction without an id (a caller's mistake) is verified, never trusted.
    fn verify_transactions(&self, txs: &[Transaction], ids: &[Hash]) -> Result<(), Vec<usize>> {
        let fingerprints: Vec<Option<RememberedKey>> = txs
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                ids.get(i)
                    .map(|id| fingerprint(&tx.body.sender, id, &tx.signature.0))
            })
            .collect();
        let unknown: Vec<usize> = {
            let memory = self.lock();
            (0..txs.len())
                .filter(|i| fingerprints[*i].is_none_or(|entry| !memory.known.contains(&entry)))
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let mut batch = BatchVerifier::with_capacity(unknown.len());
        for i in &unknown {
            let tx = &txs[*i];
            batch.queue(tx.body.sender, tx.body.signing_bytes(), tx.signature);
        }
        let bad: Vec<usize> = match batch.verify() {
            Ok(()) => Vec::new(),
            Err(bad) => bad.into_iter().map(|b| unknown[b]).collect(),
        };
        let mut memory = self.lock();
        for i in unknown.iter().filter(|i| !bad.contains(i)) {
            if let Some(entry) = fingerprints[*i] {
                memory.insert(entry);
            }
        }
        if bad.is_empty() { Ok(()) } else { Err(bad) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_crypto::SecretKey;

    #[test]
    fn remembered_signatures_are_not_verified_again_and_forgeries_never_pass() {
        let key = SecretKey::from_bytes([3; 32]);
        let good = key.sign(b"one");
        let checker = Remembered::default();
        assert!(checker.is_empty());
        assert!(checker.verify(&key.public_key(), b"one", &good));
        assert_eq!(checker.len(), 1);
        assert!(!checker.is_empty());
        let forged = Signature([9; 64]);
        assert!(!checker.verify(&key.public_key(), b"one", &forged));
        assert_eq!(checker.len(), 1, "a bad signature is not remembered");
        // Told from outside, then answered from memory without verification: a marker that a
        // real verification would refuse shows the memory answered.
        let marker = Signature([7; 64]);
        checker.remember(key.public_key(), Hash::digest(b"two"), marker);
        assert!(checker.verify(&key.public_key(), b"two", &marker));
        let items = vec![
            (key.public_key(), b"two".to_vec(), marker),
            (key.public_key(), b"three".to_vec(), forged),
            (key.public_key(), b"one".to_vec(), good),
        ];
        assert_eq!(checker.verify_batch(&items), Err(vec![1]));
        // A batch remembers what verified in it, never what did not.
        assert!(!checker.verify(&key.public_key(), b"three", &forged));
        let fresh = key.sign(b"four");
        let before = checker.len();
        let items = vec![
            (key.public_key(), b"four".to_vec(), fresh),
            (key.public_key(), b"three".to_vec(), forged),
        ];
        assert_eq!(checker.verify_batch(&items), Err(vec![1]));
        assert_eq!(checker.len(), before + 1);
        assert!(checker.known(&key.public_key(), b"four", &fresh).is_some());
        assert!(
            checker
                .known(&key.public_key(), b"three", &forged)
                .is_none()
        );
    }

    #[test]
    fn memory_is_bounded_oldest_first() {
        let checker = Remembered::default();
        let key = SecretKey::from_bytes([4; 32]).public_key();
        for i in 0..(MAX_REMEMBERED_SIGNATURES + 10) as u64 {
            checker.remember(key, Hash::digest(&i.to_le_bytes()), Signature([1; 64]));
        }
        assert_eq!(checker.len(), MAX_REMEMBERED_SIGNATURES);
        assert!(
            checker
                .known(&key, &0u64.to_le_bytes(), &Signature([1; 64]))
                .is_none()
        );
        let newest = (MAX_REMEMBERED_SIGNATURES + 9) as u64;
        assert!(
            checker
                .known(&key, &newest.to_le_bytes(), &Signature([1; 64]))
                .is_some()
        );
    }

    /// Transactions are answered by id: what is remembered needs no verification (a marker
    /// signature shows the memory answered), the rest is verified in one batch, a forgery
    /// is reported by its index and never remembered, and a transaction given without its id
    /// is verified, not trusted.
    #[test]
    fn transactions_are_answered_from_memory_by_id_and_forgeries_never_pass() {
        use aegis_types::TxBody;
        let key = SecretKey::from_bytes([5; 32]);
        let tx = |nonce: u64| {
            key.sign_transaction(TxBody {
                version: aegis_types::encoding::ENCODING_VERSION,
                chain_id: "c".into(),
                sender: key.public_key(),
                nonce,
                payload: vec![1, 2, 3],
            })
        };
        let checker = Remembered::default();
        let mut marked = tx(1);
        marked.signature = Signature([7; 64]);
        checker.remember(key.public_key(), marked.id(), marked.signature);
        let good = tx(2);
        let mut forged = tx(3);
        forged.signature = tx(4).signature;
        let txs = vec![marked.clone(), forged.clone(), good.clone()];
        let ids: Vec<Hash> = txs.iter().map(Transaction::id).collect();
        assert_eq!(checker.verify_transactions(&txs, &ids), Err(vec![1]));
        assert_eq!(
            checker.len(),
            2,
            "the good one is remembered, the forgery is not"
        );
        assert!(checker.verify(
            &key.public_key(),
            &good.body.signing_bytes(),
            &good.signature
        ));
        assert_eq!(checker.verify_transactions(&txs[..1], &ids[..1]), Ok(()));
        assert_eq!(
            checker.verify_transactions(&[marked.clone(), good.clone()], &[]),
            Err(vec![0]),
            "without ids nothing is answered from memory"
        );
        assert_eq!(
            Ed25519.verify_transactions(&[good.clone(), forged.clone()], &ids[1..]),
            Err(vec![1])
        );
        assert_eq!(checker.verify_transactions(&[], &[]), Ok(()));
    }
}
