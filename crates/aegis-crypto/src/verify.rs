use aegis_types::{
    CommitCertificate, PublicKey, Signature, Transaction, ValidatorId, ValidatorSet,
};
use ed25519_zebra::{VerificationKey, VerificationKeyBytes, batch};

use crate::rng::OsRng010;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("public key {0} is not a valid Ed25519 point")]
    MalformedKey(PublicKey),
    #[error("signature does not verify under public key {0}")]
    Invalid(PublicKey),
}

/// Verifies one Ed25519 signature (ZIP-215 rules).
pub fn verify(
    key: &PublicKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    let vk = VerificationKey::try_from(key.0).map_err(|_| SignatureError::MalformedKey(*key))?;
    let sig = ed25519_zebra::Signature::from(signature.0);
    vk.verify(&sig, message)
        .map_err(|_| SignatureError::Invalid(*key))
}

/// Verifies a transaction's signature over its canonical bytes.
pub fn verify_transaction(tx: &Transaction) -> Result<(), SignatureError> {
    verify(&tx.body.sender, &tx.body.signing_bytes(), &tx.signature)
}

/// Verifies many transactions in one batch; on failure returns the indices of every bad one.
pub fn verify_transactions(txs: &[Transaction]) -> Result<(), Vec<usize>> {
    let mut batch = BatchVerifier::with_capacity(txs.len());
    for tx in txs {
        batch.queue(tx.body.sender, tx.body.signing_bytes(), tx.signature);
    }
    batch.verify()
}

/// Collects signatures and checks them together, about twice as fast as one by one.
/// ZIP-215 makes batch and single verification agree, so a batch failure is always explained
/// by at least one signature that fails alone; [`BatchVerifier::verify`] names them.
#[derive(Debug, Default)]
pub struct BatchVerifier {
    items: Vec<(PublicKey, Vec<u8>, Signature)>,
}

impl BatchVerifier {
    pub fn new() -> BatchVerifier {
        BatchVerifier::default()
    }

    pub fn with_capacity(capacity: usize) -> BatchVerifier {
        BatchVerifier {
            items: Vec::with_capacity(capacity),
        }
    }

    pub fn queue(&mut self, key: PublicKey, message: Vec<u8>, signature: Signature) {
        self.items.push((key, message, signature));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `Ok` when every queued signature is valid; otherwise the indices (in queue order) of
    /// those that are not.
    pub fn verify(self) -> Result<(), Vec<usize>> {
        if self.items.is_empty() {
            return Ok(());
        }
        let mut verifier = batch::Verifier::new();
        for (key, message, signature) in &self.items {
            let item = (
                VerificationKeyBytes::from(key.0),
                ed25519_zebra::Signature::from(signature.0),
                message,
            );
            verifier.queue(item);
        }
        if verifier.verify(OsRng010).is_ok() {
            return Ok(());
        }
        let bad: Vec<usize> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, (key, message, signature))| verify(key, message, signature).is_err())
            .map(|(index, _)| index)
            .collect();
        Err(bad)
    }
}

/// Why a commit certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate is for height {cert}, block is at height {block}")]
    HeightMismatch { cert: u64, block: u64 },
    #[error("certificate is for block {cert}, block hash is {block}")]
    HashMismatch {
        cert: aegis_types::Hash,
        block: aegis_types::Hash,
    },
    #[error("signatures are not sorted by validator id or repeat validator {0}")]
    NotSortedOrDuplicate(ValidatorId),
    #[error("validator {0} is not in the validator set")]
    UnknownValidator(ValidatorId),
    #[error("only {have} signatures, a quorum is {need}")]
    TooFewSignatures { have: usize, need: usize },
    #[error("bad commit signature from validator(s) {0:?}")]
    BadSignatures(Vec<ValidatorId>),
}

/// Checks a commit certificate with the genesis validator set alone: a quorum of distinct
/// validators, each of whose signatures over the commit vote verifies.
pub fn verify_commit_certificate(
    cert: &CommitCertificate,
    chain_id: &str,
    validators: &ValidatorSet,
) -> Result<(), CertError> {
    verify_commit_certificates(std::slice::from_ref(cert), chain_id, validators)
        .map_err(|(_, error)| error)
}

/// Checks many commit certificates (a range of synced blocks) with one batch verification
/// of all their signatures. On failure, names the first bad certificate (its index in
/// `certs`) and why.
pub fn verify_commit_certificates(
    certs: &[CommitCertificate],
    chain_id: &str,
    validators: &ValidatorSet,
) -> Result<(), (usize, CertError)> {
    let need = validators.quorum();
    let mut batch = BatchVerifier::with_capacity(batch_capacity(certs));
    // Which certificate each queued signature belongs to, and its validator.
    let mut owners = Vec::with_capacity(batch_capacity(certs));
    for (index, cert) in certs.iter().enumerate() {
        let mut previous: Option<ValidatorId> = None;
        for entry in &cert.signatures {
            if previous.is_some_and(|p| p >= entry.validator) {
                return Err((index, CertError::NotSortedOrDuplicate(entry.validator)));
            }
            if validators.get(entry.validator).is_none() {
                return Err((index, CertError::UnknownValidator(entry.validator)));
            }
            previous = Some(entry.validator);
        }
        if cert.signatures.len() < need {
            return Err((
                index,
                CertError::TooFewSignatures {
                    have: cert.signatures.len(),
                    need,
                },
            ));
        }
        let message = cert.vote(chain_id).signing_bytes();
        for entry in &cert.signatures {
            if let Some(validator) = validators.get(entry.validator) {
                batch.queue(validator.public_key, message.clone(), entry.signature);
                owners.push((index, entry.validator));
            }
        }
    }
    batch.verify().map_err(|bad| {
        let first = bad.first().map_or(0, |&i| owners[i].0);
        let culprits = bad
            .into_iter()
            .filter(|&i| owners[i].0 == first)
            .map(|i| owners[i].1)
            .collect();
        (first, CertError::BadSignatures(culprits))
    })
}

fn batch_capacity(certs: &[CommitCertificate]) -> usize {
    certs.iter().map(|c| c.signatures.len()).sum()
}
