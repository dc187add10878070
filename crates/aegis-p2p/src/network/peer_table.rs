//! The peer table: adding an authenticated connection (self-connections, the duplicate
//! rule, `max_peers`) and removing it when its session ends.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use aegis_types::PublicKey;
use tokio_util::sync::CancellationToken;

use super::{Inner, Peer, SHORT_LIVED, bracket, canonical};
use crate::auth::AuthenticatedPeer;
use crate::book::Source;
use crate::metrics::Direction;
use crate::queue::PeerQueue;

pub(super) enum Registered {
    Yes(Arc<PeerQueue>, CancellationToken, u64),
    SelfConnection,
    Duplicate,
    Full,
}

impl Inner {
    /// Adds an authenticated connection to the peer table, applying the duplicate rule:
    /// between two validators, the connection dialled by the lower key is kept, so both
    /// ends choose the same one when they dial each other at the same time.
    pub(super) fn register(
        &self,
        peer: &AuthenticatedPeer,
        direction: Direction,
        remote: SocketAddr,
        dialed_address: Option<&str>,
    ) -> Registered {
        let own = self.identity.public_key();
        if peer.public_key == own {
            return Registered::SelfConnection;
        }
        let dialer = match direction {
            Direction::Outbound => own,
            Direction::Inbound => peer.public_key,
        };
        let lower = own.0.min(peer.public_key.0);
        let mut state = self.lock();
        if let Some(existing) = state.peers.get(&peer.public_key) {
            let existing_preferred = existing.dialer.0 == lower;
            let new_preferred = dialer.0 == lower;
            if existing_preferred && !new_preferred {
                return Registered::Duplicate;
            }
            existing.cancel.cancel();
            existing.queue.close();
        } else if state.peers.len() >= self.config.max_peers {
            return Registered::Full;
        }
        let now = Instant::now();
        if direction == Direction::Inbound && peer.listen_port != 0 {
            let address = format!(
                "{}:{}",
                bracket(&canonical(remote.ip()).to_string()),
                peer.listen_port
            );
            state
                .book
                .learn(address, peer.public_key, Source::Inbound, now);
        }
        if let Some(address) = dialed_address {
            state
                .book
                .learn(address.to_string(), peer.public_key, Source::Exchange, now);
        }
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(PeerQueue::new(
            self.config.peer_queue_messages,
            self.config.peer_queue_bytes,
        ));
        let cancel = self.shutdown.child_token();
        let replaced = state.peers.insert(
            peer.public_key,
            Peer {
                conn_id,
                id: peer.id,
                direction,
                dialer,
                remote,
                queue: Arc::clone(&queue),
                cancel: cancel.clone(),
                rtt: None,
                since: now,
            },
        );
        if let Some(old) = replaced {
            self.metrics.connection_closed(old.direction);
        } else {
            self.metrics.peers.inc();
        }
        self.queues
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer.id, Arc::clone(&queue));
        self.metrics.connection_opened(direction);
        Registered::Yes(queue, cancel, conn_id)
    }

    pub(super) fn unregister(&self, key: &PublicKey, conn_id: u64) -> bool {
        let mut state = self.lock();
        let mine = state
            .peers
            .get(key)
            .is_some_and(|peer| peer.conn_id == conn_id);
        if !mine {
            return false;
        }
        let removed = state.peers.remove(key);
        if let Some(peer) = &removed {
            self.metrics.peers.dec();
            self.metrics.connection_closed(peer.direction);
            let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
            if queues
                .get(&peer.id)
                .is_some_and(|q| Arc::ptr_eq(q, &peer.queue))
            {
                queues.remove(&peer.id);
            }
        }
        if let Some(peer) = removed {
            let now = Instant::now();
            // Shorter than one ping round: the peer (or we) refused the session.
            let short_lived = now.saturating_duration_since(peer.since) < SHORT_LIVED;
            state.book.disconnected(
                key,
                short_lived,
                self.config.reconnect_interval,
                self.config.max_reconnect_attempts,
                now,
            );
        }
        true
    }
}
