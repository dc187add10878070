//! Issue 10, findings 5 to 7, against the real `aegis` binary:
//!
//! 5. every file the node reads is a bounded regular file: `/dev/zero` in place of any of
//!    them, a 50 MB configuration or a garbage certificate is a clear error at once, and
//!    `aegis run`'s start-up error is in `logs/aegis.log` too;
//! 6. a second `aegis run` (or `aegis db migrate`) on a running node's home is refused,
//!    naming the first one's pid, and leaves its files and log untouched;
//! 7. `aegis verify` writes nothing (an empty file stays empty), a database locked by
//!    another process is reported as locked, and a database error is printed once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aegis_testkit::wait::wait_until;
use common::aegis;
use common::network::Network;

const WAIT: Duration = Duration::from_secs(60);

/// Runs `command` to completion: exit code, stdout, stderr.
fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("aegis runs");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!stderr.contains("panicked"), "aegis panicked: {stderr}");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    )
}

fn check(config: &Path) -> (i32, String, String) {
    run(aegis().args(["config", "check", "--config"]).arg(config))
}

fn start(config: &Path) -> (i32, String, String) {
    run(aegis().args(["run", "--config"]).arg(config))
}

/// Replaces `path` by a symbolic link to `/dev/zero`, returning the file's contents.
fn link_to_dev_zero(path: &Path) -> Vec<u8> {
    let saved = std::fs::read(path).unwrap_or_default();
    let _ = std::fs::remove_file(path);
    std::os::unix::fs::symlink("/dev/zero", path).unwrap();
    saved
}

fn restore(path: &Path, contents: &[u8]) {
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn log_text(home: &Path) -> String {
    std::fs::read_to_string(home.join("logs/aegis.log")).unwrap_or_default()
}

/// Finding 5: with a file named by the configuration linked to `/dev/zero`, `config check`
/// and `run` grew to about 1 GB before running out of memory. Now each is refused at once
/// as "not a regular file", naming the file and the key that names it.
#[test]
fn dev_zero_in_place_of_any_file_is_a_clear_error() {
    let net = Network::generate(4);
    let home = net.home(1);
    let config = net.config(1);
    for (relative, key) in [
        ("config/genesis.json", "node.genesis_file: "),
        ("config/node_key.json", "node.key_file: "),
        ("config/tls/node.crt", "security.tls.cert_file: "),
        ("config/tls/node.key", "security.tls.key_file: "),
        ("config/tls/ca.crt", "security.tls.ca_file: "),
        (".env", ""),
    ] {
        let path = home.join(relative);
        let saved = link_to_dev_zero(&path);
        let expected = format!(
            "{}: not a regular file (it is a character device)",
            path.display()
        );
        for (what, (code, stdout, stderr)) in [("check", check(&config)), ("run", start(&config))] {
            assert_eq!(code, 1, "{what} {relative}: {stdout}{stderr}");
            let line = stderr
                .lines()
                .find(|line| line.contains(&path.display().to_string()))
                .unwrap_or_else(|| panic!("{what} {relative}: no line names the file:\n{stderr}"));
            assert!(
                line.contains(key)
                    && line.contains("not a regular file (it is a character device)"),
                "{what} {relative}: {line}\nexpected {expected}"
            );
        }
        restore(&path, &saved);
    }
    let saved = link_to_dev_zero(&config);
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "cannot read configuration file: not a regular file (it is a character device)"
        ),
        "{stderr}"
    );
    restore(&config, &saved);

    // A 50 MB configuration is reported with its size, not as "1048577 bytes".
    let big = home.join("config/big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(50_000_000)
        .unwrap();
    let (code, _, stderr) = check(&big);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("file is 50000000 bytes, larger than the limit of 1048576 bytes"),
        "{stderr}"
    );
    assert_eq!(check(&config).0, 0, "the home is whole again");
}

