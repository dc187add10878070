//! Issue 10, findings 1 to 3: honest validators always get in. A stranger on a validator's
//! own address (openssl s_client probes, stalled one-byte connections, silent connections)
//! and strangers elsewhere filling the handshake table cannot keep genesis validators out;
//! every refusal is logged, rate-limited per address with counts, in lines the shipped
//! fail2ban filter reads. Real sockets and real `openssl s_client` processes on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use aegis_p2p::P2pNetwork;
use aegis_testkit::net::free_port;
use aegis_testkit::p2p::{Cluster, address, start};
use aegis_testkit::wait_async::wait_until;
use common::{capture_log, is_warning_with, log_lines, wait_for_warning};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(15);
/// How soon validators must form their mesh while an address of theirs is attacked: well
/// under the 30 s production redial interval, and far under a one-hour ban.
const MESH_BOUND: Duration = Duration::from_secs(10);

async fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

/// `openssl s_client` from `source` to `node`: completes TLS 1.3 without a client
/// certificate, as an operator checking the port does.
async fn s_client(source: IpAddr, node: SocketAddr) {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &node.to_string(),
                "-tls1_3",
                "-bind",
            ])
            .arg(format!("{source}:0"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("openssl is installed")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("TLSv1.3"),
        "s_client did not complete TLS:\n{stdout}"
    );
}

fn full_mesh(nodes: &[&P2pNetwork]) -> bool {
    nodes
        .iter()
        .all(|node| node.peer_count() == nodes.len() - 1)
}

/// Finding 1: five `s_client` probes from the address of node0's own validators banned
/// that address for an hour, and node0 then refused its validators. Now a genesis
/// validator's address is never banned by the node: the probes are logged as failures, and
/// the validator joins at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s_client_probes_from_a_validators_address_do_not_ban_it() {
    let log = capture_log();
    let cluster = Cluster::new(2, 40);
    let (a, _ia) = start(cluster.config(0, 0, vec![]), cluster.identity(0)).await;
    let validator_ip = cluster.ip(1);
    for _ in 0..6 {
        s_client(validator_ip, a.local_addr()).await;
    }
    wait_until(WAIT, "six probes counted as failures", || {
        a.metrics().auth_failures.get() >= 6
    })
    .await;
    let failed = format!(
        "Authentication failed for peer from {validator_ip}: no client certificate presented"
    );
    wait_for_warning(log, &[&failed]).await;
    assert!(!a.is_banned(validator_ip));
    assert_eq!(a.banned_count(), 0);
    let started = tokio::time::Instant::now();
    let (b, _ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(MESH_BOUND, "the validator joins after the probes", || {
        full_mesh(&[&a, &b])
    })
    .await;
    assert_eq!(a.metrics().rejected_total("banned"), 0);
    assert!(started.elapsed() < MESH_BOUND);
    a.shutdown();
    b.shutdown();
}

/// Finding 1, the other half: an address banned while no validator was known there (a
/// validator behind an address not in the genesis) is unbanned as soon as a validator
/// authenticates from it, here through node0's own dial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_is_lifted_when_a_validator_authenticates_from_the_address() {
    let log = capture_log();
    let cluster = Cluster::new(2, 41);
    // Validator 1 runs on an address the genesis does not list.
    let moved = IpAddr::from([127, 0, 41, 50]);
    let port = free_port(moved);
    let mut config0 = cluster.config(0, 0, vec![format!("{moved}:{port}")]);
    config0.rate_limiting.max_failures = 3;
    let (a, _ia) = start(config0, cluster.identity(0)).await;
    for _ in 0..3 {
        let mut plain = connect_from(moved, a.local_addr()).await.unwrap();
        plain.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    }
    wait_until(WAIT, "the address banned", || a.is_banned(moved)).await;
    let mut config1 = cluster.config(1, port, vec![address(a.local_addr())]);
    config1.host = moved.to_string();
    let (b, _ib) = start(config1, cluster.identity(1)).await;
    wait_until(WAIT, "the ban lifted and the pair connected", || {
        !a.is_banned(moved) && full_mesh(&[&a, &b])
    })
    .await;
    let lifted = format!("Ban on {moved} lifted: validator node1 authenticated from it");
    wait_until(WAIT, "the lift logged", || {
        log_lines(log)
            .iter()
            .any(|line| line["message"].as_str() == Some(lifted.as_str()))
    })
    .await;
    a.shutdown();
    b.shutdown();
}

/// Opens a connection from `source` to each target every `pace`, sends one byte of a TLS
/// handshake and stalls; keeps the newest `held` of them open. Runs until aborted.
fn stall_flood(
    source: IpAddr,
    targets: Vec<SocketAddr>,
    pace: Duration,
    held: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut open = VecDeque::new();
        loop {
            for target in &targets {
                if let Ok(mut stream) = connect_from(source, *target).await {
                    let _ = stream.write_all(&[0x16]).await;
                    open.push_back(stream);
                }
            }
            while open.len() > held {
                open.pop_front();
            }
            // Pacing of the attack, not synchronisation.
            tokio::time::sleep(pace).await;
        }
    })
}

