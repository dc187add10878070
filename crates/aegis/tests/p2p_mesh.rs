//! Four `aegis run` processes of an `aegis testnet` form a full P2P mesh and serve
//! `/status`, `/metrics` and `/health`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use common::http_get;
use common::network::Network;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aegis_testkit::wait::wait_until;

#[test]
fn four_aegis_run_processes_form_a_full_mesh() {
    let network = Network::start(4);
    let (out, base) = (network.out.clone(), network.base);
    let (head, metrics) = http_get(base + 1090, "/metrics").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(metrics.contains("aegis_p2p_peers 3"), "{metrics}");
    assert!(metrics.contains("aegis_node_info{"), "{metrics}");
    let (_, status) = http_get(base + 1090, "/status").unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["block_height"], 0);
    assert!(status["sync_status"].is_string());
    let (head, health) = http_get(base + 80, "/health").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-response-time:"),
        "{head}"
    );
    assert!(health.contains("\"status\":\"healthy\""), "{health}");

    // The P2P port speaks TLS 1.3 to a plain client and shows the node certificate.
    let s_client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{base}"),
            "-tls1_3",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = String::from_utf8_lossy(&s_client.stdout);
    assert!(
        text.contains("TLSv1.3") && text.contains("CN = node0"),
        "{text}"
    );

    // The JSON log file records peers (and the probe's refusal, with its address).
    let log = std::fs::read_to_string(out.join("node0/logs/aegis.log")).unwrap();
    assert!(log.contains("\"message\":\"Peer connected\""), "{log}");
    assert_known_peers_file(&out.join("node0/data/p2p/peers.json"));
}

fn assert_known_peers_file(path: &Path) {
    let count = || {
        std::fs::read_to_string(path)
            .map(|text| text.matches("public_key").count())
            .unwrap_or(0)
    };
    wait_until(
        Duration::from_secs(5),
        || format!("3 peers in {}; it lists {}", path.display(), count()),
        || count() == 3,
    );
}
