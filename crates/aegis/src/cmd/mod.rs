//! One module per subcommand.

pub mod backup;
pub mod bench;
pub mod bench_sync;
pub mod client;
pub mod config;
pub mod db;
pub mod devnet;
pub mod diagnose;
pub mod health;
pub mod keygen;
pub mod logs;
pub mod monitor;
pub mod reset;
pub mod run;
pub mod simulate;
pub mod testnet;
pub mod validators;
pub mod verify;

/// AEGIS_ENCRYPTION_KEY, which protects the node key at rest; its absence is reported the
/// way `aegis config check` reports every missing variable.
pub fn encryption_key_from_env() -> anyhow::Result<String> {
    match std::env::var("AEGIS_ENCRYPTION_KEY") {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => anyhow::bail!("Missing environment variables: AEGIS_ENCRYPTION_KEY"),
    }
}
