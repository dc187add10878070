//! `p2p:`: the node-to-node TLS listener, its peers and its framing.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use aegis_types::encoding::MAX_ENCODED_BYTES;
use aegis_types::validator::MAX_VALIDATORS;

use crate::decode::Millis;
use crate::file::P2pFile;

use super::checker::{Checker, is_valid_host, show_duration, up_to};

/// `p2p.reconnect_interval`: redials back off to at most 10 minutes (docs/p2p.md), so a
/// fixed interval longer than that would wait longer than the backoff ever does.
pub const P2P_RECONNECT_INTERVAL_RANGE: RangeInclusive<Duration> = up_to(Duration::from_secs(600));
/// `p2p.max_reconnect_attempts`: 1000 attempts at the default 30 s already redial a dead
/// address for over 8 hours before backing off; more would only postpone the backoff.
pub const P2P_MAX_RECONNECT_ATTEMPTS_RANGE: RangeInclusive<u64> = 0..=1000;
/// `p2p.connection_timeout`: a TCP connect that has not completed in 5 minutes will not.
pub const P2P_CONNECTION_TIMEOUT_RANGE: RangeInclusive<Duration> = up_to(Duration::from_secs(300));
/// `p2p.handshake_timeout`: an unauthenticated connection holds one of the few handshake
/// slots (8 per IP) while it lasts, so a long bound would let silent clients keep them.
pub const P2P_HANDSHAKE_TIMEOUT_RANGE: RangeInclusive<Duration> = up_to(Duration::from_secs(60));
/// `p2p.max_peers`: peers are the other validators of the genesis, never more than the
/// largest validator set.
pub const P2P_MAX_PEERS_RANGE: RangeInclusive<u64> = 1..=MAX_VALIDATORS as u64;
/// `p2p.max_frame_size`: every peer may have a frame this large in memory at once.
pub const P2P_MAX_FRAME_SIZE_RANGE: RangeInclusive<u64> = 1..=128 << 20;
/// `p2p.compression_threshold`: a threshold above the largest frame would turn compression
/// off while it says on.
pub const P2P_COMPRESSION_THRESHOLD_RANGE: RangeInclusive<u64> =
    1..=*P2P_MAX_FRAME_SIZE_RANGE.end();
/// `p2p.batch_size`: each peer's writer reserves room for a batch, and a peer's send queue
/// holds 4096 messages, so a larger batch would never fill.
pub const P2P_BATCH_SIZE_RANGE: RangeInclusive<u64> = 1..=4096;
/// `p2p.flush_interval`: messages may wait this long in the send buffer while more keep
/// coming; consensus messages held back for seconds would stall its rounds.
pub const P2P_FLUSH_INTERVAL_RANGE: RangeInclusive<Duration> = up_to(Duration::from_secs(1));
/// `p2p.send_buffer_size` and `p2p.recv_buffer_size`: each is allocated for every peer, in
/// the kernel and again in user space.
pub const P2P_SOCKET_BUFFER_SIZE_RANGE: RangeInclusive<u64> = 1..=16 << 20;
/// `p2p.ping_interval` (and `p2p.ping_timeout`, which is shorter): a dead peer goes unnoticed
/// for up to this long.
pub const P2P_PING_INTERVAL_RANGE: RangeInclusive<Duration> = up_to(Duration::from_secs(600));

// The largest message the canonical encoding decodes (a full block) must fit in one frame,
// with room for the frame's few header bytes, at the largest frame size allowed.
const _: () = assert!((MAX_ENCODED_BYTES as u64) < *P2P_MAX_FRAME_SIZE_RANGE.end());

/// A `host:port` peer address. The host may be a DNS name, an IPv4 address or a bracketed
/// IPv6 address (`[::1]:8000`); it is not resolved here.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddress {
    /// The host without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `p2p:` — the node-to-node TLS listener and peer management.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P2pConfig {
    pub host: String,
    pub port: u16,
    pub bootstrap_nodes: Vec<PeerAddress>,
    pub reconnect_interval: Duration,
    pub max_reconnect_attempts: u32,
    pub connection_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_peers: u32,
    pub message_compression: bool,
    /// Frames at least this large are compressed when compression is on.
    pub compression_threshold_bytes: usize,
    pub batch_size: u32,
    /// Bare integers in the file are milliseconds for this key.
    pub flush_interval: Duration,
    pub send_buffer_size_bytes: usize,
    pub recv_buffer_size_bytes: usize,
    pub max_frame_size_bytes: usize,
    pub ping_interval: Duration,
    /// Always shorter than `ping_interval`.
    pub ping_timeout: Duration,
}

