//! How a core checks signatures: Ed25519 by default, or a driver-supplied checker with the
//! same answers (the node remembers what it verified, [`Remembered`]; the simulator shares
//! one memoising checker among its nodes). Protocol-neutral: every core takes one.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use aegis_crypto::{BatchVerifier, verify};
use aegis_types::{Hash, PublicKey, Signature};

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
}
