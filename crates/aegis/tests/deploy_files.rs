//! Every file under `deploy/` passes its own tool: the systemd unit `systemd-analyze verify`
//! (with the exposure score of `systemd-analyze security` the one docs/operations.md gives),
//! logrotate's configuration `logrotate -d`, the fail2ban jail and filter
//! `fail2ban-client -t`, the Prometheus configuration and rules `promtool check` and
//! `promtool test rules` (with a firing and a quiet case for every alert), and the Grafana
//! dashboard is well formed. The same files run for real in `monitoring.rs` (Prometheus),
//! `deploy_service.rs` (readiness, logrotate) and aegis-p2p's `fail2ban.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// Runs `program` with `args`; panics with how to install it when it is missing.
fn run(program: &str, args: &[&str], package: &str) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {program} ({error}): install the test dependencies with \
                 scripts/install-test-deps.sh (Debian's {package})"
            )
        })
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The unit's `Key=value` lines, in order.
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The unit as shipped, but for the binary's path: `systemd-analyze verify` checks that
/// `ExecStart`'s program exists, and this machine has the test build, not an install.
fn installable_unit(dir: &Path) -> PathBuf {
    let unit = read("deploy/systemd/aegis.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/aegis run "));
    let unit = unit.replace("/usr/local/bin/aegis", env!("CARGO_BIN_EXE_aegis"));
    let path = dir.join("aegis.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened_as_documented() {
    let unit = read("deploy/systemd/aegis.service");
    let settings = unit_settings(&unit);
    let value = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // The shapes the issue and the guide name.
    for (key, expected) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("CPUQuota", "80%"),
        ("MemoryMax", "2G"),
        ("TasksMax", "1000"),
        ("User", "aegis"),
        ("Group", "aegis"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("LogsDirectory", "aegis"),
    ] {
        assert_eq!(value(key), [expected], "{key}");
    }
    let writable = value("ReadWritePaths").join(" ");
    assert!(writable.contains("/opt/aegis/data"), "{writable}");
    assert!(writable.contains("/opt/aegis/logs"), "{writable}");

    let dir = tempfile::tempdir().unwrap();
    let path = installable_unit(dir.path());
    let path = path.to_str().unwrap();
    let verify = run("systemd-analyze", &["verify", path], "systemd");
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        !text(&verify).contains("aegis.service"),
        "warnings about the unit: {}",
        text(&verify)
    );

    let security = run(
        "systemd-analyze",
        &["security", "--offline=true", "--no-pager", path],
        "systemd",
    );
    let report = text(&security);
    assert!(security.status.success(), "{report}");
    let score = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for aegis.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"))
        .to_owned();
    let level: f64 = score.parse().unwrap();
    assert!(
        level <= 2.0,
        "exposure {level} is above 2.0 (\"OK\"):\n{report}"
    );
    let docs = read("docs/operations.md");
    assert!(
        docs.contains(&format!("exposure level for aegis.service: {score} OK")),
        "docs/operations.md must give the exposure level {score}:\n{report}"
    );
    // The unit's own header comment says it too.
    assert!(
        unit.contains(&format!("(exposure {score} \"OK\"")),
        "{score}"
    );
}

#[test]
fn logrotate_accepts_the_shipped_policy() {
    let policy = read("deploy/logrotate/aegis");
    // The troubleshooting guide's policy.
    for directive in [
        "/var/log/aegis/*.log {",
        "daily",
        "rotate 30",
        "compress",
        "delaycompress",
        "missingok",
        "notifempty",
        "create 644 aegis aegis",
        "postrotate",
        "systemctl reload aegis",
        "endscript",
    ] {
        assert!(
            policy
                .lines()
                .any(|line| line.trim().starts_with(directive)),
            "{directive}"
        );
    }
    // logrotate refuses a `create` for a user this machine does not have: when there is
    // no `aegis` user, the owner is the one running the test, and nothing else changes.
    let dir = tempfile::tempdir().unwrap();
    let has_aegis = Command::new("id")
        .arg("aegis")
        .output()
        .is_ok_and(|output| output.status.success());
    let policy = if has_aegis {
        policy
    } else {
        let user = String::from_utf8(run("id", &["-un"], "coreutils").stdout).unwrap();
        let group = String::from_utf8(run("id", &["-gn"], "coreutils").stdout).unwrap();
        policy.replace(
            "create 644 aegis aegis",
            &format!("create 644 {} {}", user.trim(), group.trim()),
        )
    };
    let path = dir.path().join("aegis");
    std::fs::write(&path, policy).unwrap();
    let state = dir.path().join("state");
    let output = run(
        "logrotate",
        &["-d", "-s", state.to_str().unwrap(), path.to_str().unwrap()],
        "logrotate",
    );
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(!report.contains("error:"), "{report}");
    assert!(
        report.contains("rotating pattern: /var/log/aegis/*.log"),
        "{report}"
    );
}

