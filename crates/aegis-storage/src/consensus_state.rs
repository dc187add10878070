//! Consensus state files under `data/consensus/`: named opaque blobs, each replaced
//! atomically (temporary file, fsync, rename, fsync of the directory) and guarded by a
//! checksum so a damaged file is reported, never silently used.
//!
//! File layout: `AEGISCS1` (8 bytes) || payload length (u64 LE) || SHA-256(payload) || payload.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::StorageError;
use crate::traits::{ConsensusStateStore, StoreFuture};

const MAGIC: &[u8; 8] = b"AEGISCS1";
const HEADER_LEN: usize = 8 + 8 + 32;
const MAX_NAME_LEN: usize = 128;
/// Suffix of in-progress writes; leftovers from a crash are ignored and removed.
const TMP_SUFFIX: &str = ".tmp";

/// Consensus state kept as files in one directory (`$AEGIS_HOME/data/consensus`).
#[derive(Clone, Debug)]
pub struct FileConsensusState {
    dir: PathBuf,
}

impl FileConsensusState {
    /// Uses `dir`, creating it if missing, and removes temporary files a crash left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileConsensusState, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let entries = fs::read_dir(&dir).map_err(io("read directory", &dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(FileConsensusState { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Blocking form of [`ConsensusStateStore::save_state`].
    pub fn save_blocking(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        check_name(name)?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}{TMP_SUFFIX}"));
        let mut contents = Vec::with_capacity(HEADER_LEN + bytes.len());
        contents.extend_from_slice(MAGIC);
        contents.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        contents.extend_from_slice(&Sha256::digest(bytes));
        contents.extend_from_slice(bytes);
        {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io("create", &tmp))?;
            file.write_all(&contents).map_err(io("write", &tmp))?;
            file.sync_all().map_err(io("sync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io("rename into place", &path))?;
        sync_dir(&self.dir)
    }

    /// Blocking form of [`ConsensusStateStore::load_state`].
    pub fn load_blocking(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        check_name(name)?;
        let path = self.dir.join(name);
        let contents = match fs::read(&path) {
            Ok(contents) => contents,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io("read", &path)(error)),
        };
        let corrupt = |detail: String| StorageError::CorruptFile {
            path: path.clone(),
            detail,
        };
        if contents.len() < HEADER_LEN || &contents[..8] != MAGIC {
            return Err(corrupt(
                "not an AEGIS consensus state file (bad header)".into(),
            ));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&contents[8..16]);
        let len = u64::from_le_bytes(len_bytes);
        let payload = &contents[HEADER_LEN..];
        if payload.len() as u64 != len {
            return Err(corrupt(format!(
                "truncated: header says {len} bytes, file holds {}",
                payload.len()
            )));
        }
        if Sha256::digest(payload).as_slice() != &contents[16..48] {
            return Err(corrupt("checksum mismatch".into()));
        }
        Ok(Some(payload.to_vec()))
    }

    /// Blocking form of [`ConsensusStateStore::remove_state`].
    pub fn remove_blocking(&self, name: &str) -> Result<(), StorageError> {
        check_name(name)?;
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(io("remove", &path)(error)),
        }
    }

    /// Blocking form of [`ConsensusStateStore::state_names`].
    pub fn names_blocking(&self) -> Result<Vec<String>, StorageError> {
        let entries = fs::read_dir(&self.dir).map_err(io("read directory", &self.dir))?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| check_name(name).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

fn check_name(name: &str) -> Result<(), StorageError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName(name.to_owned()))
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io {
        action,
        path,
        source,
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|error| StorageError::Task(error.to_string()))?
}

impl ConsensusStateStore for FileConsensusState {
    fn save_state<'a>(&'a self, name: &'a str, bytes: &'a [u8]) -> StoreFuture<'a, ()> {
        let this = self.clone();
        let (name, bytes) = (name.to_owned(), bytes.to_vec());
        Box::pin(blocking(move || this.save_blocking(&name, &bytes)))
    }

    fn load_state<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let this = self.clone();
        let name = name.to_owned();
        Box::pin(blocking(move || this.load_blocking(&name)))
    }

    fn remove_state<'a>(&'a self, name: &'a str) -> StoreFuture<'a, ()> {
        let this = self.clone();
        let name = name.to_owned();
        Box::pin(blocking(move || this.remove_blocking(&name)))
    }

    fn state_names(&self) -> StoreFuture<'_, Vec<String>> {
        let this = self.clone();
        Box::pin(blocking(move || this.names_blocking()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_replace_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let state = FileConsensusState::open(dir.path().join("consensus")).unwrap();
        assert_eq!(state.load_blocking("view").unwrap(), None);
        state.save_blocking("view", b"one").unwrap();
        state.save_blocking("view", b"two").unwrap();
        state.save_blocking("log-000001", b"").unwrap();
        assert_eq!(
            state.load_blocking("view").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(
            state.load_blocking("log-000001").unwrap().as_deref(),
            Some(&b""[..])
        );
        assert_eq!(state.names_blocking().unwrap(), vec!["log-000001", "view"]);
        state.remove_blocking("view").unwrap();
        state.remove_blocking("view").unwrap();
        assert_eq!(state.load_blocking("view").unwrap(), None);
    }

    #[test]
    fn damaged_file_is_reported_with_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let state = FileConsensusState::open(dir.path()).unwrap();
        state.save_blocking("view", b"important state").unwrap();
        let path = dir.path().join("view");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let error = state.load_blocking("view").unwrap_err().to_string();
        assert!(
            error.contains("corrupt") && error.contains("checksum"),
            "{error}"
        );
        fs::write(&path, &bytes[..20]).unwrap();
        assert!(
            state
                .load_blocking("view")
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
    }

    #[test]
    fn names_cannot_escape_the_directory_and_leftover_temp_files_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".view.tmp"), b"half written").unwrap();
        let state = FileConsensusState::open(dir.path()).unwrap();
        assert!(!dir.path().join(".view.tmp").exists());
        for bad in ["", "../x", "a/b", ".hidden", "x y"] {
            assert!(
                matches!(
                    state.save_blocking(bad, b"x"),
                    Err(StorageError::InvalidName(_))
                ),
                "{bad}"
            );
        }
    }
}
