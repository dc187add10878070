//! The node as the deployment files run it, without systemd itself:
//!
//! - `Type=notify`: under a `NOTIFY_SOCKET` (systemd's, here the test's own socket) the node
//!   sends `READY=1` once it serves, and not before: its API and metrics answer at once;
//! - logrotate: the shipped policy, run with `logrotate -f` on a running node's log (its
//!   `postrotate` sends SIGHUP as `systemctl reload aegis` would), moves the file aside and
//!   the node's next lines go to the new file; a second rotation compresses the first;
//! - the sandbox: every system call of a traced node (start, a commit, SIGHUP, SIGTERM) is
//!   in the unit's `SystemCallFilter=`, and it writes only under its `ReadWritePaths=`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aegis_testkit::wait::wait_until;
use common::network::Network;
use common::{aegis, http_get};

/// Bound on a lone validator's start on a loaded machine.
const START_WAIT: Duration = Duration::from_secs(60);
/// Bound on the node reopening its log after SIGHUP.
const REOPEN_WAIT: Duration = Duration::from_secs(30);

/// The node's child process, killed when the test ends however it ends.
struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_node_tells_systemd_it_is_ready_once_it_serves() {
    let network = Network::generate(1);
    let socket_path = network.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let console = std::fs::File::create(network.dir.path().join("node.out")).unwrap();
    let mut node = Node(
        aegis()
            .args(["run", "--config"])
            .arg(network.config(0))
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(Stdio::null())
            .stderr(console)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    let message = loop {
        match socket.recv(&mut buffer) {
            Ok(length) => break String::from_utf8_lossy(&buffer[..length]).into_owned(),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => panic!("read the notification socket: {error}"),
        }
        if let Some(status) = node.0.try_wait().unwrap() {
            panic!(
                "the node exited ({status}) without notifying:\n{}",
                network.logs()
            );
        }
        assert!(
            started.elapsed() < START_WAIT,
            "no readiness within {START_WAIT:?}\n{}",
            network.logs()
        );
    };
    // Serving already: no retry.
    let (api, metrics) = (network.api_port(0), network.metrics_port(0));
    let health = http_get(api, "/health").expect("/health answers once READY=1 is sent");
    assert!(health.0.starts_with("HTTP/1.1 200"), "{health:?}");
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines,
        [
            "READY=1".to_owned(),
            format!(
                "STATUS=Serving: P2P {}, API {api}, metrics {metrics}",
                network.p2p_port(0)
            ),
        ]
    );
    // The operational metrics the alerts use are served.
    let (_, text) = http_get(metrics, "/metrics").expect("/metrics answers");
    for sample in [
        "aegis_consensus_quorum 1",
        "aegis_consensus_validators 1",
        "aegis_mempool_max_transactions ",
        "aegis_mempool_max_bytes ",
        "aegis_storage_disk_available_bytes ",
        "aegis_storage_disk_size_bytes ",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(sample)),
            "{sample}:\n{text}"
        );
    }
    let status = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(node.0.wait().unwrap().success());
    let log = std::fs::read_to_string(network.home(0).join("logs/aegis.log")).unwrap();
    assert!(log.contains("Readiness sent to systemd"), "{log}");
}

/// Every line of the node's JSON log files is a whole JSON object.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line:?}")))
        .collect()
}

