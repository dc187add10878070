//! The canonical binary encoding (`docs/encoding.md`).
//!
//! Everything that is hashed or signed is encoded as `TAG || borsh(value)`, where `TAG` is a
//! short ASCII domain-separation string naming the kind of object and the version of its
//! layout (for example `AEGIS/tx/v1`). Borsh is deterministic: little-endian fixed-width
//! integers, `u32` length prefixes for strings and byte vectors, fields in declaration order,
//! no padding. The tag keeps a signature over one kind of object from ever being valid for
//! another kind.

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};

use crate::hash::Hash;

/// Version of the canonical layouts. Bumped, with new tags, if any layout ever changes.
pub const ENCODING_VERSION: u8 = 1;

/// Domain tag of a transaction's signing bytes.
pub const TAG_TX: &[u8] = b"AEGIS/tx/v1";
/// Domain tag of a block header's hashing bytes.
pub const TAG_BLOCK_HEADER: &[u8] = b"AEGIS/block-header/v1";
/// Domain tag of a commit vote's signing bytes (also what a commit certificate carries).
pub const TAG_COMMIT_VOTE: &[u8] = b"AEGIS/commit-vote/v1";
/// Domain tag of the genesis document's hashing bytes.
pub const TAG_GENESIS: &[u8] = b"AEGIS/genesis/v1";

/// Upper bound on any single canonically encoded object accepted by [`decode`]:
/// a block of [`crate::genesis::MAX_BLOCK_TXS_LIMIT`] maximal transactions fits.
pub const MAX_ENCODED_BYTES: usize = 64 * 1024 * 1024;

/// Why bytes could not be decoded into a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("encoded object is {len} bytes, above the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("unsupported encoding version {found} (this build understands {expected})")]
    Version { found: u8, expected: u8 },
}

/// Hex text that is not the expected fixed-size value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HexError {
    #[error("invalid hex: {0}")]
    Invalid(String),
    #[error("expected {expected} bytes of hex, got {found}")]
    Length { expected: usize, found: usize },
}

/// `tag || borsh(value)`.
pub fn tagged_bytes<T: BorshSerialize>(tag: &[u8], value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 128);
    out.extend_from_slice(tag);
    // Writing into a Vec cannot fail; borsh only fails on I/O errors of the writer.
    if let Err(error) = borsh::to_writer(&mut out, value) {
        unreachable_io(error);
    }
    out
}

/// SHA-256 of `tag || borsh(value)`, the same digest as `Hash::digest(&tagged_bytes(tag,
/// value))`, with the encoding streamed into the hasher: no buffer is allocated, grown or
/// copied (a transaction's id, a batch's digest, a header's hash are taken on every hot path).
pub fn tagged_digest<T: BorshSerialize>(tag: &[u8], value: &T) -> Hash {
    let mut hasher = HashWriter(Sha256::new());
    hasher.0.update(tag);
    // Writing into a hasher cannot fail either.
    if let Err(error) = borsh::to_writer(&mut hasher, value) {
        unreachable_io(error);
    }
    Hash(hasher.0.finalize().into())
}

/// Borsh's writer, feeding SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cold]
#[allow(
    clippy::panic,
    reason = "a Vec writer cannot fail; this is a broken invariant, not bad input"
)]
fn unreachable_io(error: std::io::Error) {
    // A Vec or hasher writer never returns an error; reaching this means memory exhaustion
    // semantics changed, which is a broken invariant rather than bad input.
    panic!("borsh serialisation into memory failed: {error}");
}

/// Borsh bytes of `value` (no tag): the wire form of messages and stored records.
pub fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(error) = borsh::to_writer(&mut out, value) {
        unreachable_io(error);
    }
    out
}

/// Decodes borsh bytes, refusing oversized input and trailing bytes.
pub fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_ENCODED_BYTES,
        });
    }
    borsh::from_slice(bytes).map_err(|error| DecodeError::Malformed(error.to_string()))
}

pub(crate) fn decode_hex_array<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let bytes = hex::decode(text.trim()).map_err(|error| HexError::Invalid(error.to_string()))?;
    let found = bytes.len();
    bytes
        .try_into()
        .map_err(|_| HexError::Length { expected: N, found })
}

/// Implements serde for a fixed-size byte newtype as a hex string.
macro_rules! hex_serde {
    ($ty:ident) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&hex::encode(self.0))
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                crate::encoding::decode_hex_array(&text)
                    .map($ty)
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use hex_serde;

/// Serde helper for `Vec<u8>` fields shown as hex in JSON: `#[serde(with = "hex_bytes")]`.
pub mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streaming into the hasher gives the digest of the buffered bytes, for a value of a few
    /// bytes and for one spanning many SHA-256 blocks (written in pieces by borsh).
    #[test]
    fn a_streamed_digest_is_the_digest_of_the_bytes() {
        let small = (7u8, String::from("chain"), 42u64);
        let large: Vec<(u32, Vec<u8>)> = (0..300).map(|i| (i, vec![i as u8; 97])).collect();
        assert_eq!(
            tagged_digest(TAG_TX, &small),
            Hash::digest(&tagged_bytes(TAG_TX, &small))
        );
        assert_eq!(
            tagged_digest(TAG_BLOCK_HEADER, &large),
            Hash::digest(&tagged_bytes(TAG_BLOCK_HEADER, &large))
        );
        assert_ne!(
            tagged_digest(TAG_TX, &small),
            tagged_digest(TAG_GENESIS, &small)
        );
    }
}
