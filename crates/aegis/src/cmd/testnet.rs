//! `aegis testnet`: everything a local network of N validators needs, one home per node.
//!
//! Layout written under `--out DIR`:
//! ```text
//! DIR/genesis.json               the network's genesis (also copied into every node)
//! DIR/ca/ca.crt, ca.key          the network CA that issued the nodes' TLS certificates
//! DIR/nodeI/.env                 AEGIS_NODE_ID (and AEGIS_ENCRYPTION_KEY when generated)
//! DIR/nodeI/config/production.yaml
//! DIR/nodeI/config/genesis.json
//! DIR/nodeI/config/node_key.json the node's Ed25519 key, encrypted at rest
//! DIR/nodeI/config/tls/{node.crt,node.key,ca.crt}
//! DIR/nodeI/{data,logs}/
//! ```
//! Node I listens on P+I (P2P), P+80+I (API) and P+1090+I (metrics), so P = 8000 gives node 0
//! the guide's 8000, 8080 and 9090.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use aegis_crypto::{KdfParams, SecretKey, write_key_file};
use aegis_types::{ConsensusAlgorithm, ConsensusParams, Genesis, Validator};
use anyhow::{Context, bail, ensure};
use rand_core::RngCore;

/// Most validators `aegis testnet` generates: ports P..P+1089 must not overlap across roles.
pub const MAX_TESTNET_VALIDATORS: usize = 80;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Output directory; created if missing, must be empty if it exists.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// First port: node I uses P+I (P2P), P+80+I (API), P+1090+I (metrics).
    #[arg(long, value_name = "P", default_value_t = 8000)]
    pub base_port: u16,
    /// Address the nodes listen on and advertise.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// One address per validator, comma-separated, node0's first: each node listens on,
    /// dials from and advertises its own (several machines, or one loopback address per
    /// node such as 127.0.0.1,127.0.0.2,...). Replaces --host.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "H0,H1,...",
        conflicts_with = "host"
    )]
    pub hosts: Vec<String>,
    /// Chain id written into the genesis.
    #[arg(long, default_value = "aegis-testnet")]
    pub chain_id: String,
    /// Consensus algorithm: pbft or raft.
    #[arg(long, default_value = "pbft", value_parser = ["pbft", "raft"])]
    pub algorithm: String,
}

