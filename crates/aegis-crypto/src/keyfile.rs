//! The node's secret key file, encrypted at rest.
//!
//! Format (JSON, `docs/key-file.md`):
//! ```json
//! { "version": 1, "kind": "aegis-node-key", "public_key": "<hex>",
//!   "kdf": { "algorithm": "argon2id", "memory_kib": 19456, "iterations": 2,
//!            "parallelism": 1, "salt": "<hex 16 bytes>" },
//!   "cipher": { "algorithm": "xchacha20poly1305", "nonce": "<hex 24 bytes>",
//!               "ciphertext": "<hex>" } }
//! ```
//! The AEAD key is Argon2id(`AEGIS_ENCRYPTION_KEY`, salt). The associated data binds the
//! public key and every KDF parameter, so editing any of them makes decryption fail instead
//! of yielding a different key; a wrong passphrase fails the same way. Nothing partial is
//! ever returned.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aegis_types::PublicKey;
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::SecretKey;

const FILE_VERSION: u32 = 1;
const FILE_KIND: &str = "aegis-node-key";
const SALT_BYTES: usize = 16;
const NONCE_BYTES: usize = 24;
/// Largest key file read, in bytes; a real one is under 1 KiB.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// Argon2 memory cost ceiling accepted from a file (1 GiB), so a tampered file cannot make
/// the node allocate without bound.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Argon2 iteration ceiling accepted from a file.
pub const MAX_ITERATIONS: u32 = 64;
/// Argon2 parallelism ceiling accepted from a file.
pub const MAX_PARALLELISM: u32 = 16;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// OWASP's Argon2id recommendation (19 MiB, 2 passes, 1 lane).
    fn default() -> Self {
        KdfParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not a valid AEGIS key file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error(
        "cannot decrypt key file {path}: wrong AEGIS_ENCRYPTION_KEY, or the file was tampered with"
    )]
    Decrypt { path: PathBuf },
    #[error("the encryption key is empty: set AEGIS_ENCRYPTION_KEY")]
    EmptyPassphrase,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    kind: String,
    public_key: PublicKey,
    kdf: KdfSection,
    cipher: CipherSection,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfSection {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherSection {
    algorithm: String,
    nonce: String,
    ciphertext: String,
}

fn associated_data(public_key: &PublicKey, params: &KdfParams, salt: &[u8]) -> Vec<u8> {
    format!(
        "{FILE_KIND}/v{FILE_VERSION}|{}|argon2id|{}|{}|{}|{}|xchacha20poly1305",
        public_key.to_hex(),
        params.memory_kib,
        params.iterations,
        params.parallelism,
        hex::encode(salt)
    )
    .into_bytes()
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, String> {
    let argon_params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|error| format!("invalid KDF parameters: {error}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|error| format!("key derivation failed: {error}"))?;
    Ok(key)
}

/// Encrypts `secret` under `passphrase` into the key file's JSON text.
pub fn encrypt_key(
    secret: &SecretKey,
    passphrase: &str,
    params: KdfParams,
) -> Result<String, KeyFileError> {
    if passphrase.is_empty() {
        return Err(KeyFileError::EmptyPassphrase);
    }
    let mut salt = [0u8; SALT_BYTES];
    let mut nonce = [0u8; NONCE_BYTES];
    rand_core::OsRng.fill_bytes(&mut salt);
    rand_core::OsRng.fill_bytes(&mut nonce);
    let public_key = secret.public_key();
    let format_error = |reason: String| KeyFileError::Format {
        path: PathBuf::new(),
        reason,
    };
    let key = derive_key(passphrase.as_bytes(), &salt, &params).map_err(format_error)?;
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref())
        .map_err(|error| format_error(error.to_string()))?;
    let seed = Zeroizing::new(secret.to_bytes());
    let aad = associated_data(&public_key, &params, &salt);
    let ciphertext = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: seed.as_ref(),
                aad: &aad,
            },
        )
        .map_err(|_| format_error("encryption failed".into()))?;
    let file = KeyFile {
        version: FILE_VERSION,
        kind: FILE_KIND.into(),
        public_key,
        kdf: KdfSection {
            algorithm: "argon2id".into(),
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
            salt: hex::encode(salt),
        },
        cipher: CipherSection {
            algorithm: "xchacha20poly1305".into(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        },
    };
    serde_json::to_string_pretty(&file).map_err(|error| format_error(error.to_string()))
}

/// Decrypts key-file JSON text. `path` is only used in error messages.
pub fn decrypt_key(text: &str, passphrase: &str, path: &Path) -> Result<SecretKey, KeyFileError> {
    let format = |reason: String| KeyFileError::Format {
        path: path.to_owned(),
        reason,
    };
    if passphrase.is_empty() {
        return Err(KeyFileError::EmptyPassphrase);
    }
    let file: KeyFile = serde_json::from_str(text).map_err(|error| {
        format(format!(
            "line {}, column {}: {error}",
            error.line(),
            error.column()
        ))
    })?;
    if file.version != FILE_VERSION || file.kind != FILE_KIND {
        return Err(format(format!(
            "unsupported kind/version {:?}/{} (expected {FILE_KIND:?}/{FILE_VERSION})",
            file.kind, file.version
        )));
    }
    if file.kdf.algorithm != "argon2id" || file.cipher.algorithm != "xchacha20poly1305" {
        return Err(format(format!(
            "unsupported algorithms {}/{}",
            file.kdf.algorithm, file.cipher.algorithm
        )));
    }
    let params = KdfParams {
        memory_kib: file.kdf.memory_kib,
        iterations: file.kdf.iterations,
        parallelism: file.kdf.parallelism,
    };
    if params.memory_kib > MAX_MEMORY_KIB
        || params.iterations > MAX_ITERATIONS
        || params.parallelism > MAX_PARALLELISM
    {
        return Err(format(format!(
            "KDF parameters {params:?} exceed the limits ({MAX_MEMORY_KIB} KiB, {MAX_ITERATIONS} iterations, {MAX_PARALLELISM} lanes)"
        )));
    }
    let salt = hex::decode(&file.kdf.salt).map_err(|error| format(format!("kdf.salt: {error}")))?;
    let nonce: [u8; NONCE_BYTES] = hex::decode(&file.cipher.nonce)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format(format!("cipher.nonce must be {NONCE_BYTES} bytes of hex")))?;
    let ciphertext = hex::decode(&file.cipher.ciphertext)
        .map_err(|error| format(format!("cipher.ciphertext: {error}")))?;
    let key = derive_key(passphrase.as_bytes(), &salt, &params).map_err(format)?;
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref())
        .map_err(|error| format(error.to_string()))?;
    let aad = associated_data(&file.public_key, &params, &salt);
    let seed = cipher
        .decrypt(
            &nonce.into(),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| KeyFileError::Decrypt {
            path: path.to_owned(),
        })?;
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| format("decrypted key is not 32 bytes".into()))?;
    let secret = SecretKey::from_bytes(seed);
    if secret.public_key() != file.public_key {
        // Unreachable without breaking the AEAD, but cheap to check.
        return Err(KeyFileError::Decrypt {
            path: path.to_owned(),
        });
    }
    Ok(secret)
}