/// Finding 2: about 8 stalled connections a second from a validator's address used up
/// the per-address token bucket and the 8 handshake slots its validator shared with them,
/// so the restarted validator stayed out for the whole attack. Now the address's slots
/// are its own and a stalled handshake gives way to a newer one: at 100 stalls a second
/// on each node, the validator joins within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_from_a_validators_address_cannot_keep_it_out() {
    let log = capture_log();
    let cluster = Cluster::new(3, 42);
    let (a, _ia) = start(cluster.config(0, 0, vec![]), cluster.identity(0)).await;
    let (b, _ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(WAIT, "a and b connected", || full_mesh(&[&a, &b])).await;
    let attacked = cluster.ip(2);
    let flood = stall_flood(
        attacked,
        vec![a.local_addr(), b.local_addr()],
        Duration::from_millis(10),
        64,
    );
    wait_until(WAIT, "the address's slots full and evicting", || {
        a.metrics().rejected_total("evicted") > 0 && b.metrics().rejected_total("evicted") > 0
    })
    .await;
    let (c, _ic) = start(
        cluster.config(2, 0, vec![address(a.local_addr()), address(b.local_addr())]),
        cluster.identity(2),
    )
    .await;
    wait_until(
        MESH_BOUND,
        "the validator joins during the stall flood",
        || full_mesh(&[&a, &b, &c]),
    )
    .await;
    assert!(!flood.is_finished(), "the flood ran throughout");
    flood.abort();
    assert!(!a.is_banned(attacked) && !b.is_banned(attacked));
    assert_eq!(a.metrics().rejected_total("rate_limited"), 0);
    let evicted =
        format!("Unauthorized access from {attacked}: connection refused: handshake evicted");
    wait_for_warning(log, &[&evicted]).await;
    a.shutdown();
    b.shutdown();
    c.shutdown();
}

/// Finding 3: 14 addresses x 8 silent connections filled the handshake table, nothing was
/// counted, and a restarting validator waited. Now the strangers' table is theirs alone
/// (the validator joins while it is full, every refusal is logged), and silent connections
/// past the allowance are failures that end in a ban.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_strangers_cannot_crowd_out_validators_and_are_banned() {
    let log = capture_log();
    let cluster = Cluster::new(2, 43);
    let mut config = cluster.config(0, 0, vec![]);
    config.handshake_timeout = Duration::from_secs(30);
    let (a, _ia) = start(config, cluster.identity(0)).await;
    let stranger = |k: u8| IpAddr::from([127, 0, 43, 100 + k]);
    let mut held = Vec::new();
    for k in 0..14 {
        for _ in 0..8 {
            held.push(connect_from(stranger(k), a.local_addr()).await.unwrap());
        }
    }
    wait_until(WAIT, "the strangers' handshake table full", || {
        a.metrics().rejected_total("handshake_limit") > 0
    })
    .await;
    let refused = "connection refused: too many handshakes in progress from addresses not known as validators'";
    wait_for_warning(log, &["Unauthorized access from 127.0.43.1", refused]).await;
    let (b, _ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(
        MESH_BOUND,
        "the validator joins beside the full table",
        || full_mesh(&[&a, &b]),
    )
    .await;
    drop(held);

    // One address opening and closing connections without a word (at b, whose table the
    // strangers did not fill): free ten times in the failure window, then failures, then
    // a ban. Each probe half-closes and waits for b to close its side, so that b sees one
    // silent connection at a time rather than a burst its per-address bound refuses.
    let prober = IpAddr::from([127, 0, 43, 200]);
    let allowed = aegis_p2p::limits::SILENT_CONNECTIONS_ALLOWED;
    for _ in 0..allowed + 5 {
        let mut probe = connect_from(prober, b.local_addr()).await.unwrap();
        probe.shutdown().await.unwrap();
        let closed = tokio::time::timeout(WAIT, probe.read(&mut [0u8; 1])).await;
        assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");
    }
    wait_until(WAIT, "the prober banned", || b.is_banned(prober)).await;
    let silent = format!(
        "Authentication failed for peer from {prober}: connection closed without sending anything ({} such connections",
        allowed + 1
    );
    wait_for_warning(log, &[&silent]).await;
    wait_for_warning(
        log,
        &[&format!("Unauthorized access from {prober}: banned for ")],
    )
    .await;
    assert!(full_mesh(&[&a, &b]));
    a.shutdown();
    b.shutdown();
}

/// Every refusal is logged: the first few of a window one by one, the rest counted in one
/// line when the window ends, all in the form the shipped fail2ban filter reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_per_address_with_counts_in_the_fail2ban_form() {
    let log = capture_log();
    let cluster = Cluster::new(1, 44);
    let mut config = cluster.config(0, 0, vec![]);
    config.rate_limiting.requests_per_minute = 1;
    config.rate_limiting.burst_size = 2;
    config.handshake_timeout = Duration::from_secs(30);
    config.refusal_log_interval = Duration::from_secs(1);
    let (a, _ia) = start(config, cluster.identity(0)).await;
    let flood_ip = IpAddr::from([127, 0, 44, 200]);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from(flood_ip, a.local_addr()).await.unwrap());
    }
    wait_until(WAIT, "eighteen refused", || {
        a.metrics().rejected_total("rate_limited") == 18
    })
    .await;
    let prefix = format!("Unauthorized access from {flood_ip}: ");
    let summary = format!("{prefix}13 more connections refused in the last 1s");
    wait_for_warning(log, &[&summary, "connection rate limit exceeded"]).await;
    let lines: Vec<String> = log_lines(log)
        .iter()
        .filter(|line| is_warning_with(line, &prefix))
        .map(|line| line["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(
        lines[..5].iter().all(|line| line.starts_with(&format!(
            "{prefix}connection refused: connection rate limit exceeded"
        ))),
        "{lines:#?}"
    );
    // fail2ban reads each of those lines as a failure of that address.
    let filter = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/fail2ban/filter.d/aegis.conf");
    let output = std::process::Command::new("fail2ban-regex")
        .args(["-o", "ip"])
        .arg(log)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex is installed (scripts/install-test-deps.sh)");
    let matched = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.trim() == flood_ip.to_string())
        .count();
    assert_eq!(matched, 6, "{}", String::from_utf8_lossy(&output.stdout));
    drop(held);
    a.shutdown();
}
