//! The pool's limits: one named bound per resource, with defaults and validation.

use aegis_types::MAX_TX_PAYLOAD_BYTES;
use aegis_types::genesis::MAX_BLOCK_TXS_LIMIT;
use aegis_types::tx::MAX_CHAIN_ID_BYTES;

use crate::size::TX_FIXED_ENCODED_BYTES;

/// Room allowed on top of the payload for everything else a transaction carries (version,
/// chain id, sender, nonce, length prefixes, signature). The largest structurally valid
/// transaction needs [`TX_FIXED_ENCODED_BYTES`] + [`MAX_CHAIN_ID_BYTES`] of it.
pub const TX_ENVELOPE_BYTES: usize = 1024;

/// Default bound on pending transactions: one full block of the largest size genesis allows.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 10_000;
/// Default bound on the sum of the pending transactions' encoded sizes: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Default bound on one transaction's encoded size: the largest payload plus the envelope.
pub const DEFAULT_MAX_TRANSACTION_BYTES: usize = MAX_TX_PAYLOAD_BYTES + TX_ENVELOPE_BYTES;
/// Default number of committed ids remembered to refuse replays.
pub const DEFAULT_RECENT_COMMITTED: usize = 100_000;

/// Largest `max_transactions` accepted: a million pending transactions is already far more
/// than any block pipeline drains in a retry interval.
pub const MAX_TRANSACTIONS_LIMIT: usize = 1_000_000;
/// Largest `max_bytes` accepted: 1 GiB of pending transactions.
pub const MAX_BYTES_LIMIT: usize = 1024 * 1024 * 1024;
/// Largest `max_transaction_bytes` accepted: nothing above it can be structurally valid.
pub const MAX_TRANSACTION_BYTES_LIMIT: usize = DEFAULT_MAX_TRANSACTION_BYTES;
/// Largest `recent_committed` accepted: ten million ids, about 1 GiB of memory.
pub const MAX_RECENT_COMMITTED_LIMIT: usize = 10_000_000;

// The envelope holds every field but the payload, even with the longest chain id.
const _: () = assert!(TX_FIXED_ENCODED_BYTES + MAX_CHAIN_ID_BYTES <= TX_ENVELOPE_BYTES);
// A default pool can hold one transaction of the default maximal size ...
const _: () = assert!(DEFAULT_MAX_TRANSACTION_BYTES <= DEFAULT_MAX_BYTES);
// ... and one block of the most transactions genesis may allow.
const _: () = assert!(MAX_BLOCK_TXS_LIMIT as usize <= DEFAULT_MAX_TRANSACTIONS);
// Every default lies within its limit.
const _: () = assert!(DEFAULT_MAX_TRANSACTIONS <= MAX_TRANSACTIONS_LIMIT);
const _: () = assert!(DEFAULT_MAX_BYTES <= MAX_BYTES_LIMIT);
const _: () = assert!(DEFAULT_MAX_TRANSACTION_BYTES <= MAX_TRANSACTION_BYTES_LIMIT);
const _: () = assert!(DEFAULT_RECENT_COMMITTED <= MAX_RECENT_COMMITTED_LIMIT);

/// The pool's bounds. Every field must be non-zero and at most its `*_LIMIT` constant, and
/// `max_transaction_bytes <= max_bytes`; [`MempoolConfig::validate`] checks it all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most transactions pending at once ([`DEFAULT_MAX_TRANSACTIONS`]).
    pub max_transactions: usize,
    /// Most bytes pending at once, summed over canonical encoded sizes ([`DEFAULT_MAX_BYTES`]).
    pub max_bytes: usize,
    /// Largest canonical encoded size of one transaction ([`DEFAULT_MAX_TRANSACTION_BYTES`]).
    pub max_transaction_bytes: usize,
    /// How many committed ids are remembered to refuse replays, oldest forgotten first
    /// ([`DEFAULT_RECENT_COMMITTED`]).
    pub recent_committed: usize,
}

