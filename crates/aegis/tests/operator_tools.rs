//! The operator tools against a real network of four `aegis run` processes:
//! `aegis health` (the guide's health_checker.py), `aegis validators check` (its validator
//! connectivity script) and `aegis reset p2p|consensus` (its `rm -rf data/p2p/*` and
//! `data/consensus/*`), each on the node's own configuration.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;

use aegis_testkit::wait::wait_until;
use common::aegis;
use common::network::{MESH_WAIT, Network};
use serde_json::Value;

fn run(args: &[&str], config: &Path) -> Output {
    aegis()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run aegis")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `aegis health` with the guide's thresholds, except CPU, memory and disk: the test machine
/// is shared, busy compiling and its disk nearly full, which says nothing about the node.
fn health(config: &Path) -> (Output, Value) {
    let output = aegis()
        .args([
            "health",
            "--cpu-warning",
            "100",
            "--memory-warning",
            "100",
            "--disk-unhealthy",
            "100",
            "--config",
        ])
        .arg(config)
        .output()
        .expect("run aegis health");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("health prints JSON ({error}):\n{}", text(&output)));
    (output, report)
}

fn all_logs(network: &Network) -> String {
    (0..network.n)
        .map(|i| {
            std::fs::read_to_string(network.home(i).join("logs/aegis.log")).unwrap_or_default()
        })
        .collect()
}

