//! Addresses and ports for tests that run real sockets.
//!
//! A test gets its own loopback addresses, `127.0.<net>.<i + 1>` (Linux routes all of
//! 127/8 to `lo`), so per-IP limits and bans of one test never touch another, and its
//! listeners take ephemeral ports, so concurrent runs never collide on fixed ones.

use std::net::{IpAddr, SocketAddr, TcpListener};

/// Node `i`'s address in the loopback network `net`: `127.0.<net>.<i + 1>`.
pub fn loopback(net: u8, i: usize) -> IpAddr {
    let host = u8::try_from(i + 1).expect("at most 254 nodes in a loopback network");
    IpAddr::from([127, 0, net, host])
}

/// A port on `ip` that was free a moment ago, for tests that must know an address before
/// its listener starts. Someone else may take it in between: a test on its own loopback
/// address ([`loopback`]) has nothing to race with.
pub fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|error| panic!("find a free port on {ip}: {error}"))
}

/// Whether `ip:port` can be bound now.
pub fn port_is_free(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_number_nodes_from_one() {
        assert_eq!(loopback(12, 0), IpAddr::from([127, 0, 12, 1]));
        assert_eq!(loopback(12, 3), IpAddr::from([127, 0, 12, 4]));
    }

    #[test]
    fn a_bound_port_is_not_free() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let listener = TcpListener::bind(SocketAddr::new(ip, free_port(ip))).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!port_is_free(ip, port));
        drop(listener);
        assert!(port_is_free(ip, port));
    }
}
