//! The consensus log on disk: `data/consensus/consensus.log` in the format of
//! [`crate::log_format`]. Appends are buffered in memory and written with one `write` and one
//! `fdatasync` per [`ConsensusLog::sync`]; compaction writes the snapshot to
//! `consensus.log.tmp`, syncs it, renames it over the log and syncs the directory, so a crash
//! leaves the old log or the new one. Plain `std::fs`: the driver runs on its own thread.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use aegis_consensus::{DurableState, ReplayError};

use crate::io::{ConsensusLog, IoError};
use crate::log_format::{
    FILE_MAGIC, FrameKind, MAX_FRAME_PAYLOAD_BYTES, ScanError, encode_frame, scan,
};

/// The log's file name inside its directory.
pub const LOG_FILE: &str = "consensus.log";
/// Where a compaction writes before renaming over [`LOG_FILE`].
pub const COMPACTION_FILE: &str = "consensus.log.tmp";
/// Largest log file read at start: far above what compaction lets it grow to.
pub const MAX_LOG_FILE_BYTES: u64 = 4 << 30;

/// Why the log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Damaged {
        path: PathBuf,
        #[source]
        source: ScanError,
    },
    #[error("{path}: {source}")]
    Replay {
        path: PathBuf,
        #[source]
        source: ReplayError,
    },
    #[error("{path}: frame at byte {offset} does not decode: {detail}")]
    Decode {
        path: PathBuf,
        offset: usize,
        detail: String,
    },
    #[error("{path} is {len} bytes, above the limit of {max} bytes")]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("a frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
}

/// What opening the log found, for the start-up log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Intact frames, snapshot included.
    pub frames: usize,
    /// Bytes of a torn tail cut off (written after the last sync when the node stopped).
    pub torn_bytes: u64,
}

/// Bytes and syncs the log wrote since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub written_bytes: u64,
    pub syncs: u64,
    pub compactions: u64,
}

/// The consensus log of durable state `S`.
#[derive(Debug)]
pub struct FileLog<S> {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    buffer: Vec<u8>,
    size_bytes: u64,
    last_sequence: u64,
    synced_sequence: u64,
    stats: LogStats,
    _state: PhantomData<fn() -> S>,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io {
        action,
        path,
        source,
    }
}

impl<S: DurableState> FileLog<S> {
    /// Opens the log in `dir` (created if missing), removes a compaction a crash left half
    /// done, and cuts a torn tail off (durably). Damage that is not a torn tail is an error.
    pub fn open(dir: impl Into<PathBuf>) -> Result<(FileLog<S>, OpenReport), LogError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let leftover = dir.join(COMPACTION_FILE);
        match fs::remove_file(&leftover) {
            Ok(()) => sync_dir(&dir)?,
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => return Err(io("remove", &leftover)(error)),
        }
        let path = dir.join(LOG_FILE);
        let bytes = read_bounded(&path)?.unwrap_or_default();
        let found = scan(&bytes).map_err(|source| LogError::Damaged {
            path: path.clone(),
            source,
        })?;
        let report = OpenReport {
            frames: found.frames.len(),
            torn_bytes: (bytes.len() - found.valid_len) as u64,
        };
        let last_sequence = found.frames.last().map_or(0, |frame| frame.sequence);
        let valid_len = found.valid_len as u64;
        let mut log = FileLog {
            dir,
            path,
            file: None,
            buffer: Vec::new(),
            size_bytes: valid_len,
            last_sequence,
            synced_sequence: last_sequence,
            stats: LogStats::default(),
            _state: PhantomData,
        };
        if valid_len > 0 {
            let file = OpenOptions::new()
                .write(true)
                .open(&log.path)
                .map_err(io("open", &log.path))?;
            if report.torn_bytes > 0 {
                file.set_len(valid_len)
                    .map_err(io("cut the torn tail of", &log.path))?;
                file.sync_all().map_err(io("sync", &log.path))?;
            }
            log.file = Some(file);
        } else if !bytes.is_empty() {
            // Only a torn first snapshot: the log was never synced; start it afresh.
            fs::remove_file(&log.path).map_err(io("remove", &log.path))?;
            sync_dir(&log.dir)?;
        }
        Ok((log, report))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> LogStats {
        self.stats
    }

