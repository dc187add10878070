//! The wire format: length-prefixed frames holding a versioned envelope of one or more
//! records (docs/p2p.md, "Wire format").
//!
//! ```text
//! frame    = length:u32be envelope            ; length <= max_frame_size
//! envelope = version:u8 flags:u8 body
//! body     = records                          ; flags bit 0 clear
//!          | raw_length:u32be lz4_block       ; flags bit 0 set, raw_length <= max_frame_size
//! records  = 1*( kind:u8 tag:u8 length:u32be bytes )
//! ```
//!
//! Several small messages travel in one frame (batching); compression, when on, applies to
//! the whole body. Everything read from the network is checked against a named bound before
//! anything is allocated for it, and every failure is an error value, never a panic.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Version of the envelope. A peer sending another version is disconnected.
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes of the frame length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes before the body: version and flags.
pub const ENVELOPE_HEADER_BYTES: usize = 2;
/// Bytes before each record's payload: kind, tag, length.
pub const RECORD_HEADER_BYTES: usize = 6;
/// Smallest `max_frame_size` accepted: room for a Hello and some margin.
pub const MIN_MAX_FRAME_SIZE: usize = 4096;
/// Bound on the frames exchanged before authentication (the Hello), whatever
/// `max_frame_size` is, so an unauthenticated peer cannot make us buffer much.
pub const HANDSHAKE_MAX_FRAME_SIZE: usize = 4096;

const FLAG_COMPRESSED: u8 = 0b0000_0001;
const KNOWN_FLAGS: u8 = FLAG_COMPRESSED;

/// What a record carries. Values are part of the protocol: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// The authentication message, first and only record of the first frame.
    Hello = 0,
    /// Liveness probe; payload is an 8-byte nonce.
    Ping = 1,
    /// Answer to a ping; payload echoes the nonce.
    Pong = 2,
    /// Application message for the engine; the tag says which kind, for metrics.
    Data = 3,
    /// Peer exchange: the validators' addresses the sender knows.
    Peers = 4,
}

impl RecordKind {
    fn from_u8(value: u8) -> Option<RecordKind> {
        Some(match value {
            0 => RecordKind::Hello,
            1 => RecordKind::Ping,
            2 => RecordKind::Pong,
            3 => RecordKind::Data,
            4 => RecordKind::Peers,
            _ => return None,
        })
    }

    /// Label for the `type` of `aegis_p2p_messages_total`.
    pub fn label(self) -> &'static str {
        match self {
            RecordKind::Hello => "hello",
            RecordKind::Ping => "ping",
            RecordKind::Pong => "pong",
            RecordKind::Data => "data",
            RecordKind::Peers => "peers",
        }
    }
}

/// One decoded record. `payload` shares the frame's buffer (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub tag: u8,
    pub payload: Bytes,
}

/// Why a frame was refused. Each is a protocol violation by the peer (or a dead link), and
/// the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed in the middle of a frame (truncated frame)")]
    Truncated,
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    Oversized { size: usize, max: usize },
    #[error("empty frame")]
    Empty,
    #[error("unsupported envelope version {0}")]
    Version(u8),
    #[error("unknown envelope flags {0:#04x}")]
    Flags(u8),
    #[error("malformed compressed body: {0}")]
    Compression(String),
    #[error("malformed record at byte {offset}: {reason}")]
    Record { offset: usize, reason: &'static str },
    #[error("unknown record kind {0}")]
    Kind(u8),
    #[error(
        "frame stalled: {received} of {size} bytes received, then nothing for {stall_timeout:?}"
    )]
    Stalled {
        received: usize,
        size: usize,
        stall_timeout: Duration,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Most bytes the frame buffer grows by before they have arrived: a frame's buffer holds
/// at most what was received plus this much (or plus as much again as was received, when
/// that is more), so a peer announcing a large frame and sending nothing costs nothing.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
///
/// The length is checked against `max_frame_size` before the buffer grows, and the buffer
/// then grows with the bytes that actually arrive ([`READ_CHUNK_BYTES`] at a time, or
/// doubling), never to the announced length at once. Between frames the peer may stay
/// silent as long as it likes; once a frame has begun (its first length byte arrived),
/// every further read must bring data within `stall_timeout`, or the frame is refused
/// as [`FrameError::Stalled`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    max_frame_size: usize,
    stall_timeout: Duration,
) -> Result<Option<Bytes>, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    let mut filled = 0;
    while filled < LENGTH_PREFIX_BYTES {
        let read = reader.read(&mut prefix[filled..]);
        let n = if filled == 0 {
            read.await?
        } else {
            stalled_after(stall_timeout, filled, LENGTH_PREFIX_BYTES, read).await?
        };
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let size = u32::from_be_bytes(prefix) as usize;
    if size > max_frame_size {
        return Err(FrameError::Oversized {
            size,
            max: max_frame_size,
        });
    }
    if size < ENVELOPE_HEADER_BYTES {
        return Err(FrameError::Empty);
    }
    buffer.clear();
    while buffer.len() < size {
        let missing = size - buffer.len();
        if buffer.capacity() == buffer.len() {
            buffer.reserve(missing.min(READ_CHUNK_BYTES.max(buffer.len())));
        }
        let want = (buffer.capacity() - buffer.len()).min(missing);
        let received = buffer.len();
        let mut limited = (&mut *reader).take(want as u64);
        let n = stalled_after(stall_timeout, received, size, limited.read_buf(buffer)).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
        debug_assert!(buffer.len() <= size, "read past the frame");
    }
    debug_assert_eq!(buffer.len(), size);
    Ok(Some(buffer.split().freeze()))
}