#[test]
fn health_validators_check_and_reset_against_a_running_network() {
    let mut network = Network::start(4);
    let config0 = network.config(0);

    // Healthy: every check of the guide's report, with its shape, exit 0.
    let (output, report) = health(&config0);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{report:#}\n{}",
        text(&output)
    );
    assert_eq!(report["overall_status"], "healthy");
    assert!(report["timestamp"].as_str().unwrap().ends_with('Z'));
    for check in [
        "service",
        "database",
        "resources",
        "logs",
        "consensus",
        "sync",
    ] {
        assert_eq!(
            report["checks"][check]["status"], "healthy",
            "{check}: {report:#}"
        );
        assert!(report["checks"][check]["message"].is_string());
    }
    for endpoint in ["health", "metrics"] {
        let result = &report["checks"]["endpoints"][endpoint];
        assert_eq!(result["status"], "healthy", "{report:#}");
        assert!(
            result["details"]["response_time_ms"].as_f64().is_some(),
            "{report:#}"
        );
    }
    assert_eq!(
        report["checks"]["endpoints"]["health"]["details"]["response_time"]
            .as_str()
            .map(|t| t.ends_with("ms")),
        Some(true),
        "X-Response-Time of /health: {report:#}"
    );
    assert_eq!(
        report["checks"]["service"]["details"]["pid"],
        network.pid(0).unwrap(),
        "the process holding node0's home"
    );
    assert_eq!(report["checks"]["database"]["details"]["backend"], "sqlite");
    assert_eq!(report["checks"]["consensus"]["details"]["peers"], 3);
    let summary = &report["summary"];
    assert_eq!(summary["total_checks"], 8);
    assert_eq!(summary["healthy"], 8);
    for key in ["warning", "unhealthy", "error"] {
        assert_eq!(summary[key], 0);
    }
    let text_output = aegis()
        .args([
            "health",
            "--format",
            "text",
            "--cpu-warning",
            "100",
            "--memory-warning",
            "100",
            "--disk-unhealthy",
            "100",
            "--config",
        ])
        .arg(&config0)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&text_output.stdout);
    assert!(
        shown.contains(": HEALTHY") && shown.contains("endpoints.metrics"),
        "{shown}"
    );

    // Every validator answers the probe with an RTT, and the mesh is not disturbed: no
    // session ends while the probes run (the mesh's own duplicate rule may have ended some
    // before; those are counted first).
    let disconnects = |logs: &str| logs.matches("Peer disconnected").count();
    let before = disconnects(&all_logs(&network));
    let output = run(&["validators", "check"], &config0);
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    for i in 0..4 {
        let line = table
            .lines()
            .find(|line| line.starts_with(&format!("node{i}")))
            .unwrap_or_else(|| panic!("node{i} in the table:\n{table}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.contains(&"ok"), "{line}");
        let rtt: f64 = fields[if i == 0 { 7 } else { 6 }]
            .parse()
            .unwrap_or_else(|_| panic!("RTT in {line}"));
        assert!(rtt > 0.0 && rtt < 5000.0, "{line}");
    }
    assert!(
        table.contains("4 of 4 validators answered; the quorum is 3"),
        "{table}"
    );
    let logs = all_logs(&network);
    assert!(
        logs.contains("Connectivity probe from 127.0.0.1 answered"),
        "probes logged"
    );
    assert_eq!(
        disconnects(&logs),
        before,
        "a probe cut a peer session:\n{logs}"
    );
    assert!(network.full_mesh());

    // A node that runs refuses a reset, naming its pid; nothing is moved.
    let pid = network.pid(0).unwrap();
    for what in ["p2p", "consensus"] {
        let output = run(&["reset", what], &config0);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(&format!("pid {pid}")),
            "{}",
            text(&output)
        );
    }
    assert!(network.home(0).join("data/p2p/peers.json").exists());
    let moved: Vec<String> = std::fs::read_dir(network.home(0).join("data"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("p2p.") || name.starts_with("consensus."))
        .collect();
    assert!(
        moved.is_empty(),
        "moved aside while the node runs: {moved:?}"
    );

    // An ERROR line in the last 100 lines of the log: a warning, exit 1.
    let log_path = network.home(0).join("logs/aegis.log");
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .unwrap();
    writeln!(
        log,
        r#"{{"timestamp":"2026-12-05T22:00:00.000Z","level":"ERROR","logger":"test","message":"planted error","node_id":"node0"}}"#
    )
    .unwrap();
    drop(log);
    let (output, report) = health(&config0);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(report["overall_status"], "warning");
    assert_eq!(report["checks"]["logs"]["status"], "warning");
    assert_eq!(report["checks"]["logs"]["details"]["error_count"], 1);
    assert_eq!(
        report["checks"]["logs"]["details"]["last_error"],
        "planted error"
    );

    // One validator down: three of four still answer, a quorum.
    network.stop_node(3);
    let output = run(&["validators", "check"], &config0);
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let node3 = table
        .lines()
        .find(|line| line.starts_with("node3"))
        .unwrap();
    assert!(
        node3.contains("FAILED") && node3.contains("tcp failed"),
        "{node3}"
    );
    // Two down: below the quorum, exit 1.
    network.stop_node(2);
    let output = run(&["validators", "check"], &config0);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("2 of 4 validators answered, fewer than the quorum of 3"),
        "{}",
        text(&output)
    );

    // The node stopped: unhealthy, exit 2.
    network.stop_node(0);
    let (output, report) = health(&config0);
    assert_eq!(output.status.code(), Some(2), "{report:#}");
    assert_eq!(report["overall_status"], "unhealthy");
    assert_eq!(report["checks"]["service"]["status"], "unhealthy");
    assert_eq!(
        report["checks"]["endpoints"]["health"]["status"],
        "unhealthy"
    );
    // The ledger is still there and answers a query with nobody running.
    assert_eq!(
        report["checks"]["database"]["status"], "healthy",
        "{report:#}"
    );

    // Stopped: the reset moves the state aside and says what the node will do.
    for what in ["p2p", "consensus"] {
        let output = run(&["reset", what], &config0);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            said.contains("aside") && said.contains("On its next start"),
            "{said}"
        );
        let dir = network.home(0).join("data").join(what);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "{what} emptied"
        );
        let aside: Vec<_> = std::fs::read_dir(network.home(0).join("data"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&format!("{what}.")))
            .collect();
        assert_eq!(aside.len(), 1, "{what} moved aside: {aside:?}");
        // `<dir>.<UTC timestamp>`, e.g. p2p.20261206T021630Z.
        let stamp = &aside[0][what.len() + 1..];
        assert!(
            stamp.len() == 16
                && stamp.ends_with('Z')
                && stamp[..8].chars().all(|c| c.is_ascii_digit())
                && &stamp[8..9] == "T",
            "{aside:?}"
        );
    }
    // And the node comes back: peers re-learned from bootstrap_nodes, consensus restarted.
    for i in [0, 2, 3] {
        network.start_node(i);
    }
    wait_until(
        MESH_WAIT,
        || format!("the mesh again after the reset\n{}", network.logs()),
        || {
            network.full_mesh()
                && network
                    .status(0)
                    .is_some_and(|s| s["consensus"]["running"] == true)
        },
    );
    assert_eq!(
        std::fs::read_dir(network.home(0).join("data/consensus"))
            .unwrap()
            .count(),
        1,
        "a new consensus log"
    );
}

