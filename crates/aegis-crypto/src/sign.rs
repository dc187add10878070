use std::fmt;

use aegis_types::{
    CommitSignature, CommitVote, PublicKey, Signature, Transaction, TxBody, ValidatorId,
};
use ed25519_zebra::SigningKey;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

/// An Ed25519 secret key. Its bytes are wiped from memory when it is dropped, and `Debug`
/// shows only the public key.
#[derive(Clone)]
pub struct SecretKey {
    inner: SigningKey,
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> SecretKey {
        SecretKey::generate_with(rand_core::OsRng)
    }

    /// A fresh key from the given random source (seeded sources make tests reproducible).
    pub fn generate_with<R: RngCore + CryptoRng>(mut rng: R) -> SecretKey {
        // The 32-byte seed straight from the source, so a seeded source gives the same key
        // whichever Ed25519 library derives it.
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let key = SecretKey::from_bytes(seed);
        seed.zeroize();
        key
    }

    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey {
            inner: SigningKey::from_bytes(&bytes),
        }
    }

    /// The 32-byte seed. Handle with care: callers must not log or persist it unencrypted.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(<[u8; 32]>::from(self.inner.verification_key()))
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.inner.sign(message).to_bytes())
    }

    /// Signs a transaction body, returning the complete transaction.
    pub fn sign_transaction(&self, body: TxBody) -> Transaction {
        let signature = self.sign(&body.signing_bytes());
        Transaction { body, signature }
    }

    /// Signs a commit vote as validator `validator`.
    pub fn sign_commit_vote(&self, validator: ValidatorId, vote: &CommitVote) -> CommitSignature {
        CommitSignature {
            validator,
            signature: self.sign(&vote.signing_bytes()),
        }
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        let mut bytes = self.inner.to_bytes();
        bytes.zeroize();
        // `SigningKey` keeps its own copy; overwrite it with a fixed key so the secret does not
        // linger in this allocation after drop.
        self.inner = SigningKey::from_bytes(&[0u8; 32]);
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public: {})", self.public_key())
    }
}
