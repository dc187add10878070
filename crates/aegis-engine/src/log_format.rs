//! The consensus log's bytes: a file magic, then frames. The first frame is a snapshot of the
//! core's durable state; each later frame holds the records of one `Effect::Persist`.
//!
//! ```text
//! file   := "AEGISCL1" frame*
//! frame  := len u32 | kind u8 | 0 0 0 | sequence u64 | synced_through u64 | checksum u64 | payload
//!           (little endian; 32 header bytes; payload = borsh(snapshot) or borsh(records))
//! checksum = first 8 bytes of SHA-256(len | kind | sequence | synced_through | payload)
//! ```
//!
//! `synced_through` is the highest sequence number whose frame had been synced to disk when
//! this frame was written. It tells a torn tail from damage: after a crash, frames written
//! since the last sync may be missing or garbled (the disk may have kept any of their pages),
//! and replay stops at the first bad frame. If a *later* frame is intact and says a sequence
//! past the last good frame was already synced, the bad frame was durable once: that is
//! damage, not a crash, and the log is refused rather than silently cut (cutting could make
//! the node forget a vote it sent).

use sha2::{Digest, Sha256};

/// The file's first bytes.
pub const FILE_MAGIC: &[u8; 8] = b"AEGISCL1";
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: usize = 32;
/// Largest payload of one frame: a snapshot of the widest log window of full batches stays
/// far below it; anything larger is damage.
pub const MAX_FRAME_PAYLOAD_BYTES: usize = 1 << 30;

const _: () = assert!(MAX_FRAME_PAYLOAD_BYTES <= u32::MAX as usize);

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Snapshot = 1,
    Records = 2,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Snapshot),
            2 => Some(FrameKind::Records),
            _ => None,
        }
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: FrameKind,
    pub sequence: u64,
    pub synced_through: u64,
    pub payload: &'a [u8],
    /// Where the frame starts in the file.
    pub offset: usize,
}

/// Bytes a frame with `payload_len` bytes of payload takes.
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_BYTES + payload_len
}

/// Appends one frame to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    kind: FrameKind,
    sequence: u64,
    synced_through: u64,
    payload: &[u8],
) {
    debug_assert!(payload.len() <= MAX_FRAME_PAYLOAD_BYTES);
    let len = payload.len() as u32;
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[kind as u8, 0, 0, 0]);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&synced_through.to_le_bytes());
    let checksum = checksum(len, kind as u8, sequence, synced_through, payload);
    out.extend_from_slice(&checksum.to_le_bytes());
    out.extend_from_slice(payload);
    debug_assert_eq!(out.len() - start, frame_len(payload.len()));
}

fn checksum(len: u32, kind: u8, sequence: u64, synced_through: u64, payload: &[u8]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(len.to_le_bytes());
    hasher.update([kind]);
    hasher.update(sequence.to_le_bytes());
    hasher.update(synced_through.to_le_bytes());
    hasher.update(payload);
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The intact frame starting at `offset`, if there is one.
fn frame_at(bytes: &[u8], offset: usize) -> Option<Frame<'_>> {
    let header = bytes.get(offset..offset + FRAME_HEADER_BYTES)?;
    let mut len = [0u8; 4];
    len.copy_from_slice(&header[..4]);
    let len = u32::from_le_bytes(len);
    let kind = FrameKind::from_byte(header[4])?;
    if header[5..8] != [0, 0, 0] || len as usize > MAX_FRAME_PAYLOAD_BYTES {
        return None;
    }
    let sequence = u64_at(header, 8);
    let synced_through = u64_at(header, 16);
    let stored = u64_at(header, 24);
    let start = offset + FRAME_HEADER_BYTES;
    let payload = bytes.get(start..start + len as usize)?;
    (checksum(len, kind as u8, sequence, synced_through, payload) == stored).then_some(Frame {
        kind,
        sequence,
        synced_through,
        payload,
        offset,
    })
}

/// What reading a log's bytes found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan<'a> {
    /// The intact frames from the start, in order.
    pub frames: Vec<Frame<'a>>,
    /// Bytes up to the end of the last intact frame: the file is cut here.
    pub valid_len: usize,
}

/// Why a log's bytes cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("not an AEGIS consensus log (bad file header)")]
    BadMagic,
    #[error("the first frame is not a snapshot")]
    NoSnapshot,
    #[error(
        "damaged frame at byte {offset}: a later intact frame (at byte {witness}) says sequence \
         {synced_through} was synced, past the last intact one ({last_good}); this is damage, \
         not a crash, and cutting the log here could lose promises the node made"
    )]
    DamagedSyncedFrame {
        offset: usize,
        witness: usize,
        synced_through: u64,
        last_good: u64,
    },
    #[error("frame at byte {offset} has sequence {sequence}, not above the previous {previous}")]
    SequenceOrder {
        offset: usize,
        sequence: u64,
        previous: u64,
    },
}

