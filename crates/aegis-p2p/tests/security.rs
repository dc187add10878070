//! What the P2P port does with clients that are not honest validators: `openssl s_client`,
//! plaintext, garbage, oversized and truncated frames, stalled handshakes, floods, expired
//! and foreign certificates; and what it accepts: RSA/ECDSA/Ed25519 certificates, renewed
//! certificates without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aegis_p2p::auth::{EXPORTER_BYTES, EXPORTER_LABEL, Role, exchange_hello};
use aegis_p2p::{Message, P2pNetwork, TlsFiles, TlsStore, tags};
use aegis_testkit::p2p::{Cluster, address, start, test_config};
use aegis_testkit::tls::{Ca, KeyKind, expired, self_signed};
use aegis_testkit::wait_async::{retry_for, retry_until, wait_for_onset, wait_until};
use aegis_types::ValidatorId;
use common::{capture_log, is_warning_with, log_lines, wait_for_warning};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(15);

async fn connect_from(source: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

async fn tls_client(
    files: &TlsFiles,
    source: IpAddr,
    to: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let store = TlsStore::load(files.clone()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(store.client_config().unwrap());
    let tcp = connect_from(source, to).await;
    connector
        .connect(ServerName::try_from("node0").unwrap(), tcp)
        .await
        .unwrap()
}

async fn served_certificate(
    node: &P2pNetwork,
    client: &TlsFiles,
    source: IpAddr,
) -> CertificateDer<'static> {
    let tls = tls_client(client, source, node.local_addr()).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

async fn connected_pair(
    cluster: &Cluster,
) -> (P2pNetwork, P2pNetwork, aegis_p2p::Inbox, aegis_p2p::Inbox) {
    let (a, ia) = start(cluster.config(0, 0, vec![]), cluster.identity(0)).await;
    let (b, ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(WAIT, "a and b connected", || {
        a.peer_count() == 1 && b.peer_count() == 1
    })
    .await;
    (a, b, ia, ib)
}

async fn still_talking(a: &P2pNetwork, ib: &mut aegis_p2p::Inbox) {
    a.send(
        ValidatorId(1),
        Message::new(tags::CONSENSUS, b"alive".to_vec()),
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(WAIT, ib.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.payload[..], b"alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_completes_tls13_and_sees_the_node_certificate() {
    let cluster = Cluster::new(1, 21);
    let config = cluster.config(0, 0, vec![]);
    let cert_pem = std::fs::read_to_string(&config.tls.cert_file).unwrap();
    let (node, _inbox) = start(config, cluster.identity(0)).await;
    let target = address(node.local_addr());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &target,
                "-tls1_3",
                "-servername",
                "node0",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("openssl is installed")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("TLSv1.3"), "no TLS 1.3 in:\n{stdout}");
    let served = stdout
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END CERTIFICATE-----").next())
        .expect("s_client printed the certificate");
    let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    assert!(
        strip(&cert_pem).contains(&strip(served)),
        "s_client shows the node certificate"
    );
    // The probe had no client certificate: refused and counted as a failed authentication.
    wait_until(WAIT, "probe counted", || {
        node.metrics().auth_failures.get() >= 1
    })
    .await;
    node.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_counted_and_honest_peers_keep_talking() {
    let log = capture_log();
    let cluster = Cluster::new(2, 22);
    let (a, b, _ia, mut ib) = connected_pair(&cluster).await;
    let target = a.local_addr();
    let attacker = |k: u8| IpAddr::from([127, 0, 22, 100 + k]);
    let attacker_tls = self_signed(cluster.dir.path(), "attacker", KeyKind::Ecdsa);

    // Plaintext on the TLS port.
    let mut plain = connect_from(attacker(0), target).await;
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut sink))
        .await
        .unwrap();

    // A handshake that never finishes: connect and say nothing.
    let mut silent = connect_from(attacker(1), target).await;

    // Garbage after the TLS handshake instead of a Hello.
    let mut garbage = tls_client(&attacker_tls, attacker(2), target).await;
    garbage.write_all(&[0xde; 64]).await.unwrap();
    garbage.flush().await.unwrap();

    // An oversized frame announced after the TLS handshake.
    let mut oversized = tls_client(&attacker_tls, attacker(3), target).await;
    oversized.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    oversized.flush().await.unwrap();

    // A truncated frame, then the connection closes.
    let mut truncated = tls_client(&attacker_tls, attacker(4), target).await;
    truncated.write_all(&[0, 0, 0, 100, 1, 0, 3]).await.unwrap();
    truncated.shutdown().await.unwrap();

    wait_until(WAIT, "five failures counted", || {
        a.metrics().auth_failures.get() == 5
    })
    .await;
    // The stalled connection was closed by the handshake timeout.
    let n = tokio::time::timeout(WAIT, silent.read(&mut [0u8; 16]))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
    drop((garbage, oversized));
    // Each offender is named in a WARNING line of the JSON log, with the reason.
    for (k, reason) in [
        (0, "not a TLS connection"),
        (1, "handshake not finished"),
        (2, ""),
        (3, ""),
        (4, ""),
    ] {
        let from = format!("Authentication failed for peer from {}: ", attacker(k));
        wait_for_warning(log, &[&from, reason]).await;
    }
    for line in log_lines(log)
        .iter()
        .filter(|line| is_warning_with(line, "Authentication failed for peer from 127.0.22."))
    {
        assert_eq!(line["logger"], "aegis_p2p::network", "{line}");
    }
    assert_eq!(a.peer_count(), 1);
    still_talking(&a, &mut ib).await;
    a.shutdown();
    b.shutdown();
}

/// Validator `k` of `cluster` authenticated by hand (TLS, then its Hello) from its own
/// address, so a test can then send whatever it likes on the session.
async fn authenticated_client(
    cluster: &Cluster,
    k: usize,
    to: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let files = self_signed(&cluster.node_dir(k), &format!("client{k}"), KeyKind::Ecdsa);
    let mut tls = tls_client(&files, cluster.ip(k), to).await;
    let exporter = tls
        .get_ref()
        .1
        .export_keying_material([0u8; EXPORTER_BYTES], EXPORTER_LABEL, None)
        .unwrap();
    let peer = exchange_hello(&mut tls, &exporter, Role::Dialer, &cluster.identity(k), 0)
        .await
        .unwrap();
    assert_eq!(peer.id, ValidatorId(0));
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_after_authentication_disconnects_logs_and_counts() {
    let log = capture_log();
    let cluster = Cluster::new(5, 34);
    let (a, b, _ia, mut ib) = connected_pair(&cluster).await;
    let target = a.local_addr();
    // Well-formed length, then bytes that are no envelope (version 0xde).
    let mut garbage = vec![0, 0, 0, 32];
    garbage.extend_from_slice(&[0xde; 32]);
    let cases: [(usize, Vec<u8>, &str); 3] = [
        (2, garbage, "unsupported envelope version"),
        (3, u32::MAX.to_be_bytes().to_vec(), "exceeds the maximum"),
        (4, vec![0, 0, 0, 100, 1, 0, 3], "truncated frame"),
    ];
    for (n, (k, bytes, reason)) in cases.into_iter().enumerate() {
        let mut client = authenticated_client(&cluster, k, target).await;
        wait_until(WAIT, "validator registered", || {
            a.peers().iter().any(|p| p.id == ValidatorId(k as u16))
        })
        .await;
        client.write_all(&bytes).await.unwrap();
        client.flush().await.unwrap();
        if k == 4 {
            // The rest of the frame never comes: the peer closes its side.
            client.shutdown().await.unwrap();
        }
        // The node closes the session: reading ends (after whatever it had queued).
        let mut sink = Vec::new();
        let read = tokio::time::timeout(WAIT, client.read_to_end(&mut sink)).await;
        assert!(
            read.is_ok(),
            "validator {k}: the node kept the session open"
        );
        wait_until(WAIT, "violation counted, peer dropped", || {
            a.metrics().protocol_violations.get() == n as u64 + 1
                && !a.peers().iter().any(|p| p.id == ValidatorId(k as u16))
        })
        .await;
        let from = format!("Protocol violation by peer from {}: ", cluster.ip(k));
        wait_for_warning(log, &[&from, reason]).await;
    }
    // Not authentication failures (the certificates and keys were fine), and no ban.
    assert_eq!(a.metrics().auth_failures.get(), 0);
    assert_eq!(a.banned_count(), 0);
    assert_eq!(a.peer_count(), 1);
    still_talking(&a, &mut ib).await;
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_peers_refuses_one_more_validator() {
    let log = capture_log();
    let cluster = Cluster::new(3, 35);
    let mut config = cluster.config(0, 0, vec![]);
    config.max_peers = 1;
    let (a, _ia) = start(config, cluster.identity(0)).await;
    let (b, mut ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(WAIT, "b connected", || a.peer_count() == 1).await;
    let (c, _ic) = start(
        cluster.config(2, 0, vec![address(a.local_addr())]),
        cluster.identity(2),
    )
    .await;
    // c authenticates, is refused, and redials later: refused again.
    wait_until(WAIT, "c refused twice", || {
        a.metrics().rejected_total("max_peers") >= 2
    })
    .await;
    let refused = format!("Refused peer from {}: max_peers reached", cluster.ip(2));
    wait_for_warning(log, &[&refused]).await;
    let peers: Vec<ValidatorId> = a.peers().iter().map(|p| p.id).collect();
    assert_eq!(peers, [ValidatorId(1)]);
    still_talking(&a, &mut ib).await;
    a.shutdown();
    b.shutdown();
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_connection_rate_limit_refuses_beyond_the_burst() {
    let log = capture_log();
    let cluster = Cluster::new(2, 36);
    let mut config = cluster.config(0, 0, vec![]);
    // One new token a minute: within this test the bucket only holds the burst.
    config.rate_limiting.requests_per_minute = 1;
    config.rate_limiting.burst_size = 3;
    config.handshake_timeout = Duration::from_secs(30);
    let (a, _ia) = start(config, cluster.identity(0)).await;
    let flood_ip = IpAddr::from([127, 0, 36, 200]);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(connect_from(flood_ip, a.local_addr()).await);
    }
    wait_until(WAIT, "seven connections refused", || {
        a.metrics().rejected_total("rate_limited") == 7
    })
    .await;
    // Connections are accepted in order: the burst waits in its handshake, the rest
    // were closed at once.
    for stream in &mut held[3..] {
        let n = tokio::time::timeout(WAIT, stream.read(&mut [0u8; 1]))
            .await
            .expect("a refused connection is closed");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
    for stream in &held[..3] {
        let open = stream.try_read(&mut [0u8; 1]);
        assert!(
            matches!(&open, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{open:?}"
        );
    }
    let refused = format!(
        "Unauthorized access from {flood_ip}: connection refused: connection rate limit exceeded"
    );
    wait_for_warning(log, &[&refused]).await;
    // Another address has its own bucket: an honest validator connects.
    let (b, _ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(WAIT, "b connects beside the flood", || {
        a.peer_count() == 1 && b.peer_count() == 1
    })
    .await;
    assert_eq!(a.metrics().rejected_total("rate_limited"), 7);
    drop(held);
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_peers_available_is_logged_alone_and_when_the_last_peer_leaves() {
    let log = capture_log();
    let cluster = Cluster::new(2, 37);
    let (a, _ia) = start(cluster.config(0, 0, vec![]), cluster.identity(0)).await;
    let own = address(a.local_addr());
    let count = || {
        log_lines(log)
            .iter()
            .filter(|line| {
                is_warning_with(line, "No peers available") && line["address"] == own.as_str()
            })
            .count()
    };
    wait_until(WAIT, "No peers available while alone", || count() >= 1).await;
    let (b, _ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(WAIT, "b connected", || a.peer_count() == 1).await;
    let before = count();
    b.shutdown();
    wait_until(WAIT, "No peers available after b left", || count() > before).await;
    assert_eq!(a.peer_count(), 0);
    // Operators select the network's lines by logger (docs/troubleshooting.md): the
    // maintenance tick and the session that ended both log as `aegis_p2p::network`.
    for line in log_lines(log).iter().filter(|line| {
        is_warning_with(line, "No peers available") && line["address"] == own.as_str()
    }) {
        assert_eq!(line["logger"], "aegis_p2p::network", "{line}");
    }
    a.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_leaves_honest_peers_connected() {
    let cluster = Cluster::new(3, 23);
    let (a, b, _ia, mut ib) = connected_pair(&cluster).await;
    let flood_ip = IpAddr::from([127, 0, 23, 200]);
    let target = a.local_addr();
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(1), async {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(flood_ip, 0))?;
            socket.connect(target).await
        })
        .await
        {
            held.push(stream);
        }
    }
    // A third validator joins during the flood.
    let (c, _ic) = start(
        cluster.config(2, 0, vec![address(target)]),
        cluster.identity(2),
    )
    .await;
    wait_until(WAIT, "c joins during the flood", || {
        a.peer_count() == 2 && c.peer_count() >= 1
    })
    .await;
    assert!(b.peer_count() >= 1);
    still_talking(&a, &mut ib).await;
    drop(held);
    a.shutdown();
    b.shutdown();
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    let cluster = Cluster::new(2, 24);
    let (a, _ia) = start(cluster.config(0, 0, vec![]), cluster.identity(0)).await;
    let mut config = cluster.config(1, 0, vec![address(a.local_addr())]);
    config.tls = expired(&cluster.node_dir(1), "expired");
    let (b, _ib) = start(config, cluster.identity(1)).await;
    wait_until(WAIT, "expired certificate refused", || {
        a.metrics().auth_failures.get() >= 1
    })
    .await;
    assert_eq!(a.peer_count(), 0);
    assert_eq!(b.peer_count(), 0);
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_network_ca_foreign_certificates_are_refused() {
    let cluster = Cluster::new(3, 25);
    let ca = Ca::new("aegis network CA");
    let other_ca = Ca::new("someone else");
    let mut ca_a = cluster.config(0, 0, vec![]);
    ca_a.tls = ca.issue(&cluster.node_dir(0), "node0");
    let (a, _ia) = start(ca_a, cluster.identity(0)).await;
    let mut ca_b = cluster.config(1, 0, vec![address(a.local_addr())]);
    ca_b.tls = ca.issue(&cluster.node_dir(1), "node1");
    let (b, _ib) = start(ca_b, cluster.identity(1)).await;
    wait_until(WAIT, "CA-issued peers connect", || {
        a.peer_count() == 1 && b.peer_count() == 1
    })
    .await;

    // A validator key is not enough: its certificate must come from the network CA.
    let mut foreign = cluster.config(2, 0, vec![address(a.local_addr())]);
    foreign.tls = other_ca.issue(&cluster.node_dir(2), "node2");
    foreign.tls.ca_file = ca_b_file(&cluster);
    let (c, _ic) = start(foreign, cluster.identity(2)).await;
    wait_until(WAIT, "foreign certificate refused", || {
        a.metrics().auth_failures.get() >= 1
    })
    .await;
    assert_eq!(a.peer_count(), 1);
    assert_eq!(c.peer_count(), 0);
    a.shutdown();
    b.shutdown();
    c.shutdown();
}

fn ca_b_file(cluster: &Cluster) -> Option<std::path::PathBuf> {
    Some(cluster.node_dir(1).join("node1-ca.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_ecdsa_and_ed25519_certificates_interoperate() {
    let cluster = Cluster::new(3, 26);
    // The guide's self-signed RSA 2048 certificate, made with the guide's commands.
    let dir = cluster.node_dir(0);
    let key = dir.join("aegis.key");
    let crt = dir.join("aegis.crt");
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    run(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    run(&[
        "req",
        "-new",
        "-x509",
        "-key",
        key.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
        "-days",
        "365",
        "-subj",
        "/C=US/ST=State/L=City/O=Organization/CN=aegis.local",
    ]);
    let mut rsa = cluster.config(0, 0, vec![]);
    rsa.tls = TlsFiles {
        cert_file: crt,
        key_file: key,
        ca_file: None,
    };
    let (a, _ia) = start(rsa, cluster.identity(0)).await;
    let mut ed = cluster.config(1, 0, vec![address(a.local_addr())]);
    ed.tls = self_signed(&cluster.node_dir(1), "ed", KeyKind::Ed25519);
    let (b, _ib) = start(ed, cluster.identity(1)).await;
    let (c, _ic) = start(
        cluster.config(2, 0, vec![address(a.local_addr()), address(b.local_addr())]),
        cluster.identity(2),
    )
    .await;
    wait_until(WAIT, "RSA, Ed25519 and ECDSA nodes in a mesh", || {
        a.peer_count() == 2 && b.peer_count() == 2 && c.peer_count() == 2
    })
    .await;
    a.shutdown();
    b.shutdown();
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_is_served_without_restart() {
    let cluster = Cluster::new(2, 27);
    let mut config = cluster.config(0, 0, vec![]);
    config.tls_reload_interval = Duration::from_millis(200);
    // The probes below never send a Hello; keep them from getting the prober banned.
    config.rate_limiting.enabled = false;
    let files = config.tls.clone();
    let (a, _ia) = start(config, cluster.identity(0)).await;
    let client = self_signed(cluster.dir.path(), "client", KeyKind::Ecdsa);
    let source = IpAddr::from([127, 0, 27, 100]);
    let before = served_certificate(&a, &client, source).await;

    // Renewal: new files in place (as certbot does); the watcher picks them up.
    let renewed = self_signed(cluster.dir.path(), "renewed", KeyKind::Ed25519);
    std::fs::copy(&renewed.key_file, &files.key_file).unwrap();
    std::fs::copy(&renewed.cert_file, &files.cert_file).unwrap();
    let expected = std::fs::read(&renewed.cert_file).unwrap();
    let store = TlsStore::load(renewed).unwrap();
    let expected_der = store.certificate().unwrap();
    assert!(!expected.is_empty());
    let after = retry_for(
        WAIT,
        "a certificate other than the first served",
        async || {
            let served = served_certificate(&a, &client, source).await;
            (served != before).then_some(served)
        },
    )
    .await;
    assert_eq!(after, expected_der);
    // Explicit reload (the SIGHUP path) works too, and peers still authenticate.
    assert!(a.reload_tls().unwrap());
    let (b, _ib) = start(
        cluster.config(1, 0, vec![address(a.local_addr())]),
        cluster.identity(1),
    )
    .await;
    wait_until(WAIT, "peer connects after renewal", || a.peer_count() == 1).await;
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    let cluster = Cluster::new(1, 38);
    let mut config = cluster.config(0, 0, vec![]);
    // The file watcher would not look again within the test: only SIGHUP can reload.
    config.tls_reload_interval = Duration::from_secs(3600);
    config.rate_limiting.enabled = false;
    let files = config.tls.clone();
    let (a, _ia) = start(config, cluster.identity(0)).await;
    let hub = aegis_telemetry::SighupHub::start().unwrap();
    hub.subscribe("p2p-tls", a.tls_reload_trigger());
    let client = self_signed(cluster.dir.path(), "client", KeyKind::Ecdsa);
    let source = IpAddr::from([127, 0, 38, 100]);
    let before = served_certificate(&a, &client, source).await;

    let renewed = self_signed(cluster.dir.path(), "renewed", KeyKind::Ed25519);
    std::fs::copy(&renewed.key_file, &files.key_file).unwrap();
    std::fs::copy(&renewed.cert_file, &files.cert_file).unwrap();
    let expected = TlsStore::load(renewed).unwrap().certificate().unwrap();
    assert_ne!(before, expected);
    signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
    wait_until(WAIT, "SIGHUP dispatched", || hub.rounds() >= 1).await;
    retry_until(
        WAIT,
        "the new certificate served after SIGHUP",
        async || {
            let served = served_certificate(&a, &client, source).await;
            if served != expected {
                assert_eq!(served, before, "neither the old nor the new certificate");
            }
            served == expected
        },
    )
    .await;
    a.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outside_the_validator_set_is_refused_then_banned() {
    let cluster = Cluster::new(1, 28);
    let mut config = cluster.config(0, 0, vec![]);
    config.rate_limiting.max_failures = 3;
    config.rate_limiting.block_duration = Duration::from_secs(2);
    let (a, _ia) = start(config, cluster.identity(0)).await;
    let rogue_ip = IpAddr::from([127, 0, 28, 66]);
    assert!(!a.is_banned(rogue_ip));
    let not_banned = Instant::now();
    let rogue_config = test_config(
        rogue_ip,
        0,
        vec![address(a.local_addr())],
        self_signed(cluster.dir.path(), "rogue", KeyKind::Ecdsa),
        None,
    );
    let (rogue, _ir) = start(rogue_config, cluster.outsider_identity()).await;
    // The ban began after `banned_after` (a check that saw none) ...
    let banned_after =
        wait_for_onset(not_banned, WAIT, "rogue banned", || a.is_banned(rogue_ip)).await;
    assert_eq!(a.metrics().auth_failures.get(), 3);
    assert_eq!(a.peer_count(), 0);
    rogue.shutdown();
    // ... and had ended by `lifted`: it cannot have been shorter than block_duration if
    // this span is not (polling delays only lengthen the span).
    let lifted = wait_until(WAIT, "ban lifted after block_duration", || {
        !a.is_banned(rogue_ip)
    })
    .await;
    assert!(
        lifted - banned_after >= Duration::from_secs(2),
        "ban lasted at most {:?}",
        lifted - banned_after
    );
    a.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_known_peers_file_is_logged_and_ignored() {
    let log = capture_log();
    let cluster = Cluster::new(2, 39);
    let (b, _ib) = start(cluster.config(1, 0, vec![]), cluster.identity(1)).await;
    let config = cluster.config(0, 0, vec![]);
    let data = config.data_dir.clone().unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let peers_file = data.join("peers.json");
    let path = peers_file.display().to_string();
    let entry = |address: &str| {
        serde_json::json!({
            "address": address,
            "public_key": cluster.keys[1].public_key().to_hex(),
            "last_seen_ms": 1
        })
    };
    let warned = |text: &str| {
        log_lines(log)
            .iter()
            .any(|line| is_warning_with(line, text) && line["path"] == path.as_str())
    };

    // Larger than the cap (valid JSON naming b, padded): not read, so b is not dialled.
    let mut text =
        serde_json::json!({"version": 1, "peers": [entry(&address(b.local_addr()))]}).to_string();
    text.push_str(&" ".repeat(5 * 1024 * 1024));
    std::fs::write(&peers_file, text).unwrap();
    let (a, _ia) = start(config.clone(), cluster.identity(0)).await;
    wait_until(WAIT, "oversized peers file reported", || {
        warned("Ignoring unreadable known-peers file")
    })
    .await;
    assert!(
        !log_lines(log)
            .iter()
            .any(|line| line["message"] == "Loaded known peers" && line["path"] == path.as_str()),
        "the oversized file was loaded"
    );
    a.shutdown();

    // An address longer than any accepted from a peer is skipped; the good one is used.
    let long = format!("{}:8000", "h".repeat(300));
    let text = serde_json::json!({
        "version": 1,
        "peers": [entry(&long), entry(&address(b.local_addr()))]
    });
    std::fs::write(&peers_file, text.to_string()).unwrap();
    let (a, _ia) = start(config, cluster.identity(0)).await;
    wait_until(WAIT, "bad address reported", || {
        warned("Ignored 1 invalid entries of the known-peers file")
    })
    .await;
    wait_until(WAIT, "a dials b from the file", || {
        a.peer_count() == 1 && b.peer_count() == 1
    })
    .await;
    a.shutdown();
    b.shutdown();
}
