//! A client written in another language, from `docs/encoding.md` alone, must produce the same
//! transaction id, signing bytes and signature as the Rust encoder.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn python_example_matches_golden_vectors() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new("python3")
        .arg(format!("{root}/docs/examples/sign_tx.py"))
        .output()
        .expect("python3 runs (scripts/install-test-deps.sh installs PyNaCl)");
    assert!(
        output.status.success(),
        "sign_tx.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let python: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let golden: BTreeMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/encoding-v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(python["id"], golden["tx_id"].as_str());
    assert_eq!(python["signing_bytes"], golden["tx_signing_bytes"].as_str());
    assert_eq!(python["json"]["signature"], golden["tx_signature"].as_str());
    // The JSON form the API accepts decodes to the same transaction.
    let from_python: aegis_types::Transaction =
        serde_json::from_value(python["json"].clone()).unwrap();
    let from_rust: aegis_types::Transaction = serde_json::from_str(&golden["tx_json"]).unwrap();
    assert_eq!(from_python, from_rust);
    assert!(aegis_crypto::verify_transaction(&from_python).is_ok());
}