/// Reads a log's bytes: the intact frames from the start, and where a torn tail begins. An
/// empty input is an empty log (no frames).
pub fn scan(bytes: &[u8]) -> Result<Scan<'_>, ScanError> {
    if bytes.is_empty() {
        return Ok(Scan {
            frames: Vec::new(),
            valid_len: 0,
        });
    }
    if bytes.len() < FILE_MAGIC.len() {
        // A crash while the header itself was being written: nothing was ever synced.
        return Ok(Scan {
            frames: Vec::new(),
            valid_len: 0,
        });
    }
    if &bytes[..FILE_MAGIC.len()] != FILE_MAGIC {
        return Err(ScanError::BadMagic);
    }
    let mut frames: Vec<Frame<'_>> = Vec::new();
    let mut offset = FILE_MAGIC.len();
    while let Some(frame) = frame_at(bytes, offset) {
        if frames.is_empty() && frame.kind != FrameKind::Snapshot {
            return Err(ScanError::NoSnapshot);
        }
        if let Some(previous) = frames.last()
            && frame.sequence <= previous.sequence
            && frame.kind == FrameKind::Records
        {
            return Err(ScanError::SequenceOrder {
                offset,
                sequence: frame.sequence,
                previous: previous.sequence,
            });
        }
        offset += frame_len(frame.payload.len());
        frames.push(frame);
    }
    if offset < bytes.len() {
        let last_good = frames.last().map_or(0, |frame| frame.sequence);
        // Anything intact after the first bad frame that says a later sequence was synced
        // proves the bad frame was durable once.
        for witness in offset + 1..bytes.len() {
            if let Some(frame) = frame_at(bytes, witness)
                && frame.synced_through > last_good
            {
                return Err(ScanError::DamagedSyncedFrame {
                    offset,
                    witness,
                    synced_through: frame.synced_through,
                    last_good,
                });
            }
        }
    }
    if frames.is_empty() {
        // The first snapshot itself was torn: the log was never synced.
        return Ok(Scan {
            frames,
            valid_len: 0,
        });
    }
    Ok(Scan {
        frames,
        valid_len: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(frames: &[(FrameKind, u64, u64, &[u8])]) -> Vec<u8> {
        let mut bytes = FILE_MAGIC.to_vec();
        for (kind, sequence, synced, payload) in frames {
            encode_frame(&mut bytes, *kind, *sequence, *synced, payload);
        }
        bytes
    }

    #[test]
    fn frames_round_trip() {
        let bytes = log(&[
            (FrameKind::Snapshot, 0, 0, b"state"),
            (FrameKind::Records, 3, 0, b"r3"),
            (FrameKind::Records, 4, 3, b""),
        ]);
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.valid_len, bytes.len());
        let seen: Vec<_> = scan
            .frames
            .iter()
            .map(|f| (f.kind, f.sequence, f.synced_through, f.payload))
            .collect();
        assert_eq!(
            seen,
            vec![
                (FrameKind::Snapshot, 0, 0, &b"state"[..]),
                (FrameKind::Records, 3, 0, &b"r3"[..]),
                (FrameKind::Records, 4, 3, &b""[..]),
            ]
        );
    }

    #[test]
    fn every_cut_gives_a_prefix_of_the_frames() {
        let bytes = log(&[
            (FrameKind::Snapshot, 0, 0, b"state"),
            (FrameKind::Records, 1, 0, b"one"),
            (FrameKind::Records, 2, 1, b"two"),
        ]);
        let full = scan(&bytes).unwrap().frames.len();
        let mut last = 0;
        for cut in 0..=bytes.len() {
            let scan = scan(&bytes[..cut]).unwrap();
            assert!(
                scan.frames.len() >= last && scan.frames.len() <= full,
                "{cut}"
            );
            assert!(scan.valid_len <= cut);
            last = scan.frames.len();
        }
        assert_eq!(last, full);
    }

    #[test]
    fn a_damaged_frame_that_was_synced_is_refused_but_a_torn_tail_is_cut() {
        let bytes = log(&[
            (FrameKind::Snapshot, 0, 0, b"state"),
            (FrameKind::Records, 1, 0, b"one"),
            (FrameKind::Records, 2, 1, b"two"),
            (FrameKind::Records, 3, 2, b"three"),
        ]);
        let second = scan(&bytes).unwrap().frames[2].offset;
        // Damage in frame 2, with frame 3 (synced through 2) intact after it: refused.
        let mut damaged = bytes.clone();
        damaged[second + FRAME_HEADER_BYTES] ^= 1;
        assert!(matches!(
            scan(&damaged),
            Err(ScanError::DamagedSyncedFrame { last_good: 1, .. })
        ));
        // Damage in the last frame, nothing after it: a torn tail, cut.
        let last = scan(&bytes).unwrap().frames[3].offset;
        let mut torn = bytes.clone();
        torn[last + FRAME_HEADER_BYTES] ^= 1;
        let scan = scan(&torn).unwrap();
        assert_eq!(scan.frames.len(), 3);
        assert_eq!(scan.valid_len, last);
    }

    #[test]
    fn a_foreign_file_and_a_log_without_snapshot_are_refused() {
        assert_eq!(scan(b"NOTALOG!xxxx"), Err(ScanError::BadMagic));
        let bytes = log(&[(FrameKind::Records, 1, 0, b"one")]);
        assert_eq!(scan(&bytes), Err(ScanError::NoSnapshot));
    }
}