/// One read of a frame already begun: [`FrameError::Stalled`] if it brings nothing within
/// `stall_timeout`.
async fn stalled_after(
    stall_timeout: Duration,
    received: usize,
    size: usize,
    read: impl std::future::Future<Output = std::io::Result<usize>>,
) -> Result<usize, FrameError> {
    match tokio::time::timeout(stall_timeout, read).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(FrameError::Truncated)
        }
        Ok(Err(error)) => Err(FrameError::Io(error)),
        Err(_) => Err(FrameError::Stalled {
            received,
            size,
            stall_timeout,
        }),
    }
}

/// Decodes a frame (without its length prefix) into records.
pub fn decode_frame(frame: Bytes, max_frame_size: usize) -> Result<Vec<Record>, FrameError> {
    let (&version, rest) = frame.split_first().ok_or(FrameError::Empty)?;
    if version != ENVELOPE_VERSION {
        return Err(FrameError::Version(version));
    }
    let (&flags, _) = rest.split_first().ok_or(FrameError::Empty)?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FrameError::Flags(flags));
    }
    let body = frame.slice(ENVELOPE_HEADER_BYTES..);
    let body = if flags & FLAG_COMPRESSED != 0 {
        decompress(&body, max_frame_size)?
    } else {
        body
    };
    decode_records(body)
}

fn decompress(body: &[u8], max_frame_size: usize) -> Result<Bytes, FrameError> {
    let Some((raw_len, block)) = body.split_first_chunk::<4>() else {
        return Err(FrameError::Compression("missing raw length".into()));
    };
    let raw_len = u32::from_be_bytes(*raw_len) as usize;
    if raw_len > max_frame_size {
        return Err(FrameError::Oversized {
            size: raw_len,
            max: max_frame_size,
        });
    }
    let mut out = vec![0u8; raw_len];
    let written = lz4_flex::block::decompress_into(block, &mut out)
        .map_err(|error| FrameError::Compression(error.to_string()))?;
    if written != raw_len {
        return Err(FrameError::Compression(format!(
            "decompressed {written} bytes, header said {raw_len}"
        )));
    }
    Ok(Bytes::from(out))
}

fn decode_records(body: Bytes) -> Result<Vec<Record>, FrameError> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < body.len() {
        let header = body
            .get(offset..offset + RECORD_HEADER_BYTES)
            .ok_or(FrameError::Record {
                offset,
                reason: "truncated record header",
            })?;
        let kind = RecordKind::from_u8(header[0]).ok_or(FrameError::Kind(header[0]))?;
        let tag = header[1];
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        let start = offset + RECORD_HEADER_BYTES;
        let end = start.checked_add(len).ok_or(FrameError::Record {
            offset,
            reason: "record length overflows",
        })?;
        if end > body.len() {
            return Err(FrameError::Record {
                offset,
                reason: "record runs past the end of the frame",
            });
        }
        records.push(Record {
            kind,
            tag,
            payload: body.slice(start..end),
        });
        offset = end;
    }
    if records.is_empty() {
        return Err(FrameError::Empty);
    }
    Ok(records)
}

/// Compression settings for outgoing frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    pub enabled: bool,
    /// Bodies at least this large are compressed (when that makes them smaller).
    pub threshold_bytes: usize,
}

/// Builds outgoing frames: records are appended after room for the length prefix and the
/// envelope header, which [`finish`](Self::finish) fills in, so an uncompressed frame is
/// written straight from the buffer the records were copied into.
#[derive(Debug)]
pub struct FrameBuilder {
    /// `[length:4][version][flags][records…]`.
    buffer: Vec<u8>,
    records: usize,
    compressed: Vec<u8>,
    frame: Vec<u8>,
}

const HEADER_BYTES: usize = LENGTH_PREFIX_BYTES + ENVELOPE_HEADER_BYTES;

impl Default for FrameBuilder {
    fn default() -> Self {
        FrameBuilder::new()
    }
}

