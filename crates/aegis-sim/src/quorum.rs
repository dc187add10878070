//! The checkers' own quorum arithmetic and signature checks, written from the papers and
//! never taken from the code under test: a bug in the core's quorum function or certificate
//! verifier must not weaken the checker that is meant to catch it. Only single Ed25519
//! verifications (`aegis_crypto::verify`) are shared with the node.
//!
//! Reference: Castro & Liskov, "Practical Byzantine Fault Tolerance and Proactive Recovery"
//! (TOCS 2002), §2.3: with at most f faulty replicas, certificates are quorums chosen so that
//! any two intersect in at least one correct replica, i.e. in f + 1 replicas; with |R| = 3f + 1
//! that is 2f + 1 (OSDI '99 §4.1). For a larger set the smallest such size q solves
//! 2q - n >= f + 1. A weak certificate (f + 1 matching messages) holds at least one correct
//! replica's word (TOCS §2.3.1).

use std::collections::BTreeSet;

use aegis_crypto::verify;
use aegis_types::{CommitCertificate, CommitVote, Hash, PublicKey, Signature, ValidatorSet};

/// Size of a quorum certificate among `n` replicas tolerating `f` faults: the smallest q with
/// 2q - n >= f + 1, so any two quorums share a correct replica.
pub fn quorum(n: usize, f: usize) -> usize {
    // q >= (n + f + 1) / 2, rounded up.
    (n + f + 2) / 2
}

/// Size of a weak certificate: f + 1 replicas, so at least one is correct.
pub fn weak(f: usize) -> usize {
    f + 1
}

/// The primary of `view` among `n` replicas (OSDI '99 §4.1: p = v mod |R|).
pub fn primary(view: u64, n: usize) -> usize {
    // n <= 1,024 (a genesis refuses more), so the remainder fits.
    (view % n.max(1) as u64) as usize
}

/// Most signatures remembered before the memo starts over (a run verifies far fewer).
const MAX_MEMO: usize = 1 << 20;

/// Signatures the checker already verified, by signer, signed-bytes digest and signature:
/// each distinct one is verified once per run.
#[derive(Debug, Default)]
pub struct SignatureMemo {
    good: BTreeSet<(PublicKey, Hash, [u8; 64])>,
    pub verified: u64,
}

impl SignatureMemo {
    /// Whether `signature` is `signer`'s over `bytes`.
    pub fn check(&mut self, signer: &PublicKey, bytes: &[u8], signature: &Signature) -> bool {
        let entry = (*signer, Hash::digest(bytes), signature.0);
        if self.good.contains(&entry) {
            return true;
        }
        self.verified += 1;
        let ok = verify(signer, bytes, signature).is_ok();
        if ok {
            if self.good.len() >= MAX_MEMO {
                self.good.clear();
            }
            self.good.insert(entry);
        }
        ok
    }

    /// Whether validator `index` of `validators` signed `bytes`.
    pub fn check_validator(
        &mut self,
        validators: &ValidatorSet,
        index: usize,
        bytes: &[u8],
        signature: &Signature,
    ) -> bool {
        match validators.validators().get(index) {
            Some(validator) => self.check(&validator.public_key, bytes, signature),
            None => false,
        }
    }
}

/// Checks a commit certificate from scratch: distinct known signers in ascending order, at
/// least a quorum of them, each signature over the certificate's `CommitVote`. Returns what
/// is wrong.
pub fn check_commit_certificate(
    memo: &mut SignatureMemo,
    certificate: &CommitCertificate,
    chain_id: &str,
    validators: &ValidatorSet,
    f: usize,
) -> Result<(), String> {
    let n = validators.len();
    let need = quorum(n, f);
    if certificate.signatures.len() < need {
        return Err(format!(
            "{} signatures, a quorum of {n} with f = {f} is {need}",
            certificate.signatures.len()
        ));
    }
    let bytes = CommitVote::new(
        chain_id,
        certificate.height,
        certificate.view,
        certificate.block_hash,
    )
    .signing_bytes();
    let mut previous: Option<usize> = None;
    for entry in &certificate.signatures {
        let index = usize::from(entry.validator.0);
        if previous.is_some_and(|p| p >= index) {
            return Err(format!("signer {index} repeated or out of order"));
        }
        previous = Some(index);
        if !memo.check_validator(validators, index, &bytes, &entry.signature) {
            return Err(format!("signature of validator {index} does not verify"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defining property, by brute force: any two quorums of q out of n share at least
    /// f + 1 members, and q is the smallest size that guarantees it.
    #[test]
    fn quorums_intersect_in_f_plus_one_and_are_smallest() {
        for n in 4..=40usize {
            for f in 1..=(n - 1) / 3 {
                let q = quorum(n, f);
                assert!(
                    q <= n - f,
                    "n={n} f={f}: a quorum must be reachable without the faulty"
                );
                // Two quorums overlap least when they are spread apart: 2q - n members.
                assert!(2 * q - n > f, "n={n} f={f} q={q}");
                assert!(2 * (q - 1) < n + f + 1, "n={n} f={f}: q-1 would also do");
            }
        }
    }

    #[test]
    fn n_equals_3f_plus_1_gives_2f_plus_1() {
        for f in 1..=100 {
            assert_eq!(quorum(3 * f + 1, f), 2 * f + 1);
            assert_eq!(weak(f), f + 1);
        }
        assert_eq!(primary(9, 4), 1);
        assert_eq!(primary(3, 7), 3);
    }
}
