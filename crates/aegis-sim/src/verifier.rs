//! Signature checks shared by the simulated nodes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use aegis_consensus::pbft::SignatureCheck;
use aegis_crypto::verify;
use aegis_types::{Hash, PublicKey, Signature};

/// Signature-check memo entries kept before the memo is cleared.
const MAX_MEMO: usize = 1 << 20;

/// Memoises Ed25519 answers across the simulated nodes: the answer for one (key, message,
/// signature) never changes, so verifying it once per run gives every node the true answer.
#[derive(Debug, Default)]
pub struct SharedVerifier {
    memo: Mutex<BTreeMap<MemoKey, bool>>,
}

/// Signer, digest of the signed bytes, signature.
type MemoKey = (PublicKey, Hash, [u8; 64]);

impl SignatureCheck for SharedVerifier {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        let entry = (*key, Hash::digest(message), signature.0);
        if let Ok(memo) = self.memo.lock()
            && let Some(answer) = memo.get(&entry)
        {
            return *answer;
        }
        let answer = verify(key, message, signature).is_ok();
        if let Ok(mut memo) = self.memo.lock() {
            if memo.len() >= MAX_MEMO {
                memo.clear();
            }
            memo.insert(entry, answer);
        }
        answer
    }
}
