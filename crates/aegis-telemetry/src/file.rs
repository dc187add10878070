//! [`LogFile`]: an append-only log file whose handle can be swapped after logrotate.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

use crate::TelemetryError;

/// An append-only log file that can be reopened at the same path.
///
/// `logrotate` renames `aegis.log` to `aegis.log.1` and then sends SIGHUP; until the node
/// reopens, it keeps writing into the renamed file. [`LogFile::reopen`] opens the path again
/// (creating a fresh file) and swaps the handle, so the next line lands in the new file.
///
/// Cloning is cheap and every clone shares the same handle: hand one clone to the logging
/// layer and another to whatever calls `reopen` (see [`crate::reopen_on_sighup`]).
///
/// Each [`io::Write::write`] call on the writer returned by [`MakeWriter::make_writer`]
/// writes its whole buffer under one lock, so a caller that formats a complete line first
/// and writes it once never sees its line interleaved with another thread's line, and a
/// concurrent `reopen` never splits a line between the old and the new file.
#[derive(Debug, Clone)]
pub struct LogFile {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: Mutex<File>,
    write_errors: AtomicU64,
}

impl LogFile {
    /// Opens `path` for appending, creating the file and its parent directories if missing.
    ///
    /// # Errors
    ///
    /// [`TelemetryError::OpenLogFile`] naming the path, e.g.
    /// `cannot open log file /var/log/aegis/aegis.log: Permission denied (os error 13)`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TelemetryError> {
        let path = path.into();
        let file = open_append(&path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                file: Mutex::new(file),
                write_errors: AtomicU64::new(0),
            }),
        })
    }

    /// The path this log file was opened at.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Opens the path again and makes every clone write to the new handle.
    ///
    /// Lines written before the call stay in the old file (which may have been renamed);
    /// lines written after it go to the file now at [`LogFile::path`].
    ///
    /// # Errors
    ///
    /// [`TelemetryError::OpenLogFile`] if the path cannot be opened; the old handle is kept,
    /// so logging continues into the previous file rather than stopping.
    pub fn reopen(&self) -> Result<(), TelemetryError> {
        // Open outside the lock so writers are blocked only for the swap itself.
        let fresh = open_append(&self.inner.path)?;
        let old = std::mem::replace(&mut *self.lock(), fresh);
        drop(old);
        Ok(())
    }

    /// Writes `bytes` as one unit: no other write or reopen can come between its parts.
    ///
    /// # Errors
    ///
    /// The I/O error from the underlying file (also counted in [`LogFile::write_errors`]).
    pub fn write_record(&self, bytes: &[u8]) -> io::Result<()> {
        let result = self.lock().write_all(bytes);
        if result.is_err() {
            self.inner.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// How many writes have failed since the file was opened (e.g. disk full).
    ///
    /// A logger cannot log its own failures, so they are counted here for a health check.
    pub fn write_errors(&self) -> u64 {
        self.inner.write_errors.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        // A panic while holding the lock cannot leave a `File` in a broken state, so a
        // poisoned lock is still safe to use.
        self.inner
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn open_append(path: &Path) -> Result<File, TelemetryError> {
    let error = |source| TelemetryError::OpenLogFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(error)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(error)
}

/// The writer [`LogFile`] hands to tracing layers; see [`LogFile`] for its guarantees.
#[derive(Debug)]
pub struct LogFileWriter<'a> {
    file: &'a LogFile,
}

impl Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_record(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Writes go straight to the file descriptor; there is no user-space buffer.
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter { file: self }
    }
}
