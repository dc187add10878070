//! Signed transactions and small pools for the mempool's tests.

#![allow(dead_code, reason = "each test binary uses a different part")]

use aegis_crypto::SecretKey;
use aegis_types::{Transaction, TxBody};

pub const CHAIN: &str = "aegis-test";

/// A deterministic client key; `n` tells clients apart.
pub fn client(n: u8) -> SecretKey {
    SecretKey::from_bytes([n; 32])
}

pub fn body(client_n: u8, nonce: u64, payload_len: usize) -> TxBody {
    TxBody {
        version: 1,
        chain_id: CHAIN.to_owned(),
        sender: client(client_n).public_key(),
        nonce,
        payload: vec![0xab; payload_len],
    }
}

/// A correctly signed transaction.
pub fn signed(client_n: u8, nonce: u64, payload_len: usize) -> Transaction {
    client(client_n).sign_transaction(body(client_n, nonce, payload_len))
}

/// The same transaction as [`signed`] (same id) with a corrupted signature.
pub fn forged(client_n: u8, nonce: u64, payload_len: usize) -> Transaction {
    let mut tx = signed(client_n, nonce, payload_len);
    tx.signature.0[0] ^= 0x01;
    tx
}

/// A correctly signed transaction for another chain.
pub fn other_chain(client_n: u8, nonce: u64) -> Transaction {
    let mut body = body(client_n, nonce, 8);
    body.chain_id = "another-chain".to_owned();
    client(client_n).sign_transaction(body)
}
