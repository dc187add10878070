//! `aegis bench` (no subcommand): throughput and latency of a real network under an open-loop
//! load, measured against the signature-verification bound of this machine.
//!
//! 1. Ed25519 batch verification is measured first, on an idle machine ([`super::crypto`]).
//! 2. A devnet is generated and its validators started as `aegis run` processes on loopback
//!    (or the nodes given with `--nodes` are used); `--down N` leaves the last N stopped.
//! 3. For each step (one, or a ramp with `--find-saturation`), every transaction is signed
//!    and encoded **before** the clock starts, from `--clients` keys, in requests of up to
//!    100 (one `POST /v1/transactions` array each, round robin over the nodes).
//! 4. Requests leave on schedule whatever the answers (open loop); one that would exceed
//!    [`MAX_IN_FLIGHT`] is not sent and counted as `unsent`, never delayed.
//! 5. Commits come from node0's event stream (`GET /v1/events`), not from the answers: a
//!    transaction's latency is from the moment its request left to the moment its block's
//!    event arrived. Throughput is the run's transactions committed within the load window
//!    divided by its length; then the run waits (at most [`DRAIN_DEADLINE`]) for the rest.
//! 6. Each node's CPU (over the load window) and peak RSS (`VmHWM`) come from `/proc`, and so
//!    does the load generator's own CPU.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegis_crypto::SecretKey;
use aegis_types::{Hash, Transaction, TxBody};
use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use super::crypto::{self, CryptoFigures};

mod network;
mod report;
use crate::cmd::{devnet, testnet};
use network::Network;
use report::{StepFigures, print_table, round1, show_progress};

/// Requests awaiting their answer at once, at most; a request due while this many are out
/// is not sent (counted as `unsent`), so the offered load is never silently lowered.
pub const MAX_IN_FLIGHT: usize = 512;
/// Transactions signed for one step, at most (rate x duration); they are all held in memory.
pub const MAX_STEP_TXS: u64 = 2_000_000;
/// Transactions in one request, at most (the API's default per-request limit).
const MAX_CHUNK_TXS: usize = 100;
/// Requests per second the load aims at: chunks grow with the rate up to [`MAX_CHUNK_TXS`].
const TARGET_REQUESTS_PER_SECOND: f64 = 200.0;
/// Bytes of one request body, at most (the API takes 1 MiB by default).
const MAX_BODY_BYTES: usize = 900_000;
/// Committed transaction ids remembered with their commit time, at most.
const MAX_TRACKED_COMMITS: usize = 8_000_000;
/// Block events waiting for the commit collector, at most.
const COMMIT_EVENTS: usize = 4_096;
/// How long accepted transactions may take to commit after the load window.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How long the nodes may take to start and connect.
const START_DEADLINE: Duration = Duration::from_secs(90);
/// How long the first (warm-up) transaction may take to commit.
const WARMUP_DEADLINE: Duration = Duration::from_secs(90);
/// A warm-up transaction is resubmitted this often until one is seen committed.
const WARMUP_RETRY: Duration = Duration::from_secs(3);
/// Each HTTP request of the load generator is bounded by this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `--find-saturation`: steps at most, and the factor between two steps' rates.
const SATURATION_MAX_STEPS: usize = 16;
const SATURATION_FACTOR: f64 = 1.5;
/// `--find-saturation` stops once a step commits less than this share of what it offered.
const SATURATED_BELOW: f64 = 0.9;
/// Each node's resident memory is sampled this often during the load (`rss_mb_samples`).
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Seconds the Ed25519 calibration spends on each measurement.
const CRYPTO_SECONDS: f64 = 2.0;

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Offered load in transactions per second (the first step with --find-saturation).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Payload bytes per transaction.
    #[arg(long, default_value_t = 256)]
    pub tx_size: usize,
    /// Client keys the transactions are signed with (round robin).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Validators of the devnet.
    #[arg(long, default_value_t = 4, conflicts_with = "nodes")]
    pub validators: usize,
    /// Ledger database of every validator.
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgresql"], conflicts_with = "nodes")]
    pub storage: String,
    /// Consensus algorithm of the devnet.
    #[arg(long, default_value = "pbft", value_parser = ["pbft", "raft"], conflicts_with = "nodes")]
    pub algorithm: String,
    /// Validators left stopped (the last ones) for the whole run.
    #[arg(long, default_value_t = 0, conflicts_with = "nodes")]
    pub down: usize,
    /// Ramp the rate (x1.5 a step, --step-duration seconds each) until the network commits
    /// less than 90% of what it is offered; report the highest throughput as saturation_tps.
    #[arg(long)]
    pub find_saturation: bool,
    /// Seconds of each step with --find-saturation.
    #[arg(long, default_value_t = 5)]
    pub step_duration: u64,
    /// Load these running nodes (API URLs, comma separated) instead of a devnet; CPU and
    /// memory are reported for those listening on this machine.
    #[arg(long, value_delimiter = ',', value_name = "URL,...")]
    pub nodes: Vec<String>,
    /// Write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// PostgreSQL server for --storage postgresql (default: DATABASE_URL); its role needs
    /// CREATEDB: one database per validator is created, and dropped after the run.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Generate the devnet in DIR and keep it (default: a temporary directory).
    #[arg(long, value_name = "DIR", conflicts_with = "nodes")]
    pub dir: Option<PathBuf>,
    /// First port of the devnet (default: a free range).
    #[arg(long, value_name = "P", conflicts_with = "nodes")]
    pub base_port: Option<u16>,
}

