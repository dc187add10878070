//! `aegis devnet`: a live local network in one command. It generates the network under
//! `--dir` (or reuses one generated before), starts each validator as its own `aegis run`
//! process on loopback, sends a light steady workload through the client API, and prints
//! progress every second (height, committed transactions per second, submit-to-commit
//! latency, peers per node) until Ctrl-C or SIGTERM; then it stops the nodes cleanly.
//! Commits come from node0's event stream (`GET /v1/events`), so latencies are exact to the
//! commit, not to the progress line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use aegis_crypto::SecretKey;
use aegis_types::{Hash, TxBody};
use anyhow::{Context, bail};
use serde_json::Value;

use super::testnet;

/// How long the nodes may take to answer `/health` after start.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// Progress is printed this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Each HTTP request of the devnet is bounded by this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Submitted transactions whose commit is still awaited, at most (older ones are dropped
/// from the latency sample, not from the chain).
const MAX_TRACKED: usize = 100_000;
/// Latency samples kept for the percentiles of one progress line.
const MAX_SAMPLES: usize = 10_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the network lives; generated when it holds none.
    #[arg(long, value_name = "DIR", default_value = "devnet")]
    pub dir: PathBuf,
    /// Number of validators (when generating).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// First port: node I uses P+I (P2P), P+80+I (API), P+1090+I (metrics).
    #[arg(long, value_name = "P", default_value_t = 8000)]
    pub base_port: u16,
    /// Transactions submitted per second (round robin over the nodes); 0 sends none.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Consensus algorithm (when generating): pbft, or raft for crash tolerance only.
    /// A devnet generated before keeps its own; naming another is an error.
    #[arg(long, value_parser = ["pbft", "raft"])]
    pub algorithm: Option<String>,
}

/// One running validator.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) api: String,
    pub(crate) monitoring: String,
    /// The node's home (its `logs/console.log` holds a start-up error).
    pub(crate) home: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(devnet(args))
}

async fn devnet(args: Args) -> anyhow::Result<ExitCode> {
    let homes = prepare(&args)?;
    let exe = std::env::current_exe().context("find the aegis executable")?;
    let mut nodes = Vec::new();
    for (i, home) in homes.iter().enumerate() {
        match start_node(&exe, home, i, args.base_port, &[]) {
            Ok(node) => nodes.push(node),
            Err(error) => {
                stop_nodes(&mut nodes).await;
                return Err(error);
            }
        }
    }
    let outcome = drive(&args, &mut nodes).await;
    stop_nodes(&mut nodes).await;
    outcome
}

/// The homes of the network under `--dir`, generating it when absent.
fn prepare(args: &Args) -> anyhow::Result<Vec<PathBuf>> {
    let existing = homes_in(&args.dir);
    if !existing.is_empty() {
        let genesis_file = existing[0].join("config/genesis.json");
        let text = aegis_fs::read_regular_file_to_string(
            &genesis_file,
            crate::preflight::MAX_GENESIS_FILE_BYTES,
        )
        .with_context(|| format!("read {}", genesis_file.display()))?;
        let genesis = aegis_types::Genesis::from_json(&text)
            .with_context(|| format!("parse {}", genesis_file.display()))?;
        let algorithm = genesis.consensus.algorithm.as_str();
        if let Some(wanted) = &args.algorithm
            && wanted != algorithm
        {
            bail!(
                "the devnet in {} runs {algorithm}, not {wanted}: choose another --dir, or remove it",
                args.dir.display()
            );
        }
        println!(
            "Using the {algorithm} devnet in {} ({} validators)",
            args.dir.display(),
            existing.len()
        );
        return Ok(existing);
    }
    let algorithm = args.algorithm.clone().unwrap_or_else(|| "pbft".into());
    let generated = testnet::generate(&testnet::Args {
        validators: args.validators,
        out: args.dir.clone(),
        base_port: args.base_port,
        host: "127.0.0.1".into(),
        hosts: Vec::new(),
        chain_id: "aegis-devnet".into(),
        algorithm: algorithm.clone(),
    })?;
    println!(
        "Generated a {algorithm} devnet of {} validators in {}",
        generated.homes.len(),
        args.dir.display()
    );
    Ok(generated.homes)
}