/// What was generated, for callers that go on to use the network (benchmarks, tests).
#[derive(Debug)]
pub struct Testnet {
    pub genesis: Genesis,
    /// `DIR/nodeI` for each validator.
    pub homes: Vec<PathBuf>,
    /// Each validator's secret key (in memory only; on disk they are encrypted).
    #[allow(
        dead_code,
        reason = "for callers that sign with the validators' keys, such as benchmarks"
    )]
    pub keys: Vec<SecretKey>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let testnet = generate(&args)?;
    let n = testnet.homes.len();
    let (kind, f) = match testnet.genesis.consensus.algorithm {
        ConsensusAlgorithm::Pbft => (
            "",
            testnet.genesis.consensus.max_byzantine_nodes.to_string(),
        ),
        ConsensusAlgorithm::Raft => ("Raft ", format!("{} crashed", (n.max(1) - 1) / 2)),
    };
    println!(
        "Generated testnet {:?} with {n} {kind}validators (f = {f}) in {}",
        testnet.genesis.chain_id,
        args.out.display()
    );
    for (i, home) in testnet.homes.iter().enumerate() {
        let (p2p, api, metrics) = ports(args.base_port, i);
        println!(
            "  node{i}: p2p {p2p}, api {api}, metrics {metrics}: aegis run --config {}",
            home.join("config/production.yaml").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The address node `index` listens on and advertises: its entry of `--hosts`, or `--host`.
pub fn host(args: &Args, index: usize) -> &str {
    args.hosts
        .get(index)
        .map_or(args.host.as_str(), String::as_str)
}

pub fn ports(base: u16, index: usize) -> (u32, u32, u32) {
    let base = u32::from(base);
    let i = index as u32;
    (base + i, base + 80 + i, base + 1090 + i)
}

/// Lowest base port [`free_base_port`] tries: above the well-known and common service ports.
const AUTO_BASE_LOWEST: u32 = 10_000;
/// Where Linux hands out ephemeral ports for outgoing connections.
const EPHEMERAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// Most bytes read from [`EPHEMERAL_PORT_RANGE`] (two port numbers).
const EPHEMERAL_PORT_RANGE_MAX_BYTES: u64 = 64;
/// Linux's default first ephemeral port, when [`EPHEMERAL_PORT_RANGE`] cannot be read.
const DEFAULT_EPHEMERAL_START: u32 = 32_768;
/// Base ports probed before giving up.
const AUTO_BASE_ATTEMPTS: u32 = 500;

/// The kernel's first ephemeral port, from [`EPHEMERAL_PORT_RANGE`] (read bounded).
fn ephemeral_start() -> Option<u32> {
    let text = aegis_fs::read_regular_file_to_string(
        Path::new(EPHEMERAL_PORT_RANGE),
        EPHEMERAL_PORT_RANGE_MAX_BYTES,
    )
    .ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A base port whose `n` nodes' ports are all free now on 127.0.0.1, for commands that
/// start a local network of their own (`aegis bench`). Chosen below the kernel's ephemeral
/// range, so no outgoing connection of this host (a node's own dials, a database client)
/// takes one of them between this probe and the node's bind.
pub fn free_base_port(n: usize) -> anyhow::Result<u16> {
    let ephemeral_start = ephemeral_start().unwrap_or(DEFAULT_EPHEMERAL_START);
    let (_, _, last) = ports(0, n.saturating_sub(1));
    // Every port of the range stays below the ephemeral ports.
    let highest = ephemeral_start.saturating_sub(last + 1);
    ensure!(
        highest > AUTO_BASE_LOWEST,
        "the kernel's ephemeral ports start at {ephemeral_start} ({EPHEMERAL_PORT_RANGE}): no room below them for {n} validators; give --base-port"
    );
    let span = highest - AUTO_BASE_LOWEST;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let seed = nanos ^ std::process::id().rotate_left(16);
    let free = |port: u32| {
        u16::try_from(port)
            .is_ok_and(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
    };
    for attempt in 0..AUTO_BASE_ATTEMPTS {
        let base = AUTO_BASE_LOWEST + seed.wrapping_add(attempt.wrapping_mul(7_919)) % span;
        let all_free = (0..n).all(|i| {
            let (p2p, api, metrics) = ports(0, i);
            free(base + p2p) && free(base + api) && free(base + metrics)
        });
        if all_free {
            return u16::try_from(base).context("a base port above 65535");
        }
    }
    bail!("found no free range of ports for {n} validators on 127.0.0.1; give --base-port")
}

/// Writes the testnet described by `args` and returns what it generated.
pub fn generate(args: &Args) -> anyhow::Result<Testnet> {
    let n = args.validators;
    ensure!(n >= 1, "--validators must be at least 1");
    ensure!(
        n <= MAX_TESTNET_VALIDATORS,
        "--validators must be at most {MAX_TESTNET_VALIDATORS}"
    );
    ensure!(
        args.hosts.is_empty() || args.hosts.len() == n,
        "--hosts names {} addresses for {n} validators; give one per validator",
        args.hosts.len()
    );
    if let Some(empty) = args.hosts.iter().position(|h| h.trim().is_empty()) {
        bail!("--hosts entry {empty} (node{empty}) is empty");
    }
    let (_, _, last_metrics) = ports(args.base_port, n - 1);
    ensure!(
        last_metrics <= u32::from(u16::MAX),
        "--base-port {} is too high for {n} validators: node {} would need port {last_metrics}",
        args.base_port,
        n - 1
    );
    prepare_out_dir(&args.out)?;
    let out =
        fs::canonicalize(&args.out).with_context(|| format!("resolve {}", args.out.display()))?;

    let algorithm = match args.algorithm.as_str() {
        "raft" => ConsensusAlgorithm::Raft,
        _ => ConsensusAlgorithm::Pbft,
    };
    // PBFT tolerates f Byzantine validators of n >= 3f + 1. Raft tolerates f crashed ones of
    // n >= 2f + 1 and no Byzantine one: its genesis says 0, so a certificate is a majority.
    let (f, genesis_f) = match algorithm {
        ConsensusAlgorithm::Pbft => ((n - 1) / 3, (n - 1) / 3),
        ConsensusAlgorithm::Raft => ((n - 1) / 2, 0),
    };
    let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate()).collect();
    let validators = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let (p2p, api, _) = ports(args.base_port, i);
            Validator {
                name: format!("node{i}"),
                public_key: key.public_key(),
                p2p_address: format!("{}:{p2p}", host(args, i)),
                api_address: format!("{}:{api}", host(args, i)),
            }
        })
        .collect();
    let genesis = Genesis {
        chain_id: args.chain_id.clone(),
        genesis_time_ms: now_ms(),
        validators,
        consensus: ConsensusParams {
            algorithm,
            max_byzantine_nodes: genesis_f as u32,
            ..ConsensusParams::default()
        },
    };
    genesis.validate().context("generated genesis is invalid")?;
    let genesis_json = genesis.to_json_pretty();
    write_file(&out.join("genesis.json"), genesis_json.as_bytes(), 0o644)?;

    let ca = tls::NetworkCa::generate(&args.chain_id)?;
    fs::create_dir_all(out.join("ca")).context("create ca directory")?;
    write_file(&out.join("ca/ca.crt"), ca.cert_pem().as_bytes(), 0o644)?;
    write_file(&out.join("ca/ca.key"), ca.key_pem().as_bytes(), 0o600)?;

    let shared_key = std::env::var("AEGIS_ENCRYPTION_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let mut homes = Vec::with_capacity(n);
    for (i, key) in keys.iter().enumerate() {
        let home = out.join(format!("node{i}"));
        for dir in [
            "config/tls",
            "data/consensus",
            "data/p2p",
            "logs",
            "tmp",
            "cache",
        ] {
            fs::create_dir_all(home.join(dir))
                .with_context(|| format!("create {}", home.join(dir).display()))?;
        }
        let encryption_key = shared_key.clone().unwrap_or_else(random_secret);
        let mut env = format!(
            "# Environment of node{i}, read by `aegis` at start-up; keep this file private.\nAEGIS_NODE_ID=node{i}\n"
        );
        if shared_key.is_none() {
            let _ = writeln!(env, "AEGIS_ENCRYPTION_KEY={encryption_key}");
        }
        write_file(&home.join(".env"), env.as_bytes(), 0o600)?;
        write_key_file(
            &home.join("config/node_key.json"),
            key,
            &encryption_key,
            KdfParams::default(),
        )?;
        write_file(
            &home.join("config/genesis.json"),
            genesis_json.as_bytes(),
            0o644,
        )?;
        let node_cert = ca.issue(&format!("node{i}"), host(args, i))?;
        write_file(
            &home.join("config/tls/node.crt"),
            node_cert.cert_pem.as_bytes(),
            0o644,
        )?;
        write_file(
            &home.join("config/tls/node.key"),
            node_cert.key_pem.as_bytes(),
            0o600,
        )?;
        write_file(
            &home.join("config/tls/ca.crt"),
            ca.cert_pem().as_bytes(),
            0o644,
        )?;
        let config = node_config(args, i, n, f);
        write_file(
            &home.join("config/production.yaml"),
            config.as_bytes(),
            0o644,
        )?;
        homes.push(home);
    }
    Ok(Testnet {
        genesis,
        homes,
        keys,
    })
}

fn node_config(args: &Args, index: usize, n: usize, f: usize) -> String {
    let (p2p, api, metrics) = ports(args.base_port, index);
    let host = host(args, index);
    let mut bootstrap = String::new();
    for peer in (0..n).filter(|&j| j != index) {
        let (peer_p2p, _, _) = ports(args.base_port, peer);
        let peer_host = self::host(args, peer);
        let _ = writeln!(bootstrap, "    - \"{peer_host}:{peer_p2p}\"");
    }
    let bootstrap = if bootstrap.is_empty() {
        "  bootstrap_nodes: []\n".to_owned()
    } else {
        format!("  bootstrap_nodes:\n{bootstrap}")
    };
    format!(
        "---
# AEGIS configuration of node{index}, written by `aegis testnet`.
# Testnet: {chain:?}
# Relative paths are resolved against this node's home
# (the parent of config/).
node:
  id: \"node{index}\"
  key_file: config/node_key.json
  genesis_file: config/genesis.json
  data_dir: data

p2p:
  host: \"{host}\"
  port: {p2p}
{bootstrap}
storage:
  type: sqlite
  path: data/blockchain.db

consensus:
  algorithm: {algorithm}
  max_byzantine_nodes: {f}
  min_validators: {min_validators}
{timers}
security:
  tls:
    cert_file: config/tls/node.crt
    key_file: config/tls/node.key
    ca_file: config/tls/ca.crt

api:
  host: \"{host}\"
  port: {api}

monitoring:
  enabled: true
  host: \"{host}\"
  metrics_port: {metrics}

logging:
  file: logs/aegis.log
  level: info
",
        chain = args.chain_id,
        algorithm = args.algorithm,
        min_validators = n.min(3),
        timers = raft_timers(&args.algorithm),
    )
}

/// Raft's timers for a network on one machine: a heartbeat every 200 ms and an election
/// after 1 to 2 s of silence, so a killed leader is replaced within seconds (the guide's
/// 5 s and 15 s suit networks across sites).
fn raft_timers(algorithm: &str) -> &'static str {
    if algorithm == "raft" {
        "  heartbeat_interval: \"200ms\"      # test network: milliseconds\n  election_timeout: \"1s\"\n"
    } else {
        ""
    }
}

fn prepare_out_dir(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let mut entries = fs::read_dir(out).with_context(|| format!("read {}", out.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty; choose a new directory or remove it first",
                out.display()
            );
        }
    } else {
        fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// TLS material for a testnet: one network CA, one certificate per node.
mod tls {
    use anyhow::Context;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    };

    pub struct NetworkCa {
        issuer: Issuer<'static, KeyPair>,
        cert_pem: String,
        key_pem: String,
    }

    pub struct NodeCert {
        pub cert_pem: String,
        pub key_pem: String,
    }

    impl NetworkCa {
        pub fn generate(chain_id: &str) -> anyhow::Result<NetworkCa> {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generate CA key")?;
            let mut params = CertificateParams::default();
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, format!("AEGIS {chain_id} network CA"));
            name.push(DnType::OrganizationName, "AEGIS");
            params.distinguished_name = name;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_after = rcgen::date_time_ymd(2036, 1, 1);
            let cert = params
                .self_signed(&key)
                .context("self-sign CA certificate")?;
            let key_pem = key.serialize_pem();
            Ok(NetworkCa {
                cert_pem: cert.pem(),
                key_pem,
                issuer: Issuer::new(params, key),
            })
        }

        pub fn cert_pem(&self) -> &str {
            &self.cert_pem
        }

        pub fn key_pem(&self) -> &str {
            &self.key_pem
        }

        /// A certificate for `node_name`, valid for that name, `localhost`, 127.0.0.1 and `host`.
        pub fn issue(&self, node_name: &str, host: &str) -> anyhow::Result<NodeCert> {
            let key =
                KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generate node TLS key")?;
            let mut names = vec![
                node_name.to_owned(),
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ];
            if !names.iter().any(|n| n == host) {
                names.push(host.to_owned());
            }
            let mut params = CertificateParams::new(names).context("certificate names")?;
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, node_name);
            name.push(DnType::OrganizationName, "AEGIS");
            params.distinguished_name = name;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            params.not_after = rcgen::date_time_ymd(2035, 1, 1);
            let cert = params
                .signed_by(&key, &self.issuer)
                .context("sign node certificate")?;
            Ok(NodeCert {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_base_port_gives_free_ports_below_the_ephemeral_range() {
        let ephemeral_start = ephemeral_start().unwrap();
        let base = free_base_port(4).unwrap();
        for i in 0..4 {
            let (p2p, api, metrics) = ports(base, i);
            for port in [p2p, api, metrics] {
                assert!(port < ephemeral_start, "{port} is an ephemeral port");
                assert!(u32::from(base) >= AUTO_BASE_LOWEST);
                assert!(std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok());
            }
        }
    }
}
