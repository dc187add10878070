//! `aegis run`: the node.
//!
//! Start-up order: preflight checks (configuration, environment, genesis, key, TLS files),
//! logging, the SIGHUP hub (log reopen, certificate reload), the tokio runtime, then the
//! components. SIGTERM or SIGINT stops the node gracefully.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tracing::info;

use crate::preflight::{Preflight, preflight};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (config/production.yaml in the node's home).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let node = match preflight(&args.config) {
        Ok(node) => node,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let logging = &node.config.logging;
    let log = aegis_telemetry::init(&aegis_telemetry::LogOptions {
        node_id: node.node_id.clone(),
        level: logging.level.as_str().to_owned(),
        file: Some(logging.file.clone()),
        console: logging.console,
    })
    .context("start logging")?;
    let sighup = aegis_telemetry::SighupHub::start().context("install the SIGHUP handler")?;
    if let Some(file) = log.log_file() {
        aegis_telemetry::reopen_on_sighup(&sighup, file.clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(node.config.performance.max_workers.max(1) as usize)
        .thread_name("aegis-worker")
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(node_main(node, sighup))
}

async fn node_main(
    node: Preflight,
    _sighup: aegis_telemetry::SighupHub,
) -> anyhow::Result<ExitCode> {
    info!(
        chain_id = %node.genesis.chain_id,
        validator = %node.validator,
        public_key = %node.secret.public_key(),
        version = env!("CARGO_PKG_VERSION"),
        home = %node.config.home.display(),
        "AEGIS node starting"
    );
    shutdown_signal().await?;
    info!("AEGIS node stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    tokio::select! {
        _ = terminate.recv() => info!("SIGTERM received, shutting down"),
        _ = interrupt.recv() => info!("SIGINT received, shutting down"),
    }
    Ok(())
}