/// `aegis logs analyze` and `aegis logs tail` (the guide's log_analyzer.sh and
/// live_log_monitor.sh) on a real node's JSON log: malformed lines counted, errors by hour,
/// performance lines, P2P events; tail colours by level and follows the log across a
/// logrotate-style rotation (rename, then SIGHUP to the node).
#[test]
fn logs_analyze_and_tail_read_a_real_nodes_log_across_rotation() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut network = Network::start(4);
    network.stop_node(3);
    let config0 = network.config(0);
    let log_path = network.home(0).join("logs/aegis.log");
    wait_until(
        MESH_WAIT,
        || "node0 logs node3's departure".to_owned(),
        || {
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains("Peer disconnected")
        },
    );
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .unwrap();
    writeln!(log, "not a JSON line at all").unwrap();
    writeln!(
        log,
        r#"{{"timestamp":"2026-12-05T22:10:00.000Z","level":"ERROR","logger":"test","message":"planted request timeout","node_id":"node0"}}"#
    )
    .unwrap();
    drop(log);

    let output = run(&["logs", "analyze"], &config0);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    for expected in [
        "malformed (not JSON log lines): 1",
        "=== Error Analysis by Hour ===",
        "2026-12-05T22",
        "planted request timeout",
        "=== Performance Analysis (slow, timeout, latency) ===",
        "Peer connected",
        "Peer disconnected",
    ] {
        assert!(report.contains(expected), "{expected} in:\n{report}");
    }

    // The last lines, coloured by level.
    let output = aegis()
        .args([
            "logs",
            "tail",
            "--no-follow",
            "-n",
            "2",
            "--color",
            "always",
        ])
        .arg(&log_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(shown.lines().count(), 2, "{shown}");
    assert!(shown.contains("\x1b[0;31m[ERROR]\x1b[0m"), "{shown:?}");
    assert!(shown.contains("planted request timeout"), "{shown}");

    // Following: the log is renamed (logrotate) and the node told to reopen it (its
    // postrotate `systemctl reload aegis`); tail goes on with the new file.
    let mut tail = aegis()
        .args(["logs", "tail", "--color", "never", "-n", "0"])
        .arg(&log_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    // Once tail follows, a line written to the current file shows.
    let marker = |text: &str| {
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .unwrap();
        writeln!(
            log,
            r#"{{"timestamp":"2026-12-05T22:11:00.000Z","level":"INFO","logger":"test","message":"{text}","node_id":"node0"}}"#
        )
        .unwrap();
    };
    let mut seen = Vec::new();
    let mut saw = |wanted: &str, write: &dyn Fn()| {
        let deadline = std::time::Instant::now() + MESH_WAIT;
        loop {
            write();
            if let Ok(line) = lines_rx.recv_timeout(std::time::Duration::from_millis(500)) {
                let found = line.contains(wanted);
                seen.push(line);
                if found {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tail did not show {wanted:?}; it showed:\n{}",
                seen.join("\n")
            );
        }
    };
    saw("before rotation", &|| marker("before rotation"));
    std::fs::rename(&log_path, network.home(0).join("logs/aegis.log.1")).unwrap();
    let pid = network.pid(0).unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    saw("Log file reopened", &|| {});
    let _ = tail.kill();
    let _ = tail.wait();
}

/// Every metric and label set is exported from the start, at zero: a lone validator of a
/// network of four (no peer, so nothing refused, dropped or rejected yet) already shows every
/// reason of `aegis_p2p_rejected_connections_total`, `aegis_p2p_dropped_messages_total`,
/// `aegis_consensus_rejected_total` and `aegis_consensus_byzantine_events_total`, and every
/// metric api.md names. Its `/status` says what a running node without peers says.
#[test]
fn a_fresh_node_exports_every_metric_and_reason_at_zero() {
    let mut network = Network::generate(4);
    network.start_node(0);
    let metrics = || common::http_get(network.metrics_port(0), "/metrics").map(|(_, body)| body);
    let body = aegis_testkit::wait::wait_for(
        MESH_WAIT,
        || {
            format!(
                "node0's /metrics with the engine running\n{}",
                network.logs()
            )
        },
        || {
            network
                .status(0)
                .filter(|s| s["consensus"]["running"] == true)
                .and_then(|_| metrics())
        },
    );
    let value = |series: &str| -> Option<f64> {
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    let mut missing = Vec::new();
    let mut expect_zero = |series: String| match value(&series) {
        Some(0.0) => {}
        other => missing.push(format!("{series} = {other:?}")),
    };
    for reason in [
        "banned",
        "rate_limited",
        "handshake_limit",
        "evicted",
        "max_peers",
    ] {
        expect_zero(format!(
            "aegis_p2p_rejected_connections_total{{reason=\"{reason}\"}}"
        ));
    }
    for reason in [
        "queue_full",
        "slow_peer",
        "no_peer",
        "too_large",
        "no_receiver",
    ] {
        expect_zero(format!(
            "aegis_p2p_dropped_messages_total{{reason=\"{reason}\"}}"
        ));
    }
    for reason in [
        "stale_view",
        "duplicate",
        "bad_signature",
        "bad_synced_block",
    ] {
        expect_zero(format!(
            "aegis_consensus_rejected_total{{reason=\"{reason}\"}}"
        ));
    }
    for reason in ["bad_signature", "equivocation", "conflicting_vote"] {
        expect_zero(format!(
            "aegis_consensus_byzantine_events_total{{reason=\"{reason}\"}}"
        ));
    }
    for metric in [
        "aegis_p2p_peers",
        "aegis_p2p_auth_failures_total",
        "aegis_p2p_protocol_violations_total",
        "aegis_consensus_view_changes_total",
        "aegis_consensus_failures_total",
        "aegis_consensus_committed_transactions_total",
        "aegis_consensus_commit_latency_seconds_count",
        "aegis_mempool_size",
        "aegis_mempool_bytes",
        "aegis_sync_blocks_behind",
        "aegis_sync_blocks_fetched_total",
        "aegis_sync_invalid_blocks_total",
        "aegis_storage_write_latency_seconds_count",
    ] {
        expect_zero(metric.to_owned());
    }
    for metric in [
        "aegis_consensus_height ",
        "aegis_consensus_view ",
        "aegis_sync_target_height ",
        "aegis_consensus_validators ",
        "aegis_consensus_quorum ",
        "aegis_mempool_max_transactions ",
        "aegis_mempool_max_bytes ",
        "aegis_storage_disk_available_bytes ",
        "aegis_storage_disk_size_bytes ",
        "aegis_node_info{",
        "aegis_p2p_connections{direction=\"inbound\"} ",
        "aegis_p2p_connections{direction=\"outbound\"} ",
    ] {
        if !body.lines().any(|line| line.starts_with(metric)) {
            missing.push(format!("{metric}(absent)"));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}\n{body}");

    // What a running validator with no peer says in /status.
    let status = network.status(0).unwrap();
    assert_eq!(status["peers"], 0, "{status:#}");
    assert_eq!(status["sync_status"], "synced", "{status:#}");
}