fn homes_in(dir: &Path) -> Vec<PathBuf> {
    (0..)
        .map(|i| dir.join(format!("node{i}")))
        .take_while(|home| home.join("config/production.yaml").is_file())
        .collect()
}

/// Starts `aegis run` for the node in `home`, with `env` added to this process's environment.
pub(crate) fn start_node(
    exe: &Path,
    home: &Path,
    i: usize,
    base_port: u16,
    env: &[(&str, &str)],
) -> anyhow::Result<Node> {
    let (_, api, metrics) = testnet::ports(base_port, i);
    let console = std::fs::File::create(home.join("logs/console.log"))
        .with_context(|| format!("create {}/logs/console.log", home.display()))?;
    let child = Command::new(exe)
        .args(["run", "--config"])
        .arg(home.join("config/production.yaml"))
        .env("AEGIS_HOME", home)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(console.try_clone().context("share the console log")?)
        .stderr(console)
        .spawn()
        .with_context(|| format!("start node{i}"))?;
    println!(
        "started node{i} (pid {}), log {}/logs/aegis.log",
        child.id(),
        home.display()
    );
    Ok(Node {
        name: format!("node{i}"),
        child,
        api: format!("http://127.0.0.1:{api}"),
        monitoring: format!("http://127.0.0.1:{metrics}"),
        home: home.to_path_buf(),
    })
}

/// SIGTERM to every node, then wait for each (killing one that outlives the deadline).
pub(crate) async fn stop_nodes(nodes: &mut [Node]) {
    for node in nodes.iter() {
        // `kill` through the command line keeps this crate free of unsafe code.
        let _ = Command::new("kill")
            .args(["-TERM", &node.child.id().to_string()])
            .status();
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    for node in nodes.iter_mut() {
        loop {
            match node.child.try_wait() {
                Ok(Some(status)) => {
                    println!("stopped {} ({status})", node.name);
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => {
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    println!(
                        "killed {} (it did not stop within {STOP_DEADLINE:?})",
                        node.name
                    );
                    break;
                }
            }
        }
    }
}

/// Waits for the nodes, then submits and reports until a signal.
async fn drive(args: &Args, nodes: &mut [Node]) -> anyhow::Result<ExitCode> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("build the HTTP client")?;
    let chain_id = wait_ready(&http, nodes).await?;
    println!("devnet is up; Ctrl-C stops it");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    let mut workload = Workload::default();
    // Commits as they happen (node0's event stream): exact submit-to-commit latencies.
    let (commits_tx, mut commits) = tokio::sync::mpsc::channel(COMMIT_EVENTS);
    let events = tokio::spawn(follow_commits(
        http.clone(),
        nodes[0].api.clone(),
        commits_tx,
    ));
    // The load: its own task, so submissions neither wait for each other (at most
    // MAX_IN_FLIGHT at once) nor delay the reading of commits; outcomes come back here.
    let (outcomes_tx, mut outcomes) = tokio::sync::mpsc::channel(SUBMIT_OUTCOMES);
    let apis: Vec<String> = nodes.iter().map(|node| node.api.clone()).collect();
    let load = tokio::spawn(submit_load(
        http.clone(),
        apis,
        chain_id,
        args.rate,
        outcomes_tx,
    ));
    let mut progress_tick = tokio::time::interval(PROGRESS_EVERY);
    progress_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            Some((tx_count, ids)) = commits.recv() => workload.committed(tx_count, &ids),
            Some(outcome) = outcomes.recv() => match outcome {
                Ok((id, submitted)) => workload.submitted(id, submitted),
                Err(status) => workload.refused(status),
            },
            _ = progress_tick.tick() => {
                for node in nodes.iter_mut() {
                    if let Ok(Some(status)) = node.child.try_wait() {
                        bail!("{} exited ({status}); see its logs/console.log", node.name);
                    }
                }
                let line = progress(&http, nodes, &mut workload).await;
                println!("{line}");
            }
        }
    }
    load.abort();
    events.abort();
    println!("stopping the devnet...");
    Ok(ExitCode::SUCCESS)
}

