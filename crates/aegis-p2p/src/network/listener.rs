//! The listener: accepting connections, admission (validator addresses, bans, connection
//! rate limit, handshake slots; see [`crate::admission`]), the TLS handshake and Hello of
//! inbound peers, and authentication failures.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use super::{Inner, LOG_TARGET, TLS_HANDSHAKE_BYTE, canonical, clamp_u32};
use crate::admission::{Lane, Progress, ProgressCell, RefusalKind};
use crate::auth::{self, AuthError, AuthenticatedPeer, EXPORTER_BYTES, EXPORTER_LABEL, Role};
use crate::config::P2pConfig;
use crate::limits::{FailureOutcome, SILENT_CONNECTIONS_ALLOWED};
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

/// Gives an inbound handshake's slot back when the handshake ends, however it ends.
struct HandshakeSlot {
    inner: Arc<Inner>,
    id: u64,
    ip: IpAddr,
    lane: Lane,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.inner.lock().slots.release(self.id, self.ip, self.lane);
    }
}

/// A suffix noting events of an ended window that were counted but not logged.
fn earlier_suffix(earlier: u64) -> String {
    if earlier == 0 {
        String::new()
    } else {
        format!(" ({earlier} earlier ones from this address were not logged)")
    }
}

impl Inner {
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
                    aegis_telemetry::warn!(target: LOG_TARGET, %error, "P2P accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Admission (docs/security.md, "Admission"): a validator address is never refused by
    /// a ban or the rate limit and has slots of its own; a stranger is checked against its
    /// ban, its token bucket and the strangers' handshake bounds.
    fn on_accept(self: &Arc<Self>, stream: TcpStream, remote: SocketAddr) {
        let ip = canonical(remote.ip());
        let now = Instant::now();
        let limits = self.config.rate_limiting.enabled;
        let mut state = self.lock();
        let lane = state.validator_addresses.lane(ip);
        let refusal = match lane {
            Lane::Validator => None,
            Lane::Stranger if limits => {
                if let Some(left) = state.bans.ban_remaining(ip, now) {
                    Some((
                        "banned",
                        format!("address banned ({} s left)", left.as_secs()),
                    ))
                } else if !state.limiter.allow(ip, now) {
                    Some((
                        "rate_limited",
                        format!(
                            "connection rate limit exceeded (burst_size {}, requests_per_minute {})",
                            self.config.rate_limiting.burst_size,
                            self.config.rate_limiting.requests_per_minute
                        ),
                    ))
                } else {
                    None
                }
            }
            Lane::Stranger => None,
        };
        let admitted = match refusal {
            Some(refusal) => Err(refusal),
            None => state
                .slots
                .admit(ip, lane, now)
                .map_err(|refusal| ("handshake_limit", refusal.to_string())),
        };
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err((reason, text)) => {
                self.metrics.rejected(reason);
                let logged = state.refusals.record(ip, RefusalKind::Refused, &text, now);
                drop(state);
                if let Some(earlier) = logged {
                    aegis_telemetry::warn!(
                        target: LOG_TARGET,
                        reason,
                        "Unauthorized access from {ip}: connection refused: {text}{}",
                        earlier_suffix(earlier)
                    );
                }
                return;
            }
        };
        let text = "handshake evicted: the validator address's handshake slots were full, \
                    and this one had made the least progress";
        let evicted_logged = if admitted.evicted {
            self.metrics.rejected("evicted");
            state.refusals.record(ip, RefusalKind::Refused, text, now)
        } else {
            None
        };
        drop(state);
        if let Some(earlier) = evicted_logged {
            aegis_telemetry::warn!(
                target: LOG_TARGET,
                reason = "evicted",
                "Unauthorized access from {ip}: connection refused: {text}{}",
                earlier_suffix(earlier)
            );
        }
        let slot = HandshakeSlot {
            inner: Arc::clone(self),
            id: admitted.id,
            ip,
            lane,
        };
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let timeout = inner.config.handshake_timeout;
            let handshake =
                tokio::time::timeout(timeout, inner.accept_handshake(stream, &admitted.progress));
            let result = tokio::select! {
                () = inner.shutdown.cancelled() => return,
                // Evicted by a newer connection from the same address: counted and logged
                // when it happened.
                () = admitted.cancel.cancelled() => return,
                result = handshake => result.unwrap_or(Err(Some(AuthError::Timeout(timeout)))),
            };
            drop(slot);
            match result {
                Ok((stream, peer)) if peer.purpose == crate::auth::Purpose::Probe => {
                    inner.validator_authenticated(ip, &peer);
                    let answered = crate::probe::serve_probe(stream).await;
                    aegis_telemetry::info!(
                        target: LOG_TARGET,
                        peer_id = %inner.name(peer.id),
                        remote = %remote,
                        pings = answered,
                        "Connectivity probe from {ip} answered"
                    );
                }
                Ok((stream, peer)) => {
                    inner.validator_authenticated(ip, &peer);
                    inner
                        .run_peer(stream, peer, Direction::Inbound, remote, None)
                        .await;
                }
                Err(Some(error)) => inner.auth_failed(ip, &error),
                Err(None) => inner.silent_connection(ip),
            }
        });
    }

    /// TLS handshake and Hello on an accepted socket, reporting how far it got in
    /// `progress`. `Err(None)`: the peer closed without sending a byte.
    async fn accept_handshake(
        &self,
        stream: TcpStream,
        progress: &ProgressCell,
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
        let tls_error = |error: std::io::Error| Some(AuthError::tls(&error));
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
            .await
            .map_err(tls_error)?;
        progress.set(Progress::ClientHello);
        let mut tls = start
            .into_stream(Arc::clone(&self.server_config))
            .await
            .map_err(tls_error)?;
        let (_, connection) = tls.get_ref();
        if connection
            .peer_certificates()
            .is_none_or(|certs| certs.is_empty())
        {
            return Err(Some(AuthError::NoClientCertificate));
        }
        progress.set(Progress::TlsDone);
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

    /// A genesis validator proved its key from `ip` (either direction): the address is a
    /// validator address from now on, and a ban on it is lifted.
    pub(super) fn validator_authenticated(&self, ip: IpAddr, peer: &AuthenticatedPeer) {
        let mut state = self.lock();
        let lifted = state.bans.lift(ip);
        let learned = state.validator_addresses.learn(ip, Instant::now());
        if lifted {
            self.metrics
                .banned_ips
                .set(state.bans.banned_count() as i64);
        }
        drop(state);
        let name = self.name(peer.id);
        if lifted {
            aegis_telemetry::info!(
                target: LOG_TARGET,
                peer_id = %name,
                "Ban on {ip} lifted: validator {name} authenticated from it"
            );
        } else if learned {
            aegis_telemetry::debug!(
                target: LOG_TARGET,
                peer_id = %name,
                %ip,
                "Validator authenticated from an address not in the genesis; it now takes the validator lane"
            );
        }
    }

    /// A connection closed before sending a byte: free up to
    /// [`SILENT_CONNECTIONS_ALLOWED`] per address and window, then a failure.
    fn silent_connection(&self, ip: IpAddr) {
        let count = self.lock().bans.record_silent(ip, Instant::now());
        if count > SILENT_CONNECTIONS_ALLOWED {
            self.auth_failed(
                ip,
                &AuthError::Silent {
                    count,
                    window: self.config.rate_limiting.failure_window,
                },
            );
        } else {
            aegis_telemetry::debug!(
                target: LOG_TARGET,
                %ip,
                count,
                "P2P connection closed before sending anything"
            );
        }
    }

    /// Counts a failed authentication, logs `Authentication failed for peer from <IP>:
    /// <reason>` (rate-limited per address, with counts), and bans a stranger's address
    /// after `max_failures`. A validator address is never banned by the node: its
    /// connections take the validator lane, which bans do not apply to.
    fn auth_failed(&self, ip: IpAddr, error: &AuthError) {
        self.metrics.auth_failures.inc();
        let now = Instant::now();
        let text = error.to_string();
        let mut state = self.lock();
        let logged = state
            .refusals
            .record(ip, RefusalKind::AuthFailure, &text, now);
        let validator = state.validator_addresses.contains(ip);
        let outcome = if validator {
            FailureOutcome::Ignored
        } else {
            state.bans.record_failure(ip, now)
        };
        if let FailureOutcome::Banned { .. } = outcome {
            self.metrics
                .banned_ips
                .set(state.bans.banned_count() as i64);
        }
        drop(state);
        if let Some(earlier) = logged {
            aegis_telemetry::warn!(
                target: LOG_TARGET,
                "Authentication failed for peer from {ip}: {text}{}",
                earlier_suffix(earlier)
            );
        }
        if validator {
            aegis_telemetry::debug!(
                target: LOG_TARGET,
                %ip,
                "Not counting towards a ban: a validator's address"
            );
        }
        if let FailureOutcome::Banned { duration } = outcome {
            aegis_telemetry::warn!(
                target: LOG_TARGET,
                "Unauthorized access from {ip}: banned for {} s",
                duration.as_secs()
            );
        }
    }

    /// Logs the counts of refusals and failures that were not logged one by one, per
    /// address, once their window ends.
    pub(super) fn log_suppressed(&self, now: Instant) {
        let (due, window) = {
            let mut state = self.lock();
            (state.refusals.due(now), state.refusals.interval())
        };
        let window = format!("{:?}", window);
        for suppressed in due {
            let count = suppressed.count;
            let reason = &suppressed.reason;
            match (suppressed.ip, suppressed.kind) {
                (Some(ip), RefusalKind::AuthFailure) => aegis_telemetry::warn!(
                    target: LOG_TARGET,
                    count,
                    "Authentication failed for peer from {ip}: {count} more failures in the last {window} (last: {reason})"
                ),
                (Some(ip), RefusalKind::Refused) => aegis_telemetry::warn!(
                    target: LOG_TARGET,
                    count,
                    "Unauthorized access from {ip}: {count} more connections refused in the last {window} (last: {reason})"
                ),
                (None, kind) => aegis_telemetry::warn!(
                    target: LOG_TARGET,
                    count,
                    ?kind,
                    "{count} more refusals or failures from addresses beyond the {} tracked, in the last {window} (last: {reason})",
                    crate::admission::MAX_REFUSAL_LOG_ADDRESSES
                ),
            }
        }
    }
}
