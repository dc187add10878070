//! Support for the client API's tests: a node made of real parts behind the HTTP endpoints,
//! without the consensus engine.
//!
//! [`TestNode`] implements [`NodeApi`] over a real `aegis_mempool::Mempool` (behind a
//! mutex) and a real SQLite ledger (`aegis_storage::SqlStore` in a temporary directory),
//! with a broadcast channel of committed blocks. [`Harness::commit`] plays the engine's
//! part: it cuts a block of pending transactions (oldest first), has it certified by the
//! genesis validators, stores it, removes its transactions from the mempool and announces
//! it. Tests are synchronous and talk to the servers over real loopback sockets with the
//! small blocking HTTP client at the end of this file.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aegis_api::{
    ApiError, ApiLimits, CommittedBlock, ConsensusView, HttpEndpoints, HttpListen, HttpOptions,
    LedgerStatus, NodeApi, NodeFuture, NodeStatus, SyncState,
};
use aegis_mempool::{Admission, Mempool, MempoolConfig};
use aegis_p2p::{Identity, Inbox, P2pConfig, P2pMetrics, P2pNetwork, TlsFiles};
use aegis_storage::fixtures::ChainFixture;
use aegis_storage::{Ledger, SqlStore, StoreConfig, Tip};
use aegis_types::{Block, CommitCertificate, Genesis, Hash, Transaction};
use tokio::sync::broadcast;

/// Capacity of the test node's channel of committed blocks.
pub const BLOCK_CHANNEL: usize = 16;
/// How long a test waits for anything that should happen promptly.
pub const PROMPTLY: Duration = Duration::from_secs(15);

/// The engine's side of the node, made of real parts.
#[derive(Debug)]
pub struct TestNode {
    pub mempool: Mutex<Mempool>,
    pub blocks: broadcast::Sender<Arc<CommittedBlock>>,
    pub view: Mutex<ConsensusView>,
    /// While true, `submit` refuses with 503 (a node shutting down).
    pub stopping: Mutex<bool>,
}

impl NodeApi for TestNode {
    fn submit(&self, transactions: Vec<Transaction>) -> NodeFuture<'_, Vec<Admission>> {
        Box::pin(async move {
            if *self.stopping.lock().unwrap() {
                return Err(ApiError::Unavailable {
                    message: "the node is shutting down".into(),
                    retry_after: None,
                });
            }
            Ok(self.mempool.lock().unwrap().admit(transactions, now_ms()))
        })
    }

    fn pending(&self, id: Hash) -> NodeFuture<'_, Option<Transaction>> {
        Box::pin(async move { Ok(self.mempool.lock().unwrap().get(&id).cloned()) })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBlock>> {
        self.blocks.subscribe()
    }

    fn consensus(&self) -> ConsensusView {
        let mut view = self.view.lock().unwrap().clone();
        let mempool = self.mempool.lock().unwrap();
        view.mempool_transactions = mempool.len();
        view.mempool_bytes = mempool.bytes();
        view
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How a [`Harness`] is set up.
#[derive(Clone, Debug)]
pub struct Options {
    pub limits: ApiLimits,
    pub mempool: MempoolConfig,
    /// Validators in the genesis (this node is the first).
    pub validators: usize,
    /// Whether the node is attached (false: as `aegis run` before the engine).
    pub attach_node: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: ApiLimits {
                // Tests send many requests from one address; the rate test sets its own.
                rate_limit: aegis_api::RateLimit {
                    enabled: false,
                    ..aegis_api::RateLimit::default()
                },
                ..ApiLimits::default()
            },
            mempool: MempoolConfig::default(),
            validators: 1,
            attach_node: true,
        }
    }
}

