//! The genesis document: parsing, validation errors with their exact messages, and the hash.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use aegis_testkit::GenesisBuilder;
use aegis_types::{Genesis, GenesisError};

fn genesis(n: usize, f: u32) -> Genesis {
    GenesisBuilder::new(n).max_byzantine_nodes(f).build()
}

#[test]
fn json_round_trip_keeps_the_hash() {
    let g = genesis(4, 1);
    let parsed = Genesis::from_json(&g.to_json_pretty()).unwrap();
    assert_eq!(parsed, g);
    assert_eq!(parsed.hash(), g.hash());
    let mut other = g.clone();
    other.chain_id = "other-chain".into();
    assert_ne!(other.hash(), g.hash());
}

#[test]
fn three_f_plus_one_is_checked() {
    let error = Genesis::from_json(&genesis(6, 2).to_json_pretty()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "validators: 6 validators cannot tolerate max_byzantine_nodes = 2: PBFT needs n >= 3f+1 = 7"
    );
    assert!(Genesis::from_json(&genesis(7, 2).to_json_pretty()).is_ok());
}

#[test]
fn a_raft_genesis_tolerates_no_byzantine_validator() {
    let raft = |f| {
        GenesisBuilder::new(4)
            .algorithm(aegis_types::ConsensusAlgorithm::Raft)
            .max_byzantine_nodes(f)
            .build()
    };
    let error = Genesis::from_json(&raft(1).to_json_pretty()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "consensus.max_byzantine_nodes: must be 0 for raft, which tolerates crashed validators only (a commit certificate is then a majority), got 1"
    );
    let g = raft(0);
    assert!(Genesis::from_json(&g.to_json_pretty()).is_ok());
    assert_eq!(g.validator_set().unwrap().quorum(), 3, "a majority of 4");
}

#[test]
fn malformed_json_names_line_and_column() {
    let error =
        Genesis::from_json("{\n  \"chain_id\": \"x\",\n  \"validators\": 5\n}").unwrap_err();
    assert!(
        matches!(error, GenesisError::Json { line: 3, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "line 3, column 17: invalid type: integer `5`, expected a sequence"
    );
    let error = Genesis::from_json("{\"chain_id\": \"x\", \"validatorz\": []}").unwrap_err();
    assert!(
        error.to_string().contains("unknown field `validatorz`"),
        "{error}"
    );
}

#[test]
fn duplicate_keys_names_and_bad_parameters_are_refused() {
    let mut g = genesis(4, 1);
    g.validators[3].public_key = g.validators[1].public_key;
    assert!(
        g.validate()
            .unwrap_err()
            .to_string()
            .starts_with("validators: validators node1 and node3 share the public key")
    );
    let mut g = genesis(4, 1);
    g.validators[3].name = "node0".into();
    assert_eq!(
        g.validate().unwrap_err().to_string(),
        "validators: two validators are both named \"node0\""
    );
    let mut g = genesis(4, 1);
    g.chain_id = "bad chain!".into();
    assert!(
        g.validate()
            .unwrap_err()
            .to_string()
            .starts_with("chain_id must be 1 to 64 characters")
    );
    let mut g = genesis(4, 1);
    g.consensus.max_block_txs = 0;
    assert_eq!(
        g.validate().unwrap_err().to_string(),
        "consensus.max_block_txs: must be between 1 and 10000, got 0"
    );
    let mut g = genesis(4, 1);
    g.consensus.checkpoint_interval = 0;
    assert_eq!(
        g.validate().unwrap_err().to_string(),
        "consensus.checkpoint_interval: must be at least 1"
    );
}
