//! The listener: accepting connections, admission (bans, connection rate limit, handshake
//! bounds), the TLS handshake and Hello of inbound peers, and authentication failures.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::{
    Inner, LOG_TARGET, MAX_HANDSHAKES_PER_IP, MAX_THROTTLED_IPS, REJECTION_LOG_INTERVAL, State,
    TLS_HANDSHAKE_BYTE, canonical, clamp_u32,
};
use crate::auth::{self, AuthError, AuthenticatedPeer, EXPORTER_BYTES, EXPORTER_LABEL, Role};
use crate::config::P2pConfig;
use crate::limits::FailureOutcome;
use crate::metrics::Direction;

pub(super) fn listen(addr: SocketAddr, config: &P2pConfig) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // Accepted sockets inherit these buffer sizes from the listener.
    socket.set_send_buffer_size(clamp_u32(config.send_buffer_size_bytes))?;
    socket.set_recv_buffer_size(clamp_u32(config.recv_buffer_size_bytes))?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Decrements the handshake counters when an inbound handshake ends, however it ends.
struct HandshakeSlot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.handshakes = state.handshakes.saturating_sub(1);
        if let Some(count) = state.handshakes_per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                state.handshakes_per_ip.remove(&self.ip);
            }
        }
    }
}

impl Inner {
    /// Logs at most once per [`REJECTION_LOG_INTERVAL`] per address.
    fn should_warn(state: &mut State, ip: IpAddr, now: Instant) -> bool {
        if let Some(last) = state.warned.get(&ip)
            && now.saturating_duration_since(*last) < REJECTION_LOG_INTERVAL
        {
            return false;
        }
        if state.warned.len() >= MAX_THROTTLED_IPS {
            state
                .warned
                .retain(|_, last| now.saturating_duration_since(*last) < REJECTION_LOG_INTERVAL);
            if state.warned.len() >= MAX_THROTTLED_IPS {
                return false;
            }
        }
        state.warned.insert(ip, now);
        true
    }

    pub(super) async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                () = self.shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, remote)) => self.on_accept(stream, remote),
                Err(error) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(target: LOG_TARGET, %error, "P2P accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn on_accept(self: &Arc<Self>, stream: TcpStream, remote: SocketAddr) {
        let ip = canonical(remote.ip());
        let now = Instant::now();
        let limits = self.config.rate_limiting.enabled;
        let mut state = self.lock();
        let refusal = if limits && state.bans.is_banned(ip, now) {
            Some(("banned", "Refused connection from banned peer"))
        } else if limits && !state.limiter.allow(ip, now) {
            Some(("rate_limited", "Connection rate limit exceeded for peer"))
        } else if state.handshakes >= self.max_handshakes
            || state.handshakes_per_ip.get(&ip).copied().unwrap_or(0) >= MAX_HANDSHAKES_PER_IP
        {
            Some((
                "handshake_limit",
                "Too many handshakes in progress; refusing peer",
            ))
        } else {
            None
        };
        if let Some((reason, text)) = refusal {
            self.metrics.rejected(reason);
            if Self::should_warn(&mut state, ip, now) {
                tracing::warn!(
                    target: LOG_TARGET,
                    reason,
                    "{text} {ip} (further refusals of this address are not logged for {}s)",
                    REJECTION_LOG_INTERVAL.as_secs()
                );
            }
            return;
        }
        state.handshakes += 1;
        *state.handshakes_per_ip.entry(ip).or_insert(0) += 1;
        drop(state);
        let slot = HandshakeSlot {
            inner: Arc::clone(self),
            ip,
        };
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let timeout = inner.config.handshake_timeout;
            let handshake = tokio::time::timeout(timeout, inner.accept_handshake(stream));
            let result = tokio::select! {
                () = inner.shutdown.cancelled() => return,
                result = handshake => result.unwrap_or(Err(Some(AuthError::Timeout(timeout)))),
            };
            drop(slot);
            match result {
                Ok((stream, peer)) => {
                    inner.lock().bans.record_success(ip);
                    inner
                        .run_peer(stream, peer, Direction::Inbound, remote, None)
                        .await;
                }
                Err(Some(error)) => inner.auth_failed(ip, &error),
                Err(None) => {
                    tracing::debug!(
                        target: LOG_TARGET,
                        %ip,
                        "P2P connection closed before sending anything"
                    );
                }
            }
        });
    }

    /// TLS handshake and Hello on an accepted socket. `Err(None)`: the peer closed without
    /// sending a byte (a port probe), which is not an authentication failure.
    async fn accept_handshake(
        &self,
        stream: TcpStream,
    ) -> Result<
        (
            tokio_rustls::server::TlsStream<TcpStream>,
            AuthenticatedPeer,
        ),
        Option<AuthError>,
    > {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err(None),
            Ok(_) if first[0] != TLS_HANDSHAKE_BYTE => {
                return Err(Some(AuthError::NotTls(first[0])));
            }
            Ok(_) => {}
            Err(error) => return Err(Some(AuthError::Io(error))),
        }
        let mut tls = self
            .acceptor
            .accept(stream)
            .await
            .map_err(|error| Some(AuthError::Tls(error.to_string())))?;
        let (_, connection) = tls.get_ref();
        if connection
            .peer_certificates()
            .is_none_or(|certs| certs.is_empty())
        {
            return Err(Some(AuthError::NoClientCertificate));
        }
        let exporter = connection
            .export_keying_material([0u8; EXPORTER_BYTES], EXPORTER_LABEL, None)
            .map_err(|error| Some(AuthError::Exporter(error.to_string())))?;
        let peer = auth::exchange_hello(
            &mut tls,
            &exporter,
            Role::Acceptor,
            &self.identity,
            self.local_addr.port(),
        )
        .await
        .map_err(Some)?;
        Ok((tls, peer))
    }

    /// Logs `Authentication failed for peer from <IP>: <reason>`, counts it, and bans the
    /// address after `max_failures` failures.
    fn auth_failed(&self, ip: IpAddr, error: &AuthError) {
        tracing::warn!(target: LOG_TARGET, "Authentication failed for peer from {ip}: {error}");
        self.metrics.auth_failures.inc();
        let mut state = self.lock();
        // An address a validator is connected from is never banned by the node (a shared
        // NAT, or every node of a testnet on 127.0.0.1): the failure is logged and counted,
        // the honest validator keeps its connection and can redial.
        if state
            .peers
            .values()
            .any(|peer| canonical(peer.remote.ip()) == ip)
        {
            tracing::debug!(
                target: LOG_TARGET,
                %ip,
                "Not counting towards a ban: a validator is connected from this address"
            );
            return;
        }
        if let FailureOutcome::Banned { duration } = state.bans.record_failure(ip, Instant::now()) {
            self.metrics
                .banned_ips
                .set(state.bans.banned_count() as i64);
            drop(state);
            tracing::warn!(
                target: LOG_TARGET,
                "Unauthorized access from {ip}: banned for {} s",
                duration.as_secs()
            );
        }
    }
}
