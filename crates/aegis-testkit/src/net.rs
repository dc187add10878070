//! Addresses and ports for tests that run real sockets.
//!
//! A test gets its own loopback addresses, `127.0.<net>.<i + 1>` (Linux routes all of
//! 127/8 to `lo`), so per-IP limits and bans of one test never touch another, and its
//! listeners take free ports chosen at random below the ephemeral range ([`free_port_run`]),
//! so concurrent runs never collide on fixed ones.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Node `i`'s address in the loopback network `net`: `127.0.<net>.<i + 1>`.
pub fn loopback(net: u8, i: usize) -> IpAddr {
    let host = u8::try_from(i + 1).expect("at most 254 nodes in a loopback network");
    IpAddr::from([127, 0, net, host])
}

/// Lowest port handed out: above the well-known and common service ports.
const LOWEST_PORT: u32 = 10_000;
/// Where Linux hands out ephemeral ports for outgoing connections and `bind(0)`.
const EPHEMERAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// Linux's default first ephemeral port, when [`EPHEMERAL_PORT_RANGE`] cannot be read.
const DEFAULT_EPHEMERAL_START: u32 = 32_768;
/// Candidates probed before giving up.
const ATTEMPTS: u32 = 1_000;
/// Ports this test process has handed out: two tests asking at once never get the same.
static HANDED_OUT: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A port on `ip` that was free a moment ago, for tests that must know an address before
/// its listener starts (often in another process). See [`free_port_run`].
pub fn free_port(ip: IpAddr) -> u16 {
    free_port_run(&[ip], &[0])
}

/// A base port `P` such that `P + offset` is free now on every one of `hosts` for each of
/// `offsets`. The ports are taken below the kernel's ephemeral range, so no outgoing
/// connection of any process on this host (a node's dial, a database client) and no
/// `bind(0)` takes one between this probe and the real bind; and never one this test process
/// handed out before, so concurrent tests do not race for the same port.
pub fn free_port_run(hosts: &[IpAddr], offsets: &[u16]) -> u16 {
    let ephemeral_start = ephemeral_start().unwrap_or(DEFAULT_EPHEMERAL_START);
    let widest = offsets.iter().copied().max().map_or(0, u32::from);
    let span = ephemeral_start
        .checked_sub(LOWEST_PORT + widest)
        .filter(|span| *span > 0)
        .unwrap_or_else(|| {
            panic!("no room below the ephemeral ports ({ephemeral_start}, {EPHEMERAL_PORT_RANGE})")
        });
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let seed = nanos ^ std::process::id().rotate_left(16);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for attempt in 0..ATTEMPTS {
        let base = LOWEST_PORT + seed.wrapping_add(attempt.wrapping_mul(7_919)) % span;
        let ports: Vec<u32> = offsets
            .iter()
            .map(|offset| base + u32::from(*offset))
            .collect();
        let usable = |port: &u32| {
            !handed_out.contains(port)
                && u16::try_from(*port)
                    .is_ok_and(|port| hosts.iter().all(|ip| port_is_free(*ip, port)))
        };
        if ports.iter().all(usable) {
            handed_out.extend(ports);
            return u16::try_from(base).expect("below the ephemeral ports");
        }
    }
    panic!("no free ports below {ephemeral_start} after {ATTEMPTS} tries");
}

/// The kernel's first ephemeral port (two numbers in a small file; at most 64 bytes read).
fn ephemeral_start() -> Option<u32> {
    let mut text = String::new();
    std::fs::File::open(EPHEMERAL_PORT_RANGE)
        .and_then(|file| file.take(64).read_to_string(&mut text))
        .ok()?;
    text.split_whitespace().next()?.parse().ok()
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

    #[test]
    fn a_run_of_ports_is_free_below_the_ephemeral_range_and_never_handed_out_twice() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let offsets = [0, 80, 1090];
        let first = free_port_run(&[ip], &offsets);
        let second = free_port_run(&[ip], &offsets);
        let ports = |base: u16| offsets.map(|offset| base + offset);
        assert!(
            ports(first)
                .iter()
                .all(|port| !ports(second).contains(port))
        );
        let ephemeral_start = ephemeral_start().unwrap();
        for port in ports(first).into_iter().chain(ports(second)) {
            assert!(u32::from(port) < ephemeral_start, "{port} is ephemeral");
            assert!(port_is_free(ip, port));
        }
    }
}
