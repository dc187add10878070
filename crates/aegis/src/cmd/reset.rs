//! `aegis reset p2p|consensus --config FILE`: the guide's `rm -rf data/p2p/*` and
//! `rm -rf data/consensus/*`, made safe.
//!
//! - Refused while the node runs: the command takes the home's lock
//!   ([`crate::home_lock`]) and a running node's pid is named.
//! - Nothing is deleted: the directory is moved aside as `<dir>.<UTC timestamp>` (in the
//!   same data directory, so on the same file system: one rename) and an empty one made in
//!   its place, with the same permissions.
//! - It says what the node will do on its next start.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;

/// Most `<dir>.<timestamp>-N` names tried when several resets happen within one second.
const MAX_ASIDE_SUFFIX: u32 = 100;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to reset: `p2p` (known peers, data/p2p) or `consensus` (the consensus log,
    /// data/consensus).
    #[arg(value_parser = ["p2p", "consensus"])]
    pub what: String,
    /// The node's configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let node = match crate::cmd::db::load_config(&args.config) {
        Ok(node) => node,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Held until the end: the node cannot start meanwhile, and a running one refuses this.
    let _lock = match crate::home_lock::HomeLock::acquire(&node) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("error: refusing to reset {}: {error}", args.what);
            return Ok(ExitCode::FAILURE);
        }
    };
    let dir = node.node.data_dir.join(&args.what);
    match move_aside(&dir, SystemTime::now())? {
        None => println!("{} is empty or absent: nothing to reset", dir.display()),
        Some(aside) => println!(
            "Moved {} aside to {} (delete it once the node is back)",
            dir.display(),
            aside.display()
        ),
    }
    if args.what == "p2p" {
        println!(
            "On its next start the node re-learns its peers from p2p.bootstrap_nodes ({} addresses) \
             and from peer exchange, and writes a new {}",
            node.p2p.bootstrap_nodes.len(),
            dir.join("peers.json").display()
        );
    } else {
        let store = crate::cmd::db::store_config(&node);
        let height = crate::cmd::db::runtime()?.block_on(async {
            use aegis_storage::Ledger as _;
            let opened = aegis_storage::SqlStore::open_read_only(&store).await?;
            let height = opened.height().await;
            opened.close().await;
            height
        });
        let ledger = match height {
            Ok(height) => format!("its ledger (height {height})"),
            Err(_) => "its ledger".to_owned(),
        };
        println!(
            "On its next start the node starts consensus from {ledger}: it replays the stored \
             blocks, then fetches newer ones with their commit certificates from its peers (block \
             sync) and follows the network from there"
        );
        println!(
            "It knows from its ledger that it voted before, so it sends no consensus message \
             until its ledger is past every slot it could have signed (the vote fence, \
             docs/adr/0013-recovery-and-vote-fence.md): the log says `Vote fence lifted at \
             height H` when it votes again"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Renames `dir` to `<dir>.<timestamp>` and makes a new empty `dir` with the same
/// permissions. `None` when `dir` is absent or empty (nothing is moved; an absent one is
/// created).
pub fn move_aside(dir: &Path, now: SystemTime) -> anyhow::Result<Option<PathBuf>> {
    let metadata = match std::fs::symlink_metadata(dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            return Ok(None);
        }
        Err(error) => return Err(error).with_context(|| format!("inspect {}", dir.display())),
    };
    if !metadata.is_dir() {
        anyhow::bail!("{} is not a directory; move it away by hand", dir.display());
    }
    let empty = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .next()
        .is_none();
    if empty {
        return Ok(None);
    }
    let stamp = crate::ops::compact_timestamp(now);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut aside = dir.with_file_name(format!("{name}.{stamp}"));
    let mut suffix = 1;
    while aside.exists() {
        anyhow::ensure!(
            suffix <= MAX_ASIDE_SUFFIX,
            "too many {name}.{stamp}-N directories beside {}",
            dir.display()
        );
        aside = dir.with_file_name(format!("{name}.{stamp}-{suffix}"));
        suffix += 1;
    }
    std::fs::rename(dir, &aside)
        .with_context(|| format!("move {} to {}", dir.display(), aside.display()))?;
    std::fs::create_dir(dir).with_context(|| format!("create a new {}", dir.display()))?;
    let mode = metadata.permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("set the permissions of {}", dir.display()))?;
    Ok(Some(aside))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_directory_is_moved_aside_and_an_empty_one_left_in_its_place() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("consensus");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.join("consensus.log"), "state").unwrap();
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_822_200);
        let aside = move_aside(&dir, now).unwrap().unwrap();
        assert_eq!(aside, home.path().join("consensus.20261127T233000Z"));
        assert_eq!(
            std::fs::read_to_string(aside.join("consensus.log")).unwrap(),
            "state"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Empty: nothing moved. Again within the same second: a suffix.
        assert_eq!(move_aside(&dir, now).unwrap(), None);
        std::fs::write(dir.join("consensus.log"), "again").unwrap();
        let second = move_aside(&dir, now).unwrap().unwrap();
        assert_eq!(second, home.path().join("consensus.20261127T233000Z-1"));
        // Absent: created.
        let p2p = home.path().join("p2p");
        assert_eq!(move_aside(&p2p, now).unwrap(), None);
        assert!(p2p.is_dir());
    }
}
