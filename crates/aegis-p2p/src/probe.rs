//! Connectivity probes (`aegis validators check`): the same TCP connect, TLS 1.3 mutual
//! handshake and signed Hello a validator's dialler does, with the Hello's purpose set to
//! [`Purpose::Probe`], then pings for the round-trip time. The node that accepts a probe
//! answers its pings for at most [`PROBE_SESSION`] and [`MAX_PROBE_PINGS`] pings and never
//! registers it as a peer, so probing a running network does not disturb its mesh
//! (docs/adr/0015-operator-tools.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::auth::{
    self, AuthError, AuthenticatedPeer, EXPORTER_BYTES, EXPORTER_LABEL, Identity, Purpose, Role,
};
use crate::tls::TlsStore;
use crate::wire::{self, HANDSHAKE_MAX_FRAME_SIZE, RecordKind};

/// Longest a probe session is served by the accepting node.
pub const PROBE_SESSION: Duration = Duration::from_secs(10);
/// Most pings a probe session answers.
pub const MAX_PROBE_PINGS: usize = 16;

/// Which step of a probe failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Tcp,
    Tls,
    Hello,
    Ping,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Tcp => "tcp",
            Stage::Tls => "tls",
            Stage::Hello => "hello",
            Stage::Ping => "ping",
        }
    }
}

/// A failed probe: where it stopped, why, and how long the steps before it took.
#[derive(Debug)]
pub struct ProbeError {
    pub stage: Stage,
    pub reason: String,
    /// Time the TCP connect took, when it succeeded.
    pub tcp: Option<Duration>,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.stage.as_str(), self.reason)
    }
}

impl std::error::Error for ProbeError {}

/// A successful probe.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// The validator that answered (its key is in the genesis; its Hello verified).
    pub peer: AuthenticatedPeer,
    pub remote: SocketAddr,
    /// TCP connect time.
    pub tcp: Duration,
    /// TLS 1.3 handshake time (after TCP).
    pub tls: Duration,
    /// Hello exchange time (after TLS).
    pub hello: Duration,
    /// Round trip of one ping over the authenticated session (the smallest of those sent).
    pub rtt: Duration,
}

/// Probes the validator at `address` (`host:port`) as `identity`, with the TLS files of
/// `tls`, every step within `timeout`. Sends `pings` pings (at least 1) and reports the
/// smallest round trip.
pub async fn probe(
    address: &str,
    identity: &Identity,
    tls: &Arc<TlsStore>,
    timeout: Duration,
    pings: usize,
) -> Result<ProbeReport, ProbeError> {
    let fail = |stage, reason: String, tcp| ProbeError { stage, reason, tcp };
    let started = Instant::now();
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| {
            fail(
                Stage::Tcp,
                format!("no connection within {timeout:?}"),
                None,
            )
        })?
        .map_err(|error| fail(Stage::Tcp, error.to_string(), None))?;
    let tcp = started.elapsed();
    let _ = stream.set_nodelay(true);
    let remote = stream
        .peer_addr()
        .map_err(|error| fail(Stage::Tcp, error.to_string(), Some(tcp)))?;
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_string())
        .or_else(|_| ServerName::try_from("aegis-peer".to_string()))
        .map_err(|error| fail(Stage::Tls, error.to_string(), Some(tcp)))?;
    let config = tls
        .client_config()
        .map_err(|error| fail(Stage::Tls, error.to_string(), Some(tcp)))?;
    let tls_started = Instant::now();
    let mut session = tokio::time::timeout(
        timeout,
        TlsConnector::from(config).connect(server_name, stream),
    )
    .await
    .map_err(|_| {
        fail(
            Stage::Tls,
            format!("no handshake within {timeout:?}"),
            Some(tcp),
        )
    })?
    .map_err(|error| fail(Stage::Tls, error.to_string(), Some(tcp)))?;
    let tls_time = tls_started.elapsed();
    let (_, connection) = session.get_ref();
    let exporter = connection
        .export_keying_material([0u8; EXPORTER_BYTES], EXPORTER_LABEL, None)
        .map_err(|error| fail(Stage::Tls, error.to_string(), Some(tcp)))?;
    let hello_started = Instant::now();
    let peer = tokio::time::timeout(
        timeout,
        auth::exchange_hello_for(
            &mut session,
            &exporter,
            Role::Dialer,
            identity,
            0,
            Purpose::Probe,
        ),
    )
    .await
    .map_err(|_| {
        fail(
            Stage::Hello,
            format!("no Hello within {timeout:?}"),
            Some(tcp),
        )
    })?
    .map_err(|error| fail(Stage::Hello, hello_reason(&error), Some(tcp)))?;
    let hello = hello_started.elapsed();
    let mut best = None::<Duration>;
    let mut buffer = BytesMut::new();
    for nonce in 1..=pings.max(1) as u64 {
        let rtt = tokio::time::timeout(timeout, ping_once(&mut session, &mut buffer, nonce))
            .await
            .map_err(|_| {
                fail(
                    Stage::Ping,
                    format!("no pong within {timeout:?}"),
                    Some(tcp),
                )
            })?
            .map_err(|reason| fail(Stage::Ping, reason, Some(tcp)))?;
        best = Some(best.map_or(rtt, |b| b.min(rtt)));
    }
    let _ = session.shutdown().await;
    Ok(ProbeReport {
        peer,
        remote,
        tcp,
        tls: tls_time,
        hello,
        rtt: best.unwrap_or_default(),
    })
}

