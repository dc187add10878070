//! The operator tools that report on running nodes, against real `aegis run` processes:
//! `aegis diagnose --bundle` (the guide's aegis_diagnostics.sh) keeps every secret out of its
//! bundle, and `aegis monitor` (its live_monitor.sh) shows every node of a network in a
//! terminal, driven through tmux.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aegis_testkit::wait::{wait_for, wait_until};
use common::aegis;
use common::network::{MESH_WAIT, Network};

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file of a directory tree, as (path, bytes).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// A node on PostgreSQL whose connection string carries a password, with more secrets in
/// its `.env` and in its log: none of them is in the bundle, though the bundle has the
/// report's sections, the `.env`'s variable names, the configuration and the logs.
#[test]
fn a_diagnostic_bundle_of_a_running_node_holds_none_of_its_secrets() {
    let Ok(base_url) = std::env::var("AEGIS_TEST_DATABASE_URL") else {
        panic!("AEGIS_TEST_DATABASE_URL is not set: this test needs the PostgreSQL test server");
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let database = format!(
        "aegis_diag_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    // The test server trusts local connections: the password is carried, never checked.
    let db_password = "Pl4nted-DbPassw0rd";
    let (scheme, rest) = base_url.split_once("://").unwrap();
    let (user_part, host_part) = rest.split_once('@').unwrap();
    let user = user_part.split(':').next().unwrap();
    let (host, _) = host_part.split_once('/').unwrap();
    let database_url = format!("{scheme}://{user}:{db_password}@{host}/{database}");
    let api_token = "planted-api-token-6f1e2d";
    let admin_password = "planted-admin-password-91ab";

    let mut network = Network::generate(1);
    let home = network.home(0);
    let config = network.config(0);
    let yaml = std::fs::read_to_string(&config).unwrap().replace(
        "storage:\n  type: sqlite\n  path: data/blockchain.db\n",
        "storage:\n  type: postgresql\n  connection_string: \"${DATABASE_URL}\"\n",
    );
    assert!(yaml.contains("${DATABASE_URL}"), "{yaml}");
    std::fs::write(&config, yaml).unwrap();
    let env_text = std::fs::read_to_string(home.join(".env")).unwrap();
    let encryption_key = env_text
        .lines()
        .find_map(|line| line.strip_prefix("AEGIS_ENCRYPTION_KEY="))
        .expect("aegis testnet writes an encryption key")
        .to_owned();
    let mut env = std::fs::OpenOptions::new()
        .append(true)
        .open(home.join(".env"))
        .unwrap();
    writeln!(env, "DATABASE_URL={database_url}").unwrap();
    writeln!(env, "AEGIS_API_TOKEN={api_token}").unwrap();
    writeln!(env, "ADMIN_PASSWORD=\"{admin_password}\"").unwrap();
    drop(env);

    // The guide's createdb, then the node.
    let output = aegis()
        .args(["db", "init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let again = aegis()
        .args(["db", "init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "db init is idempotent: {}",
        text(&again)
    );
    network.start_node(0);
    wait_until(
        MESH_WAIT,
        || format!("node0 running on PostgreSQL\n{}", network.logs()),
        || {
            network
                .status(0)
                .is_some_and(|s| s["consensus"]["running"] == true)
        },
    );
    // Secrets that a log line happened to carry.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(home.join("logs/aegis.log"))
        .unwrap();
    writeln!(
        log,
        r#"{{"timestamp":"2026-12-05T22:00:00.000Z","level":"ERROR","logger":"test","message":"could not reach {database_url} with token {api_token}","node_id":"node0"}}"#
    )
    .unwrap();
    drop(log);

    let out = network.dir.path().join("diagnostics");
    let output = aegis()
        .args(["diagnose", "--bundle", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let bundles: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}\n{}", text(&output));
    let unpacked = network.dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&bundles[0])
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    let all = files(&unpacked);
    let everything: Vec<u8> = all.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
    let shown = String::from_utf8_lossy(&everything);

    // The bundle holds what an operator needs...
    for expected in [
        "AEGIS_API_TOKEN=",
        "ADMIN_PASSWORD=",
        "DATABASE_URL=",
        "AEGIS_ENCRYPTION_KEY=",
        "PostgreSQL",
        "could not reach",
        "node0",
        "connection_string",
    ] {
        assert!(
            shown.contains(expected),
            "{expected} in the bundle:\n{shown}"
        );
    }
    // ...and none of the secrets, in any file.
    for secret in [
        db_password,
        database_url.as_str(),
        api_token,
        admin_password,
        encryption_key.as_str(),
    ] {
        for (path, bytes) in &all {
            assert!(!contains(bytes, secret), "{secret} leaked into {path}");
        }
    }
    // The node key and the TLS key are listed, never read: neither the encrypted secret key
    // (the public key may be shown) nor a line of the TLS private key.
    let key_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("config/node_key.json")).unwrap())
            .unwrap();
    let ciphertext = key_json["cipher"]["ciphertext"].as_str().unwrap();
    assert!(
        !contains(&everything, ciphertext),
        "the encrypted node key leaked"
    );
    let tls_key = std::fs::read_to_string(home.join("config/tls/node.key")).unwrap();
    for line in tls_key.lines().filter(|line| !line.starts_with("-----")) {
        assert!(
            !contains(&everything, line),
            "TLS key material leaked: {line}"
        );
    }
}

/// A tmux session killed when the test ends, however it ends.
struct Tmux(String);

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

fn tmux(args: &[&str]) -> String {
    let output = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux is installed");
    assert!(output.status.success(), "tmux {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The row of `node` on the monitor's screen, split in fields.
fn row<'a>(screen: &'a str, node: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .find(|line| line.starts_with(&format!("{node} ")))
        .map(|line| line.split_whitespace().collect())
}

#[test]
fn the_monitor_shows_every_node_of_a_network_in_a_terminal_and_q_quits() {
    let mut network = Network::start(4);
    let urls: Vec<String> = (0..4)
        .map(|i| format!("http://127.0.0.1:{}", network.metrics_port(i)))
        .collect();
    let session = Tmux(format!("aegis-monitor-{}", std::process::id()));
    // The shell (which lets Ctrl-C reach only its child) records the monitor's exit status in a file: tmux reports a pane's status
    // only once it reaps the process, which some tmux servers do late.
    let exit_dir = tempfile::tempdir().unwrap();
    let exit_file = exit_dir.path().join("monitor.exit");
    let command = format!(
        "sh -c 'trap : INT; {} monitor --config {} --nodes {}; echo $? > {}'",
        env!("CARGO_BIN_EXE_aegis"),
        network.config(0).display(),
        urls.join(","),
        exit_file.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session.0,
        "-x",
        "200",
        "-y",
        "40",
        &command,
    ]);
    tmux(&["set-option", "-t", &session.0, "remain-on-exit", "on"]);
    let screen = || tmux(&["capture-pane", "-p", "-t", &session.0]);

    // Every node's row, with the height it has now (or later: it commits meanwhile).
    let heights: Vec<u64> = (0..4).map(|i| network.height(i).unwrap()).collect();
    wait_until(
        MESH_WAIT,
        || format!("every node on the monitor's screen:\n{}", screen()),
        || {
            let shown = screen();
            shown.contains("=== AEGIS Live Monitor ===")
                && (0..4).all(|i| {
                    row(&shown, &format!("node{i}")).is_some_and(|fields| {
                        fields[1] == "running"
                            && fields[3].parse::<u64>().is_ok_and(|h| h >= heights[i])
                            && fields[6] == "3/3"
                    })
                })
        },
    );
    // A stopped node shows as down, the others go on.
    network.stop_node(3);
    wait_until(
        MESH_WAIT,
        || format!("node3 down on the monitor's screen:\n{}", screen()),
        || {
            screen()
                .lines()
                .any(|line| line.starts_with("? ") && line.contains("DOWN"))
        },
    );
    // q quits, with the terminal restored and exit status 0.
    tmux(&["send-keys", "-t", &session.0, "q"]);
    wait_until(
        Duration::from_secs(30),
        || format!("the monitor to quit on q:\n{}", screen()),
        || tmux(&["display-message", "-p", "-t", &session.0, "#{pane_dead}"]).trim() == "1",
    );
    wait_until(
        Duration::from_secs(10),
        || {
            format!(
                "the monitor's exit status 0 in {}: {:?}",
                exit_file.display(),
                std::fs::read_to_string(&exit_file)
            )
        },
        || std::fs::read_to_string(&exit_file).is_ok_and(|text| text.trim() == "0"),
    );
}

/// A node on a PostgreSQL server that stops: `/health` turns 503 with the storage fault
/// (the node probes its ledger every 2 s with a 3 s timeout), and `aegis health` says the
/// database is unhealthy.
#[test]
fn health_reports_a_stopped_postgresql_server() {
    let cluster = aegis_storage::testing::PgCluster::start(false).expect("a PostgreSQL cluster");
    let mut network = Network::generate(1);
    let config = network.config(0);
    let yaml = std::fs::read_to_string(&config).unwrap().replace(
        "storage:\n  type: sqlite\n  path: data/blockchain.db\n",
        &format!(
            "storage:\n  type: postgresql\n  connection_string: \"{}\"\n",
            cluster.url("aegis")
        ),
    );
    std::fs::write(&config, yaml).unwrap();
    let output = aegis()
        .args(["db", "init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    network.start_node(0);
    let api = network.api_port(0);
    let health = || common::http_get(api, "/health");
    wait_until(
        MESH_WAIT,
        || {
            format!(
                "node0 healthy on PostgreSQL: {:?}\n{}",
                health(),
                network.logs()
            )
        },
        || health().is_some_and(|(head, _)| head.starts_with("HTTP/1.1 200")),
    );

    // While the server runs, `aegis health` queries it: the database check is healthy.
    let health_report = || {
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
            .arg(&config)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("health prints JSON ({error}): {}", text(&output)));
        (output, report)
    };
    let (_, report) = health_report();
    let database = &report["checks"]["database"];
    assert_eq!(database["status"], "healthy", "{report:#}");
    assert_eq!(database["details"]["backend"], "postgresql", "{report:#}");
    assert!(
        database["details"]["query_result"].is_u64(),
        "the chain's height: {report:#}"
    );

    cluster.stop();
    let stopped = std::time::Instant::now();
    let body = wait_for(
        MESH_WAIT,
        || format!("/health unhealthy after PostgreSQL stopped: {:?}", health()),
        || {
            health()
                .filter(|(head, _)| head.starts_with("HTTP/1.1 503"))
                .map(|(_, body)| body)
        },
    );
    eprintln!(
        "/health answered 503 {:?} after PostgreSQL stopped",
        stopped.elapsed()
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "unhealthy", "{body:#}");
    assert_ne!(body["storage"], "ok", "{body:#}");
    assert_eq!(body["checks"]["storage"]["status"], "fail", "{body:#}");
    let log = std::fs::read_to_string(network.home(0).join("logs/aegis.log")).unwrap();
    assert!(log.contains("Ledger unavailable; node unhealthy"), "{log}");

    let (output, report) = health_report();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert_eq!(
        report["checks"]["database"]["status"], "unhealthy",
        "{report:#}"
    );
}