/// Writes `secret` encrypted under `passphrase` to `path` (mode 0600, replaced atomically).
pub fn write_key_file(
    path: &Path,
    secret: &SecretKey,
    passphrase: &str,
    params: KdfParams,
) -> Result<(), KeyFileError> {
    let text = encrypt_key(secret, passphrase, params).map_err(|error| match error {
        KeyFileError::Format { reason, .. } => KeyFileError::Format {
            path: path.to_owned(),
            reason,
        },
        other => other,
    })?;
    let write_error = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(write_error)?;
        file.write_all(text.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
    }
    fs::rename(&tmp, path).map_err(write_error)
}

/// The key file's text: a regular file of at most [`MAX_KEY_FILE_BYTES`]. The size is
/// taken from the opened file, so a device (which reports a length of 0, as `/dev/zero`
/// does) is refused instead of read without end.
fn read_key_text(path: &Path) -> Result<String, KeyFileError> {
    aegis_fs::read_regular_file_to_string(path, MAX_KEY_FILE_BYTES).map_err(|error| match error {
        aegis_fs::ReadError::TooLarge { len, .. } => KeyFileError::Format {
            path: path.to_owned(),
            reason: format!("{len} bytes is larger than a key file can be ({MAX_KEY_FILE_BYTES})"),
        },
        other => KeyFileError::Read {
            path: path.to_owned(),
            source: other.into_io(),
        },
    })
}

/// Reads and decrypts the key file at `path`.
pub fn read_key_file(path: &Path, passphrase: &str) -> Result<SecretKey, KeyFileError> {
    let text = read_key_text(path)?;
    decrypt_key(&text, passphrase, path)
}

/// The public key recorded in a key file, readable without the passphrase.
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyFileError> {
    let text = read_key_text(path)?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|error| KeyFileError::Format {
        path: path.to_owned(),
        reason: error.to_string(),
    })?;
    Ok(file.public_key)
}
