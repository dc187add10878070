//! P2P state across restarts with real `aegis run` processes (issue 14, "P2P state loss"):
//! a ban survives a restart through `data/p2p/bans.txt`; a node whose `data/p2p/` was
//! deleted re-learns its peers from `bootstrap_nodes` (and peer exchange) and reconnects
//! to every validator.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use aegis_testkit::wait::wait_until;
use common::network::{MESH_WAIT, Network};

/// Bound on a log line or a file write the test waits for.
const WAIT: Duration = Duration::from_secs(60);
/// This file's loopback network for the stranger's address.
const NET_STRANGER: u8 = 79;

fn log(net: &Network, i: usize) -> String {
    std::fs::read_to_string(net.home(i).join("logs/aegis.log")).unwrap_or_default()
}

fn count(net: &Network, i: usize, text: &str) -> usize {
    log(net, i).matches(text).count()
}

/// Opens a connection to `to` from `source` and closes it without a byte, then waits for
/// the node to close its side.
fn silent_connection(runtime: &tokio::runtime::Runtime, source: IpAddr, to: SocketAddr) {
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        socket.connect(to).await.map(|s| s.into_std().unwrap())
    });
    // A banned address may be refused at once; that is a closed connection too.
    let Ok(mut stream) = stream else {
        return;
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = std::io::Read::read(&mut stream, &mut [0u8; 1]);
}

#[test]
fn a_ban_survives_a_restart_and_a_lost_data_p2p_is_relearned_from_bootstrap_nodes() {
    let mut net = Network::generate(4);
    // node1 knows only node0 from its configuration: after losing data/p2p/ it must learn
    // the others again (peer exchange), not from a file.
    let config = std::fs::read_to_string(net.config(1)).unwrap();
    let only_node0 = config
        .lines()
        .filter(|line| {
            !line.starts_with("    - \"127.0.0.1:")
                || line.ends_with(&format!(":{}\"", net.p2p_port(0)))
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(net.config(1), only_node0 + "\n").unwrap();
    for i in 0..4 {
        net.start_node(i);
    }
    net.wait_full_mesh();

    // A stranger that keeps opening silent connections to node2 is banned (ten are free,
    // five more count as failures: security.rate_limiting.max_failures).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stranger = IpAddr::from([127, 0, NET_STRANGER, 200]);
    let node2 = SocketAddr::from(([127, 0, 0, 1], net.p2p_port(2)));
    for _ in 0..15 {
        silent_connection(&runtime, stranger, node2);
    }
    let banned = format!("Unauthorized access from {stranger}: banned for 3600 s");
    wait_until(
        WAIT,
        || format!("{banned} in node2's log\n{}", log(&net, 2)),
        || count(&net, 2, &banned) == 1,
    );
    let bans = net.home(2).join("data/p2p/bans.txt");
    wait_until(
        WAIT,
        || format!("the ban in {}", bans.display()),
        || std::fs::read_to_string(&bans).is_ok_and(|t| t.contains(&format!("\n{stranger} "))),
    );

    // Restarted, node2 still refuses the stranger: the ban came back from the file.
    let status = net.stop_node(2);
    assert!(status.success(), "{status}");
    net.start_node(2);
    net.wait_full_mesh();
    assert!(
        count(&net, 2, "Restored 1 P2P bans from") == 1,
        "{}",
        log(&net, 2)
    );
    let banned_after_restart =
        format!("Unauthorized access from {stranger}: connection refused: address banned (35");
    let before = count(&net, 2, &banned_after_restart);
    silent_connection(&runtime, stranger, node2);
    wait_until(
        WAIT,
        || {
            format!(
                "the stranger refused as banned after the restart\n{}",
                log(&net, 2)
            )
        },
        || count(&net, 2, &banned_after_restart) > before,
    );
    let status = net.status(2).unwrap();
    assert_eq!(status["p2p"]["banned_ips"], 1, "{status}");

    // node1 loses data/p2p/ (SIGKILL, directory deleted): it starts from bootstrap_nodes
    // (node0 alone), learns the others and is connected to all three again.
    net.kill_node(1);
    let p2p_dir = net.home(1).join("data/p2p");
    std::fs::remove_dir_all(&p2p_dir).unwrap();
    net.start_node(1);
    wait_until(
        MESH_WAIT,
        || {
            format!(
                "node1 connected to every validator again: peers {:?}\n{}",
                net.peers(1),
                net.logs()
            )
        },
        || net.peers(1) == Some(3),
    );
    let peers_file = p2p_dir.join("peers.json");
    wait_until(
        WAIT,
        || {
            format!(
                "{} lists every other validator again: {:?}",
                peers_file.display(),
                std::fs::read_to_string(&peers_file)
            )
        },
        || {
            std::fs::read_to_string(&peers_file).is_ok_and(|text| {
                [0, 2, 3]
                    .iter()
                    .all(|j| text.contains(&format!("127.0.0.1:{}", net.p2p_port(*j))))
            })
        },
    );
}
