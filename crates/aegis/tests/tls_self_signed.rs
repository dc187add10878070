//! The troubleshooting guide's self-signed certificates, made by the real `openssl` exactly
//! as the guide does (`openssl genrsa 2048`, then `openssl req -new -x509`, which marks the
//! certificate CA:TRUE):
//!
//! - on a network in self-signed mode (no `security.tls.ca_file` on any node) every node
//!   passes `aegis config check`, the four validators mesh and commit a transaction: peers
//!   are identified by their validator key's signed Hello, not by the certificate;
//! - on a network with a CA, `aegis config check` names such a certificate as a CA
//!   certificate and says what to do, and the CA-mode peers refuse a node presenting one
//!   (`CaUsedAsEndEntity`, explained in their log), while they mesh among themselves.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use aegis_testkit::wait::wait_for;
use common::aegis;
use common::network::{MESH_WAIT, Network};

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The guide's two commands, writing into the node's home as troubleshooting.md shows.
fn guide_certificate(home: &Path) {
    let key = home.join("config/tls/node.key");
    let cert = home.join("config/tls/node.crt");
    let genrsa = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl is installed");
    assert!(genrsa.status.success(), "{}", text(&genrsa));
    let req = Command::new("openssl")
        .args(["req", "-new", "-x509", "-key"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "365",
            "-subj",
            "/C=US/ST=State/L=City/O=Organization/CN=aegis.local",
        ])
        .output()
        .unwrap();
    assert!(req.status.success(), "{}", text(&req));
    // What makes it a CA certificate.
    let shown = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "basicConstraints", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("CA:TRUE"),
        "openssl req -x509 marks the certificate CA:TRUE: {}",
        text(&shown)
    );
}

/// Self-signed mode: `security.tls.ca_file` removed from node `i`'s configuration.
fn self_signed_mode(network: &Network, i: usize) {
    let config = network.config(i);
    let yaml = std::fs::read_to_string(&config).unwrap();
    let without = yaml.replace("    ca_file: config/tls/ca.crt\n", "");
    assert_ne!(yaml, without, "aegis testnet writes a ca_file");
    std::fs::write(&config, without).unwrap();
}

fn config_check(network: &Network, i: usize) -> Output {
    aegis()
        .args(["config", "check", "--config"])
        .arg(network.config(i))
        .env("AEGIS_HOME", network.home(i))
        .output()
        .unwrap()
}

#[test]
fn a_self_signed_network_with_the_guides_openssl_certificates_meshes_and_commits() {
    let mut network = Network::generate(4);
    for i in 0..4 {
        guide_certificate(&network.home(i));
        self_signed_mode(&network, i);
        let check = config_check(&network, i);
        assert!(
            check.status.success()
                && String::from_utf8_lossy(&check.stdout).contains("Configuration is valid"),
            "node{i}: {}",
            text(&check)
        );
    }
    for i in 0..4 {
        network.start_node(i);
    }
    network.wait_full_mesh();

    let client_key = network.dir.path().join("client-key.json");
    let submit = aegis()
        .args(["tx", "submit", "--node", &network.api_url(0)])
        .args([
            "--payload",
            "self-signed",
            "--wait",
            "--timeout",
            "60",
            "--key",
        ])
        .arg(&client_key)
        .output()
        .unwrap();
    assert!(
        submit.status.success(),
        "{}\n{}",
        text(&submit),
        network.logs()
    );
    wait_for(
        MESH_WAIT,
        || {
            format!(
                "every node at height 1 or more: {:?}",
                (0..4).map(|i| network.height(i)).collect::<Vec<_>>()
            )
        },
        || {
            (0..4)
                .all(|i| network.height(i).is_some_and(|h| h >= 1))
                .then_some(())
        },
    );
}

#[test]
fn a_network_ca_refuses_the_guides_certificate_and_says_why() {
    let mut network = Network::generate(4);
    guide_certificate(&network.home(3));
    // With the network CA, node3's own check names the problem.
    let check = config_check(&network, 3);
    let output = text(&check);
    assert_eq!(check.status.code(), Some(1), "{output}");
    assert!(
        output.contains("is a CA certificate (basicConstraints CA:TRUE")
            && output.contains("remove security.tls.ca_file"),
        "{output}"
    );

    // node3 in self-signed mode among CA-mode peers: they refuse its certificate and mesh
    // among themselves.
    self_signed_mode(&network, 3);
    for i in 0..4 {
        network.start_node(i);
    }
    let log = network.home(0).join("logs/aegis.log");
    let line = wait_for(
        MESH_WAIT,
        || format!("node0 refusing node3's certificate\n{}", network.logs()),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains("CaUsedAsEndEntity"))
                .map(str::to_owned)
        },
    );
    eprintln!("node0 logged: {line}");
    assert!(
        line.contains("Authentication failed for peer")
            && line.contains("with a network CA (security.tls.ca_file) a node's certificate must be issued by that CA"),
        "{line}"
    );
    wait_for(
        MESH_WAIT,
        || {
            format!(
                "nodes 0-2 meshed: {:?}",
                (0..4).map(|i| network.peers(i)).collect::<Vec<_>>()
            )
        },
        || (0..3).all(|i| network.peers(i) == Some(2)).then_some(()),
    );
    assert_eq!(network.peers(3), Some(0), "node3 is refused by every peer");
}
