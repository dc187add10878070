//! The foundation's command-line promises, run against the real `aegis` binary:
//! `--version`, `keygen`, `testnet`, `config check` (valid, and every error class with its
//! message shape) and `run` refusing a bad start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use common::aegis;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("aegis runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(!stderr.contains("panicked"), "aegis panicked: {stderr}");
    assert!(
        !stderr.contains("RUST_BACKTRACE"),
        "aegis printed a backtrace hint: {stderr}"
    );
    (status.code().unwrap_or(-1), stdout, stderr)
}

fn check(config: &Path) -> (i32, String, String) {
    run(aegis().args(["config", "check", "--config"]).arg(config))
}

/// A four-validator testnet in a fresh temporary directory.
fn testnet(base_port: u16) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let (code, stdout, stderr) = run(aegis()
        .args([
            "testnet",
            "--validators",
            "4",
            "--base-port",
            &base_port.to_string(),
            "--out",
        ])
        .arg(&out));
    assert_eq!(code, 0, "{stdout}{stderr}");
    (dir, out)
}

#[test]
fn version_is_printed() {
    let (code, stdout, _) = run(aegis().arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("aegis {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_generated_config_is_valid() {
    let (_dir, out) = testnet(8000);
    for i in 0..4 {
        let home = out.join(format!("node{i}"));
        let (code, stdout, stderr) = check(&home.join("config/production.yaml"));
        assert_eq!(
            (code, stdout.as_str()),
            (0, "Configuration is valid\n"),
            "node{i}: {stderr}"
        );
        for path in [
            "config/genesis.json",
            "config/node_key.json",
            "config/tls/node.crt",
            "config/tls/node.key",
            "config/tls/ca.crt",
            ".env",
        ] {
            assert!(home.join(path).is_file(), "node{i} lacks {path}");
        }
        for dir in ["data", "data/consensus", "data/p2p", "logs"] {
            assert!(home.join(dir).is_dir(), "node{i} lacks {dir}/");
        }
        let config = std::fs::read_to_string(home.join("config/production.yaml")).unwrap();
        assert!(
            config.contains(&format!("port: {}", 8000 + i)),
            "p2p port of node{i}"
        );
        assert!(
            config.contains(&format!("port: {}", 8080 + i)),
            "api port of node{i}"
        );
        assert!(
            config.contains(&format!("metrics_port: {}", 9090 + i)),
            "metrics port of node{i}"
        );
    }
    // The genesis lists the four validators with the generated keys.
    let genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("genesis.json")).unwrap()).unwrap();
    assert_eq!(genesis["validators"].as_array().unwrap().len(), 4);
    assert_eq!(genesis["consensus"]["max_byzantine_nodes"], 1);
}

#[test]
fn testnet_refuses_a_non_empty_directory_and_bad_counts() {
    let (_dir, out) = testnet(20000);
    let (code, _, stderr) = run(aegis()
        .args(["testnet", "--validators", "4", "--out"])
        .arg(&out));
    assert_eq!(code, 1);
    assert!(stderr.contains("is not empty"), "{stderr}");
    let fresh = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(aegis()
        .args(["testnet", "--validators", "0", "--out"])
        .arg(fresh.path()));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--validators must be at least 1"),
        "{stderr}"
    );
    let (code, _, stderr) = run(aegis()
        .args([
            "testnet",
            "--validators",
            "4",
            "--base-port",
            "65000",
            "--out",
        ])
        .arg(fresh.path()));
    assert_eq!(code, 1);
    assert!(stderr.contains("is too high for 4 validators"), "{stderr}");
}

