//! `aegis bench crypto`: Ed25519 signature verifications per second on this machine, one by
//! one and in batches, through `aegis-crypto` exactly as the mempool verifies a submission
//! (signing bytes encoded, then one `BatchVerifier` batch). Every validator verifies every
//! transaction once, so `cores x batch verifications per core per second / validators` bounds
//! what a network on this machine can commit; `aegis bench` measures it in each run.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use aegis_crypto::SecretKey;
use aegis_types::{Transaction, TxBody};
use serde::Serialize;

/// Transactions in one batch by default: one full submission (`POST /v1/transactions`
/// takes at most 100 by default), which the mempool verifies as one batch.
pub const DEFAULT_BATCH: usize = 100;
/// Distinct signed transactions the measurement cycles through.
const SAMPLE_TXS: usize = 1_000;

#[derive(Debug, clap::Args)]
pub struct CryptoArgs {
    /// Seconds spent on each measurement (single, batch).
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Signatures per batch.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Payload bytes of the signed transactions.
    #[arg(long, default_value_t = 256)]
    pub tx_size: usize,
    /// Write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
}

/// Verification rates on one core of this machine.
#[derive(Debug, Clone, Serialize)]
pub struct CryptoFigures {
    /// Single verifications per second on one core.
    pub single_per_core: f64,
    /// Verifications per second on one core in batches of `batch`.
    pub batch_per_core: f64,
    pub batch: usize,
    /// Cores available to this process.
    pub cores: usize,
    /// Payload bytes of the verified transactions.
    pub tx_size: usize,
}

impl CryptoFigures {
    /// Transactions per second a network of `validators` could commit if signature
    /// verification were all its work: every validator verifies every transaction once, on
    /// every core of this machine.
    pub fn bound_tps(&self, validators: usize) -> f64 {
        self.cores as f64 * self.batch_per_core / validators.max(1) as f64
    }
}

pub fn run(args: CryptoArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds <= 600.0,
        "--seconds must be above 0 and at most 600"
    );
    anyhow::ensure!(
        args.tx_size <= aegis_types::MAX_TX_PAYLOAD_BYTES,
        "--tx-size must be at most {} bytes",
        aegis_types::MAX_TX_PAYLOAD_BYTES
    );
    let figures = measure(
        Duration::from_secs_f64(args.seconds),
        args.batch,
        args.tx_size,
    );
    println!(
        "Ed25519 verification ({}-byte transactions, one core):",
        figures.tx_size
    );
    println!(
        "  single            {:>10.0} verifications/s",
        figures.single_per_core
    );
    println!(
        "  batch of {:<5}    {:>10.0} verifications/s ({:.2}x single)",
        figures.batch,
        figures.batch_per_core,
        figures.batch_per_core / figures.single_per_core.max(1.0)
    );
    println!("Cores: {}", figures.cores);
    for validators in [1, 3, 4, 7] {
        println!(
            "  bound for {validators} validator(s): {:>8.0} tx/s (cores x batch / validators)",
            figures.bound_tps(validators)
        );
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&figures)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Measures single and batch verification on the calling thread, `each` for each.
pub fn measure(each: Duration, batch: usize, tx_size: usize) -> CryptoFigures {
    let txs = sample_transactions(SAMPLE_TXS.max(batch), tx_size);
    // Single: verify_transaction, one after the other.
    let started = Instant::now();
    let mut single = 0u64;
    while started.elapsed() < each {
        for tx in txs.iter().take(100) {
            // The outcome is known (all valid); black_box keeps the work from being elided.
            std::hint::black_box(aegis_crypto::verify_transaction(tx).is_ok());
        }
        single += 100;
    }
    let single_per_core = single as f64 / started.elapsed().as_secs_f64();
    // Batches of `batch`, cycling through the sample.
    let started = Instant::now();
    let mut verified = 0u64;
    let mut offset = 0usize;
    while started.elapsed() < each {
        if offset + batch > txs.len() {
            offset = 0;
        }
        let chunk = &txs[offset..offset + batch];
        std::hint::black_box(aegis_crypto::verify_transactions(chunk).is_ok());
        verified += batch as u64;
        offset += batch;
    }
    let batch_per_core = verified as f64 / started.elapsed().as_secs_f64();
    CryptoFigures {
        single_per_core,
        batch_per_core,
        batch,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        tx_size,
    }
}

/// `count` transactions of `tx_size` payload bytes, signed by 16 different keys.
fn sample_transactions(count: usize, tx_size: usize) -> Vec<Transaction> {
    let keys: Vec<SecretKey> = (0..16).map(|_| SecretKey::generate()).collect();
    (0..count)
        .map(|i| {
            let key = &keys[i % keys.len()];
            key.sign_transaction(TxBody {
                version: aegis_types::ENCODING_VERSION,
                chain_id: "aegis-bench".to_owned(),
                sender: key.public_key(),
                nonce: i as u64 + 1,
                payload: vec![(i % 251) as u8; tx_size],
            })
        })
        .collect()
}
