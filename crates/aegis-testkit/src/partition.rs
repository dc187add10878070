//! Network partitions made for real, with nftables: links between endpoints (an IP address
//! and a TCP port, one per node) are cut and healed with `drop` rules in a table of this
//! test's own, so tests running at the same time never touch each other's rules.
//!
//! Each node of a partition test listens on its own loopback address ([`crate::net::loopback`])
//! and dials from it (the P2P layer binds outgoing connections to a specific listen
//! address), so a link between two nodes is exactly the TCP traffic between their two
//! addresses to or from their P2P ports. A cut drops every packet of that traffic in the
//! `output` hook (loopback traffic passes it once): new connections time out, live ones
//! stall until the P2P ping timeout closes them, as on a real network that lost a link. The
//! API and metrics ports are not touched, so the test keeps watching every node.
//!
//! The table is `inet aegis_test_<pid>_<n>`; [`Partition`] deletes it when dropped, however
//! the test ends, and deletes tables left by test processes that no longer run (killed with
//! SIGKILL) when it creates its own. Needs root and the `nft` command (Debian's `nftables`,
//! installed by `scripts/install-test-deps.sh`).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every table this module creates.
const TABLE_PREFIX: &str = "aegis_test_";
/// Tables created by this process so far, for unique names.
static TABLES: AtomicU32 = AtomicU32::new(0);

/// One side of a link: a node's address and its P2P port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Endpoint {
        Endpoint { ip, port }
    }
}

/// The links cut by one test; see the module documentation. Dropping it heals everything.
#[derive(Debug)]
pub struct Partition {
    table: String,
    /// Cut links, each as (smaller, larger) endpoint.
    cut: BTreeSet<(Endpoint, Endpoint)>,
}