#[test]
fn fail2ban_accepts_the_jail_and_its_filter() {
    // fail2ban's own configuration with the shipped jail and filter added, the jail's log
    // path pointed at a file that exists (fail2ban refuses a jail without one), and
    // Debian's sshd jail left out (this machine has no auth.log).
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fail2ban");
    let copy = run(
        "cp",
        &["-r", "/etc/fail2ban", conf.to_str().unwrap()],
        "fail2ban",
    );
    assert!(copy.status.success(), "{}", text(&copy));
    let _ = std::fs::remove_file(conf.join("jail.d/defaults-debian.conf"));
    let log = dir.path().join("aegis.log");
    std::fs::write(&log, "").unwrap();
    let jail = read("deploy/fail2ban/jail.d/aegis.conf");
    assert!(jail.contains("logpath  = /var/log/aegis/aegis.log"));
    assert!(jail.contains("filter   = aegis"));
    std::fs::write(
        conf.join("jail.d/aegis.conf"),
        jail.replace("/var/log/aegis/aegis.log", log.to_str().unwrap()),
    )
    .unwrap();
    std::fs::copy(
        repo("deploy/fail2ban/filter.d/aegis.conf"),
        conf.join("filter.d/aegis.conf"),
    )
    .unwrap();
    let output = run(
        "fail2ban-client",
        &["-c", conf.to_str().unwrap(), "-t"],
        "fail2ban",
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("OK: configuration test is successful"));
    // The jail is the one tested: fail2ban's dump of it names the filter's two rules.
    let dump = run(
        "fail2ban-client",
        &["-c", conf.to_str().unwrap(), "-d"],
        "fail2ban",
    );
    let dump = text(&dump);
    assert!(dump.contains("['add', 'aegis', 'auto']"), "{dump}");
    assert!(
        dump.contains("Authentication failed for peer from <ADDR>"),
        "{dump}"
    );
    assert!(dump.contains("Unauthorized access from <ADDR>"), "{dump}");
    assert!(
        dump.contains("['set', 'aegis', 'bantime', '3600']"),
        "{dump}"
    );
}

#[test]
fn promtool_checks_the_config_and_rules_and_their_unit_tests_pass() {
    let config = repo("deploy/prometheus/prometheus.yml");
    let output = run(
        "promtool",
        &["check", "config", config.to_str().unwrap()],
        "prometheus",
    );
    assert!(output.status.success(), "{}", text(&output));
    let rules = repo("deploy/prometheus/alert_rules.yml");
    let output = run(
        "promtool",
        &["check", "rules", rules.to_str().unwrap()],
        "prometheus",
    );
    assert!(output.status.success(), "{}", text(&output));
    let tests = repo("deploy/prometheus/alert_rules_test.yml");
    let output = run(
        "promtool",
        &["test", "rules", tests.to_str().unwrap()],
        "prometheus",
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("SUCCESS"), "{}", text(&output));

    // The alerts the guide and the issue name exist...
    let rules = read("deploy/prometheus/alert_rules.yml");
    let alerts: BTreeSet<String> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect();
    for name in [
        "AegisDown",
        "ConsensusFailure",
        "AegisHeightNotAdvancing",
        "AegisPeersBelowQuorum",
        "AegisFrequentViewChanges",
        "AegisCommitLatencyHigh",
        "AegisMempoolNearFull",
        "AegisSyncStalled",
        "AegisDiskNearlyFull",
    ] {
        assert!(alerts.contains(name), "{name}");
    }
    assert!(rules.contains("expr: up{job=\"aegis\"} == 0\n        for: 1m"));
    // ...and each has a unit test where it fires and one where it must not.
    let tests = read("deploy/prometheus/alert_rules_test.yml");
    for name in &alerts {
        let cases: Vec<&str> = tests
            .split("- eval_time:")
            .skip(1)
            .filter(|case| case.contains(&format!("alertname: {name}\n")))
            .collect();
        assert!(
            cases.iter().any(|case| case.contains("exp_alerts: []")),
            "{name} has no case where it stays quiet"
        );
        assert!(
            cases.iter().any(|case| case.contains("exp_labels:")),
            "{name} has no case where it fires"
        );
    }
}

#[test]
fn the_grafana_dashboard_is_well_formed_and_covers_what_operators_watch() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/aegis-dashboard.json")).unwrap();
    assert_eq!(dashboard["uid"], "aegis-overview");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "instance"]);
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut exprs = String::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "{title}: id");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        for key in ["x", "y", "w", "h"] {
            assert!(panel["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains("job=\"aegis\""),
                "{title}: {expr} must select job=\"aegis\""
            );
            assert!(expr.contains("instance=~\"$instance\""), "{title}: {expr}");
            exprs.push_str(expr);
            exprs.push('\n');
        }
    }
    // The issue's list: height per node, committed tx/s, commit latency p50/p99, peers,
    // view changes, mempool, storage write latency, sync progress.
    for metric in [
        "aegis_consensus_height",
        "aegis_consensus_committed_transactions_total",
        "histogram_quantile(0.50, sum by (le) (rate(aegis_consensus_commit_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(aegis_consensus_commit_latency_seconds_bucket",
        "aegis_p2p_peers",
        "aegis_consensus_view_changes_total",
        "aegis_mempool_size",
        "aegis_storage_write_latency_seconds_bucket",
        "aegis_sync_blocks_behind",
    ] {
        assert!(exprs.contains(metric), "no panel shows {metric}");
    }
}
