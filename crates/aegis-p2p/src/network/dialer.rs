//! The dialer: outgoing TCP connections, the TLS handshake and Hello as the dialling side,
//! and the outcome recorded in the address book (which schedules redials with backoff).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};

use super::{Inner, LOG_TARGET, canonical, clamp_u32};
use crate::auth::{self, AuthError, AuthenticatedPeer, EXPORTER_BYTES, EXPORTER_LABEL, Role};
use crate::metrics::Direction;

impl Inner {
    async fn connect(&self, address: &str) -> std::io::Result<TcpStream> {
        let mut last_error = std::io::Error::other("address resolves to nothing");
        for remote in tokio::net::lookup_host(address).await? {
            let socket = if remote.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_send_buffer_size(clamp_u32(self.config.send_buffer_size_bytes))?;
            socket.set_recv_buffer_size(clamp_u32(self.config.recv_buffer_size_bytes))?;
            if let Some(ip) = self.bind_ip
                && ip.is_ipv4() == remote.is_ipv4()
            {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            match socket.connect(remote).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    pub(super) async fn dial(self: Arc<Self>, address: String) {
        let result = tokio::select! {
            () = self.shutdown.cancelled() => return,
            result = self.dial_inner(&address) => result,
        };
        let now = Instant::now();
        match result {
            Ok((stream, peer, remote)) => {
                if peer.public_key == self.identity.public_key() {
                    aegis_telemetry::info!(
                        target: LOG_TARGET,
                        %address,
                        "Bootstrap address is this node itself; not dialling it again"
                    );
                    self.lock().book.dial_found_self(&address);
                    return;
                }
                self.lock().book.dial_succeeded(&address, peer.public_key);
                self.validator_authenticated(canonical(remote.ip()), &peer);
                self.run_peer(stream, peer, Direction::Outbound, remote, Some(address))
                    .await;
            }
            Err(error) => {
                let mut state = self.lock();
                let attempts = state
                    .book
                    .entries
                    .get(&address)
                    .map_or(0, |entry| entry.attempts + 1);
                state.book.dial_failed(
                    &address,
                    self.config.reconnect_interval,
                    self.config.max_reconnect_attempts,
                    now,
                );
                drop(state);
                match error {
                    DialError::Auth(ip, error) => aegis_telemetry::warn!(
                        target: LOG_TARGET,
                        %address,
                        attempts,
                        "Authentication failed for peer at {address} ({ip}): {error}"
                    ),
                    DialError::Connect(error) => {
                        if attempts <= 1 || attempts.is_multiple_of(10) {
                            aegis_telemetry::warn!(
                                target: LOG_TARGET,
                                %address,
                                attempts,
                                %error,
                                "Cannot connect to peer {address}: {error}"
                            );
                        } else {
                            aegis_telemetry::debug!(
                                target: LOG_TARGET,
                                %address,
                                attempts,
                                %error,
                                "Cannot connect to peer"
                            );
                        }
                    }
                }
            }
        }
    }

    async fn dial_inner(
        &self,
        address: &str,
    ) -> Result<
        (
            tokio_rustls::client::TlsStream<TcpStream>,
            AuthenticatedPeer,
            SocketAddr,
        ),
        DialError,
    > {
        let stream = tokio::time::timeout(self.config.connection_timeout, self.connect(address))
            .await
            .map_err(|_| {
                DialError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "connect timed out after {:?}",
                        self.config.connection_timeout
                    ),
                ))
            })?
            .map_err(DialError::Connect)?;
        let remote = stream.peer_addr().map_err(DialError::Connect)?;
        let ip = canonical(remote.ip());
        let host = address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string())
            .or_else(|_| ServerName::try_from("aegis-peer".to_string()))
            .map_err(|error| DialError::Auth(ip, AuthError::Tls(error.to_string())))?;
        let timeout = self.config.handshake_timeout;
        let handshake = async {
            let mut tls = self
                .connector
                .connect(server_name, stream)
                .await
                .map_err(|error| AuthError::tls(&error))?;
            let (_, connection) = tls.get_ref();
            let exporter = connection
                .export_keying_material([0u8; EXPORTER_BYTES], EXPORTER_LABEL, None)
                .map_err(|error| AuthError::Exporter(error.to_string()))?;
            let peer = auth::exchange_hello(
                &mut tls,
                &exporter,
                Role::Dialer,
                &self.identity,
                self.local_addr.port(),
            )
            .await?;
            Ok::<_, AuthError>((tls, peer))
        };
        let (tls, peer) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| DialError::Auth(ip, AuthError::Timeout(timeout)))?
            .map_err(|error| DialError::Auth(ip, error))?;
        Ok((tls, peer, remote))
    }
}

#[derive(Debug)]
enum DialError {
    Connect(std::io::Error),
    Auth(IpAddr, AuthError),
}
