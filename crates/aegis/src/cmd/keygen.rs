//! `aegis keygen`: create a node key file.

use std::path::PathBuf;
use std::process::ExitCode;

use aegis_crypto::{KdfParams, SecretKey, write_key_file};
use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the encrypted key file.
    #[arg(long, value_name = "FILE", default_value = "config/node_key.json")]
    pub out: PathBuf,
    /// Replace an existing key file (the old key is lost).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let passphrase = super::encryption_key_from_env()?;
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it (the old key is lost)",
            args.out.display()
        );
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("create directory {}", parent.display()))?;
    }
    let secret = SecretKey::generate();
    write_key_file(&args.out, &secret, &passphrase, KdfParams::default())?;
    println!("public_key: {}", secret.public_key());
    println!("key file: {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
