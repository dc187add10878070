//! Signing, single and batch verification, commit certificates.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use aegis_crypto::{
    BatchVerifier, CertError, SecretKey, verify, verify_commit_certificate,
    verify_commit_certificates, verify_transaction, verify_transactions,
};
use aegis_types::{
    CommitCertificate, CommitVote, ENCODING_VERSION, Hash, PublicKey, Signature, TxBody, Validator,
    ValidatorId, ValidatorSet,
};

fn key(i: u8) -> SecretKey {
    SecretKey::from_bytes([i; 32])
}

fn tx(signer: &SecretKey, nonce: u64) -> aegis_types::Transaction {
    signer.sign_transaction(TxBody {
        version: ENCODING_VERSION,
        chain_id: "test-chain".into(),
        sender: signer.public_key(),
        nonce,
        payload: vec![nonce as u8; 10],
    })
}

#[test]
fn sign_then_verify_and_reject_other_message_or_key() {
    let k = key(1);
    let sig = k.sign(b"hello");
    assert!(verify(&k.public_key(), b"hello", &sig).is_ok());
    assert!(verify(&k.public_key(), b"hellO", &sig).is_err());
    assert!(verify(&key(2).public_key(), b"hello", &sig).is_err());
    let mut flipped = sig;
    flipped.0[10] ^= 0x40;
    assert!(verify(&k.public_key(), b"hello", &flipped).is_err());
}

#[test]
fn transaction_signature_covers_every_field() {
    let k = key(3);
    let good = tx(&k, 7);
    assert!(verify_transaction(&good).is_ok());
    let mut changed = good.clone();
    changed.body.nonce += 1;
    assert!(verify_transaction(&changed).is_err());
    let mut changed = good.clone();
    changed.body.payload.push(0);
    assert!(verify_transaction(&changed).is_err());
    let mut changed = good;
    changed.body.chain_id = "other-chain".into();
    assert!(verify_transaction(&changed).is_err());
}

#[test]
fn batch_of_valid_signatures_passes() {
    let txs: Vec<_> = (0..64).map(|i| tx(&key(i as u8 + 1), i)).collect();
    assert_eq!(verify_transactions(&txs), Ok(()));
    assert_eq!(BatchVerifier::new().verify(), Ok(()));
}

#[test]
fn batch_with_one_bad_signature_names_it() {
    let mut txs: Vec<_> = (0..32).map(|i| tx(&key(9), i)).collect();
    txs[17].signature = Signature([7u8; 64]);
    assert_eq!(verify_transactions(&txs), Err(vec![17]));
    // A signature moved onto another transaction is also caught.
    let mut txs: Vec<_> = (0..8).map(|i| tx(&key(9), i)).collect();
    txs[3].signature = txs[4].signature;
    assert_eq!(verify_transactions(&txs), Err(vec![3]));
}

#[test]
fn malformed_public_key_is_an_error_not_a_panic() {
    // Not a point on the curve in compressed form (y coordinate out of range is accepted by
    // ZIP-215, so use bytes that fail decompression).
    let mut bad = PublicKey([0xff; 32]);
    bad.0[31] = 0x7f;
    let result = verify(&bad, b"m", &Signature([0; 64]));
    assert!(result.is_err());
}

fn validator_set(keys: &[SecretKey], f: usize) -> ValidatorSet {
    let validators = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Validator {
            name: format!("node{i}"),
            public_key: k.public_key(),
            p2p_address: format!("127.0.0.1:{}", 8000 + i),
            api_address: format!("127.0.0.1:{}", 8080 + i),
        })
        .collect();
    ValidatorSet::new(validators, f).unwrap()
}

fn certificate(keys: &[SecretKey], signers: &[usize]) -> CommitCertificate {
    certificate_at(keys, signers, 5)
}

fn certificate_at(keys: &[SecretKey], signers: &[usize], height: u64) -> CommitCertificate {
    let vote = CommitVote::new(
        "test-chain",
        height,
        2,
        Hash::digest(format!("block {height}").as_bytes()),
    );
    CommitCertificate {
        height,
        view: 2,
        block_hash: vote.block_hash,
        signatures: signers
            .iter()
            .map(|&i| keys[i].sign_commit_vote(ValidatorId(i as u16), &vote))
            .collect(),
    }
}

