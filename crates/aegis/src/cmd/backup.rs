//! `aegis backup --config FILE --out DIR` and `aegis restore --from DIR --config FILE`: the
//! guide's `pg_dump`/`pg_restore` backups and `disaster_recovery.sh`, with integrity.
//!
//! A backup directory holds:
//!
//! ```text
//! DIR/manifest.json        format, AEGIS version, chain id, genesis hash, backend, height,
//!                          tip hash, and every file below with its size and sha256
//! DIR/ledger.db            SQLite: a consistent copy taken with VACUUM INTO while the node runs
//! DIR/ledger.pgdump        PostgreSQL: pg_dump -Fc of one exported snapshot (pg_restore reads it)
//! DIR/config/...           the configuration, the genesis, the encrypted node key, the TLS files
//! ```
//!
//! The height and tip hash are those of the copy itself (read from the copy, or in the
//! snapshot `pg_dump` exports), and the copy's whole chain is verified against the genesis
//! before the manifest is written. `AEGIS_ENCRYPTION_KEY` (in `.env`) is never copied: keep
//! it apart; the key file is useless without it.
//!
//! A restore refuses a backup whose manifest is unknown, of another chain or backend, whose
//! files do not match their sha256, or whose chain does not verify or does not end at the
//! manifest's tip: all of that is checked on a scratch copy before anything of the node is
//! touched. Only then is the ledger swapped in (the old one moved aside, SQLite; one
//! `pg_restore --single-transaction`, PostgreSQL) and the consensus log moved aside (it
//! belongs to the old ledger). On its next start the node replays the restored chain and
//! syncs the blocks committed since the backup from its peers.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use aegis_config::{NodeConfig, StorageBackend};
use aegis_types::Genesis;
use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cmd::db::{load_config, runtime};

/// `format` of a manifest.
pub const MANIFEST_FORMAT: &str = "aegis-backup";
/// The manifest layout this binary writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Largest configuration-side file copied (configuration, genesis, key, TLS files).
const MAX_CONFIG_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Name of the SQLite copy in a backup.
const SQLITE_FILE: &str = "ledger.db";
/// Name of the PostgreSQL dump in a backup.
const PG_DUMP_FILE: &str = "ledger.pgdump";

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The node's configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The backup directory to write: created, or empty.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A backup directory written by `aegis backup`.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The configuration of the node to restore into (its ledger is replaced).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub aegis_version: String,
    pub created_at: String,
    pub chain_id: String,
    pub genesis_hash: String,
    pub node_id: Option<String>,
    /// `sqlite` or `postgresql`.
    pub backend: String,
    pub height: u64,
    /// The hash of the block at `height`; `None` for an empty chain.
    pub tip_hash: Option<String>,
    pub files: Vec<ManifestFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Path inside the backup directory.
    pub path: String,
    /// `ledger`, `config`, `genesis`, `node_key`, `tls_cert`, `tls_key`, `tls_ca`.
    pub role: String,
    /// Where it came from on the node.
    pub source: Option<PathBuf>,
    pub bytes: u64,
    pub sha256: String,
}