    /// Reads the log and replays it: the snapshot, then every record frame in order.
    pub fn replay(&self) -> Result<Option<S>, LogError> {
        let Some(bytes) = read_bounded(&self.path)? else {
            return Ok(None);
        };
        let found = scan(&bytes).map_err(|source| LogError::Damaged {
            path: self.path.clone(),
            source,
        })?;
        let mut state: Option<S> = None;
        for frame in &found.frames {
            let decode_error = |error: std::io::Error| LogError::Decode {
                path: self.path.clone(),
                offset: frame.offset,
                detail: error.to_string(),
            };
            match (frame.kind, state.as_mut()) {
                (FrameKind::Snapshot, _) => {
                    state = Some(borsh::from_slice(frame.payload).map_err(decode_error)?);
                }
                (FrameKind::Records, Some(state)) => {
                    let records: Vec<S::Record> =
                        borsh::from_slice(frame.payload).map_err(decode_error)?;
                    state
                        .apply(frame.sequence, &records)
                        .map_err(|source| LogError::Replay {
                            path: self.path.clone(),
                            source,
                        })?;
                }
                (FrameKind::Records, None) => {
                    return Err(LogError::Damaged {
                        path: self.path.clone(),
                        source: ScanError::NoSnapshot,
                    });
                }
            }
        }
        Ok(state)
    }

    fn write_durably(&mut self) -> Result<(), LogError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let file = match self.file.as_mut() {
            Some(file) => file,
            None => {
                return Err(LogError::Io {
                    action: "append to",
                    path: self.path.clone(),
                    source: std::io::Error::new(
                        ErrorKind::NotFound,
                        "the log has no snapshot yet (compact first)",
                    ),
                });
            }
        };
        file.seek(SeekFrom::Start(self.size_bytes))
            .map_err(io("seek in", &self.path))?;
        file.write_all(&self.buffer)
            .map_err(io("write", &self.path))?;
        file.sync_data().map_err(io("sync", &self.path))?;
        self.size_bytes += self.buffer.len() as u64;
        self.stats.written_bytes += self.buffer.len() as u64;
        self.stats.syncs += 1;
        self.buffer.clear();
        self.synced_sequence = self.last_sequence;
        Ok(())
    }

    fn write_snapshot(&mut self, snapshot: &S) -> Result<(), LogError> {
        let payload = borsh::to_vec(snapshot).map_err(|error| LogError::Decode {
            path: self.path.clone(),
            offset: 0,
            detail: error.to_string(),
        })?;
        if payload.len() > MAX_FRAME_PAYLOAD_BYTES {
            return Err(LogError::FrameTooLarge {
                len: payload.len(),
                max: MAX_FRAME_PAYLOAD_BYTES,
            });
        }
        let mut bytes = FILE_MAGIC.to_vec();
        // Everything appended so far is in the snapshot, and the snapshot is synced below.
        encode_frame(
            &mut bytes,
            FrameKind::Snapshot,
            self.last_sequence,
            self.last_sequence,
            &payload,
        );
        let tmp = self.dir.join(COMPACTION_FILE);
        {
            let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
            file.write_all(&bytes).map_err(io("write", &tmp))?;
            file.sync_all().map_err(io("sync", &tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(io("rename into place", &self.path))?;
        sync_dir(&self.dir)?;
        self.file = Some(
            OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(io("open", &self.path))?,
        );
        self.size_bytes = bytes.len() as u64;
        self.stats.written_bytes += bytes.len() as u64;
        self.stats.syncs += 3;
        self.stats.compactions += 1;
        self.buffer.clear();
        self.synced_sequence = self.last_sequence;
        Ok(())
    }
}

impl<S: DurableState> ConsensusLog<S> for FileLog<S> {
    fn append(&mut self, sequence: u64, records: Vec<S::Record>) -> Result<(), IoError> {
        let payload = borsh::to_vec(&records)?;
        if payload.len() > MAX_FRAME_PAYLOAD_BYTES {
            return Err(Box::new(LogError::FrameTooLarge {
                len: payload.len(),
                max: MAX_FRAME_PAYLOAD_BYTES,
            }));
        }
        encode_frame(
            &mut self.buffer,
            FrameKind::Records,
            sequence,
            self.synced_sequence,
            &payload,
        );
        self.last_sequence = sequence;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), IoError> {
        Ok(self.write_durably()?)
    }

    fn compact(&mut self, snapshot: &S) -> Result<(), IoError> {
        Ok(self.write_snapshot(snapshot)?)
    }

    fn load(&mut self) -> Result<Option<S>, IoError> {
        Ok(self.replay()?)
    }

    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn unsynced_bytes(&self) -> u64 {
        self.buffer.len() as u64
    }
}

/// The whole file, refusing anything but a regular file of at most [`MAX_LOG_FILE_BYTES`].
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io("open", path)(error)),
    };
    let metadata = file.metadata().map_err(io("inspect", path))?;
    if !metadata.is_file() {
        return Err(LogError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if metadata.len() > MAX_LOG_FILE_BYTES {
        return Err(LogError::TooLarge {
            path: path.to_path_buf(),
            len: metadata.len(),
            max: MAX_LOG_FILE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_LOG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io("read", path))?;
    Ok(Some(bytes))
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}
