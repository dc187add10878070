//! `aegis run`: the node.
//!
//! Start-up order: preflight checks (configuration, environment, genesis, key, TLS files),
//! the home lock, logging ([`crate::startup`]), the SIGHUP hub (log reopen, certificate
//! reload), the tokio runtime, then the components. SIGTERM or SIGINT stops the node
//! gracefully.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aegis_telemetry::info;
use anyhow::Context;

use crate::preflight::Preflight;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (config/production.yaml in the node's home).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Exactly one rustls crypto provider (ring) for the whole process, before any TLS use.
    aegis_p2p::install_default_provider();
    // Checks, the home lock (held until this function returns) and logging.
    let crate::startup::Started {
        node,
        log,
        home_lock: _home_lock,
    } = match crate::startup::prepare(&args.config) {
        Ok(started) => started,
        Err(code) => return Ok(code),
    };
    let console = node.config.logging.console;
    crate::heap::start_heap_trimmer();
    crate::startup::logged(console, serve(node, &log))
}

fn serve(node: Preflight, log: &aegis_telemetry::LogHandle) -> anyhow::Result<ExitCode> {
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
    sighup: aegis_telemetry::SighupHub,
) -> anyhow::Result<ExitCode> {
    info!(
        chain_id = %node.genesis.chain_id,
        validator = %node.validator,
        public_key = %node.secret.public_key(),
        version = env!("CARGO_PKG_VERSION"),
        home = %node.config.home.display(),
        "AEGIS node starting"
    );
    let ledger_status = Arc::new(aegis_api::LedgerStatus::default());
    let store = match open_ledger(&node, &ledger_status).await {
        Ok(store) => store,
        Err(error) => {
            crate::startup::report_failure(node.config.logging.console, &error);
            return Ok(ExitCode::FAILURE);
        }
    };
    let network = start_network(&node, &sighup, Arc::clone(&ledger_status), store.clone()).await?;
    crate::service::notify_when_ready(&node, Arc::clone(&network.consensus.api));
    let probe = tokio::spawn(probe_ledger(store.clone(), ledger_status));
    let failed = tokio::select! {
        signal = shutdown_signal() => {
            signal?;
            false
        }
        () = network.consensus.failed() => true,
    };
    probe.abort();
    let stopped = network.stop().await;
    store.close().await;
    if failed || stopped.is_err() {
        if let Err(error) = stopped {
            crate::startup::report_failure(node.config.logging.console, &error);
        }
        info!("AEGIS node stopped after a consensus engine failure");
        return Ok(ExitCode::FAILURE);
    }
    info!("AEGIS node stopped");
    Ok(ExitCode::SUCCESS)
}

