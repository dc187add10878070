//! Golden vectors for the canonical encoding (`docs/encoding.md`).
//!
//! The expected bytes, hashes and signatures live in `tests/golden/encoding-v1.json`, checked
//! into the repository: any change to a layout, a domain tag or the hashing fails here. After
//! a deliberate, versioned change, regenerate with `AEGIS_UPDATE_GOLDEN=1 cargo test -p
//! aegis-crypto --test golden` and review the diff. Clients in other languages can test
//! their encoders against the same file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeMap;

use aegis_crypto::{SecretKey, verify, verify_commit_certificate};
use aegis_types::encoding::TAG_BLOCK_HEADER;
use aegis_types::{
    Block, CommitCertificate, CommitVote, ConsensusAlgorithm, ConsensusParams, ENCODING_VERSION,
    Genesis, Hash, MerkleProof, TxBody, Validator, ValidatorId, merkle_root,
};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/encoding-v1.json");

fn vectors() -> BTreeMap<String, String> {
    let client = SecretKey::from_bytes([0x11; 32]);
    let validator_keys: Vec<SecretKey> = (0..4u8)
        .map(|i| SecretKey::from_bytes([0x20 + i; 32]))
        .collect();
    let mut v = BTreeMap::new();

    let body = TxBody {
        version: ENCODING_VERSION,
        chain_id: "golden-chain".into(),
        sender: client.public_key(),
        nonce: 42,
        payload: b"transfer 10 from alice to bob".to_vec(),
    };
    let tx = client.sign_transaction(body.clone());
    v.insert("client_public_key".into(), client.public_key().to_hex());
    v.insert("tx_signing_bytes".into(), hex::encode(body.signing_bytes()));
    v.insert("tx_id".into(), tx.id().to_hex());
    v.insert("tx_signature".into(), tx.signature.to_hex());
    v.insert("tx_json".into(), serde_json::to_string(&tx).unwrap());

    let genesis = Genesis {
        chain_id: "golden-chain".into(),
        genesis_time_ms: 1_700_000_000_000,
        validators: validator_keys
            .iter()
            .enumerate()
            .map(|(i, k)| Validator {
                name: format!("node{i}"),
                public_key: k.public_key(),
                p2p_address: format!("10.0.0.{i}:8000"),
                api_address: format!("10.0.0.{i}:8080"),
            })
            .collect(),
        // Every field spelled out: a golden vector must not move with a default.
        consensus: ConsensusParams {
            algorithm: ConsensusAlgorithm::Pbft,
            max_byzantine_nodes: 1,
            checkpoint_interval: 100,
            max_block_txs: 1000,
            pipeline_depth: 4,
        },
    };
    v.insert("genesis_hash".into(), genesis.hash().to_hex());

    let txs: Vec<_> = (0..3u64)
        .map(|nonce| {
            client.sign_transaction(TxBody {
                nonce,
                ..body.clone()
            })
        })
        .collect();
    let ids: Vec<Hash> = txs.iter().map(|t| t.id()).collect();
    v.insert("merkle_root_0".into(), merkle_root(&[]).to_hex());
    v.insert("merkle_root_3".into(), merkle_root(&ids).to_hex());
    let proof = MerkleProof::build(&ids, 2).unwrap();
    v.insert(
        "merkle_proof_3_2".into(),
        proof
            .path
            .iter()
            .map(Hash::to_hex)
            .collect::<Vec<_>>()
            .join(","),
    );

    let block = Block::new(
        "golden-chain",
        1,
        genesis.hash(),
        validator_keys[0].public_key(),
        0,
        1_700_000_001_000,
        txs,
    );
    let mut header_bytes = TAG_BLOCK_HEADER.to_vec();
    header_bytes.extend(aegis_types::encoding::encode(&block.header));
    v.insert("block_header_bytes".into(), hex::encode(header_bytes));
    v.insert("block_hash".into(), block.hash().to_hex());

    let vote = CommitVote::new("golden-chain", 1, 0, block.hash());
    v.insert(
        "commit_vote_signing_bytes".into(),
        hex::encode(vote.signing_bytes()),
    );
    let cert = CommitCertificate {
        height: 1,
        view: 0,
        block_hash: block.hash(),
        signatures: (0..3)
            .map(|i| validator_keys[i].sign_commit_vote(ValidatorId(i as u16), &vote))
            .collect(),
    };
    let set = genesis.validator_set().unwrap();
    assert_eq!(
        verify_commit_certificate(&cert, "golden-chain", &set),
        Ok(())
    );
    v.insert(
        "commit_certificate_encoding".into(),
        hex::encode(aegis_types::encoding::encode(&cert)),
    );
    assert!(verify(&client.public_key(), &body.signing_bytes(), &tx.signature).is_ok());
    v
}

#[test]
fn canonical_encoding_matches_golden_vectors() {
    let actual = vectors();
    if std::env::var_os("AEGIS_UPDATE_GOLDEN").is_some() {
        // Regenerating in CI would make this test pass whatever changed.
        assert!(
            std::env::var_os("CI").is_none(),
            "AEGIS_UPDATE_GOLDEN must not be set in CI"
        );
        let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        std::fs::write(GOLDEN, text).unwrap();
        return;
    }
    let expected: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(GOLDEN).expect("golden file is checked in"))
            .unwrap();
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "vector names changed"
    );
    for (name, value) in &expected {
        assert_eq!(
            &actual[name], value,
            "golden vector {name} changed: the canonical encoding is not stable"
        );
    }
}

#[test]
fn transaction_json_round_trips() {
    let client = SecretKey::from_bytes([0x11; 32]);
    let tx = client.sign_transaction(TxBody {
        version: ENCODING_VERSION,
        chain_id: "c".into(),
        sender: client.public_key(),
        nonce: 1,
        payload: vec![0, 1, 2, 255],
    });
    let json = serde_json::to_string(&tx).unwrap();
    assert_eq!(
        serde_json::from_str::<aegis_types::Transaction>(&json).unwrap(),
        tx
    );
    let encoded = aegis_types::encoding::encode(&tx);
    assert_eq!(
        aegis_types::encoding::decode::<aegis_types::Transaction>(&encoded).unwrap(),
        tx
    );
    // Trailing bytes are refused.
    let mut long = encoded.clone();
    long.push(0);
    assert!(aegis_types::encoding::decode::<aegis_types::Transaction>(&long).is_err());
}