/// Writes `text` as a config file inside node0's config directory, so the node's home, key,
/// genesis and TLS files are found, and returns its path.
fn node0_config(out: &Path, name: &str, text: &str) -> PathBuf {
    let path = out.join("node0/config").join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_errors_name_file_line_column_and_key() {
    let (_dir, out) = testnet(21000);
    let cases: &[(&str, &str, &str)] = &[
        (
            "malformed.yaml",
            "p2p:\n  port: [8000\n",
            "malformed.yaml:3:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'",
        ),
        (
            "type.yaml",
            "p2p:\n  port: abc\n",
            "type.yaml:2:9: p2p.port: expected an integer, found \"abc\"",
        ),
        (
            "unknown.yaml",
            "p2p:\n  prot: 8000\n",
            "unknown.yaml:2:3: p2p.prot: unknown key; did you mean `port`?",
        ),
        (
            "range.yaml",
            "api:\n  port: 70000\n",
            "range.yaml:2:9: api.port: 70000 is out of range (1-65535)",
        ),
        (
            "size.yaml",
            "performance:\n  buffer_sizes:\n    network: 64XB\n",
            "size.yaml:3:14: performance.buffer_sizes.network: expected a size such as 65536 (bytes), \"64KB\", \"1MB\", \"512KiB\" or \"1GB\", found \"64XB\"",
        ),
        (
            "duration.yaml",
            "consensus:\n  timeout: soon\n",
            "duration.yaml:2:12: consensus.timeout: expected a duration such as 30 (seconds), \"100ms\", \"30s\", \"5m\" or \"1h\", found \"soon\"",
        ),
        (
            "faults.yaml",
            "consensus:\n  max_byzantine_nodes: 2\n",
            "faults.yaml:2:24: consensus.max_byzantine_nodes: the genesis file GENESIS has 4 validators, but tolerating f = 2 Byzantine nodes needs n >= 3f+1 = 7",
        ),
        (
            "minimum.yaml",
            "consensus:\n  min_validators: 5\n",
            "minimum.yaml:2:19: consensus.min_validators: the genesis file GENESIS has 4 validators, fewer than consensus.min_validators = 5",
        ),
    ];
    let genesis_file = out.join("node0/config/genesis.json");
    for (name, text, expected) in cases {
        let path = node0_config(&out, name, text);
        let (code, stdout, stderr) = check(&path);
        assert_eq!(code, 1, "{name} should fail: {stdout}{stderr}");
        let expected = format!(
            "{}/{}",
            path.parent().unwrap().display(),
            expected.replace("GENESIS", &genesis_file.display().to_string())
        );
        assert_eq!(
            stderr.lines().collect::<Vec<_>>(),
            vec![expected.as_str()],
            "{name}"
        );
    }
    // A genesis that breaks n >= 3f+1 is reported with its location and the rule.
    let genesis_path = out.join("node0/config/genesis.json");
    let mut genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&genesis_path).unwrap()).unwrap();
    genesis["consensus"]["max_byzantine_nodes"] = 2.into();
    std::fs::write(
        &genesis_path,
        serde_json::to_string_pretty(&genesis).unwrap(),
    )
    .unwrap();
    let (code, _, stderr) = check(&out.join("node0/config/production.yaml"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("invalid genesis: validators: 4 validators cannot tolerate max_byzantine_nodes = 2: PBFT needs n >= 3f+1 = 7"),
        "{stderr}"
    );
    assert!(stderr.contains("node.genesis_file:"), "{stderr}");
}

/// `config check` accepts a node configuration without a `mempool:` section (its defaults
/// apply) and with one; a mempool value out of range is reported like any other key.
#[test]
fn config_check_accepts_the_mempool_section_and_its_absence() {
    let (_dir, out) = testnet(26000);
    let without = out.join("node0/config/production.yaml");
    let base = std::fs::read_to_string(&without).unwrap();
    assert!(!base.contains("mempool:"), "{base}");
    let with = node0_config(
        &out,
        "with-mempool.yaml",
        &format!(
            "{base}\nmempool:\n  max_transactions: 20000\n  max_bytes: 128MB\n  max_transaction_bytes: 66560\n  recent_committed: 100000\n"
        ),
    );
    for path in [&without, &with] {
        let (code, stdout, stderr) = check(path);
        assert_eq!(
            (code, stdout.as_str()),
            (0, "Configuration is valid\n"),
            "{}: {stderr}",
            path.display()
        );
    }
    let too_many = node0_config(
        &out,
        "too-many.yaml",
        &format!("{base}\nmempool:\n  max_transactions: 1000001\n"),
    );
    let (code, _, stderr) = check(&too_many);
    assert_eq!(code, 1, "{stderr}");
    // The blank line and `mempool:` come after the base file's lines.
    let line = base.lines().count() + 3;
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        vec![format!(
            "{}:{line}:21: mempool.max_transactions: 1000001 is out of range (1-1000000)",
            too_many.display()
        )]
    );
}

#[test]
fn missing_environment_variables_are_listed_on_one_line() {
    let (_dir, out) = testnet(22000);
    // Without the node's .env, AEGIS_ENCRYPTION_KEY is unset too.
    std::fs::remove_file(out.join("node0/.env")).unwrap();
    let path = node0_config(
        &out,
        "pg.yaml",
        "storage:\n  type: postgresql\n  connection_string: \"${DATABASE_URL}\"\nnode:\n  id: \"${AEGIS_NODE_ID}\"\n",
    );
    let (code, stdout, _) = check(&path);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        "Missing environment variables: AEGIS_ENCRYPTION_KEY, AEGIS_NODE_ID, DATABASE_URL\n"
    );
    // The process environment fills them in.
    let (code, stdout, stderr) = run(aegis()
        .args(["config", "check", "--config"])
        .arg(&path)
        .env("DATABASE_URL", "postgresql://aegis:secret@localhost/aegis")
        .env("AEGIS_NODE_ID", "node0")
        .env("AEGIS_ENCRYPTION_KEY", "not-the-right-key"));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("node.key_file: cannot decrypt key file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wrong AEGIS_ENCRYPTION_KEY, or the file was tampered with"),
        "{stderr}"
    );
}

