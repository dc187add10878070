//! A validator that sends consensus messages which fail verification: three honest `aegis run`
//! processes and a rogue that holds the fourth validator's real key and TLS files (so it
//! authenticates) but sends undecodable frames and forged votes. The honest nodes count it
//! (`aegis_consensus_byzantine_events_total`), log it with its id and address, and keep
//! committing transactions without it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::time::Duration;

use aegis_consensus::pbft::{PbftMessage, Prepare};
use aegis_crypto::SecretKey;
use aegis_p2p::{Identity, Message, P2pConfig, TlsFiles, tags};
use aegis_testkit::wait::wait_until;
use aegis_types::{Genesis, Hash, Signature, ValidatorId};
use common::network::Network;
use common::{http_get, http_post};

const ROGUE: usize = 3;

/// The rogue's secret key: validator 3's key file, decrypted with its home's .env.
fn rogue_key(network: &Network) -> SecretKey {
    let home = network.home(ROGUE);
    let env = std::fs::read_to_string(home.join(".env")).unwrap();
    let passphrase = env
        .lines()
        .find_map(|line| line.strip_prefix("AEGIS_ENCRYPTION_KEY="))
        .expect("the testnet wrote the node's passphrase")
        .trim_matches('"');
    aegis_crypto::read_key_file(&home.join("config/node_key.json"), passphrase).unwrap()
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics").unwrap_or_default();
    body.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_validator_sending_forged_messages_is_counted_logged_and_cannot_stall_the_others() {
    let mut network = Network::start(4);
    assert!(network.stop_node(ROGUE).success());
    let genesis: Genesis =
        serde_json::from_str(&std::fs::read_to_string(network.out.join("genesis.json")).unwrap())
            .unwrap();
    let key = rogue_key(&network);
    let home = network.home(ROGUE);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = P2pConfig::new(TlsFiles {
        cert_file: home.join("config/tls/node.crt"),
        key_file: home.join("config/tls/node.key"),
        ca_file: Some(home.join("config/tls/ca.crt")),
    });
    config.host = "127.0.0.1".into();
    config.port = network.p2p_port(ROGUE);
    config.bootstrap_nodes = (0..3)
        .map(|i| format!("127.0.0.1:{}", network.p2p_port(i)))
        .collect();
    let identity = Identity::new(key.clone(), &genesis).unwrap();
    let (rogue, _inbox) = runtime.block_on(aegis_testkit::p2p::start(config, identity));
    wait_until(
        Duration::from_secs(60),
        || {
            format!(
                "the rogue connected to the three others: {:?}",
                rogue.peers()
            )
        },
        || rogue.peer_count() == 3,
    );

    // Junk that does not decode, and a PREPARE whose signature is not validator 3's.
    let forged = PbftMessage::Prepare(Prepare {
        view: 0,
        seq: 1,
        digest: Hash::digest(b"nothing"),
        from: ValidatorId(ROGUE as u16),
        signature: Signature([7; 64]),
    });
    let forged = aegis_types::encoding::encode(&forged);
    for _ in 0..20 {
        rogue.broadcast(Message::new(tags::CONSENSUS, vec![0xff, 0x00, 0x13]));
        rogue.broadcast(Message::new(tags::CONSENSUS, forged.clone()));
    }
    wait_until(
        Duration::from_secs(30),
        || "every honest node counted the forged votes".to_owned(),
        || {
            (0..3).all(|i| {
                metric(
                    network.metrics_port(i),
                    "aegis_consensus_byzantine_events_total{reason=\"bad_signature\"}",
                ) >= 1.0
            })
        },
    );
    let log = std::fs::read_to_string(network.home(0).join("logs/aegis.log")).unwrap();
    let line = log
        .lines()
        .find(|line| line.contains("byzantine evidence") && line.contains("undecodable"))
        .unwrap_or_else(|| panic!("no log line of the undecodable message:\n{log}"));
    assert!(line.contains("127.0.0.1"), "the address is named: {line}");
    assert!(
        log.lines()
            .any(|line| line.contains("byzantine evidence from node3 (127.0.0.1)")),
        "the forged vote is logged with the peer's name and address:\n{log}"
    );

    // The three honest validators are a quorum: they keep committing.
    let chain_id = genesis.chain_id.clone();
    let client = SecretKey::generate();
    let tx = client.sign_transaction(aegis_types::TxBody {
        version: aegis_types::ENCODING_VERSION,
        chain_id,
        sender: client.public_key(),
        nonce: 1,
        payload: b"despite the rogue".to_vec(),
    });
    let (status, body) = http_post(
        network.api_port(1),
        "/v1/transactions",
        &serde_json::to_string(&tx).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 202, "{body}");
    let id = tx.id().to_hex();
    for i in 0..3 {
        wait_until(
            Duration::from_secs(90),
            || format!("{id} committed on node{i}\n{}", network.logs()),
            || {
                http_get(network.api_port(i), &format!("/v1/transactions/{id}"))
                    .is_some_and(|(_, body)| body.contains("\"committed\""))
            },
        );
    }
    rogue.shutdown();
}
