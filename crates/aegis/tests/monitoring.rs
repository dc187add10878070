//! The shipped Prometheus configuration and alert rules in a real Prometheus (Debian's
//! `prometheus`) scraping a real 4-node network under a light workload, with short scrape
//! and evaluation intervals: `up{job="aegis"}` is 1 for every node, every query of every
//! panel of the Grafana dashboard returns data, no alert is pending or firing on the healthy
//! network, and `AegisDown` (unchanged: `for: 1m`) fires for a stopped node, and only for it,
//! a minute after it stopped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aegis_testkit::net::free_port;
use aegis_testkit::wait::wait_for;
use common::http_get;
use common::network::Network;
use common::workload::Workload;
use serde_json::Value;

/// Scrape and rule evaluation interval of the test's Prometheus.
const INTERVAL: &str = "1s";
/// What `$__rate_interval` stands for in the dashboard's queries here: a few scrapes.
const RATE_INTERVAL: &str = "30s";
/// Bound on Prometheus starting and scraping every node.
const SCRAPE_WAIT: Duration = Duration::from_secs(60);
/// Bound on every dashboard query having data (rates need two scrapes of commits).
const DATA_WAIT: Duration = Duration::from_secs(90);
/// `AegisDown`'s `for`, and the bound on it firing after a node stops.
const DOWN_FOR: Duration = Duration::from_secs(60);
const FIRE_WAIT: Duration = Duration::from_secs(150);
/// `AegisDiskNearlyFull`'s threshold (free fraction), and a margin around it within which
/// the test does not predict the alert (the disk fills or empties while it runs).
const DISK_FREE_THRESHOLD: f64 = 0.10;
const DISK_FREE_MARGIN: f64 = 0.005;
/// Bound on the rules seeing every node's newest samples (a few evaluations).
const RULE_WAIT: Duration = Duration::from_secs(15);
/// Prometheus starts tried: its port is only probed free here.
const START_ATTEMPTS: usize = 5;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// A running Prometheus, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// The shipped `prometheus.yml` with the network's metrics ports as targets and
    /// [`INTERVAL`] for scrapes and rules; the shipped `alert_rules.yml` beside it.
    fn configure(dir: &Path, targets: &[String]) -> PathBuf {
        let shipped = std::fs::read_to_string(deploy("prometheus/prometheus.yml")).unwrap();
        let mut config = shipped.clone();
        for (from, to) in [
            (
                "scrape_interval: 15s",
                format!("scrape_interval: {INTERVAL}"),
            ),
            (
                "evaluation_interval: 15s",
                format!("evaluation_interval: {INTERVAL}"),
            ),
            ("scrape_timeout: 10s", format!("scrape_timeout: {INTERVAL}")),
        ] {
            assert!(config.contains(from), "prometheus.yml has no {from:?}");
            config = config.replace(from, &to);
        }
        let examples: Vec<&str> = shipped
            .lines()
            .filter(|line| line.trim_start().starts_with("- \"10.0.0."))
            .collect();
        assert_eq!(examples.len(), 4, "the example targets");
        let listed = targets
            .iter()
            .map(|target| format!("          - \"{target}\""))
            .collect::<Vec<_>>()
            .join("\n");
        config = config.replace(&examples.join("\n"), &listed);
        assert!(config.contains(&listed));
        assert!(config.contains("job_name: aegis"));
        let path = dir.join("prometheus.yml");
        std::fs::write(&path, config).unwrap();
        std::fs::copy(
            deploy("prometheus/alert_rules.yml"),
            dir.join("alert_rules.yml"),
        )
        .unwrap();
        let check = Command::new("promtool")
            .args(["check", "config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
        path
    }

    fn start(dir: &Path, config: &Path) -> Prometheus {
        for attempt in 0..START_ATTEMPTS {
            let port = free_port(LOCALHOST);
            let log = dir.join(format!("prometheus{attempt}.log"));
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("data{attempt}")).display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "cannot start prometheus ({error}): install the test dependencies with \
                         scripts/install-test-deps.sh (Debian's prometheus)"
                    )
                });
            let mut prometheus = Prometheus { child, port, log };
            let log_path = prometheus.log.clone();
            let ready = wait_for(
                SCRAPE_WAIT,
                || {
                    format!(
                        "Prometheus ready:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    )
                },
                || {
                    if let Some(status) = prometheus.child.try_wait().unwrap() {
                        return Some(Err(status));
                    }
                    http_get(port, "/-/ready")
                        .filter(|(head, _)| head.starts_with("HTTP/1.1 200"))
                        .map(|_| Ok(()))
                },
            );
            match ready {
                Ok(()) => return prometheus,
                Err(_) if prometheus.logs().contains("address already in use") => continue,
                Err(status) => panic!("prometheus exited ({status}):\n{}", prometheus.logs()),
            }
        }
        panic!("no free port for Prometheus in {START_ATTEMPTS} attempts");
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`: its `data`, once Prometheus answers with success.
    fn api(&self, path: &str) -> Option<Value> {
        let (_, body) = http_get(self.port, &format!("/api/v1/{path}"))?;
        let answer: Value = serde_json::from_str(&body).ok()?;
        (answer["status"] == "success").then(|| answer["data"].clone())
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let data = self.api(&format!("query?query={}", encode(promql)))?;
        data["result"].as_array().cloned()
    }

    /// The alerts Prometheus holds now (pending and firing).
    fn alerts(&self) -> Vec<Value> {
        self.api("alerts")
            .and_then(|data| data["alerts"].as_array().cloned())
            .unwrap_or_default()
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Whether a query result has a sample with a finite value.
fn has_finite_sample(result: &[Value]) -> bool {
    result.iter().any(|series| {
        series["value"][1]
            .as_str()
            .and_then(|value| value.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    })
}

/// Every query of every panel of the dashboard, as Grafana would send it for all nodes.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/aegis-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$__rate_interval", RATE_INTERVAL);
            let title = format!(
                "{} / {}",
                panel["title"].as_str().unwrap(),
                target["refId"].as_str().unwrap()
            );
            queries.push((title, expr));
        }
    }
    queries
}

#[test]
fn prometheus_scrapes_every_node_runs_the_dashboard_and_fires_aegis_down_for_a_stopped_node() {
    let mut network = Network::start(4);
    let ports: Vec<u16> = (0..network.n).map(|i| network.api_port(i)).collect();
    let _workload = Workload::start(ports, Duration::from_millis(250));
    let targets: Vec<String> = (0..network.n)
        .map(|i| format!("127.0.0.1:{}", network.metrics_port(i)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = Prometheus::configure(dir.path(), &targets);
    let prometheus = Prometheus::start(dir.path(), &config);

    // up{job="aegis"} is 1 for every node.
    let expected: BTreeSet<String> = targets.iter().cloned().collect();
    wait_for(
        SCRAPE_WAIT,
        || {
            format!(
                "up{{job=\"aegis\"}} 1 for {expected:?}: {:?}\n{}",
                prometheus.query("up"),
                prometheus.logs()
            )
        },
        || {
            let up = prometheus.query("up{job=\"aegis\"}")?;
            let healthy: BTreeSet<String> = up
                .iter()
                .filter(|series| series["value"][1] == "1")
                .filter_map(|series| series["metric"]["instance"].as_str().map(str::to_owned))
                .collect();
            (up.len() == 4 && healthy == expected).then_some(())
        },
    );
    // The dashboard's node selector lists every node.
    let instances = prometheus
        .api(&format!(
            "label/instance/values?{}",
            encode_param("match[]", "aegis_node_info{job=\"aegis\"}")
        ))
        .unwrap();
    let instances: BTreeSet<String> = serde_json::from_value(instances).unwrap();
    assert_eq!(instances, expected);

    // Every panel's query returns data.
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{queries:?}");
    wait_for(
        DATA_WAIT,
        || {
            let empty: Vec<_> = queries
                .iter()
                .filter(|(_, expr)| {
                    !prometheus
                        .query(expr)
                        .is_some_and(|result| has_finite_sample(&result))
                })
                .map(|(title, expr)| format!("{title}: {expr} -> {:?}", prometheus.query(expr)))
                .collect();
            format!(
                "data for every dashboard query; none for:\n{}",
                empty.join("\n")
            )
        },
        || {
            queries
                .iter()
                .all(|(_, expr)| {
                    prometheus
                        .query(expr)
                        .is_some_and(|result| has_finite_sample(&result))
                })
                .then_some(())
        },
    );

    // A healthy network raises no alert, not even a pending one; except that the disk
    // alert is pending exactly when this machine's disk really is nearly full (test
    // machines' disks sometimes are: the nodes' data directories share it).
    let disk_alerts = || -> (Vec<Value>, Vec<Value>) {
        prometheus
            .alerts()
            .into_iter()
            .partition(|alert| alert["labels"]["alertname"] == "AegisDiskNearlyFull")
    };
    let stats = rustix::fs::statvfs(network.dir.path()).unwrap();
    let free = stats.f_bavail as f64 / stats.f_blocks as f64;
    if (free - DISK_FREE_THRESHOLD).abs() > DISK_FREE_MARGIN {
        let expected = if free < DISK_FREE_THRESHOLD { 4 } else { 0 };
        // Each node's alert appears at the first evaluation after its first scrape.
        wait_for(
            RULE_WAIT,
            || {
                format!(
                    "{expected} disk alerts at {:.1}% free: {:#?}",
                    free * 100.0,
                    disk_alerts()
                )
            },
            || (disk_alerts().0.len() == expected).then_some(()),
        );
    }
    let (_, others) = disk_alerts();
    let others: Vec<Value> = others
        .into_iter()
        .filter(|alert| !load_dependent(alert))
        .collect();
    assert!(others.is_empty(), "{others:#?}");

    // One node stops: AegisDown fires for it, a minute later, and for no other node.
    let stopped = targets[3].clone();
    let status = network.stop_node(3);
    assert!(status.success(), "{status}");
    let stopped_at = Instant::now();
    let firing = wait_for(
        FIRE_WAIT,
        || format!("AegisDown firing for {stopped}: {:#?}", prometheus.alerts()),
        || {
            prometheus
                .alerts()
                .into_iter()
                .find(|alert| {
                    alert["labels"]["alertname"] == "AegisDown"
                        && alert["labels"]["instance"] == stopped.as_str()
                        && alert["state"] == "firing"
                })
                .map(|alert| (alert, stopped_at.elapsed()))
        },
    );
    let (alert, after) = firing;
    assert!(
        after >= DOWN_FOR - Duration::from_secs(1),
        "AegisDown fired {after:?} after the stop, before its `for: 1m`"
    );
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["job"], "aegis");
    assert_eq!(
        alert["annotations"]["description"],
        format!("AEGIS instance {stopped} has been down for more than 1 minute.")
    );
    let others: Vec<_> = prometheus
        .alerts()
        .into_iter()
        .filter(|alert| alert["labels"]["instance"] != stopped.as_str())
        .filter(|alert| alert["labels"]["alertname"] != "AegisDiskNearlyFull")
        .filter(|alert| !load_dependent(alert))
        .collect();
    assert!(
        others.is_empty(),
        "three of four validators keep a quorum: {others:#?}"
    );
}

/// A pending `AegisCommitLatencyHigh`: it measures this machine as much as the nodes (four
/// nodes, Prometheus and the other tests share two cores), so it may start counting; it
/// fires only after 5 minutes, longer than this test runs.
fn load_dependent(alert: &Value) -> bool {
    alert["labels"]["alertname"] == "AegisCommitLatencyHigh" && alert["state"] == "pending"
}

/// `name=value`, percent-encoded.
fn encode_param(name: &str, value: &str) -> String {
    format!("{}={}", encode(name), encode(value))
}
