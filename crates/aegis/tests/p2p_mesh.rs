//! Four `aegis run` processes of an `aegis testnet` form a full P2P mesh and serve
//! `/status`, `/metrics` and `/health`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use common::{aegis, http_get};

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aegis_testkit::net::port_is_free;
use aegis_testkit::wait::{wait_for, wait_until};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Kills the node processes this test started, however the test ends.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free(port: u16) -> bool {
    port_is_free(LOCALHOST, port)
}

/// A base port whose testnet ports (P+i, P+80+i, P+1090+i) are all free now. Seeded from
/// the clock and the process id, so concurrent runs start from different ranges.
fn base_port(n: u16) -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let seed = (nanos ^ std::process::id().rotate_left(16)) % 20_000;
    for attempt in 0..200u32 {
        let base = 30_000 + ((seed + attempt * 7919) % 20_000) as u16;
        if (0..n).all(|i| free(base + i) && free(base + 80 + i) && free(base + 1090 + i)) {
            return base;
        }
    }
    panic!("no free port range");
}

/// Whole starts tried: the ports are only probed here and bound later by the node
/// processes, so another program may take one in between.
const START_ATTEMPTS: usize = 5;
/// Generous bound for four processes to form the mesh on a loaded machine.
const MESH_WAIT: Duration = Duration::from_secs(60);

enum Start {
    Mesh,
    PortTaken(String),
}

fn logs(out: &Path) -> String {
    (0..4)
        .map(|i| std::fs::read_to_string(out.join(format!("node{i}.out"))).unwrap_or_default())
        .collect()
}

/// Generates a testnet at `base` into `out`, starts its four nodes into `nodes` and waits
/// for the full mesh. A node that exits because a port was taken is reported, not fatal.
fn start_mesh(out: &Path, base: u16, nodes: &mut Nodes) -> Start {
    let status = aegis()
        .args([
            "testnet",
            "--validators",
            "4",
            "--base-port",
            &base.to_string(),
            "--out",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let config = |i: u16| out.join(format!("node{i}/config/production.yaml"));
    for i in 0..4 {
        let log = std::fs::File::create(out.join(format!("node{i}.out"))).unwrap();
        nodes.0.push(
            aegis()
                .args(["run", "--config"])
                .arg(config(i))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let peers_per_node =
        || -> Vec<Option<u64>> { (0..4).map(|i| peers(base + 1090 + i)).collect() };
    wait_for(
        MESH_WAIT,
        || {
            format!(
                "a full mesh: peers per node {:?}\n{}",
                peers_per_node(),
                logs(out)
            )
        },
        || {
            if peers_per_node().iter().all(|c| *c == Some(3)) {
                return Some(Start::Mesh);
            }
            for child in &mut nodes.0 {
                if let Some(status) = child.try_wait().unwrap() {
                    let logs = logs(out);
                    if logs.contains("Address already in use") {
                        return Some(Start::PortTaken(logs));
                    }
                    panic!("a node exited ({status}):\n{logs}");
                }
            }
            None
        },
    )
}

fn peers(metrics_port: u16) -> Option<u64> {
    let (_, body) = http_get(metrics_port, "/status")?;
    let status: serde_json::Value = serde_json::from_str(&body).ok()?;
    status["p2p"]["peers"].as_u64()
}

#[test]
fn four_aegis_run_processes_form_a_full_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let mut started = None;
    let mut taken = Vec::new();
    for attempt in 0..START_ATTEMPTS {
        let out = dir.path().join(format!("net{attempt}"));
        let base = base_port(4);
        let mut nodes = Nodes(Vec::new());
        match start_mesh(&out, base, &mut nodes) {
            Start::Mesh => {
                started = Some((out, base, nodes));
                break;
            }
            // Stop this attempt's nodes, then try a new port range.
            Start::PortTaken(logs) => {
                drop(nodes);
                taken.push(logs);
            }
        }
    }
    let Some((out, base, _nodes)) = started else {
        panic!(
            "ports taken on every one of {START_ATTEMPTS} starts:\n{}",
            taken.join("\n")
        );
    };

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