pub fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let node = match load_config(&args.config) {
        Ok(node) => node,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let genesis =
        crate::preflight::load_genesis(&node.node.genesis_file).map_err(anyhow::Error::msg)?;
    prepare_out(&args.out)?;
    let out = &args.out;
    let mut files = Vec::new();
    let runtime = runtime()?;
    let (ledger_file, tip) = match &node.storage.backend {
        StorageBackend::Sqlite { path } => {
            let copy = out.join(SQLITE_FILE);
            let tip = runtime
                .block_on(aegis_storage::admin::sqlite_copy(path, &copy))
                .with_context(|| format!("copy the ledger {}", path.display()))?;
            (SQLITE_FILE, tip)
        }
        StorageBackend::Postgres { connection_string } => {
            let tip = runtime.block_on(pg_dump(connection_string, &out.join(PG_DUMP_FILE)))?;
            (PG_DUMP_FILE, tip)
        }
    };
    // The copy must hold a sound chain before it is called a backup.
    if let StorageBackend::Sqlite { .. } = &node.storage.backend {
        let report = runtime
            .block_on(aegis_storage::verify(
                &aegis_storage::StoreConfig::sqlite(out.join(SQLITE_FILE)),
                &genesis,
            ))
            .context("verify the copied ledger")?;
        ensure!(
            report.is_ok(),
            "the copied ledger does not verify: {report}"
        );
    }
    files.push(describe(out, ledger_file, "ledger", None)?);
    let tls = &node.security.tls;
    let mut config_files = vec![
        ("config", node.source.clone()),
        ("genesis", node.node.genesis_file.clone()),
        ("node_key", node.node.key_file.clone()),
        ("tls_cert", tls.cert_file.clone()),
        ("tls_key", tls.key_file.clone()),
    ];
    if let Some(ca) = &tls.ca_file {
        config_files.push(("tls_ca", ca.clone()));
    }
    std::fs::create_dir_all(out.join("config"))
        .with_context(|| format!("create {}", out.join("config").display()))?;
    for (role, source) in config_files {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| role.to_owned());
        let relative = format!("config/{role}-{name}");
        let bytes = aegis_fs::read_regular_file(&source, MAX_CONFIG_FILE_BYTES)?;
        let mode = if role == "tls_key" || role == "node_key" {
            0o600
        } else {
            0o644
        };
        write_new(&out.join(&relative), &bytes, mode)?;
        files.push(describe(out, &relative, role, Some(source))?);
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        format_version: MANIFEST_VERSION,
        aegis_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: aegis_telemetry::format_rfc3339_millis(SystemTime::now()),
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash().to_hex(),
        node_id: node.node.id.clone(),
        backend: backend_kind(&node.storage).to_owned(),
        height: tip.map_or(0, |tip| tip.height),
        tip_hash: tip.map(|tip| tip.hash.to_hex()),
        files,
    };
    write_new(
        &out.join("manifest.json"),
        format!("{}\n", serde_json::to_string_pretty(&manifest)?).as_bytes(),
        0o644,
    )?;
    println!(
        "Backup of chain {:?} at height {} (tip {}) written to {} ({} files); AEGIS_ENCRYPTION_KEY is not in it: keep it apart",
        manifest.chain_id,
        manifest.height,
        manifest.tip_hash.as_deref().unwrap_or("none"),
        out.display(),
        manifest.files.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `sqlite` or `postgresql`.
fn backend_kind(storage: &aegis_config::StorageConfig) -> &'static str {
    match storage.backend {
        StorageBackend::Sqlite { .. } => "sqlite",
        StorageBackend::Postgres { .. } => "postgresql",
    }
}

/// `pg_dump -Fc` of one exported snapshot, so the dump holds exactly the chain whose tip is
/// returned.
async fn pg_dump(url: &str, file: &Path) -> anyhow::Result<Option<aegis_storage::Tip>> {
    let snapshot = aegis_storage::admin::PgSnapshot::begin(url)
        .await
        .context("open a snapshot of the ledger")?;
    let output = tokio::process::Command::new(pg_tool("pg_dump"))
        .args(["--format=custom", "--no-owner", "--no-privileges"])
        .arg(format!("--snapshot={}", snapshot.id))
        .arg("--file")
        .arg(file)
        .arg("--dbname")
        .arg(url)
        .output()
        .await;
    let tip = snapshot.tip;
    snapshot.finish().await;
    let output = output.context("run pg_dump (install postgresql-client)")?;
    if !output.status.success() {
        bail!(
            "pg_dump failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(tip)
}

/// A PostgreSQL client tool: `AEGIS_PG_BIN/<name>` when set, else from `PATH`.
fn pg_tool(name: &str) -> PathBuf {
    match std::env::var_os("AEGIS_PG_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(name),
        _ => PathBuf::from(name),
    }
}

fn prepare_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let mut entries =
            std::fs::read_dir(out).with_context(|| format!("read {}", out.display()))?;
        ensure!(
            entries.next().is_none(),
            "{} is not empty; give a new directory for each backup",
            out.display()
        );
    } else {
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    }
    // The backup holds the node key and the TLS key: private to its owner.
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("set the permissions of {}", out.display()))?;
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("write {}", path.display()))
}

/// Size and sha256 of `dir/relative`.
fn describe(
    dir: &Path,
    relative: &str,
    role: &str,
    source: Option<PathBuf>,
) -> anyhow::Result<ManifestFile> {
    let (bytes, sha256) = hash_file(&dir.join(relative))?;
    Ok(ManifestFile {
        path: relative.to_owned(),
        role: role.to_owned(),
        source,
        bytes,
        sha256,
    })
}

