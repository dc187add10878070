//! A transaction's size: the length of its canonical encoding (`docs/encoding.md`), which is
//! what it costs on the wire, in a block and in storage.

use aegis_types::Transaction;

pub use aegis_types::tx::TX_FIXED_ENCODED_BYTES;

/// The length of `aegis_types::encoding::encode(tx)`, computed without encoding (which would
/// copy the payload): [`Transaction::encoded_len`]. A unit test holds the two equal.
pub fn encoded_len(tx: &Transaction) -> usize {
    tx.encoded_len()
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
