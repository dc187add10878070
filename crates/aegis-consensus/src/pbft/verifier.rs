//! How the core checks signatures: Ed25519 by default, or a driver-supplied checker with the
//! same answers (the simulator shares one memoising checker among its nodes so a signature
//! verified by one simulated node is not verified again by the others).

use std::fmt::Debug;

use aegis_crypto::{BatchVerifier, verify};
use aegis_types::{PublicKey, Signature};

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