/// Committed blocks' transaction counts and ids waiting for the progress loop, at most.
const COMMIT_EVENTS: usize = 1_024;
/// Submission outcomes waiting for the progress loop, at most.
const SUBMIT_OUTCOMES: usize = 4_096;
/// Submissions awaiting their answer at once, at most.
const MAX_IN_FLIGHT: usize = 64;

/// What one submission came to: the id and when it was accepted, or the refusal's status
/// (0 when the node did not answer).
type SubmitOutcome = Result<(Hash, Instant), u16>;

/// Submits `rate` transactions a second, round robin over the nodes, without waiting for
/// one answer before the next request (at most [`MAX_IN_FLIGHT`] at once).
async fn submit_load(
    http: reqwest::Client,
    apis: Vec<String>,
    chain_id: String,
    rate: u32,
    outcomes: tokio::sync::mpsc::Sender<SubmitOutcome>,
) {
    if rate == 0 || apis.is_empty() {
        return;
    }
    let client = SecretKey::generate();
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for nonce in 1u64.. {
        tick.tick().await;
        let Ok(permit) = std::sync::Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let tx = client.sign_transaction(TxBody {
            version: aegis_types::ENCODING_VERSION,
            chain_id: chain_id.clone(),
            sender: client.public_key(),
            nonce,
            payload: format!("devnet {nonce}").into_bytes(),
        });
        let url = format!("{}/v1/transactions", apis[nonce as usize % apis.len()]);
        let (http, outcomes) = (http.clone(), outcomes.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = match http.post(url).json(&tx).send().await {
                Ok(response) if response.status().is_success() => Ok((tx.id(), started)),
                Ok(response) => Err(response.status().as_u16()),
                Err(_) => Err(0),
            };
            drop(permit);
            let _ = outcomes.send(outcome).await;
        });
    }
}

