//! `aegis bench` against real processes, short and at a low rate (figures are for the
//! benchmark itself, never asserted here): the JSON report has the documented shape, and the
//! committed count it reports is what the chain holds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use common::network::Network;
use common::{aegis, http_get};
use serde_json::Value;

/// Runs `aegis bench ARGS --json FILE` and returns the report.
fn bench(args: &[&str], dir: &std::path::Path) -> Value {
    let json = dir.join("out.json");
    let output = aegis()
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run aegis bench");
    assert!(
        output.status.success(),
        "aegis bench {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("throughput"),
        "no table on stdout: {stdout}"
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn number(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is not a number in {report:#}"))
}

/// Every field the issue promises, with plausible values for a short low-rate run.
fn check_shape(report: &Value, nodes: usize, rate: f64) {
    assert_eq!(number(report, "/offered_tps"), rate);
    let throughput = number(report, "/throughput_tps");
    assert!(throughput > 0.0 && throughput <= rate * 1.1, "{report:#}");
    for p in ["p50", "p95", "p99", "max"] {
        assert!(
            number(report, &format!("/latency_ms/{p}")) > 0.0,
            "{report:#}"
        );
    }
    assert!(number(report, "/latency_ms/p50") <= number(report, "/latency_ms/p99"));
    assert!(number(report, "/latency_ms/p99") <= number(report, "/latency_ms/max"));
    assert!(number(report, "/committed") > 0.0);
    assert!(number(report, "/client_cpu_percent") >= 0.0);
    let bound = number(report, "/bound_tps");
    assert!(bound > 0.0);
    let ratio = number(report, "/bound_ratio");
    assert!((ratio - throughput / bound).abs() < 0.002, "{report:#}");
    let listed = report["nodes"].as_array().expect("nodes is an array");
    assert_eq!(listed.len(), nodes, "{report:#}");
    for node in listed {
        assert!(
            node["cpu_percent"].as_f64().is_some_and(|c| c > 0.0),
            "{node}"
        );
        assert!(
            node["peak_rss_mb"].as_f64().is_some_and(|m| m > 1.0),
            "{node}"
        );
    }
}

/// Transactions in every block of the chain, read through node 0's API.
fn chain_transactions(network: &Network) -> u64 {
    let (_, latest) = http_get(network.api_port(0), "/v1/blocks/latest").expect("latest block");
    let latest: Value = serde_json::from_str(&latest).unwrap();
    let height = latest["header"]["height"].as_u64().expect("a height");
    (1..=height)
        .map(|h| {
            let (_, body) = http_get(network.api_port(0), &format!("/v1/blocks/{h}")).unwrap();
            let block: Value = serde_json::from_str(&body).unwrap();
            block["transactions"].as_array().map_or(0, Vec::len) as u64
        })
        .sum()
}

#[test]
fn bench_on_running_nodes_reports_what_the_chain_holds() {
    let network = Network::start(4);
    let urls: Vec<String> = (0..4).map(|i| network.api_url(i)).collect();
    let dir = tempfile::tempdir().unwrap();
    let report = bench(
        &[
            "--nodes",
            &urls.join(","),
            "--duration",
            "5",
            "--rate",
            "40",
        ],
        dir.path(),
    );
    check_shape(&report, 4, 40.0);
    assert_eq!(report["scenario"]["nodes"], "given");
    // Every accepted transaction committed, and the chain holds exactly those and the
    // warm-up ones.
    assert_eq!(report["uncommitted"], 0, "{report:#}");
    assert_eq!(report["committed"], report["accepted"], "{report:#}");
    let committed = number(&report, "/committed") as u64;
    let warmup = number(&report, "/warmup_transactions") as u64;
    assert_eq!(
        chain_transactions(&network),
        committed + warmup,
        "{report:#}"
    );
}

#[test]
fn bench_starts_its_own_devnet_and_reports_every_validator() {
    let dir = tempfile::tempdir().unwrap();
    let report = bench(&["--duration", "3", "--rate", "20"], dir.path());
    check_shape(&report, 4, 20.0);
    assert_eq!(report["scenario"]["nodes"], "devnet");
    assert_eq!(report["scenario"]["storage"], "sqlite");
    assert_eq!(report["verifying_validators"], 4);
}

#[test]
fn bench_runs_a_raft_devnet() {
    let dir = tempfile::tempdir().unwrap();
    let report = bench(
        &[
            "--algorithm",
            "raft",
            "--validators",
            "3",
            "--duration",
            "3",
            "--rate",
            "20",
        ],
        dir.path(),
    );
    check_shape(&report, 3, 20.0);
    assert_eq!(report["scenario"]["algorithm"], "raft");
}

#[test]
fn bench_with_one_validator_down_and_postgresql() {
    let admin = std::env::var("AEGIS_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| {
            aegis_storage::testing::shared_cluster()
                .expect("a PostgreSQL cluster (set AEGIS_TEST_DATABASE_URL, or install PostgreSQL)")
                .url("postgres")
        });
    let dir = tempfile::tempdir().unwrap();
    let report = bench(
        &[
            "--duration",
            "3",
            "--rate",
            "20",
            "--down",
            "1",
            "--storage",
            "postgresql",
            "--database-url",
            &admin,
        ],
        dir.path(),
    );
    check_shape(&report, 3, 20.0);
    assert_eq!(report["scenario"]["storage"], "postgresql");
    assert_eq!(report["scenario"]["down"], serde_json::json!(["node3"]));
    assert_eq!(report["verifying_validators"], 3);
}

#[test]
fn bench_refuses_what_it_cannot_run() {
    for (args, says) in [
        (vec!["--down", "2"], "--down 2 leaves no quorum"),
        (
            vec!["--algorithm", "raft", "--validators", "3", "--down", "2"],
            "--down 2 leaves no quorum",
        ),
        (vec!["--rate", "0"], "--rate must be at least 1"),
    ] {
        let output = aegis().arg("bench").args(&args).output().unwrap();
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