/// Finding 5: a `node.crt` holding `this is not a certificate` passed `config check`, and
/// `aegis run`'s failure reached stderr only. Now both say what is wrong with which file,
/// and the start-up error is in the log file too.
#[test]
fn garbage_certificates_are_named_by_config_check_and_logged_by_run() {
    let net = Network::generate(4);
    let home = net.home(0);
    let config = net.config(0);
    let cert = home.join("config/tls/node.crt");
    let good = std::fs::read(&cert).unwrap();
    std::fs::write(&cert, "this is not a certificate\n").unwrap();
    let expected = format!(
        "security.tls.cert_file: {}: no PEM certificate found (expected a -----BEGIN CERTIFICATE----- block)",
        cert.display()
    );
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 1);
    assert!(stderr.contains(&expected), "{stderr}");
    let (code, _, stderr) = start(&config);
    assert_eq!(code, 1);
    assert!(stderr.contains(&expected), "{stderr}");
    let log = log_text(&home);
    let line = log
        .lines()
        .find(|line| line.contains("no PEM certificate found"))
        .unwrap_or_else(|| panic!("the start-up error is not in the log file:\n{log}"));
    assert!(
        line.contains("\"level\":\"ERROR\"") && line.contains("AEGIS node cannot start"),
        "{line}"
    );

    // Another node's certificate: the key does not match it, and another network's CA
    // did not sign it.
    std::fs::write(&cert, &good).unwrap();
    std::fs::copy(
        net.home(1).join("config/tls/node.key"),
        home.join("config/tls/node.key"),
    )
    .unwrap();
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the private key does not match the certificate in"),
        "{stderr}"
    );
    let other = Network::generate(1);
    std::fs::copy(other.home(0).join("config/tls/node.crt"), &cert).unwrap();
    std::fs::copy(
        other.home(0).join("config/tls/node.key"),
        home.join("config/tls/node.key"),
    )
    .unwrap();
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the certificate is not signed by the CA in"),
        "{stderr}"
    );
}

/// The files under `dir`, sorted.
/// The files under `dir`, but for a running node's temporary files (a compaction of its
/// consensus log writes `consensus.log.tmp` and renames it at any moment).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_none_or(|ext| ext != "tmp") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Finding 6: a second `aegis run` on a running node's home opened its ledger, deleted a
/// file under `data/consensus/`, wrote into its log, and with other ports ran beside it on
/// the same data and key. Now it is refused before it writes anything, naming the first
/// one's pid; the first one's files and log are untouched, and the lock ends with it.
#[test]
fn a_second_aegis_run_on_the_same_home_is_refused_and_touches_nothing() {
    let mut net = Network::generate(4);
    net.start_node(0);
    wait_until(
        WAIT,
        || format!("node0 serving\n{}", net.logs()),
        || net.peers(0).is_some(),
    );
    let pid = net.pid(0).unwrap();
    let home = net.home(0);
    let config = net.config(0);
    // The same home with other ports: what the finding ran.
    let moved = home.join("config/moved.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("port: {}", net.p2p_port(0)), "port: 1")
        .replace(&format!("port: {}", net.api_port(0)), "port: 2")
        .replace(
            &format!("metrics_port: {}", net.metrics_port(0)),
            "metrics_port: 3",
        );
    std::fs::write(&moved, text).unwrap();
    let log_before = log_text(&home);
    // The running node writes its consensus log as it starts; the finding's second process
    // deleted a file there.
    let consensus = home.join("data/consensus");
    wait_until(WAIT, "node0's consensus log written", || {
        !files_in(&consensus).is_empty()
    });
    let consensus_before = files_in(&consensus);
    let lock = home.join("data/aegis.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        pid.to_string()
    );
    let refusal = format!(
        "another aegis process (pid {pid}) is running on the node home {}",
        home.display()
    );
    for second in [&config, &moved] {
        let (code, _, stderr) = start(second);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(&refusal), "{stderr}");
    }
    let mut migrate = aegis();
    let (code, _, stderr) = run(migrate
        .args(["db", "migrate", "--config"])
        .arg(&config)
        .env("AEGIS_ENCRYPTION_KEY", "unused"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&refusal), "{stderr}");
    // Untouched: the lock names the first process, the consensus files are all there, and
    // the log has nothing from the others (the running node may have added its own
    // lines, after the ones it had).
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(files_in(&consensus), consensus_before);
    let log_after = log_text(&home);
    assert!(log_after.starts_with(&log_before));
    assert_eq!(
        log_after.matches("AEGIS node starting").count(),
        1,
        "{log_after}"
    );
    assert!(!log_after.contains("SIGTERM received"), "{log_after}");
    assert!(!log_after.contains("another aegis process"), "{log_after}");
    assert!(net.peers(0).is_some(), "the first node still serves");
    // The lock ends with its process: after a clean stop the home starts again.
    assert!(net.stop_node(0).success());
    net.start_node(0);
    wait_until(
        WAIT,
        || format!("node0 serving again\n{}", net.logs()),
        || net.peers(0).is_some(),
    );
}