/// One node's HTTP endpoints in front of a [`TestNode`], a real ledger and a real P2P layer.
pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    pub fixture: Mutex<ChainFixture>,
    pub store: Arc<SqlStore>,
    pub node: Arc<TestNode>,
    pub status: Arc<NodeStatus>,
    pub ledger_status: Arc<LedgerStatus>,
    pub network: P2pNetwork,
    _inbox: Inbox,
    pub http: Option<HttpEndpoints>,
    pub api: SocketAddr,
    pub monitoring: SocketAddr,
    pub consensus_metrics: aegis_telemetry::ConsensusMetrics,
    pub mempool_metrics: aegis_telemetry::MempoolMetrics,
}

impl Harness {
    pub fn start() -> Harness {
        Harness::with(Options::default())
    }

    pub fn with(options: Options) -> Harness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let n = options.validators;
        let genesis = aegis_testkit::genesis(n, ((n - 1) / 3) as u32, 100, 1);
        let keys = (0..n).map(aegis_testkit::validator_key).collect();
        let fixture = ChainFixture::from_parts(genesis.clone(), keys);
        let store = runtime
            .block_on(SqlStore::open(&StoreConfig::sqlite(
                dir.path().join("blockchain.db"),
            )))
            .unwrap();
        let store = Arc::new(store);
        let mempool = Mempool::new(options.mempool, aegis_testkit::CHAIN).unwrap();
        let (blocks, _) = broadcast::channel(BLOCK_CHANNEL);
        let node = Arc::new(TestNode {
            mempool: Mutex::new(mempool),
            blocks,
            view: Mutex::new(ConsensusView {
                algorithm: "pbft",
                running: true,
                height: 0,
                latest_hash: genesis.hash(),
                view: 0,
                primary: Some("node0".into()),
                role: "leader",
                sync: SyncState::Synced,
                network_height: 0,
                mempool_transactions: 0,
                mempool_bytes: 0,
                last_commit_ms: None,
            }),
            stopping: Mutex::new(false),
        });
        // The node's registry as the binary fills it: identity, P2P, and the components'.
        let metrics = Arc::new(aegis_telemetry::Metrics::new());
        metrics.register_node_info_with_algorithm(
            env!("CARGO_PKG_VERSION"),
            "node0",
            &genesis.chain_id,
            "pbft",
        );
        let p2p_metrics = P2pMetrics::new();
        p2p_metrics.register(&metrics);
        let consensus_metrics = aegis_telemetry::ConsensusMetrics::new();
        consensus_metrics.register(&metrics);
        let mempool_metrics = aegis_telemetry::MempoolMetrics::new();
        mempool_metrics.register(&metrics);
        aegis_telemetry::StorageMetrics::new().register(&metrics);
        aegis_telemetry::SyncMetrics::new().register(&metrics);
        let (network, inbox) = runtime.block_on(start_network(&dir, &genesis, p2p_metrics));
        let ledger_status = Arc::new(LedgerStatus::default());
        let validators = genesis.validator_set().unwrap();
        let status = Arc::new(
            NodeStatus::new(
                "node0".into(),
                &validators,
                network.clone(),
                Arc::clone(&ledger_status),
                metrics,
            )
            .with_genesis(&genesis),
        );
        assert!(status.attach_ledger(Arc::clone(&store) as Arc<dyn Ledger>));
        if options.attach_node {
            assert!(status.attach_node(Arc::clone(&node) as Arc<dyn NodeApi>));
        }
        let listen = HttpListen {
            host: "127.0.0.1".into(),
            port: 0,
        };
        let http = runtime
            .block_on(aegis_api::start_with(
                HttpOptions {
                    api: Some(listen.clone()),
                    monitoring: Some(listen),
                    metrics_path: "/metrics".into(),
                },
                options.limits,
                Arc::clone(&status),
            ))
            .unwrap();
        let api = http.api_addr.unwrap();
        let monitoring = http.metrics_addr.unwrap();
        Harness {
            runtime,
            dir,
            genesis,
            fixture: Mutex::new(fixture),
            store,
            node,
            status,
            ledger_status,
            network,
            _inbox: inbox,
            http: Some(http),
            api,
            monitoring,
            consensus_metrics,
            mempool_metrics,
        }
    }

    /// Commits a block of up to `max` pending transactions, oldest first (possibly none),
    /// as the engine would: stored with its certificate, removed from the mempool, then
    /// announced.
    pub fn commit(&self, max: usize) -> Block {
        let txs = self
            .node
            .mempool
            .lock()
            .unwrap()
            .next_batch(max, usize::MAX);
        self.commit_transactions(txs)
    }

    /// Commits a block of the fixture's own freshly signed transactions.
    pub fn commit_filler(&self, txs: usize) -> Block {
        let (block, certificate) = self.fixture.lock().unwrap().next_block(txs, 16);
        self.store_and_announce(block, certificate)
    }

    /// Commits a block of exactly `txs` (which need not have been pending).
    pub fn commit_transactions(&self, txs: Vec<Transaction>) -> Block {
        let fixture = self.fixture.lock().unwrap();
        let tip = self.runtime.block_on(self.store.tip()).unwrap();
        let (height, prev_hash) = match tip {
            Some(tip) => (tip.height + 1, tip.hash),
            None => (1, self.genesis.hash()),
        };
        let block = Block::new(
            &self.genesis.chain_id,
            height,
            prev_hash,
            self.genesis.validators[0].public_key,
            3,
            self.genesis.genesis_time_ms + height * 1000,
            txs,
        );
        let certificate = fixture.certify(&block);
        drop(fixture);
        self.store_and_announce(block, certificate)
    }

    fn store_and_announce(&self, block: Block, certificate: CommitCertificate) -> Block {
        self.runtime
            .block_on(self.store.append_block(&block, &certificate))
            .unwrap();
        let hash = block.hash();
        self.fixture.lock().unwrap().resume(Some(Tip {
            height: block.height(),
            hash,
        }));
        let ids = block.tx_ids();
        self.node
            .mempool
            .lock()
            .unwrap()
            .remove_committed(&ids, now_ms());
        {
            let mut view = self.node.view.lock().unwrap();
            view.height = block.height();
            view.latest_hash = hash;
            view.last_commit_ms = Some(now_ms());
        }
        self.ledger_status.set_height(block.height());
        self.consensus_metrics.height.set(block.height() as i64);
        self.consensus_metrics
            .committed_transactions
            .inc_by(ids.len() as u64);
        self.consensus_metrics.commit_latency.observe(0.02);
        // No subscriber is fine: nobody listens.
        let _ = self.node.blocks.send(Arc::new(CommittedBlock {
            height: block.height(),
            hash,
            tx_ids: ids,
        }));
        block
    }

    pub fn mempool_len(&self) -> usize {
        self.node.mempool.lock().unwrap().len()
    }

    pub fn ledger_height(&self) -> u64 {
        self.runtime.block_on(self.store.height()).unwrap()
    }

    /// Stops the servers (waiting for requests in flight) and the P2P layer.
    pub fn stop(mut self) {
        if let Some(http) = self.http.take() {
            self.runtime.block_on(http.stop());
        }
        self.network.shutdown();
    }
}