impl FrameBuilder {
    pub fn new() -> FrameBuilder {
        let mut buffer = Vec::with_capacity(64 * 1024);
        buffer.resize(HEADER_BYTES, 0);
        FrameBuilder {
            buffer,
            records: 0,
            compressed: Vec::new(),
            frame: Vec::new(),
        }
    }

    /// Size the frame would have, uncompressed, with its length prefix.
    pub fn encoded_len(&self) -> usize {
        self.buffer.len()
    }

    pub fn records(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends a record. The caller checks sizes with [`record_len`] first.
    pub fn push(&mut self, kind: RecordKind, tag: u8, payload: &[u8]) {
        self.buffer.reserve(RECORD_HEADER_BYTES + payload.len());
        self.buffer.push(kind as u8);
        self.buffer.push(tag);
        // Callers never push more than max_frame_size (a u32-sized bound) in total.
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.buffer.extend_from_slice(&len.to_be_bytes());
        self.buffer.extend_from_slice(payload);
        self.records += 1;
    }

    /// Writes the finished frame to `writer` (without flushing) and resets the builder.
    /// Returns the bytes written.
    pub async fn write_to<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        compression: Compression,
    ) -> std::io::Result<usize> {
        let frame = self.finish(compression);
        writer.write_all(frame).await?;
        Ok(frame.len())
    }

    /// The finished frame bytes; valid until the next push. Resets the builder.
    pub fn finish(&mut self, compression: Compression) -> &[u8] {
        let body_len = self.buffer.len() - HEADER_BYTES;
        self.records = 0;
        if compression.enabled && body_len >= compression.threshold_bytes {
            let body = &self.buffer[HEADER_BYTES..];
            let bound = lz4_flex::block::get_maximum_output_size(body.len());
            self.compressed.resize(bound, 0);
            if let Ok(n) = lz4_flex::block::compress_into(body, &mut self.compressed) {
                // Keep the compressed body only if it is smaller, counting its raw length.
                if n + 4 < body.len() {
                    let frame_len = ENVELOPE_HEADER_BYTES + 4 + n;
                    self.frame.clear();
                    self.frame.reserve(LENGTH_PREFIX_BYTES + frame_len);
                    self.frame.extend_from_slice(
                        &u32::try_from(frame_len).unwrap_or(u32::MAX).to_be_bytes(),
                    );
                    self.frame.push(ENVELOPE_VERSION);
                    self.frame.push(FLAG_COMPRESSED);
                    let raw_len = u32::try_from(body.len()).unwrap_or(u32::MAX);
                    self.frame.extend_from_slice(&raw_len.to_be_bytes());
                    self.frame.extend_from_slice(&self.compressed[..n]);
                    self.buffer.truncate(HEADER_BYTES);
                    return &self.frame;
                }
            }
        }
        let frame_len = u32::try_from(ENVELOPE_HEADER_BYTES + body_len).unwrap_or(u32::MAX);
        self.buffer[..LENGTH_PREFIX_BYTES].copy_from_slice(&frame_len.to_be_bytes());
        self.buffer[LENGTH_PREFIX_BYTES] = ENVELOPE_VERSION;
        self.buffer[LENGTH_PREFIX_BYTES + 1] = 0;
        // Hand out the finished frame and start the next one in a fresh header.
        std::mem::swap(&mut self.buffer, &mut self.frame);
        self.buffer.clear();
        self.buffer.resize(HEADER_BYTES, 0);
        &self.frame
    }
}

/// Bytes a record adds to a frame body.
pub fn record_len(payload_len: usize) -> usize {
    RECORD_HEADER_BYTES + payload_len
}

/// Largest payload a single message may have under `max_frame_size`.
pub fn max_payload(max_frame_size: usize) -> usize {
    max_frame_size.saturating_sub(ENVELOPE_HEADER_BYTES + RECORD_HEADER_BYTES)
}