pub(super) fn build_p2p(ck: &mut Checker<'_, '_>, file: P2pFile) -> P2pConfig {
    let P2pFile {
        host,
        port,
        bootstrap_nodes,
        reconnect_interval,
        max_reconnect_attempts,
        connection_timeout,
        handshake_timeout,
        max_peers,
        message_compression,
        compression_threshold,
        batch_size,
        flush_interval,
        send_buffer_size,
        recv_buffer_size,
        max_frame_size,
        ping_interval,
        ping_timeout,
    } = file;
    let mut peers = Vec::with_capacity(bootstrap_nodes.len());
    for (i, entry) in bootstrap_nodes.iter().enumerate() {
        let key = format!("p2p.bootstrap_nodes[{i}]");
        match parse_peer_address(entry) {
            Ok(peer) => peers.push(peer),
            Err(message) => ck.error(&key, message),
        }
    }
    let ping_interval = ck.seconds("p2p.ping_interval", ping_interval, P2P_PING_INTERVAL_RANGE);
    let ping_timeout = ck.seconds("p2p.ping_timeout", ping_timeout, P2P_PING_INTERVAL_RANGE);
    if ping_timeout >= ping_interval && !ping_interval.is_zero() {
        ck.error(
            "p2p.ping_timeout",
            format!(
                "{} must be shorter than p2p.ping_interval ({})",
                show_duration(ping_timeout),
                show_duration(ping_interval)
            ),
        );
    }
    let Millis(flush_interval) = flush_interval;
    let compression_threshold_bytes = ck.size(
        "p2p.compression_threshold",
        compression_threshold,
        P2P_COMPRESSION_THRESHOLD_RANGE,
    );
    let send_buffer_size_bytes = ck.size(
        "p2p.send_buffer_size",
        send_buffer_size,
        P2P_SOCKET_BUFFER_SIZE_RANGE,
    );
    let recv_buffer_size_bytes = ck.size(
        "p2p.recv_buffer_size",
        recv_buffer_size,
        P2P_SOCKET_BUFFER_SIZE_RANGE,
    );
    let max_frame_size_bytes = ck.size(
        "p2p.max_frame_size",
        max_frame_size,
        P2P_MAX_FRAME_SIZE_RANGE,
    );
    P2pConfig {
        host: ck.host("p2p.host", host),
        port: ck.port("p2p.port", port),
        bootstrap_nodes: peers,
        reconnect_interval: ck.seconds(
            "p2p.reconnect_interval",
            reconnect_interval,
            P2P_RECONNECT_INTERVAL_RANGE,
        ),
        max_reconnect_attempts: ck.int(
            "p2p.max_reconnect_attempts",
            max_reconnect_attempts,
            P2P_MAX_RECONNECT_ATTEMPTS_RANGE,
        ),
        connection_timeout: ck.seconds(
            "p2p.connection_timeout",
            connection_timeout,
            P2P_CONNECTION_TIMEOUT_RANGE,
        ),
        handshake_timeout: ck.seconds(
            "p2p.handshake_timeout",
            handshake_timeout,
            P2P_HANDSHAKE_TIMEOUT_RANGE,
        ),
        max_peers: ck.int("p2p.max_peers", max_peers, P2P_MAX_PEERS_RANGE),
        message_compression,
        compression_threshold_bytes,
        batch_size: ck.int("p2p.batch_size", batch_size, P2P_BATCH_SIZE_RANGE),
        flush_interval: ck.duration(
            "p2p.flush_interval",
            flush_interval,
            P2P_FLUSH_INTERVAL_RANGE,
        ),
        send_buffer_size_bytes,
        recv_buffer_size_bytes,
        max_frame_size_bytes,
        ping_interval,
        ping_timeout,
    }
}

/// Parses `host:port` (`[v6]:port` for IPv6).
pub(crate) fn parse_peer_address(text: &str) -> Result<PeerAddress, String> {
    let shape = || format!("expected \"host:port\", found {text:?}");
    let trimmed = text.trim();
    let (host, port) = if let Some(rest) = trimmed.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(shape)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} in {text:?} is not an IPv6 address"));
        }
        (host, port)
    } else {
        let (host, port) = trimmed.rsplit_once(':').ok_or_else(shape)?;
        if host.contains(':') {
            return Err(format!(
                "expected \"host:port\", found {text:?} (write an IPv6 address in brackets: \"[::1]:8000\")"
            ));
        }
        if !is_valid_host(host) {
            return Err(format!(
                "{host:?} in {text:?} is not a valid IP address or host name"
            ));
        }
        (host, port)
    };
    let port = match port.parse::<u64>() {
        Ok(port) if (1..=65535).contains(&port) => port as u16,
        Ok(port) => return Err(format!("port {port} is out of range (1-65535) in {text:?}")),
        Err(_) => return Err(shape()),
    };
    Ok(PeerAddress {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses() {
        assert_eq!(
            parse_peer_address("node1.aegis.network:8000").unwrap(),
            PeerAddress {
                host: "node1.aegis.network".into(),
                port: 8000
            }
        );
        assert_eq!(parse_peer_address("10.0.0.1:9").unwrap().port, 9);
        let v6 = parse_peer_address("[::1]:8000").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:8000");
        assert_eq!(
            parse_peer_address("node1").unwrap_err(),
            "expected \"host:port\", found \"node1\""
        );
        assert_eq!(
            parse_peer_address("node1:0").unwrap_err(),
            "port 0 is out of range (1-65535) in \"node1:0\""
        );
        assert!(parse_peer_address("node1:http").is_err());
        assert!(parse_peer_address("::1:8000").is_err());
        assert!(parse_peer_address("bad host:8000").is_err());
        assert!(parse_peer_address(":8000").is_err());
    }
}
