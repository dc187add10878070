//! One authenticated connection: registered in the peer table, then a reader (frames to
//! the inbox, pongs, peer lists), a writer (batched frames from the send queue) and a ping
//! task, until one of them ends it; then cleanup and the reason in the log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio_util::sync::CancellationToken;

use super::handle::Inbound;
use super::peer_table::Registered;
use super::ping::PingState;
use super::{BATCH_BYTES, Inner, LOG_TARGET, canonical};
use crate::auth::AuthenticatedPeer;
use crate::inbox::Delivered;
use crate::metrics::Direction;
use crate::queue::{Outgoing, PeerQueue, Priority};
use crate::wire::{self, Compression, FrameBuilder, RecordKind};

/// Why a connection ended, for the log.
#[derive(Debug)]
enum Ended {
    Closed,
    Shutdown,
    Replaced,
    /// The link failed (I/O error).
    Error(String),
    /// The peer sent bad input after authenticating: garbage, an oversized or truncated
    /// frame, a malformed record. Logged with its address and counted.
    Protocol(String),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Closed => write!(f, "closed by peer"),
            Ended::Shutdown => write!(f, "shutting down"),
            Ended::Replaced => write!(f, "replaced or dropped locally"),
            Ended::Error(error) => write!(f, "{error}"),
            Ended::Protocol(error) => write!(f, "protocol violation: {error}"),
        }
    }
}

