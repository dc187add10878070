//! AEGIS keys and signatures.
//!
//! Owns Ed25519 signing and verification (ZIP-215 rules via `ed25519-zebra`, so single and
//! batch verification accept exactly the same signatures and cannot split validators),
//! the checks of signed ledger objects (transactions, commit certificates), and the node's
//! secret key file, encrypted at rest with a key derived from `AEGIS_ENCRYPTION_KEY`.

pub mod keyfile;
mod rng;
mod sign;
mod verify;

pub use keyfile::{KdfParams, KeyFileError, read_key_file, read_public_key, write_key_file};
pub use sign::SecretKey;
pub use verify::{
    BatchVerifier, CertError, SignatureError, verify, verify_commit_certificate,
    verify_commit_certificates, verify_transaction, verify_transactions,
};