#[test]
fn unreadable_or_tampered_key_files_are_reported() {
    let (_dir, out) = testnet(23000);
    let config = out.join("node0/config/production.yaml");
    let key_path = out.join("node0/config/node_key.json");
    let original = std::fs::read_to_string(&key_path).unwrap();

    let mut tampered: serde_json::Value = serde_json::from_str(&original).unwrap();
    let ciphertext = tampered["cipher"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = format!(
        "{}{}",
        if ciphertext.starts_with('0') {
            "1"
        } else {
            "0"
        },
        &ciphertext[1..]
    );
    tampered["cipher"]["ciphertext"] = flipped.into();
    std::fs::write(&key_path, tampered.to_string()).unwrap();
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("production.yaml:8:13: node.key_file: cannot decrypt key file"),
        "{stderr}"
    );

    std::fs::write(&key_path, "{ not json").unwrap();
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not a valid AEGIS key file"), "{stderr}");

    std::fs::remove_file(&key_path).unwrap();
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("node.key_file: cannot read key file"),
        "{stderr}"
    );

    // Another validator's key is not this node's.
    std::fs::copy(out.join("node1/config/node_key.json"), &key_path).unwrap();
    let env = std::fs::read_to_string(out.join("node1/.env")).unwrap();
    let key = env
        .lines()
        .find_map(|l| l.strip_prefix("AEGIS_ENCRYPTION_KEY="))
        .unwrap();
    let (code, _, stderr) = run(aegis()
        .args(["config", "check", "--config"])
        .arg(&config)
        .env("AEGIS_ENCRYPTION_KEY", key));
    assert_eq!(code, 1);
    assert!(stderr.contains("node.id: \"node0\" does not match the genesis, where this node's key belongs to \"node1\""), "{stderr}");
}

#[test]
fn arbitrary_files_never_panic() {
    let (_dir, out) = testnet(24000);
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\x00\x01\x02\xff\xfe".to_vec(),
        b"- - - - -\n".to_vec(),
        b"p2p: [1, 2, 3]\n".to_vec(),
        b"a: &a [*a]\n".to_vec(),
        "x: ".repeat(10_000).into_bytes(),
        "[".repeat(5_000).into_bytes(),
        b"lol: &a [1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c]\n".to_vec(),
        b"p2p:\n  port: 99999999999999999999999\n".to_vec(),
        b"storage:\n  pool_size: -1\n".to_vec(),
        b"p2p:\n  bootstrap_nodes: \"not a list\"\n".to_vec(),
    ];
    for (i, input) in inputs.iter().enumerate() {
        let path = out.join(format!("node0/config/fuzz{i}.yaml"));
        std::fs::write(&path, input).unwrap();
        let (code, _, _) = check(&path);
        // An empty file is a valid configuration (every key has a default).
        if i == 0 {
            assert_eq!(code, 0);
        } else {
            assert_eq!(code, 1, "input {i}");
        }
    }
    // A missing file and a directory.
    let (code, _, stderr) = check(&out.join("node0/config/absent.yaml"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("absent.yaml: cannot read configuration file"),
        "{stderr}"
    );
    let (code, _, _) = check(&out.join("node0/config"));
    assert_eq!(code, 1);
}

#[test]
fn keygen_writes_an_encrypted_key_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k/node_key.json");
    let (code, stdout, _) = run(aegis().args(["keygen", "--out"]).arg(&path));
    assert_eq!((code, stdout.as_str()), (1, ""));
    let (code, stdout, stderr) = run(aegis()
        .args(["keygen", "--out"])
        .arg(&path)
        .env("AEGIS_ENCRYPTION_KEY", "k1"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("public_key: "), "{stdout}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("argon2id") && text.contains("xchacha20poly1305"));
    let (code, _, stderr) = run(aegis()
        .args(["keygen", "--out"])
        .arg(&path)
        .env("AEGIS_ENCRYPTION_KEY", "k1"));
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn run_refuses_to_start_on_a_bad_configuration() {
    let (_dir, out) = testnet(25000);
    let path = node0_config(&out, "bad.yaml", "p2p:\n  port: 0\n");
    let (code, _, stderr) = run(aegis().args(["run", "--config"]).arg(&path));
    assert_eq!(code, 1);
    assert!(stderr.contains("bad.yaml:2:9: p2p.port:"), "{stderr}");
    // `aegis --config FILE` is the same command.
    let (code, _, stderr) = run(aegis().arg("--config").arg(&path));
    assert_eq!(code, 1);
    assert!(stderr.contains("bad.yaml:2:9: p2p.port:"), "{stderr}");
}
