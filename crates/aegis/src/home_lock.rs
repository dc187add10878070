//! One process per node home: an advisory lock on `<node.data_dir>/aegis.lock`, taken by
//! `aegis run` and every command that writes the home (`aegis db migrate`), and held for
//! the process's life (docs/adr/0010-home-lock.md).
//!
//! The lock is `flock(2)` through `std::fs::File::try_lock`: the kernel releases it when
//! the process exits, however it exits, so a crash never leaves a stale lock behind. The
//! file holds the holder's pid so that the refused process can name it. A second process
//! opens the file without truncating it and writes nothing before it holds the lock: the
//! first one's files and log stay untouched.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aegis_config::NodeConfig;

/// The lock file's name inside `node.data_dir`.
pub const LOCK_FILE_NAME: &str = "aegis.lock";
/// Most bytes of the lock file read for the holder's pid (a pid and a newline).
const MAX_LOCK_FILE_BYTES: u64 = 64;

/// The lock on a node home; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
}

/// Why the home could not be locked.
#[derive(Debug)]
pub enum HomeLockError {
    /// Another process holds the lock.
    Held {
        path: PathBuf,
        home: PathBuf,
        pid: Option<u32>,
    },
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for HomeLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HomeLockError::Held { path, home, pid } => {
                let holder = match pid {
                    Some(pid) => format!("another aegis process (pid {pid})"),
                    None => "another aegis process (pid not recorded)".to_owned(),
                };
                write!(
                    f,
                    "{holder} is running on the node home {}: it holds the lock {}; stop it first, \
                     or give this command another home (two processes on one home would share \
                     its ledger, consensus state, validator key and log)",
                    home.display(),
                    path.display()
                )
            }
            HomeLockError::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for HomeLockError {}

impl HomeLock {
    /// Locks the home of `config`, creating `node.data_dir` if needed.
    pub fn acquire(config: &NodeConfig) -> Result<HomeLock, HomeLockError> {
        let dir = &config.node.data_dir;
        let path = dir.join(LOCK_FILE_NAME);
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| HomeLockError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("create the data directory", dir))?;
        // No truncation: if another process holds the lock, its pid must stay readable.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io("open the lock file", &path))?;
        let metadata = file
            .metadata()
            .map_err(io("inspect the lock file", &path))?;
        if !metadata.is_file() {
            return Err(HomeLockError::Io {
                action: "use the lock file",
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(HomeLockError::Held {
                    pid: holder_pid(&mut file),
                    path,
                    home: config.home.clone(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(HomeLockError::Io {
                    action: "lock",
                    path,
                    source,
                });
            }
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .map_err(io("write the pid to the lock file", &path))?;
        Ok(HomeLock { _file: file })
    }
}

/// The pid the holder wrote, if it did (it writes it right after locking).
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(MAX_LOCK_FILE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}
