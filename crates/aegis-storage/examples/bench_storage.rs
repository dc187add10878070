//! The storage benchmark without the `aegis` binary:
//! `cargo run --release -p aegis-storage --features fixtures --example bench_storage -- sqlite|postgresql BLOCKS TXS SIZE [DIR|URL]`.
//! For PostgreSQL the last argument (or `DATABASE_URL`) is the database URL.

use std::process::ExitCode;

use aegis_storage::bench::BenchOptions;
use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{StoreConfig, verify};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> u64 {
        args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
    };
    let backend = args.first().map_or("sqlite", String::as_str);
    let options = BenchOptions {
        blocks: number(1, 10_000),
        txs_per_block: number(2, 100) as usize,
        tx_size: number(3, 256) as usize,
        reads: 10_000,
        blocks_per_commit: std::env::var("BLOCKS_PER_COMMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        group_commit: std::env::var("GROUP_COMMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    };
    let tmp = match tempfile::tempdir() {
        Ok(tmp) => tmp,
        Err(error) => {
            eprintln!("temporary directory: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = match backend {
        "postgresql" | "postgres" => {
            let url = args
                .get(4)
                .cloned()
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .unwrap_or_default();
            StoreConfig::postgres(url)
        }
        _ => {
            let dir = args.get(4).map_or(tmp.path().to_path_buf(), Into::into);
            StoreConfig::sqlite(dir.join("data/blockchain.db"))
        }
    };
    let mut fixture = ChainFixture::new(4, "aegis-bench");
    match aegis_storage::bench_storage(&config, &mut fixture, &options).await {
        Ok(report) => println!("{report}"),
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            return ExitCode::FAILURE;
        }
    }
    let started = std::time::Instant::now();
    match verify(&config, &fixture.genesis).await {
        Ok(report) => println!("{report} (in {:.1} s)", started.elapsed().as_secs_f64()),
        Err(error) => {
            eprintln!("verify failed: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