/// Adds `lines` under the `storage:` section of `config`.
fn set_storage(config: &Path, lines: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        text.replacen("\nstorage:\n", &format!("\nstorage:\n{lines}"), 1),
    )
    .unwrap();
}

/// Finding 7: `aegis verify` grew an empty database file to 4096 bytes; a database held by
/// `BEGIN EXCLUSIVE` gave `pool timed out while waiting for an open connection (retried
/// for 0 s)`; a read-only database's error was printed three times.
#[test]
fn storage_edges_read_only_verify_named_locks_errors_said_once() {
    let net = Network::generate(4);
    let home = net.home(0);
    let config = net.config(0);
    set_storage(&config, "  pool_timeout: 2\n");
    let db = home.join("data/blockchain.db");

    // An empty file stays empty.
    std::fs::write(&db, b"").unwrap();
    let (code, _, stderr) = run(aegis().args(["verify", "--config"]).arg(&config));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("is an empty file, not an AEGIS ledger"),
        "{stderr}"
    );
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    assert!(!home.join("data/blockchain.db-wal").exists());
    std::fs::remove_file(&db).unwrap();

    // A rollback-journal database held by another process's BEGIN EXCLUSIVE.
    let mut migrate = aegis();
    let (code, _, stderr) = run(migrate
        .args(["db", "migrate", "--config"])
        .arg(&config)
        .env("AEGIS_ENCRYPTION_KEY", "unused"));
    assert_eq!(code, 0, "{stderr}");
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  c.execute('PRAGMA journal_mode=DELETE')\n\
                  c.execute('BEGIN EXCLUSIVE')\n\
                  c.execute('UPDATE transaction_ids_state SET indexed_through = indexed_through')\n\
                  print('locked', flush=True)\n\
                  sys.stdin.read()\n";
    let mut holder = Command::new("python3")
        .args(["-c", script])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let (code, _, stderr) = run(aegis().args(["verify", "--config"]).arg(&config));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("is locked by another process (waited 2 s for the lock)"),
        "{stderr}"
    );
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    holder.stdin.take().unwrap().write_all(b"done\n").unwrap();
    assert!(holder.wait().unwrap().success());
    let (code, stdout, stderr) = run(aegis().args(["verify", "--config"]).arg(&config));
    assert_eq!(
        (code, stdout.trim()),
        (0, "Chain verified: 0 blocks, 0 transactions"),
        "{stderr}"
    );

    // A database the node cannot write: the error once, on one line.
    let (code, stderr) = run_with_read_only_database(&net, &db);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr
            .matches("attempt to write a readonly database")
            .count(),
        1,
        "{stderr}"
    );
}

/// `aegis run` of node0 with its ledger file read-only to the node: as root (which ignores
/// file modes) the node runs as `nobody`, with the home opened up to it except the ledger.
fn run_with_read_only_database(net: &Network, db: &Path) -> (i32, String) {
    let home = net.home(0);
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
        == 0;
    let mut command = if root {
        // Every directory down to the home must be searchable by nobody.
        let mut dir = Some(home.as_path());
        while let Some(path) = dir {
            if path.starts_with(net.dir.path()) {
                chmod(path, 0o777);
            }
            dir = path.parent();
        }
        chmod(net.dir.path(), 0o755);
        let status = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&home)
            .status()
            .unwrap();
        assert!(status.success());
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_aegis"));
        for var in [
            "AEGIS_ENCRYPTION_KEY",
            "AEGIS_HOME",
            "AEGIS_NODE_ID",
            "AEGIS_LOG",
            "RUST_LOG",
        ] {
            command.env_remove(var);
        }
        command
    } else {
        aegis()
    };
    chmod(db, 0o444);
    let (code, _, stderr) = run(command.args(["run", "--config"]).arg(net.config(0)));
    (code, stderr)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}
