//! `aegis bench sync`: how fast a node catches up. A 4-validator testnet on loopback whose
//! node0..node2 hold a signed chain of `--blocks` blocks of `--txs-per-block` transactions
//! (built with the storage fixtures, certified by the testnet's own validator keys); node3
//! starts on an empty ledger and fetches it all through block sync. Reports blocks/s and
//! tx/s from node3's start to its ledger at the head, beside a live commit rate when given.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{Ledger as _, SqlStore, StoreConfig};
use anyhow::{Context, bail};

use crate::cmd::db::runtime;
use crate::cmd::testnet;

/// Blocks built and stored per database transaction while the chain is made.
const FILL_CHUNK: u64 = 256;
/// How long the three serving nodes may take to start (they replay the chain into their
/// consensus cores).
const SERVERS_READY_WAIT: Duration = Duration::from_secs(600);
/// How long the catch-up may take before the run gives up.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3_600);
/// How often node3's height is read.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Blocks node3 is behind.
    #[arg(long, default_value_t = 10_000)]
    pub blocks: u64,
    #[arg(long, default_value_t = 100)]
    pub txs_per_block: usize,
    /// Payload bytes per transaction.
    #[arg(long, default_value_t = 256)]
    pub tx_size: usize,
    /// The live commit rate (tx/s) of the same network to compare with, e.g. from
    /// `aegis bench --find-saturation`.
    #[arg(long, value_name = "TX_PER_S")]
    pub live_tps: Option<f64>,
    /// Keep the testnet in DIR (it is removed otherwise).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Node processes killed when the run ends however it ends.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn sync(args: SyncArgs) -> anyhow::Result<ExitCode> {
    if args.blocks == 0 {
        bail!("--blocks must be at least 1");
    }
    if args.tx_size > aegis_types::MAX_TX_PAYLOAD_BYTES {
        bail!(
            "--tx-size must be at most {} bytes",
            aegis_types::MAX_TX_PAYLOAD_BYTES
        );
    }
    let scratch = tempfile::tempdir().context("create a temporary directory")?;
    let dir = args
        .keep
        .clone()
        .unwrap_or_else(|| scratch.path().join("net"));
    let base = testnet::free_base_port(4)?;
    let net = testnet::generate(&testnet::Args {
        validators: 4,
        out: dir.clone(),
        base_port: base,
        host: "127.0.0.1".to_owned(),
        hosts: Vec::new(),
        chain_id: "aegis-bench".to_owned(),
        algorithm: "pbft".to_owned(),
    })
    .context("generate the testnet")?;
    let txs = args.blocks * args.txs_per_block as u64;
    eprintln!(
        "Building a chain of {} blocks of {} transactions ({} bytes of payload each) for node0..node2",
        args.blocks, args.txs_per_block, args.tx_size
    );
    let built = Instant::now();
    let db0 = net.homes[0].join("data/blockchain.db");
    let mut fixture = ChainFixture::from_parts(net.genesis.clone(), net.keys.clone());
    let rt = runtime()?;
    rt.block_on(fill(&db0, &mut fixture, &args))?;
    for home in &net.homes[1..3] {
        std::fs::copy(&db0, home.join("data/blockchain.db"))
            .with_context(|| format!("copy the chain into {}", home.display()))?;
    }
    eprintln!("Chain built in {:.1} s", built.elapsed().as_secs_f64());

    let http = rt.block_on(async {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("build the HTTP client")
    })?;
    let metrics = |i: usize| base + 1090 + i as u16;
    let mut nodes = Nodes(Vec::new());
    for (i, home) in net.homes[..3].iter().enumerate() {
        nodes.0.push(start(home, i)?);
    }
    let deadline = Instant::now() + SERVERS_READY_WAIT;
    for i in 0..3 {
        loop {
            let status = rt.block_on(status(&http, metrics(i)));
            if status.is_some_and(|s| s.0 >= args.blocks && s.1) {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "node{i} did not start at height {} within {SERVERS_READY_WAIT:?}; see {}",
                    args.blocks,
                    net.homes[i].join("logs").display()
                );
            }
            std::thread::sleep(POLL);
        }
    }
    let load_before = load_average();
    eprintln!(
        "node0..node2 serve height {}; starting node3 on an empty ledger",
        args.blocks
    );
    let started = Instant::now();
    nodes.0.push(start(&net.homes[3], 3)?);
    let deadline = started + CATCH_UP_WAIT;
    let mut last_report = Instant::now();
    loop {
        let height = rt
            .block_on(status(&http, metrics(3)))
            .map_or(0, |(height, _)| height);
        if height >= args.blocks {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "node3 reached only height {height} of {} within {CATCH_UP_WAIT:?}",
                args.blocks
            );
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!("  node3 at height {height} of {}", args.blocks);
            last_report = Instant::now();
        }
        std::thread::sleep(POLL);
    }
    let seconds = started.elapsed().as_secs_f64();
    let load_after = load_average();
    let blocks_per_s = args.blocks as f64 / seconds;
    let tx_per_s = txs as f64 / seconds;
    println!(
        "Catch-up of a node {} blocks behind ({} transactions of {} bytes):",
        args.blocks, txs, args.tx_size
    );
    println!("  time          {seconds:.1} s (from node3's start to its ledger at the head)");
    println!("  blocks/s      {blocks_per_s:.0}");
    println!("  tx/s          {tx_per_s:.0}");
    if let Some(live) = args.live_tps {
        println!(
            "  live commit   {live:.0} tx/s: catch-up is {:.1}x",
            tx_per_s / live
        );
    }
    println!(
        "  load average  {load_before} before, {load_after} after ({} cores)",
        cores()
    );
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "blocks": args.blocks,
            "transactions": txs,
            "tx_size": args.tx_size,
            "seconds": seconds,
            "blocks_per_s": blocks_per_s,
            "tx_per_s": tx_per_s,
            "live_tps": args.live_tps,
            "ratio_to_live": args.live_tps.map(|live| tx_per_s / live),
            "load_before": load_before,
            "load_after": load_after,
            "cores": cores(),
        });
        std::fs::write(path, format!("{json:#}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    drop(nodes);
    if let Some(dir) = &args.keep {
        println!(
            "Kept: aegis verify --config {}",
            dir.join("node3/config/production.yaml").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn fill(db: &Path, fixture: &mut ChainFixture, args: &SyncArgs) -> anyhow::Result<()> {
    let store = SqlStore::open(&StoreConfig::sqlite(db.to_path_buf()))
        .await
        .with_context(|| format!("open {}", db.display()))?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut left = args.blocks;
    while left > 0 {
        let count = left.min(FILL_CHUNK);
        let blocks = fixture.next_blocks(count as usize, args.txs_per_block, args.tx_size, threads);
        store
            .append_blocks(&blocks)
            .await
            .with_context(|| format!("store blocks into {}", db.display()))?;
        left -= count;
    }
    store.close().await;
    Ok(())
}

fn start(home: &Path, i: usize) -> anyhow::Result<Child> {
    let console = std::fs::File::create(home.join("logs/console.out"))
        .with_context(|| format!("create node{i}'s console log"))?;
    std::process::Command::new(std::env::current_exe().context("find the aegis binary")?)
        .args(["run", "--config"])
        .arg(home.join("config/production.yaml"))
        .stdout(Stdio::null())
        .stderr(console)
        .spawn()
        .with_context(|| format!("start node{i}"))
}

/// `(block_height, consensus.running)` from `/status`, when the node answers.
async fn status(http: &reqwest::Client, port: u16) -> Option<(u64, bool)> {
    let status: serde_json::Value = http
        .get(format!("http://127.0.0.1:{port}/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some((
        status["block_height"].as_u64()?,
        status["consensus"]["running"] == true,
    ))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