impl Default for MempoolConfig {
    fn default() -> MempoolConfig {
        MempoolConfig {
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_transaction_bytes: DEFAULT_MAX_TRANSACTION_BYTES,
            recent_committed: DEFAULT_RECENT_COMMITTED,
        }
    }
}

/// A configuration the pool refuses to run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("mempool {field} must be at least 1")]
    Zero { field: &'static str },
    #[error("mempool {field} is {value}, above the limit of {max}")]
    AboveLimit {
        field: &'static str,
        value: usize,
        max: usize,
    },
    #[error(
        "mempool max_transaction_bytes ({max_transaction_bytes}) exceeds max_bytes \
         ({max_bytes}): such a transaction could never be admitted"
    )]
    TransactionLargerThanPool {
        max_transaction_bytes: usize,
        max_bytes: usize,
    },
}

impl MempoolConfig {
    /// Checks every bound and the relationships between them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Destructured so that a new field cannot be added without deciding how to check it.
        let MempoolConfig {
            max_transactions,
            max_bytes,
            max_transaction_bytes,
            recent_committed,
        } = *self;
        for (field, value, max) in [
            ("max_transactions", max_transactions, MAX_TRANSACTIONS_LIMIT),
            ("max_bytes", max_bytes, MAX_BYTES_LIMIT),
            (
                "max_transaction_bytes",
                max_transaction_bytes,
                MAX_TRANSACTION_BYTES_LIMIT,
            ),
            (
                "recent_committed",
                recent_committed,
                MAX_RECENT_COMMITTED_LIMIT,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
            if value > max {
                return Err(ConfigError::AboveLimit { field, value, max });
            }
        }
        if max_transaction_bytes > max_bytes {
            return Err(ConfigError::TransactionLargerThanPool {
                max_transaction_bytes,
                max_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let config = MempoolConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.max_transactions, 10_000);
        assert_eq!(config.max_bytes, 64 * 1024 * 1024);
        assert_eq!(config.max_transaction_bytes, 65_536 + 1024);
        assert_eq!(config.recent_committed, 100_000);
    }

    /// Sets one field of a configuration.
    type Setter = fn(&mut MempoolConfig, usize);

    /// Each field with its limit and a way to set it.
    const FIELDS: [(&str, usize, Setter); 4] = [
        ("max_transactions", MAX_TRANSACTIONS_LIMIT, |c, v| {
            c.max_transactions = v
        }),
        ("max_bytes", MAX_BYTES_LIMIT, |c, v| c.max_bytes = v),
        (
            "max_transaction_bytes",
            MAX_TRANSACTION_BYTES_LIMIT,
            |c, v| c.max_transaction_bytes = v,
        ),
        ("recent_committed", MAX_RECENT_COMMITTED_LIMIT, |c, v| {
            c.recent_committed = v
        }),
    ];

    #[test]
    fn each_zero_field_is_refused_by_name() {
        for (field, _, set) in FIELDS {
            let mut config = MempoolConfig::default();
            set(&mut config, 0);
            assert_eq!(
                config.validate(),
                Err(ConfigError::Zero { field }),
                "{field}"
            );
        }
    }

    #[test]
    fn each_field_above_its_limit_is_refused_by_name() {
        for (field, max, set) in FIELDS {
            let mut config = MempoolConfig::default();
            set(&mut config, max);
            assert_eq!(config.validate(), Ok(()), "{field} at its limit");
            set(&mut config, max + 1);
            assert_eq!(
                config.validate(),
                Err(ConfigError::AboveLimit {
                    field,
                    value: max + 1,
                    max
                }),
                "{field}"
            );
        }
    }

    #[test]
    fn a_transaction_bound_above_the_pool_bound_is_refused() {
        let config = MempoolConfig {
            max_bytes: 1000,
            max_transaction_bytes: 1001,
            ..MempoolConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::TransactionLargerThanPool {
                max_transaction_bytes: 1001,
                max_bytes: 1000
            })
        );
        let equal = MempoolConfig {
            max_transaction_bytes: 1000,
            ..config
        };
        assert_eq!(equal.validate(), Ok(()));
    }
}