/// Runs `nft` with `script` on its standard input (`nft -f -`, applied atomically).
fn nft_script(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| {
            format!(
                "cannot run nft ({error}): partition tests need the nft command and root; \
                 run scripts/install-test-deps.sh as root (Debian's nftables)"
            )
        })?;
    child
        .stdin
        .take()
        .expect("nft's stdin is piped")
        .write_all(script.as_bytes())
        .map_err(|error| format!("write the nft script: {error}"))?;
    let output = child
        .wait_with_output()
        .map_err(|error| format!("wait for nft: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -f failed ({}): {}\nscript:\n{script}\n(partition tests run as root, as CI does)",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn nft(args: &[&str]) -> Result<String, String> {
    let output = Command::new("nft")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run nft {args:?}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "nft {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Deletes tables of this module whose process is gone (a test killed before its drop ran).
fn delete_stale_tables() {
    let Ok(tables) = nft(&["list", "tables", "inet"]) else {
        return;
    };
    for line in tables.lines() {
        let Some(name) = line.trim().strip_prefix("table inet ") else {
            continue;
        };
        let Some(rest) = name.strip_prefix(TABLE_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('_').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = nft(&["delete", "table", "inet", name]);
        }
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}

/// The rules that drop every packet between `a` and `b` to or from their ports.
fn drop_rules(table: &str, a: Endpoint, b: Endpoint) -> String {
    let mut rules = String::new();
    for (from, to) in [(a, b), (b, a)] {
        let (f, t) = (family(from.ip), family(to.ip));
        // from -> to's listening port (connections `from` dials), and from's listening port
        // -> to (replies on connections `to` dialled).
        rules.push_str(&format!(
            "add rule inet {table} output {f} saddr {} {t} daddr {} tcp dport {} drop\n",
            from.ip, to.ip, to.port
        ));
        rules.push_str(&format!(
            "add rule inet {table} output {f} saddr {} {t} daddr {} tcp sport {} drop\n",
            from.ip, to.ip, from.port
        ));
    }
    rules
}

impl Partition {
    /// Creates this test's table with an empty `output` chain: nothing is cut yet.
    pub fn new() -> Result<Partition, String> {
        delete_stale_tables();
        let table = format!(
            "{TABLE_PREFIX}{}_{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        nft_script(&format!(
            "add table inet {table}\n\
             add chain inet {table} output {{ type filter hook output priority 0; policy accept; }}\n"
        ))?;
        Ok(Partition {
            table,
            cut: BTreeSet::new(),
        })
    }

    /// The nftables table of this partition (`nft list table inet <name>` shows its rules).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Rewrites the chain to drop exactly the cut links, in one atomic `nft -f`.
    fn apply(&self) {
        let table = &self.table;
        let mut script = format!("flush chain inet {table} output\n");
        for (a, b) in &self.cut {
            script.push_str(&drop_rules(table, *a, *b));
        }
        nft_script(&script).unwrap_or_else(|error| panic!("{error}"));
    }

    fn key(a: Endpoint, b: Endpoint) -> (Endpoint, Endpoint) {
        if a <= b { (a, b) } else { (b, a) }
    }

    /// Cuts the link between `a` and `b` (both directions).
    pub fn cut(&mut self, a: Endpoint, b: Endpoint) {
        self.cut.insert(Self::key(a, b));
        self.apply();
    }

    /// Heals the link between `a` and `b`.
    pub fn heal(&mut self, a: Endpoint, b: Endpoint) {
        self.cut.remove(&Self::key(a, b));
        self.apply();
    }

    /// Cuts `node` off from each of `others`.
    pub fn isolate(&mut self, node: Endpoint, others: &[Endpoint]) {
        for other in others.iter().filter(|other| **other != node) {
            self.cut.insert(Self::key(node, *other));
        }
        self.apply();
    }

    /// Cuts every link between a node of `left` and a node of `right`.
    pub fn split(&mut self, left: &[Endpoint], right: &[Endpoint]) {
        for a in left {
            for b in right {
                self.cut.insert(Self::key(*a, *b));
            }
        }
        self.apply();
    }

    /// Heals every link.
    pub fn heal_all(&mut self) {
        self.cut.clear();
        self.apply();
    }

    /// The links cut now.
    pub fn cut_links(&self) -> Vec<(Endpoint, Endpoint)> {
        self.cut.iter().copied().collect()
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Err(error) = nft(&["delete", "table", "inet", &self.table]) {
            eprintln!(
                "partition: could not delete nftables table {}: {error}",
                self.table
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_drops_both_directions_to_and_from_the_p2p_ports_only() {
        let a = Endpoint::new(IpAddr::from([127, 0, 9, 1]), 4001);
        let b = Endpoint::new(IpAddr::from([127, 0, 9, 2]), 4002);
        let rules = drop_rules("t", a, b);
        assert_eq!(
            rules,
            "add rule inet t output ip saddr 127.0.9.1 ip daddr 127.0.9.2 tcp dport 4002 drop\n\
             add rule inet t output ip saddr 127.0.9.1 ip daddr 127.0.9.2 tcp sport 4001 drop\n\
             add rule inet t output ip saddr 127.0.9.2 ip daddr 127.0.9.1 tcp dport 4001 drop\n\
             add rule inet t output ip saddr 127.0.9.2 ip daddr 127.0.9.1 tcp sport 4002 drop\n"
        );
        assert_eq!(Partition::key(b, a), (a, b));
    }

    /// The real thing (root and nft, as in CI): a cut link refuses new connections until
    /// it is healed, and the table is gone once the partition is dropped.
    #[test]
    fn a_cut_link_carries_nothing_until_healed_and_the_table_goes_with_the_partition() {
        use std::net::{SocketAddr, TcpListener, TcpStream};
        use std::time::Duration;
        let server = TcpListener::bind((IpAddr::from([127, 0, 69, 2]), 0)).unwrap();
        let to = Endpoint::new(
            IpAddr::from([127, 0, 69, 2]),
            server.local_addr().unwrap().port(),
        );
        // An unbound client connects from 127.0.0.1.
        let from = Endpoint::new(IpAddr::from([127, 0, 0, 1]), 1);
        let target = SocketAddr::new(to.ip, to.port);
        let connects = || TcpStream::connect_timeout(&target, Duration::from_millis(500)).is_ok();
        assert!(connects());
        let mut partition = Partition::new().unwrap_or_else(|error| panic!("{error}"));
        let table = partition.table().to_owned();
        partition.cut(from, to);
        assert!(!connects(), "a cut link carries no connection");
        assert_eq!(partition.cut_links(), vec![(from, to)]);
        partition.heal(from, to);
        assert!(connects(), "a healed link carries connections again");
        partition.isolate(to, &[from]);
        assert!(!connects());
        drop(partition);
        assert!(connects(), "dropping the partition heals everything");
        let tables = nft(&["list", "tables", "inet"]).unwrap();
        assert!(!tables.contains(&table), "{table} deleted: {tables}");
    }
}