impl Inner {
    /// Runs an authenticated connection until it ends, then cleans up.
    pub(super) async fn run_peer<S>(
        self: &Arc<Self>,
        stream: S,
        peer: AuthenticatedPeer,
        direction: Direction,
        remote: SocketAddr,
        dialed_address: Option<String>,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let name = self.name(peer.id);
        let (queue, cancel, conn_id) = match self.register(
            &peer,
            direction,
            remote,
            dialed_address.as_deref(),
        ) {
            Registered::Yes(queue, cancel, conn_id) => (queue, cancel, conn_id),
            Registered::SelfConnection => {
                aegis_telemetry::debug!(target: LOG_TARGET, "Dropped a connection to this node itself");
                return;
            }
            Registered::Duplicate => {
                aegis_telemetry::debug!(
                    target: LOG_TARGET,
                    peer_id = %name,
                    ?direction,
                    "Dropped duplicate connection; keeping the one dialled by the lower key"
                );
                return;
            }
            Registered::Full => {
                self.metrics.rejected("max_peers");
                let ip = canonical(remote.ip());
                aegis_telemetry::warn!(
                    target: LOG_TARGET,
                    peer_id = %name,
                    max_peers = self.config.max_peers,
                    "Refused peer from {ip}: max_peers reached"
                );
                return;
            }
        };
        aegis_telemetry::info!(
            target: LOG_TARGET,
            peer_id = %name,
            validator = %peer.id,
            remote = %remote,
            direction = direction.label(),
            "Peer connected"
        );
        queue.push_control(Outgoing {
            kind: RecordKind::Peers,
            tag: 0,
            payload: self.peer_list_for(&peer.public_key),
            priority: Priority::Critical,
        });
        let (reader, writer) = tokio::io::split(stream);
        let pings = Arc::new(Mutex::new(PingState::default()));
        let writer_task =
            tokio::spawn(Arc::clone(self).write_loop(writer, Arc::clone(&queue), cancel.clone()));
        let ping_task = tokio::spawn(Arc::clone(self).ping_loop(
            peer.public_key,
            name.clone(),
            Arc::clone(&queue),
            cancel.clone(),
            Arc::clone(&pings),
        ));
        let ended = self.read_loop(reader, &peer, &queue, &cancel, &pings).await;
        cancel.cancel();
        queue.close();
        let _ = writer_task.await;
        let _ = ping_task.await;
        let removed = self.unregister(&peer.public_key, conn_id);
        let ended = if matches!(ended, Ended::Replaced) && self.shutdown.is_cancelled() {
            Ended::Shutdown
        } else {
            ended
        };
        if let Ended::Protocol(error) = &ended {
            // Bad input from an authenticated peer: same treatment as bad input before
            // authentication (logged with the address, counted), but no ban: the address
            // belongs to a validator, which may be restarted with a fixed build.
            self.metrics.protocol_violations.inc();
            let ip = canonical(remote.ip());
            aegis_telemetry::warn!(
                target: LOG_TARGET,
                peer_id = %name,
                remote = %remote,
                "Protocol violation by peer from {ip}: {error}; disconnected"
            );
        }
        if removed {
            aegis_telemetry::info!(
                target: LOG_TARGET,
                peer_id = %name,
                reason = %ended,
                "Peer disconnected: {ended}"
            );
            if self.lock().peers.is_empty() && !self.shutdown.is_cancelled() {
                let mut state = self.lock();
                state.no_peers_logged = Some(Instant::now());
                drop(state);
                aegis_telemetry::warn!(
                    target: LOG_TARGET,
                    address = %self.local_addr,
                    "No peers available"
                );
            }
        } else {
            aegis_telemetry::debug!(
                target: LOG_TARGET,
                peer_id = %name,
                reason = %ended,
                "Superseded connection closed"
            );
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
        peer: &AuthenticatedPeer,
        queue: &PeerQueue,
        cancel: &CancellationToken,
        pings: &Mutex<PingState>,
    ) -> Ended {
        let mut buffer = BytesMut::with_capacity(self.config.recv_buffer_size_bytes);
        let mut delivery: Vec<Inbound> = Vec::new();
        let max = self.config.max_frame_size_bytes;
        // A frame begun must keep coming: a peer that stops in the middle of one is as
        // dead as one that does not answer a ping.
        let stall = self.config.ping_timeout;
        let mut reader =
            tokio::io::BufReader::with_capacity(self.config.recv_buffer_size_bytes, &mut reader);
        loop {
            let frame = tokio::select! {
                () = cancel.cancelled() => return Ended::Replaced,
                frame = wire::read_frame(&mut reader, &mut buffer, max, stall) => frame,
            };
            let frame = match frame {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ended::Closed,
                Err(wire::FrameError::Io(error)) => {
                    return Ended::Error(format!("receive failed: {error}"));
                }
                Err(error) => return Ended::Protocol(error.to_string()),
            };
            self.metrics
                .bytes(Direction::Inbound, frame.len() + wire::LENGTH_PREFIX_BYTES);
            let records = match wire::decode_frame(frame, max) {
                Ok(records) => records,
                Err(error) => return Ended::Protocol(error.to_string()),
            };
            for record in records {
                self.metrics
                    .message(Direction::Inbound, record.kind, record.tag);
                match record.kind {
                    RecordKind::Data => {
                        delivery.push(Inbound {
                            from: peer.id,
                            public_key: peer.public_key,
                            tag: record.tag,
                            payload: record.payload,
                        });
                    }
                    RecordKind::Ping => {
                        queue.push_control(Outgoing {
                            kind: RecordKind::Pong,
                            tag: 0,
                            payload: record.payload,
                            priority: Priority::Critical,
                        });
                    }
                    RecordKind::Pong => {
                        let Ok(nonce) = <[u8; 8]>::try_from(&record.payload[..]) else {
                            return Ended::Protocol("malformed pong".into());
                        };
                        let rtt = pings
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .answered(u64::from_be_bytes(nonce));
                        if let Some(rtt) = rtt {
                            self.metrics.latency.observe(rtt.as_secs_f64());
                            if let Some(entry) = self.lock().peers.get_mut(&peer.public_key) {
                                entry.rtt = Some(rtt);
                            }
                        }
                    }
                    RecordKind::Peers => {
                        if let Err(error) = self.learn_peers(&peer.public_key, &record.payload) {
                            return Ended::Protocol(error);
                        }
                    }
                    RecordKind::Hello => {
                        return Ended::Protocol("second Hello".into());
                    }
                }
            }
            match self.inbound.push_all(&mut delivery, cancel).await {
                Delivered::Yes => {}
                Delivered::NoReceiver => self.metrics.dropped("no_receiver", 1),
                Delivered::Cancelled => return Ended::Replaced,
            }
        }
    }

    async fn write_loop<W: AsyncWrite + Unpin>(
        self: Arc<Self>,
        writer: W,
        queue: Arc<PeerQueue>,
        cancel: CancellationToken,
    ) {
        let result = tokio::select! {
            () = cancel.cancelled() => Ok(()),
            result = self.write_frames(writer, &queue) => result,
        };
        if let Err(error) = result {
            aegis_telemetry::debug!(target: LOG_TARGET, %error, "P2P send failed");
        }
        cancel.cancel();
    }

    async fn write_frames<W: AsyncWrite + Unpin>(
        &self,
        writer: W,
        queue: &PeerQueue,
    ) -> std::io::Result<()> {
        let config = &self.config;
        let compression = Compression {
            enabled: config.message_compression,
            threshold_bytes: config.compression_threshold_bytes,
        };
        let max_frame = config.max_frame_size_bytes;
        let mut writer = BufWriter::with_capacity(config.send_buffer_size_bytes, writer);
        let mut builder = FrameBuilder::new();
        let mut batch = Vec::with_capacity(config.batch_size);
        let mut last_flush = Instant::now();
        let mut unflushed = false;
        loop {
            batch.clear();
            if !queue
                .next_batch(&mut batch, config.batch_size, BATCH_BYTES)
                .await
            {
                break;
            }
            for message in batch.drain(..) {
                if !builder.is_empty()
                    && builder.encoded_len() + wire::record_len(message.payload.len()) > max_frame
                {
                    let n = builder.write_to(&mut writer, compression).await?;
                    self.metrics.bytes(Direction::Outbound, n);
                }
                self.metrics
                    .message(Direction::Outbound, message.kind, message.tag);
                builder.push(message.kind, message.tag, &message.payload);
            }
            if !builder.is_empty() {
                let n = builder.write_to(&mut writer, compression).await?;
                self.metrics.bytes(Direction::Outbound, n);
                unflushed = true;
            }
            // Flush when nothing else is waiting (no added latency) or when data has sat in
            // the buffer for flush_interval under sustained load.
            if unflushed && queue.is_empty() {
                // Let senders that are running right now add to this flush: a TLS record
                // and a write system call per message would cost more than the message.
                tokio::task::yield_now().await;
            }
            if unflushed && (queue.is_empty() || last_flush.elapsed() >= config.flush_interval) {
                writer.flush().await?;
                last_flush = Instant::now();
                unflushed = false;
            }
        }
        let _ = writer.shutdown().await;
        Ok(())
    }
}