pub fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    validate(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(bench(args))
}

fn validate(args: &LoadArgs) -> anyhow::Result<()> {
    ensure!(args.rate >= 1, "--rate must be at least 1");
    ensure!(args.duration >= 1, "--duration must be at least 1 second");
    ensure!(
        args.step_duration >= 1,
        "--step-duration must be at least 1 second"
    );
    ensure!(args.clients >= 1, "--clients must be at least 1");
    ensure!(
        args.tx_size <= aegis_types::MAX_TX_PAYLOAD_BYTES,
        "--tx-size must be at most {} bytes",
        aegis_types::MAX_TX_PAYLOAD_BYTES
    );
    let duration = if args.find_saturation {
        args.step_duration
    } else {
        args.duration
    };
    ensure!(
        args.rate.saturating_mul(duration) <= MAX_STEP_TXS,
        "--rate x duration is {} transactions; at most {MAX_STEP_TXS} are signed ahead",
        args.rate.saturating_mul(duration)
    );
    if args.nodes.is_empty() {
        ensure!(
            (1..=testnet::MAX_TESTNET_VALIDATORS).contains(&args.validators),
            "--validators must be between 1 and {}",
            testnet::MAX_TESTNET_VALIDATORS
        );
        let tolerated = match args.algorithm.as_str() {
            "raft" => (args.validators - 1) / 2,
            _ => (args.validators - 1) / 3,
        };
        ensure!(
            args.down <= tolerated,
            "--down {} leaves no quorum: {} {} validators tolerate {tolerated} down",
            args.down,
            args.validators,
            args.algorithm
        );
    }
    Ok(())
}

