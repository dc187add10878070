//! Liveness: a ping every `ping_interval`, a peer that does not answer within
//! `ping_timeout` is dropped (and redialled); answered pings give the round-trip time. Every
//! tenth ping also sends a peer list.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aegis_types::PublicKey;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::{Inner, LOG_TARGET};
use crate::queue::{Outgoing, PeerQueue, Priority};
use crate::wire::RecordKind;

impl Inner {
    pub(super) async fn ping_loop(
        self: Arc<Self>,
        key: PublicKey,
        name: String,
        queue: Arc<PeerQueue>,
        cancel: CancellationToken,
        pings: Arc<Mutex<PingState>>,
    ) {
        let mut nonce = 0u64;
        let mut exchange_every = 0u32;
        loop {
            nonce += 1;
            pings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sent(nonce, Instant::now());
            queue.push_control(Outgoing {
                kind: RecordKind::Ping,
                tag: 0,
                payload: Bytes::copy_from_slice(&nonce.to_be_bytes()),
                priority: Priority::Critical,
            });
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.config.ping_timeout) => {}
            }
            let answered = pings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .outstanding
                .is_none();
            if !answered {
                aegis_telemetry::warn!(
                    target: LOG_TARGET,
                    peer_id = %name,
                    timeout_ms = self.config.ping_timeout.as_millis() as u64,
                    "Peer did not answer ping in time; dropping it and redialling"
                );
                cancel.cancel();
                queue.close();
                return;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.config.ping_interval.saturating_sub(self.config.ping_timeout)) => {}
            }
            exchange_every += 1;
            if exchange_every.is_multiple_of(10) {
                queue.push_control(Outgoing {
                    kind: RecordKind::Peers,
                    tag: 0,
                    payload: self.peer_list_for(&key),
                    priority: Priority::Critical,
                });
            }
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct PingState {
    outstanding: Option<(u64, Instant)>,
}

impl PingState {
    pub(super) fn sent(&mut self, nonce: u64, at: Instant) {
        self.outstanding = Some((nonce, at));
    }

    pub(super) fn answered(&mut self, nonce: u64) -> Option<Duration> {
        match self.outstanding {
            Some((expected, at)) if expected == nonce => {
                self.outstanding = None;
                Some(at.elapsed())
            }
            _ => None,
        }
    }
}
