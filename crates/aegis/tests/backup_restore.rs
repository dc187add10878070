//! `aegis backup` and `aegis restore` against a real network under load: a backup taken
//! while the nodes commit restores on a wiped home, `aegis verify` passes there, and the
//! node catches up with the others; a backup with one byte changed, or whose manifest does
//! not match its ledger, is refused and the node's ledger is left as it was.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_testkit::wait::wait_until;
use aegis_types::TxBody;
use common::network::Network;
use common::{aegis, http_get, http_post};
use serde_json::Value;

/// Bound on catching up on a loaded machine.
const CATCH_UP_WAIT: Duration = Duration::from_secs(90);

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn chain_id(network: &Network) -> String {
    let (_, body) = http_get(network.api_port(0), "/v1/node").expect("/v1/node answers");
    let node: Value = serde_json::from_str(&body).unwrap();
    node["chain_id"].as_str().unwrap().to_owned()
}

/// Submits transactions to nodes 0-2 one after another until `stop`; counts the accepted.
fn load(
    network: &Network,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let chain = chain_id(network);
    let ports: Vec<u16> = (0..3).map(|i| network.api_port(i)).collect();
    std::thread::spawn(move || {
        let client = SecretKey::generate();
        let mut nonce = 0u64;
        while !stop.load(Ordering::Relaxed) {
            nonce += 1;
            let tx = client.sign_transaction(TxBody {
                version: aegis_types::ENCODING_VERSION,
                chain_id: chain.clone(),
                sender: client.public_key(),
                nonce,
                payload: format!("backup load {nonce}").into_bytes(),
            });
            let port = ports[(nonce as usize) % ports.len()];
            if let Some((202, _)) = http_post(
                port,
                "/v1/transactions",
                &serde_json::to_string(&tx).unwrap(),
            ) {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

fn sha256(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_backup_under_load_restores_on_a_wiped_home_and_a_corrupt_one_is_refused() {
    let mut network = Network::start(4);
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let loader = load(&network, Arc::clone(&stop), Arc::clone(&accepted));
    wait_until(
        CATCH_UP_WAIT,
        || format!("some blocks committed under load\n{}", network.logs()),
        || network.height(0).is_some_and(|h| h >= 3),
    );

    // An online backup of node0 while the network commits.
    let backup = network.dir.path().join("backup");
    let output = aegis()
        .args(["backup", "--config"])
        .arg(network.config(0))
        .arg("--out")
        .arg(&backup)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(backup.join("manifest.json")).unwrap())
            .unwrap();
    let backup_height = manifest["height"].as_u64().unwrap();
    assert!(backup_height >= 3, "{manifest:#}");
    assert_eq!(manifest["backend"], "sqlite");
    assert_eq!(manifest["aegis_version"], env!("CARGO_PKG_VERSION"));
    let roles: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["role"].as_str().unwrap())
        .collect();
    for role in [
        "ledger", "config", "genesis", "node_key", "tls_cert", "tls_key", "tls_ca",
    ] {
        assert!(roles.contains(&role), "{role} in {roles:?}");
    }
    for file in manifest["files"].as_array().unwrap() {
        let path = backup.join(file["path"].as_str().unwrap());
        assert_eq!(
            sha256(&path),
            file["sha256"].as_str().unwrap(),
            "{}",
            path.display()
        );
    }
    // The block at the backup's height is the one the network has there.
    let (_, block) = http_get(network.api_port(1), &format!("/v1/blocks/{backup_height}")).unwrap();
    let block: Value = serde_json::from_str(&block).unwrap();
    assert_eq!(block["hash"], manifest["tip_hash"], "{manifest:#}");

    // The guide's disaster assessment sees the running node and the backup.
    let output = aegis()
        .args(["diagnose", "--assessment", "--config"])
        .arg(network.config(0))
        .arg("--backups")
        .arg(network.dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let assessment = String::from_utf8_lossy(&output.stdout).into_owned();
    for expected in [
        format!("AEGIS node is running (pid {})", network.pid(0).unwrap()),
        format!("height {backup_height}"),
        "Blockchain data exists".to_owned(),
        "1. Service Status:".to_owned(),
        "2. Data Integrity:".to_owned(),
        "3. Available Backups:".to_owned(),
        "4. Network Connectivity:".to_owned(),
        format!("Peer 127.0.0.1:{}: OK", network.p2p_port(1)),
        "5. Disk Space:".to_owned(),
    ] {
        assert!(
            assessment.contains(&expected),
            "{expected} in:\n{assessment}"
        );
    }

    // A restore onto a home whose node runs is refused, naming the node's pid; nothing is
    // moved aside.
    let data_entries = |home: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(home.join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = data_entries(&network.home(3));
    let pid3 = network.pid(3).unwrap();
    let output = restore(&backup, &network.config(3));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!("pid {pid3}")),
        "{}",
        text(&output)
    );
    assert!(network.is_running(3), "node3 still runs after the refusal");
    assert_eq!(data_entries(&network.home(3)), before);

    // node3 loses its data: stopped, data directory wiped.
    network.stop_node(3);
    let data = network.home(3).join("data");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();

    // A backup with one byte changed is refused, and nothing of node3 is touched.
    let corrupt = network.dir.path().join("corrupt");
    copy_dir(&backup, &corrupt);
    let ledger = corrupt.join("ledger.db");
    let mut bytes = std::fs::read(&ledger).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&ledger, bytes).unwrap();
    let output = restore(&corrupt, &network.config(3));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("corrupt")
            && said.contains("ledger.db")
            && said.contains("nothing of the node was changed"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_dir(&data)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != "aegis.lock")
            .count(),
        0,
        "data untouched"
    );

    // A manifest that does not match its ledger (another height) is refused too.
    let mismatched = network.dir.path().join("mismatched");
    copy_dir(&backup, &mismatched);
    let mut edited = manifest.clone();
    edited["height"] = Value::from(backup_height + 1);
    std::fs::write(
        mismatched.join("manifest.json"),
        serde_json::to_string_pretty(&edited).unwrap(),
    )
    .unwrap();
    let output = restore(&mismatched, &network.config(3));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("mismatched backup"),
        "{}",
        text(&output)
    );

    // The good backup restores, verifies, and node3 catches up with the others.
    let output = restore(&backup, &network.config(3));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = aegis()
        .args(["verify", "--config"])
        .arg(network.config(3))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(&format!("Chain verified: {backup_height} blocks")),
        "{}",
        text(&output)
    );
    network.start_node(3);
    let target = network.height(0).unwrap();
    assert!(
        target > backup_height,
        "the network went on after the backup"
    );
    wait_until(
        CATCH_UP_WAIT,
        || {
            format!(
                "node3 at height {target}: {:?}\n{}",
                network.height(3),
                network.logs()
            )
        },
        || network.height(3).is_some_and(|h| h >= target),
    );
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    assert!(accepted.load(Ordering::Relaxed) > 0);
}

fn restore(from: &Path, config: &Path) -> Output {
    aegis()
        .args(["restore", "--from"])
        .arg(from)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}