/// Encodes one single-record frame (used for the Hello).
pub fn single_record_frame(kind: RecordKind, tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut builder = FrameBuilder::new();
    builder.push(kind, tag, payload);
    builder
        .finish(Compression {
            enabled: false,
            threshold_bytes: 0,
        })
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(records: &[(RecordKind, u8, Vec<u8>)], compression: Compression) -> Vec<Record> {
        let mut builder = FrameBuilder::new();
        for (kind, tag, payload) in records {
            builder.push(*kind, *tag, payload);
        }
        let frame = builder.finish(compression).to_vec();
        let body = Bytes::copy_from_slice(&frame[LENGTH_PREFIX_BYTES..]);
        decode_frame(body, 1 << 20).expect("decodes")
    }

    #[test]
    fn batch_roundtrips_with_and_without_compression() {
        let records = vec![
            (RecordKind::Data, 7, vec![1u8; 3000]),
            (RecordKind::Ping, 0, 42u64.to_be_bytes().to_vec()),
            (RecordKind::Data, 1, Vec::new()),
        ];
        for enabled in [false, true] {
            let out = roundtrip(
                &records,
                Compression {
                    enabled,
                    threshold_bytes: 100,
                },
            );
            assert_eq!(out.len(), 3);
            for (got, (kind, tag, payload)) in out.iter().zip(&records) {
                assert_eq!(got.kind, *kind);
                assert_eq!(got.tag, *tag);
                assert_eq!(&got.payload[..], &payload[..]);
            }
        }
    }

    #[test]
    fn compression_bomb_is_refused_before_allocating() {
        // A compressed body claiming a raw length above the bound.
        let mut frame = vec![ENVELOPE_VERSION, FLAG_COMPRESSED];
        frame.extend_from_slice(&u32::MAX.to_be_bytes());
        frame.extend_from_slice(&[0u8; 8]);
        let err = decode_frame(Bytes::from(frame), 1 << 20).unwrap_err();
        assert!(matches!(err, FrameError::Oversized { .. }), "{err}");
    }

    const STALL: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn oversized_and_truncated_frames_are_errors() {
        let mut buffer = BytesMut::new();
        let big = (2u32 << 20).to_be_bytes();
        let mut reader: &[u8] = &big;
        let err = read_frame(&mut reader, &mut buffer, 1 << 20, STALL)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Oversized { .. }));

        let mut truncated = 100u32.to_be_bytes().to_vec();
        truncated.extend_from_slice(&[1, 0, 3]);
        let mut reader: &[u8] = &truncated;
        let err = read_frame(&mut reader, &mut buffer, 1 << 20, STALL)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Truncated));

        let mut reader: &[u8] = &[0, 0];
        let err = read_frame(&mut reader, &mut buffer, 1 << 20, STALL)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Truncated));

        let mut reader: &[u8] = &[];
        assert!(
            read_frame(&mut reader, &mut buffer, 1 << 20, STALL)
                .await
                .unwrap()
                .is_none()
        );
    }

    /// Issue 10, finding 4: a frame announced at 16 MiB whose bytes do not come allocates
    /// nothing for them, and times out once it stalls.
    #[tokio::test]
    async fn an_announced_frame_grows_with_its_bytes_and_a_stall_times_out() {
        const STALL: Duration = Duration::from_millis(200);
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let size = 16usize << 20;
        client
            .write_all(&u32::try_from(size).unwrap().to_be_bytes())
            .await
            .unwrap();
        client
            .write_all(&[ENVELOPE_VERSION, 0, 7, 7])
            .await
            .unwrap();
        let mut buffer = BytesMut::new();
        let err = read_frame(&mut server, &mut buffer, size, STALL)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FrameError::Stalled { received: 4, size: s, .. } if s == size),
            "{err}"
        );
        assert!(
            buffer.capacity() <= READ_CHUNK_BYTES,
            "{} bytes reserved for 4 received",
            buffer.capacity()
        );
        // A stall inside the length prefix is caught too; silence between frames is not.
        client.write_all(&[0, 0]).await.unwrap();
        let err = read_frame(&mut server, &mut buffer, size, STALL)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Stalled {
                    received: 2,
                    size: 4,
                    ..
                }
            ),
            "{err}"
        );
        let idle = tokio::time::timeout(
            STALL * 10,
            read_frame(&mut server, &mut buffer, size, STALL),
        )
        .await;
        assert!(
            idle.is_err(),
            "an idle connection between frames is not a stall"
        );
    }

    #[tokio::test]
    async fn a_large_frame_arriving_in_pieces_is_read_whole() {
        let mut frame = FrameBuilder::new();
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        frame.push(RecordKind::Data, 1, &payload);
        let bytes = frame
            .finish(Compression {
                enabled: false,
                threshold_bytes: 0,
            })
            .to_vec();
        let (mut client, mut server) = tokio::io::duplex(7919);
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(100_003) {
                client.write_all(piece).await.unwrap();
            }
            client
        });
        let mut buffer = BytesMut::new();
        let got = read_frame(&mut server, &mut buffer, 4 << 20, STALL)
            .await
            .unwrap()
            .unwrap();
        let _client = writer.await.unwrap();
        let records = decode_frame(got, 4 << 20).unwrap();
        assert_eq!(records[0].payload.len(), payload.len());
        assert_eq!(&records[0].payload[..], &payload[..]);
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame(Bytes::from(bytes), 4096);
        }

        #[test]
        fn decoding_garbage_with_valid_header_never_panics(
            compressed in any::<bool>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut frame = vec![ENVELOPE_VERSION, if compressed { FLAG_COMPRESSED } else { 0 }];
            frame.extend_from_slice(&bytes);
            let _ = decode_frame(Bytes::from(frame), 4096);
        }
    }
}