async fn start_network(
    dir: &tempfile::TempDir,
    genesis: &Genesis,
    metrics: P2pMetrics,
) -> (P2pNetwork, Inbox) {
    let identity = Identity::new(aegis_testkit::validator_key(0), genesis).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["node0".into(), "localhost".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_file = dir.path().join("node.crt");
    let key_file = dir.path().join("node.key");
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let mut config = P2pConfig::new(TlsFiles {
        cert_file,
        key_file,
        ca_file: None,
    });
    config.host = "127.0.0.1".into();
    config.port = 0;
    config.data_dir = Some(dir.path().join("data/p2p"));
    P2pNetwork::start(config, identity, metrics).await.unwrap()
}

/// A transaction of the test chain, signed by the test client, distinct by `nonce`.
pub fn tx(nonce: u64) -> Transaction {
    aegis_testkit::tx(nonce)
}

/// Its JSON form.
pub fn tx_json(tx: &Transaction) -> serde_json::Value {
    serde_json::to_value(tx).unwrap()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Checks the error body: exactly `error` and `message` (and `id` for a conflict).
    pub fn assert_error(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let body = self.json();
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].is_string(), "{body}");
        body
    }
}

/// `method path` with `headers` and `body` over a new connection (closed after).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PROMPTLY)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], b"")
}

pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Reply {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// Parses a complete response (head and body, chunked or not).
pub fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    let body = if chunked {
        let mut decoder = Chunks::default();
        decoder.push(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// An incremental decoder of a chunked body.
#[derive(Debug, Default)]
pub struct Chunks {
    pending: Vec<u8>,
    /// Bytes left of the current chunk's data (and its CRLF).
    left: usize,
}

impl Chunks {
    /// Feeds raw bytes; returns the body bytes they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.left > 0 {
                let data = self.left.saturating_sub(2);
                let take = self.pending.len().min(self.left);
                let body = take.min(data);
                out.extend_from_slice(&self.pending[..body]);
                self.pending.drain(..take);
                self.left -= take;
                if self.left > 0 {
                    return out;
                }
                continue;
            }
            let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                return out;
            };
            let line = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            self.pending.drain(..end + 2);
            if size == 0 {
                return out;
            }
            self.left = size + 2;
        }
    }
}

/// One Server-Sent Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// A client of `GET /v1/events`, reading events as they come.
pub struct EventClient {
    stream: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    chunks: Chunks,
    text: String,
    /// Comment lines (keep-alives) seen so far.
    pub comments: usize,
}

impl EventClient {
    /// Opens the stream, with `Last-Event-ID` when given.
    pub fn open(addr: SocketAddr, last_event_id: Option<&str>) -> EventClient {
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut head =
            "GET /v1/events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n".to_owned();
        if let Some(id) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + PROMPTLY;
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let split = loop {
            if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break split;
            }
            assert!(Instant::now() < deadline, "no response head");
            match stream.read(&mut buf) {
                Ok(0) => panic!(
                    "closed before the head: {:?}",
                    String::from_utf8_lossy(&raw)
                ),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        };
        let reply = parse_reply(&raw[..split + 4]);
        let mut client = EventClient {
            stream,
            status: reply.status,
            headers: reply.headers,
            chunks: Chunks::default(),
            text: String::new(),
            comments: 0,
        };
        let rest = raw[split + 4..].to_vec();
        let body = client.chunks.push(&rest);
        client.text.push_str(&String::from_utf8_lossy(&body));
        client
    }

    /// The next event, or `None` if none comes within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(event) = self.take_event() {
                return Some(event);
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    let body = self.chunks.push(&buf[..n]);
                    self.text.push_str(&String::from_utf8_lossy(&body));
                }
                Err(_) => {}
            }
        }
    }

    /// The next `count` events, failing the test if they do not all come promptly.
    pub fn take(&mut self, count: usize) -> Vec<SseEvent> {
        (0..count)
            .map(|i| {
                self.next(PROMPTLY)
                    .unwrap_or_else(|| panic!("event {i} of {count} did not come"))
            })
            .collect()
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.text.find("\n\n")?;
            let block: String = self.text.drain(..end + 2).collect();
            let mut event = SseEvent {
                id: None,
                event: None,
                data: String::new(),
            };
            let mut fields = 0;
            for line in block.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                } else if let Some((name, value)) = line.split_once(':') {
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    fields += 1;
                    match name {
                        "id" => event.id = Some(value.to_owned()),
                        "event" => event.event = Some(value.to_owned()),
                        "data" => event.data.push_str(value),
                        _ => {}
                    }
                }
            }
            if fields > 0 {
                return Some(event);
            }
        }
    }
}
