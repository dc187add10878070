//! `aegis validators check [--config FILE]`: the guide's `check_validator_connectivity.sh`,
//! done properly. For every validator of the genesis (this node included), at its
//! `p2p_address`: TCP connect, TLS 1.3 mutual handshake with this node's certificate, the
//! signed Hello (the answer must come from that validator's key), and pings over the
//! authenticated session for the round-trip time; all validators at once. The connection
//! says it is a probe, so the nodes answer it without taking it for a peer session
//! (docs/adr/0015-operator-tools.md).
//!
//! Exit status: 0 when at least a quorum of validators answered, 1 otherwise (and on a
//! configuration that cannot be used).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aegis_p2p::probe::{ProbeError, ProbeReport};

/// Pings sent over each authenticated session; the smallest round trip is shown.
const PINGS_PER_VALIDATOR: usize = 3;
/// Most validators probed at the same time (a genesis may list up to 1024).
const MAX_CONCURRENT_PROBES: usize = 64;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Connect to every validator of the genesis (TCP, TLS 1.3, signed Hello, ping) and show
    /// each one's round-trip time; exit 1 when fewer than a quorum answer.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The node's configuration (default: $AEGIS_HOME/config/production.yaml); its key,
    /// TLS files and genesis are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Longest wait for each step (connect, handshake, Hello, each ping), in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::Check(args) = command;
    let config = args.config.unwrap_or_else(crate::ops::default_config_path);
    let node = match crate::preflight::preflight(&config) {
        Ok(node) => node,
        Err(failure) => {
            eprintln!("{failure}");
            eprintln!(
                "error: validators check authenticates as this node: its configuration, key and TLS files must be usable"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    crate::cmd::health::runtime()?.block_on(check(node, timeout))
}

async fn check(node: crate::preflight::Preflight, timeout: Duration) -> anyhow::Result<ExitCode> {
    let identity = aegis_p2p::Identity::new(node.secret.clone(), &node.genesis)
        .map_err(|error| anyhow::anyhow!("read the validator set from the genesis: {error}"))?;
    let tls = &node.config.security.tls;
    let store = aegis_p2p::TlsStore::load(aegis_p2p::TlsFiles {
        cert_file: tls.cert_file.clone(),
        key_file: tls.key_file.clone(),
        ca_file: tls.ca_file.clone(),
    })
    .map_err(|error| anyhow::anyhow!("load this node's TLS files: {error}"))?;
    let identity = Arc::new(identity);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_PROBES));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, validator) in node.genesis.validators.iter().enumerate() {
        let (identity, store, permits) = (
            Arc::clone(&identity),
            Arc::clone(&store),
            Arc::clone(&permits),
        );
        let address = validator.p2p_address.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result =
                aegis_p2p::probe::probe(&address, &identity, &store, timeout, PINGS_PER_VALIDATOR)
                    .await;
            (index, result)
        });
    }
    let mut results: Vec<Option<Result<ProbeReport, ProbeError>>> =
        (0..node.genesis.validators.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
        }
    }
    let quorum = node
        .genesis
        .validator_set()
        .map_err(|error| anyhow::anyhow!("read the validator set: {error}"))?
        .quorum();
    println!(
        "{:<16} {:<24} {:<7} {:>9} {:>9} {:>9} {:>9}  DETAIL",
        "VALIDATOR", "ADDRESS", "STATUS", "TCP_MS", "TLS_MS", "HELLO_MS", "RTT_MS"
    );
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let mut answered = 0;
    for (validator, result) in node.genesis.validators.iter().zip(results) {
        let name = if validator.public_key == node.secret.public_key() {
            format!("{} (self)", validator.name)
        } else {
            validator.name.clone()
        };
        match result {
            Some(Ok(report)) if report.peer.public_key == validator.public_key => {
                answered += 1;
                println!(
                    "{name:<16} {:<24} {:<7} {:>9} {:>9} {:>9} {:>9}  TLS 1.3, Hello signed by {}",
                    validator.p2p_address,
                    "ok",
                    ms(report.tcp),
                    ms(report.tls),
                    ms(report.hello),
                    ms(report.rtt),
                    short_key(&validator.public_key.to_hex()),
                );
            }
            Some(Ok(report)) => println!(
                "{name:<16} {:<24} {:<7} {:>9} {:>9} {:>9} {:>9}  another validator answered there: key {}",
                validator.p2p_address,
                "WRONG",
                ms(report.tcp),
                ms(report.tls),
                ms(report.hello),
                "-",
                short_key(&report.peer.public_key.to_hex()),
            ),
            Some(Err(error)) => println!(
                "{name:<16} {:<24} {:<7} {:>9} {:>9} {:>9} {:>9}  {error}",
                validator.p2p_address,
                "FAILED",
                error.tcp.map_or_else(|| "-".to_owned(), ms),
                "-",
                "-",
                "-",
            ),
            None => println!(
                "{name:<16} {:<24} {:<7} {:>9} {:>9} {:>9} {:>9}  the probe task failed",
                validator.p2p_address, "FAILED", "-", "-", "-", "-"
            ),
        }
    }
    let total = node.genesis.validators.len();
    if answered >= quorum {
        println!(
            "{answered} of {total} validators answered; the quorum is {quorum}: the network can commit"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{answered} of {total} validators answered, fewer than the quorum of {quorum}: the network cannot commit"
        );
        Ok(ExitCode::FAILURE)
    }
}

fn short_key(hex: &str) -> String {
    format!("{}...", &hex[..hex.len().min(16)])
}
