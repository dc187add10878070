//! Throughput between two nodes on loopback, beside a bare rustls stream, in one run.
//!
//! `cargo bench -p aegis-p2p` prints messages/s and MB/s for 256 B and 64 KiB messages:
//!
//! - `aegis-p2p`: `P2pNetwork::send` on one node to `Inbox::recv` on the other (queues,
//!   batching, framing, metrics, TLS 1.3);
//! - `bare rustls`: one tokio-rustls stream with the same TLS 1.3 configuration (ring,
//!   same certificates, same socket buffer sizes), the sender writing `length || payload`
//!   through a 64 KiB `BufWriter`, the receiver reading them back with `read_exact`.
//!
//! Set `AEGIS_BENCH_SECONDS` to change the time spent per case (default 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use aegis_p2p::{Message, P2pConfig, P2pMetrics, P2pNetwork, TlsFiles, TlsStore, tags};
use aegis_testkit::p2p::Cluster;
use aegis_testkit::tls::{KeyKind, self_signed};
use aegis_testkit::wait_async::wait_until;
use aegis_types::ValidatorId;
use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpSocket};

const BUFFER: usize = 65_536;

/// A node's default timers and queues, not the fast timers of `aegis_testkit::p2p`'s test
/// configurations (a ping timing out behind a full queue would cut the link being measured);
/// no rate limits, and a quick first dial.
fn config(ip: IpAddr, tls: TlsFiles, bootstrap: Vec<String>) -> P2pConfig {
    let mut config = P2pConfig::new(tls);
    config.host = ip.to_string();
    config.port = 0;
    config.bootstrap_nodes = bootstrap;
    config.reconnect_interval = Duration::from_millis(100);
    config.rate_limiting.enabled = false;
    config
}

struct Result {
    messages: u64,
    bytes: u64,
    elapsed: Duration,
}

impl Result {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

async fn bench_p2p(
    a: &P2pNetwork,
    inbox: &mut aegis_p2p::Inbox,
    size: usize,
    budget: Duration,
) -> Result {
    let payload = Bytes::from(vec![0xa5u8; size]);
    // Warm up, then measure in rounds until the time budget is spent.
    let round = if size <= 1024 { 20_000 } else { 500 };
    let mut messages = 0u64;
    let started = Instant::now();
    let mut first = true;
    while started.elapsed() < budget || first {
        first = false;
        let sender = {
            let a = a.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                for _ in 0..round {
                    a.send(
                        ValidatorId(1),
                        Message::new(tags::CONSENSUS, payload.clone()),
                    )
                    .await
                    .unwrap();
                }
            })
        };
        for _ in 0..round {
            let got = inbox.recv().await.unwrap();
            assert_eq!(got.payload.len(), size);
        }
        sender.await.unwrap();
        messages += round as u64;
    }
    let elapsed = started.elapsed();
    Result {
        messages,
        bytes: messages * size as u64,
        elapsed,
    }
}

async fn bench_bare(
    store: &std::sync::Arc<TlsStore>,
    ip: IpAddr,
    size: usize,
    budget: Duration,
) -> Result {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(BUFFER as u32).unwrap();
    socket.set_recv_buffer_size(BUFFER as u32).unwrap();
    socket.bind(SocketAddr::new(ip, 0)).unwrap();
    let listener: TcpListener = socket.listen(16).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(store.server_config().unwrap());
    let connector = tokio_rustls::TlsConnector::from(store.client_config().unwrap());
    let round = if size <= 1024 { 20_000 } else { 500 };
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let mut reader = BufReader::with_capacity(BUFFER, tls);
        let mut received = 0u64;
        loop {
            let mut len = [0u8; 4];
            if reader.read_exact(&mut len).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes(len) as usize;
            // Each message into its own buffer, as a receiver handing messages on needs.
            let mut message = vec![0u8; len];
            reader.read_exact(&mut message).await.unwrap();
            std::hint::black_box(Bytes::from(message));
            received += 1;
        }
        received
    });
    let client = TcpSocket::new_v4().unwrap();
    client.set_send_buffer_size(BUFFER as u32).unwrap();
    client.set_recv_buffer_size(BUFFER as u32).unwrap();
    client.bind(SocketAddr::new(ip, 0)).unwrap();
    let tcp = client.connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = connector
        .connect(ServerName::try_from("bench").unwrap(), tcp)
        .await
        .unwrap();
    let mut writer = BufWriter::with_capacity(BUFFER, tls);
    // Length and payload contiguous, so a large message is one write (no tiny TLS record).
    let mut framed = (size as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&vec![0xa5u8; size]);
    let started = Instant::now();
    let mut messages = 0u64;
    while started.elapsed() < budget || messages == 0 {
        for _ in 0..round {
            writer.write_all(&framed).await.unwrap();
        }
        writer.flush().await.unwrap();
        messages += round as u64;
    }
    writer.shutdown().await.unwrap();
    drop(writer);
    let received = server.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(received, messages);
    Result {
        messages,
        bytes: messages * size as u64,
        elapsed,
    }
}

fn main() {
    aegis_p2p::install_default_provider();
    let budget = Duration::from_secs_f64(
        std::env::var("AEGIS_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let cluster = Cluster::new(2, 99);
        let (ip_a, ip_b) = (cluster.ip(0), cluster.ip(1));
        let tls_a = self_signed(cluster.dir.path(), "a", KeyKind::Ecdsa);
        let tls_b = self_signed(cluster.dir.path(), "b", KeyKind::Ecdsa);
        let (a, _ia) = P2pNetwork::start(
            config(ip_a, tls_a.clone(), vec![]),
            cluster.identity(0),
            P2pMetrics::new(),
        )
        .await
        .unwrap();
        let (b, mut ib) = P2pNetwork::start(
            config(ip_b, tls_b, vec![a.local_addr().to_string()]),
            cluster.identity(1),
            P2pMetrics::new(),
        )
        .await
        .unwrap();
        wait_until(Duration::from_secs(15), "the two nodes connected", || {
            a.peer_count() > 0
        })
        .await;
        let store = TlsStore::load(tls_a).unwrap();
        println!("P2P throughput, one direction, loopback, 2 tokio workers, {budget:?} per case (best of 3 alternating runs)");
        println!(
            "{:>8}  {:<12} {:>12} {:>10} {:>9}",
            "size", "transport", "messages/s", "MB/s", "vs bare"
        );
        // Alternate the two transports and keep each one's best run, so load from other
        // processes on the machine skews the comparison less.
        let repeats = 3;
        let best = |results: Vec<Result>| {
            results
                .into_iter()
                .max_by(|x, y| x.per_second().total_cmp(&y.per_second()))
                .unwrap()
        };
        for size in [256usize, 64 * 1024] {
            let mut p2p_runs = Vec::new();
            let mut bare_runs = Vec::new();
            for _ in 0..repeats {
                p2p_runs.push(bench_p2p(&a, &mut ib, size, budget / repeats).await);
                bare_runs.push(bench_bare(&store, ip_a, size, budget / repeats).await);
            }
            let (p2p, bare) = (best(p2p_runs), best(bare_runs));
            let label = if size < 1024 {
                format!("{size} B")
            } else {
                format!("{} KiB", size / 1024)
            };
            for (name, result) in [("aegis-p2p", &p2p), ("bare rustls", &bare)] {
                println!(
                    "{:>8}  {:<12} {:>12.0} {:>10.1} {:>8.0}%",
                    label,
                    name,
                    result.per_second(),
                    result.mb_per_second(),
                    100.0 * result.mb_per_second() / bare.mb_per_second()
                );
            }
        }
        a.shutdown();
        b.shutdown();
    });
}
