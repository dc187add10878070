//! Bounded reads of the files a node or its tools are told to read.
//!
//! A path in a configuration file, an environment variable or on the command line may name
//! anything: `/dev/zero`, a FIFO, a directory, a 50 GB log by mistake. Every read of such a
//! file goes through [`read_regular_file`], which
//!
//! - opens it without blocking (a FIFO with no writer would otherwise hang the open),
//! - requires a regular file (symlinks are followed: certbot's `live/` links are fine, a
//!   link to `/dev/zero` is not), checked on the open descriptor, not on the path,
//! - refuses a file larger than the caller's named bound before reading a byte of it, with
//!   its real size in the message, and never reads more than the bound plus one byte even
//!   if the file grows meanwhile.
//!
//! Each caller names its bound next to what it reads (`MAX_CONFIG_FILE_BYTES`,
//! `MAX_KEY_FILE_BYTES`, `MAX_TLS_FILE_BYTES`, ...).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a bounded read failed. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read (missing, permission denied, I/O error).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path names a device, FIFO, socket or directory.
    #[error("cannot read {}: not a regular file (it is {kind})", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// The file is larger than the caller's bound; nothing of it was read.
    #[error("cannot read {}: the file is {len} bytes, larger than the limit of {max} bytes", path.display())]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    /// The file is not UTF-8 text ([`read_regular_file_to_string`]).
    #[error("cannot read {}: not UTF-8 text (invalid byte at offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
}

impl ReadError {
    /// Whether the file does not exist (callers for which a missing file is normal).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == ErrorKind::NotFound)
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::NotUtf8 { path, .. } => path,
        }
    }

    /// The message without the leading `cannot read <path>: `, for callers whose own
    /// message already names the file.
    pub fn reason(&self) -> String {
        match self {
            ReadError::Io { source, .. } => source.to_string(),
            ReadError::NotRegular { kind, .. } => format!("not a regular file (it is {kind})"),
            ReadError::TooLarge { len, max, .. } => {
                format!("the file is {len} bytes, larger than the limit of {max} bytes")
            }
            ReadError::NotUtf8 { offset, .. } => {
                format!("not UTF-8 text (invalid byte at offset {offset})")
            }
        }
    }

    /// As an `std::io::Error` (kind `InvalidData` unless it came from the system), for
    /// callers whose error types hold one.
    pub fn into_io(self) -> std::io::Error {
        match self {
            ReadError::Io { source, .. } => source,
            other => std::io::Error::new(ErrorKind::InvalidData, other.reason()),
        }
    }
}

/// What a non-regular file is, for messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading, requiring a regular file of at most `max_bytes`, and returns
/// it with its length.
pub fn open_regular_file(path: &Path, max_bytes: u64) -> Result<(File, u64), ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(metadata.file_type()),
        });
    }
    if metadata.len() > max_bytes {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            len: metadata.len(),
            max: max_bytes,
        });
    }
    Ok((file, metadata.len()))
}

/// The whole of `path`, a regular file of at most `max_bytes` bytes.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let (file, len) = open_regular_file(path, max_bytes)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // One byte past the bound is enough to notice a file that grew since it was checked.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

/// [`read_regular_file`] as UTF-8 text.
pub fn read_regular_file_to_string(path: &Path, max_bytes: u64) -> Result<String, ReadError> {
    let bytes = read_regular_file(path, max_bytes)?;
    String::from_utf8(bytes).map_err(|error| ReadError::NotUtf8 {
        path: path.to_path_buf(),
        offset: error.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn reads_a_regular_file_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read_regular_file(&path, 5).unwrap(), b"hello");
        assert_eq!(read_regular_file_to_string(&path, 64).unwrap(), "hello");
    }

    #[test]
    fn a_larger_file_is_refused_with_its_real_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'a'; 5000]).unwrap();
        let error = read_regular_file(&path, 1024).unwrap_err();
        assert!(matches!(
            error,
            ReadError::TooLarge {
                len: 5000,
                max: 1024,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read {}: the file is 5000 bytes, larger than the limit of 1024 bytes",
                path.display()
            )
        );
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let error = read_regular_file(&zero, 1 << 20).unwrap_err();
        assert_eq!(
            error.reason(),
            "not a regular file (it is a character device)"
        );
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO without a writer would block; here it is refused.
        let error = read_regular_file(&fifo, 1 << 20).unwrap_err();
        assert_eq!(error.reason(), "not a regular file (it is a FIFO)");
        let error = read_regular_file(dir.path(), 1 << 20).unwrap_err();
        assert_eq!(error.reason(), "not a regular file (it is a directory)");
    }

    #[test]
    fn missing_files_and_bad_text_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_regular_file(&dir.path().join("nope"), 10).unwrap_err();
        assert!(missing.is_not_found());
        let path = dir.path().join("bin");
        std::fs::write(&path, [b'o', b'k', 0xff]).unwrap();
        let error = read_regular_file_to_string(&path, 10).unwrap_err();
        assert!(
            matches!(error, ReadError::NotUtf8 { offset: 2, .. }),
            "{error}"
        );
        assert_eq!(error.path(), path);
    }
}