fn hello_reason(error: &AuthError) -> String {
    match error {
        AuthError::ClosedBeforeHello => "the node closed the connection before its Hello \
             (it refused this node's certificate or key; see its log)"
            .to_owned(),
        other => other.to_string(),
    }
}

async fn ping_once<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buffer: &mut BytesMut,
    nonce: u64,
) -> Result<Duration, String> {
    let sent = Instant::now();
    stream
        .write_all(&wire::single_record_frame(
            RecordKind::Ping,
            0,
            &nonce.to_be_bytes(),
        ))
        .await
        .map_err(|error| error.to_string())?;
    stream.flush().await.map_err(|error| error.to_string())?;
    loop {
        let frame = wire::read_frame(stream, buffer, HANDSHAKE_MAX_FRAME_SIZE, Duration::MAX)
            .await
            .map_err(|error| error.to_string())?
            .ok_or("the node closed the connection")?;
        let records = wire::decode_frame(frame, HANDSHAKE_MAX_FRAME_SIZE)
            .map_err(|error| error.to_string())?;
        for record in records {
            if record.kind == RecordKind::Pong && record.payload[..] == nonce.to_be_bytes() {
                return Ok(sent.elapsed());
            }
        }
    }
}

/// The accepting side: answers up to [`MAX_PROBE_PINGS`] pings for at most
/// [`PROBE_SESSION`], then closes. Returns how many pings it answered.
pub(crate) async fn serve_probe<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> usize {
    let mut buffer = BytesMut::new();
    let mut answered = 0;
    let session = async {
        while answered < MAX_PROBE_PINGS {
            let Ok(Some(frame)) = wire::read_frame(
                &mut stream,
                &mut buffer,
                HANDSHAKE_MAX_FRAME_SIZE,
                PROBE_SESSION,
            )
            .await
            else {
                return;
            };
            let Ok(records) = wire::decode_frame(frame, HANDSHAKE_MAX_FRAME_SIZE) else {
                return;
            };
            for record in records {
                if record.kind != RecordKind::Ping {
                    return;
                }
                let pong = wire::single_record_frame(RecordKind::Pong, 0, &record.payload);
                if stream.write_all(&pong).await.is_err() || stream.flush().await.is_err() {
                    return;
                }
                answered += 1;
            }
        }
    };
    let _ = tokio::time::timeout(PROBE_SESSION, session).await;
    let _ = stream.shutdown().await;
    answered
}