/// Follows `GET /v1/events` of one node and passes on each block's transaction count and
/// ids; reconnects (resuming after the last height seen) if the stream breaks.
pub(crate) async fn follow_commits(
    http: reqwest::Client,
    api: String,
    commits: tokio::sync::mpsc::Sender<(u64, Vec<Hash>)>,
) {
    let mut last: Option<u64> = None;
    loop {
        let mut request = http
            .get(format!("{api}/v1/events"))
            .timeout(Duration::from_secs(24 * 3600));
        if let Some(height) = last {
            request = request.header("Last-Event-ID", height.to_string());
        }
        if let Ok(mut response) = request.send().await {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find('\n') {
                    let line: String = buffer.drain(..=end).collect();
                    let Some(data) = line.trim_end().strip_prefix("data:") else {
                        continue;
                    };
                    let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                        continue;
                    };
                    last = event["height"].as_u64().or(last);
                    let ids = event["tx_ids"]
                        .as_array()
                        .map(|ids| {
                            ids.iter()
                                .filter_map(|id| id.as_str().and_then(|id| Hash::from_hex(id).ok()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let count = event["tx_count"].as_u64().unwrap_or(0);
                    if commits.send((count, ids)).await.is_err() {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until every node answers `/health`; returns the chain id.
async fn wait_ready(http: &reqwest::Client, nodes: &[Node]) -> anyhow::Result<String> {
    let deadline = Instant::now() + START_DEADLINE;
    for node in nodes {
        loop {
            let healthy = http
                .get(format!("{}/health", node.api))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not answer /health within {START_DEADLINE:?}; see its logs",
                    node.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let info: Value = http
        .get(format!("{}/v1/node", nodes[0].api))
        .send()
        .await
        .context("ask node0 for its chain id")?
        .json()
        .await
        .context("read node0's /v1/node")?;
    info["chain_id"]
        .as_str()
        .map(str::to_owned)
        .context("node0's /v1/node has no chain_id")
}

/// What the workload sent and what came back, between two progress lines.
#[derive(Debug, Default)]
struct Workload {
    /// Submitted and not yet seen committed: id -> when submitted.
    waiting: BTreeMap<Hash, Instant>,
    /// Committed before the answer to its submission came back: id -> when seen committed
    /// (also other clients' transactions, so bounded by clearing).
    seen_early: BTreeMap<Hash, Instant>,
    /// Submit-to-commit latencies since the last progress line, milliseconds.
    latencies_ms: Vec<u64>,
    refused: BTreeMap<u16, u64>,
    committed_since: u64,
    since: Option<Instant>,
}

impl Workload {
    fn submitted(&mut self, id: Hash, at: Instant) {
        // The commit may have been seen before the answer to the submission arrived.
        if let Some(committed) = self.seen_early.remove(&id) {
            if self.latencies_ms.len() < MAX_SAMPLES {
                self.latencies_ms
                    .push(committed.saturating_duration_since(at).as_millis() as u64);
            }
            return;
        }
        if self.waiting.len() < MAX_TRACKED {
            self.waiting.insert(id, at);
        }
    }

    fn refused(&mut self, status: u16) {
        *self.refused.entry(status).or_default() += 1;
    }

    fn committed(&mut self, tx_count: u64, ids: &[Hash]) {
        self.committed_since += tx_count;
        for id in ids {
            if let Some(submitted) = self.waiting.remove(id)
                && self.latencies_ms.len() < MAX_SAMPLES
            {
                self.latencies_ms
                    .push(submitted.elapsed().as_millis() as u64);
            }
        }
    }
}

/// One progress line: each node's height and peers, committed tx/s and commit latency.
async fn progress(http: &reqwest::Client, nodes: &[Node], workload: &mut Workload) -> String {
    let mut heights = Vec::new();
    let mut peers = Vec::new();
    for node in nodes {
        let status: Option<Value> =
            match http.get(format!("{}/status", node.monitoring)).send().await {
                Ok(response) => response.json().await.ok(),
                Err(_) => None,
            };
        heights.push(status.as_ref().and_then(|s| s["block_height"].as_u64()));
        peers.push(status.as_ref().and_then(|s| s["peers"].as_u64()));
    }
    let top = heights.iter().flatten().copied().max().unwrap_or(0);
    let elapsed = workload
        .since
        .replace(Instant::now())
        .map_or(PROGRESS_EVERY, |since| since.elapsed());
    let rate = workload.committed_since as f64 / elapsed.as_secs_f64().max(0.001);
    workload.committed_since = 0;
    let mut latencies = std::mem::take(&mut workload.latencies_ms);
    latencies.sort_unstable();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len().saturating_sub(1)) * p / 100)
            .map_or("-".to_owned(), |ms| format!("{ms} ms"))
    };
    let show = |values: &[Option<u64>]| {
        values
            .iter()
            .map(|v| v.map_or("-".to_owned(), |v| v.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let refused: u64 = workload.refused.values().sum();
    format!(
        "height {top} [{}] | {rate:.1} tx/s committed | latency p50 {} p99 {} | peers [{}] | pending {}{}",
        show(&heights),
        percentile(50),
        percentile(99),
        show(&peers),
        workload.waiting.len(),
        if refused > 0 {
            format!(" | refused {refused}")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A `/status` that answers `body` to every connection, until the test ends.
    fn status_server(body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let mut request = [0_u8; 1024];
                let _ = stream.read(&mut request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    fn node(name: &str, monitoring: String) -> Node {
        Node {
            name: name.to_owned(),
            child: Command::new("true").spawn().unwrap(),
            api: monitoring.clone(),
            monitoring,
            home: PathBuf::new(),
        }
    }

    /// The guide's status loop aborted at the first node that was down; the progress line
    /// shows a down node as `-` and goes on with the others.
    #[test]
    fn progress_shows_a_down_node_and_the_ones_after_it() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let down = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let up = status_server(r#"{"block_height":7,"peers":2}"#);
        let mut nodes = vec![node("node0", down), node("node1", up)];
        aegis_p2p::install_default_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let line = runtime.block_on(progress(&http, &nodes, &mut Workload::default()));
        assert!(
            line.starts_with("height 7 [- 7]") && line.contains("peers [- 2]"),
            "{line}"
        );
        for node in &mut nodes {
            let _ = node.child.wait();
        }
    }
}
