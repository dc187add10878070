//! `aegis run` with a ledger: the node opens it, records the validators in `nodes`, checks
//! the tip block at start-up and serves its height; a tampered tip stops the start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use common::{aegis, http_get};

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aegis_testkit::net::free_port;
use aegis_testkit::wait::wait_for;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A kept benchmark chain of `blocks` blocks; node0's ports moved to free ones.
fn chain(blocks: u64) -> (tempfile::TempDir, PathBuf, u16, u16) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let status = aegis()
        .args([
            "bench",
            "storage",
            "--backend",
            "sqlite",
            "--blocks",
            &blocks.to_string(),
        ])
        .args([
            "--txs-per-block",
            "4",
            "--tx-size",
            "32",
            "--reads",
            "4",
            "--keep",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let config = out.join("node0/config/production.yaml");
    let (p2p, api, metrics) = (
        free_port(LOCALHOST),
        free_port(LOCALHOST),
        free_port(LOCALHOST),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("port: 8000\n", &format!("port: {p2p}\n"))
        .replace("port: 8080\n", &format!("port: {api}\n"))
        .replace(
            "metrics_port: 9090\n",
            &format!("metrics_port: {metrics}\n"),
        );
    std::fs::write(&config, text).unwrap();
    (dir, config, api, metrics)
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, out: &Path) -> Node {
    let log = std::fs::File::create(out).unwrap();
    Node(
        aegis()
            .args(["run", "--config"])
            .arg(config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn sql(db: &Path, statement: &str) -> String {
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nr = c.execute(sys.argv[2]).fetchall()\nc.commit()\nprint(r)";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn node_serves_the_ledger_height_and_refuses_a_tampered_tip() {
    let (dir, config, api, metrics) = chain(6);
    let home = config.parent().unwrap().parent().unwrap().to_owned();
    let db = home.join("data/blockchain.db");

    let out = dir.path().join("run1.out");
    let node = start(&config, &out);
    let status = wait_for(
        Duration::from_secs(30),
        || format!("/status: {}", std::fs::read_to_string(&out).unwrap()),
        || {
            http_get(metrics, "/status")
                .map(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).unwrap())
        },
    );
    assert_eq!(status["block_height"], 6);
    assert_eq!(status["storage"], "ok");
    // Up (200) once the consensus engine runs too (it starts just after the endpoints); a
    // lone validator is "degraded" (no quorum reachable), its storage check passes.
    let health = wait_for(
        Duration::from_secs(30),
        || format!("/health 200: {:?}", http_get(api, "/health")),
        || {
            http_get(api, "/health")
                .filter(|(head, _)| head.starts_with("HTTP/1.1 200"))
                .map(|(_, body)| body)
        },
    );
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["checks"]["storage"]["status"], "pass", "{health}");
    assert_eq!(health["checks"]["peers"]["status"], "warn", "{health}");
    drop(node);
    assert_eq!(sql(&db, "SELECT COUNT(*) FROM nodes"), "[(4,)]");
    let log = std::fs::read_to_string(home.join("logs/aegis.log")).unwrap();
    assert!(log.contains("Ledger opened; tip block verified"), "{log}");

    // Change one transaction of the tip block behind the node's back.
    sql(
        &db,
        "UPDATE transactions SET nonce = nonce + 1 WHERE block_height = 6 AND tx_index = 0",
    );
    let output = aegis()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ledger integrity check failed at start-up"),
        "{stderr}"
    );
    assert!(stderr.contains("height 6"), "{stderr}");
    let log = std::fs::read_to_string(home.join("logs/aegis.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"level\":\"ERROR\"") && l.contains("integrity")),
        "{log}"
    );
}

#[test]
fn verify_reports_a_header_with_an_absurd_transaction_count_instead_of_aborting() {
    let (_dir, config, _, _) = chain(3);
    let db = config
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("data/blockchain.db");
    // Rewrite block 2's stored header so its tx_count says 4,294,967,295.
    let script = "import sqlite3, sys\n\
c = sqlite3.connect(sys.argv[1])\n\
h = bytearray(c.execute('SELECT header FROM blocks WHERE height = 2').fetchone()[0])\n\
n = int.from_bytes(h[1:5], 'little')\n\
off = 1 + 4 + n + 8 + 32 + 32\n\
h[off:off + 4] = b'\\xff\\xff\\xff\\xff'\n\
c.execute('UPDATE blocks SET header = ? WHERE height = 2', (bytes(h),))\n\
c.commit()";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let output = aegis()
        .args(["verify", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("height 2"), "{stderr}");
    assert!(
        stderr.contains("integrity") || stderr.contains("corrupt"),
        "{stderr}"
    );
}