async fn bench(args: LoadArgs) -> anyhow::Result<ExitCode> {
    eprintln!("measuring Ed25519 verification on this machine ({CRYPTO_SECONDS} s x 2)...");
    let tx_size = args.tx_size;
    let crypto = tokio::task::spawn_blocking(move || {
        crypto::measure(
            Duration::from_secs_f64(CRYPTO_SECONDS),
            crypto::DEFAULT_BATCH,
            tx_size,
        )
    })
    .await
    .context("the Ed25519 measurement failed")?;
    let load_start = load_average();
    let mut network = Network::start(&args).await?;
    let outcome = tokio::select! {
        outcome = drive(&args, &mut network, &crypto) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    network.stop().await;
    let mut report = outcome?;
    report["machine"] = json!({
        "cores": crypto.cores,
        "load_average_before": load_start,
        "load_average_after": load_average(),
    });
    print_table(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("encode the JSON report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// Committed transaction ids with the time their block's event arrived.
#[derive(Default)]
struct Commits {
    times: Mutex<HashMap<Hash, Instant>>,
    /// Transactions in every block seen (anyone's).
    transactions: AtomicU64,
}

impl Commits {
    fn time_of(&self, id: &Hash) -> Option<Instant> {
        self.times.lock().ok()?.get(id).copied()
    }
}

/// Follows node0's events and records every committed id with its arrival time.
async fn collect_commits(
    mut events: tokio::sync::mpsc::Receiver<(u64, Vec<Hash>)>,
    commits: Arc<Commits>,
) {
    while let Some((count, ids)) = events.recv().await {
        let now = Instant::now();
        commits.transactions.fetch_add(count, Ordering::Relaxed);
        if let Ok(mut times) = commits.times.lock() {
            for id in ids {
                if times.len() < MAX_TRACKED_COMMITS {
                    times.entry(id).or_insert(now);
                }
            }
        }
    }
}

/// One request of the load: its body (a JSON array of signed transactions) and their ids.
struct Chunk {
    body: Vec<u8>,
    ids: Vec<Hash>,
}

/// What one request came to.
struct ChunkOutcome {
    /// When the request left.
    sent: Instant,
    ids: Vec<Hash>,
    /// Per transaction: 202 when pending, else the refusal's HTTP status (0: no answer).
    statuses: Vec<u16>,
}

/// The signing keys and their next nonces, kept across steps.
struct Clients {
    keys: Vec<SecretKey>,
    /// Transactions signed so far (the next one's sequence number).
    next: u64,
    chain_id: String,
    tx_size: usize,
}

impl Clients {
    /// Signs and encodes `count` transactions in requests of `per_chunk`, on every core.
    fn prepare(&mut self, count: u64, per_chunk: usize) -> anyhow::Result<Vec<Chunk>> {
        let first = self.next;
        self.next += count;
        let chunks = count.div_ceil(per_chunk as u64);
        let threads = std::thread::available_parallelism().map_or(1, usize::from) as u64;
        let per_thread = chunks.div_ceil(threads).max(1);
        let this = &*self;
        let parts: Vec<anyhow::Result<Vec<Chunk>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        let start = t * per_thread;
                        let end = ((t + 1) * per_thread).min(chunks);
                        (start..end)
                            .map(|c| {
                                let from = first + c * per_chunk as u64;
                                let to = (from + per_chunk as u64).min(first + count);
                                this.chunk(from..to)
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a signing thread panicked")))
                })
                .collect()
        });
        let mut out = Vec::with_capacity(chunks as usize);
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    fn chunk(&self, sequence: std::ops::Range<u64>) -> anyhow::Result<Chunk> {
        let txs: Vec<Transaction> = sequence.map(|seq| self.sign(seq)).collect();
        let ids = txs.iter().map(Transaction::id).collect();
        let body = serde_json::to_vec(&txs).context("encode transactions")?;
        Ok(Chunk { body, ids })
    }

    fn sign(&self, seq: u64) -> Transaction {
        let clients = self.keys.len() as u64;
        let key = &self.keys[(seq % clients) as usize];
        let mut payload = format!("aegis-bench {seq} ").into_bytes();
        payload.resize(self.tx_size, b'.');
        key.sign_transaction(TxBody {
            version: aegis_types::ENCODING_VERSION,
            chain_id: self.chain_id.clone(),
            sender: key.public_key(),
            nonce: seq / clients + 1,
            payload,
        })
    }
}

/// Transactions per request at `rate`: about [`TARGET_REQUESTS_PER_SECOND`] requests a
/// second, at most [`MAX_CHUNK_TXS`] and [`MAX_BODY_BYTES`] per request.
fn chunk_size(rate: u64, tx_size: usize) -> usize {
    let by_rate = (rate as f64 / TARGET_REQUESTS_PER_SECOND).ceil() as usize;
    let by_bytes = MAX_BODY_BYTES / (2 * tx_size + 600);
    by_rate.clamp(1, MAX_CHUNK_TXS).min(by_bytes.max(1))
}

/// Warms up, then runs one step (or the saturation ramp) and returns the JSON report.
async fn drive(
    args: &LoadArgs,
    network: &mut Network,
    crypto: &CryptoFigures,
) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .build()
        .context("build the HTTP client")?;
    let node0 = network.apis.first().cloned().context("no node to load")?;
    let info: Value = http
        .get(format!("{node0}/v1/node"))
        .send()
        .await
        .with_context(|| format!("ask {node0} for its chain (GET /v1/node)"))?
        .json()
        .await
        .with_context(|| format!("read {node0}/v1/node"))?;
    let chain_id = info["chain_id"]
        .as_str()
        .with_context(|| format!("{node0}/v1/node has no chain_id"))?
        .to_owned();
    let algorithm = info["algorithm"].as_str().unwrap_or("?").to_owned();
    let validators = info["validators"]
        .as_u64()
        .map_or(network.apis.len(), |v| v as usize);
    let verifying = validators.saturating_sub(network.down.len()).max(1);

    let commits = Arc::new(Commits::default());
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(COMMIT_EVENTS);
    let follower = tokio::spawn(devnet::follow_commits(
        http.clone(),
        node0.clone(),
        events_tx,
    ));
    let collector = tokio::spawn(collect_commits(events_rx, Arc::clone(&commits)));
    let duration = if args.find_saturation {
        args.step_duration
    } else {
        args.duration
    };
    let outcome = async {
        let mut clients = Clients {
            keys: (0..args.clients).map(|_| SecretKey::generate()).collect(),
            next: 0,
            chain_id: chain_id.clone(),
            tx_size: args.tx_size,
        };
        let warmup = warm_up(&http, network, &commits, &chain_id).await?;
        let mut steps = Vec::new();
        let mut rate = args.rate;
        for step in 0.. {
            let figures = run_step(
                &http, network, &commits, &mut clients, rate, duration, step,
            )
            .await?;
            let saturated = figures.throughput_tps < SATURATED_BELOW * figures.offered_tps
                || (figures.refused + figures.unsent) as f64 > 0.01 * figures.submitted as f64;
            steps.push(figures);
            if !args.find_saturation || saturated || steps.len() >= SATURATION_MAX_STEPS {
                break;
            }
            rate = ((rate as f64 * SATURATION_FACTOR).ceil() as u64).max(rate + 1);
            if rate.saturating_mul(duration) > MAX_STEP_TXS {
                eprintln!("stopping the ramp: the next step would sign more than {MAX_STEP_TXS} transactions");
                break;
            }
        }
        anyhow::Ok((warmup, steps))
    }
    .await;
    follower.abort();
    collector.abort();
    let (warmup, steps) = outcome?;
    let best = steps
        .iter()
        .max_by(|a, b| a.throughput_tps.total_cmp(&b.throughput_tps))
        .context("no step ran")?;
    let bound_tps = crypto.bound_tps(verifying);
    let mut report = best.to_json();
    let top = report
        .as_object_mut()
        .context("a step's figures are a JSON object")?;
    top.insert(
        "scenario".into(),
        json!({
            "algorithm": algorithm,
            "validators": validators,
            "down": network.down,
            "storage": if args.nodes.is_empty() { args.storage.as_str() } else { "as configured" },
            "tx_size": args.tx_size,
            "clients": args.clients,
            "duration_s": duration,
            "nodes": if args.nodes.is_empty() { "devnet" } else { "given" },
        }),
    );
    top.insert("crypto".into(), serde_json::to_value(crypto)?);
    top.insert("verifying_validators".into(), json!(verifying));
    top.insert("bound_tps".into(), json!(round1(bound_tps)));
    let reference = if args.find_saturation {
        best.throughput_tps
    } else {
        steps.last().map_or(0.0, |s| s.throughput_tps)
    };
    top.insert(
        "bound_ratio".into(),
        json!((reference / bound_tps.max(1e-9) * 1000.0).round() / 1000.0),
    );
    top.insert("warmup_transactions".into(), json!(warmup));
    top.insert(
        "committed_total".into(),
        json!(steps.iter().map(|s| s.committed).sum::<u64>()),
    );
    if args.find_saturation {
        top.insert("saturation_tps".into(), json!(round1(best.throughput_tps)));
        top.insert(
            "steps".into(),
            Value::Array(steps.iter().map(StepFigures::to_json).collect()),
        );
    }
    Ok(report)
}

/// Submits one transaction at a time until one is seen committed through the event
/// stream: the network commits, and the stream is live. Returns how many were accepted
/// (all of them end up on the chain).
async fn warm_up(
    http: &reqwest::Client,
    network: &mut Network,
    commits: &Commits,
    chain_id: &str,
) -> anyhow::Result<u64> {
    let key = SecretKey::generate();
    let deadline = Instant::now() + WARMUP_DEADLINE;
    let mut accepted = 0u64;
    let mut ids = Vec::new();
    for nonce in 1u64.. {
        network.check_alive()?;
        let tx = key.sign_transaction(TxBody {
            version: aegis_types::ENCODING_VERSION,
            chain_id: chain_id.to_owned(),
            sender: key.public_key(),
            nonce,
            payload: b"aegis-bench warm-up".to_vec(),
        });
        let api = &network.apis[nonce as usize % network.apis.len()];
        let answer = http
            .post(format!("{api}/v1/transactions"))
            .json(&tx)
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().as_u16() == 202) {
            accepted += 1;
            ids.push(tx.id());
        }
        let retry = Instant::now() + WARMUP_RETRY;
        while Instant::now() < retry {
            if ids.iter().any(|id| commits.time_of(id).is_some()) {
                // Wait for the others too, so none of them commits during the load.
                let settle = Instant::now() + DRAIN_DEADLINE;
                while !ids.iter().all(|id| commits.time_of(id).is_some()) && Instant::now() < settle
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return Ok(accepted);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if Instant::now() >= deadline {
            bail!(
                "the network committed nothing within {WARMUP_DEADLINE:?} ({accepted} warm-up transactions accepted); see the nodes' logs"
            );
        }
    }
    Ok(accepted)
}

#[allow(
    clippy::too_many_arguments,
    reason = "one step's parameters, passed once"
)]
async fn run_step(
    http: &reqwest::Client,
    network: &mut Network,
    commits: &Arc<Commits>,
    clients: &mut Clients,
    rate: u64,
    duration: u64,
    step: usize,
) -> anyhow::Result<StepFigures> {
    let count = rate * duration;
    let per_chunk = chunk_size(rate, clients.tx_size);
    eprintln!(
        "step {}: signing {count} transactions ({rate} tx/s for {duration} s, {per_chunk} per request)...",
        step + 1
    );
    let chunks = tokio::task::block_in_place(|| clients.prepare(count, per_chunk))?;
    let interval = Duration::from_secs_f64(per_chunk as f64 / rate as f64);
    let window = Duration::from_secs(duration);
    let apis = network.apis.clone();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let sent_txs = Arc::new(AtomicU64::new(0));

    let cpu_before: Vec<Option<Duration>> = network
        .processes
        .iter()
        .map(|(_, pid)| pid.and_then(super::procfs::cpu_time))
        .collect();
    let own_before = super::procfs::own_cpu_time();
    let start = tokio::time::Instant::now();
    let started = start.into_std();
    let pids: Vec<Option<u32>> = network.processes.iter().map(|(_, pid)| *pid).collect();
    // One sample per RSS_SAMPLE_EVERY over the window: bounded by the step's duration.
    let sampler = tokio::spawn(async move {
        let mut samples: Vec<Vec<Option<f64>>> = vec![Vec::new(); pids.len()];
        let mut tick = tokio::time::interval(RSS_SAMPLE_EVERY);
        loop {
            tick.tick().await;
            for (pid, series) in pids.iter().zip(samples.iter_mut()) {
                series.push(
                    pid.and_then(super::procfs::rss_bytes)
                        .map(|bytes| round1(bytes as f64 / (1024.0 * 1024.0))),
                );
            }
            if start.elapsed() >= window {
                return samples;
            }
        }
    });
    let progress = tokio::spawn(show_progress(
        started,
        window,
        Arc::clone(&sent_txs),
        Arc::clone(commits),
    ));
    let mut requests = Vec::with_capacity(chunks.len());
    let mut unsent = 0u64;
    for (k, chunk) in chunks.into_iter().enumerate() {
        tokio::time::sleep_until(start + interval.mul_f64(k as f64)).await;
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            unsent += chunk.ids.len() as u64;
            continue;
        };
        let url = format!("{}/v1/transactions", apis[k % apis.len()]);
        sent_txs.fetch_add(chunk.ids.len() as u64, Ordering::Relaxed);
        let http = http.clone();
        requests.push(tokio::spawn(async move {
            let outcome = submit(&http, url, chunk).await;
            drop(permit);
            outcome
        }));
    }
    tokio::time::sleep_until(start + window).await;
    let window_end = Instant::now();
    let cpu_after: Vec<Option<Duration>> = network
        .processes
        .iter()
        .map(|(_, pid)| pid.and_then(super::procfs::cpu_time))
        .collect();
    let own_after = super::procfs::own_cpu_time();
    let elapsed = window_end.duration_since(started).as_secs_f64();

    let rss_samples = sampler.await.unwrap_or_default();
    let mut outcomes = Vec::with_capacity(requests.len());
    for request in requests {
        outcomes.push(request.await.context("a submission task failed")?);
    }
    // Drain: wait for every accepted transaction's commit, within the deadline.
    let mut waiting: Vec<Hash> = outcomes
        .iter()
        .flat_map(|o| {
            o.ids
                .iter()
                .zip(&o.statuses)
                .filter(|(_, s)| **s == 202)
                .map(|(id, _)| *id)
        })
        .collect();
    let drain_deadline = Instant::now() + DRAIN_DEADLINE;
    loop {
        if let Ok(times) = commits.times.lock() {
            waiting.retain(|id| !times.contains_key(id));
        }
        if waiting.is_empty() || Instant::now() >= drain_deadline {
            break;
        }
        network.check_alive()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    network.check_alive()?;

    let mut submitted = 0u64;
    let mut accepted = 0u64;
    let mut refusals = BTreeMap::new();
    let mut committed = 0u64;
    let mut in_window = 0u64;
    let mut latencies = Vec::new();
    {
        let times = commits
            .times
            .lock()
            .map_err(|_| anyhow::anyhow!("the commit collector failed"))?;
        for outcome in &outcomes {
            for (id, status) in outcome.ids.iter().zip(&outcome.statuses) {
                submitted += 1;
                if *status == 202 {
                    accepted += 1;
                } else {
                    *refusals.entry(*status).or_insert(0u64) += 1;
                }
                if let Some(at) = times.get(id) {
                    committed += 1;
                    if *at <= window_end {
                        in_window += 1;
                    }
                    latencies.push(at.saturating_duration_since(outcome.sent).as_secs_f64() * 1e3);
                }
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1]
    };
    let nodes = network
        .processes
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .enumerate()
        .map(|(i, ((name, pid), (before, after)))| {
            let cpu = match (before, after) {
                (Some(b), Some(a)) => {
                    Some(round1(a.saturating_sub(*b).as_secs_f64() / elapsed * 100.0))
                }
                _ => None,
            };
            let rss = pid
                .and_then(super::procfs::peak_rss_bytes)
                .map(|bytes| round1(bytes as f64 / (1024.0 * 1024.0)));
            json!({
                "name": name,
                "pid": pid,
                "cpu_percent": cpu,
                "peak_rss_mb": rss,
                "rss_mb_samples": rss_samples.get(i).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let client_cpu_percent = match (own_before, own_after) {
        (Some(b), Some(a)) => a.saturating_sub(b).as_secs_f64() / elapsed * 100.0,
        _ => 0.0,
    };
    let figures = StepFigures {
        offered_tps: count as f64 / duration as f64,
        throughput_tps: in_window as f64 / elapsed,
        submitted,
        accepted,
        refused: submitted - accepted,
        refusals,
        unsent,
        committed,
        uncommitted: waiting.len() as u64,
        latency_ms: [
            percentile(50.0),
            percentile(95.0),
            percentile(99.0),
            latencies.last().copied().unwrap_or(0.0),
        ],
        nodes,
        client_cpu_percent,
        duration_s: round1(elapsed * 10.0) / 10.0,
        per_request: per_chunk,
    };
    eprintln!(
        "step {}: offered {:.0} tx/s, committed {:.0} tx/s, p99 {:.1} ms, refused {}, unsent {}",
        step + 1,
        figures.offered_tps,
        figures.throughput_tps,
        figures.latency_ms[2],
        figures.refused,
        figures.unsent
    );
    Ok(figures)
}

/// Sends one request and reads each transaction's answer.
async fn submit(http: &reqwest::Client, url: String, chunk: Chunk) -> ChunkOutcome {
    let n = chunk.ids.len();
    let sent = Instant::now();
    let answer = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(chunk.body)
        .send()
        .await;
    let statuses = match answer {
        Ok(response) if response.status().is_success() => match response.json::<Value>().await {
            Ok(Value::Array(items)) if items.len() == n => items
                .iter()
                .map(|item| {
                    if item["status"] == "pending" {
                        202
                    } else {
                        item["http_status"].as_u64().map_or(0, |s| s as u16)
                    }
                })
                .collect(),
            _ => vec![0; n],
        },
        Ok(response) => vec![response.status().as_u16(); n],
        Err(_) => vec![0; n],
    };
    ChunkOutcome {
        sent,
        ids: chunk.ids,
        statuses,
    }
}
