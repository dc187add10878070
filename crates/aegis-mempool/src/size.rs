//! A transaction's size: the length of its canonical encoding (`docs/encoding.md`), which is
//! what it costs on the wire, in a block and in storage.

use aegis_types::Transaction;

/// Encoded bytes of a transaction apart from its chain id and payload: version (1), chain id
/// length prefix (4), sender (32), nonce (8), payload length prefix (4), signature (64).
pub const TX_FIXED_ENCODED_BYTES: usize = 1 + 4 + 32 + 8 + 4 + 64;

/// The length of `aegis_types::encoding::encode(tx)`, computed without encoding (which would
/// copy the payload). A unit test holds the two equal.
pub fn encoded_len(tx: &Transaction) -> usize {
    TX_FIXED_ENCODED_BYTES
        .saturating_add(tx.body.chain_id.len())
        .saturating_add(tx.body.payload.len())
}

#[cfg(test)]
mod tests {
    use aegis_types::encoding::encode;
    use aegis_types::{PublicKey, Signature, TxBody};
    use proptest::prelude::*;

    use super::*;

    fn tx(chain_id: String, payload: Vec<u8>, nonce: u64) -> Transaction {
        Transaction {
            body: TxBody {
                version: 1,
                chain_id,
                sender: PublicKey([7; 32]),
                nonce,
                payload,
            },
            signature: Signature([9; 64]),
        }
    }

    #[test]
    fn empty_transaction_is_the_fixed_part() {
        let empty = tx(String::new(), Vec::new(), 0);
        assert_eq!(encode(&empty).len(), TX_FIXED_ENCODED_BYTES);
        assert_eq!(encoded_len(&empty), TX_FIXED_ENCODED_BYTES);
    }

    proptest! {
        #[test]
        fn matches_the_canonical_encoding(
            chain_id in "[a-z0-9-]{0,64}",
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
            nonce in any::<u64>(),
        ) {
            let tx = tx(chain_id, payload, nonce);
            prop_assert_eq!(encoded_len(&tx), encode(&tx).len());
        }
    }
}