/// How often the running node checks that its ledger is reachable.
const LEDGER_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Longest a probe query may take before the ledger counts as unavailable (a stopped
/// PostgreSQL server can leave a query waiting for the pool's `pool_timeout`, 30 s).
const LEDGER_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
// So `/health` reports a ledger that stopped answering within LEDGER_PROBE_INTERVAL +
// LEDGER_PROBE_TIMEOUT (5 s; docs/troubleshooting.md, Database configuration).

/// Opens the ledger (creating or migrating the schema; an unreachable database is retried
/// for `storage.pool_timeout`), records the genesis validators in `nodes`, and checks the tip
/// block: a damaged tip stops the start with the words "integrity" and "corrupt".
async fn open_ledger(
    node: &Preflight,
    status: &aegis_api::LedgerStatus,
) -> anyhow::Result<aegis_storage::SqlStore> {
    use aegis_storage::NodeRegistry;
    let store_config = crate::cmd::db::store_config(&node.config);
    let location = store_config.backend.location();
    let store = aegis_storage::SqlStore::open(&store_config)
        .await
        .with_context(|| format!("open the ledger at {location}"))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for validator in &node.genesis.validators {
        let record = aegis_storage::NodeRecord {
            public_key: validator.public_key,
            name: validator.name.clone(),
            p2p_address: validator.p2p_address.clone(),
            api_address: validator.api_address.clone(),
            is_validator: true,
            first_seen_ms: now_ms,
            last_seen_ms: None,
        };
        store
            .upsert_node(&record)
            .await
            .with_context(|| format!("record validator {} in the nodes table", validator.name))?;
    }
    match aegis_storage::check_tip(&store, &node.genesis).await {
        Ok(Some(tip)) => {
            status.set_height(tip.height);
            info!(height = tip.height, ledger = %location, "Ledger opened; tip block verified");
        }
        Ok(None) => info!(ledger = %location, "Ledger opened; no blocks yet"),
        Err(error) => {
            anyhow::bail!("ledger integrity check failed at start-up ({location}): {error}")
        }
    }
    Ok(store)
}

/// Keeps `/health` and `/status` truthful: a ledger that stops answering (database lost,
/// disk full) turns `/health` unhealthy with the reason, logged once, until it recovers.
async fn probe_ledger(store: aegis_storage::SqlStore, status: Arc<aegis_api::LedgerStatus>) {
    use aegis_storage::Ledger;
    let mut interval = tokio::time::interval(LEDGER_PROBE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let probed = match tokio::time::timeout(LEDGER_PROBE_TIMEOUT, store.height()).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(_) => Err(format!(
                "the ledger did not answer within {} s",
                LEDGER_PROBE_TIMEOUT.as_secs()
            )),
        };
        if let Ok(height) = probed {
            status.set_height(height);
        }
        // Reachable, but refusing appends (SQLite's transaction-id index cannot take more).
        let probed = probed.and_then(|height| match store.id_index_fault() {
            Some(reason) => Err(format!("transaction id index: {reason}")),
            None => Ok(height),
        });
        match probed {
            Ok(height) => {
                if status.fault().is_some() {
                    info!(height, "Ledger reachable again; node healthy");
                    status.set_fault(None);
                }
            }
            Err(reason) => {
                if status.fault().as_deref() != Some(reason.as_str()) {
                    aegis_telemetry::error!(error = %reason, "Ledger unavailable; node unhealthy");
                }
                status.set_fault(Some(reason));
            }
        }
    }
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

/// The running node: the P2P layer, the consensus engine fed by its inbox, and the HTTP
/// endpoints.
struct NetworkSide {
    network: aegis_p2p::P2pNetwork,
    consensus: crate::node::ConsensusNode,
    http: aegis_api::HttpEndpoints,
}

impl NetworkSide {
    /// Stops taking transactions (503), lets the engine store and sync what it decided, stops
    /// the HTTP endpoints (letting requests in flight finish), then the P2P layer.
    async fn stop(self) -> anyhow::Result<()> {
        let stopped = self.consensus.stop().await;
        self.http.stop().await;
        self.network.shutdown();
        stopped
    }
}

/// Starts the P2P layer, the consensus engine on its inbox, and the `/metrics`, `/status`
/// and `/health` endpoints; reloads the TLS files on SIGHUP.
async fn start_network(
    node: &Preflight,
    sighup: &aegis_telemetry::SighupHub,
    ledger: Arc<aegis_api::LedgerStatus>,
    store: aegis_storage::SqlStore,
) -> anyhow::Result<NetworkSide> {
    let config = &node.config;
    let metrics = Arc::new(aegis_telemetry::Metrics::new());
    metrics.register_node_info_with_algorithm(
        env!("CARGO_PKG_VERSION"),
        &node.node_id,
        &node.genesis.chain_id,
        node.genesis.consensus.algorithm.as_str(),
    );
    crate::service::register_metrics(&metrics, node);
    let identity = aegis_p2p::Identity::new(node.secret.clone(), &node.genesis)
        .context("read the validator set from the genesis")?;
    let validators = identity.validators().clone();
    let p2p_metrics = aegis_p2p::P2pMetrics::new();
    p2p_metrics.register(&metrics);
    let (network, inbox) = aegis_p2p::P2pNetwork::start(p2p_config(config), identity, p2p_metrics)
        .await
        .context("start the P2P network")?;
    sighup.subscribe("tls reload", network.tls_reload_trigger());
    let consensus = match crate::node::start(
        node,
        store.clone(),
        network.clone(),
        inbox,
        &metrics,
        Arc::clone(&ledger),
    )
    .await
    {
        Ok(consensus) => consensus,
        Err(error) => {
            network.shutdown();
            return Err(error.context("start the consensus engine"));
        }
    };
    let status = Arc::new(
        aegis_api::NodeStatus::new(
            node.node_id.clone(),
            &validators,
            network.clone(),
            ledger,
            metrics,
        )
        .with_genesis(&node.genesis),
    );
    status.attach_ledger(Arc::new(store) as Arc<dyn aegis_storage::Ledger>);
    status.attach_node(Arc::clone(&consensus.api) as Arc<dyn aegis_api::NodeApi>);
    let options = aegis_api::HttpOptions {
        api: Some(aegis_api::HttpListen {
            host: config.api.host.clone(),
            port: config.api.port,
        }),
        monitoring: config.monitoring.enabled.then(|| aegis_api::HttpListen {
            host: config.monitoring.host.clone(),
            port: config.monitoring.metrics_port,
        }),
        metrics_path: config.monitoring.metrics_path.clone(),
    };
    let limits = api_limits(config);
    let http = match aegis_api::start_with(options, limits, status).await {
        Ok(http) => http,
        Err(error) => {
            let _ = consensus.stop().await;
            network.shutdown();
            return Err(anyhow::Error::new(error).context("start the HTTP endpoints"));
        }
    };
    Ok(NetworkSide {
        network,
        consensus,
        http,
    })
}

/// The P2P layer's settings from the node configuration. Destructured exhaustively so a
/// new `p2p:` key cannot be forgotten here.
fn p2p_config(config: &aegis_config::NodeConfig) -> aegis_p2p::P2pConfig {
    let aegis_config::P2pConfig {
        host,
        port,
        bootstrap_nodes,
        reconnect_interval,
        max_reconnect_attempts,
        connection_timeout,
        handshake_timeout,
        max_peers,
        message_compression,
        compression_threshold_bytes,
        batch_size,
        flush_interval,
        send_buffer_size_bytes,
        recv_buffer_size_bytes,
        max_frame_size_bytes,
        ping_interval,
        ping_timeout,
    } = config.p2p.clone();
    let aegis_config::RateLimitConfig {
        enabled,
        requests_per_minute,
        burst_size,
        block_duration,
        max_failures,
    } = config.security.rate_limiting.clone();
    let aegis_config::NodeTlsConfig {
        cert_file,
        key_file,
        ca_file,
    } = config.security.tls.clone();
    let mut p2p = aegis_p2p::P2pConfig::new(aegis_p2p::TlsFiles {
        cert_file,
        key_file,
        ca_file,
    });
    p2p.host = host;
    p2p.port = port;
    p2p.bootstrap_nodes = bootstrap_nodes.iter().map(ToString::to_string).collect();
    p2p.reconnect_interval = reconnect_interval;
    p2p.max_reconnect_attempts = max_reconnect_attempts;
    p2p.connection_timeout = connection_timeout;
    p2p.handshake_timeout = handshake_timeout;
    p2p.max_peers = max_peers as usize;
    p2p.message_compression = message_compression;
    p2p.compression_threshold_bytes = compression_threshold_bytes;
    p2p.batch_size = batch_size as usize;
    p2p.flush_interval = flush_interval;
    p2p.send_buffer_size_bytes = send_buffer_size_bytes;
    p2p.recv_buffer_size_bytes = recv_buffer_size_bytes;
    p2p.max_frame_size_bytes = max_frame_size_bytes;
    p2p.ping_interval = ping_interval;
    p2p.ping_timeout = ping_timeout;
    p2p.rate_limiting = aegis_p2p::RateLimitConfig {
        enabled,
        requests_per_minute,
        burst_size,
        block_duration,
        max_failures,
        ..aegis_p2p::RateLimitConfig::default()
    };
    p2p.data_dir = Some(config.node.data_dir.join("p2p"));
    p2p
}

/// The API's limits from `api:` and `security.rate_limiting` (the rest keep their defaults).
fn api_limits(config: &aegis_config::NodeConfig) -> aegis_api::ApiLimits {
    let rate = &config.security.rate_limiting;
    aegis_api::ApiLimits {
        max_body_bytes: config.api.max_request_size_bytes,
        rate_limit: aegis_api::RateLimit {
            enabled: rate.enabled,
            requests_per_minute: rate.requests_per_minute,
            burst_size: rate.burst_size,
            ..aegis_api::RateLimit::default()
        },
        ..aegis_api::ApiLimits::default()
    }
}