/// Size and sha256 of a regular file of any size, read in chunks.
pub fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let (mut file, _) = aegis_fs::open_regular_file(path, u64::MAX)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("read {}", path.display()))?;
        if read == 0 {
            break;
        }
        total += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Reads and checks a backup's manifest and every file's size and sha256 against it.
pub fn check_backup(dir: &Path, genesis: &Genesis, backend: &str) -> anyhow::Result<Manifest> {
    let path = dir.join("manifest.json");
    let text = aegis_fs::read_regular_file_to_string(&path, MAX_MANIFEST_BYTES)?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an AEGIS backup manifest", path.display()))?;
    ensure!(
        manifest.format == MANIFEST_FORMAT && manifest.format_version == MANIFEST_VERSION,
        "{}: format {:?} version {} is not one this aegis reads ({MANIFEST_FORMAT:?} version {MANIFEST_VERSION})",
        path.display(),
        manifest.format,
        manifest.format_version
    );
    ensure!(
        manifest.chain_id == genesis.chain_id && manifest.genesis_hash == genesis.hash().to_hex(),
        "the backup is of chain {:?} (genesis {}), not this node's chain {:?} (genesis {})",
        manifest.chain_id,
        manifest.genesis_hash,
        genesis.chain_id,
        genesis.hash().to_hex()
    );
    ensure!(
        manifest.backend == backend,
        "the backup holds a {} ledger; this node's storage is {backend}",
        manifest.backend
    );
    ensure!(
        manifest.files.iter().filter(|f| f.role == "ledger").count() == 1,
        "{}: lists no ledger file",
        path.display()
    );
    for file in &manifest.files {
        ensure!(
            !file.path.starts_with('/') && !file.path.split('/').any(|part| part == ".."),
            "{}: file path {:?} leaves the backup directory",
            path.display(),
            file.path
        );
        let (bytes, sha256) = hash_file(&dir.join(&file.path))
            .with_context(|| format!("the backup's {} file", file.role))?;
        ensure!(
            bytes == file.bytes && sha256 == file.sha256,
            "{}: sha256 {sha256} ({bytes} bytes) does not match the manifest's {} ({} bytes): the backup is corrupt",
            dir.join(&file.path).display(),
            file.sha256,
            file.bytes
        );
    }
    Ok(manifest)
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let node = match load_config(&args.config) {
        Ok(node) => node,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Held to the end: the node cannot start meanwhile, and a running one refuses this.
    let _lock = match crate::home_lock::HomeLock::acquire(&node) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("error: refusing to restore: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let genesis =
        crate::preflight::load_genesis(&node.node.genesis_file).map_err(anyhow::Error::msg)?;
    match restore_checked(&node, &genesis, &args.from) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!(
                "error: backup {} refused, nothing of the node was changed: {}",
                args.from.display(),
                crate::render_chain(&error)
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Everything up to and including the swap; an error before the swap leaves the node as it was.
fn restore_checked(node: &NodeConfig, genesis: &Genesis, from: &Path) -> anyhow::Result<()> {
    let manifest = check_backup(from, genesis, backend_kind(&node.storage))?;
    let ledger = manifest
        .files
        .iter()
        .find(|f| f.role == "ledger")
        .map(|f| from.join(&f.path))
        .context("the manifest lists no ledger")?;
    let runtime = runtime()?;
    let stamp = crate::ops::compact_timestamp(SystemTime::now());
    match &node.storage.backend {
        StorageBackend::Sqlite { path } => {
            let parent = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
            let scratch = parent.join(format!(".restore-{stamp}.db"));
            let _ = std::fs::remove_file(&scratch);
            let cleanup = Scratch(scratch.clone());
            std::fs::copy(&ledger, &scratch)
                .with_context(|| format!("copy {} to {}", ledger.display(), scratch.display()))?;
            let (height, tip) = runtime.block_on(verify_ledger(
                &aegis_storage::StoreConfig::sqlite(&scratch),
                genesis,
            ))?;
            check_tip(&manifest, height, tip)?;
            // Checked: swap. The old ledger and its WAL move aside, whole.
            let mut moved = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let old = PathBuf::from(format!("{}{suffix}", path.display()));
                if old.exists() {
                    let aside = PathBuf::from(format!("{}.{stamp}{suffix}", path.display()));
                    std::fs::rename(&old, &aside)
                        .with_context(|| format!("move {} aside", old.display()))?;
                    moved.push(aside);
                }
            }
            std::fs::rename(&scratch, path)
                .with_context(|| format!("move the restored ledger to {}", path.display()))?;
            drop(cleanup);
            for aside in moved {
                println!("Moved the old ledger file aside to {}", aside.display());
            }
        }
        StorageBackend::Postgres { connection_string } => {
            let scratch = aegis_storage::postgres_url_with_database(
                connection_string,
                &format!("aegis_restore_{}", stamp.to_ascii_lowercase()),
            );
            runtime.block_on(async {
                aegis_storage::admin::create_postgres_database(&scratch)
                    .await
                    .context("create a scratch database to check the backup in (the role needs CREATEDB)")?;
                let checked = async {
                    pg_restore(&scratch, &ledger, false).await?;
                    let mut config = aegis_storage::StoreConfig::postgres(scratch.clone());
                    config.pool_size = 2;
                    let (height, tip) = verify_ledger(&config, genesis).await?;
                    check_tip(&manifest, height, tip)
                }
                .await;
                let dropped = aegis_storage::admin::drop_postgres_database(&scratch).await;
                checked?;
                dropped.context("drop the scratch database")?;
                // Checked: one transaction replaces the ledger's tables.
                aegis_storage::admin::create_postgres_database(connection_string)
                    .await
                    .context("create the node's database")?;
                pg_restore(connection_string, &ledger, true).await
            })?;
        }
    }
    println!(
        "Restored chain {:?} at height {} (tip {}) from {}; verified before the swap",
        manifest.chain_id,
        manifest.height,
        manifest.tip_hash.as_deref().unwrap_or("none"),
        from.display()
    );
    if let Some(aside) =
        crate::cmd::reset::move_aside(&node.node.data_dir.join("consensus"), SystemTime::now())?
    {
        println!(
            "Moved the consensus log aside to {} (it belongs to the replaced ledger)",
            aside.display()
        );
    }
    println!(
        "On its next start the node replays the restored chain and fetches the blocks committed \
         since the backup from its peers (block sync)"
    );
    Ok(())
}

/// Removes a scratch SQLite file (unless the swap took it) and the `-wal`/`-shm` files its
/// read-only check may have left (empty: nothing wrote to it).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

async fn verify_ledger(
    config: &aegis_storage::StoreConfig,
    genesis: &Genesis,
) -> anyhow::Result<(u64, Option<String>)> {
    use aegis_storage::Ledger as _;
    let report = aegis_storage::verify(config, genesis)
        .await
        .context("verify the backup's chain")?;
    ensure!(
        report.is_ok(),
        "the backup's chain does not verify: {report}"
    );
    let store = aegis_storage::SqlStore::open_read_only(config)
        .await
        .context("open the backup's ledger")?;
    let tip = store.tip().await;
    store.close().await;
    let tip = tip.context("read the backup's tip")?;
    Ok((tip.map_or(0, |t| t.height), tip.map(|t| t.hash.to_hex())))
}

fn check_tip(manifest: &Manifest, height: u64, tip: Option<String>) -> anyhow::Result<()> {
    ensure!(
        height == manifest.height && tip == manifest.tip_hash,
        "the backup's chain ends at height {height} (tip {}), not at the manifest's height {} (tip {}): mismatched backup",
        tip.as_deref().unwrap_or("none"),
        manifest.height,
        manifest.tip_hash.as_deref().unwrap_or("none")
    );
    Ok(())
}

/// `pg_restore` of `dump` into `url`; `replace`: drop what the dump holds first, all in one
/// transaction.
async fn pg_restore(url: &str, dump: &Path, replace: bool) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new(pg_tool("pg_restore"));
    command.args([
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
    ]);
    if replace {
        command.args(["--clean", "--if-exists"]);
    }
    let output = command
        .arg("--dbname")
        .arg(url)
        .arg(dump)
        .output()
        .await
        .context("run pg_restore (install postgresql-client)")?;
    ensure!(
        output.status.success(),
        "pg_restore failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
