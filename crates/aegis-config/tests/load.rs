//! Loading real files: defaults, the operators' guide snippets, and every error class with
//! its exact message.

// Helpers outside `#[test]` functions unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_config::{
    ConfigError, LoadError, LogLevel, MetricKind, NodeConfig, PeerAddress, StorageBackend,
    check_against_genesis, load, parse_str,
};
use aegis_testkit::GenesisBuilder;
use aegis_types::{ConsensusAlgorithm, Genesis};

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn no_env() -> impl Fn(&str) -> Option<String> {
    |_: &str| None
}

/// Writes `text` to `<dir>/config/<name>` and loads it with `env`.
fn load_in_config_dir(
    text: &str,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (tempfile::TempDir, Result<NodeConfig, LoadError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let path = dir.path().join("config").join(name);
    std::fs::write(&path, text).unwrap();
    let result = load(&path, env);
    (dir, result)
}

/// Parses as `prod.yaml` (no AEGIS_HOME: home is /opt/aegis) and returns the error lines.
fn errors(text: &str) -> Vec<String> {
    errors_with(text, &no_env())
}

fn errors_with(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match parse_str(text, Path::new("prod.yaml"), env) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(LoadError::Invalid(errors)) => errors.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

fn ok(text: &str) -> NodeConfig {
    ok_with(text, &no_env())
}

fn ok_with(text: &str, env: &dyn Fn(&str) -> Option<String>) -> NodeConfig {
    match parse_str(text, Path::new("prod.yaml"), env) {
        Ok(config) => config,
        Err(error) => panic!("unexpected error:\n{error}"),
    }
}

fn guide_yaml_snippets() -> Vec<(usize, String)> {
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/seed/aegis-troubleshooting-guide.es.md"),
    );
    let Ok(guide) = guide else {
        return Vec::new();
    };
    let mut snippets = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in guide.lines().enumerate() {
        match &mut current {
            None if line.starts_with("```yaml") => current = Some((i + 2, String::new())),
            None => {}
            Some(_) if line.starts_with("```") => snippets.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    // Only the guide's node configuration snippets, not its Prometheus rules.
    snippets
        .into_iter()
        .filter(|(_, text)| text.contains("config/production.yaml"))
        .collect()
}

#[test]
fn empty_file_gives_all_defaults() {
    let (dir, config) = load_in_config_dir("", "production.yaml", &no_env());
    let config = config.unwrap();
    let home = dir.path().to_path_buf();
    assert_eq!(config.home, home);
    assert_eq!(config.node.id, None);
    assert_eq!(config.node.key_file, home.join("config/node_key.json"));
    assert_eq!(config.node.genesis_file, home.join("config/genesis.json"));
    assert_eq!(config.node.data_dir, home.join("data"));

    let p2p = &config.p2p;
    assert_eq!(p2p.host, "0.0.0.0");
    assert_eq!(p2p.port, 8000);
    assert!(p2p.bootstrap_nodes.is_empty());
    assert_eq!(p2p.reconnect_interval, Duration::from_secs(30));
    assert_eq!(p2p.max_reconnect_attempts, 10);
    assert_eq!(p2p.connection_timeout, Duration::from_secs(15));
    assert_eq!(p2p.handshake_timeout, Duration::from_secs(10));
    assert_eq!(p2p.max_peers, 50);
    assert!(!p2p.message_compression);
    assert_eq!(p2p.compression_threshold_bytes, 1024);
    assert_eq!(p2p.batch_size, 100);
    assert_eq!(p2p.flush_interval, Duration::from_millis(100));
    assert_eq!(p2p.send_buffer_size_bytes, 65536);
    assert_eq!(p2p.recv_buffer_size_bytes, 65536);
    assert_eq!(p2p.max_frame_size_bytes, 16 << 20);
    assert_eq!(p2p.ping_interval, Duration::from_secs(30));
    assert_eq!(p2p.ping_timeout, Duration::from_secs(10));

    let storage = &config.storage;
    assert_eq!(
        storage.backend,
        StorageBackend::Sqlite {
            path: home.join("data/blockchain.db")
        }
    );
    assert_eq!(storage.pool_size, 10);
    assert_eq!(storage.max_overflow, 20);
    assert_eq!(storage.pool_timeout, Duration::from_secs(30));
    assert_eq!(storage.pool_recycle, Duration::from_secs(3600));

    let consensus = &config.consensus;
    assert_eq!(consensus.algorithm, ConsensusAlgorithm::Pbft);
    assert_eq!(consensus.timeout, Duration::from_secs(30));
    assert_eq!(consensus.heartbeat_interval, Duration::from_secs(5));
    assert_eq!(consensus.election_timeout, Duration::from_secs(15));
    assert_eq!(consensus.max_byzantine_nodes, 1);
    assert_eq!(consensus.min_validators, 3);
    assert_eq!(consensus.message_timeout, Duration::from_secs(10));
    assert_eq!(consensus.retry_attempts, 3);

    let performance = &config.performance;
    assert_eq!(performance.max_workers, 4);
    assert_eq!(performance.thread_pool_size, 8);
    assert_eq!(performance.connection_pool_size, 10);
    assert!(performance.cache.enabled);
    assert_eq!(performance.cache.max_size, 1000);
    assert_eq!(performance.cache.ttl, Duration::from_secs(300));
    assert_eq!(performance.memory.max_cache_size_mb, 500);
    assert_eq!(performance.memory.gc_threshold, 0.8);
    assert_eq!(performance.buffer_sizes.network_bytes, 64 * 1024);
    assert_eq!(performance.buffer_sizes.storage_bytes, 128 * 1024);
    assert_eq!(performance.buffer_sizes.consensus_bytes, 32 * 1024);

    let security = &config.security;
    assert!(security.rate_limiting.enabled);
    assert_eq!(security.rate_limiting.requests_per_minute, 100);
    assert_eq!(security.rate_limiting.burst_size, 20);
    assert_eq!(
        security.rate_limiting.block_duration,
        Duration::from_secs(3600)
    );
    assert_eq!(security.rate_limiting.max_failures, 5);
    assert_eq!(security.tls.cert_file, home.join("config/tls/node.crt"));
    assert_eq!(security.tls.key_file, home.join("config/tls/node.key"));
    assert_eq!(security.tls.ca_file, None);

    let monitoring = &config.monitoring;
    assert!(monitoring.enabled);
    assert_eq!(monitoring.host, "0.0.0.0");
    assert_eq!(monitoring.metrics_port, 9090);
    assert_eq!(monitoring.metrics_path, "/metrics");
    assert!(monitoring.metrics.is_empty());

    assert_eq!(config.api.host, "0.0.0.0");
    assert_eq!(config.api.port, 8080);
    assert_eq!(config.api.max_request_size_bytes, 1 << 20);
    assert_eq!(config.api.tls, None);

    assert_eq!(
        config.logging.file,
        PathBuf::from("/var/log/aegis/aegis.log")
    );
    assert_eq!(config.logging.level, LogLevel::Info);
    assert!(config.logging.console);
}

#[test]
fn comments_only_and_null_sections_give_defaults() {
    let config = ok("# nothing yet\n");
    assert_eq!(config.p2p.port, 8000);
    let config = ok("p2p:\nstorage: ~\n");
    assert_eq!(config.p2p.port, 8000);
    let config = ok("p2p:\n  port:\n");
    assert_eq!(config.p2p.port, 8000);
}

#[test]
fn every_guide_snippet_parses() {
    let snippets = guide_yaml_snippets();
    if snippets.is_empty() {
        eprintln!("operators' guide not found next to the repository; skipped");
        return;
    }
    assert!(
        snippets.len() >= 8,
        "found only {} snippets",
        snippets.len()
    );
    let env = env_of(&[("DATABASE_URL", "postgresql://aegis:pw@db:5432/aegis")]);
    for (line, text) in snippets {
        if let Err(error) = parse_str(&text, Path::new("production.yaml"), &env) {
            panic!("guide snippet at line {line} fails:\n{error}\n---\n{text}");
        }
    }
}

#[test]
fn guide_p2p_snippet() {
    let config = ok(r#"
# config/production.yaml
p2p:
  port: 8000
  host: "0.0.0.0"
  bootstrap_nodes:
    - "node1.aegis.network:8000"
    - "node2.aegis.network:8000"
    - "node3.aegis.network:8000"
  
  # Configuración de reconexión
  reconnect_interval: 30
  max_reconnect_attempts: 10
  connection_timeout: 15
"#);
    assert_eq!(config.p2p.bootstrap_nodes.len(), 3);
    assert_eq!(
        config.p2p.bootstrap_nodes[1],
        PeerAddress {
            host: "node2.aegis.network".into(),
            port: 8000
        }
    );
    assert_eq!(config.p2p.reconnect_interval, Duration::from_secs(30));

    let config = ok(r#"
p2p:
  # Reducir overhead
  message_compression: true
  batch_size: 100
  flush_interval: 100  # ms
  send_buffer_size: 65536
  recv_buffer_size: 65536
  ping_interval: 30
  ping_timeout: 10
"#);
    assert!(config.p2p.message_compression);
    assert_eq!(config.p2p.flush_interval, Duration::from_millis(100));
}

#[test]
fn guide_storage_snippet_with_quoted_env_var() {
    let env = env_of(&[("DATABASE_URL", "postgresql://aegis:s3cret@db:5432/aegis")]);
    let config = ok_with(
        r#"
storage:
  type: "postgresql"
  connection_string: "${DATABASE_URL}"
  pool_size: 10
  max_overflow: 20
  pool_timeout: 30
  pool_recycle: 3600
"#,
        &env,
    );
    assert_eq!(
        config.storage.backend,
        StorageBackend::Postgres {
            connection_string: "postgresql://aegis:s3cret@db:5432/aegis".into()
        }
    );
    // The password never shows in Debug output.
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("postgresql://aegis:***@db:5432/aegis"));
}

#[test]
fn guide_consensus_performance_security_monitoring_snippets() {
    let config = ok(r#"
consensus:
  algorithm: "pbft"  # o "raft"
  timeout: 30
  heartbeat_interval: 5
  election_timeout: 15
  max_byzantine_nodes: 1
  min_validators: 3
  message_timeout: 10
  retry_attempts: 3
performance:
  max_workers: 4
  thread_pool_size: 8
  connection_pool_size: 10
  cache:
    enabled: true
    max_size: 1000
    ttl: 300
  memory:
    max_cache_size: 500  # MB
    gc_threshold: 0.8    # 80% de memoria
  buffer_sizes:
    network: 64KB
    storage: 128KB
    consensus: 32KB
security:
  rate_limiting:
    enabled: true
    requests_per_minute: 100
    burst_size: 20
    block_duration: 3600  # 1 hora
    max_failures: 5
monitoring:
  enabled: true
  metrics_port: 9090
  metrics_path: "/metrics"
  metrics:
    - name: "aegis_node_info"
      type: "info"
      description: "Node information"
    
    - name: "aegis_p2p_connections"
      type: "gauge"
      description: "Number of P2P connections"
"#);
    assert_eq!(config.performance.buffer_sizes.storage_bytes, 128 * 1024);
    assert_eq!(config.monitoring.metrics.len(), 2);
    assert_eq!(config.monitoring.metrics[0].name, "aegis_node_info");
    assert_eq!(config.monitoring.metrics[0].kind, MetricKind::Info);
    assert_eq!(config.monitoring.metrics[1].kind, MetricKind::Gauge);
    assert_eq!(
        config.monitoring.metrics[1].description,
        "Number of P2P connections"
    );
}

#[test]
fn durations_and_sizes_accept_units() {
    let config = ok(r#"
p2p:
  reconnect_interval: "5m"
  connection_timeout: 1m
  flush_interval: 1s
  ping_interval: 500ms
  ping_timeout: "100ms"
  max_frame_size: 64MB
  compression_threshold: 512KiB
storage:
  type: embedded
  pool_recycle: 90
performance:
  cache:
    ttl: 1h
mempool:
  max_bytes: 1GB
"#);
    assert_eq!(config.p2p.reconnect_interval, Duration::from_secs(300));
    assert_eq!(config.p2p.connection_timeout, Duration::from_secs(60));
    assert_eq!(config.p2p.flush_interval, Duration::from_secs(1));
    assert_eq!(config.p2p.ping_interval, Duration::from_millis(500));
    assert_eq!(config.p2p.max_frame_size_bytes, 64 << 20);
    assert_eq!(config.p2p.compression_threshold_bytes, 512 * 1024);
    assert_eq!(config.performance.cache.ttl, Duration::from_secs(3600));
    assert_eq!(config.mempool.max_bytes, 1 << 30);
    assert!(matches!(
        config.storage.backend,
        StorageBackend::Sqlite { .. }
    ));
    assert_eq!(config.storage.pool_recycle, Duration::from_secs(90));
}

#[test]
fn env_substitution_forms() {
    let env = env_of(&[("P2P_PORT", "8100"), ("NODE", "node-7"), ("EMPTY", "")]);
    let config = ok_with(
        r#"
node:
  id: ${NODE}
  data_dir: '${DATA_DIR:-/var/lib/aegis}'
p2p:
  port: ${P2P_PORT}
  host: "${P2P_HOST:-127.0.0.1}"
api:
  port: "${API_PORT:-8181}"
  host: ${EMPTY:-localhost}
"#,
        &env,
    );
    assert_eq!(config.node.id.as_deref(), Some("node-7"));
    assert_eq!(config.node.data_dir, PathBuf::from("/var/lib/aegis"));
    assert_eq!(config.p2p.port, 8100);
    assert_eq!(config.p2p.host, "127.0.0.1");
    assert_eq!(config.api.port, 8181);
    assert_eq!(config.api.host, "localhost");
}

#[test]
fn missing_env_vars_are_listed_sorted_and_once() {
    let text = r#"
node:
  id: "${AEGIS_NODE_ID}"
storage:
  type: postgresql
  connection_string: "${DATABASE_URL}"
p2p:
  host: ${DATABASE_URL}
  port: ${P2P_PORT:-8000}
"#;
    match parse_str(text, Path::new("prod.yaml"), &no_env()) {
        Err(LoadError::MissingEnv(missing)) => {
            assert_eq!(missing.0, vec!["AEGIS_NODE_ID", "DATABASE_URL"]);
            assert_eq!(
                missing.to_string(),
                "Missing environment variables: AEGIS_NODE_ID, DATABASE_URL"
            );
        }
        other => panic!("expected missing variables, got {other:?}"),
    }
    let error = parse_str(text, Path::new("prod.yaml"), &no_env()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Missing environment variables: AEGIS_NODE_ID, DATABASE_URL"
    );
}

#[test]
fn malformed_yaml_reports_parser_location() {
    let lines = errors("p2p:\n  port: 8000\n   host: x\n");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("prod.yaml:3:8: invalid YAML: "),
        "{}",
        lines[0]
    );
    let lines = errors("p2p: [8000\n");
    assert!(lines[0].starts_with("prod.yaml:"), "{}", lines[0]);
    assert!(lines[0].contains("invalid YAML: "), "{}", lines[0]);
}

#[test]
fn wrong_type_messages() {
    assert_eq!(
        errors("p2p:\n  port: abc\n"),
        vec![r#"prod.yaml:2:9: p2p.port: expected an integer, found "abc""#]
    );
    assert_eq!(
        errors("p2p:\n  message_compression: yes\n"),
        vec![
            r#"prod.yaml:2:24: p2p.message_compression: expected a boolean (true or false), found "yes""#
        ]
    );
    assert_eq!(
        errors("p2p:\n  bootstrap_nodes: node1:8000\n"),
        vec![r#"prod.yaml:2:20: p2p.bootstrap_nodes: expected a sequence, found "node1:8000""#]
    );
    assert_eq!(
        errors("p2p: 8000\n"),
        vec![r#"prod.yaml:1:6: p2p: expected a mapping, found "8000""#]
    );
    assert_eq!(
        errors("p2p:\n  port: -1\n"),
        vec![r#"prod.yaml:2:9: p2p.port: expected a non-negative integer, found "-1""#]
    );
    assert_eq!(
        errors("p2p:\n  host:\n    - a\n"),
        vec![r#"prod.yaml:3:5: p2p.host: expected a string, found a sequence"#]
    );
}

#[test]
fn unknown_key_with_and_without_suggestion() {
    assert_eq!(
        errors("p2p:\n  host: 0.0.0.0\n\n\n  prot: 8000\n"),
        vec!["prod.yaml:5:3: p2p.prot: unknown key; did you mean `port`?"]
    );
    assert_eq!(
        errors("p2p:\n  zzzzzzzz: 1\n"),
        vec!["prod.yaml:2:3: p2p.zzzzzzzz: unknown key"]
    );
    assert_eq!(
        errors("stroage:\n  type: sqlite\n"),
        vec!["prod.yaml:1:1: stroage: unknown key; did you mean `storage`?"]
    );
    assert_eq!(
        errors("monitoring:\n  metrics:\n    - name: a\n      typ: gauge\n"),
        vec![
            "prod.yaml:3:7: monitoring.metrics[0]: missing required key `type`",
            "prod.yaml:4:7: monitoring.metrics[0].typ: unknown key; did you mean `type`?",
        ]
    );
}

#[test]
fn out_of_range_values() {
    assert_eq!(
        errors("p2p:\n  port: 70000\n"),
        vec!["prod.yaml:2:9: p2p.port: 70000 is out of range (1-65535)"]
    );
    assert_eq!(
        errors("storage:\n  pool_size: 0\n"),
        vec!["prod.yaml:2:14: storage.pool_size: 0 is out of range (1-1000)"]
    );
    assert_eq!(
        errors("performance:\n  memory:\n    gc_threshold: 1.5\n"),
        vec![
            "prod.yaml:3:19: performance.memory.gc_threshold: 1.5 is out of range (greater than 0, at most 1)"
        ]
    );
    assert_eq!(
        errors("p2p:\n  ping_interval: 10\n  ping_timeout: 10\n"),
        vec!["prod.yaml:3:17: p2p.ping_timeout: 10s must be shorter than p2p.ping_interval (10s)"]
    );
    assert_eq!(
        errors("consensus:\n  timeout: 0\n"),
        vec!["prod.yaml:2:12: consensus.timeout: must be greater than 0"]
    );
    assert_eq!(
        errors("p2p:\n  bootstrap_nodes:\n    - node1:8000\n    - node2\n    - node3:0\n"),
        vec![
            r#"prod.yaml:4:7: p2p.bootstrap_nodes[1]: expected "host:port", found "node2""#,
            r#"prod.yaml:5:7: p2p.bootstrap_nodes[2]: port 0 is out of range (1-65535) in "node3:0""#,
        ]
    );
    assert_eq!(
        errors("monitoring:\n  metrics_path: metrics\n"),
        vec![
            r#"prod.yaml:2:17: monitoring.metrics_path: "metrics" must start with '/' and contain no spaces"#
        ]
    );
    assert_eq!(
        errors("consensus:\n  algorithm: paxos\n"),
        vec![
            r#"prod.yaml:2:14: consensus.algorithm: expected one of "pbft", "raft", found "paxos""#
        ]
    );
}

/// Every integer, duration and size has a maximum: the maximum itself is accepted, one step
/// above it is refused with the key and the value's location, like any range error.
#[test]
fn values_just_above_their_maximum_are_refused() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "p2p",
            "max_peers: 1024",
            "max_peers: 1025",
            "prod.yaml:2:14: p2p.max_peers: 1025 is out of range (1-1024)",
        ),
        (
            "p2p",
            "handshake_timeout: 1m",
            "handshake_timeout: 61",
            "prod.yaml:2:22: p2p.handshake_timeout: 61s is out of range (greater than 0, at most 1m)",
        ),
        (
            "p2p",
            "flush_interval: 1000",
            "flush_interval: 1001",
            "prod.yaml:2:19: p2p.flush_interval: 1001ms is out of range (greater than 0, at most 1s)",
        ),
        (
            "p2p",
            "send_buffer_size: 16MB",
            "send_buffer_size: 16777217",
            "prod.yaml:2:21: p2p.send_buffer_size: 16777217 bytes is out of range (greater than 0, at most 16 MiB)",
        ),
        (
            "p2p",
            "max_frame_size: 128MiB",
            "max_frame_size: 129MiB",
            "prod.yaml:2:19: p2p.max_frame_size: 129 MiB is out of range (greater than 0, at most 128 MiB)",
        ),
        (
            "storage",
            "pool_size: 1000",
            "pool_size: 1001",
            "prod.yaml:2:14: storage.pool_size: 1001 is out of range (1-1000)",
        ),
        (
            "storage",
            "pool_timeout: 10m",
            "pool_timeout: 601",
            "prod.yaml:2:17: storage.pool_timeout: 601s is out of range (greater than 0, at most 10m)",
        ),
        (
            "consensus",
            "retry_attempts: 100",
            "retry_attempts: 101",
            "prod.yaml:2:19: consensus.retry_attempts: 101 is out of range (0-100)",
        ),
        (
            "security",
            "rate_limiting:\n    block_duration: 168h",
            "rate_limiting:\n    block_duration: 169h",
            "prod.yaml:3:21: security.rate_limiting.block_duration: 169h is out of range (greater than 0, at most 168h)",
        ),
        (
            "performance",
            "memory:\n    max_cache_size: 65536",
            "memory:\n    max_cache_size: 65537",
            "prod.yaml:3:21: performance.memory.max_cache_size: 65537 is out of range (1-65536)",
        ),
        (
            "mempool",
            "max_bytes: 1GB",
            "max_bytes: 1073741825",
            "prod.yaml:2:14: mempool.max_bytes: 1073741825 bytes is out of range (1 MiB-1 GiB)",
        ),
        (
            "mempool",
            "max_transactions: 1000000",
            "max_transactions: 1000001",
            "prod.yaml:2:21: mempool.max_transactions: 1000001 is out of range (1-1000000)",
        ),
    ];
    for (section, at_max, above, expected) in cases {
        ok(&format!("{section}:\n  {at_max}\n"));
        assert_eq!(
            errors(&format!("{section}:\n  {above}\n")),
            vec![*expected],
            "{section}: {above}"
        );
    }
    // Below a minimum that is not 1, the same form.
    assert_eq!(
        errors("mempool:\n  max_transaction_bytes: 1023\n  recent_committed: 999\n"),
        vec![
            "prod.yaml:2:26: mempool.max_transaction_bytes: 1023 bytes is out of range (1 KiB-65 KiB)",
            "prod.yaml:3:21: mempool.recent_committed: 999 is out of range (1000-10000000)",
        ]
    );
    // A zero still says only that it must be greater than 0.
    assert_eq!(
        errors("p2p:\n  max_frame_size: 0\n"),
        vec!["prod.yaml:2:19: p2p.max_frame_size: must be greater than 0"]
    );
}

/// The `mempool:` section is optional: without it the defaults apply; with it, its keys are
/// read, ranged and checked for typos like every other section.
#[test]
fn mempool_section_is_optional_with_defaults() {
    let defaults = ok("").mempool;
    assert_eq!(defaults.max_transactions, 10_000);
    assert_eq!(defaults.max_bytes, 64 << 20);
    assert_eq!(defaults.max_transaction_bytes, 65_536 + 1024);
    assert_eq!(defaults.recent_committed, 100_000);
    assert_eq!(ok("mempool:\n").mempool, defaults);
    let set = ok("mempool:\n  max_transactions: 500\n  max_bytes: 8MB\n  max_transaction_bytes: 4KB\n  recent_committed: \"${RECENT:-2000}\"\n").mempool;
    assert_eq!(
        (
            set.max_transactions,
            set.max_bytes,
            set.max_transaction_bytes,
            set.recent_committed
        ),
        (500, 8 << 20, 4096, 2000)
    );
    assert_eq!(
        errors("mempool:\n  max_transaction: 10\n"),
        vec![
            "prod.yaml:2:3: mempool.max_transaction: unknown key; did you mean `max_transactions`?"
        ]
    );
    assert_eq!(
        errors("mempol:\n  max_bytes: 1MB\n"),
        vec!["prod.yaml:1:1: mempol: unknown key; did you mean `mempool`?"]
    );
}

#[test]
fn colliding_ports() {
    assert_eq!(
        errors("api:\n  port: 8000\n"),
        vec![
            "prod.yaml:2:9: api.port: 8000 is also p2p.port; p2p.port, api.port and monitoring.metrics_port must differ"
        ]
    );
    // Different specific hosts may share a port; disabled monitoring does not listen.
    ok("p2p:\n  host: 10.0.0.1\napi:\n  host: 10.0.0.2\n  port: 8000\n");
    ok("monitoring:\n  enabled: false\n  metrics_port: 8080\n");
}

#[test]
fn bad_size_and_bad_duration() {
    assert_eq!(
        errors("performance:\n  buffer_sizes:\n    network: 64XB\n"),
        vec![
            r#"prod.yaml:3:14: performance.buffer_sizes.network: expected a size such as 65536 (bytes), "64KB", "1MB", "512KiB" or "1GB", found "64XB""#
        ]
    );
    assert_eq!(
        errors("p2p:\n  reconnect_interval: 30 seconds\n"),
        vec![
            r#"prod.yaml:2:23: p2p.reconnect_interval: expected a duration such as 30 (seconds), "100ms", "30s", "5m" or "1h", found "30 seconds""#
        ]
    );
    assert_eq!(
        errors("p2p:\n  flush_interval: fast\n"),
        vec![
            r#"prod.yaml:2:19: p2p.flush_interval: expected a duration such as 100 (milliseconds), "100ms", "30s", "5m" or "1h", found "fast""#
        ]
    );
}

#[test]
fn postgres_needs_a_connection_string() {
    assert_eq!(
        errors("storage:\n  type: postgresql\n"),
        vec![
            r#"prod.yaml:2:9: storage.type: postgresql needs storage.connection_string (such as "${DATABASE_URL}")"#
        ]
    );
    let env = env_of(&[("DATABASE_URL", "mysql://u:p@h/db")]);
    assert_eq!(
        errors_with(
            "storage:\n  type: postgres\n  connection_string: \"${DATABASE_URL}\"\n",
            &env
        ),
        vec![
            r#"prod.yaml:3:22: storage.connection_string: must start with postgres:// or postgresql://, found "mysql""#
        ]
    );
}

#[test]
fn all_errors_are_collected_in_file_order() {
    let lines = errors(
        "p2p:\n  port: 70000\n  prot: 1\n  max_peers: many\nstorage:\n  pool_size: 0\nlogging:\n  level: loud\n",
    );
    assert_eq!(
        lines,
        vec![
            "prod.yaml:2:9: p2p.port: 70000 is out of range (1-65535)",
            "prod.yaml:3:3: p2p.prot: unknown key; did you mean `port`?",
            r#"prod.yaml:4:14: p2p.max_peers: expected an integer, found "many""#,
            "prod.yaml:6:14: storage.pool_size: 0 is out of range (1-1000)",
            r#"prod.yaml:8:10: logging.level: expected one of "trace", "debug", "info", "warn", "warning", "error", found "loud""#,
        ]
    );
    let error = parse_str(
        "p2p:\n  port: 70000\n  prot: 1\n",
        Path::new("prod.yaml"),
        &no_env(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "prod.yaml:2:9: p2p.port: 70000 is out of range (1-65535)\nprod.yaml:3:3: p2p.prot: unknown key; did you mean `port`?"
    );
}

#[test]
fn duplicate_keys_are_reported() {
    assert_eq!(
        errors("p2p:\n  port: 1\n  port: 2\n"),
        vec!["prod.yaml:3:3: p2p.port: duplicate key (first set at line 2)"]
    );
}

#[test]
fn aegis_home_resolution() {
    // AEGIS_HOME wins.
    let env = env_of(&[("AEGIS_HOME", "/srv/aegis")]);
    let (_dir, config) = load_in_config_dir("node:\n  data_dir: d\n", "production.yaml", &env);
    let config = config.unwrap();
    assert_eq!(config.home, PathBuf::from("/srv/aegis"));
    assert_eq!(config.node.data_dir, PathBuf::from("/srv/aegis/d"));

    // Otherwise the parent of a `config` directory.
    let (dir, config) = load_in_config_dir("", "production.yaml", &no_env());
    assert_eq!(config.unwrap().home, dir.path());

    // Otherwise /opt/aegis; absolute paths stay as written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.yaml");
    std::fs::write(&path, "node:\n  key_file: /etc/aegis/key.json\n").unwrap();
    let config = load(&path, &no_env()).unwrap();
    assert_eq!(config.home, PathBuf::from("/opt/aegis"));
    assert_eq!(config.node.key_file, PathBuf::from("/etc/aegis/key.json"));
    assert_eq!(
        config.node.genesis_file,
        PathBuf::from("/opt/aegis/config/genesis.json")
    );
}

#[test]
fn file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.yaml");
    let error = load(&missing, &no_env()).unwrap_err();
    assert!(matches!(error, LoadError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: cannot read", missing.display()))
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, b"p2p:\n  host: \xff\n").unwrap();
    let error = load(&bad, &no_env()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}:2:9: the file is not valid UTF-8", bad.display())
    );
}

/// Issue 10, finding 5: a configuration or dotenv file that is a link to `/dev/zero`, or
/// far larger than the limit, is refused before it is read, with its real size.
#[test]
fn devices_and_huge_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let error = load(&zero, &no_env()).unwrap_err();
    assert!(matches!(error, LoadError::Read { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: cannot read configuration file: not a regular file (it is a character device)",
            zero.display()
        )
    );
    let huge = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(50_000_000).unwrap();
    let error = load(&huge, &no_env()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}:1:1: file is 50000000 bytes, larger than the limit of {} bytes",
            huge.display(),
            aegis_config::MAX_CONFIG_FILE_BYTES
        )
    );
    let env_zero = dir.path().join(".env");
    std::os::unix::fs::symlink("/dev/zero", &env_zero).unwrap();
    let error = aegis_config::load_dotenv(&env_zero).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("not a regular file (it is a character device)"),
        "{error}"
    );
    let big_env = dir.path().join("big.env");
    std::fs::write(&big_env, "A=1\n".repeat(20_000)).unwrap();
    let error = aegis_config::load_dotenv(&big_env).unwrap_err();
    assert!(
        error.to_string().contains(&format!(
            "the file is 80000 bytes, larger than the limit of {} bytes",
            aegis_config::MAX_DOTENV_FILE_BYTES
        )),
        "{error}"
    );
}

#[test]
fn api_tls_requires_files() {
    assert_eq!(
        errors("api:\n  tls:\n    enabled: true\n    cert_file: api.crt\n"),
        vec!["prod.yaml:1:1: api.tls.key_file: required when api.tls.enabled is true"]
    );
    let config = ok("api:\n  tls:\n    enabled: true\n    cert_file: api.crt\n    key_file: /k\n");
    let tls = config.api.tls.unwrap();
    assert_eq!(tls.cert_file, PathBuf::from("/opt/aegis/api.crt"));
}

fn genesis_with(n: usize, f: u32, algorithm: ConsensusAlgorithm) -> Genesis {
    GenesisBuilder::new(n)
        .max_byzantine_nodes(f)
        .algorithm(algorithm)
        .build()
}

fn genesis_errors(config: &NodeConfig, genesis: &Genesis) -> Vec<String> {
    check_against_genesis(config, genesis)
        .unwrap_err()
        .iter()
        .map(ConfigError::to_string)
        .collect()
}

/// Raft's timers take seconds as the guide writes them, and milliseconds for test networks;
/// a fraction of a second without a unit is refused.
#[test]
fn raft_timers_accept_milliseconds() {
    let config = ok(
        "consensus:\n  algorithm: raft\n  heartbeat_interval: \"200ms\"\n  election_timeout: 1s\n",
    );
    assert_eq!(
        config.consensus.heartbeat_interval,
        Duration::from_millis(200)
    );
    assert_eq!(config.consensus.election_timeout, Duration::from_secs(1));
    let fraction = errors("consensus:\n  heartbeat_interval: 0.2\n");
    assert_eq!(fraction.len(), 1, "{fraction:?}");
    assert!(
        fraction[0].contains("consensus.heartbeat_interval"),
        "{fraction:?}"
    );
    assert_eq!(
        errors("consensus:\n  heartbeat_interval: 2s\n  election_timeout: \"1500ms\"\n"),
        vec![
            "prod.yaml:3:21: consensus.election_timeout: 1500ms must be longer than consensus.heartbeat_interval (2s)"
        ]
    );
}

/// Raft tolerates crashed validators only: f of them need n >= 2f + 1.
#[test]
fn genesis_check_needs_2f_plus_1_for_raft() {
    let config = ok("consensus:\n  algorithm: raft\n  max_byzantine_nodes: 1\n");
    check_against_genesis(&config, &genesis_with(3, 0, ConsensusAlgorithm::Raft)).unwrap();
    let config = ok("consensus:\n  algorithm: raft\n  max_byzantine_nodes: 2\n");
    assert_eq!(
        genesis_errors(&config, &genesis_with(4, 0, ConsensusAlgorithm::Raft)),
        vec![
            "prod.yaml:3:24: consensus.max_byzantine_nodes: the genesis file /opt/aegis/config/genesis.json has 4 validators, but tolerating f = 2 crashed nodes needs n >= 2f+1 = 5"
        ]
    );
    check_against_genesis(&config, &genesis_with(5, 0, ConsensusAlgorithm::Raft)).unwrap();
}

#[test]
fn genesis_check_needs_3f_plus_1() {
    let config = ok("consensus:\n  algorithm: pbft\n  max_byzantine_nodes: 2\n");
    check_against_genesis(&config, &genesis_with(7, 2, ConsensusAlgorithm::Pbft)).unwrap();
    assert_eq!(
        genesis_errors(&config, &genesis_with(4, 1, ConsensusAlgorithm::Pbft)),
        vec![
            "prod.yaml:3:24: consensus.max_byzantine_nodes: the genesis file /opt/aegis/config/genesis.json has 4 validators, but tolerating f = 2 Byzantine nodes needs n >= 3f+1 = 7"
        ]
    );

    // Defaulted keys point at line 1, column 1.
    let config = ok("consensus:\n  min_validators: 5\n");
    assert_eq!(
        genesis_errors(&config, &genesis_with(3, 0, ConsensusAlgorithm::Raft)),
        vec![
            "prod.yaml:1:1: consensus.algorithm: \"pbft\" does not match the genesis file /opt/aegis/config/genesis.json, which uses \"raft\"",
            "prod.yaml:2:19: consensus.min_validators: the genesis file /opt/aegis/config/genesis.json has 3 validators, fewer than consensus.min_validators = 5",
        ]
    );
}