fn messages(text: &str) -> Vec<String> {
    json_lines(text)
        .iter()
        .map(|line| line["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn logrotate(config: &std::path::Path, state: &std::path::Path) {
    let output = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(state)
        .arg(config)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run logrotate ({error}): install the test dependencies with \
                 scripts/install-test-deps.sh (Debian's logrotate)"
            )
        });
    assert!(
        output.status.success(),
        "logrotate -f: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn logrotate_rotates_a_running_nodes_log_and_the_node_writes_on_in_the_new_file() {
    let mut network = Network::generate(1);
    network.start_node(0);
    wait_until(
        START_WAIT,
        || format!("the node to serve /health\n{}", network.logs()),
        || http_get(network.api_port(0), "/health").is_some(),
    );
    let pid = network.pid(0).unwrap();
    let logs = network.home(0).join("logs");
    let log = logs.join("aegis.log");

    // The shipped policy for this node's log directory, owned by whoever runs the test,
    // with systemd's reload (a SIGHUP to the node) done by hand.
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/logrotate/aegis"),
    )
    .unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let group = String::from_utf8(Command::new("id").arg("-gn").output().unwrap().stdout).unwrap();
    let mut policy = shipped.clone();
    for (from, to) in [
        ("/var/log/aegis/*.log", format!("{}/*.log", logs.display())),
        (
            "create 644 aegis aegis",
            format!("create 644 {} {}", user.trim(), group.trim()),
        ),
        (
            "systemctl reload aegis > /dev/null 2>&1 || true",
            format!("kill -HUP {pid}"),
        ),
    ] {
        assert!(policy.contains(from), "the shipped policy has no {from:?}");
        policy = policy.replace(from, &to);
    }
    let config = network.dir.path().join("logrotate.conf");
    std::fs::write(&config, policy).unwrap();
    let state = network.dir.path().join("logrotate.state");

    let before = std::fs::read_to_string(&log).unwrap();
    assert!(messages(&before).iter().any(|m| m == "AEGIS node starting"));
    logrotate(&config, &state);
    // The old file moved aside whole and uncompressed (delaycompress); the node reopened
    // aegis.log and writes there.
    let rotated = std::fs::read_to_string(logs.join("aegis.log.1")).unwrap();
    assert!(
        rotated.starts_with(&before),
        "aegis.log.1 is the old aegis.log"
    );
    wait_until(
        REOPEN_WAIT,
        || {
            format!(
                "\"Log file reopened\" in the new aegis.log: {:?}",
                std::fs::read_to_string(&log)
            )
        },
        || {
            std::fs::read_to_string(&log)
                .is_ok_and(|text| messages(&text).iter().any(|m| m == "Log file reopened"))
        },
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&log).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "create 644");

    // A second rotation compresses the first one and starts a third file.
    logrotate(&config, &state);
    let mut gz = Vec::new();
    std::fs::File::open(logs.join("aegis.log.2.gz"))
        .unwrap()
        .read_to_end(&mut gz)
        .unwrap();
    let gunzip = Command::new("gzip")
        .args(["-dc", logs.join("aegis.log.2.gz").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(gunzip.status.success());
    assert!(
        String::from_utf8(gunzip.stdout)
            .unwrap()
            .starts_with(&before)
    );
    wait_until(
        REOPEN_WAIT,
        || "the node to reopen aegis.log again".to_owned(),
        || {
            std::fs::read_to_string(&log)
                .is_ok_and(|text| messages(&text).iter().any(|m| m == "Log file reopened"))
        },
    );

    // The node's last lines land in the newest file, none in the rotated ones.
    assert!(network.stop_node(0).success());
    let last = std::fs::read_to_string(&log).unwrap();
    let last = messages(&last);
    assert!(
        last.iter().any(|m| m == "SIGTERM received, shutting down"),
        "{last:?}"
    );
    assert!(last.iter().any(|m| m == "AEGIS node stopped"), "{last:?}");
    let middle = std::fs::read_to_string(logs.join("aegis.log.1")).unwrap();
    assert!(
        !messages(&middle).iter().any(|m| m == "AEGIS node stopped"),
        "{middle}"
    );
}

/// A node run under strace; both are killed when the test ends however it ends (a killed
/// strace would leave its tracee running).
struct Traced {
    strace: std::process::Child,
    trace: std::path::PathBuf,
}

impl Traced {
    /// The node's pid: strace's child, the first pid of the trace.
    fn pid(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.trace).ok()?;
        text.split_whitespace().next().map(str::to_owned)
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

/// Every system call in the groups the unit's `SystemCallFilter=` names, expanded the way
/// systemd expands them (`systemd-analyze syscall-filter` lists each group's members, some of
/// them groups).
fn syscall_groups() -> std::collections::BTreeMap<String, Vec<String>> {
    let output = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .output()
        .expect("systemd-analyze (Debian's systemd) lists the system call groups");
    let mut groups = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(name) = line.strip_prefix('@') {
            current = Some(format!("@{}", name.trim()));
        } else if line.trim().is_empty() {
            current = None;
        } else if let Some(group) = &current
            && !line.trim_start().starts_with('#')
        {
            groups
                .entry(group.clone())
                .or_insert_with(Vec::new)
                .push(line.trim().to_owned());
        }
    }
    groups
}

fn expand(
    name: &str,
    groups: &std::collections::BTreeMap<String, Vec<String>>,
) -> std::collections::BTreeSet<String> {
    match groups.get(name) {
        Some(members) => members.iter().flat_map(|m| expand(m, groups)).collect(),
        None if name.starts_with('@') => panic!("unknown system call group {name}"),
        None => [name.to_owned()].into(),
    }
}

#[test]
fn the_units_sandbox_allows_everything_a_running_node_does() {
    // The unit's system call filter: an allow list, then deny lists.
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd/aegis.service"),
    )
    .unwrap();
    let groups = syscall_groups();
    let mut allowed = std::collections::BTreeSet::new();
    let mut denied = std::collections::BTreeSet::new();
    for filter in unit
        .lines()
        .filter_map(|line| line.strip_prefix("SystemCallFilter="))
    {
        let (deny, names) = match filter.strip_prefix('~') {
            Some(names) => (true, names),
            None => (false, filter),
        };
        for name in names.split_whitespace() {
            let calls = expand(name, &groups);
            if deny {
                denied.extend(calls);
            } else {
                allowed.extend(calls);
            }
        }
    }
    assert!(
        allowed.contains("openat") && denied.contains("setuid"),
        "{allowed:?}"
    );

    // One validator of four under strace: start, commit a transaction, SIGHUP, SIGTERM.
    let mut network = Network::generate(4);
    for i in 1..4 {
        network.start_node(i);
    }
    let trace = network.dir.path().join("strace.txt");
    let console = std::fs::File::create(network.dir.path().join("node.out")).unwrap();
    let mut node = Traced {
        strace: Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&trace)
            .arg(env!("CARGO_BIN_EXE_aegis"))
            .args(["run", "--config"])
            .arg(network.config(0))
            .env_remove("AEGIS_HOME")
            .env_remove("AEGIS_ENCRYPTION_KEY")
            .env_remove("RUST_LOG")
            .env_remove("AEGIS_LOG")
            .stdout(Stdio::null())
            .stderr(console)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run strace ({error}): install the test dependencies with \
                     scripts/install-test-deps.sh (Debian's strace)"
                )
            }),
        trace: trace.clone(),
    };
    let api = network.api_port(0);
    wait_until(
        START_WAIT,
        || format!("the traced node to serve /health 200\n{}", network.logs()),
        || http_get(api, "/health").is_some_and(|(head, _)| head.starts_with("HTTP/1.1 200")),
    );
    let chain = common::workload::chain_id(api);
    let client = aegis_crypto::SecretKey::generate();
    let tx = common::workload::sign(&client, &chain, 1, b"traced");
    let (status, body) = common::http_post(
        api,
        "/v1/transactions",
        &serde_json::to_string(&tx).unwrap(),
    )
    .unwrap();
    assert_eq!(status, 202, "{body}");
    let path = format!("/v1/transactions/{}", tx.id().to_hex());
    wait_until(
        START_WAIT,
        || format!("the transaction committed\n{}", network.logs()),
        || http_get(api, &path).is_some_and(|(_, body)| body.contains("\"committed\"")),
    );
    let log = network.home(0).join("logs/aegis.log");
    let pid = node.pid().expect("the trace names the node");
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_until(
        REOPEN_WAIT,
        || "the node to handle SIGHUP".to_owned(),
        || std::fs::read_to_string(&log).is_ok_and(|text| text.contains("Log file reopened")),
    );
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(node.strace.wait().unwrap().success(), "{}", network.logs());

    let text = std::fs::read_to_string(&trace).unwrap();
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let home = network.home(0);
    // The unit's ReadWritePaths under /opt/aegis, in this node's home.
    let writable: Vec<std::path::PathBuf> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("ReadWritePaths="))
        .flat_map(str::split_whitespace)
        .filter_map(|path| path.trim_start_matches('-').strip_prefix("/opt/aegis/"))
        .map(|dir| home.join(dir))
        .collect();
    assert!(writable.contains(&home.join("data")), "{writable:?}");
    let mut used = std::collections::BTreeSet::new();
    let mut written = Vec::new();
    for line in text.lines() {
        let Some(call) = line.split_whitespace().nth(1) else {
            continue;
        };
        let Some((name, rest)) = call.split_once('(') else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
            continue;
        }
        used.insert(name.to_owned());
        let opens_for_writing = name == "openat"
            && ["O_WRONLY", "O_RDWR", "O_CREAT"]
                .iter()
                .any(|flag| line.contains(flag));
        let changes = matches!(
            name,
            "mkdir" | "rename" | "unlink" | "renameat" | "unlinkat"
        );
        if (opens_for_writing || changes) && !line.contains(" = -1 ") {
            let quoted = line.split('"').nth(1).unwrap_or(rest);
            written.push(quoted.to_owned());
        }
    }
    assert!(
        used.contains("openat") && used.contains("epoll_wait"),
        "{used:?}"
    );
    for call in &used {
        // SQLite changes its files' owner back to the database's only when it runs as
        // root, which the unit never does.
        if root && call == "fchown" {
            continue;
        }
        assert!(
            allowed.contains(call),
            "{call} is not in the unit's allow list"
        );
        assert!(!denied.contains(call), "{call} is denied by the unit");
    }
    for path in &written {
        let path = std::path::Path::new(path);
        assert!(
            writable.iter().any(|dir| path.starts_with(dir))
                || path == std::path::Path::new("/dev/null"),
            "{} is written outside the unit's ReadWritePaths",
            path.display()
        );
    }
}
