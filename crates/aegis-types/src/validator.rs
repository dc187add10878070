//! The validator set and its quorum arithmetic.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::PublicKey;

/// Largest validator set supported. Votes name validators by a `u16` index, and the quorum
/// bookkeeping of the consensus core is sized by this bound.
pub const MAX_VALIDATORS: usize = 1024;

/// A validator's position in the genesis list; stable for the life of the chain.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct ValidatorId(pub u16);

impl fmt::Debug for ValidatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Display for ValidatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One validator as the genesis lists it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Validator {
    /// Operator-facing name, such as `node0`; unique in the set.
    pub name: String,
    /// Ed25519 key that signs consensus messages and authenticates the node on P2P.
    pub public_key: PublicKey,
    /// Where peers reach its P2P port, `host:port`.
    pub p2p_address: String,
    /// Where clients reach its API, `host:port`.
    pub api_address: String,
}

/// A validator set that satisfies n >= 3f + 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    max_faulty: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidatorSetError {
    #[error("the validator set is empty")]
    Empty,
    #[error("{n} validators exceed the supported maximum of {max}")]
    TooMany { n: usize, max: usize },
    #[error(
        "{n} validators cannot tolerate max_byzantine_nodes = {f}: PBFT needs n >= 3f+1 = {needed}"
    )]
    TooFewForFaults { n: usize, f: usize, needed: usize },
    #[error("{n} validators are fewer than min_validators = {min}")]
    BelowMinimum { n: usize, min: usize },
    #[error("validators {first} and {second} share the public key {key}")]
    DuplicateKey {
        first: String,
        second: String,
        key: String,
    },
    #[error("two validators are both named {0:?}")]
    DuplicateName(String),
}

impl ValidatorSet {
    /// Builds a set that tolerates `max_faulty` Byzantine validators.
    pub fn new(
        validators: Vec<Validator>,
        max_faulty: usize,
    ) -> Result<ValidatorSet, ValidatorSetError> {
        let n = validators.len();
        if n == 0 {
            return Err(ValidatorSetError::Empty);
        }
        if n > MAX_VALIDATORS {
            return Err(ValidatorSetError::TooMany {
                n,
                max: MAX_VALIDATORS,
            });
        }
        let needed = 3 * max_faulty + 1;
        if n < needed {
            return Err(ValidatorSetError::TooFewForFaults {
                n,
                f: max_faulty,
                needed,
            });
        }
        for (i, a) in validators.iter().enumerate() {
            for b in &validators[i + 1..] {
                if a.public_key == b.public_key {
                    return Err(ValidatorSetError::DuplicateKey {
                        first: a.name.clone(),
                        second: b.name.clone(),
                        key: a.public_key.to_hex(),
                    });
                }
                if a.name == b.name {
                    return Err(ValidatorSetError::DuplicateName(a.name.clone()));
                }
            }
        }
        Ok(ValidatorSet {
            validators,
            max_faulty,
        })
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// f: how many Byzantine validators the set tolerates.
    pub fn max_faulty(&self) -> usize {
        self.max_faulty
    }

    /// Votes needed so that any two quorums share at least f + 1 validators, hence at least
    /// one honest one: the smallest q with 2q - n >= f + 1. For n = 3f + 1 this is 2f + 1.
    pub fn quorum(&self) -> usize {
        (self.len() + self.max_faulty) / 2 + 1
    }

    /// Votes that guarantee at least one honest voter: f + 1.
    pub fn weak_quorum(&self) -> usize {
        self.max_faulty + 1
    }

    pub fn get(&self, id: ValidatorId) -> Option<&Validator> {
        self.validators.get(usize::from(id.0))
    }

    pub fn id_of(&self, key: &PublicKey) -> Option<ValidatorId> {
        self.validators
            .iter()
            .position(|v| v.public_key == *key)
            .and_then(|i| u16::try_from(i).ok())
            .map(ValidatorId)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ValidatorId, &Validator)> {
        // Indices fit in u16: `new` refuses sets larger than MAX_VALIDATORS.
        self.validators
            .iter()
            .enumerate()
            .map(|(i, v)| (ValidatorId(i as u16), v))
    }

    pub fn ids(&self) -> impl Iterator<Item = ValidatorId> + '_ {
        (0..self.validators.len()).map(|i| ValidatorId(i as u16))
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// The primary of `view` under round-robin rotation (Castro & Liskov §4.1: p = v mod |R|).
    pub fn primary(&self, view: u64) -> ValidatorId {
        ValidatorId((view % self.validators.len() as u64) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize, f: usize) -> Result<ValidatorSet, ValidatorSetError> {
        let validators = (0..n)
            .map(|i| Validator {
                name: format!("node{i}"),
                public_key: PublicKey([i as u8 + 1; 32]),
                p2p_address: format!("127.0.0.1:{}", 8000 + i),
                api_address: format!("127.0.0.1:{}", 8080 + i),
            })
            .collect();
        ValidatorSet::new(validators, f)
    }

    #[test]
    fn quorum_table() {
        // (n, f, quorum): any two quorums intersect in at least f + 1 validators.
        for (n, f, q) in [
            (1, 0, 1),
            (3, 0, 2),
            (4, 1, 3),
            (5, 1, 4),
            (6, 1, 4),
            (7, 2, 5),
            (10, 3, 7),
            (13, 4, 9),
        ] {
            let s = set(n, f).unwrap();
            assert_eq!(s.quorum(), q, "n={n} f={f}");
            assert!(
                2 * q > n + f,
                "intersection of two quorums holds f + 1: n={n} f={f}"
            );
            assert!(q <= n - f, "liveness n={n} f={f}");
        }
    }

    #[test]
    fn three_f_plus_one_is_enforced() {
        assert_eq!(
            set(3, 1).unwrap_err().to_string(),
            "3 validators cannot tolerate max_byzantine_nodes = 1: PBFT needs n >= 3f+1 = 4"
        );
        assert!(set(4, 1).is_ok());
        assert_eq!(set(0, 0).unwrap_err(), ValidatorSetError::Empty);
    }

    #[test]
    fn primary_rotates_round_robin() {
        let s = set(4, 1).unwrap();
        let primaries: Vec<u16> = (0..6).map(|v| s.primary(v).0).collect();
        assert_eq!(primaries, vec![0, 1, 2, 3, 0, 1]);
    }
}