#[test]
fn commit_certificate_needs_a_quorum_of_valid_distinct_signatures() {
    let keys: Vec<_> = (1..=4).map(key).collect();
    let set = validator_set(&keys, 1);
    assert_eq!(
        verify_commit_certificate(&certificate(&keys, &[0, 1, 3]), "test-chain", &set),
        Ok(())
    );
    assert_eq!(
        verify_commit_certificate(&certificate(&keys, &[0, 1]), "test-chain", &set),
        Err(CertError::TooFewSignatures { have: 2, need: 3 })
    );
    assert_eq!(
        verify_commit_certificate(&certificate(&keys, &[0, 1, 1]), "test-chain", &set),
        Err(CertError::NotSortedOrDuplicate(ValidatorId(1)))
    );
    // Wrong chain: every signature fails.
    assert!(matches!(
        verify_commit_certificate(&certificate(&keys, &[0, 1, 2]), "other", &set),
        Err(CertError::BadSignatures(bad)) if bad.len() == 3
    ));
    // One signature by the wrong key.
    let mut cert = certificate(&keys, &[0, 1, 2]);
    cert.signatures[2].signature = keys[3].sign(&cert.vote("test-chain").signing_bytes());
    assert_eq!(
        verify_commit_certificate(&cert, "test-chain", &set),
        Err(CertError::BadSignatures(vec![ValidatorId(2)]))
    );
    // An unknown validator index.
    let mut cert = certificate(&keys, &[0, 1, 2]);
    cert.signatures.push(aegis_types::CommitSignature {
        validator: ValidatorId(9),
        signature: Signature([0; 64]),
    });
    assert_eq!(
        verify_commit_certificate(&cert, "test-chain", &set),
        Err(CertError::UnknownValidator(ValidatorId(9)))
    );
    // A changed height or view invalidates the signatures.
    let mut cert = certificate(&keys, &[0, 1, 2]);
    cert.view = 3;
    assert!(matches!(
        verify_commit_certificate(&cert, "test-chain", &set),
        Err(CertError::BadSignatures(_))
    ));
}

/// A synced range's certificates in one batch: all good passes; a bad one is named by its
/// index with the validators whose signatures fail, and structural faults come first.
#[test]
fn many_certificates_verify_in_one_batch_and_the_bad_one_is_named() {
    let keys: Vec<_> = (1..=4).map(key).collect();
    let set = validator_set(&keys, 1);
    let mut certs: Vec<_> = (1..=20)
        .map(|h| certificate_at(&keys, &[0, 1, 2], h))
        .collect();
    assert_eq!(
        verify_commit_certificates(&certs, "test-chain", &set),
        Ok(())
    );
    assert_eq!(verify_commit_certificates(&[], "test-chain", &set), Ok(()));
    // Certificate 7 carries a signature made for another height.
    certs[7].signatures[1] = certificate_at(&keys, &[1], 99).signatures.remove(0);
    assert_eq!(
        verify_commit_certificates(&certs, "test-chain", &set),
        Err((7, CertError::BadSignatures(vec![ValidatorId(1)])))
    );
    // Certificate 3 is one signature short: named before any signature is checked.
    certs[3].signatures.pop();
    assert_eq!(
        verify_commit_certificates(&certs, "test-chain", &set),
        Err((3, CertError::TooFewSignatures { have: 2, need: 3 }))
    );
}

/// The ZIP-215 rules the ledger is written under, pinned: a change of Ed25519 library (or of
/// its version) that accepted or refused differently would split validators that run
/// different builds. Each case is checked alone and in a batch, which must agree.
#[test]
fn zip215_edge_cases_are_decided_the_same_alone_and_in_a_batch() {
    // The identity point, canonical (y = 1) and non-canonical (y = p + 1 = 2^255 - 18).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut identity_noncanonical = [0xffu8; 32];
    identity_noncanonical[0] = 0xee;
    identity_noncanonical[31] = 0x7f;
    let signature = |r: [u8; 32], s: [u8; 32]| {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&r);
        bytes[32..].copy_from_slice(&s);
        Signature(bytes)
    };
    // s = l (the group order): not a canonical scalar, refused by every rule set.
    let order: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let cases = [
        // Small-order key and R, s = 0: [8]([s]B - R - [k]A) = 0, so ZIP-215 accepts.
        (
            "identity key and R",
            identity,
            signature(identity, [0; 32]),
            true,
        ),
        // ZIP-215 accepts non-canonical encodings of A and R (RFC 8032 strict would not).
        (
            "non-canonical identity key and R",
            identity_noncanonical,
            signature(identity_noncanonical, [0; 32]),
            true,
        ),
        ("s not reduced", identity, signature(identity, order), false),
    ];
    for (name, key, signature, accepted) in cases {
        let key = PublicKey(key);
        for message in [&b""[..], b"aegis", &[0xab; 300]] {
            assert_eq!(
                verify(&key, message, &signature).is_ok(),
                accepted,
                "{name}: alone"
            );
            let mut batch = BatchVerifier::new();
            batch.queue(key, message.to_vec(), signature);
            // With a good signature beside it, so the batch is not trivially one item.
            let good = key_good_signature(message);
            batch.queue(good.0, message.to_vec(), good.1);
            let expected = if accepted { Ok(()) } else { Err(vec![0]) };
            assert_eq!(batch.verify(), expected, "{name}: in a batch");
        }
    }
}

fn key_good_signature(message: &[u8]) -> (PublicKey, Signature) {
    let signer = key(42);
    (signer.public_key(), signer.sign(message))
}
